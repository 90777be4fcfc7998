"""The pure computations of the per-firm health (qbsync.health.figures): percentiles, countdown, level."""

from __future__ import annotations

import pytest
from qbsync.health.figures import (
    DAY,
    HARD_CAP_SECONDS,
    IDLE_EXPIRY_SECONDS,
    Inputs,
    days_left,
    judge,
    percentile,
)


def _inputs(**changes: object) -> Inputs:
    base: dict[str, object] = {
        "connected": True,
        "token_days_left": (90.0, 1500.0),
        "lag_p95_seconds": 4.0,
        "failed": 0,
        "dead_letters": 0,
        "requests_last_minute": 10,
    }
    base.update(changes)
    return Inputs(**base)  # type: ignore[arg-type]


def test_nearest_rank_percentiles() -> None:
    samples = [float(n) for n in range(1, 21)]  # 1..20
    assert percentile(samples, 50) == 10.0
    assert percentile(samples, 95) == 19.0
    assert percentile(samples, 100) == 20.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(samples, 0)


def test_countdown_in_days() -> None:
    now = 1_800_000_000.0
    assert days_left(now + IDLE_EXPIRY_SECONDS, now) == 100.0
    assert days_left(now + HARD_CAP_SECONDS, now) == 5 * 365.0
    assert days_left(now + DAY / 2, now) == 0.5
    assert days_left(now - 3 * DAY, now) == -3.0
    assert days_left(None, now) is None


def test_healthy_is_ok() -> None:
    assert judge(_inputs()).level == "ok"
    assert judge(_inputs()).reasons == ()


@pytest.mark.parametrize(
    ("changes", "level", "reasons"),
    [
        ({"failed": 1}, "degraded", ("failed_records",)),
        ({"dead_letters": 2}, "degraded", ("dead_letters",)),
        ({"lag_p95_seconds": 901.0}, "degraded", ("lag_high",)),
        ({"lag_p95_seconds": 900.0}, "ok", ()),
        ({"lag_p95_seconds": 3601.0}, "failing", ("lag_critical",)),
        ({"token_days_left": (29.9, 1500.0)}, "degraded", ("token_expiry_soon",)),
        ({"token_days_left": (90.0, 6.5)}, "failing", ("token_expiring",)),
        ({"token_days_left": (None, None)}, "ok", ()),
        ({"requests_last_minute": 400}, "degraded", ("budget_high",)),
        ({"requests_last_minute": 399}, "ok", ()),
        ({"connected": False, "failed": 3}, "failing", ("not_connected", "failed_records")),
    ],
)
def test_thresholds(changes: dict[str, object], level: str, reasons: tuple[str, ...]) -> None:
    judged = judge(_inputs(**changes))
    assert (judged.level, judged.reasons) == (level, reasons)
