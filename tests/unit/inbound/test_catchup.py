"""The CDC catch-up's paging and watermark rules (qbsync.inbound.catchup), against a QuickBooks fake that
answers CDC as QBO.md §2.10 describes (sorted by LastUpdatedTime, deletions after the current objects,
at most 1,000 objects a response, 4001 for a changedSince older than 30 days)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from qbsync.errors import LeaseHeld, QboValidationError
from qbsync.inbound.catchup import (
    CDC_ENTITIES,
    MAX_DELAY_SECONDS,
    OVERLAP_SECONDS,
    SECONDS_PER_FIRM,
    CatchUpRequests,
    CdcCatchUp,
)
from qbsync.qbo.client import CdcResult
from qbsync.repositories.connections import CONNECTED
from qbsync.repositories.watermarks import Watermark

T0 = 1_800_000_000.0
WINDOW = 30 * 86400


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


@dataclass
class FakeQbo:
    """One company's objects: entity -> id -> (last updated epoch, deleted?)."""

    now: float
    realm_id: str = "9130"
    objects: dict[str, dict[str, tuple[float, bool]]] = field(default_factory=dict)
    calls: list[tuple[str, float]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    def change(self, entity: str, qbo_id: str, at: float, *, deleted: bool = False) -> None:
        self.objects.setdefault(entity, {})[qbo_id] = (at, deleted)

    def cdc(self, entities: list[str], since: datetime) -> CdcResult:
        (entity,) = entities
        self.calls.append((entity, since.timestamp()))
        if since.timestamp() < self.now - WINDOW:
            raise QboValidationError("changedSince too old", qbo_code="4001")
        rows = sorted(
            ((t, i, d) for i, (t, d) in self.objects.get(entity, {}).items() if t >= int(since.timestamp())),
            key=lambda r: (r[2], r[0], int(r[1])),
        )[:1000]
        live = [
            {"Id": i, "SyncToken": "1", "MetaData": {"LastUpdatedTime": _iso(t)}} for t, i, d in rows if not d
        ]
        gone = [
            {"Id": i, "status": "Deleted", "MetaData": {"LastUpdatedTime": _iso(t)}} for t, i, d in rows if d
        ]
        return CdcResult({entity: live}, {entity: gone}, datetime.fromtimestamp(self.now, UTC), len(rows))

    def query_timed(self, statement: str) -> tuple[list[dict[str, Any]], datetime]:
        self.queries.append(statement)
        entity = statement.split(" from ")[1].split(" ")[0]
        asked = (
            [part.strip(" '") for part in statement.split("(")[1].split(")")[0].split(",")]
            if "(" in statement
            else []
        )
        rows = [
            {"Id": i, "SyncToken": "1"}
            for i in asked
            if i in self.objects.get(entity, {}) and not self.objects[entity][i][1]
        ]
        return rows, datetime.fromtimestamp(self.now, UTC)


class FakeWatermarks:
    def __init__(self, cursors: dict[str, float] | None = None) -> None:
        self.cursors = dict(cursors or {})
        self.advances: list[tuple[str, float]] = []
        self.full: list[float] = []

    def get(self, firm_id: str, realm_id: str) -> Watermark:
        return Watermark(cursors=dict(self.cursors))

    def advance(self, firm_id: str, realm_id: str, entity: str, at: float, *, now: float) -> bool:
        self.advances.append((entity, at))
        if entity in self.cursors and self.cursors[entity] >= at:
            return False
        self.cursors[entity] = at
        return True

    def note_full(self, firm_id: str, realm_id: str, *, at: float) -> None:
        self.full.append(at)


class FakeProcessor:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.fail_on_call = fail_on_call

    def process(self, firm_id: str, realm_id: str, objects: list[Any]) -> None:
        if self.fail_on_call is not None and len(self.batches) + 1 == self.fail_on_call:
            raise LeaseHeld("a record is being written")
        self.batches.append(list(objects))

    def seen(self, entity: str) -> list[str]:
        return [o.qbo_id for batch in self.batches for o in batch if o.entity == entity]


def _catch_up(
    qbo: FakeQbo, watermarks: FakeWatermarks, processor: FakeProcessor, linked: list[Any] = ()
) -> CdcCatchUp:
    connection = SimpleNamespace(status=CONNECTED, realm_id=qbo.realm_id)
    return CdcCatchUp(
        connections=SimpleNamespace(get=lambda firm_id: connection),
        realm_clients=SimpleNamespace(qbo_for=lambda firm_id, realm_id: qbo),  # type: ignore[arg-type]
        watermarks=watermarks,  # type: ignore[arg-type]
        linked=SimpleNamespace(linked=lambda firm_id, realm_id: iter(linked)),  # type: ignore[arg-type]
        processor=processor,
        clock=lambda: T0,
    )


def _all_fresh(at: float) -> dict[str, float]:
    return {e: at for e in CDC_ENTITIES}


def test_changes_since_the_watermark_are_processed_and_the_watermark_moves_to_the_server_time() -> None:
    qbo = FakeQbo(now=T0)
    qbo.change("Invoice", "45", T0 - 500)
    qbo.change("Invoice", "46", T0 - 5000)  # before the watermark (minus the overlap): not read again
    qbo.change("Invoice", "47", T0 - 300, deleted=True)
    marks, processor = FakeWatermarks(_all_fresh(T0 - 1000)), FakeProcessor()
    report = _catch_up(qbo, marks, processor).run("f_1")
    assert report.status == "done" and report.full == []
    assert processor.seen("Invoice") == ["45", "47"]
    deleted = [o for b in processor.batches for o in b if o.qbo_id == "47"]
    assert deleted[0].body is None  # a deletion
    assert marks.cursors == _all_fresh(T0)
    assert ("Invoice", T0 - 1000 - OVERLAP_SECONDS) in qbo.calls


def test_more_than_1000_changes_page_by_last_updated_time_and_none_is_skipped() -> None:
    qbo = FakeQbo(now=T0)
    for i in range(2500):
        qbo.change("Invoice", str(1000 + i), T0 - 3000 + i // 3)  # three changes per second: ties at the cut
    marks, processor = FakeWatermarks(_all_fresh(T0 - 4000)), FakeProcessor()
    report = _catch_up(qbo, marks, processor).run("f_1")
    seen = processor.seen("Invoice")
    assert set(seen) == {str(1000 + i) for i in range(2500)}  # every change, some twice (harmless)
    assert len([c for c in qbo.calls if c[0] == "Invoice"]) == report.pages - (len(CDC_ENTITIES) - 1) >= 3
    invoice_marks = [at for e, at in marks.advances if e == "Invoice"]
    assert (
        invoice_marks == sorted(invoice_marks) and invoice_marks[-1] == T0
    )  # forward only, then server time


def test_a_crash_mid_page_leaves_the_watermark_where_it_was() -> None:
    qbo = FakeQbo(now=T0)
    for i in range(1500):
        qbo.change("Customer", str(i + 1), T0 - 2000 + i)
    marks, processor = FakeWatermarks(_all_fresh(T0 - 3000)), FakeProcessor(fail_on_call=2)
    with pytest.raises(LeaseHeld):
        _catch_up(qbo, marks, processor).run("f_1")
    # the first page (1,000) was processed: its cursor moved to its last object; the second did not
    first_page_end = T0 - 2000 + 999
    assert marks.cursors["Customer"] == first_page_end
    # the redelivery resumes from there and processes the rest
    again = FakeProcessor()
    _catch_up(qbo, marks, again).run("f_1")
    assert set(again.seen("Customer")) >= {str(i + 1) for i in range(999, 1500)}
    assert marks.cursors["Customer"] == T0


def test_a_watermark_older_than_30_days_means_a_full_comparison_in_batches() -> None:
    qbo = FakeQbo(now=T0)
    linked = [SimpleNamespace(qbo_entity="Invoice", qbo_id=str(i)) for i in range(1, 66)]
    for i in range(1, 65):
        qbo.change("Invoice", str(i), T0 - 40 * 86400)  # changed long ago; Invoice 65 is gone
    marks, processor = FakeWatermarks(_all_fresh(T0 - 31 * 86400)), FakeProcessor()
    report = _catch_up(qbo, marks, processor, linked).run("f_1")
    assert "Invoice" in report.full
    invoice_queries = [q for q in qbo.queries if "from Invoice where Id in" in q]
    assert len(invoice_queries) == 3  # 65 records, 30 ids a query: never one read per record
    seen = {o.qbo_id: o for b in processor.batches for o in b if o.entity == "Invoice"}
    assert set(seen) == {str(i) for i in range(1, 66)}
    assert seen["65"].body is None  # not returned: deleted
    assert marks.cursors["Invoice"] == T0 and marks.full


def test_no_watermark_yet_compares_in_full_then_follows_cdc() -> None:
    qbo = FakeQbo(now=T0)
    marks, processor = FakeWatermarks(), FakeProcessor()
    report = _catch_up(qbo, marks, processor).run("f_1")
    assert report.full == list(CDC_ENTITIES)
    assert qbo.calls == []  # nothing to page yet
    assert marks.cursors == _all_fresh(T0)
    qbo.now = T0 + 100
    qbo.change("Payment", "9", T0 + 50)
    report = _catch_up(qbo, marks, FakeProcessor()).run("f_1")
    assert report.full == [] and report.objects.get("Payment") == 1


def test_a_page_cut_before_its_deletions_is_followed_by_a_full_comparison() -> None:
    qbo = FakeQbo(now=T0)
    for i in range(1200):
        qbo.change("Invoice", str(i + 1), T0 - 2000 + i)
    qbo.change("Invoice", "5000", T0 - 1900, deleted=True)  # before the first page's cut: CDC would miss it
    linked = [SimpleNamespace(qbo_entity="Invoice", qbo_id="5000")]
    marks, processor = FakeWatermarks(_all_fresh(T0 - 2500)), FakeProcessor()
    report = _catch_up(qbo, marks, processor, linked).run("f_1")
    assert "Invoice" in report.full
    deleted = [o for b in processor.batches for o in b if o.qbo_id == "5000"]
    assert deleted and deleted[0].body is None


def test_not_connected_reads_nothing() -> None:
    qbo = FakeQbo(now=T0)
    catch_up = CdcCatchUp(
        connections=SimpleNamespace(get=lambda firm_id: None),
        realm_clients=SimpleNamespace(qbo_for=lambda *a: qbo),  # type: ignore[arg-type]
        watermarks=FakeWatermarks(),  # type: ignore[arg-type]
        linked=SimpleNamespace(linked=lambda *a: iter(())),  # type: ignore[arg-type]
        processor=FakeProcessor(),
        clock=lambda: T0,
    )
    assert catch_up.run("f_1").status == "not_connected" and qbo.calls == []


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_many(self, messages: Any) -> None:
        self.sent.extend(messages)


def test_the_schedule_queues_one_request_per_connected_firm_spread_out() -> None:
    firms = [SimpleNamespace(firm_id=f"f_{i}") for i in range(5)] + [SimpleNamespace(firm_id="f_0")]
    sender = FakeSender()
    requests = CatchUpRequests(
        connections=SimpleNamespace(by_status=lambda status: iter(firms)), sender=sender
    )
    assert requests.schedule_all("sched-1") == 5
    delays = [m.delay_seconds for m in sender.sent]
    assert delays == sorted(delays) and delays[0] == 0 and delays[-1] > 0
    assert {'"firm_id":"f_0"' in m.body for m in sender.sent} == {True, False}


def test_a_thousand_firms_do_not_start_in_the_same_second() -> None:
    """The resync's pacing (issue 15 item 1): at most 1 / SECONDS_PER_FIRM firms start in any one second."""
    firms = [SimpleNamespace(firm_id=f"f_{i:04d}") for i in range(1000)]
    sender = FakeSender()
    requests = CatchUpRequests(
        connections=SimpleNamespace(by_status=lambda status: iter(firms)), sender=sender
    )
    assert requests.schedule_all("sched-1") == 1000
    per_second: dict[int, int] = {}
    for message in sender.sent:
        per_second[message.delay_seconds] = per_second.get(message.delay_seconds, 0) + 1
    assert max(per_second.values()) <= math.ceil(1 / SECONDS_PER_FIRM)
    assert max(per_second) <= MAX_DELAY_SECONDS
