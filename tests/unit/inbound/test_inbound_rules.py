"""The pure rules of the inbound side: collapsing notices, recognising our own writes, judging a payment."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from qbsync.inbound.changes import ChangedObject, collapse
from qbsync.inbound.payments import (
    Accepted,
    InvoiceLink,
    NotApplied,
    Rejected,
    allocations_of,
    evaluate,
    event_id_for,
)
from qbsync.inbound.processor import is_own_write
from qbsync.models.messages import EntityChange
from qbsync.repositories.records import Intent, SyncRecord

TODAY = date(2026, 3, 10)


def _record(**kw: Any) -> SyncRecord:
    base: dict[str, Any] = {
        "firm_id": "f1",
        "realm_id": "r1",
        "entity_type": "invoice",
        "platform_id": "inv-1",
        "status": "synced",
        "qbo_entity": "Invoice",
        "qbo_id": "145",
        "sync_token": "2",
    }
    base.update(kw)
    return SyncRecord(**base)


def _obj(token: str | None) -> ChangedObject:
    body = None if token is None else {"Id": "145", "SyncToken": token}
    return ChangedObject("Invoice", "145", "Update" if body else "Delete", body)


# --- collapse ----------------------------------------------------------------------------------------


def test_collapse_keeps_one_change_per_object_the_newest() -> None:
    changes = [
        EntityChange("Payment", "9", "Create", "2026-03-10T10:00:00Z"),
        EntityChange("Invoice", "145", "Update", "2026-03-10T10:00:01Z"),
        EntityChange("Payment", "9", "Update", "2026-03-10T10:05:00Z"),
        EntityChange("Payment", "9", "Create", "2026-03-10T10:00:00Z"),  # an Intuit retry of the first
    ]
    out = collapse(changes)
    assert set(out) == {("Payment", "9"), ("Invoice", "145")}
    assert out[("Payment", "9")].operation == "Update"


def test_collapse_without_timestamps_keeps_the_last_arrival() -> None:
    out = collapse([EntityChange("Payment", "9", "Update"), EntityChange("Payment", "9", "Delete")])
    assert out[("Payment", "9")].operation == "Delete"


def test_a_merge_also_deletes_the_merged_away_object() -> None:
    out = collapse([EntityChange("Customer", "5", "Merge", "2026-03-10T10:00:00Z", deleted_id="6")])
    assert out[("Customer", "5")].operation == "Merge"
    assert out[("Customer", "6")].operation == "Delete"


# --- echo rule ---------------------------------------------------------------------------------------


def test_our_own_version_is_an_echo_and_any_other_is_not() -> None:
    assert is_own_write(_record(sync_token="2"), _obj("2"))
    assert not is_own_write(_record(sync_token="2"), _obj("3"))
    assert not is_own_write(_record(sync_token="2"), _obj("1"))


def test_a_write_in_flight_recognises_its_own_result() -> None:
    update = Intent("update", 4, "req-1", "2", 1.0)
    assert is_own_write(_record(sync_token="2", intent=update), _obj("3"))
    assert not is_own_write(_record(sync_token="2", intent=update), _obj("4"))
    create = Intent("create", 1, "req-2", None, 1.0)
    assert is_own_write(_record(sync_token=None, qbo_id=None, intent=create), _obj("0"))


def test_a_deletion_is_ours_only_after_our_own_delete_or_void() -> None:
    assert is_own_write(_record(applied_op="delete"), _obj(None))
    assert is_own_write(_record(applied_op="void"), _obj(None))
    assert not is_own_write(_record(applied_op="update"), _obj(None))


# --- the payment's verdict ----------------------------------------------------------------------------


def _payment(lines: list[tuple[str, str]], **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": "311",
        "SyncToken": "0",
        "TxnDate": "2026-03-09",
        "CustomerRef": {"value": "58"},
        "TotalAmt": float(sum(Decimal(a) for _, a in lines)),
        "UnappliedAmt": 0,
        "Line": [{"Amount": float(a), "LinkedTxn": [{"TxnId": i, "TxnType": "Invoice"}]} for i, a in lines],
    }
    body.update(kw)
    return body


def _invoice(qbo_id: str, total: str, balance: str, customer: str = "58") -> dict[str, Any]:
    return {
        "Id": qbo_id,
        "TotalAmt": float(total),
        "Balance": float(balance),
        "CustomerRef": {"value": customer},
        "LinkedTxn": [{"TxnId": "311", "TxnType": "Payment"}],
    }


def _links(*ids: str, total: str | None = "100.00") -> dict[str, InvoiceLink | None]:
    return {i: InvoiceLink(f"inv-{i}", Decimal(total) if total else None, "acct-1") for i in ids}


def _judge(payment: dict[str, Any], invoices: list[dict[str, Any]], **kw: Any) -> Any:
    args: dict[str, Any] = {
        "invoices": {i["Id"]: i for i in invoices},
        "links": _links(*(i["Id"] for i in invoices)),
        "today": TODAY,
        "book_close": None,
    }
    args.update(kw)
    return evaluate(payment, **args)


def test_a_partial_payment_is_accepted_with_its_allocation() -> None:
    verdict = _judge(_payment([("145", "40.00")]), [_invoice("145", "100.00", "60.00")])
    assert isinstance(verdict, Accepted)
    assert [(a.invoice_id, a.amount, a.balance) for a in verdict.allocations] == [
        ("inv-145", Decimal("40.00"), Decimal("60.00"))
    ]
    assert verdict.account_id == "acct-1" and verdict.amount == Decimal("40.00")


def test_a_split_payment_allocates_per_invoice_and_lines_on_one_invoice_add_up() -> None:
    payment = _payment([("145", "100.00"), ("146", "30.00"), ("146", "5.00")])
    assert allocations_of(payment) == {"145": Decimal("100.00"), "146": Decimal("35.00")}
    verdict = _judge(payment, [_invoice("145", "100.00", "0.00"), _invoice("146", "100.00", "65.00")])
    assert isinstance(verdict, Accepted)
    assert {a.qbo_invoice_id: a.balance for a in verdict.allocations} == {
        "145": Decimal("0.00"),
        "146": Decimal("65.00"),
    }


def test_an_unlinked_invoice_is_not_synced() -> None:
    verdict = _judge(
        _payment([("145", "40.00"), ("999", "10.00")]),
        [_invoice("145", "100.00", "60.00"), _invoice("999", "10.00", "0.00")],
        links={**_links("145"), "999": None},
    )
    assert isinstance(verdict, Rejected) and verdict.code == "payment_invoice_not_synced"
    assert "999" in verdict.message


def test_customers_must_match() -> None:
    verdict = _judge(_payment([("145", "40.00")]), [_invoice("145", "100.00", "60.00", customer="77")])
    assert isinstance(verdict, Rejected) and verdict.code == "payment_customer_mismatch"


@pytest.mark.parametrize(("txn_date", "refused"), [("2026-03-12", False), ("2026-03-13", True)])
def test_a_date_more_than_two_days_ahead_is_refused(txn_date: str, refused: bool) -> None:
    verdict = _judge(_payment([("145", "40.00")], TxnDate=txn_date), [_invoice("145", "100.00", "60.00")])
    assert isinstance(verdict, Rejected) == refused
    if refused:
        assert verdict.code == "payment_date_future" and "2026-03-13" in verdict.message


@pytest.mark.parametrize(("txn_date", "refused"), [("2026-02-28", True), ("2026-03-01", False)])
def test_a_date_on_or_before_the_closing_date_is_refused(txn_date: str, refused: bool) -> None:
    verdict = _judge(
        _payment([("145", "40.00")], TxnDate=txn_date),
        [_invoice("145", "100.00", "60.00")],
        book_close=date(2026, 2, 28),
    )
    assert isinstance(verdict, Rejected) == refused
    if refused:
        assert verdict.code == "payment_period_closed"


def test_paying_more_than_the_platform_invoice_total_is_an_overpayment() -> None:
    # the invoice was raised to 150 in QuickBooks and paid in full there; the platform invoice is 100
    verdict = _judge(_payment([("145", "150.00")]), [_invoice("145", "150.00", "0.00")])
    assert isinstance(verdict, Rejected) and verdict.code == "payment_overpays_invoice"
    exact = _judge(_payment([("145", "100.00")]), [_invoice("145", "100.00", "0.00")])
    assert isinstance(exact, Accepted)


def test_an_unapplied_rest_is_a_credit_not_an_overpayment() -> None:
    payment = _payment([("145", "100.00")], TotalAmt=120.0, UnappliedAmt=20.0)
    verdict = _judge(payment, [_invoice("145", "100.00", "0.00")])
    assert isinstance(verdict, Accepted)
    assert verdict.amount == Decimal("120.00") and verdict.unapplied == Decimal("20.00")


def test_a_payment_applied_to_nothing_is_not_applied_and_a_void_says_so() -> None:
    assert _judge({"Id": "311", "TotalAmt": 0, "Line": []}, []) == NotApplied("voided")
    assert _judge({"Id": "311", "TotalAmt": 50.0, "Line": []}, []) == NotApplied("unapplied")


def test_event_ids_are_stable_per_version_and_distinct_across_versions_and_kinds() -> None:
    assert event_id_for("r", "311", "0", "received") == event_id_for("r", "311", "0", "received")
    assert event_id_for("r", "311", "0", "received") != event_id_for("r", "311", "1", "received")
    assert event_id_for("r", "311", "0", "paid", "145") != event_id_for("r", "311", "0", "paid", "146")
