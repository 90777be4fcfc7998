"""The pure computations of the per-firm health: percentiles, the token countdown and the level.

Thresholds (docs/operations.md "Per-firm health"):

=========================  ======================================  =====================================
figure                     degraded when                           failing when
=========================  ======================================  =====================================
connection                 -                                       not ``connected`` (``not_connected``)
refresh token (either cap) under 30 days left (``token_expiry_soon``) under 7 days left (``token_expiring``)
lag p95 (last hour)        over 15 minutes (``lag_high``)          over 1 hour (``lag_critical``)
failed records             any (``failed_records``)                -
dead letters (14 days)     any (``dead_letters``)                  -
requests, current minute   at least 80 % of 500 (``budget_high``)  -
=========================  ======================================  =====================================

Blocked records are reported, not judged: a record is blocked only until its prerequisite syncs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BUDGET_HIGH_SHARE",
    "HARD_CAP_SECONDS",
    "IDLE_EXPIRY_SECONDS",
    "QBO_REQUESTS_PER_MINUTE",
    "Inputs",
    "Judged",
    "days_left",
    "judge",
    "percentile",
]

DAY = 86400
#: Intuit's rolling refresh-token lifetime (QBO.md 1.5): 100 days from the last use
IDLE_EXPIRY_SECONDS = 100 * DAY
#: the 5-year maximum of a grant (QBO.md 1.6)
HARD_CAP_SECONDS = 5 * 365 * DAY
#: the realm's budget (QBO.md: 500 requests/min per realm)
QBO_REQUESTS_PER_MINUTE = 500
BUDGET_HIGH_SHARE = 0.8
TOKEN_SOON_DAYS = 30
TOKEN_FAILING_DAYS = 7
LAG_HIGH_SECONDS = 15 * 60
LAG_CRITICAL_SECONDS = 3600

_FAILING = frozenset({"not_connected", "token_expiring", "lag_critical"})


def percentile(samples: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``samples``: the smallest sample with at least
    p % of the samples at or below it; None without samples."""
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def days_left(expires_at: float | None, now: float) -> float | None:
    """Days from ``now`` to ``expires_at`` (epoch seconds), 2 decimals, negative once past (None: unknown)."""
    if expires_at is None:
        return None
    return round((expires_at - now) / DAY, 2)


@dataclass(frozen=True)
class Judged:
    level: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Inputs:
    """The figures the level is judged on."""

    connected: bool
    token_days_left: Sequence[float | None]
    lag_p95_seconds: float | None
    failed: int
    dead_letters: int
    requests_last_minute: int


def judge(figures: Inputs) -> Judged:
    """The level and its reasons (see the module doc): failing beats degraded beats ok."""
    reasons: list[str] = []
    if not figures.connected:
        reasons.append("not_connected")
    known = [d for d in figures.token_days_left if d is not None]
    if known and min(known) < TOKEN_FAILING_DAYS:
        reasons.append("token_expiring")
    elif known and min(known) < TOKEN_SOON_DAYS:
        reasons.append("token_expiry_soon")
    lag = figures.lag_p95_seconds
    if lag is not None and lag > LAG_CRITICAL_SECONDS:
        reasons.append("lag_critical")
    elif lag is not None and lag > LAG_HIGH_SECONDS:
        reasons.append("lag_high")
    if figures.failed > 0:
        reasons.append("failed_records")
    if figures.dead_letters > 0:
        reasons.append("dead_letters")
    if figures.requests_last_minute >= BUDGET_HIGH_SHARE * QBO_REQUESTS_PER_MINUTE:
        reasons.append("budget_high")
    if any(r in _FAILING for r in reasons):
        return Judged("failing", tuple(reasons))
    return Judged("degraded" if reasons else "ok", tuple(reasons))
