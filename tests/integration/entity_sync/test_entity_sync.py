"""Outbound sync through the real entity-sync handler: SQS batch → service → simulator (issue 4)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

from qbsync import wiring
from qbsync.models.record_key import RecordKey
from qbsync.outbound.mapping import parse_marker
from qbsync.repositories.connections import Tokens
from qbsync.repositories.paused import PausedWork

from local.stack.provision import clients
from tests.integration.entity_sync.conftest import (
    SyncStack,
    new_firm,
    platform_event,
    sqs_record,
    untaxed_invoice,
)


def _marked(objs: list[dict], field: str, entity: str, platform_id: str) -> list[dict]:
    return [o for o in objs if parse_marker(o.get(field)) == (entity, platform_id)]


def test_account_and_service_become_customer_and_item(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")

    response = stack.deliver(
        platform_event("client_account_created", firm), platform_event("service_created", firm)
    )

    assert response == {"batchItemFailures": []}
    customers = _marked(stack.entities("Customer"), "Notes", "ClientAccount", "acct-100")
    assert [c["DisplayName"] for c in customers] == ["Harbour Bakery LLC"]
    items = [i for i in stack.entities("Item") if i["Name"] == "Bookkeeping (monthly)"]
    assert len(items) == 1 and Decimal(str(items[0]["UnitPrice"])) == Decimal("150")
    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "synced" and account.qbo_id == customers[0]["Id"]
    service = stack.records.get(RecordKey(firm, stack.realm_id, "service", "svc-300"))
    assert service is not None and service.status == "synced" and service.qbo_id == items[0]["Id"]
    statuses = sorted(
        (d["entity_type"], d["platform_id"], d["status"], d["qbo_id"], d["correlation_id"])
        for t, d in stack.published()
        if t == "Sync Status Changed"
    )
    assert statuses == [
        ("ClientAccount", "acct-100", "synced", customers[0]["Id"], "corr-0001"),
        ("Service", "svc-300", "synced", items[0]["Id"], "corr-0021"),
    ]


def test_deleting_an_account_deactivates_its_customer_and_voiding_an_invoice_voids_it(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    _sync_prerequisites(stack, firm)
    assert stack.deliver(untaxed_invoice(firm)) == {"batchItemFailures": []}
    invoice = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert invoice is not None and invoice.status == "synced"

    voided = platform_event("invoice_voided", firm)
    voided["detail"]["data"]["id"] = "inv-400"
    voided["detail"]["version"] = 5
    assert stack.deliver(voided) == {"batchItemFailures": []}
    qbo_invoice = [i for i in stack.entities("Invoice") if i["Id"] == invoice.qbo_id]
    assert qbo_invoice and Decimal(str(qbo_invoice[0]["TotalAmt"])) == Decimal("0")

    deleted = platform_event("client_account_deleted", firm)
    deleted["detail"]["data"]["id"] = "acct-100"
    deleted["detail"]["version"] = 9
    assert stack.deliver(deleted) == {"batchItemFailures": []}
    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "synced"
    customers = [c for c in stack.entities("Customer") if c["Id"] == account.qbo_id]
    assert customers and customers[0]["Active"] is False

    # a deletion of something that never reached QBO is skipped, not failed
    never = platform_event("service_deleted", firm)
    never["detail"]["data"]["id"] = "svc-unknown"
    assert stack.deliver(never) == {"batchItemFailures": []}
    skipped = stack.records.get(RecordKey(firm, stack.realm_id, "service", "svc-unknown"))
    assert skipped is not None and skipped.status == "skipped"


def test_invoice_waits_for_its_account_then_payment_pays_it_exactly_once(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)  # default settings: accounts sync only once they have activity
    assert stack.deliver(platform_event("service_created", firm)) == {"batchItemFailures": []}

    # the account arrives first: no activity yet → skipped (its event is kept)
    assert stack.deliver(platform_event("client_account_created", firm)) == {"batchItemFailures": []}
    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "skipped"
    assert _marked(stack.entities("Customer"), "Notes", "ClientAccount", "acct-100") == []

    # the invoice blocks on the account and wakes it up (re-enqueues the account's stored event)
    assert stack.deliver(untaxed_invoice(firm)) == {"batchItemFailures": []}
    invoice = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert invoice is not None and invoice.status == "blocked"
    assert invoice.waiting_on == (("client_account", "acct-100"),)
    assert _marked(stack.entities("Invoice"), "PrivateNote", "Invoice", "inv-400") == []
    woken = stack.requeued()
    assert [(e["detail-type"], e["detail"]["data"]["id"]) for e in woken] == [
        ("ClientAccount Created", "acct-100")
    ]

    # the account syncs now and releases the invoice onto the OutboundQueue
    assert stack.deliver(*woken) == {"batchItemFailures": []}
    customers = _marked(stack.entities("Customer"), "Notes", "ClientAccount", "acct-100")
    assert len(customers) == 1
    released = stack.requeued()
    assert [(e["detail-type"], e["detail"]["data"]["id"]) for e in released] == [("Invoice Sent", "inv-400")]
    assert stack.deliver(*released) == {"batchItemFailures": []}
    invoices = _marked(stack.entities("Invoice"), "PrivateNote", "Invoice", "inv-400")
    assert len(invoices) == 1
    assert invoices[0]["CustomerRef"]["value"] == customers[0]["Id"]
    assert Decimal(str(invoices[0]["TotalAmt"])) == Decimal("605.00")
    invoice = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert invoice is not None and invoice.status == "synced" and invoice.qbo_id == invoices[0]["Id"]

    # the payment applies to the invoice; the same SQS batch delivered twice writes it once
    payment = platform_event(
        "payment_created", firm, amount="605.00", allocations=[{"invoice_id": "inv-400", "amount": "605.00"}]
    )
    records = [sqs_record(payment)]
    assert stack.deliver_records(records) == {"batchItemFailures": []}
    assert stack.deliver_records(records) == {"batchItemFailures": []}
    payments = _marked(stack.entities("Payment"), "PrivateNote", "Payment", "pay-500")
    assert len(payments) == 1
    assert Decimal(str(payments[0]["TotalAmt"])) == Decimal("605.00")
    paid = [i for i in stack.entities("Invoice") if i["Id"] == invoices[0]["Id"]]
    assert Decimal(str(paid[0]["Balance"])) == Decimal("0")
    assert stack.requeued() == []


def _posts(stack: SyncStack) -> int:
    return sum(1 for r in stack.sim.control.requests(stack.realm_id, limit=500) if r.get("method") == "POST")


def _sync_prerequisites(stack: SyncStack, firm: str) -> None:
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    response = stack.deliver(
        platform_event("client_account_created", firm), platform_event("service_created", firm)
    )
    assert response == {"batchItemFailures": []}


def test_unmapped_tax_rate_fails_the_record_with_an_error_log_entry(stack: SyncStack) -> None:
    firm = new_firm()
    _sync_prerequisites(stack, firm)
    before = _posts(stack)

    # the sample's first line carries platform tax rate "tax-me", which the firm has not mapped
    assert stack.deliver(platform_event("invoice_sent", firm)) == {"batchItemFailures": []}

    invoice = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert invoice is not None and invoice.status == "failed"
    assert invoice.error is not None and invoice.error.code == "tax_rate_unmapped"
    entries, _ = stack.errors.list(firm)
    assert [(e.entity_type, e.platform_id) for e in entries] == [("invoice", "inv-400")]
    assert entries[0].category == "Taxes"
    published = [(t, d) for t, d in stack.published() if d["platform_id"] == "inv-400"]
    assert [(t, d.get("status")) for t, d in published] == [
        ("Sync Status Changed", "failed"),
        ("Sync Error Raised", None),
    ]
    assert published[0][1]["error_id"] == published[1][1]["error_id"] == entries[0].error_id
    assert published[1][1]["category"] == "Taxes"
    assert _marked(stack.entities("Invoice"), "PrivateNote", "Invoice", "inv-400") == []
    assert _posts(stack) == before  # no QBO write for a record that cannot be mapped

    # once the data is fixed (a newer version without the tax), it syncs and the error is resolved
    fixed = untaxed_invoice(firm)
    fixed["detail"]["version"] = 3
    assert stack.deliver(fixed) == {"batchItemFailures": []}
    invoice = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert invoice is not None and invoice.status == "synced"
    assert _posts(stack) > before
    assert stack.errors.list(firm)[0] == []


def test_malformed_events_go_to_the_dlq_and_do_not_stop_the_batch(stack: SyncStack) -> None:
    # issue 11: no longer batch-item failures cycling to the DLQ for an hour - sent there at once, consumed
    # (the DLQ's content, the firm's view and the redrive: test_dead_letters.py)
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    broken = platform_event("client_account_created", firm)
    del broken["detail"]["data"]["name"]
    records = [sqs_record("not json", message_id="m-json"), sqs_record(broken, message_id="m-schema")]
    records.append(sqs_record(platform_event("client_account_created", firm), message_id="m-good"))

    response = stack.deliver_records(records)

    assert response == {"batchItemFailures": []}
    assert len(_marked(stack.entities("Customer"), "Notes", "ClientAccount", "acct-100")) == 1
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    parked = sqs.receive_message(
        QueueUrl=stack.env["OUTBOUND_DLQ_URL"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    ours = {
        m["MessageAttributes"]["source_message_id"]["StringValue"]: m["Body"]
        for m in parked
        if m["MessageAttributes"]["source_message_id"]["StringValue"] in ("m-json", "m-schema")
    }
    assert ours == {"m-json": "not json", "m-schema": json.dumps(broken)}


def test_disconnected_firm_parks_the_event_and_resume_sends_it_back(stack: SyncStack) -> None:
    firm = new_firm()
    records = [sqs_record(platform_event("service_created", firm), message_id="m-1")]

    # never connected: the message is consumed (no SQS retries, no DLQ) and the event is parked
    assert stack.deliver_records(records) == {"batchItemFailures": []}
    assert stack.records.get(RecordKey(firm, stack.realm_id, "service", "svc-300")) is None
    parked = PausedWork(stack.sync_table).parked(firm)
    assert [(p.entity_type, p.platform_id, p.version) for p in parked] == [("service", "svc-300", 1)]

    stack.connect(firm)
    connections = stack.connections()
    current = connections.get(firm)
    assert current is not None
    connections.mark_disconnected(current, reason="test", now=current.updated_at or 0.0)
    newer = platform_event("service_updated", firm)
    newer["detail"]["version"] = 2
    # disconnected: parked too; the newest version replaces the older one, an older one never replaces it
    assert stack.deliver(newer) == {"batchItemFailures": []}
    assert stack.deliver_records(records) == {"batchItemFailures": []}
    assert [i for i in stack.entities("Item") if i["Name"] == "Bookkeeping (monthly)"] == []
    parked = PausedWork(stack.sync_table).parked(firm)
    assert [(p.platform_id, p.version) for p in parked] == [("svc-300", 2)]
    assert stack.requeued() == []

    # reconnected: resuming sends the parked event back to the OutboundQueue, once
    disconnected = connections.get(firm)
    assert disconnected is not None and disconnected.status == "disconnected"
    issued = stack.sim.control.issue_tokens(stack.client_id, stack.realm_id)
    connections.reconnect(
        disconnected,
        tokens=Tokens(
            access_token=issued["access_token"],
            refresh_token=issued["refresh_token"],
            access_expires_at=time.time() + float(issued["expires_in"]),
        ),
        company_name=None,
        connected_by="user-1",
        settings={},
        now=time.time(),
    )
    assert wiring.paused_resumer().resume(firm) == 1
    assert wiring.paused_resumer().resume(firm) == 0
    resumed = stack.requeued()
    assert [(e["detail-type"], e["detail"]["version"]) for e in resumed] == [("Service Updated", 2)]
    assert stack.deliver(*resumed) == {"batchItemFailures": []}
    assert len([i for i in stack.entities("Item") if i["Name"] == "Bookkeeping (monthly)"]) == 1
    service = stack.records.get(RecordKey(firm, stack.realm_id, "service", "svc-300"))
    assert service is not None and service.status == "synced" and service.platform_version == 2


def test_fee_and_refund_of_a_synced_payment(stack: SyncStack) -> None:
    firm = new_firm()
    _sync_prerequisites(stack, firm)
    payment = platform_event(
        "payment_created", firm, amount="700.00", allocations=[{"invoice_id": "inv-400", "amount": "605.00"}]
    )
    # the fee arrives before its payment: it waits, and the payment releases it
    assert stack.deliver(platform_event("processing_fee_created", firm)) == {"batchItemFailures": []}
    fee = stack.records.get(RecordKey(firm, stack.realm_id, "fee", "fee-700"))
    assert fee is not None and fee.status == "blocked" and fee.waiting_on == (("payment", "pay-500"),)

    assert stack.deliver(untaxed_invoice(firm), payment) == {"batchItemFailures": []}
    released = stack.requeued()
    assert [e["detail"]["data"]["id"] for e in released] == ["fee-700"]
    assert stack.deliver(*released, platform_event("refund_created", firm)) == {"batchItemFailures": []}

    qbo_payment = _marked(stack.entities("Payment"), "PrivateNote", "Payment", "pay-500")
    assert len(qbo_payment) == 1
    deposit = qbo_payment[0]["DepositToAccountRef"]["value"]
    purchases = _marked(stack.entities("Purchase"), "PrivateNote", "ProcessingFee", "fee-700")
    assert len(purchases) == 1
    assert purchases[0]["AccountRef"]["value"] == deposit
    assert Decimal(str(purchases[0]["TotalAmt"])) == Decimal("20.60")
    refunds = _marked(stack.entities("RefundReceipt"), "PrivateNote", "Refund", "ref-600")
    assert len(refunds) == 1
    assert refunds[0]["DepositToAccountRef"]["value"] == deposit
    assert Decimal(str(refunds[0]["TotalAmt"])) == Decimal("66.12")


def test_a_lost_create_response_is_retried_and_adopted_without_a_duplicate(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    records = [sqs_record(platform_event("client_account_created", firm), message_id="m-lost")]
    # every try of the create commits in QBO but its response is lost
    stack.sim.control.inject_fault(
        "drop_after_commit", count=10, realm_id=stack.realm_id, method="POST", path_regex="/customer$"
    )
    try:
        assert stack.deliver_records(records) == {"batchItemFailures": [{"itemIdentifier": "m-lost"}]}
    finally:
        stack.sim.control.clear_faults()
    pending = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert pending is not None and pending.status != "synced" and pending.intent is not None

    # SQS redelivers: the object the lost write created is found by its marker and adopted
    assert stack.deliver_records(records) == {"batchItemFailures": []}
    customers = _marked(stack.entities("Customer"), "Notes", "ClientAccount", "acct-100")
    assert len(customers) == 1
    synced = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert synced is not None and synced.status == "synced" and synced.qbo_id == customers[0]["Id"]
