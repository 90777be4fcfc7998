"""Issue 11 item 4: an account whose only activity will not sync says why.

Under "accounts with activity" an account is skipped until an invoice or payment of it waits on it. An
invoice that is a draft, or dated before the sync start date, is skipped before it waits on anything, so
its account stays skipped: its reason then says what it has instead of activity ("no invoices or payments
that sync: 1 draft invoice and 1 dated before the sync start date 2026-03-05"), whichever arrives first,
and the account still syncs by itself once one of its invoices does. The real handler on moto and the
simulator; "requeued" are the messages the service put on the real OutboundQueue.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from qbsync.models.record_key import RecordKey

from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, untaxed_invoice

START = date(2026, 3, 5)
NOTHING_YET = "no_activity: the client account has no invoices or payments yet"
SYNCS_BY_ITSELF = "The client account syncs by itself once one of its invoices or payments does"


def _invoice(firm: str, invoice_id: str, *, status: str = "sent", day: str = "2026-03-10", version: int = 2):
    event = untaxed_invoice(firm, number=f"N-{invoice_id}")
    event["detail"]["data"].update(id=invoice_id, status=status, issue_date=day, due_date="2026-04-30")
    event["detail"]["version"] = version
    event["detail"]["event_id"] = f"evt-{invoice_id}-{version}"
    return event


def _account(stack: SyncStack, firm: str) -> Any:
    record = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert record is not None
    return record


def _setup(stack: SyncStack) -> str:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="with_activity", sync_start_date=START)
    stack.deliver_until_drained(platform_event("service_created", firm))
    return firm


def test_an_account_skipped_first_is_re_explained_as_its_invoices_are_skipped(stack: SyncStack) -> None:
    firm = _setup(stack)
    stack.deliver_until_drained(platform_event("client_account_created", firm))
    assert (_account(stack, firm).status, _account(stack, firm).skip_reason) == ("skipped", NOTHING_YET)

    stack.deliver_until_drained(_invoice(firm, "inv-d1", status="draft"))
    assert _account(stack, firm).skip_reason == (
        f"no_activity: no invoices or payments that sync: 1 draft invoice. {SYNCS_BY_ITSELF}"
    )

    stack.deliver_until_drained(
        _invoice(firm, "inv-d2", status="draft"), _invoice(firm, "inv-old", day="2026-03-01")
    )
    account = _account(stack, firm)
    assert account.status == "skipped"
    assert account.skip_reason == (
        "no_activity: no invoices or payments that sync: 2 draft invoices and 1 dated before the sync start "
        f"date 2026-03-05. {SYNCS_BY_ITSELF}"
    )
    assert account.qbo_id is None
    assert all(c["DisplayName"] != "Harbour Bakery LLC" for c in stack.entities("Customer"))

    # a new version of a draft counts nothing twice
    stack.deliver_until_drained(_invoice(firm, "inv-d1", status="draft", version=3))
    assert "2 draft invoices and 1 dated before" in _account(stack, firm).skip_reason

    # the draft is sent: it waits on the account, which syncs by itself, and then the invoice
    stack.deliver_until_drained(_invoice(firm, "inv-d1", version=4))
    account = _account(stack, firm)
    assert account.status == "synced" and account.skip_reason is None and account.qbo_id
    invoice = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-d1"))
    assert invoice is not None and invoice.status == "synced"


def test_an_account_arriving_after_its_skipped_invoices_says_why_at_once(stack: SyncStack) -> None:
    firm = _setup(stack)
    stack.deliver_until_drained(_invoice(firm, "inv-old", day="2026-02-01"))

    stack.deliver_until_drained(platform_event("client_account_created", firm))

    account = _account(stack, firm)
    assert account.status == "skipped"
    assert account.skip_reason == (
        "no_activity: no invoices or payments that sync: 1 invoice dated before the sync start date "
        f"2026-03-05. {SYNCS_BY_ITSELF}"
    )
    # the admin API's record view shows the same reason (GET /sync/records/client_account/acct-100 reads it)


def test_an_invoice_of_an_account_already_in_quickbooks_notes_nothing(stack: SyncStack) -> None:
    firm = _setup(stack)
    stack.deliver_until_drained(platform_event("client_account_created", firm), _invoice(firm, "inv-1"))
    assert _account(stack, firm).status == "synced"

    stack.deliver_until_drained(_invoice(firm, "inv-d", status="draft"))

    key = RecordKey(firm, stack.realm_id, "client_account", "acct-100")
    assert not stack.records.unsynced_activity(key).any
    assert _account(stack, firm).status == "synced"
