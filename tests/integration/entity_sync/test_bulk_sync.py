"""The initial sync's bulk path (qbsync.outbound.bulk, qbsync.qbo.batching) on moto + the simulator: a chunk
of a firm's existing records reaches QuickBooks through batch calls with the guarantees of single writes.

Counted where requests arrive (the simulator's request log by path, ``aws_requests`` at moto), never timed.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from qbsync import wiring
from qbsync.models.platform_events import PlatformEvent, parse_platform_event
from qbsync.models.record_key import RecordKey
from qbsync.outbound.job import Outcome
from qbsync.outbound.lookups import parse_marker
from qbsync.repositories.records import ClaimOptions

from local.qbo_sim.client import SimAccountant
from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, untaxed_invoice

Requests = Callable[[], Counter[tuple[str, str, str]]]


def _account(firm: str, n: int, *, version: int = 1, name: str | None = None) -> PlatformEvent:
    envelope = platform_event("client_account_created", firm, id=f"acct-b{n:03d}")
    envelope["detail"]["data"]["name"] = name or _name(n)
    envelope["detail"]["event_id"] = f"evt-acct-b{n:03d}-v{version}"
    envelope["detail"]["version"] = version
    return parse_platform_event(envelope)


def _name(n: int) -> str:
    return f"Bulk Client {n:03d}"


def _invoice(firm: str, n: int, account_id: str) -> PlatformEvent:
    envelope = untaxed_invoice(firm, number=f"B-{n:04d}")
    data = envelope["detail"]["data"]
    data["id"] = f"inv-b{n:03d}"
    data["account_id"] = account_id
    line = data["line_items"][0]
    data["line_items"] = [
        {
            **line,
            "service_id": None,
            "work_type_id": None,
            "quantity": "1",
            "rate": "50.00",
            "amount": "50.00",
        }
    ]
    data.update(subtotal="50.00", total="50.00", balance_due="50.00")
    envelope["detail"]["event_id"] = f"evt-inv-b{n:03d}"
    return parse_platform_event(envelope)


def _log(stack: SyncStack) -> list[dict[str, Any]]:
    return stack.sim.control.requests(stack.realm_id, limit=1_000_000)


def _calls(log: list[dict[str, Any]], suffix: str) -> int:
    return sum(1 for r in log if r.get("method") == "POST" and str(r.get("path", "")).endswith(suffix))


def _objects_per_record(stack: SyncStack, entity: str) -> Counter[str]:
    """How many QBO objects carry each record's qbsync marker."""
    note = "Notes" if entity == "Customer" else "PrivateNote"
    found: Counter[str] = Counter()
    for obj in stack.entities(entity):
        parsed = parse_marker(obj.get(note))
        if parsed is not None:
            found[parsed[1]] += 1
    return found


def _key(stack: SyncStack, firm: str, record_type: str, platform_id: str) -> RecordKey:
    return RecordKey(firm, stack.realm_id, record_type, platform_id)


def _statuses(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(o.status for o in outcomes)


def _aws(before: Counter[tuple[str, str, str]], after: Counter[tuple[str, str, str]]) -> Counter[str]:
    return Counter({op: c for (_, _, op), c in (after - before).items()})


def test_a_chunk_of_customers_then_invoices_syncs_through_batch_calls_once_each(
    stack: SyncStack, aws_requests: Requests
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    n = 64
    accounts = [_account(firm, i) for i in range(n)]
    runner = wiring.build_bulk_runner()
    seen = len(_log(stack))
    aws_before = aws_requests()

    outcomes = runner.run(accounts)

    aws = _aws(aws_before, aws_requests())
    log = _log(stack)[seen:]
    assert _statuses(outcomes) == {"synced": n}, outcomes
    assert _calls(log, "/customer") == 0  # no single create
    assert _calls(log, "/query") <= math.ceil(n / 20)  # the exact-name matches: 20 names a query, read ahead
    assert _calls(log, "/batch") <= math.ceil(n / 30) + 2  # + the reference data's batch of queries
    for outcome, event in zip(outcomes, accounts, strict=True):
        assert outcome.platform_id == event.record_id
        record = stack.records.get(_key(stack, firm, "client_account", event.record_id))
        assert record is not None and record.status == "synced" and record.qbo_id == outcome.qbo_id
    assert _objects_per_record(stack, "Customer") == Counter({e.record_id: 1 for e in accounts})
    # as for the invoices below (the connection's token blob and the Intuit app secret are read once too;
    # the rate limiter's slots are UpdateItems, and a GetItem when a window was full)
    assert aws["UpdateItem"] <= 2.3 * n and aws["Query"] <= 60 and aws["GetItem"] <= 10, aws
    assert aws["BatchGetItem"] <= math.ceil(n / 100) and aws["PutEvents"] <= 30, aws
    assert sum(aws.values()) <= 3.8 * n, aws

    invoices = [_invoice(firm, i, accounts[i].record_id) for i in range(n)]
    seen = len(_log(stack))
    aws_before = aws_requests()

    outcomes = wiring.build_bulk_runner().run(invoices)

    aws_after = aws_requests()
    assert _statuses(outcomes) == {"synced": n}, outcomes
    log = _log(stack)[seen:]
    assert _calls(log, "/invoice") == 0
    assert _calls(log, "/batch") <= math.ceil(n / 30) + 2  # + the reference data's batch of queries
    # per record: its own writes (the claim with the create's intent, the outcome: UpdateItem; issue 13 item 3
    # - the intent was a third write of its own before); per chunk: the connection, the
    # settings and every record and prerequisite read once (BatchGetItem, 100 keys a call); per thread: the
    # release queries (one per waiting status) and one PutEvents for its status events
    aws = _aws(aws_before, aws_after)
    assert aws["UpdateItem"] <= 2.2 * n, aws
    # GetItem: the connection and settings once, and the limiter's read of its counters when a batch call
    # waits for the next batch window (batch calls are spaced: qbsync.qbo.ratelimit)
    assert aws["BatchGetItem"] <= math.ceil(2 * n / 100) and aws["GetItem"] <= 2 + _calls(log, "/batch"), aws
    # one batch scope for the chunk, not one per thread: its status events leave ten a call
    assert aws["PutEvents"] <= math.ceil(n / 10) + 1, aws
    assert aws["PutEvents"] <= 30 and aws["Query"] <= 60, aws
    assert sum(aws.values()) <= 3.6 * n, aws
    by_id = {obj["Id"]: obj for obj in stack.entities("Invoice")}
    for outcome, event in zip(outcomes, invoices, strict=True):
        record = stack.records.get(_key(stack, firm, "invoice", event.record_id))
        assert record is not None and record.status == "synced" and record.qbo_id == outcome.qbo_id
        customer = stack.records.get(_key(stack, firm, "client_account", event.data.account_id))
        assert customer is not None
        assert by_id[str(record.qbo_id)]["CustomerRef"]["value"] == customer.qbo_id
    assert _objects_per_record(stack, "Invoice") == Counter({e.record_id: 1 for e in invoices})
    published = [d for t, d in stack.published() if t == "Sync Status Changed"]
    assert len(published) == 2 * n


def test_a_batch_whose_answer_is_lost_after_commit_is_retried_by_lookup_never_created_twice(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    accounts = [_account(firm, i) for i in range(12)]
    runner = wiring.build_bulk_runner()
    assert _statuses(runner.run([_account(firm, 99)])) == {"synced": 1}  # the runner has the reference data
    # every attempt of the call commits (the first) or replays (the client's retries), and loses its answer
    stack.sim.control.inject_fault(
        "drop_after_commit", count=4, method="POST", path_regex="/batch$", realm_id=stack.realm_id
    )
    seen = len(_log(stack))

    first = runner.run(accounts)

    assert {(o.status, o.reason) for o in first} == {("retry", "UncertainOutcome")}, first
    assert _objects_per_record(stack, "Customer") == Counter(
        {e.record_id: 1 for e in [*accounts, _account(firm, 99)]}
    )
    for event in accounts:
        record = stack.records.get(_key(stack, firm, "client_account", event.record_id))
        assert record is not None and record.intent is not None and record.qbo_id is None
    after_first = len(_log(stack))

    second = runner.run(accounts)

    assert _statuses(second) == {"adopted": len(accounts)}, second
    log = _log(stack)[after_first:]
    assert _calls(log, "/batch") == 0 and _calls(log, "/customer") == 0  # nothing resent
    assert _calls(log, "/query") == len(accounts)  # one lookup per item
    assert _calls(_log(stack)[seen:], "/customer") == 0
    assert _objects_per_record(stack, "Customer") == Counter(
        {e.record_id: 1 for e in [*accounts, _account(firm, 99)]}
    )
    for event in accounts:
        record = stack.records.get(_key(stack, firm, "client_account", event.record_id))
        assert record is not None and record.status == "synced" and record.intent is None


def test_a_lost_answer_the_client_retries_is_replayed_by_the_batch_requestid(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    accounts = [_account(firm, i) for i in range(5)]
    runner = wiring.build_bulk_runner()
    assert _statuses(runner.run([_account(firm, 99)])) == {"synced": 1}  # the runner has the reference data
    stack.sim.control.inject_fault(
        "drop_after_commit", count=1, method="POST", path_regex="/batch$", realm_id=stack.realm_id
    )
    seen = len(_log(stack))

    outcomes = runner.run(accounts)

    assert _statuses(outcomes) == {"synced": 5}, outcomes
    batches = [r for r in _log(stack)[seen:] if str(r.get("path", "")).endswith("/batch")]
    assert len(batches) == 2 and batches[1].get("replayed"), batches
    assert batches[0]["query"] == batches[1]["query"]  # the same requestid
    assert _objects_per_record(stack, "Customer") == Counter(
        {e.record_id: 1 for e in [*accounts, _account(firm, 99)]}
    )


def test_an_item_quickbooks_refuses_fails_only_its_record_with_an_error_center_entry(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    accounts = [_account(firm, i) for i in range(8)]
    # QuickBooks' names are unique across customers and vendors, case-insensitively: a create of this
    # customer is refused (6240) although no customer has its name (so nothing is linked instead)
    accountant = SimAccountant.sign_in(stack.sim.control, stack.realm_id)
    accountant.create("Vendor", {"DisplayName": _name(3).lower()})

    outcomes = wiring.build_bulk_runner().run(accounts)

    by_id = {o.platform_id: o for o in outcomes}
    refused = accounts[3].record_id
    assert by_id[refused].status == "failed", by_id[refused]
    assert _statuses(outcomes) == {"synced": 7, "failed": 1}
    record = stack.records.get(_key(stack, firm, "client_account", refused))
    assert record is not None and record.status == "failed"
    assert record.error is not None and record.error.qbo_code == "6240"
    entry = stack.errors.current(firm, "client_account", refused)
    assert entry is not None and entry.status == "open" and entry.qbo_code == "6240"
    assert _objects_per_record(stack, "Customer") == Counter(
        {e.record_id: 1 for e in accounts if e.record_id != refused}
    )


def test_records_the_platform_changed_or_another_worker_holds_are_not_written_by_the_chunk(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    accounts = [_account(firm, i) for i in range(6)]
    newer = _account(firm, 1, version=2, name="Bulk Client 001 Renamed")
    assert wiring.build_sync_service().handle(newer).status == "synced"
    held = _key(stack, firm, "client_account", accounts[2].record_id)
    stack.records.claim(
        held,
        version=1,
        owner="another-worker",
        lease_seconds=120,
        now=time.time(),
        options=ClaimOptions("create"),
    )
    runner = wiring.build_bulk_runner()
    assert _statuses(runner.run([_account(firm, 99)])) == {"synced": 1}  # the runner has the reference data
    seen = len(_log(stack))

    outcomes = runner.run(accounts)

    by_id = {o.platform_id: o for o in outcomes}
    assert by_id[accounts[1].record_id].status == "stale"
    assert (by_id[accounts[2].record_id].status, by_id[accounts[2].record_id].reason) == (
        "retry",
        "LeaseHeld",
    )
    assert _statuses(outcomes) == {"synced": 4, "stale": 1, "retry": 1}
    log = _log(stack)[seen:]
    assert _calls(log, "/customer") == 0 and _calls(log, "/batch") == 1
    customers = _objects_per_record(stack, "Customer")
    assert accounts[2].record_id not in customers  # not written while another worker holds it
    assert customers[accounts[1].record_id] == 1
    renamed = [c for c in stack.entities("Customer") if c.get("DisplayName") == "Bulk Client 001 Renamed"]
    assert len(renamed) == 1  # the newer version stays; the chunk's older one was not written over it
    record = stack.records.get(_key(stack, firm, "client_account", accounts[1].record_id))
    assert record is not None and record.platform_version == 2


def test_an_invoice_whose_account_is_not_in_quickbooks_waits_and_syncs_once_when_it_is(
    stack: SyncStack,
) -> None:
    """Prerequisites are never written beside their dependents: an invoice of the chunk whose account has
    not synced waits on it (blocked, not written); when the account syncs through the queue, the invoice
    is released and written once."""
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    accounts = [_account(firm, i) for i in range(3)]
    assert _statuses(wiring.build_bulk_runner().run(accounts[:2])) == {"synced": 2}
    invoices = [_invoice(firm, i, accounts[i].record_id) for i in range(3)]

    outcomes = wiring.build_bulk_runner().run(invoices)

    assert [o.status for o in outcomes[:2]] == ["synced", "synced"], outcomes
    assert outcomes[2].status == "blocked" and outcomes[2].waiting_on == (
        ("client_account", accounts[2].record_id),
    ), outcomes[2]
    assert invoices[2].record_id not in _objects_per_record(stack, "Invoice")

    stack.deliver_until_drained(platform_event("client_account_created", firm, id=accounts[2].record_id))

    record = stack.records.get(_key(stack, firm, "invoice", invoices[2].record_id))
    assert record is not None and record.status == "synced"
    assert _objects_per_record(stack, "Invoice") == Counter({e.record_id: 1 for e in invoices})


def test_a_chunk_stops_starting_records_while_quickbooks_is_down_and_runs_whole_when_it_is_back(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    runner = wiring.build_bulk_runner()
    assert _statuses(runner.run([_account(firm, 99)])) == {"synced": 1}  # the runner has the reference data
    accounts = [_account(firm, i) for i in range(90)]  # three records for each of the 30 threads
    stack.sim.control.inject_fault(
        "http_503", count=1000, method="POST", path_regex="/batch$", realm_id=stack.realm_id
    )
    seen = len(_log(stack))
    try:
        down = runner.run(accounts)
    finally:
        stack.sim.control.clear_faults()

    assert {o.status for o in down} == {"retry"}, down
    assert {o.reason for o in down} <= {"ServiceUnavailable", "UncertainOutcome"}, down
    # one batch call and the client's own retries of it: the 60 records after the first round never went
    batches = [r for r in _log(stack)[seen:] if str(r.get("path", "")).endswith("/batch")]
    assert 1 <= len(batches) <= 4, len(batches)
    records = [stack.records.get(_key(stack, firm, "client_account", e.record_id)) for e in accounts]
    started = [r for r in records if r is not None]
    assert len(started) <= 30  # the first round only: the others were never claimed
    assert all(r.status != "syncing" and r.qbo_id is None for r in started), started
    assert not stack.entities("Customer") or _objects_per_record(stack, "Customer") == Counter(
        {_account(firm, 99).record_id: 1}
    )

    back = runner.run(accounts)

    assert {o.status for o in back} <= {"synced", "adopted"}, back
    assert _objects_per_record(stack, "Customer") == Counter(
        {e.record_id: 1 for e in [*accounts, _account(firm, 99)]}
    )
