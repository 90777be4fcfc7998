"""The pre-flight check of a QuickBooks company (PRODUCT.md J.2, qbsync.connection.preflight): one finding per
thing about the company (and the firm's settings against it) that will make records fail or land differently.

The company is a fake QuickBooks (canned v3 rows shaped like the simulator's default company, answered to the
batch of queries the reference data is read with); the check, the reference parsing and the rules are real.
"""

from __future__ import annotations

import re
from copy import deepcopy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from qbsync.connection.preflight import (
    FINDING_CODES,
    FINDING_KINDS,
    Finding,
    PreflightCheck,
    PreflightResult,
    PreflightResultInvalid,
    company_warnings,
    evaluate,
    preference_warnings,
)
from qbsync.models.firm_settings import FirmSyncSettings, TaxMapping
from qbsync.qbo.client import BatchItemResult
from qbsync.qbo.reference import ReferenceCache, ReferenceDataError

from tests.unit.outbound.support import (
    make_ref,
    raw_accounts,
    raw_customer_types,
    raw_items,
    raw_payment_methods,
    raw_preferences,
    raw_tax_codes,
    raw_tax_rates,
    without,
)

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_795_449_900.0
CLEAN_PREFS = {"SalesFormsPrefs__CustomTxnNumbers": True}
_FROM = re.compile(r"FROM (\w+)")
_IDS = re.compile(r"'(\d+)'")


class FakeQbo:
    """One QuickBooks company as canned v3 rows; records every request (a batch counts as one)."""

    realm_id = "9130355"

    def __init__(self, **over: Any) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {
            "Account": raw_accounts(),
            "CustomerType": raw_customer_types(),
            "PaymentMethod": raw_payment_methods(),
            "TaxCode": raw_tax_codes(),
            "TaxRate": raw_tax_rates(),
            "Item": raw_items(),
            "CompanyInfo": [{"CompanyName": "Smith & Co CPA", "Country": "US"}],
            "Preferences": [raw_preferences(**CLEAN_PREFS)["Preferences"]],
        }
        self.rows.update(over)
        self.requests: list[str] = []

    def _select(self, statement: str) -> list[dict[str, Any]]:
        entity = _FROM.search(statement).group(1)  # type: ignore[union-attr]
        rows = self.rows[entity]
        if entity == "Item" and "Name = 'Sales'" in statement:
            return [r for r in rows if r["Name"] == "Sales"]
        if entity == "Item" and " IN (" in statement:
            wanted = set(_IDS.findall(statement))
            return [r for r in rows if r["Id"] in wanted]
        return deepcopy(rows)

    def batch(self, operations: list[Any], *, request_id: str) -> list[BatchItemResult]:
        self.requests.append("batch")
        return [BatchItemResult(op.bid, op, rows=self._select(op.query)) for op in operations]

    def query(self, statement: str) -> list[dict[str, Any]]:
        self.requests.append(statement)
        return self._select(statement)


def check(qbo: FakeQbo | None = None, settings: FirmSyncSettings | None = None) -> PreflightResult:
    preflight = PreflightCheck(ReferenceCache(lambda: T0), clock=lambda: T0)
    return preflight.run(qbo or FakeQbo(), settings or FirmSyncSettings())  # type: ignore[arg-type]


def prefs(**over: Any) -> list[dict[str, Any]]:
    return [raw_preferences(**{**CLEAN_PREFS, **over})["Preferences"]]


def accounts(**changes: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The default accounts with some changed by id (``None`` removes one)."""
    out = []
    for acct in raw_accounts():
        change = changes.get(f"a{acct['Id']}", {})
        if change is not None:
            out.append({**acct, **change})
    return out


# --- a clean company ------------------------------------------------------------------------------------


def test_a_clean_company_has_no_finding_and_costs_one_quickbooks_request() -> None:
    qbo = FakeQbo()

    result = check(qbo)

    assert result.findings == ()
    assert result.realm_id == "9130355"
    assert result.company_name == "Smith & Co CPA"
    assert result.checked_at == datetime.fromtimestamp(T0, UTC)
    assert result.books_closed_on is None and result.multicurrency is False and result.home_currency == "USD"
    assert qbo.requests == ["batch"]  # reference data, CompanyInfo and Preferences in one batch call


def test_the_check_reads_fresh_data_even_when_the_cache_holds_the_realm() -> None:
    cache = ReferenceCache(lambda: T0)
    qbo = FakeQbo()
    cache.get(qbo)  # type: ignore[arg-type]
    qbo.rows["Preferences"] = prefs(SalesFormsPrefs__CustomTxnNumbers=False)

    result = PreflightCheck(cache, clock=lambda: T0).run(qbo, FirmSyncSettings())  # type: ignore[arg-type]

    assert result.codes == ("custom_txn_numbers_off",)
    assert cache.get(qbo).custom_txn_numbers is False  # type: ignore[arg-type]  # left in the cache
    assert qbo.requests == ["batch", "batch"]


# --- what the Preferences say ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "detail"),
    [
        ({"SalesFormsPrefs__CustomTxnNumbers": False}, "custom_txn_numbers_off", {}),
        ({"SalesFormsPrefs__AutoApplyCredit": True}, "auto_apply_credit_on", {}),
        ({"CurrencyPrefs__MultiCurrencyEnabled": True}, "multicurrency_on", {"home_currency": "USD"}),
        ({"TaxPrefs__PartnerTaxEnabled": True}, "automated_sales_tax_on", {}),
        (
            {"AccountingInfoPrefs__BookCloseDate": "2025-12-31"},
            "books_closed",
            {"books_closed_on": "2025-12-31"},
        ),
    ],
)
def test_each_preference_makes_its_warning(change, code, detail) -> None:
    result = check(FakeQbo(Preferences=prefs(**change)))

    [finding] = result.findings
    assert (finding.code, finding.severity, finding.detail) == (code, "warning", detail)
    assert finding.message and finding.fix and finding.record_types
    assert result.blocking == ()


def test_books_closed_names_the_date_and_the_dated_record_types() -> None:
    result = check(FakeQbo(Preferences=prefs(AccountingInfoPrefs__BookCloseDate="2025-12-31")))

    finding = result.finding("books_closed")
    assert finding is not None
    assert "2025-12-31" in finding.message and "on or before" in finding.message
    assert finding.record_types == ("invoice", "payment", "refund", "fee")
    assert result.books_closed_on == date(2025, 12, 31)


@pytest.mark.parametrize(
    ("start", "found"), [(None, True), ("2025-06-01", True), ("2025-12-31", True), ("2026-01-01", False)]
)
def test_books_closed_before_the_sync_start_date_refuses_nothing(start, found) -> None:
    settings = FirmSyncSettings.model_validate({"sync_start_date": start})
    result = check(FakeQbo(Preferences=prefs(AccountingInfoPrefs__BookCloseDate="2025-12-31")), settings)

    assert ("books_closed" in result.codes) is found
    assert result.books_closed_on == date(2025, 12, 31)  # the planner still knows the date


def test_multicurrency_and_the_home_currency_are_in_the_result() -> None:
    result = check(FakeQbo(Preferences=prefs(CurrencyPrefs__MultiCurrencyEnabled=True)))
    assert result.multicurrency is True and result.home_currency == "USD"


# --- payment methods, customer types, the defaults -------------------------------------------------------


def test_no_active_credit_card_method_blocks_card_payments_only() -> None:
    methods = [dict(m, Active=False) if m["Name"] == "Credit Card" else m for m in raw_payment_methods()]

    [finding] = check(FakeQbo(PaymentMethod=methods)).findings

    assert (finding.code, finding.severity, finding.record_types) == (
        "payment_method_missing",
        "blocking",
        ("payment",),
    )
    assert finding.detail == {"payment_methods": "card", "qbo_names": "Credit Card"}
    assert "'Credit Card'" in finding.message and "card payments" in finding.message


def test_several_missing_methods_make_one_finding() -> None:
    methods = without(without(raw_payment_methods(), "Credit Card"), "Cash")

    [finding] = check(FakeQbo(PaymentMethod=methods)).findings

    assert finding.detail == {"payment_methods": "cash, card", "qbo_names": "Cash, Credit Card"}


def test_no_individual_customer_type_warns_unless_the_settings_choose_one() -> None:
    types = without(raw_customer_types(), "Individual")

    [finding] = check(FakeQbo(CustomerType=types)).findings
    assert (finding.code, finding.severity) == ("individual_customer_type_missing", "warning")
    assert finding.record_types == ("client_account",)

    chosen = FirmSyncSettings(customer_type_id="5000000000000000002")
    assert check(FakeQbo(CustomerType=types), chosen).findings == ()


def test_no_undeposited_funds_blocks_payments_unless_a_deposit_account_is_chosen() -> None:
    gone = accounts(a4={"Active": False})

    [finding] = check(FakeQbo(Account=gone)).findings
    assert (finding.code, finding.severity, finding.record_types) == (
        "undeposited_funds_missing",
        "blocking",
        ("payment",),
    )

    assert check(FakeQbo(Account=gone), FirmSyncSettings(deposit_account_id="35")).findings == ()


def test_no_bank_charges_expense_account_blocks_fees_unless_one_is_chosen() -> None:
    none_left = accounts(a60=None, a61=None)

    [finding] = check(FakeQbo(Account=none_left)).findings
    assert (finding.code, finding.record_types) == ("fee_expense_account_missing", ("fee",))
    assert "No expense account is chosen" in finding.message

    other = [*none_left, {"Id": "70", "Name": "Fees", "AccountType": "Expense", "Active": True}]
    assert check(FakeQbo(Account=other), FirmSyncSettings(fee_expense_account_id="70")).findings == ()


def test_no_uncategorized_income_sends_services_to_the_sales_item() -> None:
    [finding] = check(FakeQbo(Account=accounts(a81=None))).findings

    assert (finding.code, finding.severity) == ("services_use_sales_item", "warning")
    assert (
        check(FakeQbo(Account=accounts(a81=None)), FirmSyncSettings(service_income_account_id="80")).findings
        == ()
    )


def test_no_sales_item_and_no_default_service_blocks_lines_without_a_service() -> None:
    result = check(FakeQbo(Item=[i for i in raw_items() if i["Name"] != "Sales"]))

    [finding] = result.findings
    assert (finding.code, finding.severity) == ("default_service_missing", "blocking")
    assert set(finding.record_types) == {"invoice", "payment", "refund"}


# --- the settings against the company --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "code", "qbo_id"),
    [
        ({"deposit_account_id": "999"}, "deposit_account_missing", "999"),
        ({"deposit_account_id": "41"}, "deposit_account_type", "41"),
        ({"fee_expense_account_id": "999"}, "fee_expense_account_missing", "999"),
        ({"fee_expense_account_id": "35"}, "fee_expense_account_type", "35"),
        ({"service_income_account_id": "999"}, "income_account_missing", "999"),
        ({"service_income_account_id": "60"}, "income_account_type", "60"),
        ({"customer_type_id": "5000000000000000999"}, "customer_type_missing", "5000000000000000999"),
    ],
)
def test_each_setting_that_names_an_unusable_object_blocks(settings, code, qbo_id) -> None:
    setting = next(iter(settings))

    [finding] = check(FakeQbo(), FirmSyncSettings.model_validate(settings)).findings

    assert (finding.code, finding.severity) == (code, "blocking")
    assert finding.detail == {"settings": setting, "qbo_ids": qbo_id, "count": "1"}
    assert f"{setting}: " in finding.message and qbo_id in finding.message


def test_an_inactive_deposit_account_is_missing() -> None:
    qbo = FakeQbo(Account=accounts(a35={"Active": False}))

    [finding] = check(qbo, FirmSyncSettings(deposit_account_id="35")).findings

    assert finding.code == "deposit_account_missing" and "inactive" in finding.message


def test_a_tax_map_pointing_at_missing_tax_objects_blocks_invoices() -> None:
    settings = FirmSyncSettings(
        tax_map={
            "tr_gone": TaxMapping(tax_code_id="77"),
            "tr_wrong": TaxMapping(tax_code_id="2", primary_rate_id="2"),
            "tr_fine": TaxMapping(tax_code_id="3", primary_rate_id="1", secondary_rate_id="2"),
        }
    )

    result = check(FakeQbo(), settings)

    assert result.codes == ("tax_code_invalid", "tax_rate_invalid")
    code, rate = result.findings
    assert code.detail == {"settings": "tax_map.tr_gone.tax_code_id", "qbo_ids": "77", "count": "1"}
    assert rate.detail == {"settings": "tax_map.tr_wrong.primary_rate_id", "qbo_ids": "2", "count": "1"}
    assert code.record_types == rate.record_types == ("invoice",)


def test_under_automated_sales_tax_the_tax_map_is_not_used_so_it_blocks_nothing() -> None:
    settings = FirmSyncSettings(tax_map={"tr_gone": TaxMapping(tax_code_id="77")})

    result = check(FakeQbo(Preferences=prefs(TaxPrefs__PartnerTaxEnabled=True)), settings)

    assert result.codes == ("automated_sales_tax_on",)


def test_work_types_and_the_default_service_are_checked_with_one_item_query() -> None:
    items = [*raw_items(), {"Id": "30", "Name": "Widget", "Type": "NonInventory", "Active": True}]
    qbo = FakeQbo(Item=items)
    settings = FirmSyncSettings(
        work_type_map={"wt_ok": "2", "wt_gone": "77", "wt_goods": "30"}, default_service_id="78"
    )

    result = check(qbo, settings)

    assert result.codes == ("work_type_item_missing", "default_service_missing")
    work, default = result.findings
    assert work.detail == {
        "settings": "work_type_map.wt_gone, work_type_map.wt_goods",
        "qbo_ids": "30, 77",
        "count": "2",
    }
    assert "not a service" in work.message
    assert default.detail["settings"] == "default_service_id"
    assert qbo.requests == ["batch", "SELECT * FROM Item WHERE Id IN ('2', '30', '77', '78')"]


def test_many_problems_of_one_kind_make_one_bounded_finding() -> None:
    settings = FirmSyncSettings(work_type_map={f"wt_{i:02}": str(100 + i) for i in range(30)})

    [finding] = check(FakeQbo(), settings).findings

    assert finding.detail["count"] == "30"
    assert finding.detail["settings"].endswith("(+10 more)")
    assert finding.message.endswith("(and 25 more).")
    assert len(finding.message) < 1000


# --- order, shape, JSON -----------------------------------------------------------------------------------


def test_an_empty_company_has_every_default_finding_once_in_the_documented_order() -> None:
    ref = make_ref(
        accounts=[], customer_types=[], payment_methods=[], items=[], SalesFormsPrefs__AutoApplyCredit=True
    )

    findings = evaluate(ref, FirmSyncSettings(), {})

    codes = [f.code for f in findings]
    assert codes == [
        "undeposited_funds_missing",
        "payment_method_missing",
        "fee_expense_account_missing",
        "default_service_missing",
        "custom_txn_numbers_off",
        "auto_apply_credit_on",
        "individual_customer_type_missing",
        "services_use_sales_item",
    ]
    assert codes == sorted(codes, key=FINDING_CODES.index)
    blocking = [f.blocking for f in findings]
    assert blocking == sorted(blocking, reverse=True)  # blocking first


def test_the_result_round_trips_through_json() -> None:
    qbo = FakeQbo(
        Preferences=prefs(
            AccountingInfoPrefs__BookCloseDate="2025-12-31", CurrencyPrefs__MultiCurrencyEnabled=True
        ),
        PaymentMethod=without(raw_payment_methods(), "Credit Card"),
    )
    result = check(qbo)

    data = result.to_json()

    assert data["format"] == "qbsync.preflight/1"
    assert data["checked_at"] == "2026-11-23T16:05:00.000000Z"
    assert data["books_closed_on"] == "2025-12-31"
    assert PreflightResult.from_json(data) == result
    assert result.blocked_record_types() == {"payment"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "other/1"}, "format"),
        ({"checked_at": "yesterday"}, "checked_at"),
        ({"checked_at": "2026-11-23T13:25:00"}, "checked_at"),
        ({"books_closed_on": "31/12/2025"}, "books_closed_on"),
        ({"multicurrency": "no"}, "multicurrency"),
        ({"realm_id": ""}, "realm_id"),
        ({"findings": {}}, "findings"),
        ({"findings": [{"code": "x", "severity": "fatal"}]}, "findings.severity"),
        (
            {"findings": [{"code": "x", "severity": "warning", "record_types": "invoice"}]},
            "findings.record_types",
        ),
    ],
)
def test_a_malformed_result_is_refused_naming_the_field(change, field) -> None:
    data = {**check().to_json(), **change}

    with pytest.raises(PreflightResultInvalid) as err:
        PreflightResult.from_json(data)

    assert str(err.value).startswith(field)


def test_findings_name_only_syncable_record_types_and_string_details() -> None:
    ref = make_ref(accounts=[], customer_types=[], payment_methods=[], items=[])
    for finding in evaluate(ref, FirmSyncSettings(deposit_account_id="9"), {}):
        assert isinstance(finding, Finding)
        assert all(isinstance(v, str) for v in finding.detail.values())


def test_the_connection_warning_is_the_preflight_finding() -> None:
    ref = make_ref()  # custom transaction numbers off
    [finding] = [f for f in evaluate(ref, FirmSyncSettings(), {}) if f.code == "custom_txn_numbers_off"]
    [warning] = company_warnings(ref)
    assert warning.message == f"{finding.message} {finding.fix}"


def test_preferences_that_are_not_an_object_are_quickbooks_data_errors() -> None:
    with pytest.raises(ReferenceDataError):
        preference_warnings(["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(ReferenceDataError):
        preference_warnings({"AccountingInfoPrefs": {"BookCloseDate": "soon"}})


def test_every_finding_code_is_documented_with_its_severity() -> None:
    doc = (ROOT / "docs" / "preflight.md").read_text()
    for kind in FINDING_KINDS:
        row = re.search(rf"^\| `{kind.code}` \| {kind.severity} \|", doc, re.MULTILINE)
        assert row, f"docs/preflight.md has no row for {kind.code} ({kind.severity})"
