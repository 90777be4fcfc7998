"""The record sweep's pure selection (qbsync.reconcile.sweep.why_rerun) and its bounded paging."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from qbsync.models.record_key import RecordKey
from qbsync.outbound.gate import WAITING_ON
from qbsync.reconcile.sweep import (
    PAGE_SIZE,
    PAGES_PER_RUN,
    READY,
    STALE,
    SWEPT_STATUSES,
    RecordSweep,
    SweepCursor,
    why_rerun,
)
from qbsync.repositories.records import RecordPage, SyncRecord
from qbsync.settings import SweepSettings

#: the production thresholds (the settings' defaults)
SETTINGS = SweepSettings()
BLOCKED_AFTER_SECONDS = SETTINGS.blocked_after_seconds
RETRY_AFTER_SECONDS = SETTINGS.retry_after_seconds

NOW = 1_800_000_000.0
ACCOUNT = SyncRecord(
    "f1",
    "r1",
    "client_account",
    "acct-1",
    status="synced",
    qbo_id="58",
    updated_at=NOW - BLOCKED_AFTER_SECONDS,
)


def _invoice(status: str, *, age: float, **more: Any) -> SyncRecord:
    fields: dict[str, Any] = {"updated_at": NOW - age, "last_event_version": 3}
    fields.update(more)
    return SyncRecord("f1", "r1", "invoice", "inv-1", status=status, **fields)


def _lookup(*records: SyncRecord | None) -> Any:
    found = {r.key: r for r in records if r is not None}
    return lambda key: found.get(key)


WAITS = (("client_account", "acct-1"),)


def test_a_blocked_record_whose_prerequisites_all_synced_runs_again_once_it_rested() -> None:
    blocked = _invoice("blocked", age=BLOCKED_AFTER_SECONDS, waiting_on=WAITS)
    assert why_rerun(blocked, now=NOW, prerequisite=_lookup(ACCOUNT), settings=SETTINGS) == READY
    young = dataclasses.replace(blocked, updated_at=NOW - BLOCKED_AFTER_SECONDS + 1)
    assert (
        why_rerun(young, now=NOW, prerequisite=_lookup(ACCOUNT), settings=SETTINGS) is None
    )  # a release may be in flight
    just_synced = dataclasses.replace(ACCOUNT, updated_at=NOW - 5)
    old = dataclasses.replace(blocked, updated_at=NOW - 10 * BLOCKED_AFTER_SECONDS)
    assert (
        why_rerun(old, now=NOW, prerequisite=_lookup(just_synced), settings=SETTINGS) is None
    )  # its release is on its way


@pytest.mark.parametrize(
    "account",
    [
        None,  # its event has not arrived
        dataclasses.replace(ACCOUNT, status="syncing", qbo_id=None),
        dataclasses.replace(ACCOUNT, status="skipped", skip_reason="no_activity: ..."),  # linked but skipped
    ],
)
def test_a_blocked_record_still_waiting_on_a_prerequisite_is_left(account: SyncRecord | None) -> None:
    blocked = _invoice("blocked", age=2 * BLOCKED_AFTER_SECONDS, waiting_on=WAITS)
    assert why_rerun(blocked, now=NOW, prerequisite=_lookup(account), settings=SETTINGS) is None


def test_the_thresholds_are_the_configured_ones() -> None:
    """SWEEP_BLOCKED_AFTER_SECONDS / SWEEP_RETRY_AFTER_SECONDS (qbsync.settings) decide, not constants."""
    quick = SweepSettings.from_env(
        {"SWEEP_BLOCKED_AFTER_SECONDS": "300", "SWEEP_RETRY_AFTER_SECONDS": "4000"}
    )
    account = dataclasses.replace(ACCOUNT, updated_at=NOW - 300)
    blocked = _invoice("blocked", age=300, waiting_on=WAITS)
    assert why_rerun(blocked, now=NOW, prerequisite=_lookup(account), settings=quick) == READY
    assert why_rerun(blocked, now=NOW, prerequisite=_lookup(account), settings=SETTINGS) is None
    left = _invoice("not_synced", age=4000)
    assert why_rerun(left, now=NOW, prerequisite=_lookup(), settings=quick) == STALE
    assert why_rerun(left, now=NOW, prerequisite=_lookup(), settings=SETTINGS) is None


def test_skipped_records_run_again_only_when_skipped_behind_a_prerequisite() -> None:
    behind = _invoice(
        "skipped", age=BLOCKED_AFTER_SECONDS, waiting_on=WAITS, skip_reason=f"{WAITING_ON}: waiting on ..."
    )
    assert why_rerun(behind, now=NOW, prerequisite=_lookup(ACCOUNT), settings=SETTINGS) == READY
    draft = _invoice("skipped", age=10 * RETRY_AFTER_SECONDS, skip_reason="draft invoices are not synced")
    assert why_rerun(draft, now=NOW, prerequisite=_lookup(ACCOUNT), settings=SETTINGS) is None


def test_a_transient_failure_runs_again_only_after_its_retries_ran_out() -> None:
    left = _invoice("not_synced", age=RETRY_AFTER_SECONDS)
    assert why_rerun(left, now=NOW, prerequisite=_lookup(), settings=SETTINGS) == STALE
    retrying = dataclasses.replace(left, updated_at=NOW - RETRY_AFTER_SECONDS + 1)
    assert why_rerun(retrying, now=NOW, prerequisite=_lookup(), settings=SETTINGS) is None
    dead_lease = _invoice("syncing", age=RETRY_AFTER_SECONDS, owner="w", lease_until=NOW - 1)
    assert why_rerun(dead_lease, now=NOW, prerequisite=_lookup(), settings=SETTINGS) == STALE
    live_lease = dataclasses.replace(dead_lease, lease_until=NOW + 60)
    assert why_rerun(live_lease, now=NOW, prerequisite=_lookup(), settings=SETTINGS) is None


@pytest.mark.parametrize(
    "record",
    [
        _invoice("not_synced", age=10 * RETRY_AFTER_SECONDS, epoch=1),  # unsynced by an admin
        _invoice("not_synced", age=10 * RETRY_AFTER_SECONDS, last_event_version=None),  # nothing to run
        _invoice("failed", age=10 * RETRY_AFTER_SECONDS),  # a DataError: the firm fixes it
        _invoice("synced", age=10 * RETRY_AFTER_SECONDS, qbo_id="9"),
        _invoice("blocked", age=10 * RETRY_AFTER_SECONDS),  # blocked on nothing it names
        dataclasses.replace(  # no platform event of its own: it runs with its payment
            _invoice("not_synced", age=10 * RETRY_AFTER_SECONDS), entity_type="credit_application"
        ),
    ],
)
def test_records_where_the_firm_or_the_sync_put_them_are_left(record: SyncRecord) -> None:
    assert why_rerun(record, now=NOW, prerequisite=_lookup(ACCOUNT), settings=SETTINGS) is None


class _Records:
    """A realm's gsi2 partitions in pages of PAGE_SIZE: every record of ``per_status`` is a stale record."""

    def __init__(self, per_status: Mapping[str, int]) -> None:
        self.pages: list[tuple[str, Any]] = []
        self._rows = {
            s: [
                _invoice(s, age=RETRY_AFTER_SECONDS, lease_until=NOW - 1)
                if s == "syncing"
                else _invoice(s, age=RETRY_AFTER_SECONDS)
                for _ in range(n)
            ]
            for s, n in per_status.items()
        }

    def list_by_status(self, firm_id: str, realm_id: str, status: str, **kw: Any) -> RecordPage:
        start = int((kw.get("start_key") or {}).get("at", 0))
        self.pages.append((status, kw.get("start_key")))
        rows = self._rows.get(status, [])[start : start + kw["limit"]]
        more = start + kw["limit"] < len(self._rows.get(status, []))
        return RecordPage(rows, {"at": start + kw["limit"]} if more else None)

    def get(self, key: RecordKey, *, consistent: bool = True) -> SyncRecord | None:
        return None


class _Sender:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_many(self, messages: Iterable[Any]) -> None:
        self.sent.extend(json.loads(m.body_text()) for m in messages)


def test_a_sweep_sends_one_scheduled_sync_command_per_record_to_run_again() -> None:
    records, sender = _Records({"not_synced": 3}), _Sender()
    report = RecordSweep(records=records, outbound=sender, clock=lambda: NOW, settings=SETTINGS).run(
        "f1", "r1", "evt-1"
    )
    assert report.sent == {STALE: 3} and report.cursor is None
    assert [s["kind"] for s in sender.sent] == ["qbsync.sync_record.v1"] * 3
    assert {(s["reason"], s["request_id"], s["entity_type"]) for s in sender.sent} == {
        ("scheduled", "evt-1", "invoice")
    }
    assert [p[0] for p in records.pages] == list(SWEPT_STATUSES)  # every partition, once


def test_a_large_backlog_is_swept_in_bounded_runs_that_continue_where_the_last_stopped() -> None:
    total = PAGE_SIZE * PAGES_PER_RUN + 150
    records, sender = _Records({"blocked": 0, "not_synced": total}), _Sender()
    sweep = RecordSweep(records=records, outbound=sender, clock=lambda: NOW, settings=SETTINGS)

    first = sweep.run("f1", "r1", "evt-1")
    assert first.pages == PAGES_PER_RUN and first.cursor is not None
    assert first.cursor.status == "not_synced"
    second = sweep.run("f1", "r1", "evt-1", start=first.cursor)

    assert second.cursor is None
    assert first.sent[STALE] + second.sent[STALE] == total == len(sender.sent)
    assert second.pages <= PAGES_PER_RUN


def test_a_continued_sweep_starts_in_the_cursor_partition() -> None:
    records = _Records({"syncing": 2})
    report = RecordSweep(records=records, outbound=_Sender(), clock=lambda: NOW, settings=SETTINGS).run(
        "f1", "r1", "evt-1", start=SweepCursor("syncing")
    )
    assert [p[0] for p in records.pages] == ["syncing"] and report.sent == {STALE: 2}
