"""qbsync.health.service.FirmHealthCheck on in-memory sources: which records are lag samples, the cap,
the level store's answer deciding the event (on AWS: tests/integration/entity_sync/test_firm_health.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qbsync.health.service import MAX_LAG_SAMPLES, FirmHealthCheck, HealthSources
from qbsync.repositories.connections import CONNECTED, Connection, Tokens
from qbsync.repositories.records import RecordPage

NOW = 1_800_000_000.0


def _event(occurred_at: str | None) -> dict[str, Any]:
    return {"detail-type": "Invoice Sent", "detail": {"occurred_at": occurred_at}}


@dataclass
class _Records:
    rows: dict[str, list[tuple[float, dict[str, Any] | None]]]
    asked: list[int] = field(default_factory=list)

    def count_in_status(self, firm_id: str, realm_id: str, status: str) -> tuple[int, bool]:
        return (0, True)

    def synced_since(
        self, firm_id: str, realm_id: str, entity_type: str, *, since: float, max_items: int
    ) -> list[tuple[float, dict[str, Any] | None]]:
        assert since == NOW - 3600
        self.asked.append(max_items)
        return self.rows.get(entity_type, [])[:max_items]

    def list_by_status(self, *args: Any, **kwargs: Any) -> RecordPage:
        return RecordPage([], None)


class _Connections:
    def get(self, firm_id: str) -> Connection:
        tokens = Tokens("a", "r", NOW + 3600, NOW + 100 * 86400, None)
        return Connection("f1", "r1", CONNECTED, tokens, connected_at=NOW - 86400)


class _Nothing:
    def count(self, firm_id: str, *, now: float) -> tuple[int, bool]:
        return (0, True)

    def used(self, realm_id: str, first_minute: int, last_minute: int) -> dict[int, int]:
        assert last_minute - first_minute == 59
        return {last_minute: 7, last_minute - 10: 30}


@dataclass
class _Levels:
    previous: str | None
    published: list[Any] = field(default_factory=list)

    def swap(self, firm_id: str, level: str, *, now: float) -> str | None:
        return self.previous

    def publish(self, events: Any) -> None:
        self.published.extend(events)


def _check(records: _Records, levels: _Levels) -> FirmHealthCheck:
    nothing = _Nothing()
    return FirmHealthCheck(
        HealthSources(_Connections(), records, nothing, nothing, limiter_cap_per_minute=450),
        levels=levels,
        publisher=levels,
        clock=lambda: NOW,
        correlation_id=lambda: "corr-1",
    )


def test_only_records_with_the_synced_event_are_lag_samples() -> None:
    records = _Records(
        {
            "invoice": [
                (NOW - 10, _event("2027-01-15T07:59:30+00:00")),  # NOW is 08:00:00Z: lag 20
                (NOW - 20, None),  # no stored event of the synced version: synced, not a sample
                (NOW - 30, _event("not a date")),
                (NOW - 40, _event("2027-01-15T08:00:00")),  # no offset: not a sample
            ],
            "payment": [(NOW - 5, _event(None) | {"time": "2027-01-15T07:59:00Z"})],  # envelope time: 55
            "fee": [(NOW - 1, _event("2027-01-15T08:00:30Z"))],  # after the sync (clock skew): 0
        }
    )
    levels = _Levels(previous=None)
    health = _check(records, levels).evaluate("f1")
    assert health.lag.samples == 3
    assert (health.lag.p50_seconds, health.lag.p95_seconds, health.lag.max_seconds) == (20.0, 55.0, 55.0)
    assert health.lag.complete is True
    assert health.last_synced_at is not None and health.last_synced_at.timestamp() == NOW - 1
    assert health.budget is not None
    assert (health.budget.last_minute, health.budget.last_hour, health.budget.peak_minute) == (7, 37, 30)
    assert health.tokens is not None and health.tokens.idle_days_left == 100.0
    assert health.tokens.hard_estimated is True and health.tokens.hard_days_left == 5 * 365 - 1
    assert (health.level, levels.published) == ("ok", [])  # the store said "unchanged": no event


def test_the_samples_are_capped_and_say_so() -> None:
    many: list[tuple[float, dict[str, Any] | None]] = [
        (NOW - 1, _event("2027-01-15T07:59:59Z"))
    ] * MAX_LAG_SAMPLES
    records = _Records({"client_account": many, "invoice": many})
    health = _check(records, _Levels(previous=None)).evaluate("f1")
    assert health.lag.samples == MAX_LAG_SAMPLES and health.lag.complete is False
    assert records.asked == [MAX_LAG_SAMPLES]  # nothing more was read once the cap was reached


def test_a_crossing_reported_by_the_store_is_published_once() -> None:
    levels = _Levels(previous="degraded")
    health = _check(_Records({}), levels).evaluate("f1")
    (event,) = levels.published
    assert (event.previous_level, event.level, event.reasons) == ("degraded", "ok", [])
    assert event.firm_id == "f1" and event.realm_id == "r1" and event.occurred_at == health.evaluated_at
