"""Payments recorded in QuickBooks reach the platform (issue 14 items 2 and 3).

The real inbound handler on moto + the simulator: qbsync first syncs the platform's invoices out (the
entity-sync handler), the accountant records payments in QuickBooks through the simulator's v3 API, and
the InboundNotice the webhook intake would enqueue is fed to the handler. The platform's view is the
events captured on the bus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from qbsync.models.record_key import RecordKey

from tests.fixtures.firms import new_firm
from tests.integration.entity_sync.conftest import platform_event
from tests.integration.inbound.conftest import InboundStack

OK = {"batchItemFailures": []}


def _today(days: int = 0) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def _of(events: list[tuple[str, dict[str, Any]]], detail_type: str) -> list[dict[str, Any]]:
    return [d for t, d in events if t == detail_type]


def _setup(inbound: InboundStack, *invoices: str) -> tuple[str, str, dict[str, str]]:
    firm = new_firm()
    qbo_ids = inbound.sync_invoices(firm, *((i, f"N-{i}") for i in invoices))
    return firm, inbound.realm_of(firm), qbo_ids


def test_a_partial_payment_reaches_the_platform_once_per_version(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-400")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-400"], "200.00")], txn_date=_today()
    )

    # Intuit's notification of the payment and of the invoice it changed, then a retry of the same POST
    body = inbound.notice(realm, ("Payment", payment["Id"], "Create"), ("Invoice", qbo["inv-400"], "Update"))
    assert inbound.inbound(body, body) == OK
    assert inbound.inbound(body) == OK

    events = inbound.announced()
    received = _of(events, "Payment Received In QBO")
    assert len(received) == 1, events
    event = received[0]
    assert event["firm_id"] == firm and event["realm_id"] == realm
    assert event["qbo_payment_id"] == payment["Id"] and event["qbo_version"] == payment["SyncToken"]
    assert event["operation"] == "created" and event["account_id"] == "acct-100"
    assert event["amount"] == "200.00" and event["payment_date"] == _today()
    assert event["allocations"] == [
        {
            "invoice_id": "inv-400",
            "qbo_invoice_id": qbo["inv-400"],
            "amount": "200.00",
            "invoice_balance": "405.00",
        }
    ]
    assert _of(events, "Invoice Paid") == [] and inbound.payment_errors(firm) == []
    state = inbound.payments.get(firm, realm, payment["Id"])
    assert state is not None and state.state == "announced" and state.version == payment["SyncToken"]


def test_a_split_payment_allocates_per_invoice_and_the_paid_invoice_is_announced(
    inbound: InboundStack,
) -> None:
    firm, realm, qbo = _setup(inbound, "inv-401", "inv-402")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm),
        [(qbo["inv-401"], "605.00"), (qbo["inv-402"], "100.00")],
        txn_date=_today(),
    )
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Create"))) == OK

    events = inbound.announced()
    [received] = _of(events, "Payment Received In QBO")
    assert received["amount"] == "705.00"
    assert {a["invoice_id"]: (a["amount"], a["invoice_balance"]) for a in received["allocations"]} == {
        "inv-401": ("605.00", "0.00"),
        "inv-402": ("100.00", "505.00"),
    }
    [paid] = _of(events, "Invoice Paid")
    assert paid["invoice_id"] == "inv-401" and paid["qbo_invoice_id"] == qbo["inv-401"]
    assert paid["total"] == "605.00" and paid["paid_on"] == _today()
    assert paid["qbo_payment_id"] == payment["Id"] and payment["Id"] in paid["qbo_payment_ids"]


def test_an_edit_updates_and_a_deletion_withdraws_what_was_sent(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-403")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-403"], "100.00")], txn_date=_today()
    )
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Create"))) == OK
    [created] = _of(inbound.announced(), "Payment Received In QBO")

    edited = accountant.update(
        "Payment",
        {
            "Id": payment["Id"],
            "SyncToken": payment["SyncToken"],
            "TotalAmt": 605.0,
            "Line": [{"Amount": 605.0, "LinkedTxn": [{"TxnId": qbo["inv-403"], "TxnType": "Invoice"}]}],
        },
    )
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Update"))) == OK
    events = inbound.announced()
    [updated] = _of(events, "Payment Received In QBO")
    assert updated["operation"] == "updated" and updated["qbo_version"] == edited["SyncToken"]
    assert updated["event_id"] != created["event_id"]
    assert updated["allocations"][0]["amount"] == "605.00"
    assert [p["invoice_id"] for p in _of(events, "Invoice Paid")] == ["inv-403"]

    accountant.delete("Payment", payment["Id"], edited["SyncToken"])
    gone = inbound.notice(realm, ("Payment", payment["Id"], "Delete"))
    assert inbound.inbound(gone) == OK
    assert inbound.inbound(gone) == OK  # a redelivery of the deletion
    events = inbound.announced()
    [withdrawn] = _of(events, "Payment Withdrawn In QBO")
    assert withdrawn["reason"] == "deleted" and withdrawn["qbo_version"] == "deleted"
    assert withdrawn["allocations"] == [
        {"invoice_id": "inv-403", "qbo_invoice_id": qbo["inv-403"], "amount": "605.00"}
    ]
    assert _of(events, "Payment Received In QBO") == []


def test_a_void_withdraws_the_payment(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-404")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-404"], "50.00")], txn_date=_today()
    )
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Create"))) == OK
    inbound.announced()
    accountant.void("Payment", payment["Id"], payment["SyncToken"])
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Void"))) == OK
    [withdrawn] = _of(inbound.announced(), "Payment Withdrawn In QBO")
    assert withdrawn["reason"] == "voided" and withdrawn["allocations"][0]["amount"] == "50.00"


def test_a_crash_between_claim_and_publish_publishes_the_same_event_again(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-405")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-405"], "10.00")], txn_date=_today()
    )
    body = inbound.notice(realm, ("Payment", payment["Id"], "Create"))
    assert inbound.inbound(body) == OK
    [first] = _of(inbound.announced(), "Payment Received In QBO")
    # what a crash after the claim and before the publish was confirmed leaves behind
    inbound.sync_table.update(
        {"pk": f"FIRM#{firm}#REALM#{realm}", "sk": f"INPAY#{payment['Id']}"},
        update="SET #s = :a, final_state = :f",
        names={"#s": "state"},
        values={":a": "announcing", ":f": "announced"},
    )
    assert inbound.inbound(body) == OK
    [again] = _of(inbound.announced(), "Payment Received In QBO")
    assert again["event_id"] == first["event_id"] and again == first | {"occurred_at": again["occurred_at"]}
    state = inbound.payments.get(firm, realm, payment["Id"])
    assert state is not None and state.state == "announced"
    assert inbound.inbound(body) == OK
    assert inbound.announced() == []


def test_syncing_an_invoice_out_produces_no_inbound_change(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-406")
    key = RecordKey(firm, realm, "invoice", "inv-406")
    before = inbound.records.get(key)
    assert before is not None
    customer = inbound.customer_of(firm)
    # the notifications of qbsync's own writes: the customer and the invoice it created
    own = inbound.notice(realm, ("Invoice", qbo["inv-406"], "Create"), ("Customer", customer, "Create"))
    assert inbound.inbound(own) == OK
    assert inbound.announced() == [] and inbound.payment_errors(firm) == []
    # our own writes are not changes: the record is untouched (no revision, no error: issue 14 drift)
    assert inbound.records.get(key) == before

    # an edit made in QuickBooks is one (the control: the rule does not just drop everything). A memo is no
    # field that matters (qbsync.inbound.differences): the drift detection only adopts the new SyncToken
    accountant = inbound.accountant_of(firm)
    invoice = accountant.read("Invoice", qbo["inv-406"])
    edited = accountant.update(
        "Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "PrivateNote": "x"}
    )
    assert inbound.inbound(inbound.notice(realm, ("Invoice", qbo["inv-406"], "Update"))) == OK
    record = inbound.records.get(key)
    assert record is not None and record.status == "synced"
    assert record.sync_token == str(edited["SyncToken"]) != before.sync_token  # it reached the drift route
    assert inbound.errors.list(firm, status="open")[0] == []


def test_the_echoes_of_our_own_writes_are_found_by_their_markers_without_an_index_query(
    inbound: InboundStack, aws_requests: Callable[[], Counter[tuple[str, str, str]]]
) -> None:
    invoices = [f"inv-41{n}" for n in range(5)]
    firm, realm, qbo = _setup(inbound, *invoices)
    keys = [RecordKey(firm, realm, "invoice", i) for i in invoices]
    before = {key: inbound.records.get(key) for key in keys}
    own = inbound.notice(
        realm,
        *(("Invoice", qbo[i], "Create") for i in invoices),
        ("Customer", inbound.customer_of(firm), "Create"),
    )
    requests_before = aws_requests()

    assert inbound.inbound(own) == OK

    ops = Counter(
        {op: n for (_, service, op), n in (aws_requests() - requests_before).items() if service == "dynamodb"}
    )
    # the six records the markers name, read together; no gsi1 query per object (the initial sync's echoes
    # come by the hundred, and an index query is the dearest read)
    assert ops["Query"] == 0 and ops["BatchGetItem"] == 1, ops
    assert inbound.announced() == [] and inbound.payment_errors(firm) == []
    assert {key: inbound.records.get(key) for key in keys} == before  # echoes: nothing changed


def test_a_realm_no_connection_holds_is_dropped_without_a_read(inbound: InboundStack) -> None:
    before = len(inbound.sim.control.requests(inbound.realm_id, limit=500))
    assert inbound.inbound(inbound.notice(inbound.realm_id, ("Payment", "1", "Create"))) == OK
    assert len(inbound.sim.control.requests(inbound.realm_id, limit=500)) == before
    assert inbound.announced() == []


def test_a_malformed_notice_goes_to_the_inbound_dlq_at_once(inbound: InboundStack) -> None:
    from local.stack.provision import clients

    sqs = clients(inbound.resources.endpoint_url, inbound.resources.region)["sqs"]
    response = inbound.inbound('{"kind": "qbo_changes", "realm_id": "1", "changes": []}')
    assert response == OK
    messages = sqs.receive_message(
        QueueUrl=inbound.env["INBOUND_DLQ_URL"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    assert len(messages) == 1
    assert messages[0]["MessageAttributes"]["dead_letter_reason"]["StringValue"] == "malformed"
    assert "changes" in messages[0]["MessageAttributes"]["problem"]["StringValue"]
    sqs.delete_message(QueueUrl=inbound.env["INBOUND_DLQ_URL"], ReceiptHandle=messages[0]["ReceiptHandle"])


def test_reads_are_one_query_per_entity_type(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-407", "inv-408")
    accountant = inbound.accountant_of(firm)
    customer = inbound.customer_of(firm)
    p1 = accountant.receive_payment(customer, [(qbo["inv-407"], "5.00")], txn_date=_today())
    p2 = accountant.receive_payment(customer, [(qbo["inv-408"], "6.00")], txn_date=_today())
    before = len(inbound.sim.control.requests(realm, limit=1000))
    a = inbound.notice(realm, ("Payment", p1["Id"], "Create"), ("Invoice", qbo["inv-407"], "Update"))
    b = inbound.notice(realm, ("Payment", p2["Id"], "Create"), ("Invoice", qbo["inv-408"], "Update"))
    assert inbound.inbound(a, b) == OK
    made = len(inbound.sim.control.requests(realm, limit=1000)) - before
    assert len(_of(inbound.announced(), "Payment Received In QBO")) == 2
    # the changed payments and invoices: one query each; the payments' invoices: one; Preferences: one
    assert made == 4


# --- refused: an explained error, nothing published ---------------------------------------------------


def _refused(inbound: InboundStack, firm: str, realm: str, payment_id: str, code: str) -> Any:
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment_id, "Create"))) == OK
    events = inbound.announced()
    assert _of(events, "Payment Received In QBO") == [] and _of(events, "Invoice Paid") == []
    [entry] = inbound.payment_errors(firm)
    assert entry.code == code and entry.category == "Payments" and entry.status == "open"
    assert entry.platform_id == f"{realm}:{payment_id}" and payment_id in entry.message
    assert entry.title and entry.explanation and entry.fix
    [raised] = _of(events, "Sync Error Raised")
    assert raised["error_id"] == entry.error_id and raised["category"] == "Payments"
    state = inbound.payments.get(firm, realm, payment_id)
    assert state is not None and state.state == "rejected"
    # the same version again: no second notification, no event
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment_id, "Update"))) == OK
    assert inbound.announced() == []
    return entry


def test_a_payment_of_an_invoice_qbsync_did_not_sync_is_refused(inbound: InboundStack) -> None:
    firm, realm, _ = _setup(inbound, "inv-410")
    accountant = inbound.accountant_of(firm)
    customer = inbound.customer_of(firm)
    own = accountant.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer},
            "Line": [{"Amount": 80.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}],
        },
    )
    payment = accountant.receive_payment(customer, [(own["Id"], "80.00")], txn_date=_today())
    entry = _refused(inbound, firm, realm, payment["Id"], "payment_invoice_not_synced")
    assert own["Id"] in entry.message


def test_a_payment_dated_more_than_two_days_ahead_is_refused(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-411")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-411"], "20.00")], txn_date=_today(3)
    )
    entry = _refused(inbound, firm, realm, payment["Id"], "payment_date_future")
    assert "2 days" in entry.explanation

    # the accountant corrects the date in QuickBooks: the new version reaches the platform, the error closes
    fixed = accountant.update(
        "Payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"], "TxnDate": _today()}
    )
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Update"))) == OK
    [received] = _of(inbound.announced(), "Payment Received In QBO")
    assert received["operation"] == "created" and received["qbo_version"] == fixed["SyncToken"]
    assert inbound.payment_errors(firm) == []


def test_a_payment_in_a_closed_period_is_refused(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-412")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-412"], "20.00")], txn_date=_today(-3)
    )
    # the books were closed through that date before the notice was read
    inbound.sim.control.set_preferences(realm, books_closed_date=_today(-3))
    try:
        _refused(inbound, firm, realm, payment["Id"], "payment_period_closed")
    finally:
        inbound.sim.control.set_preferences(realm, books_closed_date=None)


def test_a_payment_of_an_invoice_of_another_customer_is_refused(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-413")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-413"], "20.00")], txn_date=_today()
    )
    # the invoice was moved to another customer in QuickBooks after the payment was recorded
    other = accountant.create("Customer", {"DisplayName": "Other Client 413"})
    invoice = accountant.read("Invoice", qbo["inv-413"])
    accountant.update(
        "Invoice",
        {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "CustomerRef": {"value": other["Id"]}},
    )
    _refused(inbound, firm, realm, payment["Id"], "payment_customer_mismatch")


def test_a_payment_covering_more_than_the_platform_invoice_is_an_overpayment(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-414")
    accountant = inbound.accountant_of(firm)
    # the invoice was raised in QuickBooks (605.00 on the platform, 705.00 now) and paid in full there
    invoice = accountant.read("Invoice", qbo["inv-414"])
    lines = [line for line in invoice["Line"] if line.get("DetailType") == "SalesItemLineDetail"]
    raised = [*lines, {"Amount": 100.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}]
    accountant.update("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "Line": raised})
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-414"], "705.00")], txn_date=_today()
    )
    entry = _refused(inbound, firm, realm, payment["Id"], "payment_overpays_invoice")
    assert "605.00" in entry.message


def test_an_announced_payment_edited_into_a_refused_one_is_withdrawn(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-415")
    accountant = inbound.accountant_of(firm)
    payment = accountant.receive_payment(
        inbound.customer_of(firm), [(qbo["inv-415"], "30.00")], txn_date=_today()
    )
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Create"))) == OK
    inbound.announced()
    accountant.update(
        "Payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"], "TxnDate": _today(10)}
    )
    assert inbound.inbound(inbound.notice(realm, ("Payment", payment["Id"], "Update"))) == OK
    events = inbound.announced()
    [withdrawn] = _of(events, "Payment Withdrawn In QBO")
    [entry] = inbound.payment_errors(firm)
    assert withdrawn["reason"] == "rejected" and withdrawn["error_id"] == entry.error_id
    assert entry.code == "payment_date_future" and _of(events, "Payment Received In QBO") == []


def test_a_platform_payment_qbsync_just_wrote_is_not_received_back(inbound: InboundStack) -> None:
    firm, realm, qbo = _setup(inbound, "inv-420")
    payment = platform_event(
        "payment_created", firm, amount="605.00", allocations=[{"invoice_id": "inv-420", "amount": "605.00"}]
    )
    inbound.deliver_until_drained(payment)
    key = RecordKey(firm, realm, "payment", "pay-500")
    record = inbound.records.get(key)
    assert record is not None and record.status == "synced" and record.qbo_id
    inbound.published()
    # right after the sync gsi1 may not list the record yet (eventually consistent): the same as no gsi1
    inbound.sync_table.update(key.item_key(), update="REMOVE gsi1pk, gsi1sk")
    notice = inbound.notice(
        realm, ("Payment", record.qbo_id, "Create"), ("Invoice", qbo["inv-420"], "Update")
    )
    assert inbound.inbound(notice) == OK
    assert inbound.announced() == [] and inbound.payment_errors(firm) == []
    assert inbound.payments.get(firm, realm, record.qbo_id) is None  # never taken for a QuickBooks payment
