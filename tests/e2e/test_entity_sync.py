"""Outbound sync through the whole local stack (issue 4), driven only from outside.

A firm connects through the real HTTP endpoints (connect URL → the simulator's consent → OAuth callback);
the platform then puts "ClientAccount Created" and "Invoice Created" on qbsync's bus. From there nothing is
called directly: ``PlatformEventsRule`` → ``OutboundQueue`` → the SQS poller → ``EntitySyncFunction`` (a
warm worker process) → the QuickBooks simulator, including the re-enqueues through ``OutboundQueue`` when
the invoice wakes its skipped account and the synced account releases the blocked invoice.

The test waits on qbsync's own "Sync Status Changed" events, received by a platform-style subscription
(a rule on the bus into a queue) with SQS long polls under one deadline: no sleeps.
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Any

import pytest

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
    return f"firm-e2e-sync-{secrets.token_hex(4)}"


def test_platform_events_reach_quickbooks_through_the_stack(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    deadline = time.monotonic() + DEADLINE_SECONDS

    # Default settings ("with_activity"): the account alone is skipped, nothing is written to QBO.
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    status_inbox.wait_for("ClientAccount", "acct-100", "skipped", deadline)
    assert (
        marked(qbo_sim.control.entities(qbo_company, "Customer"), "Notes", "ClientAccount", "acct-100") == []
    )

    # The invoice gives the account activity: it blocks on it, wakes it (re-enqueued), the account syncs,
    # releases the invoice (re-enqueued again) and the invoice syncs - all through OutboundQueue.
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    account = status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)
    invoice = status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)

    customers = marked(
        qbo_sim.control.entities(qbo_company, "Customer"), "Notes", "ClientAccount", "acct-100"
    )
    assert [c["DisplayName"] for c in customers] == ["Harbour Bakery LLC"]
    assert account["qbo_id"] == customers[0]["Id"]
    invoices = marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400")
    assert len(invoices) == 1  # written once, although its event went through the queue twice
    assert invoices[0]["Id"] == invoice["qbo_id"]
    assert invoices[0]["CustomerRef"]["value"] == customers[0]["Id"]
    assert Decimal(str(invoices[0]["TotalAmt"])) == Decimal("605.00")
    assert invoice["qbo_url"] and invoice["qbo_id"] in invoice["qbo_url"]
