"""Issue 11 item 4: an invoice that lands in QuickBooks without its platform number says so.

A company with custom transaction numbers off numbers every invoice itself (1001, 1002, ...), so the
platform's number is not sent: the synced record carries a note naming QuickBooks' number (the admin API's
record view shows it) and its "Sync Status Changed: synced" event carries it too. With custom numbers on
the platform's number is sent and there is no note. The real handler on moto and the simulator (which
numbers sales forms itself when custom numbers are off, as QuickBooks does).
"""

from __future__ import annotations

from typing import Any

from qbsync import wiring
from qbsync.models.record_key import RecordKey

from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, untaxed_invoice


def _sync_prerequisites(stack: SyncStack, firm: str) -> None:
    stack.set_settings(firm, sync_accounts="all")
    for name in ("client_account_created", "service_created"):
        assert stack.deliver(platform_event(name, firm)) == {"batchItemFailures": []}


def _synced_events(stack: SyncStack, entity_type: str) -> list[dict[str, Any]]:
    return [
        d
        for t, d in stack.published()
        if t == "Sync Status Changed" and d["entity_type"] == entity_type and d["status"] == "synced"
    ]


def test_an_invoice_numbered_by_quickbooks_says_so_on_its_record_and_event(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.sim.control.set_preferences(stack.realm_id, custom_txn_numbers=False)
    _sync_prerequisites(stack, firm)
    stack.published()

    assert stack.deliver(untaxed_invoice(firm, number="INV-1042")) == {"batchItemFailures": []}

    [invoice] = stack.entities("Invoice")
    number = invoice["DocNumber"]
    assert number != "INV-1042" and number.isdigit()  # QuickBooks' own number
    record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert record is not None and record.status == "synced"
    assert record.note == (
        f"QuickBooks numbered it {number}: custom transaction numbers are off in the company, so the "
        "platform's number INV-1042 was not sent"
    )
    [event] = _synced_events(stack, "Invoice")
    assert event["note"] == record.note

    # the firm turns custom numbers on in QuickBooks: the next version of the invoice is sent with the
    # platform's number, and the note goes
    stack.sim.control.set_preferences(stack.realm_id, custom_txn_numbers=True)
    wiring.reset()  # a new container: the company's reference data is read again (cached 5 minutes)
    update = untaxed_invoice(firm, number="INV-1042")
    update["detail"]["version"] = 3
    update["detail"]["event_id"] = "evt-inv-3"
    assert stack.deliver(update) == {"batchItemFailures": []}

    [invoice] = stack.entities("Invoice")
    assert invoice["DocNumber"] == "INV-1042"
    record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert record is not None and record.status == "synced" and record.note is None
    [event] = _synced_events(stack, "Invoice")
    assert event.get("note") is None


def test_an_invoice_sent_with_its_platform_number_has_no_note(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.sim.control.set_preferences(stack.realm_id, custom_txn_numbers=True)
    _sync_prerequisites(stack, firm)
    stack.published()

    assert stack.deliver(untaxed_invoice(firm, number="INV-1042")) == {"batchItemFailures": []}

    [invoice] = stack.entities("Invoice")
    assert invoice["DocNumber"] == "INV-1042"
    record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert record is not None and record.status == "synced" and record.note is None
    [event] = _synced_events(stack, "Invoice")
    assert event.get("note") is None
