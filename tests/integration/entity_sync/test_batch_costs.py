"""One SQS batch costs what issue 12 asks of it (qbsync.outbound.batch, qbsync.outbound.prefetch): the real
handler on moto + the simulator, counted where requests reach moto (``aws_requests``) and the simulator.

Counts are of requests, never of time: one BatchGetItem reads the batch's records and prerequisites, one
PutEvents sends its status events, one QuickBooks query matches its new names, and the records waiting on
the batch's synced records are found with one query per status, not per record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.record_key import RecordKey

from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, untaxed_invoice

Requests = Callable[[], Counter[tuple[str, str, str]]]


def _service(firm: str, service_id: str) -> dict[str, Any]:
    event = platform_event("service_created", firm, id=service_id)
    event["detail"]["data"]["name"] = f"Service {service_id}"
    event["detail"]["event_id"] = f"evt-{service_id}"
    return event


def _invoice_on(firm: str, invoice_id: str, services: tuple[str, ...]) -> dict[str, Any]:
    """An untaxed invoice of the sample account with one line per service."""
    event = untaxed_invoice(firm, number=f"N-{invoice_id}")
    data = event["detail"]["data"]
    data["id"] = invoice_id
    event["detail"]["event_id"] = f"evt-{invoice_id}"
    line = data["line_items"][0]
    data["line_items"] = [
        {**line, "id": f"ln-{i}", "service_id": sid, "quantity": "1", "rate": "100.00", "amount": "100.00"}
        for i, sid in enumerate(services)
    ]
    total = f"{100 * len(services)}.00"
    data.update(subtotal=total, total=total, balance_due=total)
    return event


def _aws(before: Counter[tuple[str, str, str]], after: Counter[tuple[str, str, str]]) -> Counter[str]:
    return Counter({op: n for (_, _, op), n in (after - before).items()})


def _qbo_log(stack: SyncStack) -> list[dict[str, Any]]:
    """Every request the simulator logged for the test company, oldest first."""
    return stack.sim.control.requests(stack.realm_id, limit=1_000_000)


def _qbo(stack: SyncStack, since: int) -> list[dict[str, Any]]:
    return _qbo_log(stack)[since:]


def test_a_batch_of_new_services_reads_once_asks_quickbooks_once_per_name_set_and_announces_once(
    stack: SyncStack, aws_requests: Requests
) -> None:
    firm = new_firm()
    stack.connect(firm)
    services = [_service(firm, f"svc-5{i:02d}") for i in range(6)]
    seen_qbo = len(_qbo_log(stack))
    before = aws_requests()

    assert stack.deliver(*services) == {"batchItemFailures": []}

    aws = _aws(before, aws_requests())
    for service in services:
        sid = service["detail"]["data"]["id"]
        record = stack.records.get(RecordKey(firm, stack.realm_id, "service", sid))
        assert record is not None and record.status == "synced", record
    statuses = [d for t, d in stack.published() if t == "Sync Status Changed"]
    assert sorted(d["platform_id"] for d in statuses) == sorted(s["detail"]["data"]["id"] for s in services)
    assert aws["PutEvents"] == 1  # six status events, one call
    assert aws["BatchGetItem"] == 1  # the six records read ahead together
    assert aws["Decrypt"] <= 1  # the token blob once for the batch (none when the container has it)
    asked = _qbo(stack, seen_qbo)
    queries = [r for r in asked if str(r.get("path", "")).endswith("/query")]
    assert len(queries) == 1, queries  # every new name matched in one query
    creates = [r for r in asked if str(r.get("path", "")).endswith("/item")]
    assert len(creates) == len(services)  # one create each


def test_a_refused_service_in_a_batch_never_asks_quickbooks(stack: SyncStack) -> None:
    """The batch's name query is asked by the first record that really looks a name up: a batch whose only
    new service is refused before any QuickBooks call asks QuickBooks nothing."""
    firm = new_firm()
    stack.connect(firm)
    seen_qbo = len(_qbo_log(stack))
    refused = platform_event("service_created", firm, rate="-150.00")

    assert stack.deliver(refused) == {"batchItemFailures": []}

    assert _qbo(stack, seen_qbo) == []


def test_the_records_waiting_on_a_batch_are_found_together_and_released_once(
    stack: SyncStack, aws_requests: Requests
) -> None:
    """Two invoices wait on their account and three services; the batch that syncs those four releases both
    invoices with one query per waiting status (blocked, skipped) instead of two per synced record, and
    re-enqueues each once."""
    firm = new_firm()
    stack.connect(firm)
    services = ("svc-601", "svc-602", "svc-603")
    first, second = _invoice_on(firm, "inv-batch-1", services), _invoice_on(firm, "inv-batch-2", services)
    assert stack.deliver(first, second) == {"batchItemFailures": []}
    assert stack.requeued() == []  # both blocked on their account and services, nothing re-enqueued yet
    prerequisites = [
        platform_event("client_account_created", firm),
        *(_service(firm, sid) for sid in services),
    ]
    before = aws_requests()

    assert stack.deliver(*prerequisites) == {"batchItemFailures": []}

    aws = _aws(before, aws_requests())
    released = stack.requeued()
    assert sorted(m["detail"]["data"]["id"] for m in released) == ["inv-batch-1", "inv-batch-2"]
    # the release: one query per waiting status (blocked, skipped) for the four synced records together, where
    # it was two per synced record (8); the third is the new account's own reverse-lookup check
    assert len(prerequisites) == 4 and aws["Query"] <= 3, aws
    stack.deliver_until_drained(*released)
    for invoice_id in ("inv-batch-1", "inv-batch-2"):
        record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", invoice_id))
        assert record is not None and record.status == "synced"


def test_a_new_record_costs_two_record_writes_its_claim_with_the_intent_and_its_outcome(
    stack: SyncStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 1 / issue 13 item 3: the claim of a create writes the create's intent in its own
    UpdateItem, so a new record's state costs two writes (claim + intent, outcome), not three. Counted on the
    table adapter every repository writes through (the records' items only: the rate limiter's slots are
    one per QuickBooks call)."""
    firm = new_firm()
    stack.connect(firm)
    services = [_service(firm, f"svc-7{i:02d}") for i in range(6)]
    writes: Counter[str] = Counter()
    update = DynamoTable.update

    def counted(self: DynamoTable, key: Mapping[str, Any], **kwargs: Any) -> Any:
        if str(key.get("sk", "")).startswith("REC#"):
            writes[str(key["sk"])] += 1
        return update(self, key, **kwargs)

    monkeypatch.setattr(DynamoTable, "update", counted)

    assert stack.deliver(*services) == {"batchItemFailures": []}

    for service in services:
        sid = service["detail"]["data"]["id"]
        record = stack.records.get(RecordKey(firm, stack.realm_id, "service", sid))
        assert record is not None and record.status == "synced" and record.intent is None
        assert writes[f"REC#service#{sid}"] == 2, writes


def test_a_record_skipped_or_blocked_after_its_claim_keeps_no_intent(stack: SyncStack) -> None:
    """Nothing was sent for them: a leftover intent would make their next run look the object up, and an
    account's skip it for its exact-name match (it would be created, not linked)."""
    firm = new_firm()
    stack.connect(firm)
    draft = untaxed_invoice(firm, number="N-draft")
    draft["detail"]["data"].update(id="inv-draft-1", status="draft")
    draft["detail"]["event_id"] = "evt-inv-draft-1"
    blocked = _invoice_on(firm, "inv-wait-1", ("svc-801",))

    assert stack.deliver(draft, blocked) == {"batchItemFailures": []}

    skipped = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-draft-1"))
    waiting = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-wait-1"))
    assert skipped is not None and skipped.status == "skipped" and skipped.intent is None, skipped
    assert waiting is not None and waiting.status == "blocked" and waiting.intent is None, waiting
