"""The run recorder (qbsync.outbound.timeline): redaction of payloads, the item cap, one write per run
(deferred to the batch when one is open)."""

from __future__ import annotations

import json
from typing import Any

from qbsync.models.record_key import RecordKey
from qbsync.outbound.batch import batch_scope
from qbsync.outbound.timeline import REDACTED, RunTrail, TimelineRecorder, summarize
from qbsync.repositories.timeline import MAX_STEPS_BYTES, TIMELINE_TTL_SECONDS, RunItem

KEY = RecordKey("f_1", "9130351234567890", "client_account", "acct-1")

CUSTOMER = {
    "DisplayName": "Jane Q. Client",
    "GivenName": "Jane",
    "FamilyName": "Client",
    "CompanyName": "Client Family Trust",
    "PrimaryEmailAddr": {"Address": "jane@example.com"},
    "PrimaryPhone": {"FreeFormNumber": "+1 555 0100"},
    "BillAddr": {"Line1": "1 Elm Street", "City": "Springfield", "PostalCode": "99887"},
    "Notes": "qbsync:client_account:acct-1 prefers phone calls",
    "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
    "Taxable": False,
}
PERSONAL = ["Jane", "Client", "jane@example.com", "555", "Elm", "Springfield", "99887", "prefers"]


class Clock:
    def __init__(self, now: float = 1_795_449_900.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


class FakeTimeline:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[RunItem]]] = []

    def put(self, run: RunItem) -> None:
        self.calls.append(("put", [run]))

    def put_many(self, runs: list[RunItem]) -> None:
        self.calls.append(("put_many", list(runs)))


def test_summarize_keeps_structure_amounts_ids_dates_and_redacts_every_personal_value() -> None:
    invoice = {
        "CustomerRef": {"value": "58", "name": "Jane Q. Client"},
        "TxnDate": "2026-11-23",
        "DocNumber": "INV-7",
        "Line": [
            {"Amount": 605.0, "DetailType": "SalesItemLineDetail", "Description": "Tax advice for Jane"},
        ],
        "BillEmail": {"Address": "jane@example.com"},
        "PrivateNote": "qbsync:invoice:inv-1",
    }
    out = summarize(invoice)
    assert out["CustomerRef"] == {"value": "58", "name": REDACTED}
    assert out["TxnDate"] == "2026-11-23" and out["DocNumber"] == "INV-7"
    assert out["Line"] == [{"Amount": 605.0, "DetailType": "SalesItemLineDetail", "Description": REDACTED}]
    assert out["BillEmail"] == {"Address": REDACTED} and out["PrivateNote"] == REDACTED
    text = json.dumps(summarize(CUSTOMER))
    for value in PERSONAL:
        assert value not in text
    assert summarize(CUSTOMER)["CurrencyRef"]["value"] == "USD"
    assert summarize(CUSTOMER)["Taxable"] is False


def test_a_trail_records_every_step_in_order_and_its_item_lives_thirty_days() -> None:
    clock = Clock()
    trail = RunTrail(key=KEY, started_at=clock(), clock=clock)
    trail.event(event_id="evt-1", version=3, occurred_at="2026-11-23T16:00:00+00:00", detail_type="X")
    trail.mapped("Customer", CUSTOMER)
    trail.request(qbo_entity="Customer", operation="create", request_id="rid-1", mode="single", body=CUSTOMER)
    assert trail.awaiting_response
    trail.response(ok=True, qbo_id="58", sync_token="0")
    trail.final("synced", reason="no_activity: Jane Q. Client has no invoices")

    item = trail.run_item().item()

    steps = json.loads(item["steps"])
    assert [s["step"] for s in steps] == ["event", "mapped", "request", "response", "final"]
    assert steps[2]["body_fields"] == sorted(CUSTOMER) and steps[2]["request_id"] == "rid-1"
    assert steps[3] == {**steps[3], "qbo_id": "58", "sync_token": "0", "ok": True}
    assert steps[4]["reason"] == "no_activity"  # the head only: the rest may quote the record
    assert item["sk"].startswith("TL#client_account#acct-1#2026-")
    assert item["ttl"] == int(item["finished_at"]) + TIMELINE_TTL_SECONDS
    for value in PERSONAL:
        assert value not in json.dumps(item)


def test_a_run_too_large_for_its_item_keeps_field_names_then_its_first_and_last_steps() -> None:
    clock = Clock()
    trail = RunTrail(key=KEY, started_at=clock(), clock=clock)
    trail.event(event_id="evt-1", version=1, occurred_at="2026-11-23", detail_type="X")
    big = {f"Field{i}Id": "x" * 90 for i in range(200)}
    trail.mapped("Customer", big)
    for i in range(60):
        trail.request(qbo_entity="Customer", operation="update", request_id=f"r{i}", mode="single", body=big)
    trail.final("retry", error_code="throttled")

    run = trail.run_item()

    assert len(json.dumps(run.steps).encode()) <= MAX_STEPS_BYTES
    assert run.steps[0]["step"] == "event" and run.steps[-1]["step"] == "final"
    assert run.item()["status"] == "retry"


def test_one_run_is_one_put_and_the_runs_of_a_batch_are_one_batch_write_at_its_end() -> None:
    clock = Clock()
    fake = FakeTimeline()
    recorder = TimelineRecorder(fake, clock)  # type: ignore[arg-type]

    def run(pid: str) -> Any:
        trail = recorder.start(KEY.sibling("client_account", pid))
        trail.final("synced")
        recorder.save(trail)

    run("a")
    assert [c[0] for c in fake.calls] == ["put"]
    with batch_scope():
        for pid in ("b", "c", "d"):
            run(pid)
        assert len(fake.calls) == 1  # nothing written while the batch runs
    assert fake.calls[1][0] == "put_many"
    assert [r.key.platform_id for r in fake.calls[1][1]] == ["b", "c", "d"]
