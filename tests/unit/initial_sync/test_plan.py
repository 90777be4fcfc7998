"""The dry-run plan's decisions (qbsync.initial_sync.plan), one record at a time, with the snapshot, the
bucket, the records and QuickBooks' names as fakes at their ports: what is created, linked, skipped or
blocked and why, the money per action, and the chunk files the executor will run."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from qbsync import vocab
from qbsync.initial_sync.plan import ALREADY_SYNCED, CHUNK_SIZE, PlanLine, Planner
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.platform_events import parse_platform_event
from qbsync.models.preflight import Finding, PreflightResult
from qbsync.models.record_key import RecordKey
from qbsync.repositories.records import SyncRecord

EVENTS = Path(__file__).resolve().parents[3] / "events" / "platform"
FIRM, REALM, RUN = "firm-1", "9130351234567890", "is-0123456789abcdef0123"


def _event(sample: str, **data: Any) -> Any:
    envelope = json.loads((EVENTS / f"{sample}.json").read_text())
    envelope["detail"]["firm_id"] = FIRM
    envelope["detail"]["data"].update(data)
    return parse_platform_event(envelope)


class FakeSnapshots:
    def __init__(self, lines: dict[str, list[Any]]) -> None:
        self._lines = lines

    def manifest(self, firm_id: str, run_id: str, manifest_key: str) -> Any:
        return SimpleNamespace(snapshot_id="snap-1")

    def lines(self, manifest: Any, record_type: str):
        yield from self._lines.get(record_type, [])


class FakeObjects(dict):
    def put_json(self, key: str, obj: Any) -> None:
        self[key] = copy.deepcopy(obj)


class FakeRecords:
    def __init__(self, records: dict[RecordKey, SyncRecord] | None = None) -> None:
        self.records = records or {}
        self.calls = 0

    def get_many(self, keys):
        self.calls += 1
        return {k: self.records.get(k) for k in keys}


class FakeQbo:
    def __init__(self, **objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def query_all(self, statement: str):
        entity = statement.split()[-1]
        yield from self.objects.get(entity, [])


def _line(event: Any, record_type: str, n: int = 1) -> Any:
    return SimpleNamespace(
        record_type=record_type,
        line_no=n,
        version=event.version,
        event=event,
        problem=None,
        platform_id=event.record_id,
    )


def _preflight(closed: date | None = None, *codes: str) -> PreflightResult:
    findings = tuple(Finding(code, "warning", "m", "f", ("service",)) for code in codes)
    return PreflightResult(REALM, datetime.now(UTC), "Co", findings, closed, False, "USD")


def _plan(lines: dict[str, list[Any]], *, records=None, qbo=None, settings=None, closed=None, preflight=None):
    objects = FakeObjects()
    planner = Planner(snapshots=FakeSnapshots(lines), objects=objects, records=records or FakeRecords())
    result = planner.plan(
        firm_id=FIRM,
        realm_id=REALM,
        run_id=RUN,
        manifest_key="m",
        settings=settings or FirmSyncSettings(),
        qbo=qbo or FakeQbo(),
        preflight=preflight or _preflight(closed),
    )
    planned = {
        line["platform_id"]: PlanLine.from_dict(line)
        for key, body in objects.items()
        if isinstance(body, dict)
        for line in body["lines"]
    }
    return result, planned, objects


def test_accounts_are_linked_by_name_created_or_skipped_without_activity() -> None:
    named = _event("client_account_created", id="acct-1", name="Lopez  Tax services")
    lonely = _event("client_account_created", id="acct-2", name="Nobody Inc")
    invoice = _event("invoice_sent", account_id="acct-1")
    qbo = FakeQbo(Customer=[{"Id": "71", "DisplayName": "lopez tax Services"}])
    result, planned, _ = _plan(
        {
            "client_account": [_line(named, "client_account"), _line(lonely, "client_account", 2)],
            "invoice": [_line(invoice, "invoice")],
        },
        qbo=qbo,
    )
    assert (planned["acct-1"].action, planned["acct-1"].target_qbo_id) == ("link", "71")
    assert planned["acct-2"].action == "skip" and planned["acct-2"].reason.startswith("no_activity")
    assert planned[invoice.record_id].action == "create"
    assert result.planned["customers"] == 2 and result.planned["invoices"] == 1


def test_services_are_linked_to_the_sales_item_with_its_note_when_the_preflight_says_they_bill_on_it() -> (
    None
):
    named = _event("service_created", id="svc-1", name="Bookkeeping")
    other = _event("service_created", id="svc-2", name="Payroll")
    sales = {"Id": "1", "Name": "Sales", "Type": "Service", "Active": True}
    qbo = FakeQbo(
        Item=[
            {"Id": "9", "Name": "Inactive Sales", "Type": "Service"},
            sales,
            {"Id": "30", "Name": "Bookkeeping"},
        ]
    )
    lines = {"service": [_line(named, "service"), _line(other, "service", 2)]}
    _, planned, _ = _plan(lines, qbo=qbo, preflight=_preflight(None, "services_use_sales_item"))
    for line in planned.values():
        assert (line.action, line.target_qbo_id, line.note) == ("link", "1", vocab.SALES_ITEM_NOTE)
        assert line.reason.startswith("services_use_sales_item:")
        assert PlanLine.from_dict(line.as_dict()).note == vocab.SALES_ITEM_NOTE
    # an income account chosen after the pre-flight: each service is its own item again, as the outbound sync
    chosen = FirmSyncSettings(service_income_account_id="79")
    _, planned, _ = _plan(
        lines, qbo=qbo, settings=chosen, preflight=_preflight(None, "services_use_sales_item")
    )
    assert (planned["svc-2"].action, planned["svc-2"].note) == ("create", None)
    # without the finding: matched by name or created, as before, and no note
    _, planned, _ = _plan(lines, qbo=qbo)
    assert (planned["svc-1"].action, planned["svc-1"].target_qbo_id, planned["svc-1"].note) == (
        "link",
        "30",
        None,
    )
    assert (planned["svc-2"].action, planned["svc-2"].note) == ("create", None)


def test_a_customer_carrying_another_records_marker_is_not_linked() -> None:
    account = _event("client_account_created", id="acct-1", name="Lopez")
    qbo = FakeQbo(Customer=[{"Id": "71", "DisplayName": "Lopez", "Notes": "qbsync:ClientAccount:acct-9"}])
    settings = FirmSyncSettings(sync_accounts="all")
    _, planned, _ = _plan({"client_account": [_line(account, "client_account")]}, qbo=qbo, settings=settings)
    assert planned["acct-1"].action == "create"


def test_a_vendor_of_the_same_name_blocks_the_account() -> None:
    account = _event("client_account_created", id="acct-1", name="Marsh & Reed")
    qbo = FakeQbo(Vendor=[{"Id": "5", "DisplayName": "Marsh & Reed"}])
    settings = FirmSyncSettings(sync_accounts="all")
    result, planned, _ = _plan(
        {"client_account": [_line(account, "client_account")]}, qbo=qbo, settings=settings
    )
    assert planned["acct-1"].action == "block" and planned["acct-1"].reason.startswith("duplicate_name")
    [finding] = result.summary["findings"]
    assert (finding["code"], finding["count"], finding["examples"]) == ("duplicate_name", 1, ["acct-1"])


def test_already_synced_at_this_version_is_skipped_and_carries_no_event() -> None:
    service = _event("service_created")
    key = RecordKey(FIRM, REALM, "service", service.record_id)
    synced = SyncRecord.from_item(
        {
            **key.item_key(),
            "firm_id": FIRM,
            "realm_id": REALM,
            "entity_type": "service",
            "platform_id": service.record_id,
            "status": "synced",
            "platform_version": service.version,
            "qbo_entity": "Item",
            "qbo_id": "21",
            "revision": 1,
        }
    )
    _, planned, _ = _plan({"service": [_line(service, "service")]}, records=FakeRecords({key: synced}))
    line = planned[service.record_id]
    assert (line.action, line.reason, line.target_qbo_id, line.event) == ("skip", ALREADY_SYNCED, "21", None)


def test_invoices_skip_drafts_and_old_ones_and_block_closed_books_with_money_per_action() -> None:
    sent = _event("invoice_sent", id="inv-1")
    draft = _event("invoice_created", id="inv-2", status="draft")
    old = _event("invoice_sent", id="inv-3", issue_date="2024-01-05")
    settings = FirmSyncSettings(sync_accounts="all", sync_start_date=date(2025, 1, 1))
    closed_on = date.fromisoformat(sent.data.issue_date.isoformat())
    lines = [_line(e, "invoice", i) for i, e in enumerate((sent, draft, old))]
    result, planned, _ = _plan({"invoice": lines}, settings=settings, closed=closed_on)
    assert planned["inv-1"].action == "block" and planned["inv-1"].reason.startswith("books_closed")
    assert planned["inv-2"].action == "skip" and "draft" in planned["inv-2"].reason
    assert planned["inv-3"].action == "skip" and "before the sync start date" in planned["inv-3"].reason
    [totals] = [t for t in result.summary["totals"] if t["record_type"] == "invoice"]
    assert totals["block"] == 1 and totals["skip"] == 2
    assert totals["block_amount"] == f"{sent.data.total:.2f}"
    assert totals["skip_amount"] == f"{draft.data.total + old.data.total:.2f}"


def test_a_line_that_did_not_parse_is_blocked_naming_the_problem() -> None:
    bad = SimpleNamespace(
        record_type="invoice",
        line_no=1,
        version=3,
        event=None,
        problem="data.total: not money",
        platform_id="inv-9",
    )
    _, planned, _ = _plan({"invoice": [bad]})
    assert planned["inv-9"].action == "block"
    assert planned["inv-9"].reason == "invalid_in_snapshot: data.total: not money"


def _bad(record_type: str, n: int, platform_id: str | None, problem: str) -> Any:
    return SimpleNamespace(
        record_type=record_type, line_no=n, version=2, event=None, problem=problem, platform_id=platform_id
    )


def test_a_second_line_of_a_record_is_a_duplicate_finding_not_an_invalid_record() -> None:
    good = _event("service_created", id="svc-1", name="Audit")
    again = _bad("service", 2, "svc-1", "line 2: data.id: the same record as line 1 (one line per record)")
    other = _bad("service", 3, "svc-2", "line 3: data.rate: not money")
    result, _, objects = _plan({"service": [_line(good, "service"), again, other]})
    [chunk] = [body for key, body in objects.items() if isinstance(body, dict)]
    reasons = {
        (ln["platform_id"], ln["reason"].split(":")[0] if ln["reason"] else None) for ln in chunk["lines"]
    }
    assert reasons == {("svc-1", None), ("svc-1", "duplicate_in_snapshot"), ("svc-2", "invalid_in_snapshot")}
    findings = {f["code"]: f for f in result.summary["findings"]}
    assert findings["duplicate_in_snapshot"]["examples"] == ["svc-1"]
    assert findings["invalid_in_snapshot"]["examples"] == ["svc-2"] and findings["invalid_in_snapshot"]["fix"]


def test_lines_without_a_readable_id_are_a_finding_of_their_own() -> None:
    lines = [_bad("invoice", 1, None, "line 1: not JSON (UTF-8)"), _bad("invoice", 4, None, "line 4: empty")]
    result, _, _ = _plan({"invoice": lines})
    [finding] = result.summary["findings"]
    assert finding["code"] == "invalid_in_snapshot_no_id"
    assert (finding["count"], finding["examples"]) == (2, [])
    assert finding["message"].startswith("invalid_in_snapshot: line 1: not JSON")
    assert "export" in finding["fix"]


def test_chunks_hold_at_most_chunk_size_lines_and_the_index_lists_them() -> None:
    services = [
        _line(_event("service_created", id=f"svc-{i}", name=f"S {i}"), "service", i)
        for i in range(CHUNK_SIZE + 5)
    ]
    records = FakeRecords()
    result, planned, objects = _plan({"service": services}, records=records)
    index = objects[result.keys["services"]]
    assert [c["count"] for c in index] == [CHUNK_SIZE, 5]
    assert [objects[c["key"]]["index"] for c in index] == [0, 1]
    assert len(planned) == CHUNK_SIZE + 5 and records.calls == 2  # one batch read per chunk
    assert all(
        objects[result.keys[p]] == [] for p in ("customers", "invoices", "payments", "refunds", "fees")
    )


@pytest.mark.parametrize("name", ["payment_created", "refund_created", "processing_fee_created"])
def test_money_records_are_planned_with_their_amount(name: str) -> None:
    event = _event(name)
    record_type = {"payment_created": "payment", "refund_created": "refund", "processing_fee_created": "fee"}[
        name
    ]
    _, planned, _ = _plan({record_type: [_line(event, record_type)]})
    line = planned[event.record_id]
    assert line.amount == f"{event.data.amount:.2f}" and line.event is not None
