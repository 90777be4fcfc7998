"""The drift report's pure comparison (qbsync.reconcile.compare): each kind, money to the cent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from qbsync.inbound.differences import Difference
from qbsync.reconcile.compare import (
    AMOUNT_MISMATCH,
    BALANCE_MISMATCH,
    DELETED,
    EDITED,
    MISSING,
    PAID_STATUS_MISMATCH,
    QBO_CREDIT_MEMO,
    QBO_PAYMENT,
    Compared,
    FromQuickBooks,
    compare,
    money,
)

ACCOUNT = {"id": "acct-1", "name": "Harbor LLC"}


def _invoice(total: str = "605.00", **more: Any) -> dict[str, Any]:
    return {
        "id": "inv-1",
        "number": "INV-1",
        "account_id": "acct-1",
        "issue_date": "2026-03-01",
        "currency": "USD",
        "total": total,
        "line_items": [{"amount": "525.00"}, {"amount": "80.00"}],
        **more,
    }


def _qbo_invoice(total: float = 605.0, balance: float | None = None, line2: float = 80.0) -> dict[str, Any]:
    return {
        "Id": "145",
        "TotalAmt": total,
        "Balance": total if balance is None else balance,
        "TxnDate": "2026-03-01",
        "CustomerRef": {"value": "58"},
        "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": 525.0},
            {"DetailType": "SalesItemLineDetail", "Amount": line2},
            {"DetailType": "SubTotalLineDetail", "Amount": total},
        ],
    }


def _customer(balance: float) -> dict[str, Any]:
    # an object qbsync wrote: its marker names the record (a linked one's own fields are not compared)
    return {
        "Id": "58",
        "DisplayName": "Harbor LLC",
        "Active": True,
        "Balance": balance,
        "Notes": "qbsync:ClientAccount:acct-1",
    }


def _rows(invoice_obj: Any, customer_balance: float, *extra: Compared) -> list[Compared]:
    return [
        Compared("client_account", "acct-1", ACCOUNT, _customer(customer_balance), "Customer", "58"),
        Compared("invoice", "inv-1", _invoice(), invoice_obj, "Invoice", "145"),
        *extra,
    ]


def test_money_is_decimal_to_the_cent_never_a_float_on_the_way() -> None:
    assert money(0.1 + 0.2) == Decimal("0.30")
    assert money("605") == Decimal("605.00")
    assert money(None) is None and money("x") is None and money(True) is None


def test_records_that_match_have_no_finding() -> None:
    assert compare(_rows(_qbo_invoice(), 605.0)) == []


def test_a_linked_object_quickbooks_does_not_return_is_missing_and_its_balance_follows() -> None:
    findings = compare(_rows(None, 0.0))
    assert [(f.kind, f.platform_id, f.qbo_id) for f in findings] == [
        (MISSING, "inv-1", "145"),
        (BALANCE_MISMATCH, "acct-1", "58"),
    ]
    missing, balance = findings
    assert missing.actions == ("resync", "relink", "unlink")
    assert balance.differences == (Difference("balance", "605.00 USD", "0.00 USD"),)
    assert balance.explained_by == (("invoice", "inv-1"),) and balance.actions == ()


def test_an_amount_changed_in_quickbooks_is_an_amount_mismatch_naming_was_and_now_to_the_cent() -> None:
    findings = compare(_rows(_qbo_invoice(total=605.01, line2=80.01), 605.01))
    kinds = [(f.kind, f.platform_id) for f in findings]
    assert kinds == [(AMOUNT_MISMATCH, "inv-1"), (BALANCE_MISMATCH, "acct-1")]
    assert findings[0].differences == (
        Difference("total", "605.00 USD", "605.01 USD"),
        Difference("line 2 amount", "80.00 USD", "80.01 USD"),
    )
    assert findings[0].actions == ("resync", "unlink")
    assert findings[1].differences == (Difference("balance", "605.00 USD", "605.01 USD"),)


def test_another_field_changed_is_edited_and_a_contact_only_edit_can_be_accepted() -> None:
    obj = {**_qbo_invoice(), "DueDate": "2026-04-30"}
    customer = {**_customer(605.0), "PrimaryEmailAddr": {"Address": "new@example.com"}}
    rows = [
        Compared(
            "client_account", "acct-1", {**ACCOUNT, "email": "old@example.com"}, customer, "Customer", "58"
        ),
        Compared("invoice", "inv-1", _invoice(), obj, "Invoice", "145"),
    ]
    findings = {f.entity_type: f for f in compare(rows)}
    assert findings["invoice"].kind == EDITED
    assert findings["invoice"].differences == (Difference("due date", None, "2026-04-30"),)
    account = findings["client_account"]
    assert account.kind == EDITED and account.differences == (Difference("email"),)  # named, never shown
    assert "accept" in account.actions


def test_an_invoice_open_in_quickbooks_but_paid_on_the_platform_is_a_paid_status_mismatch() -> None:
    payment = Compared(
        "payment",
        "pay-1",
        {
            "account_id": "acct-1",
            "amount": "605.00",
            "allocations": [{"invoice_id": "inv-1", "amount": "605.00"}],
        },
        None,  # deleted in QuickBooks: the invoice is open again there
        "Payment",
        "212",
    )
    findings = compare(_rows(_qbo_invoice(balance=605.0), 605.0, payment))
    by_kind = {f.kind: f for f in findings}
    assert set(by_kind) == {MISSING, PAID_STATUS_MISMATCH, BALANCE_MISMATCH}
    paid = by_kind[PAID_STATUS_MISMATCH]
    assert paid.platform_id == "inv-1"
    assert paid.differences == (
        Difference("balance", "0.00 USD", "605.00 USD"),
        Difference("paid status", "paid", "open"),
    )
    assert paid.explained_by == (("payment", "pay-1"),)
    assert by_kind[BALANCE_MISMATCH].differences == (Difference("balance", "0.00 USD", "605.00 USD"),)
    assert set(by_kind[BALANCE_MISMATCH].explained_by) == {("invoice", "inv-1"), ("payment", "pay-1")}


def test_a_partial_payment_and_an_unapplied_amount_count_to_the_cent() -> None:
    payment = Compared(
        "payment",
        "pay-1",
        {
            "account_id": "acct-1",
            "amount": "300.10",
            "allocations": [{"invoice_id": "inv-1", "amount": "300.05"}],
        },
        {"Id": "212", "TotalAmt": 300.10, "TxnDate": None, "CustomerRef": {"value": "58"}},
        "Payment",
        "212",
    )
    # QuickBooks: invoice balance 304.95, customer balance 304.95 - 0.05 unapplied = 304.90
    assert compare(_rows(_qbo_invoice(balance=304.95), 304.90, payment)) == []
    findings = compare(_rows(_qbo_invoice(balance=304.95), 304.95, payment))
    assert [(f.kind, f.differences) for f in findings] == [
        (BALANCE_MISMATCH, (Difference("balance", "304.90 USD", "304.95 USD"),))
    ]
    paid = compare(_rows(_qbo_invoice(balance=305.0), 305.0, payment))[0]
    assert paid.kind == PAID_STATUS_MISMATCH
    assert paid.differences == (Difference("balance", "304.95 USD", "305.00 USD"),)  # both partially paid


def test_a_record_already_deleted_in_quickbooks_is_listed_without_a_read() -> None:
    row = Compared("invoice", "inv-1", _invoice(), None, None, None, drift_code=DELETED)
    findings = compare([row])
    assert [(f.kind, f.qbo_id) for f in findings] == [(DELETED, None)]
    assert findings[0].actions == ("resync", "relink", "unlink")


def test_a_service_on_the_sales_item_is_compared_only_for_the_item_being_there_and_active() -> None:
    service = {"id": "svc-1", "name": "Bookkeeping (monthly)", "rate": "150.00", "active": True}
    sales = {"Id": "1", "Name": "Sales", "UnitPrice": 0, "Active": True}

    def on_sales(obj: Any) -> list[tuple[str, tuple[Difference, ...]]]:
        row = Compared("service", "svc-1", service, obj, "Item", "1", sales_item=True)
        return [(f.kind, f.differences) for f in compare([row])]

    assert on_sales(sales) == []  # another name and rate: QuickBooks' own item
    assert on_sales({**sales, "Active": False}) == [(EDITED, (Difference("status", "active", "inactive"),))]
    assert on_sales(None) == [(MISSING, ())]
    # the same item linked to a service of its own (not noted as on "Sales") is compared field by field
    row = Compared("service", "svc-1", service, sales, "Item", "1")
    assert [f.kind for f in compare([row])] == [EDITED]


def test_the_fingerprint_tells_a_changed_difference_from_the_same_one() -> None:
    a = compare(_rows(_qbo_invoice(total=605.01, line2=80.01), 605.01))[1]
    b = compare(_rows(_qbo_invoice(total=605.01, line2=80.01), 605.01))[1]
    c = compare(_rows(_qbo_invoice(total=605.02, line2=80.02), 605.02))[1]
    assert a.fingerprint == b.fingerprint != c.fingerprint


def _from_qbo(
    *, delivered: bool, amount: str = "605.00", unapplied: str = "0.00", **more: Any
) -> FromQuickBooks:
    """A payment the accountant recorded in QuickBooks (QBO id 77) on inv-1, forwarded by inbound sync."""
    fields: dict[str, Any] = {
        "account_id": "acct-1",
        "allocations": {"inv-1": Decimal(amount)},
        "unapplied": Decimal(unapplied),
    }
    fields.update(more)
    return FromQuickBooks("77", "r1:77", delivered, **fields)


def _paid_in_qbo(balance: float) -> dict[str, Any]:
    return _qbo_invoice(balance=balance) | {"LinkedTxn": [{"TxnId": "77", "TxnType": "Payment"}]}


def test_payments_recorded_in_quickbooks_and_delivered_to_the_platform_count_as_the_platforms() -> None:
    # paid in full in QuickBooks, the platform was told: the report is clean
    assert compare(_rows(_paid_in_qbo(0.0), 0.0), [_from_qbo(delivered=True)]) == []
    # partly, with 50.00 kept as the customer's credit: invoice 405.00 open, customer 405.00 - 50.00
    partial = _from_qbo(delivered=True, amount="200.00", unapplied="50.00")
    assert compare(_rows(_paid_in_qbo(405.0), 355.0), [partial]) == []
    # without them the same QuickBooks data is drift on both (what the report said before)
    assert {f.kind for f in compare(_rows(_paid_in_qbo(0.0), 0.0))} == {
        PAID_STATUS_MISMATCH,
        BALANCE_MISMATCH,
    }


def test_a_payment_from_quickbooks_not_delivered_yet_explains_the_difference_it_makes() -> None:
    findings = {f.kind: f for f in compare(_rows(_paid_in_qbo(0.0), 0.0), [_from_qbo(delivered=False)])}

    assert set(findings) == {PAID_STATUS_MISMATCH, BALANCE_MISMATCH}
    paid = findings[PAID_STATUS_MISMATCH]
    assert paid.differences == (
        Difference("balance", "605.00 USD", "0.00 USD"),
        Difference("paid status", "open", "paid"),
    )
    assert paid.explained_by == ((QBO_PAYMENT, "r1:77"),)
    assert set(findings[BALANCE_MISMATCH].explained_by) == {("invoice", "inv-1"), (QBO_PAYMENT, "r1:77")}


def test_a_refused_payment_from_quickbooks_is_found_through_the_invoice_it_is_linked_to() -> None:
    # rejected (an error-center entry): nothing announced, so no allocations - QuickBooks' LinkedTxn names it
    refused = FromQuickBooks("77", "r1:77", False)
    findings = {f.kind: f for f in compare(_rows(_paid_in_qbo(0.0), 0.0), [refused])}
    assert findings[PAID_STATUS_MISMATCH].explained_by == ((QBO_PAYMENT, "r1:77"),)
    assert set(findings[BALANCE_MISMATCH].explained_by) == {("invoice", "inv-1"), (QBO_PAYMENT, "r1:77")}
    # one on another invoice explains nothing here
    elsewhere = FromQuickBooks("78", "r1:78", False, allocations={"inv-9": Decimal("10.00")})
    assert compare(_rows(_qbo_invoice(), 605.0), [elsewhere]) == []


def test_a_quickbooks_credit_memo_explains_its_clients_balance_not_a_payment_of_its_id() -> None:
    # credit memo 77 of the client (QuickBooks-only): the client's balance names it, by its own type
    memo = FromQuickBooks("77", "r1:77", False, account_id="acct-1", kind=QBO_CREDIT_MEMO)
    [balance] = compare(_rows(_qbo_invoice(), 575.0), [memo])
    assert balance.kind == BALANCE_MISMATCH and balance.explained_by == ((QBO_CREDIT_MEMO, "r1:77"),)
    # an invoice paid in QuickBooks by Payment 77 is not explained by the credit memo of the same id
    findings = {f.kind: f for f in compare(_rows(_paid_in_qbo(0.0), 0.0), [memo])}
    assert findings[PAID_STATUS_MISMATCH].explained_by == ()
