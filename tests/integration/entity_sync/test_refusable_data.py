"""Well-typed data QuickBooks would refuse (issue 11): the event is accepted, the record fails with an
explained error in its category before any QuickBooks call, and the platform's correction syncs it and
resolves the error. Real entity-sync handler on moto + the simulator."""

from __future__ import annotations

from qbsync.models.record_key import RecordKey

from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, untaxed_invoice


def _posts(stack: SyncStack) -> int:
    return sum(1 for r in stack.sim.control.requests(stack.realm_id, limit=500) if r.get("method") == "POST")


def test_a_service_with_a_negative_rate_is_a_services_error_until_the_platform_fixes_it(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    before = _posts(stack)

    assert stack.deliver(platform_event("service_created", firm, rate="-150.00")) == {"batchItemFailures": []}

    record = stack.records.get(RecordKey(firm, stack.realm_id, "service", "svc-300"))
    assert record is not None and record.status == "failed"
    assert record.error is not None and record.error.code == "service_rate_negative"
    [entry] = stack.errors.list(firm)[0]
    assert (entry.category, entry.code, entry.platform_id) == ("Services", "service_rate_negative", "svc-300")
    assert "negative rate" in entry.message and entry.fix
    raised = [d for t, d in stack.published() if t == "Sync Error Raised"]
    assert [(d["category"], d["platform_id"]) for d in raised] == [("Services", "svc-300")]
    assert _posts(stack) == before  # QuickBooks was never asked
    assert [i for i in stack.entities("Item") if i["Name"] == "Bookkeeping (monthly)"] == []

    fixed = platform_event("service_updated", firm, rate="150.00")
    fixed["detail"]["version"] = 2
    assert stack.deliver(fixed) == {"batchItemFailures": []}

    record = stack.records.get(RecordKey(firm, stack.realm_id, "service", "svc-300"))
    assert record is not None and record.status == "synced"
    assert [i["UnitPrice"] for i in stack.entities("Item") if i["Name"] == "Bookkeeping (monthly)"] == [150]
    assert stack.errors.list(firm)[0] == []  # the open error is resolved


def test_refusable_invoice_data_fails_at_once_instead_of_waiting_for_its_client_account(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    broken = untaxed_invoice(firm)
    broken["detail"]["data"]["line_items"][0]["amount"] = "999.00"  # not 3.5 x 150.00
    broken["detail"]["data"].update(subtotal="1079.00", total="1079.00", balance_due="1079.00")

    assert stack.deliver(broken) == {"batchItemFailures": []}  # consumed: no receive count burnt

    record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert record is not None and record.status == "failed"  # not blocked on acct-100
    assert record.error is not None and record.error.code == "line_amount_mismatch"
    [entry] = stack.errors.list(firm)[0]
    assert (entry.category, entry.code) == ("Invoices", "line_amount_mismatch")
    assert "ln-1" in entry.message
    assert stack.requeued() == []


def test_an_out_of_range_date_and_a_non_positive_payment_are_errors_in_their_categories(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    dated = untaxed_invoice(firm)
    dated["detail"]["data"].update(issue_date="0226-03-01", due_date=None)
    payment = platform_event("payment_created", firm, amount="0.00")

    assert stack.deliver(dated, payment) == {"batchItemFailures": []}

    entries = {(e.entity_type, e.category, e.code) for e in stack.errors.list(firm)[0]}
    assert entries == {
        ("invoice", "Invoices", "date_out_of_range"),
        ("payment", "Payments", "amount_not_positive"),
    }
