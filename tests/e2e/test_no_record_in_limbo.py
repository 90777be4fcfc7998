"""Issue 11 through the whole local stack, driven only from outside (the bus, the admin API, the DLQ):

* data QuickBooks would refuse is an explained error on its record, visible in ``GET /errors`` - an
  over-long invoice number (then "let QuickBooks number it" syncs it) and a service with a negative rate;
* a record behind a prerequisite that will not sync as things stand (skipped by the settings, failed with
  an open error) is ``skipped`` naming it, keeps ``waiting_on`` and syncs by itself once that prerequisite
  does - the owner moves the start date back and syncs the invoice by hand; the owner maps the account
  QuickBooks refused to a customer - each once in QuickBooks;
* an event that cannot be understood is in OutboundDLQ after ONE receive, counted (``MalformedEvents``),
  visible (``GET /dead-letters``, ``scripts/redrive_dlq.py list``) and redriven after the fix.

Waits are SQS long polls and qbsync's own status events under one deadline: no sleeps.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
import requests
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.repositories.dead_letters import DeadLetterLog

from local.stack.provision import clients
from scripts import redrive_dlq
from tests.fixtures.firms import admin_jwt
from tests.fixtures.platform import (
    DEADLINE_SECONDS,
    StatusInbox,
    connect_owner,
    marked,
    put_on_bus,
    sample_event,
    untaxed_invoice_without_services,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-limbo-{secrets.token_hex(4)}"


def _api(stack: Any, firm: str, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {admin_jwt(stack, firm)}"}
    return requests.request(method, f"{stack.api_url}{path}", headers=headers, timeout=60, **kw)


def _open_error(stack: Any, firm: str, platform_id: str) -> dict[str, Any]:
    listed = _api(stack, firm, "GET", "/errors", params={"status": "open"})
    assert listed.status_code == 200, listed.text
    [error] = [e for e in listed.json()["errors"] if e["platform_id"] == platform_id]
    return error


def test_over_long_invoice_number_is_an_error_until_quickbooks_numbers_it(
    local_stack: Any,
    qbo_sim: Any,
    qbo_company: str,
    firm_id: str,
    status_inbox: StatusInbox,
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    qbo_sim.control.set_preferences(qbo_company, custom_txn_numbers=True)
    deadline = time.monotonic() + DEADLINE_SECONDS
    invoice = sample_event("invoice_created", firm_id)
    data = invoice["detail"]["data"]
    for line in data["line_items"]:
        line.update(service_id=None, work_type_id=None, tax_rate_id=None, tax_amount=None)
    data.update(number="INV-2026-PORTAL-000001042", tax_total="0.00", total="605.00", balance_due="605.00")

    put_on_bus(local_stack, invoice)
    put_on_bus(
        local_stack, sample_event("client_account_created", firm_id)
    )  # woken and synced by the invoice
    status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)

    error = _open_error(local_stack, firm_id, "inv-400")
    assert (error["category"], error["code"]) == ("Invoices", "doc_number_too_long")
    assert marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400") == []

    chosen = _api(local_stack, firm_id, "POST", f"/errors/{error['error_id']}/let-quickbooks-number")
    assert chosen.status_code == 202, chosen.text
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)

    [created] = marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400")
    assert not created.get("DocNumber")
    resolved = _api(local_stack, firm_id, "GET", f"/errors/{error['error_id']}").json()
    assert resolved["status"] == "resolved"


def test_a_service_with_a_negative_rate_is_a_services_error(
    local_stack: Any,
    qbo_sim: Any,
    qbo_company: str,
    firm_id: str,
    status_inbox: StatusInbox,
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    deadline = time.monotonic() + DEADLINE_SECONDS
    service = sample_event("service_created", firm_id)
    service["detail"]["data"]["rate"] = "-150.00"

    put_on_bus(local_stack, service)
    status_inbox.wait_for("Service", "svc-300", "failed", deadline)

    error = _open_error(local_stack, firm_id, "svc-300")
    assert (error["category"], error["code"]) == ("Services", "service_rate_negative")
    assert [
        i for i in qbo_sim.control.entities(qbo_company, "Item") if i["Name"] == "Bookkeeping (monthly)"
    ] == []


def _record(stack: Any, firm: str, entity_type: str, platform_id: str) -> dict[str, Any]:
    answer = _api(stack, firm, "GET", f"/sync/records/{entity_type}/{platform_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _put_settings(stack: Any, firm: str, **changes: Any) -> None:
    """The owner changes some settings: ``PUT /settings`` replaces the document, so GET it first."""
    current = _api(stack, firm, "GET", "/settings")
    assert current.status_code == 200, current.text
    stored = _api(stack, firm, "PUT", "/settings", json={**current.json()["settings"], **changes})
    assert stored.status_code == 200, stored.text


def _payment_of_the_invoice(firm_id: str) -> dict[str, Any]:
    """The payment sample (dated 2026-03-05) paying the whole untaxed invoice inv-400, by check."""
    payment = sample_event("payment_created", firm_id)
    payment["detail"]["data"].update(
        amount="605.00",
        allocations=[{"invoice_id": "inv-400", "amount": "605.00"}],
        method="check",
        processor=None,
        reference="1042",
        deposit=None,
    )
    return payment


def test_a_payment_for_an_invoice_before_the_start_date_is_skipped_naming_it_and_comes_back(
    local_stack: Any,
    qbo_sim: Any,
    qbo_company: str,
    firm_id: str,
    status_inbox: StatusInbox,
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    _put_settings(local_stack, firm_id, sync_accounts="all", sync_start_date="2026-03-03")
    deadline = time.monotonic() + DEADLINE_SECONDS

    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)
    invoice = untaxed_invoice_without_services(firm_id)  # issued 2026-03-01: before the start date
    put_on_bus(local_stack, invoice)
    status_inbox.wait_for("Invoice", "inv-400", "skipped", deadline)
    put_on_bus(local_stack, _payment_of_the_invoice(firm_id))  # dated 2026-03-05: after it
    status_inbox.wait_for("Payment", "pay-500", "skipped", deadline)

    payment = _record(local_stack, firm_id, "payment", "pay-500")
    assert payment["status"] == "skipped"  # not blocked: the invoice will not come as the settings stand
    assert payment["skip_reason"] == (
        "waiting_on_prerequisite: waiting on invoice inv-400 is skipped (dated 2026-03-01, before the sync "
        "start date 2026-03-03). This payment syncs by itself once that syncs"
    )
    assert payment["waiting_on"] == [{"entity_type": "invoice", "platform_id": "inv-400"}]
    assert _record(local_stack, firm_id, "invoice", "inv-400")["status"] == "skipped"
    assert qbo_sim.control.entities(qbo_company, "Invoice") == []
    assert qbo_sim.control.entities(qbo_company, "Payment") == []

    # the owner moves the start date back and syncs the invoice by hand: the payment follows by itself
    _put_settings(local_stack, firm_id, sync_accounts="all", sync_start_date="2026-03-01")
    resync = _api(local_stack, firm_id, "POST", "/sync/records/invoice/inv-400/sync")
    assert resync.status_code == 202, resync.text
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    status_inbox.wait_for("Payment", "pay-500", "synced", deadline)

    paid = _record(local_stack, firm_id, "payment", "pay-500")
    assert (paid["status"], paid["waiting_on"], paid["skip_reason"]) == ("synced", [], None)
    [created] = marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400")
    [payment_in_qbo] = qbo_sim.control.entities(qbo_company, "Payment")  # exactly one, nothing else
    assert marked([payment_in_qbo], "PrivateNote", "Payment", "pay-500") == [payment_in_qbo]
    assert payment_in_qbo["Id"] == paid["qbo_id"]
    assert [line["LinkedTxn"][0]["TxnId"] for line in payment_in_qbo["Line"]] == [created["Id"]]
    assert qbo_sim.control.entities(qbo_company, "Invoice") == [created]


def _hand_entered_customer(stack: Any, qbo_sim: Any, realm_id: str, name: str) -> str:
    """A customer the bookkeeper entered in QuickBooks by hand (QBO's own API, as its UI would)."""
    token = qbo_sim.control.issue_tokens(stack.intuit_app["client_id"], realm_id)["access_token"]
    answer = requests.post(
        f"{qbo_sim.url}/v3/company/{realm_id}/customer",
        params={"minorversion": "75"},
        json={"DisplayName": name},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["Customer"]["Id"])


def test_an_invoice_of_an_account_quickbooks_refuses_is_skipped_naming_it_until_it_is_mapped(
    local_stack: Any,
    qbo_sim: Any,
    qbo_company: str,
    firm_id: str,
    status_inbox: StatusInbox,
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    customer_id = _hand_entered_customer(local_stack, qbo_sim, qbo_company, "Stripe (client)")
    deadline = time.monotonic() + DEADLINE_SECONDS
    account = sample_event("client_account_created", firm_id)
    account["detail"]["data"]["name"] = "Stripe"  # the company's seeded vendor: QuickBooks answers 6240

    put_on_bus(local_stack, account)
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))  # its activity wakes the account
    status_inbox.wait_for("ClientAccount", "acct-100", "failed", deadline)
    status_inbox.wait_for("Invoice", "inv-400", "skipped", deadline)

    error = _open_error(local_stack, firm_id, "acct-100")
    assert (error["category"], error["code"]) == ("Accounts", "duplicate_name")
    invoice = _record(local_stack, firm_id, "invoice", "inv-400")
    assert invoice["status"] == "skipped"
    assert invoice["skip_reason"].startswith("waiting_on_prerequisite: ")
    assert (
        "client account acct-100 failed: its error is in the error center (Accounts)"
        in (invoice["skip_reason"])
    )
    assert invoice["waiting_on"] == [{"entity_type": "client_account", "platform_id": "acct-100"}]
    assert qbo_sim.control.entities(qbo_company, "Invoice") == []
    listed = _api(local_stack, firm_id, "GET", "/errors", params={"status": "open"}).json()["errors"]
    assert [e["platform_id"] for e in listed] == ["acct-100"]  # one thing to fix, not one per record

    # the owner finds the bookkeeper's customer and maps the account to it in the error center
    found = _api(local_stack, firm_id, "GET", "/qbo/customers", params={"search": "Stripe"}).json()
    assert [c["id"] for c in found["customers"]] == [customer_id]
    mapped = _api(
        local_stack,
        firm_id,
        "POST",
        f"/errors/{error['error_id']}/map-customer",
        json={"qbo_customer_id": customer_id},
    )
    assert mapped.status_code == 200, mapped.text
    assert mapped.json()["outcome"] == "mapped" and mapped.json()["released"] == 1
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)

    synced = _record(local_stack, firm_id, "invoice", "inv-400")
    assert (synced["status"], synced["waiting_on"], synced["skip_reason"]) == ("synced", [], None)
    assert _record(local_stack, firm_id, "client_account", "acct-100")["qbo_id"] == customer_id
    [created] = marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400")
    assert created["CustomerRef"]["value"] == customer_id
    assert [c["Id"] for c in qbo_sim.control.entities(qbo_company, "Customer")] == [customer_id]  # none made
    assert _api(local_stack, firm_id, "GET", f"/errors/{error['error_id']}").json()["status"] == "resolved"


def _dlq_messages(sqs: Any, url: str, want: int, deadline: float) -> list[dict[str, Any]]:
    """Receive (and delete) ``want`` messages of the DLQ, long-polling until ``deadline``."""
    got: list[dict[str, Any]] = []
    while len(got) < want:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(got)} of {want} messages reached the DLQ"
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=max(1, min(5, int(remaining))),
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        got.extend(batch)
    return got


def test_a_malformed_event_is_in_the_dlq_after_one_receive_visible_and_redriven(
    local_stack: Any,
    qbo_sim: Any,
    qbo_company: str,
    firm_id: str,
    status_inbox: StatusInbox,
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    deadline = time.monotonic() + DEADLINE_SECONDS
    sqs = clients(local_stack.endpoint_url, local_stack.region)["sqs"]
    dlq, outbound = local_stack.resources.ref("OutboundDLQ"), local_stack.resources.ref("OutboundQueue")
    # the contract is "fixed" below by the platform's own correction: a ClientAccount event whose id came
    # as a number (a wrong type: malformed) - what a redrive after the deploy of a fix would carry
    broken = sample_event("client_account_created", firm_id)
    broken["detail"]["event_id"] = "evt-broken-1"
    broken["detail"]["data"]["id"] = 100

    put_on_bus(local_stack, broken)

    [parked] = _dlq_messages(sqs, dlq, 1, deadline)
    attrs = {k: v["StringValue"] for k, v in parked["MessageAttributes"].items()}
    assert attrs["source_receive_count"] == "1"  # one receive, not five at 720 s
    assert (attrs["firm_id"], attrs["event_id"], attrs["detail_type"]) == (
        firm_id,
        "evt-broken-1",
        "ClientAccount Created",
    )
    assert "data.id" in attrs["problem"]
    seen = _api(local_stack, firm_id, "GET", "/dead-letters")
    assert seen.status_code == 200, seen.text
    assert [(d["event_id"], d["detail_type"]) for d in seen.json()["dead_letters"]] == [
        ("evt-broken-1", "ClientAccount Created")
    ]
    staff = requests.get(
        f"{local_stack.api_url}/dead-letters",
        headers={"Authorization": f"Bearer {admin_jwt(local_stack, firm_id, role='staff')}"},
        timeout=60,
    )
    assert staff.status_code == 403
    other_firm = _api(local_stack, f"{firm_id}-other", "GET", "/dead-letters").json()
    assert other_firm == {"count": 0, "dead_letters": []}

    # After the fix: the message in the DLQ is one qbsync now understands (here the same event as the
    # fixed platform would have sent it), and the engineer's redrive brings it back once.
    fixed = json.loads(parked["Body"])
    fixed["detail"]["data"]["id"] = "acct-100"
    sqs.send_message(
        QueueUrl=dlq, MessageBody=json.dumps(fixed), MessageAttributes=parked["MessageAttributes"]
    )
    listed = redrive_dlq.list_dead_letters(sqs, dlq)
    assert listed["count"] == 1 and "Body" not in json.dumps(listed)
    ddb = clients(local_stack.endpoint_url, local_stack.region)["dynamodb"]
    log = DeadLetterLog(DynamoTable(local_stack.resources.ref("SyncStateTable"), client=ddb))
    assert redrive_dlq.redrive(sqs, dlq, outbound, cleared=log.clear) == {"moved": 1, "failed": 0}

    # the redriven event is understood now and takes the normal path (a lone account under the default
    # "with activity" setting is skipped: a record with a status, no longer in limbo)
    status_inbox.wait_for("ClientAccount", "acct-100", "skipped", deadline)
    assert _api(local_stack, firm_id, "GET", "/dead-letters").json()["count"] == 0
    # the worker's log line and metric of the dead letter (read last: that invocation has long ended by now)
    function_log = local_stack.log_path("EntitySyncFunction").read_text(encoding="utf-8")
    lines = [
        json.loads(x) for x in function_log.splitlines() if "sent to the DLQ at once" in x and firm_id in x
    ]
    assert [(x["firm_id"], x["event_id"], x["detail_type"]) for x in lines] == [
        (firm_id, "evt-broken-1", "ClientAccount Created")
    ]
    assert '"MalformedEvents"' in function_log
