"""The drift report (issue 15 item 2) through the whole local stack, driven only from outside: the admin API
over HTTP, the platform's events on the bus, the accountant in the simulator. The edit is made under the
simulator's "lose this webhook" fault (as in test_cdc_catch_up), so only the report can find it.

1. The invoice syncs; the report is clean.
2. The accountant changes a line amount in QuickBooks; ``POST /drift/run`` reports an ``amount_mismatch``
   with was/now to the cent (and the customer's balance difference it explains) and opens its error (the
   invoice is "failed").
3. The firm fixes it with the error's Resync; QuickBooks is back to 605.00 and the next report is clean.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from local.qbo_sim.client import SimAccountant
from tests.e2e.test_cdc_catch_up import _edit_unnotified, _invoice
from tests.fixtures.events import subscribe
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
    return f"firm-e2e-drift-{secrets.token_hex(4)}"


def _report(local_stack: Any, token: str) -> dict[str, Any]:
    answer = admin_api(local_stack, token, "POST", "/drift/run")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_amount_changed_in_quickbooks_is_reported_and_fixed_by_resync(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    assert _report(local_stack, token)["findings"] == []

    _edit_unnotified(qbo_sim, SimAccountant.sign_in(qbo_sim.control, qbo_company), qbo_company, 125.0)
    report = _report(local_stack, token)

    kinds = {f["platform_id"]: f for f in report["findings"]}
    assert {(f["kind"], pid) for pid, f in kinds.items()} == {
        ("amount_mismatch", "inv-400"),
        ("balance_mismatch", "acct-100"),  # the customer's balance follows the invoice
    }
    finding = kinds["inv-400"]
    assert finding["new"] is True
    assert {"field": "total", "was": "605.00 USD", "now": "650.00 USD"} in finding["differences"]
    assert kinds["acct-100"]["explained_by"] == ["invoice#inv-400"]
    status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)
    stored = admin_api(local_stack, token, "GET", "/drift")
    assert stored.status_code == 200 and stored.json()["report_id"] == report["report_id"]

    resync = admin_api(local_stack, token, "POST", f"/errors/{finding['error_id']}/resync")
    assert resync.status_code == 202, resync.text
    status_inbox.received.clear()
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    assert float(_invoice(qbo_sim, qbo_company)["TotalAmt"]) == 605.0
    assert _report(local_stack, token)["findings"] == []


# ---- each kind, injected in the simulator, reported exactly and fixed by its action -----------------------


def _accountant(qbo_sim: Any, realm_id: str) -> SimAccountant:
    return SimAccountant.sign_in(qbo_sim.control, realm_id)


def _lost(deliveries: list[dict[str, Any]], realm_id: str) -> list[dict[str, Any]]:
    return [d for d in deliveries if d["outcome"] == "lost" and d["realm_id"] == realm_id]


def _unnotified(qbo_sim: Any, realm_id: str, changed: tuple[str, str], change: Callable[[], Any]) -> None:
    """Make ``change()`` in QuickBooks with its webhook lost (what was pending is delivered first); checks
    that the notification lost names ``changed`` (entity, QuickBooks id)."""
    control = qbo_sim.control
    control.flush_webhooks()
    lost_before = len(_lost(control.webhook_deliveries(), realm_id))
    control.lose_webhooks(count=1, realm_id=realm_id)
    change()
    lost = _lost(control.flush_webhooks(), realm_id)[lost_before:]
    assert changed in [(c["name"], c["id"]) for d in lost for c in d["changes"]], lost


def _ours(qbo_sim: Any, realm_id: str, entity: str, marker: str, platform_id: str) -> list[dict[str, Any]]:
    """The live QuickBooks objects carrying qbsync's marker of the record."""
    field = "Notes" if entity == "Customer" else "PrivateNote"
    return marked(qbo_sim.control.entities(realm_id, entity), field, marker, platform_id)


def _by_record(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {(f["entity_type"], f["platform_id"]): f for f in report["findings"]}
    assert len(found) == len(report["findings"]), report["findings"]  # at most one finding a record
    return found


def _kinds(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["kind"], f["entity_type"], f["platform_id"]) for f in report["findings"]}


def _diffs(finding: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(d["field"], d["was"], d["now"]) for d in finding["differences"]]


def _synced_invoice(local_stack: Any, firm_id: str, status_inbox: StatusInbox, deadline: float) -> None:
    """acct-100 and inv-400 (605.00, lines on the "Sales" item) synced; the first report is clean."""
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)


def test_an_invoice_deleted_in_quickbooks_is_reported_and_created_again_once_by_resync(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    _synced_invoice(local_stack, firm_id, status_inbox, deadline)
    assert _report(local_stack, token)["findings"] == []
    (original,) = _ours(qbo_sim, qbo_company, "Invoice", "Invoice", "inv-400")

    # deleted by the accountant, its webhook delivered: the webhook worker raises deleted_in_quickbooks
    _accountant(qbo_sim, qbo_company).delete("Invoice", original["Id"], str(original["SyncToken"]))
    qbo_sim.control.flush_webhooks()
    failed = status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)
    report = _report(local_stack, token)

    assert _kinds(report) == {
        ("deleted_in_quickbooks", "invoice", "inv-400"),
        ("balance_mismatch", "client_account", "acct-100"),  # QuickBooks' customer owes nothing now
    }
    found = _by_record(report)
    deleted = found[("invoice", "inv-400")]
    assert deleted["error_id"] == failed["error_id"] and deleted["qbo_id"] is None
    assert deleted["differences"] == [] and deleted["actions"] == ["resync", "relink", "unlink"]
    balance = found[("client_account", "acct-100")]
    assert _diffs(balance) == [("balance", "605.00 USD", "0.00 USD")]
    assert balance["explained_by"] == ["invoice#inv-400"] and balance["error_id"] is None

    resync = admin_api(local_stack, token, "POST", f"/errors/{deleted['error_id']}/resync")
    assert resync.status_code == 202, resync.text
    status_inbox.received.clear()
    synced = status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    (again,) = _ours(qbo_sim, qbo_company, "Invoice", "Invoice", "inv-400")  # created once, no duplicate
    assert again["Id"] == synced["qbo_id"] != original["Id"]
    assert Decimal(str(again["TotalAmt"])) == Decimal("605.00")
    assert _report(local_stack, token)["findings"] == []


def test_a_missing_invoice_is_relinked_to_the_one_the_accountant_re_entered(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    _synced_invoice(local_stack, firm_id, status_inbox, deadline)
    accountant = _accountant(qbo_sim, qbo_company)
    (original,) = _ours(qbo_sim, qbo_company, "Invoice", "Invoice", "inv-400")

    # deleted with its webhook lost, then entered again by hand (no qbsync marker): only the report sees it
    _unnotified(
        qbo_sim,
        qbo_company,
        ("Invoice", original["Id"]),
        lambda: accountant.delete("Invoice", original["Id"], str(original["SyncToken"])),
    )
    keep = ("CustomerRef", "TxnDate", "DueDate", "DocNumber", "CurrencyRef")
    body = {k: original[k] for k in keep if k in original}
    body["Line"] = [
        {k: v for k, v in line.items() if k not in ("Id", "LineNum")}
        for line in original["Line"]
        if line.get("DetailType") == "SalesItemLineDetail"
    ]
    re_entered = accountant.create("Invoice", body)
    report = _report(local_stack, token)

    # the re-entered invoice carries the customer's balance: only the missing invoice
    assert _kinds(report) == {("missing_in_quickbooks", "invoice", "inv-400")}
    (missing,) = report["findings"]
    assert missing["qbo_entity"] == "Invoice" and missing["qbo_id"] == original["Id"]
    assert missing["differences"] == [] and missing["new"] is True
    assert missing["actions"] == ["resync", "relink", "unlink"]
    status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)

    relink = admin_api(
        local_stack, token, "POST", f"/errors/{missing['error_id']}/relink", {"qbo_id": re_entered["Id"]}
    )
    assert relink.status_code == 200, relink.text
    assert relink.json()["outcome"] == "relinked" and relink.json()["record_status"] == "synced"
    status_inbox.received.clear()
    assert status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)["qbo_id"] == re_entered["Id"]
    assert _report(local_stack, token)["findings"] == []
    # nothing was written: QuickBooks has the accountant's invoice only, none of qbsync's
    assert _ours(qbo_sim, qbo_company, "Invoice", "Invoice", "inv-400") == []
    assert [i["Id"] for i in qbo_sim.control.entities(qbo_company, "Invoice")] == [re_entered["Id"]]


def test_a_payment_deleted_in_quickbooks_explains_the_invoice_and_balance_findings_until_resynced(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    _synced_invoice(local_stack, firm_id, status_inbox, deadline)
    payment = sample_event("payment_created", firm_id)
    payment["detail"]["data"].update(
        amount="605.00", allocations=[{"invoice_id": "inv-400", "amount": "605.00"}]
    )
    put_on_bus(local_stack, payment)
    status_inbox.wait_for("Payment", "pay-500", "synced", deadline)
    assert _report(local_stack, token)["findings"] == []
    (original,) = _ours(qbo_sim, qbo_company, "Payment", "Payment", "pay-500")

    accountant = _accountant(qbo_sim, qbo_company)
    _unnotified(
        qbo_sim,
        qbo_company,
        ("Payment", original["Id"]),
        lambda: accountant.delete("Payment", original["Id"], str(original["SyncToken"])),
    )
    report = _report(local_stack, token)

    assert _kinds(report) == {
        ("missing_in_quickbooks", "payment", "pay-500"),
        ("paid_status_mismatch", "invoice", "inv-400"),
        ("balance_mismatch", "client_account", "acct-100"),
    }
    found = _by_record(report)
    missing = found[("payment", "pay-500")]
    assert missing["qbo_id"] == original["Id"] and missing["error_id"] and missing["differences"] == []
    paid = found[("invoice", "inv-400")]
    assert _diffs(paid) == [("balance", "0.00 USD", "605.00 USD"), ("paid status", "paid", "open")]
    assert paid["explained_by"] == ["payment#pay-500"] and paid["error_id"] is None and paid["actions"] == []
    balance = found[("client_account", "acct-100")]
    assert _diffs(balance) == [("balance", "0.00 USD", "605.00 USD")]
    assert set(balance["explained_by"]) == {"payment#pay-500", "invoice#inv-400"}
    status_inbox.wait_for("Payment", "pay-500", "failed", deadline)

    resync = admin_api(local_stack, token, "POST", f"/errors/{missing['error_id']}/resync")
    assert resync.status_code == 202, resync.text
    status_inbox.received.clear()
    synced = status_inbox.wait_for("Payment", "pay-500", "synced", deadline)
    (again,) = _ours(qbo_sim, qbo_company, "Payment", "Payment", "pay-500")  # created once
    assert again["Id"] == synced["qbo_id"] != original["Id"]
    assert _report(local_stack, token)["findings"] == []  # the derived findings went with it


def test_a_customer_email_edited_in_quickbooks_is_accepted_then_a_later_edit_is_resynced(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    contacts = subscribe(
        local_stack.resources, "Contact Updated", detail={"firm_id": [firm_id]}, name="e2e-contacts"
    )
    try:
        _synced_invoice(local_stack, firm_id, status_inbox, deadline)
        (customer,) = _ours(qbo_sim, qbo_company, "Customer", "ClientAccount", "acct-100")
        accountant = _accountant(qbo_sim, qbo_company)

        # 1. the accountant gives the customer another email; the firm keeps QuickBooks' one (accept)
        _edit_customer(qbo_sim, accountant, qbo_company, customer["Id"], "ap@harbour-bakery.example")
        report = _report(local_stack, token)
        assert _kinds(report) == {("edited_in_quickbooks", "client_account", "acct-100")}
        (edited,) = report["findings"]
        assert _diffs(edited) == [("email", None, None)]  # client data named, never shown
        assert edited["actions"] == ["resync", "accept", "unlink"] and edited["qbo_id"] == customer["Id"]
        status_inbox.wait_for("ClientAccount", "acct-100", "failed", deadline)

        accept = admin_api(local_stack, token, "POST", f"/errors/{edited['error_id']}/accept-quickbooks")
        assert accept.status_code == 200, accept.text
        assert accept.json()["outcome"] == "accepted" and accept.json()["changed_fields"] == ["email"]
        status_inbox.received.clear()
        status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)  # the accept's own event
        (sent,) = [e["detail"] for e in contacts.receive(wait_seconds=5)]
        assert sent["changed_fields"] == ["email"] and sent["contact"]["email"] == "ap@harbour-bakery.example"
        assert _report(local_stack, token)["findings"] == []
        assert _email(qbo_sim, qbo_company, customer["Id"]) == "ap@harbour-bakery.example"  # kept

        # 2. edited again; this time the firm pushes the platform's version back (resync)
        _edit_customer(qbo_sim, accountant, qbo_company, customer["Id"], "other@harbour-bakery.example")
        report = _report(local_stack, token)
        assert _kinds(report) == {("edited_in_quickbooks", "client_account", "acct-100")}
        (edited,) = report["findings"]
        status_inbox.wait_for("ClientAccount", "acct-100", "failed", deadline)
        status_inbox.received.clear()
        resync = admin_api(local_stack, token, "POST", f"/errors/{edited['error_id']}/resync")
        assert resync.status_code == 202, resync.text
        status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)
        assert _email(qbo_sim, qbo_company, customer["Id"]) == "ap@harbour-bakery.example"
        assert _report(local_stack, token)["findings"] == []
    finally:
        contacts.close()


def _edit_customer(qbo_sim: Any, accountant: SimAccountant, realm_id: str, qbo_id: str, email: str) -> None:
    current = accountant.read("Customer", qbo_id)
    body = {"Id": qbo_id, "SyncToken": current["SyncToken"], "PrimaryEmailAddr": {"Address": email}}
    _unnotified(qbo_sim, realm_id, ("Customer", qbo_id), lambda: accountant.update("Customer", body))


def _email(qbo_sim: Any, realm_id: str, qbo_id: str) -> str:
    (customer,) = [c for c in qbo_sim.control.entities(realm_id, "Customer") if c["Id"] == qbo_id]
    return str(customer["PrimaryEmailAddr"]["Address"])


def test_a_service_renamed_in_quickbooks_is_unlinked_and_quickbooks_keeps_its_name(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    put_on_bus(local_stack, sample_event("service_created", firm_id))
    qbo_id = status_inbox.wait_for("Service", "svc-300", "synced", deadline)["qbo_id"]
    assert _report(local_stack, token)["findings"] == []
    accountant = _accountant(qbo_sim, qbo_company)
    item = accountant.read("Item", qbo_id)
    body = {"Id": qbo_id, "SyncToken": item["SyncToken"], "Name": "Monthly books"}
    _unnotified(qbo_sim, qbo_company, ("Item", qbo_id), lambda: accountant.update("Item", body))

    report = _report(local_stack, token)

    assert _kinds(report) == {("edited_in_quickbooks", "service", "svc-300")}
    (edited,) = report["findings"]
    assert _diffs(edited) == [("name", "Bookkeeping (monthly)", "Monthly books")]
    assert edited["actions"] == ["resync", "unlink"]
    status_inbox.wait_for("Service", "svc-300", "failed", deadline)
    unlink = admin_api(local_stack, token, "POST", f"/errors/{edited['error_id']}/unlink")
    assert unlink.status_code == 200, unlink.text
    assert unlink.json()["outcome"] == "unlinked" and unlink.json()["record_status"] == "skipped"
    status_inbox.received.clear()
    status_inbox.wait_for("Service", "svc-300", "skipped", deadline)
    assert _report(local_stack, token)["findings"] == []
    assert accountant.read("Item", qbo_id)["Name"] == "Monthly books"  # QuickBooks keeps its version
