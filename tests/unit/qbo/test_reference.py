"""QuickBooks reference data (qbsync.qbo.reference): read from the company's objects, refused if malformed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from qbsync.errors import DataError, InfrastructureError
from qbsync.qbo.reference import QboReference, ReferenceDataError

from tests.unit.outbound.support import (
    make_ref,
    raw_accounts,
    raw_customer_types,
    raw_items,
    raw_payment_methods,
    raw_preferences,
    raw_tax_codes,
    raw_tax_rates,
)


def test_from_qbo_reads_accounts_types_methods_and_taxes() -> None:
    ref = make_ref()
    ufunds = ref.undeposited_funds()
    assert ufunds is not None and ufunds.id == "4" and ufunds.account_type == "Other Current Asset"
    assert ref.account("35") is not None and ref.account("35").account_sub_type == "Checking"  # type: ignore[union-attr]
    assert ref.account("nope") is None
    assert ref.payment_method_named("credit card").id == "3"  # type: ignore[union-attr]
    assert ref.customer_type_named("Individual").id == "5000000000000000001"  # type: ignore[union-attr]
    assert ref.tax_code("3").sales_rate_ids == ("1", "2")  # type: ignore[union-attr]
    assert ref.tax_rate("2").rate_value == Decimal("1.375")  # type: ignore[union-attr]
    assert ref.sales_item_id == "1"
    assert ref.uncategorized_income().id == "81"  # type: ignore[union-attr]
    assert ref.default_fee_expense_account().id == "60"  # type: ignore[union-attr]
    assert ref.is_us and ref.home_currency == "USD" and not ref.multicurrency


def test_from_qbo_reads_preferences() -> None:
    ref = make_ref(
        SalesFormsPrefs__CustomTxnNumbers=True,
        AccountingInfoPrefs__BookCloseDate="2025-12-31",
        TaxPrefs__PartnerTaxEnabled=True,
        CurrencyPrefs__MultiCurrencyEnabled=True,
        SalesFormsPrefs__AutoApplyCredit=True,
    )
    assert ref.auto_apply_credit is True and make_ref().auto_apply_credit is False
    assert ref.custom_txn_numbers is True
    assert ref.book_close_date == date(2025, 12, 31)
    assert ref.partner_tax_enabled is True
    assert ref.multicurrency is True


def test_from_qbo_accepts_bare_preferences_and_no_sales_item() -> None:
    prefs = raw_preferences()["Preferences"]
    ref = QboReference.from_qbo(
        raw_accounts(),
        raw_customer_types(),
        raw_payment_methods(),
        raw_tax_codes(),
        raw_tax_rates(),
        prefs,
        [],
    )
    assert ref.sales_item_id is None and ref.book_close_date is None


def test_inactive_entries_are_not_found_by_name() -> None:
    accounts = raw_accounts()
    for acct in accounts:
        if acct["AccountSubType"] == "UndepositedFunds":
            acct["Active"] = False
    methods = [dict(m, Active=False) if m["Name"] == "Credit Card" else m for m in raw_payment_methods()]
    ref = make_ref(accounts=accounts, payment_methods=methods)
    assert ref.undeposited_funds() is None
    assert ref.payment_method_named("Credit Card") is None


@pytest.mark.parametrize(
    "accounts",
    [[{"Name": "x", "AccountType": "Bank"}], [{"Id": "1", "AccountType": "Bank"}], ["not an object"]],
)
def test_from_qbo_rejects_malformed_objects(accounts: list) -> None:
    with pytest.raises(ReferenceDataError) as err:
        make_ref(accounts=accounts)
    # QuickBooks' answer, not the firm's data: never an error-center entry
    assert isinstance(err.value, InfrastructureError)
    assert not isinstance(err.value, DataError)


def test_from_qbo_rejects_bad_book_close_date() -> None:
    with pytest.raises(ReferenceDataError, match="BookCloseDate"):
        make_ref(AccountingInfoPrefs__BookCloseDate="yesterday")


def test_from_qbo_rejects_non_list() -> None:
    with pytest.raises(ReferenceDataError):
        QboReference.from_qbo(
            raw_accounts(),
            raw_customer_types(),
            raw_payment_methods(),
            raw_tax_codes(),
            raw_tax_rates(),
            raw_preferences(),
            {"Item": []},  # type: ignore[arg-type]
        )
    assert raw_items()  # the helper stays a list
