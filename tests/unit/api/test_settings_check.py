"""settings_problems: each way the settings can miss the QuickBooks company, named with its setting."""

from __future__ import annotations

from qbsync.api.settings_check import item_ids, settings_problems
from qbsync.models.firm_settings import FirmSyncSettings, TaxMapping
from qbsync.qbo.reference import QboReference


def _account(id_: str, name: str, type_: str, active: bool = True) -> dict:
    return {"Id": id_, "Name": name, "AccountType": type_, "Active": active}


REF = QboReference.from_qbo(
    accounts=[
        _account("1", "Checking", "Bank"),
        _account("2", "Undeposited Funds", "Other Current Asset"),
        _account("3", "Services", "Income"),
        _account("4", "Merchant Fees", "Expense"),
        _account("5", "Visa", "Credit Card"),
        _account("6", "Old Bank", "Bank", active=False),
    ],
    customer_types=[
        {"Id": "50", "Name": "Business", "Active": True},
        {"Id": "51", "Name": "Gone", "Active": False},
    ],
    payment_methods=[],
    tax_codes=[
        {
            "Id": "3",
            "Name": "San Francisco",
            "Active": True,
            "Taxable": True,
            "TaxGroup": True,
            "SalesTaxRateList": {
                "TaxRateDetail": [{"TaxRateRef": {"value": "1"}}, {"TaxRateRef": {"value": "2"}}]
            },
        }
    ],
    tax_rates=[
        {"Id": "1", "Name": "CA", "Active": True},
        {"Id": "2", "Name": "SF", "Active": True},
        {"Id": "9", "Name": "NY", "Active": True},
    ],
    preferences={},
    items=[],
)
ITEMS = {"20": {"Id": "20", "Type": "Service"}, "21": {"Id": "21", "Type": "NonInventory"}}


def test_settings_that_fit_have_no_problem() -> None:
    fit = FirmSyncSettings(
        deposit_account_id="2",
        service_income_account_id="3",
        fee_expense_account_id="4",
        customer_type_id="50",
        tax_map={"sf": TaxMapping(tax_code_id="3", primary_rate_id="1", secondary_rate_id="2")},
        work_type_map={"wt": "20"},
        default_service_id="20",
    )
    assert settings_problems(fit, REF, ITEMS) == []
    assert settings_problems(FirmSyncSettings(), REF, {}) == []  # the defaults name nothing
    assert item_ids(fit) == ["20"]


def test_each_problem_names_its_setting() -> None:
    bad = FirmSyncSettings(
        deposit_account_id="5",
        service_income_account_id="1",
        fee_expense_account_id="6",
        customer_type_id="51",
        tax_map={"ny": TaxMapping(tax_code_id="3", primary_rate_id="9"), "x": TaxMapping(tax_code_id="8")},
        work_type_map={"a": "21", "b": "99"},
        default_service_id="98",
    )
    assert settings_problems(bad, REF, ITEMS) == [
        "deposit_account_id: account 5 is a Credit Card account; "
        "choose a Bank or Other Current Asset account",
        "service_income_account_id: account 1 is a Bank account; choose an Income account",
        "fee_expense_account_id: account 6 is inactive in QuickBooks",
        "customer_type_id: customer type 51 is inactive",
        "tax_map.ny.primary_rate_id: tax rate 9 is not a sales rate of tax code 3",
        "tax_map.x.tax_code_id: QuickBooks has no tax code 8",
        "work_type_map.a: QuickBooks item 21 is not a service (type NonInventory)",
        "work_type_map.b: QuickBooks has no active service 99",
        "default_service_id: QuickBooks has no active service 98",
    ]
    assert item_ids(bad) == ["21", "98", "99"]
