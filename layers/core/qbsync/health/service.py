"""Evaluates one firm's health (PRODUCT.md J.6, issue 15 item 3; docs/operations.md "Per-firm health").

:meth:`FirmHealthCheck.evaluate` reads the figures, judges the level (:mod:`qbsync.health.figures`) and, when
the level differs from the one stored for the firm (:class:`~qbsync.repositories.health_levels.HealthLevels`,
one conditional write), publishes "Firm Health Changed" - once per crossing. ``GET /health`` and the hourly
resync's ``health`` step both call it.

Where the figures come from (all bounded; AWS calls per evaluation in docs/admin-api.md):

* **lag** - the records that turned synced in the last hour (one gsi2 range Query per syncable record type,
  newest first, :data:`MAX_LAG_SAMPLES` records in all): lag = the record's synced time minus the
  ``occurred_at`` of the platform event that synced (its stored ``last_event``, when that is the version
  applied). Read from what the sync already writes: no write on the outbound path.
* **failed / blocked** - ``Select=COUNT`` Queries of the realm's gsi2 status partitions (at most 10 pages).
* **dead letters** - a ``Select=COUNT`` Query of the firm's dead-letter log
  (:class:`~qbsync.repositories.dead_letters.DeadLetterLog`, at most 10 pages).
* **budget** - the rate limiter's per-minute counters of the realm (one Query of the last 60 minutes).
* **tokens** - the expiry dates on the connection item (never the tokens).
* **backlog** - ``GetQueueAttributes`` of each queue (fleet-wide; only when ``queues`` are given).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync.adapters.sqs import QueueDepth
from qbsync.health.figures import (
    HARD_CAP_SECONDS,
    QBO_REQUESTS_PER_MINUTE,
    Inputs,
    days_left,
    judge,
    percentile,
)
from qbsync.models.health import (
    BudgetUse,
    FirmHealth,
    LagFigures,
    QueueBacklog,
    QueuesBacklog,
    RecordCounts,
    TokenExpiry,
)
from qbsync.models.qbsync_events import FirmHealthChanged
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.records import BLOCKED, FAILED, SYNCED, RecordPage
from qbsync.vocab import SYNCABLE_TYPES

__all__ = ["LAG_WINDOW_SECONDS", "MAX_LAG_SAMPLES", "FirmHealthCheck", "HealthSources"]

logger = logging.getLogger("qbsync.health")

LAG_WINDOW_SECONDS = 3600
#: records read for the lag per evaluation (all types together, newest first)
MAX_LAG_SAMPLES = 1000


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Records(Protocol):
    """``qbsync.repositories.records.RecordsRepository``."""

    def count_in_status(self, firm_id: str, realm_id: str, status: str) -> tuple[int, bool]: ...

    def synced_since(
        self, firm_id: str, realm_id: str, entity_type: str, *, since: float, max_items: int
    ) -> list[tuple[float, dict[str, Any] | None]]: ...

    def list_by_status(
        self, firm_id: str, realm_id: str, status: str, *, entity_type: str | None = ..., limit: int = ...
    ) -> RecordPage: ...


class DeadLetters(Protocol):
    def count(self, firm_id: str, *, now: float) -> tuple[int, bool]: ...


class RateCounters(Protocol):
    def used(self, realm_id: str, first_minute: int, last_minute: int) -> dict[int, int]: ...


class Levels(Protocol):
    def swap(self, firm_id: str, level: str, *, now: float) -> str | None: ...


class Publisher(Protocol):
    def publish(self, events: Any) -> Any: ...


class Queue(Protocol):
    def depth(self) -> QueueDepth: ...


@dataclass(frozen=True)
class HealthSources:
    """Where the figures are read (see the module doc)."""

    connections: Connections
    records: Records
    dead_letters: DeadLetters
    rate: RateCounters
    limiter_cap_per_minute: int


class FirmHealthCheck:
    """One firm's health report and its "Firm Health Changed" (see the module doc)."""

    def __init__(
        self,
        sources: HealthSources,
        *,
        levels: Levels,
        publisher: Publisher,
        clock: Callable[[], float],
        correlation_id: Callable[[], str],
    ) -> None:
        self._s = sources
        self._levels = levels
        self._publisher = publisher
        self._clock = clock
        self._correlation_id = correlation_id

    def evaluate(self, firm_id: str, *, queues: Mapping[str, Queue] | None = None) -> FirmHealth:
        now = self._clock()
        connection = self._s.connections.get(firm_id)
        realm_id = connection.realm_id if connection is not None else None
        lag, last_synced = self._lag(firm_id, realm_id, now) if realm_id else (_no_lag(), None)
        if realm_id:
            failed, failed_complete = self._s.records.count_in_status(firm_id, realm_id, FAILED)
            blocked, blocked_complete = self._s.records.count_in_status(firm_id, realm_id, BLOCKED)
        else:
            failed, blocked, failed_complete, blocked_complete = 0, 0, True, True
        dead, dead_complete = self._s.dead_letters.count(firm_id, now=now)
        tokens = _tokens(connection, now) if connection is not None else None
        budget = self._budget(realm_id, now) if realm_id else None
        judged = judge(
            Inputs(
                connected=connection is not None and connection.status == CONNECTED,
                token_days_left=(tokens.idle_days_left, tokens.hard_days_left) if tokens else (),
                lag_p95_seconds=lag.p95_seconds,
                failed=failed,
                dead_letters=dead,
                requests_last_minute=budget.last_minute if budget else 0,
            )
        )
        health = FirmHealth(
            firm_id=firm_id,
            realm_id=realm_id,
            connection_status=connection.status if connection is not None else "not_connected",
            level=judged.level,  # type: ignore[arg-type]
            reasons=list(judged.reasons),  # type: ignore[arg-type]
            evaluated_at=_dt(now),
            last_synced_at=_dt(last_synced) if last_synced is not None else None,
            lag=lag,
            records=RecordCounts(
                failed=failed, blocked=blocked, complete=failed_complete and blocked_complete
            ),
            dead_letters=dead,
            dead_letters_complete=dead_complete,
            backlog=_backlog(queues) if queues is not None else None,
            tokens=tokens,
            budget=budget,
        )
        self._announce(health, now)
        return health

    def _announce(self, health: FirmHealth, now: float) -> None:
        previous = self._levels.swap(health.firm_id, health.level, now=now)
        if previous is None:
            return
        # Stored first, then announced: a crash in between loses this one announcement (the level is
        # already stored), never repeats it - the next crossing is announced as usual.
        self._publisher.publish(
            [
                FirmHealthChanged(
                    firm_id=health.firm_id,
                    correlation_id=self._correlation_id(),
                    realm_id=health.realm_id,
                    level=health.level,
                    previous_level=previous,  # type: ignore[arg-type]
                    reasons=health.reasons,
                    occurred_at=health.evaluated_at,
                )
            ]
        )
        logger.info(
            "firm health changed",
            extra={"firm_id": health.firm_id, "level": health.level, "previous_level": previous},
        )

    def _lag(self, firm_id: str, realm_id: str, now: float) -> tuple[LagFigures, float | None]:
        since = now - LAG_WINDOW_SECONDS
        lags: list[float] = []
        last_synced: float | None = None
        remaining = MAX_LAG_SAMPLES
        complete = True
        for entity_type in SYNCABLE_TYPES:
            if remaining <= 0:
                complete = False
                break
            rows = self._s.records.synced_since(
                firm_id, realm_id, entity_type, since=since, max_items=remaining
            )
            remaining -= len(rows)
            for synced_at, envelope in rows:
                last_synced = synced_at if last_synced is None else max(last_synced, synced_at)
                occurred = _occurred_at(envelope)
                if occurred is not None:
                    lags.append(max(synced_at - occurred, 0.0))
        if remaining <= 0:
            complete = False
        if last_synced is None:
            last_synced = self._last_synced_before(firm_id, realm_id)
        return (
            LagFigures(
                window_seconds=LAG_WINDOW_SECONDS,
                samples=len(lags),
                complete=complete,
                p50_seconds=_round(percentile(lags, 50)),
                p95_seconds=_round(percentile(lags, 95)),
                max_seconds=_round(max(lags) if lags else None),
            ),
            last_synced,
        )

    def _last_synced_before(self, firm_id: str, realm_id: str) -> float | None:
        """Nothing synced in the window: the newest synced record of each type (one item per Query)."""
        newest: float | None = None
        for entity_type in SYNCABLE_TYPES:
            page = self._s.records.list_by_status(firm_id, realm_id, SYNCED, entity_type=entity_type, limit=1)
            for record in page.records:
                if record.updated_at is not None:
                    newest = record.updated_at if newest is None else max(newest, record.updated_at)
        return newest

    def _budget(self, realm_id: str, now: float) -> BudgetUse:
        minute = math.floor(now / 60)
        used = self._s.rate.used(realm_id, minute - 59, minute)
        return BudgetUse(
            limit_per_minute=QBO_REQUESTS_PER_MINUTE,
            limiter_cap_per_minute=self._s.limiter_cap_per_minute,
            last_minute=used.get(minute, 0),
            last_hour=sum(used.values()),
            peak_minute=max(used.values(), default=0),
            window_seconds=3600,
        )


def _no_lag() -> LagFigures:
    return LagFigures(
        window_seconds=LAG_WINDOW_SECONDS,
        samples=0,
        complete=True,
        p50_seconds=None,
        p95_seconds=None,
        max_seconds=None,
    )


def _tokens(connection: Connection, now: float) -> TokenExpiry | None:
    tokens = connection.tokens
    if tokens is None:
        return None
    hard = tokens.refresh_hard_expires_at
    estimated = hard is None and connection.connected_at is not None
    if hard is None and connection.connected_at is not None:
        hard = connection.connected_at + HARD_CAP_SECONDS
    idle = tokens.refresh_expires_at
    return TokenExpiry(
        idle_expires_at=_dt(idle) if idle is not None else None,
        idle_days_left=days_left(idle, now),
        hard_expires_at=_dt(hard) if hard is not None else None,
        hard_days_left=days_left(hard, now),
        hard_estimated=estimated,
    )


def _backlog(queues: Mapping[str, Queue]) -> QueuesBacklog:
    rows = []
    for name, queue in queues.items():
        depth = queue.depth()
        rows.append(
            QueueBacklog.model_validate(
                {
                    "queue": name,
                    "visible": depth.visible,
                    "in_flight": depth.in_flight,
                    "delayed": depth.delayed,
                }
            )
        )
    return QueuesBacklog(queues=rows)


def _occurred_at(envelope: Mapping[str, Any] | None) -> float | None:
    if not envelope:
        return None
    detail = envelope.get("detail")
    value = detail.get("occurred_at") if isinstance(detail, Mapping) else None
    if not isinstance(value, str):
        value = envelope.get("time")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
