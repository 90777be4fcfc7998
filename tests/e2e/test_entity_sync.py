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

import copy
import json
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from qbsync.outbound.mapping import parse_marker

from local.stack.provision import clients
from tests.fixtures.events import subscribe
from tests.fixtures.firms import admin_jwt, connect_through_stack

pytestmark = pytest.mark.e2e

PLATFORM_EVENTS = Path(__file__).resolve().parents[2] / "events" / "platform"
DEADLINE_SECONDS = 90


def _sample(name: str, firm_id: str) -> dict[str, Any]:
    """A sample EventBridge event of events/platform, for ``firm_id``, with a fresh event id."""
    event = json.loads((PLATFORM_EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    event["detail"]["firm_id"] = firm_id
    event["detail"]["event_id"] = f"evt-{secrets.token_hex(6)}"
    return event


def _untaxed_invoice_without_services(firm_id: str) -> dict[str, Any]:
    """The invoice sample with no sales tax and no platform services on its lines.

    Its only prerequisite is then the client account (lines fall back to the company's "Sales" item),
    which is the chain this test is about; tax maps and service prerequisites have their own tests.
    """
    event = _sample("invoice_created", firm_id)
    data = event["detail"]["data"]
    lines = copy.deepcopy(data["line_items"])
    for line in lines:
        line.update(service_id=None, work_type_id=None, tax_rate_id=None, tax_amount=None)
    data.update(line_items=lines, tax_total="0.00", total="605.00", balance_due="605.00")
    return event


def _put_on_bus(stack: Any, event: dict[str, Any]) -> None:
    answer = clients(stack.endpoint_url, stack.region)["events"].put_events(
        Entries=[
            {
                "EventBusName": stack.resources.ref("EventBus"),
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0, answer


def _connect(stack: Any, qbo_sim: Any, firm_id: str, realm_id: str) -> None:
    """The owner connects the firm the way a browser does it (as local/demo.py)."""
    connect_through_stack(stack, qbo_sim, admin_jwt(stack, firm_id), realm_id)


class StatusInbox:
    """The platform's subscription to this firm's "Sync Status Changed" events (a rule into a queue)."""

    def __init__(self, stack: Any, firm_id: str) -> None:
        self._capture = subscribe(
            stack.resources, "Sync Status Changed", detail={"firm_id": [firm_id]}, name="e2e-sync-status"
        )
        self.received: list[dict[str, Any]] = []

    def wait_for(self, entity_type: str, platform_id: str, status: str, deadline: float) -> dict[str, Any]:
        """The first received status event for that record and status; AssertionError after ``deadline``."""
        while True:
            for detail in self.received:
                if (detail["entity_type"], detail["platform_id"], detail["status"]) == (
                    entity_type,
                    platform_id,
                    status,
                ):
                    return detail
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(d["entity_type"], d["platform_id"], d["status"]) for d in self.received]
                raise AssertionError(f"no {entity_type} {platform_id} {status!r} status event; got {seen}")
            envelopes = self._capture.receive(wait_seconds=max(1, min(5, int(remaining))))
            self.received.extend(envelope["detail"] for envelope in envelopes)

    def close(self) -> None:
        self._capture.close()


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-sync-{secrets.token_hex(4)}"


@pytest.fixture
def status_inbox(local_stack: Any, firm_id: str) -> Iterator[StatusInbox]:
    inbox = StatusInbox(local_stack, firm_id)
    try:
        yield inbox
    finally:
        inbox.close()


def _marked(objects: list[dict[str, Any]], field: str, entity: str, platform_id: str) -> list[dict[str, Any]]:
    """QBO objects whose note carries qbsync's marker of that platform record."""
    return [o for o in objects if parse_marker(o.get(field)) == (entity, platform_id)]


def test_platform_events_reach_quickbooks_through_the_stack(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    _connect(local_stack, qbo_sim, firm_id, qbo_company)
    deadline = time.monotonic() + DEADLINE_SECONDS

    # Default settings ("with_activity"): the account alone is skipped, nothing is written to QBO.
    _put_on_bus(local_stack, _sample("client_account_created", firm_id))
    status_inbox.wait_for("ClientAccount", "acct-100", "skipped", deadline)
    assert (
        _marked(qbo_sim.control.entities(qbo_company, "Customer"), "Notes", "ClientAccount", "acct-100") == []
    )

    # The invoice gives the account activity: it blocks on it, wakes it (re-enqueued), the account syncs,
    # releases the invoice (re-enqueued again) and the invoice syncs - all through OutboundQueue.
    _put_on_bus(local_stack, _untaxed_invoice_without_services(firm_id))
    account = status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)
    invoice = status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)

    customers = _marked(
        qbo_sim.control.entities(qbo_company, "Customer"), "Notes", "ClientAccount", "acct-100"
    )
    assert [c["DisplayName"] for c in customers] == ["Harbour Bakery LLC"]
    assert account["qbo_id"] == customers[0]["Id"]
    invoices = _marked(qbo_sim.control.entities(qbo_company, "Invoice"), "PrivateNote", "Invoice", "inv-400")
    assert len(invoices) == 1  # written once, although its event went through the queue twice
    assert invoices[0]["Id"] == invoice["qbo_id"]
    assert invoices[0]["CustomerRef"]["value"] == customers[0]["Id"]
    assert Decimal(str(invoices[0]["TotalAmt"])) == Decimal("605.00")
    assert invoice["qbo_url"] and invoice["qbo_id"] in invoice["qbo_url"]
