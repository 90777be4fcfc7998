"""Seed data of a fresh company: a realistic US QBO Plus company (QBO.md §5.8-§5.12)."""

from __future__ import annotations

from typing import Any

from local.qbo_sim.clock import SimClock
from local.qbo_sim.state import Company

ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}

_ACCOUNTS: list[tuple[str, str, str]] = [
    ("Checking", "Bank", "Checking"),
    ("Savings", "Bank", "Savings"),
    ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
    ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    ("Sales", "Income", "SalesOfProductIncome"),
    ("Services", "Income", "ServiceFeeIncome"),
    ("Uncategorized Income", "Income", "OtherPrimaryIncome"),
    ("Discounts given", "Income", "DiscountsRefundsGiven"),
    ("Bank Service Charges", "Expense", "BankCharges"),
    ("Merchant Fees", "Expense", "BankCharges"),
    ("Uncategorized Expense", "Expense", "OtherMiscellaneousServiceCost"),
    ("Visa Credit Card", "Credit Card", "CreditCard"),
    ("Sales Tax Payable", "Other Current Liability", "SalesTaxPayable"),
    ("Opening Balance Equity", "Equity", "OpeningBalanceEquity"),
]

_PAYMENT_METHODS = [
    ("Cash", "NON_CREDIT_CARD"),
    ("Check", "NON_CREDIT_CARD"),
    ("Credit Card", "CREDIT_CARD"),
    ("Visa", "CREDIT_CARD"),
    ("MasterCard", "CREDIT_CARD"),
    ("American Express", "CREDIT_CARD"),
    ("Direct Debit", "NON_CREDIT_CARD"),
]

_CUSTOMER_TYPES = ["Individual", "Business", "Partnership", "Trust"]


def _meta(clock: SimClock) -> dict[str, str]:
    stamp = clock.stamp()
    return {"CreateTime": stamp, "LastUpdatedTime": stamp}


def _put(
    company: Company, entity: str, obj: dict[str, Any], clock: SimClock, obj_id: str | None = None
) -> str:
    new_id = obj_id or company.next_id(entity)
    obj = {**obj, "Id": new_id, "SyncToken": "0", "domain": "QBO", "sparse": False, "MetaData": _meta(clock)}
    company.table(entity)[new_id] = obj
    company.touched[(entity, new_id)] = clock.time()
    return new_id


def default_preferences(clock: SimClock) -> dict[str, Any]:
    return {
        "AccountingInfoPrefs": {
            "TrackDepartments": False,
            "ClassTrackingPerTxn": False,
            "ClassTrackingPerTxnLine": False,
            "CustomerTerminology": "Customers",
            "UseAccountNumbers": False,
        },
        "ProductAndServicesPrefs": {"ForSales": True, "ForPurchase": True, "QuantityWithPriceAndRate": True},
        "SalesFormsPrefs": {
            "CustomTxnNumbers": False,
            "AllowDeposit": True,
            "AllowDiscount": True,
            "AllowShipping": False,
            "AllowEstimates": True,
            "AutoApplyCredit": False,
            "AutoApplyPayments": False,
            "DefaultTerms": {"value": "3"},
        },
        "VendorAndPurchasesPrefs": {"BillableExpenseTracking": False, "TrackingByCustomer": False},
        "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": False},
        "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
        "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": ""}]},
        "Id": "1",
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "MetaData": _meta(clock),
    }


def company_info(company: Company, clock: SimClock) -> dict[str, Any]:
    addr = {
        "Id": "1",
        "Line1": "2700 Coast Ave",
        "City": "Mountain View",
        "CountrySubDivisionCode": "CA",
        "PostalCode": "94043",
        "Country": "USA",
    }
    return {
        "CompanyName": company.company_name,
        "LegalName": company.company_name,
        "CompanyAddr": dict(addr),
        "CustomerCommunicationAddr": dict(addr),
        "LegalAddr": dict(addr),
        "PrimaryPhone": {"FreeFormNumber": "(650) 555-0100"},
        "CompanyStartDate": clock.today(),
        "FiscalYearStartMonth": "January",
        "Country": "US",
        "Email": {"Address": "books@example.com"},
        "WebAddr": {},
        "SupportedLanguages": "en",
        "NameValue": [
            {"Name": "NeoEnabled", "Value": "true"},
            {"Name": "IndustryType", "Value": "Accounting Services"},
            {"Name": "CompanyType", "Value": "Other/None"},
            {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
            {"Name": "PayrollFeature", "Value": "false"},
            {"Name": "AccountantFeature", "Value": "false"},
            {"Name": "IsQbdtMigrated", "Value": "false"},
        ],
        "Id": "1",
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "MetaData": _meta(clock),
    }


def seed_company(company: Company, clock: SimClock) -> None:
    """Fill ``company`` according to ``company.seed`` ("default" or "empty").

    Raises ValueError for an unknown seed name.
    """
    if company.seed not in ("default", "empty"):
        raise ValueError(f"unknown seed {company.seed!r} (use 'default' or 'empty')")
    company.objects.clear()
    company.deleted.clear()
    company.counters.clear()
    company.touched.clear()
    company.voided.clear()
    company.request_ids.clear()
    company.books_closed_password = False
    company.next_doc_number = 1001
    company.table("CompanyInfo")["1"] = company_info(company, clock)
    company.table("Preferences")["1"] = default_preferences(clock)
    company.touched[("CompanyInfo", "1")] = company.touched[("Preferences", "1")] = clock.time()
    if company.seed == "empty":
        return
    account_ids: dict[str, str] = {}
    for name, acct_type, sub_type in _ACCOUNTS:
        account_ids[name] = _put(
            company,
            "Account",
            {
                "Name": name,
                "SubAccount": False,
                "FullyQualifiedName": name,
                "Active": True,
                "Classification": ACCOUNT_CLASSIFICATION[acct_type],
                "AccountType": acct_type,
                "AccountSubType": sub_type,
                "CurrentBalance": 0,
                "CurrentBalanceWithSubAccounts": 0,
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            },
            clock,
        )
    _put(
        company,
        "Item",
        {
            "Name": "Sales",
            "FullyQualifiedName": "Sales",
            "Active": True,
            "Type": "Service",
            "Taxable": False,
            "UnitPrice": 0,
            "IncomeAccountRef": {"value": account_ids["Sales"], "name": "Sales"},
            "TrackQtyOnHand": False,
        },
        clock,
    )
    _put(
        company,
        "Item",
        {
            "Name": "Services",
            "FullyQualifiedName": "Services",
            "Active": True,
            "Type": "Service",
            "Taxable": False,
            "UnitPrice": 0,
            "IncomeAccountRef": {"value": account_ids["Services"], "name": "Services"},
            "TrackQtyOnHand": False,
        },
        clock,
    )
    for name, pm_type in _PAYMENT_METHODS:
        _put(company, "PaymentMethod", {"Name": name, "Active": True, "Type": pm_type}, clock)
    for index, name in enumerate(_CUSTOMER_TYPES, start=1):
        _put(company, "CustomerType", {"Name": name, "Active": True}, clock, str(5000000000000000000 + index))
    # US sales tax: the TAX/NON pseudo codes plus one state code and one combined county group.
    _put(company, "TaxRate", _rate("California", 7.25), clock, "1")
    _put(company, "TaxRate", _rate("San Francisco County", 1.375), clock, "2")
    _put(company, "TaxCode", _pseudo_code("TAX", True), clock, "TAX")
    _put(company, "TaxCode", _pseudo_code("NON", False), clock, "NON")
    _put(company, "TaxCode", _group_code("California", [("1", "California")]), clock, "2")
    _put(
        company,
        "TaxCode",
        _group_code("San Francisco", [("1", "California"), ("2", "San Francisco County")]),
        clock,
        "3",
    )
    _put(
        company,
        "Vendor",
        {
            "DisplayName": "Stripe",
            "CompanyName": "Stripe, Inc.",
            "PrintOnCheckName": "Stripe",
            "Active": True,
            "Balance": 0,
            "Vendor1099": False,
        },
        clock,
    )
    _put(
        company,
        "Employee",
        {
            "DisplayName": "Emily Platt",
            "GivenName": "Emily",
            "FamilyName": "Platt",
            "PrintOnCheckName": "Emily Platt",
            "Active": True,
            "BillableTime": False,
        },
        clock,
    )


def _rate(name: str, value: float) -> dict[str, Any]:
    return {
        "Name": name,
        "Description": f"{name} sales tax",
        "Active": True,
        "RateValue": value,
        "AgencyRef": {"value": "1"},
        "SpecialTaxType": "NONE",
        "DisplayType": "ReadOnly",
    }


def _pseudo_code(name: str, taxable: bool) -> dict[str, Any]:
    return {
        "Name": name,
        "Description": "Taxable" if taxable else "Non-taxable",
        "Active": True,
        "Hidden": False,
        "Taxable": taxable,
        "TaxGroup": False,
        "SalesTaxRateList": {"TaxRateDetail": []},
        "PurchaseTaxRateList": {"TaxRateDetail": []},
    }


def _group_code(name: str, rates: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "Name": name,
        "Description": name,
        "Active": True,
        "Hidden": False,
        "Taxable": True,
        "TaxGroup": True,
        "SalesTaxRateList": {
            "TaxRateDetail": [
                {
                    "TaxRateRef": {"value": rid, "name": rname},
                    "TaxTypeApplicable": "TaxOnAmount",
                    "TaxOrder": 0,
                }
                for rid, rname in rates
            ]
        },
        "PurchaseTaxRateList": {"TaxRateDetail": []},
    }
