"""A change made in QuickBooks whose webhook never arrived is caught by the scheduled CDC catch-up (issue 14
items 4-5), through the whole local stack, driven only from outside. The local stack's simulator app sends
its webhooks to the intake; each edit here is made under the simulator's "lose this webhook" fault, so its
notification is built and lost, never sent: exactly a webhook that never arrived (the test checks the loss).
The hourly ``CatchUpSchedule`` is fired with ``LocalStack.fire_schedule``: its fan-out queues one run per
connected firm on ``CatchUpQueue``, the SQS poller hands it to ``CdcCatchUpFunction``. The test waits on
qbsync's "Sync Status Changed" events (SQS long polls under one deadline, no sleeps).

1. The invoice syncs; the accountant edits it in QuickBooks; the firm's first catch-up (no watermark yet:
   a full comparison) raises the error - the invoice is "failed" - and starts the watermark.
2. The firm pushes the platform's version again (``POST /errors/{id}/resync``): QuickBooks is back to 605.00.
3. The accountant edits it again; the next scheduled run reads it from CDC since the watermark.
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Any

import pytest

from local.qbo_sim.client import SimAccountant
from tests.fixtures.firms import admin_jwt
from tests.fixtures.platform import (
    DEADLINE_SECONDS,
    StatusInbox,
    admin_api,
    connect_owner,
    marked,
    put_on_bus,
    sample_event,
    untaxed_invoice_without_services,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-cdc-{secrets.token_hex(4)}"


def _invoice(qbo_sim: Any, realm_id: str) -> dict[str, Any]:
    (invoice,) = marked(qbo_sim.control.entities(realm_id, "Invoice"), "PrivateNote", "Invoice", "inv-400")
    return invoice


def _edit_last_line(qbo: SimAccountant, invoice: dict[str, Any], amount: float) -> None:
    lines = [dict(line) for line in invoice["Line"] if line.get("DetailType") == "SalesItemLineDetail"]
    detail = {**lines[-1]["SalesItemLineDetail"], "Qty": 1, "UnitPrice": amount}
    lines[-1] = {**lines[-1], "Amount": amount, "SalesItemLineDetail": detail}
    qbo.update("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "Line": lines})


def _edit_unnotified(qbo_sim: Any, qbo: SimAccountant, realm_id: str, amount: float) -> None:
    """Edit the invoice in QuickBooks with its webhook lost (what was pending is delivered first, so the
    notification lost is this edit's)."""
    control = qbo_sim.control
    control.flush_webhooks()
    lost_before = _lost(control.webhook_deliveries(), realm_id)
    control.lose_webhooks(count=1, realm_id=realm_id)
    invoice = _invoice(qbo_sim, realm_id)
    _edit_last_line(qbo, invoice, amount)
    lost = _lost(control.flush_webhooks(), realm_id)
    assert [c["id"] for d in lost[len(lost_before) :] for c in d["changes"]] == [invoice["Id"]]


def _lost(deliveries: list[dict[str, Any]], realm_id: str) -> list[dict[str, Any]]:
    return [d for d in deliveries if d["outcome"] == "lost" and d["realm_id"] == realm_id]


def _fire_catch_up(local_stack: Any) -> None:
    (result,) = local_stack.fire_schedule(local_stack.schedule_id_for("CdcCatchUpFunction"))
    assert result.ok, result.error


def test_an_edit_whose_webhook_was_lost_is_caught_by_the_scheduled_catch_up(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    accountant = SimAccountant.sign_in(qbo_sim.control, qbo_company)  # someone working in QuickBooks

    # 1. edited in QuickBooks, its webhook lost; the first run compares the synced records in full
    _edit_unnotified(qbo_sim, accountant, qbo_company, 125.0)
    _fire_catch_up(local_stack)
    failed = status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)
    assert "total was 605.00 USD, now 650.00 USD" in failed["error_message"]
    listed = admin_api(local_stack, token, "GET", "/errors?category=Invoices&status=open")
    assert listed.status_code == 200, listed.text
    (error,) = listed.json()["errors"]
    assert error["code"] == "edited_in_quickbooks" and error["error_id"] == failed["error_id"]

    # 2. push the platform's version again
    resync = admin_api(local_stack, token, "POST", f"/errors/{error['error_id']}/resync")
    assert resync.status_code == 202, resync.text
    status_inbox.received.clear()
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    assert Decimal(str(_invoice(qbo_sim, qbo_company)["TotalAmt"])) == Decimal("605.00")

    # 3. edited again; the scheduled run reads it from CDC since the watermark the first run stored
    _edit_unnotified(qbo_sim, accountant, qbo_company, 140.0)
    _fire_catch_up(local_stack)
    again = status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)
    assert "now 665.00 USD" in again["error_message"]
    assert (
        len(marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400"))
        == 1
    )
