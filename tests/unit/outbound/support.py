"""Raw QBO reference JSON shaped like the simulator's default company, and platform record builders."""

from __future__ import annotations

from copy import deepcopy
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from qbsync.models.platform_events import (
    ClientAccount,
    Invoice,
    Payment,
    ProcessingFee,
    Refund,
    Service,
)
from qbsync.qbo.reference import QboReference

ACCOUNTS: list[tuple[str, str, str, str]] = [
    ("35", "Checking", "Bank", "Checking"),
    ("36", "Savings", "Bank", "Savings"),
    ("84", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
    ("4", "Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    ("79", "Sales", "Income", "SalesOfProductIncome"),
    ("80", "Services", "Income", "ServiceFeeIncome"),
    ("81", "Uncategorized Income", "Income", "OtherPrimaryIncome"),
    ("60", "Bank Service Charges", "Expense", "BankCharges"),
    ("61", "Merchant Fees", "Expense", "BankCharges"),
    ("41", "Visa Credit Card", "Credit Card", "CreditCard"),
]
PAYMENT_METHODS = [("1", "Cash"), ("2", "Check"), ("3", "Credit Card"), ("4", "Visa"), ("5", "Direct Debit")]
CUSTOMER_TYPES = [("5000000000000000001", "Individual"), ("5000000000000000002", "Business")]


def raw_accounts() -> list[dict[str, Any]]:
    return [
        {
            "Id": aid,
            "Name": name,
            "AccountType": atype,
            "AccountSubType": sub,
            "Active": True,
            "Classification": "Asset",
            "SyncToken": "0",
        }
        for aid, name, atype, sub in ACCOUNTS
    ]


def raw_payment_methods() -> list[dict[str, Any]]:
    return [
        {
            "Id": pid,
            "Name": name,
            "Type": "CREDIT_CARD" if name in ("Credit Card", "Visa") else "NON_CREDIT_CARD",
        }
        for pid, name in PAYMENT_METHODS
    ]


def raw_customer_types() -> list[dict[str, Any]]:
    return [{"CustomerType": {"Id": cid, "Name": name, "Active": True}} for cid, name in CUSTOMER_TYPES]


def raw_tax_rates() -> list[dict[str, Any]]:
    return [
        {"Id": "1", "Name": "California", "RateValue": 7.25, "Active": True},
        {"Id": "2", "Name": "San Francisco County", "RateValue": 1.375, "Active": True},
        {"Id": "9", "Name": "Old rate", "RateValue": 5, "Active": False},
    ]


def _code(cid: str, name: str, rates: list[str], taxable: bool = True) -> dict[str, Any]:
    return {
        "Id": cid,
        "Name": name,
        "Active": True,
        "Taxable": taxable,
        "TaxGroup": bool(rates),
        "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": r}} for r in rates]},
    }


def raw_tax_codes() -> list[dict[str, Any]]:
    return [
        _code("TAX", "TAX", []),
        _code("NON", "NON", [], taxable=False),
        _code("2", "California", ["1"]),
        _code("3", "San Francisco", ["1", "2"]),
    ]


def raw_preferences(**over: Any) -> dict[str, Any]:
    prefs: dict[str, Any] = {
        "SalesFormsPrefs": {"CustomTxnNumbers": False, "AutoApplyCredit": False},
        "AccountingInfoPrefs": {},
        "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": False},
        "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
    }
    for path, value in over.items():
        section, key = path.split("__")
        prefs[section][key] = value
    return {"Preferences": prefs}


def raw_items() -> list[dict[str, Any]]:
    return [
        {"Id": "1", "Name": "Sales", "Type": "Service", "Active": True},
        {"Id": "2", "Name": "Services", "Type": "Service", "Active": True},
    ]


def make_ref(
    *,
    accounts: list[dict[str, Any]] | None = None,
    customer_types: list[dict[str, Any]] | None = None,
    payment_methods: list[dict[str, Any]] | None = None,
    items: list[dict[str, Any]] | None = None,
    country: str = "US",
    **prefs: Any,
) -> QboReference:
    return QboReference.from_qbo(
        accounts=raw_accounts() if accounts is None else accounts,
        customer_types=raw_customer_types() if customer_types is None else customer_types,
        payment_methods=raw_payment_methods() if payment_methods is None else payment_methods,
        tax_codes=raw_tax_codes(),
        tax_rates=raw_tax_rates(),
        preferences=raw_preferences(**prefs),
        items=raw_items() if items is None else items,
        country=country,
    )


def without(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    out = []
    for row in deepcopy(rows):
        inner = row.get("CustomerType", row)
        if inner["Name"] != name:
            out.append(row)
    return out


def account(**over: Any) -> ClientAccount:
    data: dict[str, Any] = {"id": "acc_1", "name": "Rivera & Sons LLC", "account_type": "company"}
    data.update(over)
    return ClientAccount.model_validate(data)


def service(**over: Any) -> Service:
    data: dict[str, Any] = {"id": "svc_1", "name": "Tax return 1040", "rate": "450.00", "rate_type": "item"}
    data.update(over)
    return Service.model_validate(data)


def line(lid: str, qty: str, rate: str, amount: str | None = None, **over: Any) -> dict[str, Any]:
    if amount is None:
        amount = str((Decimal(qty) * Decimal(rate)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    data: dict[str, Any] = {"id": lid, "service_id": "svc_1", "quantity": qty, "rate": rate, "amount": amount}
    data.update(over)
    return data


def invoice(lines: list[dict[str, Any]] | None = None, tax_total: str = "0.00", **over: Any) -> Invoice:
    lines = lines or [line("l1", "2", "450.00")]
    subtotal = sum((Decimal(x["amount"]) for x in lines), Decimal("0.00"))
    data: dict[str, Any] = {
        "id": "inv_1",
        "number": "PM-10042",
        "account_id": "acc_1",
        "status": "sent",
        "issue_date": "2026-03-02",
        "due_date": "2026-04-01",
        "currency": "USD",
        "line_items": lines,
        "subtotal": f"{subtotal:.2f}",
        "tax_total": tax_total,
        "total": f"{subtotal + Decimal(tax_total):.2f}",
        "balance_due": f"{subtotal + Decimal(tax_total):.2f}",
    }
    data.update(over)
    return Invoice.model_validate(data)


def payment(**over: Any) -> Payment:
    data: dict[str, Any] = {
        "id": "pay_1",
        "account_id": "acc_1",
        "payment_date": "2026-03-10",
        "currency": "USD",
        "amount": "1000.00",
        "method": "card",
        "processor": "stripe",
        "reference": "ch_3Pq8ZZ2eZvKYlo2C0abcdefg",
        "allocations": [
            {"invoice_id": "inv_1", "amount": "900.00"},
            {"invoice_id": "inv_2", "amount": "50.00"},
        ],
    }
    data.update(over)
    return Payment.model_validate(data)


def refund(**over: Any) -> Refund:
    data: dict[str, Any] = {
        "id": "ref_1",
        "payment_id": "pay_1",
        "account_id": "acc_1",
        "refund_date": "2026-03-15",
        "currency": "USD",
        "amount": "200.00",
    }
    data.update(over)
    return Refund.model_validate(data)


def fee(**over: Any) -> ProcessingFee:
    data: dict[str, Any] = {
        "id": "fee_1",
        "payment_id": "pay_1",
        "fee_date": "2026-03-10",
        "currency": "USD",
        "amount": "29.30",
        "processor": "stripe",
    }
    data.update(over)
    return ProcessingFee.model_validate(data)
