"""Payments recorded in QuickBooks reach the platform through the whole local stack (issue 14 item 3).

The firm connects and its invoice syncs out as on the platform (bus → OutboundQueue → EntitySyncFunction).
The accountant then records a partial payment and, later, the rest of it split with nothing else, in the
simulator through its v3 API. The simulator sends its signed webhook for each to the local stack's
``POST /webhooks/intuit`` (delivered at once with its flush control instead of after its one-second group
window); the intake verifies it and queues the InboundNotice on ``InboundQueue``; the SQS poller runs
``InboundWorkerFunction``, which reads the payments back from the simulator and publishes to the bus. The
platform's view: a subscription to this firm's "Payment Received In QBO" / "Invoice Paid" events, read
with long polls under one deadline (no sleeps).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from local.qbo_sim.client import SimAccountant
from tests.fixtures.events import EventCapture, subscribe
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
    return f"firm-e2e-inbound-{secrets.token_hex(4)}"


def _webhook_delivered(qbo_sim: Any, realm_id: str, payment_id: str) -> None:
    """Intuit's webhook for the payment goes now; the intake accepted it (200) over real HTTP."""
    deliveries = qbo_sim.control.flush_webhooks()
    accepted = [
        d
        for d in deliveries
        if d["realm_id"] == realm_id
        and d.get("status") == 200
        and any(c["id"] == payment_id and c["name"] == "Payment" for c in d["changes"])
    ]
    assert accepted, [d for d in deliveries if d["realm_id"] == realm_id]


def _wait(capture: EventCapture, got: list[dict[str, Any]], count: int, deadline: float) -> None:
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"expected {count} inbound events, got {[e['detail-type'] for e in got]}")
        got.extend(capture.receive(wait_seconds=max(1, min(5, int(remaining)))))


def test_payments_recorded_in_quickbooks_reach_the_platform(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    deadline = time.monotonic() + DEADLINE_SECONDS
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    invoice = status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    [customer] = marked(
        qbo_sim.control.entities(qbo_company, "Customer"), "Notes", "ClientAccount", "acct-100"
    )

    capture = subscribe(
        local_stack.resources,
        "Payment Received In QBO",
        "Invoice Paid",
        detail={"firm_id": [firm_id]},
        name="e2e-inbound",
    )
    try:
        accountant = SimAccountant.sign_in(qbo_sim.control, qbo_company)
        today = datetime.now(UTC).date().isoformat()
        partial = accountant.receive_payment(customer["Id"], [(invoice["qbo_id"], "200.00")], txn_date=today)
        _webhook_delivered(qbo_sim, qbo_company, partial["Id"])
        got: list[dict[str, Any]] = []
        _wait(capture, got, 1, time.monotonic() + DEADLINE_SECONDS)
        [first] = got
        assert first["detail-type"] == "Payment Received In QBO"
        assert first["detail"]["qbo_payment_id"] == partial["Id"]
        assert first["detail"]["allocations"] == [
            {
                "invoice_id": "inv-400",
                "qbo_invoice_id": invoice["qbo_id"],
                "amount": "200.00",
                "invoice_balance": "405.00",
            }
        ]

        rest = accountant.receive_payment(customer["Id"], [(invoice["qbo_id"], "405.00")], txn_date=today)
        _webhook_delivered(qbo_sim, qbo_company, rest["Id"])
        _wait(capture, got, 3, time.monotonic() + DEADLINE_SECONDS)
        by_type = {e["detail-type"]: e["detail"] for e in got[1:]}
        assert by_type["Payment Received In QBO"]["qbo_payment_id"] == rest["Id"]
        assert by_type["Payment Received In QBO"]["allocations"][0]["invoice_balance"] == "0.00"
        paid = by_type["Invoice Paid"]
        assert (paid["invoice_id"], paid["total"], paid["qbo_payment_id"]) == (
            "inv-400",
            "605.00",
            rest["Id"],
        )
        assert set(paid["qbo_payment_ids"]) == {partial["Id"], rest["Id"]}
    finally:
        capture.close()
