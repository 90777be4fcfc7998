"""Issue 11 item 2: nothing waits on what will not come.

"Blocked" means "waiting for something on its way". A record whose prerequisite will not reach QuickBooks
as things stand (skipped by the settings, failed with an open error) is skipped naming that prerequisite
and why, and comes back by itself when the prerequisite later syncs; a record blocked on a prerequisite
that then fails settles the same way, link by link along a chain. The real handler on moto and the
simulator; "requeued" are the messages the service put on the real OutboundQueue.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from qbsync.models.record_key import RecordKey

from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, untaxed_invoice


def _payment_of(firm: str, invoice_id: str, amount: str) -> dict[str, Any]:
    event = platform_event(
        "payment_created", firm, allocations=[{"invoice_id": invoice_id, "amount": amount}], amount=amount
    )
    event["detail"]["data"]["deposit"] = None
    return event


def _account(firm: str, name: str, version: int = 1) -> dict[str, Any]:
    event = platform_event("client_account_created", firm, account_type="company")
    event["detail"]["data"]["name"] = name
    event["detail"]["version"] = version
    event["detail"]["event_id"] = f"evt-acct-{version}"
    return event


def _record(stack: SyncStack, firm: str, record_type: str, platform_id: str) -> Any:
    record = stack.records.get(RecordKey(firm, stack.realm_id, record_type, platform_id))
    assert record is not None, (record_type, platform_id)
    return record


def test_a_payment_for_an_invoice_before_the_start_date_says_why_and_comes_back(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all", sync_start_date=date(2026, 3, 3))
    invoice = untaxed_invoice(firm)  # dated 2026-03-01: before the start date
    payment = _payment_of(firm, "inv-400", "605.00")  # dated 2026-03-05: after it
    stack.deliver_until_drained(
        platform_event("client_account_created", firm), platform_event("service_created", firm)
    )
    stack.deliver_until_drained(invoice)
    stack.deliver_until_drained(payment)

    skipped = _record(stack, firm, "payment", "pay-500")
    assert skipped.status == "skipped"  # not blocked: the invoice will not sync as the settings stand
    assert skipped.skip_reason == (
        "waiting_on_prerequisite: waiting on invoice inv-400 is skipped (dated 2026-03-01, before the sync "
        "start date 2026-03-03). This payment syncs by itself once that syncs"
    )
    assert skipped.waiting_on == (("invoice", "inv-400"),)
    assert stack.entities("Payment") == []

    # the firm moves its start date back and syncs the invoice again: the payment follows by itself
    stack.set_settings(firm, sync_accounts="all", sync_start_date=date(2026, 3, 1))
    stack.deliver_until_drained(invoice)

    assert _record(stack, firm, "invoice", "inv-400").status == "synced"
    paid = _record(stack, firm, "payment", "pay-500")
    assert paid.status == "synced" and paid.waiting_on == () and paid.skip_reason is None
    assert len(stack.entities("Payment")) == 1


def test_records_blocked_on_a_prerequisite_that_fails_settle_link_by_link_and_come_back(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    stack.deliver_until_drained(platform_event("service_created", firm))
    # the invoice and its payment arrive before their client account: blocked, it is on its way
    stack.deliver_until_drained(untaxed_invoice(firm))
    stack.deliver_until_drained(_payment_of(firm, "inv-400", "605.00"))
    assert _record(stack, firm, "invoice", "inv-400").status == "blocked"
    assert _record(stack, firm, "payment", "pay-500").status == "blocked"

    # the account arrives named like the seeded vendor "Stripe": QuickBooks refuses it (6240)
    stack.deliver_until_drained(_account(firm, "Stripe"))

    assert _record(stack, firm, "client_account", "acct-100").status == "failed"
    invoice = _record(stack, firm, "invoice", "inv-400")
    payment = _record(stack, firm, "payment", "pay-500")
    assert (invoice.status, payment.status) == ("skipped", "skipped")
    assert "client account acct-100 failed: its error is in the error center (Accounts)" in (
        invoice.skip_reason
    )
    assert "client account acct-100 failed" in payment.skip_reason
    assert ("invoice", "inv-400") in payment.waiting_on
    errors, _ = stack.errors.list(firm)
    assert [(e.entity_type, e.platform_id) for e in errors] == [("client_account", "acct-100")]  # one to fix

    # the firm renames the account on the platform: it syncs, and so do the invoice and then the payment
    stack.deliver_until_drained(_account(firm, "Stripe Client Co", version=2))

    states = {
        t: _record(stack, firm, t, i).status
        for t, i in (("client_account", "acct-100"), ("invoice", "inv-400"), ("payment", "pay-500"))
    }
    assert states == {"client_account": "synced", "invoice": "synced", "payment": "synced"}
    assert (len(stack.entities("Invoice")), len(stack.entities("Payment"))) == (1, 1)


def test_a_refund_waiting_for_its_payment_settles_when_the_settings_skip_that_payment(
    stack: SyncStack,
) -> None:
    """The refund arrives first and waits for its payment (on its way); the payment is recorded by hand and
    the firm does not sync those: the refund is skipped naming the payment, not left blocked."""
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all", sync_offline_payments=False)
    stack.deliver_until_drained(
        platform_event("client_account_created", firm), platform_event("service_created", firm)
    )
    stack.deliver_until_drained(untaxed_invoice(firm))
    stack.deliver_until_drained(platform_event("refund_created", firm, invoice_id="inv-400"))
    assert _record(stack, firm, "refund", "ref-600").status == "blocked"

    manual = _payment_of(firm, "inv-400", "605.00")
    manual["detail"]["data"].update(offline=True, method="check", processor=None, reference=None)
    stack.deliver_until_drained(manual)

    assert _record(stack, firm, "payment", "pay-500").status == "skipped"
    refund = _record(stack, firm, "refund", "ref-600")
    assert refund.status == "skipped" and refund.waiting_on == (("payment", "pay-500"),)
    assert refund.skip_reason.startswith(
        "waiting_on_prerequisite: waiting on payment pay-500 is skipped (manually recorded payments are not "
        "synced by the firm's settings)"
    )
    assert stack.entities("RefundReceipt") == []
