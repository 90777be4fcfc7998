"""What changed in QuickBooks on a synced record (qbsync.inbound.differences): the fields that matter,
amounts was/now to the cent, client data named but never shown."""

from __future__ import annotations

from typing import Any

import pytest
from qbsync.inbound.differences import (
    CONTACT_FIELDS,
    Difference,
    accepted_contact,
    differences,
    explain_delete,
    explain_edit,
    written_by_qbsync,
)

INVOICE: dict[str, Any] = {
    "id": "inv_1",
    "number": "INV-1042",
    "account_id": "ca_1",
    "currency": "USD",
    "issue_date": "2026-11-02",
    "due_date": "2026-12-02",
    "total": "605.00",
    "line_items": [{"id": "l1", "amount": "485.00"}, {"id": "l2", "amount": "120.00"}],
}


def _qbo_invoice(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "Id": "45",
        "SyncToken": "1",
        "TotalAmt": 605.0,
        "TxnDate": "2026-11-02",
        "DueDate": "2026-12-02",
        "CustomerRef": {"value": "58"},
        "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": 485.0},
            {"DetailType": "SalesItemLineDetail", "Amount": 120.0},
            {"DetailType": "SubTotalLineDetail", "Amount": 605.0},
        ],
        "PrivateNote": "qbsync:Invoice:inv_1",
    }
    obj.update(changes)
    return obj


def test_an_unchanged_invoice_has_no_differences_whatever_else_qbo_changed() -> None:
    obj = _qbo_invoice(PrivateNote="edited memo", Balance=0, EmailStatus="EmailSent")
    assert differences("invoice", INVOICE, obj, customer_id="58") == []


def test_every_amount_change_of_an_invoice_is_named_was_now_to_the_cent() -> None:
    obj = _qbo_invoice(
        TotalAmt=650.01,
        Line=[
            {"DetailType": "SalesItemLineDetail", "Amount": 485.0},
            {"DetailType": "SalesItemLineDetail", "Amount": 165.01},
        ],
        DueDate="2026-12-15",
        CustomerRef={"value": "61"},
    )
    found = differences("invoice", INVOICE, obj, customer_id="58")
    assert found == [
        Difference("total", "605.00 USD", "650.01 USD"),
        Difference("line 2 amount", "120.00 USD", "165.01 USD"),
        Difference("due date", "2026-12-02", "2026-12-15"),
        Difference("customer", "QuickBooks customer 58", "QuickBooks customer 61"),
    ]
    text = explain_edit("invoice", INVOICE, found)
    assert text == (
        "The invoice INV-1042 was edited in QuickBooks after it was synced: total was 605.00 USD, now "
        "650.01 USD; line 2 amount was 120.00 USD, now 165.01 USD; due date was 2026-12-02, now 2026-12-15; "
        "customer was QuickBooks customer 58, now QuickBooks customer 61."
    )


def test_a_line_removed_in_quickbooks_is_counted() -> None:
    obj = _qbo_invoice(TotalAmt=485.0, Line=[{"DetailType": "SalesItemLineDetail", "Amount": 485.0}])
    fields = [d.field for d in differences("invoice", INVOICE, obj, customer_id=None)]
    assert fields == ["total", "number of lines"]


@pytest.mark.parametrize(
    ("record_type", "date_field"),
    [("payment", "payment_date"), ("refund", "refund_date")],
)
def test_transactions_compare_amount_date_and_customer(record_type: str, date_field: str) -> None:
    data = {"amount": "100.00", "currency": "USD", date_field: "2026-11-05", "account_id": "ca_1"}
    same = {"TotalAmt": 100, "TxnDate": "2026-11-05", "CustomerRef": {"value": "58"}}
    assert differences(record_type, data, same, customer_id="58") == []
    changed = {"TotalAmt": 90.5, "TxnDate": "2026-11-06", "CustomerRef": {"value": "58"}}
    assert differences(record_type, data, changed, customer_id="58") == [
        Difference("amount", "100.00 USD", "90.50 USD"),
        Difference("date", "2026-11-05", "2026-11-06"),
    ]

    moved = {"TotalAmt": 100, "TxnDate": "2026-11-05", "CustomerRef": {"value": "61"}}
    assert [d.field for d in differences(record_type, data, moved, customer_id="58")] == ["customer"]


def test_a_fee_compares_amount_and_date_not_a_customer() -> None:
    """A fee is a Purchase paid to the processor (EntityRef a vendor, no CustomerRef): the client account the
    platform's fee names is not a customer on it, so a fee as qbsync wrote it matches (the drift report
    listed every synced fee as edited before)."""
    data = {"amount": "3.20", "currency": "USD", "fee_date": "2026-11-05", "account_id": "ca_1"}
    written = {"TotalAmt": 3.2, "TxnDate": "2026-11-05", "EntityRef": {"value": "77", "type": "Vendor"}}
    assert differences("fee", data, written, customer_id="58") == []
    changed = {**written, "TotalAmt": 3.5, "TxnDate": "2026-11-06"}
    assert differences("fee", data, changed, customer_id="58") == [
        Difference("amount", "3.20 USD", "3.50 USD"),
        Difference("date", "2026-11-05", "2026-11-06"),
    ]


ACCOUNT: dict[str, Any] = {
    "id": "ca_1",
    "name": "Rivera & Sons LLC",
    "email": "ap@rivera.example",
    "phones": [{"type": "mobile", "number": "+1 555 0100"}, {"type": "work", "number": "555-0101"}],
    "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345"},
    "contact_ids": ["co_1"],
}


def _customer(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "DisplayName": "Rivera & Sons LLC",
        "PrimaryEmailAddr": {"Address": "ap@rivera.example"},
        "Mobile": {"FreeFormNumber": "+1 555 0100"},
        "PrimaryPhone": {"FreeFormNumber": "555-0101"},
        "BillAddr": {"Line1": "1 Main St", "City": "Springfield", "PostalCode": "12345"},
        "Active": True,
    }
    obj.update(changes)
    return obj


def test_customer_contact_fields_are_named_never_shown() -> None:
    assert differences("client_account", ACCOUNT, _customer()) == []
    obj = _customer(
        PrimaryEmailAddr={"Address": "billing@rivera.example"},
        PrimaryPhone={"FreeFormNumber": "555-0199"},
        BillAddr={"Line1": "2 Side St", "City": "Springfield", "PostalCode": "12345"},
    )
    found = differences("client_account", ACCOUNT, obj)
    assert [d.field for d in found] == ["email", "phone numbers", "billing address"]
    assert {d.field for d in found} <= CONTACT_FIELDS
    text = explain_edit("client_account", ACCOUNT, found)
    for secret in ("billing@rivera.example", "ap@rivera.example", "555", "Side St", "Rivera"):
        assert secret not in text
    assert "email changed" in text


@pytest.mark.parametrize(
    "fields",
    [("email",), ("phone numbers",), ("billing address",), ("email", "phone numbers", "billing address")],
)
def test_accepted_contact_fields_take_quickbooks_values_and_compare_equal(fields: tuple[str, ...]) -> None:
    obj = _customer(
        PrimaryEmailAddr={"Address": "billing@rivera.example"},
        Mobile=None,
        PrimaryPhone={"FreeFormNumber": "555-0199"},
        Fax={"FreeFormNumber": "555-0102"},
        BillAddr={"Line1": "2 Side St", "City": "Springfield", "CountrySubDivisionCode": "IL"},
    )
    accepted = accepted_contact(ACCOUNT, obj, fields)
    assert {d.field for d in differences("client_account", accepted, obj)} == {
        "email",
        "phone numbers",
        "billing address",
    } - set(fields)
    assert ACCOUNT["email"] == "ap@rivera.example"  # a copy: the input is unchanged
    assert accepted["name"] == ACCOUNT["name"] and accepted["contact_ids"] == ["co_1"]


def test_accepting_a_removed_email_and_address_empties_them() -> None:
    obj = _customer(PrimaryEmailAddr=None, BillAddr=None)
    accepted = accepted_contact(ACCOUNT, obj, ("email", "billing address"))
    assert accepted["email"] is None and accepted["billing_address"] is None
    assert differences("client_account", accepted, obj) == []


def test_a_renamed_or_deactivated_customer_is_not_a_contact_change() -> None:
    found = differences("client_account", ACCOUNT, _customer(DisplayName="Rivera Holdings", Active=False))
    assert found == [Difference("display name"), Difference("status", "active", "inactive")]
    assert not {d.field for d in found} <= CONTACT_FIELDS


def test_service_item_rate_and_name() -> None:
    data = {"name": "Payroll", "rate": "95.00", "description": None}
    assert differences("service", data, {"Name": "Payroll", "UnitPrice": 95}) == []
    assert differences("service", data, {"Name": "Payroll+", "UnitPrice": 99.5}) == [
        Difference("name", "Payroll", "Payroll+"),
        Difference("rate", "95.00", "99.50"),
    ]


def test_a_deletion_is_explained_with_the_invoice_number() -> None:
    assert explain_delete("invoice", INVOICE).startswith("The invoice INV-1042 was deleted in QuickBooks")
    assert explain_delete("payment", {"amount": "1.00"}).startswith("The payment was deleted")


def test_only_the_objects_qbsync_wrote_are_compared_for_a_name_list() -> None:
    ours = {"DisplayName": "A", "Notes": "qbsync:ClientAccount:acct-1"}
    assert written_by_qbsync("client_account", "acct-1", "Customer", ours)
    assert not written_by_qbsync("client_account", "acct-2", "Customer", ours)  # another record's object
    assert not written_by_qbsync("client_account", "acct-1", "Customer", {"DisplayName": "A"})  # linked
    # items carry no marker (the mapper writes none): a service is always compared
    assert written_by_qbsync("service", "svc-1", "Item", {"Name": "Audit"})
    assert written_by_qbsync("invoice", "inv-1", "Invoice", {"TotalAmt": 1})  # transactions: always ours
