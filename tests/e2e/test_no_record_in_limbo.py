"""Issue 11 through the whole local stack, driven only from outside (the bus, the admin API, the DLQ):

* data QuickBooks would refuse is an explained error on its record, visible in ``GET /errors`` - an
  over-long invoice number (then "let QuickBooks number it" syncs it) and a service with a negative rate;
* an event that cannot be understood is in OutboundDLQ after ONE receive, counted (``MalformedEvents``),
  visible (``GET /dead-letters``, ``scripts/redrive_dlq.py list``) and redriven after the fix.

Waits are SQS long polls and qbsync's own status events under one deadline: no sleeps.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.repositories.dead_letters import DeadLetterLog

from local.stack.provision import clients
from scripts import redrive_dlq
from tests.e2e.test_entity_sync import (
    DEADLINE_SECONDS,
    StatusInbox,
    _connect,
    _marked,
    _put_on_bus,
    _sample,
)
from tests.fixtures.firms import admin_jwt

pytestmark = pytest.mark.e2e


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-limbo-{secrets.token_hex(4)}"


@pytest.fixture
def status_inbox(local_stack: Any, firm_id: str) -> Iterator[StatusInbox]:
    inbox = StatusInbox(local_stack, firm_id)
    try:
        yield inbox
    finally:
        inbox.close()


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
    _connect(local_stack, qbo_sim, firm_id, qbo_company)
    qbo_sim.control.set_preferences(qbo_company, custom_txn_numbers=True)
    deadline = time.monotonic() + DEADLINE_SECONDS
    invoice = _sample("invoice_created", firm_id)
    data = invoice["detail"]["data"]
    for line in data["line_items"]:
        line.update(service_id=None, work_type_id=None, tax_rate_id=None, tax_amount=None)
    data.update(number="INV-2026-PORTAL-000001042", tax_total="0.00", total="605.00", balance_due="605.00")

    _put_on_bus(local_stack, invoice)
    _put_on_bus(local_stack, _sample("client_account_created", firm_id))  # woken and synced by the invoice
    status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)

    error = _open_error(local_stack, firm_id, "inv-400")
    assert (error["category"], error["code"]) == ("Invoices", "doc_number_too_long")
    assert (
        _marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400") == []
    )

    chosen = _api(local_stack, firm_id, "POST", f"/errors/{error['error_id']}/let-quickbooks-number")
    assert chosen.status_code == 202, chosen.text
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)

    [created] = _marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400")
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
    _connect(local_stack, qbo_sim, firm_id, qbo_company)
    deadline = time.monotonic() + DEADLINE_SECONDS
    service = _sample("service_created", firm_id)
    service["detail"]["data"]["rate"] = "-150.00"

    _put_on_bus(local_stack, service)
    status_inbox.wait_for("Service", "svc-300", "failed", deadline)

    error = _open_error(local_stack, firm_id, "svc-300")
    assert (error["category"], error["code"]) == ("Services", "service_rate_negative")
    assert [
        i for i in qbo_sim.control.entities(qbo_company, "Item") if i["Name"] == "Bookkeeping (monthly)"
    ] == []


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
    _connect(local_stack, qbo_sim, firm_id, qbo_company)
    deadline = time.monotonic() + DEADLINE_SECONDS
    sqs = clients(local_stack.endpoint_url, local_stack.region)["sqs"]
    dlq, outbound = local_stack.resources.ref("OutboundDLQ"), local_stack.resources.ref("OutboundQueue")
    # the contract is "fixed" below by the platform's own correction: a ClientAccount event whose id came
    # as a number (a wrong type: malformed) - what a redrive after the deploy of a fix would carry
    broken = _sample("client_account_created", firm_id)
    broken["detail"]["event_id"] = "evt-broken-1"
    broken["detail"]["data"]["id"] = 100

    _put_on_bus(local_stack, broken)

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
