from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from qbsync.errors import DataError
from qbsync.models.firm_settings import FirmSyncSettings, TaxMapping
from qbsync.outbound.mapping import (
    MappingError,
    Resolved,
    account_should_sync,
    check_record,
    credit_application_payload,
    credit_memo_payload,
    customer_payload,
    dependencies,
    fee_expense_account,
    invoice_payload,
    item_payload,
    line_amount,
    marker,
    money,
    parse_marker,
    payment_deposit_account,
    payment_payload,
    payment_should_sync,
    purchase_payload,
    qbo_entity_for,
    refund_receipt_payload,
    round_half_up,
)
from qbsync.vocab import MAPPING_CATEGORIES

from tests.unit.outbound.support import (
    account,
    fee,
    invoice,
    line,
    make_ref,
    payment,
    raw_accounts,
    raw_customer_types,
    raw_payment_methods,
    refund,
    service,
    without,
)

S = FirmSyncSettings()
REF = make_ref()
INV_RESOLVED = Resolved(customer_id="58", item_ids={"svc_1": "21", "svc_2": "22"})
PAY_RESOLVED = Resolved(customer_id="58", invoice_ids={"inv_1": "130", "inv_2": "131"})
REFUND_RESOLVED = Resolved(customer_id="58", payment_id="200", payment_deposit_account_id="35")


def D(text: str) -> Decimal:
    return Decimal(text)


def num(value: object) -> Decimal:
    return Decimal(str(value))


def reason(exc: pytest.ExceptionInfo[MappingError]) -> tuple[str, str]:
    return exc.value.category, exc.value.reason_code


# --- money, markers, dependencies ------------------------------------------------------------------


def test_money_rounds_half_up_and_refuses_floats() -> None:
    assert money("2.345") == D("2.35")
    assert money(D("2.344")) == D("2.34")
    assert money("-2.345") == D("-2.35")
    assert money(3) == D("3.00")
    assert round_half_up(D("0.125")) == D("0.13")  # banker's rounding would give 0.12
    assert line_amount(D("1.5"), D("0.33")) == D("0.50")  # 0.495 -> 0.50
    with pytest.raises(TypeError):
        money(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        money(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        money("abc")
    with pytest.raises(ValueError):
        money("NaN")


def test_marker_round_trip() -> None:
    assert marker("Invoice", "inv_7Hk2") == "qbsync:Invoice:inv_7Hk2"
    assert parse_marker("qbsync:Payment:pay_1; processor stripe") == ("Payment", "pay_1")
    assert parse_marker("Edited by hand") is None
    assert parse_marker(None) is None


def test_dependencies() -> None:
    inv = invoice(
        [
            line("l1", "1", "10.00", service_id="svc_1"),
            line("l2", "1", "20.00", service_id="svc_2"),
            line("l3", "1", "30.00", service_id="svc_1"),
            line("l4", "1", "5.00", service_id=None, work_type_id="wt_1"),
        ]
    )
    assert dependencies(inv) == [("ClientAccount", "acc_1"), ("Service", "svc_1"), ("Service", "svc_2")]
    assert dependencies(payment()) == [("ClientAccount", "acc_1"), ("Invoice", "inv_1"), ("Invoice", "inv_2")]
    assert dependencies(refund()) == [("Payment", "pay_1")]
    assert dependencies(fee()) == [("Payment", "pay_1")]
    assert dependencies(account()) == [] and dependencies(service()) == []
    with pytest.raises(TypeError):
        dependencies("inv_1")  # type: ignore[arg-type]


def test_qbo_entity_for() -> None:
    assert qbo_entity_for(account()) == "Customer"
    assert qbo_entity_for(service()) == "Item"
    assert qbo_entity_for(invoice()) == "Invoice"
    assert qbo_entity_for(payment()) == "Payment"
    assert qbo_entity_for(payment(method="credit_balance")) == "CreditMemo"
    assert qbo_entity_for(refund()) == "RefundReceipt"
    assert qbo_entity_for(fee()) == "Purchase"


def test_mapping_error_is_a_data_error_with_context() -> None:
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(), Resolved(), REF, S)
    assert isinstance(err.value, DataError)
    assert err.value.category in MAPPING_CATEGORIES
    assert err.value.context()["reason_code"] == "customer_not_synced"
    assert err.value.context()["category"] == "Invoices"
    assert "Sync the client account first" in str(err.value)


# --- customers --------------------------------------------------------------------------------------


def test_customer_payload() -> None:
    acct = account(
        email="ana@riverasons.example",
        phones=[{"type": "work", "number": "(415) 555-0134"}, {"type": "mobile", "number": "555-0199"}],
        billing_address={
            "line1": "120 Market St",
            "city": "San Francisco",
            "region": "CA",
            "postal_code": "94105",
        },
    )
    body = customer_payload(acct, REF, S)
    assert body["DisplayName"] == "Rivera & Sons LLC"
    assert body["CompanyName"] == "Rivera & Sons LLC"
    assert body["PrimaryEmailAddr"] == {"Address": "ana@riverasons.example"}
    assert body["PrimaryPhone"] == {"FreeFormNumber": "(415) 555-0134"}
    assert body["Mobile"] == {"FreeFormNumber": "555-0199"}
    assert body["BillAddr"] == {
        "Line1": "120 Market St",
        "City": "San Francisco",
        "CountrySubDivisionCode": "CA",
        "PostalCode": "94105",
    }
    assert body["CustomerTypeRef"] == {"value": "5000000000000000001"}  # "Individual" by default
    assert parse_marker(body["Notes"]) == ("ClientAccount", "acc_1")
    assert "CurrencyRef" not in body
    json.dumps(body)


def test_customer_type_setting_and_absence() -> None:
    body = customer_payload(account(), REF, FirmSyncSettings(customer_type_id="5000000000000000002"))
    assert body["CustomerTypeRef"] == {"value": "5000000000000000002"}
    no_individual = make_ref(customer_types=without(raw_customer_types(), "Individual"))
    assert "CustomerTypeRef" not in customer_payload(account(), no_individual, S)
    with pytest.raises(MappingError) as err:
        customer_payload(account(), REF, FirmSyncSettings(customer_type_id="999"))
    assert reason(err) == ("Accounts", "customer_type_missing")


@pytest.mark.parametrize("name", ["Rivera: Sons", "Tab\there"])
def test_customer_name_qbo_rejects(name: str) -> None:
    with pytest.raises(MappingError) as err:
        customer_payload(account(name=name), REF, S)
    assert reason(err) == ("Accounts", "name_invalid_characters")
    assert name not in str(err.value)  # no client data in the message


def test_customer_email_too_long_for_qbo() -> None:
    with pytest.raises(MappingError) as err:
        customer_payload(account(email="a" * 64 + "@" + "b" * 40 + ".example"), REF, S)
    assert reason(err) == ("Accounts", "email_too_long")
    assert "@" not in str(err.value)


def test_customer_currency() -> None:
    multi = make_ref(CurrencyPrefs__MultiCurrencyEnabled=True)
    assert customer_payload(account(currency="EUR"), multi, S)["CurrencyRef"] == {"value": "EUR"}
    assert "CurrencyRef" not in customer_payload(account(currency="USD"), REF, S)
    with pytest.raises(MappingError) as err:
        customer_payload(account(currency="EUR"), REF, S)
    assert reason(err) == ("Accounts", "currency_unsupported")


# --- items ------------------------------------------------------------------------------------------


def test_item_payload_defaults_to_uncategorized_income() -> None:
    body = item_payload(service(description="Federal return", rate="450.50", rate_type="hour"), REF, S)
    assert body == {
        "Name": "Tax return 1040",
        "Type": "Service",
        "UnitPrice": 450.5,
        "Sku": "hour",
        "IncomeAccountRef": {"value": "81"},
        "Taxable": False,
        "Active": True,
        "Description": "Federal return",
    }


def test_item_payload_uses_the_income_account_setting() -> None:
    body = item_payload(service(), REF, FirmSyncSettings(service_income_account_id="80"))
    assert body["IncomeAccountRef"] == {"value": "80"}
    with pytest.raises(MappingError) as err:
        item_payload(service(), REF, FirmSyncSettings(service_income_account_id="35"))
    assert reason(err) == ("Services", "income_account_type")
    with pytest.raises(MappingError) as err:
        item_payload(service(), REF, FirmSyncSettings(service_income_account_id="999"))
    assert reason(err) == ("Services", "income_account_missing")


def test_without_uncategorized_income_services_use_the_sales_item() -> None:
    accounts = [a for a in raw_accounts() if a["Name"] != "Uncategorized Income"]
    ref = make_ref(accounts=accounts)
    with pytest.raises(MappingError) as err:
        item_payload(service(), ref, S)
    assert reason(err) == ("Services", "services_use_sales_item")
    # ...and invoice lines of unsynced services go to "Sales" instead of waiting, named by the service
    body = invoice_payload(
        invoice(), Resolved(customer_id="58", service_names={"svc_1": "Tax return"}), ref, S
    )
    assert body["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": "1"}
    assert body["Line"][0]["Description"] == "Tax return"
    # a service recorded as mapped to the "Sales" item is named the same way; its own item is not
    names = {"svc_1": "Tax return"}
    on_sales = invoice_payload(
        invoice(), Resolved(customer_id="58", item_ids={"svc_1": "1"}, service_names=names), ref, S
    )
    assert on_sales["Line"][0]["Description"] == "Tax return"
    own = invoice_payload(
        invoice(), Resolved(customer_id="58", item_ids={"svc_1": "21"}, service_names=names), REF, S
    )
    assert "Description" not in own["Line"][0]


def test_item_name_rules() -> None:
    with pytest.raises(MappingError) as err:
        item_payload(service(name="Tax: 1040"), REF, S)
    assert reason(err) == ("Services", "name_invalid_characters")
    with pytest.raises(MappingError) as err:
        item_payload(service(name="Tax\n1040"), REF, S)
    assert reason(err) == ("Services", "name_invalid_characters")


# --- invoices ---------------------------------------------------------------------------------------


def test_invoice_payload_basic() -> None:
    inv = invoice(
        [
            line("l1", "2", "450.00", description="2025 returns (2)"),
            line("l2", "1.5", "0.33", service_id="svc_2"),
        ],
        memo="Thank you",
    )
    body = invoice_payload(inv, INV_RESOLVED, REF, S)
    assert body["CustomerRef"] == {"value": "58"}
    assert body["TxnDate"] == "2026-03-02" and body["DueDate"] == "2026-04-01"
    assert "DocNumber" not in body  # QBO numbers it when CustomTxnNumbers is off
    assert body["CustomerMemo"] == {"value": "Thank you"}
    assert parse_marker(body["PrivateNote"]) == ("Invoice", "inv_1")
    first, second = body["Line"]
    assert first == {
        "DetailType": "SalesItemLineDetail",
        "LineNum": 1,
        "Amount": 900,
        "Description": "2025 returns (2)",
        "SalesItemLineDetail": {
            "ItemRef": {"value": "21"},
            "Qty": 2,
            "UnitPrice": 450,
            "TaxCodeRef": {"value": "NON"},
        },
    }
    assert num(second["Amount"]) == D("0.50")
    assert second["SalesItemLineDetail"]["ItemRef"] == {"value": "22"}
    assert num(second["SalesItemLineDetail"]["Qty"]) == D("1.5")
    assert "TxnTaxDetail" not in body
    json.dumps(body)


def test_invoice_doc_number_only_with_custom_numbers() -> None:
    ref = make_ref(SalesFormsPrefs__CustomTxnNumbers=True)
    body = invoice_payload(invoice(number="A" * 21), INV_RESOLVED, ref, S)
    assert body["DocNumber"] == "A" * 21


def test_an_over_long_invoice_number_is_an_error_only_where_it_would_be_sent() -> None:
    custom = make_ref(SalesFormsPrefs__CustomTxnNumbers=True)
    long_number = invoice(number="INV-2026-000000000042")  # 21 characters
    assert invoice_payload(long_number, INV_RESOLVED, custom, S)["DocNumber"] == "INV-2026-000000000042"
    too_long = invoice(number="INV-2026-0000000000042")  # 22: QBO answers 2050; never truncated silently
    with pytest.raises(MappingError) as err:
        invoice_payload(too_long, INV_RESOLVED, custom, S)
    assert reason(err) == ("Invoices", "doc_number_too_long")
    assert "22 characters" in str(err.value) and "Let QuickBooks number it" in str(err.value)
    assert "INV-2026" not in str(err.value)  # names the field and the fix, not the value
    # the firm chose "let QuickBooks number it": the invoice is sent without the platform's number
    body = invoice_payload(too_long, INV_RESOLVED, custom, S, qbo_numbers=True)
    assert "DocNumber" not in body and body["Line"]
    # a company without custom numbers never gets DocNumber, so the length does not matter there
    assert "DocNumber" not in invoice_payload(too_long, INV_RESOLVED, REF, S)


def test_invoice_line_amount_off_by_a_cent_still_matches_qbo_math() -> None:
    # the platform allows amount to differ from qty x rate by a cent; QBO does not (6070)
    inv = invoice([line("l1", "3", "0.33", amount="1.00"), line("l2", "0", "5.00", amount="0.01")])
    body = invoice_payload(inv, INV_RESOLVED, REF, S)
    for qbo_line, amount in zip(body["Line"], ("1.00", "0.01"), strict=True):
        detail = qbo_line["SalesItemLineDetail"]
        assert num(qbo_line["Amount"]) == D(amount)
        assert line_amount(num(detail["Qty"]), num(detail["UnitPrice"])) == D(amount)
    assert num(body["Line"][0]["SalesItemLineDetail"]["Qty"]) == 3


def test_invoice_work_type_map_default_service_and_sales_item() -> None:
    inv = invoice(
        [
            line("l1", "1", "10.00", service_id=None, work_type_id="wt_audit"),
            line("l2", "1", "10.00", service_id=None, work_type_id="wt_other"),
            line("l3", "1", "10.00", service_id=None),
        ]
    )
    settings = FirmSyncSettings(work_type_map={"wt_audit": "31"}, default_service_id="32")
    items = [
        x["SalesItemLineDetail"]["ItemRef"]["value"]
        for x in invoice_payload(inv, INV_RESOLVED, REF, settings)["Line"]
    ]
    assert items == ["31", "32", "32"]
    items = [
        x["SalesItemLineDetail"]["ItemRef"]["value"]
        for x in invoice_payload(inv, INV_RESOLVED, REF, S)["Line"]
    ]
    assert items == ["1", "1", "1"]  # the "Sales" item
    with pytest.raises(MappingError) as err:
        invoice_payload(inv, INV_RESOLVED, make_ref(items=[]), S)
    assert reason(err) == ("Services", "work_type_unmapped")


def test_invoice_waits_for_its_prerequisites() -> None:
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(), Resolved(), REF, S)
    assert reason(err) == ("Invoices", "customer_not_synced")
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(), Resolved(customer_id="58"), REF, S)
    assert reason(err) == ("Invoices", "service_not_synced")


def test_invoice_status_dates_and_amount_rules() -> None:
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(status="draft"), INV_RESOLVED, REF, S)
    assert reason(err) == ("Invoices", "invoice_not_sent")
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(status="void"), INV_RESOLVED, REF, S)
    assert reason(err) == ("Invoices", "invoice_void")
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(), INV_RESOLVED, REF, FirmSyncSettings(sync_start_date=date(2026, 3, 3)))
    assert reason(err) == ("Invoices", "before_sync_start")
    # on the start date itself it syncs
    invoice_payload(invoice(), INV_RESOLVED, REF, FirmSyncSettings(sync_start_date=date(2026, 3, 2)))
    closed = make_ref(AccountingInfoPrefs__BookCloseDate="2026-03-02")
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(), INV_RESOLVED, closed, S)
    assert reason(err) == ("Invoices", "books_closed")
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice([line("l1", "1", "-5.00")]), INV_RESOLVED, REF, S)
    assert reason(err) == ("Invoices", "negative_line_amount")
    with pytest.raises(MappingError) as err:  # a negative rate with a zero quantity: still refused
        invoice_payload(invoice([line("l1", "0", "-5.00")]), INV_RESOLVED, REF, S)
    assert reason(err) == ("Invoices", "negative_line_amount")
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(currency="EUR"), INV_RESOLVED, REF, S)
    assert reason(err) == ("Invoices", "currency_unsupported")
    multi = make_ref(CurrencyPrefs__MultiCurrencyEnabled=True)
    assert invoice_payload(invoice(currency="EUR"), INV_RESOLVED, multi, S)["CurrencyRef"] == {"value": "EUR"}


# --- what QuickBooks would refuse in any company (issue 11) ------------------------------------------


def _refusal(record: object) -> tuple[str, str]:
    with pytest.raises(MappingError) as err:
        check_record(record)  # type: ignore[arg-type]
    assert err.value.explanation and "platform" in err.value.explanation  # says where the fix is made
    return reason(err)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: service(rate="-10.00"), ("Services", "service_rate_negative")),
        (lambda: service(rate="10000000000.00"), ("Services", "amount_too_large")),
        (lambda: invoice(line_items=[]), ("Invoices", "invoice_without_lines")),
        (
            lambda: invoice([line("l1", "1", "5.00"), line("l1", "1", "6.00")]),
            ("Invoices", "duplicate_line_ids"),
        ),
        (lambda: invoice([line("l1", "1", "5.00", amount="-5.00")]), ("Invoices", "negative_line_amount")),
        (lambda: invoice([line("l1", "3", "5.00", amount="15.02")]), ("Invoices", "line_amount_mismatch")),
        (lambda: invoice([line("l1", "1", "5.00", tax_amount="-0.50")]), ("Invoices", "negative_tax")),
        (lambda: invoice(tax_total="-1.00"), ("Invoices", "negative_tax")),
        (lambda: invoice(subtotal="899.00"), ("Invoices", "invoice_totals_mismatch")),
        (lambda: invoice(total="901.00"), ("Invoices", "invoice_totals_mismatch")),
        (
            lambda: invoice([line("l1", "1", "9999999999.99"), line("l2", "1", "9999999999.99")]),
            ("Invoices", "amount_too_large"),
        ),
        (lambda: invoice([line("l1", "1", "10000000000.00")]), ("Invoices", "amount_too_large")),
        (lambda: invoice(issue_date="1899-12-31", due_date=None), ("Invoices", "date_out_of_range")),
        (lambda: invoice(issue_date="2100-01-01", due_date=None), ("Invoices", "date_out_of_range")),
        (lambda: invoice(due_date="2100-01-01"), ("Invoices", "date_out_of_range")),
        (lambda: invoice(due_date="2026-03-01"), ("Invoices", "due_date_before_issue_date")),
        (lambda: payment(amount="0.00", allocations=[]), ("Payments", "amount_not_positive")),
        (lambda: payment(amount="-5.00"), ("Payments", "amount_not_positive")),
        (lambda: payment(payment_date="0026-03-10"), ("Payments", "date_out_of_range")),
        (lambda: payment(allocations=[]), ("Payments", "payment_without_allocations")),
        (
            lambda: payment(allocations=[{"invoice_id": "inv_1", "amount": "1.00"}] * 2),
            ("Payments", "duplicate_allocation"),
        ),
        (
            lambda: payment(allocations=[{"invoice_id": "inv_1", "amount": "0.00"}]),
            ("Payments", "amount_not_positive"),
        ),
        (
            lambda: payment(allocations=[{"invoice_id": "inv_1", "amount": "1000.01"}]),
            ("Payments", "allocations_exceed_amount"),
        ),
        (lambda: refund(amount="0.00"), ("Refunds", "amount_not_positive")),
        (lambda: refund(refund_date="2199-01-01"), ("Refunds", "date_out_of_range")),
        (lambda: fee(amount="-29.30"), ("Expenses", "amount_not_positive")),
        (lambda: fee(amount="99999999999.00"), ("Expenses", "amount_too_large")),
    ],
)
def test_what_quickbooks_would_refuse_is_an_explained_error_in_its_category(build, expected) -> None:
    assert _refusal(build()) == expected


def test_the_limits_themselves_are_accepted() -> None:
    check_record(service(rate="0.00"))
    check_record(service(rate="9999999999.99"))
    check_record(invoice(issue_date="1900-01-01", due_date="2099-12-31"))
    check_record(invoice([line("l1", "3", "0.33", amount="1.00")]))  # a cent off: QBO math fits it
    check_record(payment(allocations=[{"invoice_id": "inv_1", "amount": "1000.00"}]))
    check_record(account(name="N" * 600))  # names are checked where the payload is built (below)


def test_every_payload_refuses_what_check_record_refuses() -> None:
    """The payload functions call check_record themselves: no payload QuickBooks refuses is ever built."""
    with pytest.raises(MappingError) as err:
        item_payload(service(rate="-1.00"), REF, S)
    assert reason(err) == ("Services", "service_rate_negative")
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(subtotal="1.00"), INV_RESOLVED, REF, S)
    assert reason(err) == ("Invoices", "invoice_totals_mismatch")
    with pytest.raises(MappingError) as err:
        payment_payload(payment(amount="-1.00"), PAY_RESOLVED, REF, S)
    assert reason(err) == ("Payments", "amount_not_positive")
    credit = payment(method="credit_balance", processor=None, reference=None, allocations=[])
    with pytest.raises(MappingError) as err:
        credit_memo_payload(credit, PAY_RESOLVED, REF, S)
    assert reason(err) == ("Payments", "payment_without_allocations")
    with pytest.raises(MappingError) as err:
        refund_receipt_payload(refund(amount="-1.00"), REFUND_RESOLVED, REF, S)
    assert reason(err) == ("Refunds", "amount_not_positive")
    with pytest.raises(MappingError) as err:
        purchase_payload(fee(amount="0.00"), Resolved(payment_id="200"), REF, S)
    assert reason(err) == ("Expenses", "amount_not_positive")


@pytest.mark.parametrize(
    ("build", "limit", "expected"),
    [
        (lambda n: customer_payload(account(name=n), REF, S), 500, ("Accounts", "name_too_long")),
        (lambda n: item_payload(service(name=n), REF, S), 100, ("Services", "name_too_long")),
    ],
)
def test_names_longer_than_quickbooks_takes_are_errors(build, limit, expected) -> None:
    build("N" * limit)
    with pytest.raises(MappingError) as err:
        build("N" * (limit + 1))
    assert reason(err) == expected


# --- taxes ------------------------------------------------------------------------------------------

TAXES = FirmSyncSettings(
    tax_map={
        "tr_ca": TaxMapping(tax_code_id="2", primary_rate_id="1"),
        "tr_sf": TaxMapping(tax_code_id="3", primary_rate_id="1", secondary_rate_id="2"),
        "tr_gone": TaxMapping(tax_code_id="77"),
        "tr_bad_rate": TaxMapping(tax_code_id="2", primary_rate_id="2"),
        "tr_inactive": TaxMapping(tax_code_id="2", primary_rate_id="9"),
    }
)


def test_us_invoice_with_a_mapped_combined_rate() -> None:
    inv = invoice(
        [line("l1", "1", "100.00", tax_rate_id="tr_sf"), line("l2", "1", "50.00")], tax_total="8.63"
    )
    body = invoice_payload(inv, INV_RESOLVED, REF, TAXES)
    assert [x["SalesItemLineDetail"]["TaxCodeRef"]["value"] for x in body["Line"]] == ["TAX", "NON"]
    assert body["TxnTaxDetail"] == {"TxnTaxCodeRef": {"value": "3"}, "TotalTax": 8.63}


def test_us_invoice_with_several_tax_rates_is_refused() -> None:
    inv = invoice(
        [line("l1", "1", "100.00", tax_rate_id="tr_sf"), line("l2", "1", "50.00", tax_rate_id="tr_ca")],
        tax_total="12.25",
    )
    with pytest.raises(MappingError) as err:
        invoice_payload(inv, INV_RESOLVED, REF, TAXES)
    assert reason(err) == ("Taxes", "several_tax_rates_us")


def test_us_invoice_with_two_platform_rates_on_one_qbo_code_is_accepted() -> None:
    settings = FirmSyncSettings(
        tax_map={
            "tr_a": TaxMapping(tax_code_id="2"),
            "tr_b": TaxMapping(tax_code_id="2", primary_rate_id="1"),
        }
    )
    inv = invoice(
        [line("l1", "1", "100.00", tax_rate_id="tr_a"), line("l2", "1", "50.00", tax_rate_id="tr_b")],
        tax_total="10.88",
    )
    body = invoice_payload(inv, INV_RESOLVED, REF, settings)
    assert body["TxnTaxDetail"]["TxnTaxCodeRef"] == {"value": "2"}


def test_non_us_invoice_carries_tax_codes_per_line() -> None:
    inv = invoice(
        [line("l1", "1", "100.00", tax_rate_id="tr_sf"), line("l2", "1", "50.00", tax_rate_id="tr_ca")],
        tax_total="12.25",
    )
    body = invoice_payload(inv, INV_RESOLVED, make_ref(country="CA"), TAXES)
    assert [x["SalesItemLineDetail"]["TaxCodeRef"]["value"] for x in body["Line"]] == ["3", "2"]


def test_ast_company_sends_tax_and_non_only() -> None:
    ast = make_ref(TaxPrefs__PartnerTaxEnabled=True)
    inv = invoice(
        [
            line("l1", "1", "100.00", tax_rate_id="tr_unmapped"),
            line("l2", "1", "50.00", tax_rate_id="tr_other"),
            line("l3", "1", "10.00"),
        ],
        tax_total="9.10",
    )
    body = invoice_payload(inv, INV_RESOLVED, ast, S)  # no tax map needed, several rates fine
    assert [x["SalesItemLineDetail"]["TaxCodeRef"]["value"] for x in body["Line"]] == ["TAX", "TAX", "NON"]
    assert body["TxnTaxDetail"] == {"TotalTax": 9.1}
    assert "TxnTaxDetail" not in invoice_payload(invoice(), INV_RESOLVED, ast, S)


@pytest.mark.parametrize(
    ("rate_id", "code"),
    [
        ("tr_unknown", "tax_rate_unmapped"),
        ("tr_gone", "tax_code_invalid"),
        ("tr_bad_rate", "tax_rate_invalid"),
        ("tr_inactive", "tax_rate_invalid"),
    ],
)
def test_tax_mapping_errors(rate_id: str, code: str) -> None:
    inv = invoice([line("l1", "1", "100.00", tax_rate_id=rate_id)], tax_total="7.25")
    with pytest.raises(MappingError) as err:
        invoice_payload(inv, INV_RESOLVED, REF, TAXES)
    assert reason(err) == ("Taxes", code)


def test_tax_without_a_rate_is_refused() -> None:
    with pytest.raises(MappingError) as err:
        invoice_payload(invoice(tax_total="5.00"), INV_RESOLVED, REF, TAXES)
    assert reason(err) == ("Taxes", "tax_without_rate")


# --- payments ---------------------------------------------------------------------------------------


def test_payment_payload_split_partial_and_unapplied() -> None:
    body = payment_payload(payment(), PAY_RESOLVED, REF, S)
    assert body["CustomerRef"] == {"value": "58"}
    assert body["TotalAmt"] == 1000
    assert body["TxnDate"] == "2026-03-10"
    assert body["DepositToAccountRef"] == {"value": "4"}  # Undeposited Funds by default
    assert body["PaymentMethodRef"] == {"value": "3"}  # "Credit Card"
    assert body["Line"] == [
        {"Amount": 900, "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
        {"Amount": 50, "LinkedTxn": [{"TxnId": "131", "TxnType": "Invoice"}]},
    ]
    # the 27-char processor id does not fit PaymentRefNum: it goes to PrivateNote
    assert "PaymentRefNum" not in body
    assert "ch_3Pq8ZZ2eZvKYlo2C0abcdefg" in body["PrivateNote"]
    assert parse_marker(body["PrivateNote"]) == ("Payment", "pay_1")
    json.dumps(body)


def test_payment_short_reference_and_methods() -> None:
    body = payment_payload(payment(method="check", reference="1042"), PAY_RESOLVED, REF, S)
    assert body["PaymentRefNum"] == "1042" and body["PaymentMethodRef"] == {"value": "2"}
    body = payment_payload(payment(method="bank_transfer"), PAY_RESOLVED, REF, S)
    assert body["PaymentMethodRef"] == {"value": "5"}  # "Direct Debit"
    no_dd = make_ref(payment_methods=[m for m in raw_payment_methods() if m["Name"] != "Direct Debit"])
    assert "PaymentMethodRef" not in payment_payload(payment(method="bank_transfer"), PAY_RESOLVED, no_dd, S)
    assert "PaymentMethodRef" not in payment_payload(payment(method="other"), PAY_RESOLVED, REF, S)


def test_payment_method_missing() -> None:
    no_card = make_ref(payment_methods=[m for m in raw_payment_methods() if m["Name"] != "Credit Card"])
    with pytest.raises(MappingError) as err:
        payment_payload(payment(), PAY_RESOLVED, no_card, S)
    assert reason(err) == ("Payments", "payment_method_missing")
    assert "Credit Card" in str(err.value)


def test_payment_deposit_account_setting() -> None:
    body = payment_payload(payment(), PAY_RESOLVED, REF, FirmSyncSettings(deposit_account_id="35"))
    assert body["DepositToAccountRef"] == {"value": "35"}
    for bad, code in (
        ("80", "deposit_account_type"),
        ("41", "deposit_account_type"),
        ("999", "deposit_account_missing"),
    ):
        with pytest.raises(MappingError) as err:
            payment_payload(payment(), PAY_RESOLVED, REF, FirmSyncSettings(deposit_account_id=bad))
        assert reason(err) == ("Payments", code)
    no_uf = make_ref(accounts=[a for a in raw_accounts() if a["AccountSubType"] != "UndepositedFunds"])
    with pytest.raises(MappingError) as err:
        payment_payload(payment(), PAY_RESOLVED, no_uf, S)
    assert reason(err) == ("Payments", "undeposited_funds_missing")
    assert payment_deposit_account(REF, S).id == "4"


def test_payment_waits_for_customer_and_invoices() -> None:
    with pytest.raises(MappingError) as err:
        payment_payload(payment(), Resolved(invoice_ids={"inv_1": "130", "inv_2": "131"}), REF, S)
    assert reason(err) == ("Payments", "customer_not_synced")
    with pytest.raises(MappingError) as err:
        payment_payload(payment(), Resolved(customer_id="58", invoice_ids={"inv_1": "130"}), REF, S)
    assert reason(err) == ("Payments", "invoice_not_synced")


def test_account_should_sync() -> None:
    assert account_should_sync(True, S) and not account_should_sync(False, S)
    assert account_should_sync(False, FirmSyncSettings(sync_accounts="all"))


def test_payment_dates_and_offline_setting() -> None:
    with pytest.raises(MappingError) as err:
        payment_payload(payment(), PAY_RESOLVED, REF, FirmSyncSettings(sync_start_date=date(2026, 4, 1)))
    assert reason(err) == ("Payments", "before_sync_start")
    with pytest.raises(MappingError) as err:
        payment_payload(payment(), PAY_RESOLVED, make_ref(AccountingInfoPrefs__BookCloseDate="2026-03-31"), S)
    assert reason(err) == ("Payments", "books_closed")
    offline = payment(offline=True, method="cash", processor=None, reference=None)
    assert not payment_should_sync(offline, S)
    assert payment_should_sync(offline, FirmSyncSettings(sync_offline_payments=True))
    assert payment_should_sync(payment(offline=True, sync_override=True), S)
    assert not payment_should_sync(payment(sync_override=False), FirmSyncSettings(sync_offline_payments=True))
    with pytest.raises(MappingError) as err:
        payment_payload(offline, PAY_RESOLVED, REF, S)
    assert reason(err) == ("Payments", "offline_payment_not_synced")
    body = payment_payload(offline, PAY_RESOLVED, REF, FirmSyncSettings(sync_offline_payments=True))
    assert body["PaymentMethodRef"] == {"value": "1"}


# --- credit payments --------------------------------------------------------------------------------


def test_credit_balance_payment_becomes_a_credit_memo_applied_to_invoices() -> None:
    credit = payment(method="promotional_credit", amount="950.00", reference=None, processor=None)
    with pytest.raises(MappingError) as err:
        payment_payload(credit, PAY_RESOLVED, REF, S)
    assert reason(err) == ("Payments", "use_credit_memo")
    memo = credit_memo_payload(credit, PAY_RESOLVED, REF, S)
    assert memo["CustomerRef"] == {"value": "58"}
    assert memo["Line"][0]["Amount"] == 950
    assert memo["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": "1"}
    assert memo["Line"][0]["Description"] == "Promotional credit"
    assert parse_marker(memo["PrivateNote"]) == ("Payment", "pay_1")
    with pytest.raises(MappingError) as err:
        credit_application_payload(credit, PAY_RESOLVED, REF, S)
    assert reason(err) == ("Payments", "credit_memo_not_synced")
    resolved = Resolved(customer_id="58", invoice_ids={"inv_1": "130", "inv_2": "131"}, credit_memo_id="140")
    apply = credit_application_payload(credit, resolved, REF, S)
    assert apply["TotalAmt"] == 0
    assert parse_marker(apply["PrivateNote"]) == ("CreditApplication", "pay_1")
    assert apply["Line"][-1] == {"Amount": 950, "LinkedTxn": [{"TxnId": "140", "TxnType": "CreditMemo"}]}
    assert sum(num(x["Amount"]) for x in apply["Line"][:-1]) == D("950.00")
    with pytest.raises(MappingError) as err:
        credit_memo_payload(payment(), PAY_RESOLVED, REF, S)
    assert reason(err) == ("Payments", "not_a_credit_payment")
    with pytest.raises(MappingError) as err:
        credit_application_payload(payment(), resolved, REF, S)
    assert reason(err) == ("Payments", "not_a_credit_payment")
    with pytest.raises(MappingError) as err:
        credit_memo_payload(credit, PAY_RESOLVED, make_ref(items=[]), S)
    assert reason(err) == ("Payments", "default_service_missing")


# --- fees and refunds -------------------------------------------------------------------------------


def test_purchase_payload_for_a_processing_fee() -> None:
    resolved = Resolved(payment_id="200", payment_deposit_account_id="35", vendor_id="70")
    body = purchase_payload(fee(), resolved, REF, S)
    assert body["PaymentType"] == "Cash"
    assert body["AccountRef"] == {"value": "35"}  # paid from where the payment landed
    assert body["EntityRef"] == {"value": "70", "type": "Vendor"}
    (only,) = body["Line"]
    assert only["DetailType"] == "AccountBasedExpenseLineDetail"
    assert num(only["Amount"]) == D("29.30")
    assert only["AccountBasedExpenseLineDetail"]["AccountRef"] == {"value": "60"}  # first BankCharges
    assert parse_marker(body["PrivateNote"]) == ("ProcessingFee", "fee_1")
    body = purchase_payload(
        fee(), Resolved(payment_id="200"), REF, FirmSyncSettings(fee_expense_account_id="61")
    )
    assert body["AccountRef"] == {"value": "4"}  # the deposit default
    assert body["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"] == {"value": "61"}


def test_fee_errors() -> None:
    resolved = Resolved(payment_id="200", payment_deposit_account_id="35")
    with pytest.raises(MappingError) as err:
        purchase_payload(fee(), Resolved(), REF, S)
    assert reason(err) == ("Expenses", "payment_not_synced")
    with pytest.raises(MappingError) as err:
        purchase_payload(fee(), resolved, REF, FirmSyncSettings(fee_expense_account_id="35"))
    assert reason(err) == ("Expenses", "fee_expense_account_type")
    with pytest.raises(MappingError) as err:
        purchase_payload(fee(), resolved, REF, FirmSyncSettings(fee_expense_account_id="999"))
    assert reason(err) == ("Expenses", "fee_expense_account_missing")
    no_charges = make_ref(accounts=[a for a in raw_accounts() if a["AccountSubType"] != "BankCharges"])
    with pytest.raises(MappingError) as err:
        fee_expense_account(no_charges, S)
    assert reason(err) == ("Expenses", "fee_expense_account_missing")
    with pytest.raises(MappingError) as err:
        purchase_payload(fee(), resolved, REF, FirmSyncSettings(sync_start_date=date(2026, 3, 11)))
    assert reason(err) == ("Expenses", "before_sync_start")
    with pytest.raises(MappingError) as err:
        purchase_payload(fee(), Resolved(payment_id="200", payment_deposit_account_id="80"), REF, S)
    assert reason(err) == ("Expenses", "deposit_account_type")


def test_refund_receipt_payload() -> None:
    body = refund_receipt_payload(refund(), REFUND_RESOLVED, REF, S)
    assert body["CustomerRef"] == {"value": "58"}
    assert body["DepositToAccountRef"] == {"value": "35"}  # where its payment was deposited
    assert body["TxnDate"] == "2026-03-15"
    (only,) = body["Line"]
    assert only["Amount"] == 200
    assert only["SalesItemLineDetail"] == {
        "ItemRef": {"value": "1"},
        "Qty": 1,
        "UnitPrice": 200,
        "TaxCodeRef": {"value": "NON"},
    }
    assert parse_marker(body["PrivateNote"]) == ("Refund", "ref_1")
    resolved = Resolved(
        customer_id="58",
        payment_id="200",
        payment_deposit_account_id="4",
        payment_method_id="3",
        fallback_item_id="21",
    )
    body = refund_receipt_payload(refund(), resolved, REF, S)
    assert body["DepositToAccountRef"] == {"value": "4"}
    assert body["PaymentMethodRef"] == {"value": "3"}
    assert body["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": "21"}


def test_refund_errors() -> None:
    with pytest.raises(MappingError) as err:
        refund_receipt_payload(refund(), Resolved(customer_id="58"), REF, S)
    assert reason(err) == ("Refunds", "payment_not_synced")
    with pytest.raises(MappingError) as err:
        refund_receipt_payload(refund(), Resolved(payment_id="200", payment_deposit_account_id="35"), REF, S)
    assert reason(err) == ("Refunds", "customer_not_synced")
    with pytest.raises(MappingError) as err:
        refund_receipt_payload(
            refund(), REFUND_RESOLVED, make_ref(AccountingInfoPrefs__BookCloseDate="2026-03-15"), S
        )
    assert reason(err) == ("Refunds", "books_closed")
    with pytest.raises(MappingError) as err:
        refund_receipt_payload(
            refund(), REFUND_RESOLVED, REF, FirmSyncSettings(sync_start_date=date(2026, 4, 1))
        )
    assert reason(err) == ("Refunds", "before_sync_start")
    bad = Resolved(customer_id="58", payment_id="200", payment_deposit_account_id="60")
    with pytest.raises(MappingError) as err:
        refund_receipt_payload(refund(), bad, REF, S)
    assert reason(err) == ("Refunds", "deposit_account_type")
    with pytest.raises(MappingError) as err:
        refund_receipt_payload(refund(currency="EUR"), REFUND_RESOLVED, REF, S)
    assert reason(err) == ("Refunds", "currency_unsupported")
