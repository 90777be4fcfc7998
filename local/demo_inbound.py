"""The ``make demo`` step of issue 14 item 3: payments recorded in QuickBooks reach the platform.

:func:`payments_from_quickbooks` (called by ``local.demo.run``): the platform sends two invoices, which
sync to QuickBooks; then the firm's accountant, working in QuickBooks (the simulator's v3 API with a token
of their own, :class:`~local.qbo_sim.client.SimAccountant`), records

1. a **partial** payment of the first invoice, and
2. a **split** payment that pays the rest of the first invoice and part of the second.

Each save makes Intuit notify qbsync: the simulator signs its webhook and POSTs it to the local stack's
``/webhooks/intuit`` (sent at once with its flush control instead of after its one-second group window),
where the intake verifies it and queues the InboundNotice on ``InboundQueue``; the invoices qbsync itself
wrote are notified too and recognised as qbsync's own writes. From there the SQS poller runs
``InboundWorkerFunction``, which reads the objects back from QuickBooks and publishes to the bus. The
platform's subscription (its own rule and queue, for the inbound event types) must then receive two
"Payment Received In QBO" events with the right allocations and one "Invoice Paid" (the first invoice's
balance reached 0), and nothing else.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from local.qbo_sim.client import SimAccountant, SimControl
from local.stack.provision import clients

__all__ = ["INBOUND_EVENT_TYPES", "InboundDemoFailure", "payments_from_quickbooks"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: what the platform subscribes to for this step
INBOUND_EVENT_TYPES = ("Payment Received In QBO", "Invoice Paid", "Payment Withdrawn In QBO")
INVOICES = (("inv-qbo-pay-1", "INV-2001"), ("inv-qbo-pay-2", "INV-2002"))
#: qbsync's marker in a synced invoice's PrivateNote (``qbsync:Invoice:<platform id>``, docs/contracts.md)
_MARKER = re.compile(r"qbsync:Invoice:([A-Za-z0-9_.:\-]+?)(?=$|[\s;,)])")


class InboundDemoFailure(Exception):
    """An expectation of the step did not hold (the demo reports it as the step's failure)."""


class _DemoLike(Protocol):
    stack: Any
    sim: SimControl
    realm_b: str

    def put_platform_event(self, event: dict[str, Any]) -> None: ...

    def wait_for_status(
        self, entity_type: str, platform_id: str, status: str, *, at_least: int = 1, timeout: float = 90
    ) -> None: ...


def _invoice_event(firm_id: str, platform_id: str, number: str) -> dict[str, Any]:
    """The invoice sample (605.00, no tax, no platform services) as a new invoice of the demo firm."""
    path = REPO_ROOT / "events" / "platform" / "invoice_created.json"
    event: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    detail = event["detail"]
    detail.update(firm_id=firm_id, event_id=f"evt-{platform_id}")
    data = detail["data"]
    for line in data["line_items"]:
        line.update(service_id=None, work_type_id=None, tax_rate_id=None, tax_amount=None)
    data.update(id=platform_id, number=number, tax_total="0.00", total="605.00", balance_due="605.00")
    return event


def _webhook_delivered(sim: SimControl, realm_id: str, payment_id: str) -> None:
    """Intuit's webhook for the payment goes now, signed, and the intake accepted it (200)."""
    deliveries = [d for d in sim.flush_webhooks() if d.get("realm_id") == realm_id]
    for delivery in deliveries:
        named = any(c.get("id") == payment_id and c.get("name") == "Payment" for c in delivery["changes"])
        if named and delivery.get("status") == 200:
            print(f"     webhook for payment {payment_id} -> POST /webhooks/intuit 200", flush=True)
            return
    raise InboundDemoFailure(f"no webhook for payment {payment_id} was accepted: {deliveries[-3:]}")


class _Inbox:
    """The platform's subscription to the inbound event types of one firm (a rule into its own queue)."""

    def __init__(self, stack: Any, firm_id: str) -> None:
        c = clients(stack.endpoint_url, stack.region)
        self._sqs, self._events = c["sqs"], c["events"]
        self._bus = stack.resources.physical["EventBus"]
        self.url = self._sqs.create_queue(QueueName="platform-inbox-inbound-demo")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        pattern = {
            "source": ["qbsync"],
            "detail-type": list(INBOUND_EVENT_TYPES),
            "detail": {"firm_id": [firm_id]},
        }
        self._events.put_rule(
            Name="platform-inbound-demo", EventBusName=self._bus, EventPattern=json.dumps(pattern)
        )
        self._events.put_targets(
            Rule="platform-inbound-demo", EventBusName=self._bus, Targets=[{"Id": "inbox", "Arn": arn}]
        )
        self.received: list[tuple[str, dict[str, Any]]] = []

    def wait_for(self, count: int, timeout: float) -> None:
        """Long-poll until ``count`` events arrived in all."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [t for t, _ in self.received]
                raise InboundDemoFailure(
                    f"expected {count} events from qbsync within {timeout:.0f}s, got {kinds}"
                )
            got = self._sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=max(1, min(5, int(remaining)))
            ).get("Messages", [])
            for message in got:
                body = json.loads(message["Body"])
                self.received.append((body["detail-type"], body["detail"]))
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def close(self) -> None:
        self._events.remove_targets(Rule="platform-inbound-demo", EventBusName=self._bus, Ids=["inbox"])
        self._events.delete_rule(Name="platform-inbound-demo", EventBusName=self._bus)
        self._sqs.delete_queue(QueueUrl=self.url)


def _qbo_ids(demo: _DemoLike, realm: str) -> tuple[dict[str, str], str]:
    """QuickBooks ids of the step's invoices (by their qbsync marker) and of their customer."""
    out: dict[str, str] = {}
    customer = ""
    wanted = {platform_id for platform_id, _ in INVOICES}
    for invoice in demo.sim.entities(realm, "Invoice"):
        marker = _MARKER.search(str(invoice.get("PrivateNote") or ""))
        if marker is not None and marker.group(1) in wanted:
            out[marker.group(1)] = invoice["Id"]
            customer = invoice["CustomerRef"]["value"]
    if len(out) != len(INVOICES):
        raise InboundDemoFailure(f"the step's invoices are not in QuickBooks: found {sorted(out)}")
    return out, customer


def payments_from_quickbooks(demo: _DemoLike, firm_id: str, timeout: float = 90.0) -> str:
    """The step (see the module doc); returns its one-line result."""
    realm = demo.realm_b
    for platform_id, number in INVOICES:
        demo.put_platform_event(_invoice_event(firm_id, platform_id, number))
    for platform_id, _ in INVOICES:
        demo.wait_for_status("Invoice", platform_id, "synced", timeout=timeout)
    qbo, customer = _qbo_ids(demo, realm)
    first, second = qbo[INVOICES[0][0]], qbo[INVOICES[1][0]]
    accountant = SimAccountant.sign_in(demo.sim, realm)
    today = datetime.now(UTC).date().isoformat()
    inbox = _Inbox(demo.stack, firm_id)
    try:
        partial = accountant.receive_payment(
            customer, [(first, "200.00")], txn_date=today, PaymentRefNum="1187"
        )
        _webhook_delivered(demo.sim, realm, partial["Id"])
        inbox.wait_for(1, timeout)
        split = accountant.receive_payment(customer, [(first, "405.00"), (second, "100.00")], txn_date=today)
        _webhook_delivered(demo.sim, realm, split["Id"])
        inbox.wait_for(3, timeout)
        return _check(inbox.received, partial["Id"], split["Id"])
    finally:
        inbox.close()


def _check(received: list[tuple[str, dict[str, Any]]], partial_id: str, split_id: str) -> str:
    (inv1, _), (inv2, _) = INVOICES
    payments = {d["qbo_payment_id"]: d for t, d in received if t == "Payment Received In QBO"}
    paid = [d for t, d in received if t == "Invoice Paid"]
    if set(payments) != {partial_id, split_id} or len(received) != 3:
        raise InboundDemoFailure(f"the platform received {[t for t, _ in received]}")
    part = {a["invoice_id"]: (a["amount"], a["invoice_balance"]) for a in payments[partial_id]["allocations"]}
    both = {a["invoice_id"]: (a["amount"], a["invoice_balance"]) for a in payments[split_id]["allocations"]}
    if part != {inv1: ("200.00", "405.00")} or both != {inv1: ("405.00", "0.00"), inv2: ("100.00", "505.00")}:
        raise InboundDemoFailure(f"allocations: partial {part}, split {both}")
    if [(p["invoice_id"], p["qbo_payment_id"]) for p in paid] != [(inv1, split_id)]:
        raise InboundDemoFailure(f"Invoice Paid: {paid}")
    return (
        f"partial payment 200.00 on {inv1} (balance 405.00); split payment 505.00 -> {inv1} 405.00 "
        f"(now Paid) + {inv2} 100.00 (balance 505.00); the platform received 2 'Payment Received In QBO' "
        f"and 1 'Invoice Paid'; qbsync's own invoice writes changed nothing"
    )
