"""Which changes the drift detection judges (qbsync.inbound.drift.SyncedRecordChanges), with fakes of the
repositories: a record being written, an older change, a record failed for another reason, no difference."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from qbsync.errors import LeaseHeld
from qbsync.inbound.changes import ChangedObject
from qbsync.inbound.drift import EDITED, SyncedRecordChanges
from qbsync.repositories.records import RecordError, SyncRecord

NOW = 1_800_000_000.0
DATA = {"name": "Payroll", "rate": "95.00"}
SERVICE = SyncRecord(
    "f_1",
    "9130",
    "service",
    "svc-1",
    status="synced",
    qbo_entity="Item",
    qbo_id="7",
    sync_token="2",
    revision=4,
)


class Fakes:
    def __init__(self) -> None:
        self.marked: list[dict[str, Any]] = []
        self.settled: list[dict[str, Any]] = []
        self.recorded: list[Any] = []
        self.published: list[Any] = []

    def changes(self) -> SyncedRecordChanges:
        records = SimpleNamespace(
            last_event=lambda key: {"detail": {"data": DATA}}, get=lambda key, consistent=True: None
        )
        admin = SimpleNamespace(
            mark_changed_in_qbo=lambda key, **kw: self.marked.append(kw) or SERVICE,
            settle_in_qbo=lambda key, **kw: self.settled.append(kw) or SERVICE,
        )
        entry = SimpleNamespace(
            error_id="e-1", explanation="x", is_new=True, attempts=1, first_seen=NOW, last_seen=NOW
        )
        errorlog = SimpleNamespace(
            record=lambda **kw: self.recorded.append(kw) or entry,
            resolve=lambda **kw: None,
            current=lambda *a: entry,
        )
        publisher = SimpleNamespace(publish=lambda events: self.published.extend(events))
        return SyncedRecordChanges(
            records=records,  # type: ignore[arg-type]
            admin=admin,  # type: ignore[arg-type]
            errorlog=errorlog,  # type: ignore[arg-type]
            publisher=publisher,
            clock=lambda: NOW,
        )


def _item(token: str, rate: float) -> ChangedObject:
    return ChangedObject(
        "Item", "7", "Update", {"Id": "7", "SyncToken": token, "Name": "Payroll", "UnitPrice": rate}
    )


def test_an_edit_marks_the_record_and_records_one_error() -> None:
    fakes = Fakes()
    fakes.changes().handle(SERVICE, _item("3", 99))
    assert fakes.marked == [
        {
            "error": fakes.marked[0]["error"],
            "sync_token": "3",
            "deleted": False,
            "seen_revision": 4,
            "now": NOW,
        }
    ]
    assert fakes.marked[0]["error"].code == EDITED
    assert len(fakes.recorded) == 1
    assert [type(e).__name__ for e in fakes.published] == ["SyncStatusChanged", "SyncErrorRaised"]


def test_a_record_being_written_is_retried_later() -> None:
    busy = replace(SERVICE, status="syncing", owner="w-1", lease_until=NOW + 60)
    with pytest.raises(LeaseHeld):
        Fakes().changes().handle(busy, _item("3", 99))


@pytest.mark.parametrize(
    "record",
    [
        replace(SERVICE, sync_token="5"),  # the change is older than what qbsync knows
        replace(SERVICE, status="failed", error=RecordError("service_rate_negative", "services", "...")),
        replace(SERVICE, status="skipped"),
    ],
)
def test_changes_left_to_the_records_next_sync(record: SyncRecord) -> None:
    fakes = Fakes()
    fakes.changes().handle(record, _item("3", 99))
    assert fakes.marked == fakes.settled == fakes.recorded == fakes.published == []


def test_no_difference_only_adopts_the_sync_token_and_raises_nothing() -> None:
    fakes = Fakes()
    fakes.changes().handle(SERVICE, _item("3", 95))
    assert fakes.settled == [{"sync_token": "3", "seen_revision": 4, "now": NOW}]
    assert fakes.marked == fakes.recorded == fakes.published == []


def test_a_deletion_removes_the_link() -> None:
    fakes = Fakes()
    fakes.changes().handle(SERVICE, ChangedObject("Item", "7", "Delete", None))
    assert fakes.marked[0]["deleted"] is True and fakes.marked[0]["error"].code == "deleted_in_quickbooks"
