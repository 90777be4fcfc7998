"""The business rules a sync engine trips over, each with QBO's code, message and status (QBO.md §4)."""

from __future__ import annotations

import requests


def _line(item_id, amount=100.0, qty=1, price=100.0, tax="NON"):
    return {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "SalesItemLineDetail": {
            "ItemRef": {"value": item_id},
            "Qty": qty,
            "UnitPrice": price,
            "TaxCodeRef": {"value": tax},
        },
    }


def _invoice(api, customer_id, item_id, amount=100.0, **extra):
    return api.create(
        "Invoice",
        {"CustomerRef": {"value": customer_id}, "Line": [_line(item_id, amount, 1, amount)], **extra},
    )


def test_6240_duplicate_name_across_customer_vendor_employee(api):
    first = api.create("Customer", {"DisplayName": "Lopez Tax Services"})
    error = api.fault(api.post("customer", {"DisplayName": "lopez tax services"}))
    assert error["code"] == "6240"
    assert error["Message"] == "Duplicate Name Exists Error"
    assert error["Detail"] == f"The name supplied already exists. : Id={first['Id']}"
    vendor_clash = api.fault(api.post("customer", {"DisplayName": "Stripe"}))  # a seeded vendor
    assert vendor_clash["code"] == "6240"
    employee_clash = api.fault(api.post("vendor", {"DisplayName": "Emily Platt"}))  # a seeded employee
    assert employee_clash["code"] == "6240"


def test_6240_inactive_names_still_block(api):
    customer = api.create("Customer", {"DisplayName": "Dormant LLC"})
    api.create("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    error = api.fault(api.post("customer", {"DisplayName": "Dormant LLC"}))
    assert error["code"] == "6240" and f"Id={customer['Id']}" in error["Detail"]


def test_6240_duplicate_item_name(api, seed):
    error = api.fault(
        api.post(
            "item",
            {"Name": "Sales", "Type": "Service", "IncomeAccountRef": {"value": seed["accounts"]["Sales"]}},
        )
    )
    assert error["code"] == "6240"
    assert error["Detail"].endswith(f"Id={seed['items']['Sales']}")


def test_6140_duplicate_docnumber_when_company_uses_custom_numbers(api, qbo_sim, qbo_company, seed):
    customer = api.create("Customer", {"DisplayName": "Doc Co"})
    qbo_sim.control.set_preferences(qbo_company, custom_txn_numbers=True)
    first = _invoice(api, customer["Id"], seed["items"]["Sales"], DocNumber="TD-10042")
    error = api.fault(
        api.post(
            "invoice",
            {
                "CustomerRef": {"value": customer["Id"]},
                "DocNumber": "TD-10042",
                "Line": [_line(seed["items"]["Sales"])],
            },
        )
    )
    assert error["code"] == "6140"
    assert error["Message"] == "Duplicate Document Number Error"
    assert "DocNumber=TD-10042 is assigned to TxnType=Invoice with TxnId=" + first["Id"] in error["Detail"]
    # without custom numbers QBO does not enforce uniqueness of sales-form numbers
    qbo_sim.control.set_preferences(qbo_company, custom_txn_numbers=False)
    assert (
        _invoice(api, customer["Id"], seed["items"]["Sales"], DocNumber="TD-10042")["DocNumber"] == "TD-10042"
    )


def test_6140_purchase_and_allowduplicatedocnum(api, seed):
    body = {
        "PaymentType": "Check",
        "DocNumber": "CHK-1",
        "AccountRef": {"value": seed["accounts"]["Checking"]},
        "Line": [
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": 5.0,
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": seed["accounts"]["Merchant Fees"]}},
            }
        ],
    }
    api.create("Purchase", body)
    assert api.fault(api.post("purchase", body))["code"] == "6140"
    assert api.post("purchase", body, include="allowduplicatedocnum").status_code == 200


def test_2050_docnumber_longer_than_21(api, seed):
    customer = api.create("Customer", {"DisplayName": "Long Doc"})
    error = api.fault(
        api.post(
            "invoice",
            {
                "CustomerRef": {"value": customer["Id"]},
                "DocNumber": "X" * 22,
                "Line": [_line(seed["items"]["Sales"])],
            },
        )
    )
    assert error["code"] == "2050"


def test_5010_stale_synctoken(api):
    customer = api.create("Customer", {"DisplayName": "Stale Co"})
    api.create("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "one"})
    error = api.fault(
        api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "two"})
    )
    assert error["code"] == "5010"
    assert error["Message"] == "Stale Object Error"


def test_610_object_not_found_and_inactive_references(api, seed):
    assert api.fault(api.get("customer/99999"))["code"] == "610"
    customer = api.create("Customer", {"DisplayName": "Ref Co"})
    item = api.create(
        "Item",
        {
            "Name": "Old Service",
            "Type": "Service",
            "IncomeAccountRef": {"value": seed["accounts"]["Services"]},
        },
    )
    api.create("Item", {"Id": item["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    error = api.fault(
        api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line(item["Id"])]})
    )
    assert error["code"] == "610"
    assert "made inactive" in error["Detail"]
    assert error["element"] == "Line.SalesItemLineDetail.ItemRef"
    missing = api.fault(api.post("customer", {"Id": "424242", "SyncToken": "0", "DisplayName": "Nobody"}))
    assert missing["code"] == "610"


def test_2500_invalid_reference(api, seed):
    customer = api.create("Customer", {"DisplayName": "Bad Ref"})
    error = api.fault(
        api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line("98765")]})
    )
    assert error["code"] == "2500"
    assert error["Message"] == "Invalid Reference Id"
    assert error["element"] == "Line.SalesItemLineDetail.ItemRef"
    assert (
        api.fault(
            api.post("invoice", {"CustomerRef": {"value": "5555"}, "Line": [_line(seed["items"]["Sales"])]})
        )["code"]
        == "2500"
    )


def test_2020_required_fields(api, seed):
    customer = api.create("Customer", {"DisplayName": "Req Co"})
    error = api.fault(api.post("invoice", {"Line": [_line(seed["items"]["Sales"])]}))
    assert error["code"] == "2020"
    assert error["Detail"] == "Required parameter CustomerRef is missing in the request"
    assert api.fault(api.post("invoice", {"CustomerRef": {"value": customer["Id"]}}))["code"] == "2020"
    assert api.fault(api.post("payment", {"CustomerRef": {"value": customer["Id"]}}))["Detail"] == (
        "Required parameter TotalAmt is missing in the request"
    )
    assert api.fault(api.post("purchase", {"AccountRef": {"value": "1"}, "Line": []}))["Detail"] == (
        "Required parameter PaymentType is missing in the request"
    )
    assert (
        api.fault(api.post("item", {"Type": "Service"}))["Detail"]
        == "Required parameter Name is missing in the request"
    )
    refund = api.fault(
        api.post(
            "refundreceipt",
            {"CustomerRef": {"value": customer["Id"]}, "Line": [_line(seed["items"]["Sales"])]},
        )
    )
    assert refund["Detail"] == "Required parameter DepositToAccountRef is missing in the request"


def test_6070_line_amount_must_equal_qty_times_price(api, seed):
    customer = api.create("Customer", {"DisplayName": "Math Co"})
    bad = _line(seed["items"]["Sales"], amount=100.0, qty=3, price=33.33)
    error = api.fault(api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [bad]}))
    assert error["code"] == "6070"
    assert error["Detail"].startswith("Amount is not equal to UnitPrice * Qty. Supplied value: 100.00")
    # half-up rounding to cents: 3 x 33.335 = 100.005 -> 100.01
    ok = _line(seed["items"]["Sales"], amount=100.01, qty=3, price=33.335)
    assert api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [ok]}).status_code == 200


def test_6200_and_6210_closed_books(api, qbo_sim, qbo_company, seed):
    customer = api.create("Customer", {"DisplayName": "Closed Co"})
    open_invoice = _invoice(api, customer["Id"], seed["items"]["Sales"], TxnDate="2025-12-20")
    qbo_sim.control.set_preferences(qbo_company, books_closed_date="2025-12-31")
    prefs = api.get("preferences").json()["Preferences"]
    assert prefs["AccountingInfoPrefs"]["BookCloseDate"] == "2025-12-31"
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "TxnDate": "2025-12-31",
        "Line": [_line(seed["items"]["Sales"])],
    }
    error = api.fault(api.post("invoice", body))
    assert error["code"] == "6200"
    assert error["Message"] == "Account Period Closed"
    # editing or deleting a transaction dated in the closed period is refused too
    edit = api.post(
        "invoice", {"Id": open_invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"}
    )
    assert api.fault(edit)["code"] == "6200"
    delete = api.post("invoice", {"Id": open_invoice["Id"], "SyncToken": "0"}, operation="delete")
    assert api.fault(delete)["code"] == "6200"
    qbo_sim.control.set_preferences(qbo_company, books_closed_password=True)
    assert api.fault(api.post("invoice", body))["code"] == "6210"
    assert api.post("invoice", {**body, "TxnDate": "2026-01-01"}).status_code == 200


def test_overpayment_and_applied_more_than_total(api, seed):
    customer = api.create("Customer", {"DisplayName": "Over Co"})
    invoice = _invoice(api, customer["Id"], seed["items"]["Sales"], amount=100.0)
    link = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    over = api.fault(
        api.post(
            "payment",
            {
                "CustomerRef": {"value": customer["Id"]},
                "TotalAmt": 150.0,
                "Line": [{"Amount": 150.0, "LinkedTxn": link}],
            },
        )
    )
    assert over["code"] == "6000"
    assert "exceeds the open balance" in over["Detail"]
    short = api.fault(
        api.post(
            "payment",
            {
                "CustomerRef": {"value": customer["Id"]},
                "TotalAmt": 50.0,
                "Line": [{"Amount": 80.0, "LinkedTxn": link}],
            },
        )
    )
    assert short["code"] == "6000"
    # a second payment can only take what is still open
    api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 70.0,
            "Line": [{"Amount": 70.0, "LinkedTxn": link}],
        },
    )
    again = api.fault(
        api.post(
            "payment",
            {
                "CustomerRef": {"value": customer["Id"]},
                "TotalAmt": 40.0,
                "Line": [{"Amount": 40.0, "LinkedTxn": link}],
            },
        )
    )
    assert again["code"] == "6000"


def test_payment_customer_must_match_invoice_customer(api, seed):
    owner = api.create("Customer", {"DisplayName": "Owner Co"})
    stranger = api.create("Customer", {"DisplayName": "Stranger Co"})
    invoice = _invoice(api, owner["Id"], seed["items"]["Sales"])
    error = api.fault(
        api.post(
            "payment",
            {
                "CustomerRef": {"value": stranger["Id"]},
                "TotalAmt": 100.0,
                "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            },
        )
    )
    assert error["code"] == "6000"
    assert "differs from the customer" in error["Detail"]


def test_payment_linked_to_deleted_invoice_is_610(api, seed):
    customer = api.create("Customer", {"DisplayName": "Gone Co"})
    invoice = _invoice(api, customer["Id"], seed["items"]["Sales"])
    api.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="delete")
    error = api.fault(
        api.post(
            "payment",
            {
                "CustomerRef": {"value": customer["Id"]},
                "TotalAmt": 100.0,
                "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            },
        )
    )
    assert error["code"] == "610"


def test_several_tax_rates_on_a_us_invoice(api, seed):
    customer = api.create("Customer", {"DisplayName": "Tax Co"})
    item = seed["items"]["Sales"]
    two_codes = {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [_line(item, tax="2"), _line(item, tax="3")],
    }
    assert api.fault(api.post("invoice", two_codes))["code"] == "6000"
    line_code_and_txn_code = {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [_line(item, tax="2")],
        "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "3"}},
    }
    assert api.fault(api.post("invoice", line_code_and_txn_code))["code"] == "6000"
    one_code = api.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer["Id"]},
            "Line": [_line(item, amount=100.0, tax="TAX")],
            "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "3"}},
        },
    )
    # San Francisco = California 7.25 % + county 1.375 %
    assert one_code["TxnTaxDetail"]["TotalTax"] == 8.63
    assert one_code["TotalAmt"] == 108.63


def test_missing_and_inactive_payment_method(api, qbo_sim, qbo_company, seed):
    customer = api.create("Customer", {"DisplayName": "Method Co"})
    base = {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": 10.0}
    missing = api.fault(api.post("payment", {**base, "PaymentMethodRef": {"value": "777"}}))
    assert missing["code"] == "2500" and missing["element"] == "PaymentMethodRef"
    method = api.read("PaymentMethod", seed["methods"]["Check"])
    api.create(
        "PaymentMethod",
        {"Id": method["Id"], "SyncToken": method["SyncToken"], "sparse": True, "Active": False},
    )
    inactive = api.fault(api.post("payment", {**base, "PaymentMethodRef": {"value": method["Id"]}}))
    assert inactive["code"] == "610"


def test_6220_cannot_inactivate_customer_with_balance(api, seed):
    customer = api.create("Customer", {"DisplayName": "Owes Co"})
    _invoice(api, customer["Id"], seed["items"]["Sales"])
    error = api.fault(
        api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    )
    assert error["code"] == "6220"


def test_2010_unknown_field_and_malformed_json(api, qbo_sim, qbo_company, qbo_tokens):
    error = api.fault(api.post("customer", {"DisplayName": "Odd", "Favourite": "x"}))
    assert error["code"] == "2010"
    assert error["Message"] == "Request has invalid or unsupported property"
    assert 'Unrecognized field "Favourite"' in error["Detail"]
    response = requests.post(
        f"{qbo_sim.url}/v3/company/{qbo_company}/customer",
        data="{not json",
        headers={"Authorization": f"Bearer {qbo_tokens['access_token']}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["Fault"]["Error"][0]["code"] == "2010"


def test_purchase_enum_and_account_type_rules(api, seed):
    line = [
        {
            "DetailType": "AccountBasedExpenseLineDetail",
            "Amount": 5.0,
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": seed["accounts"]["Merchant Fees"]}},
        }
    ]
    bad_enum = api.fault(
        api.post("purchase", {"PaymentType": "Barter", "AccountRef": {"value": "1"}, "Line": line})
    )
    assert bad_enum["code"] == "2170"
    check_from_card = api.fault(
        api.post(
            "purchase",
            {
                "PaymentType": "Check",
                "AccountRef": {"value": seed["accounts"]["Visa Credit Card"]},
                "Line": line,
            },
        )
    )
    assert check_from_card["code"] == "6000"
    assert (
        api.fault(
            api.post(
                "purchase",
                {"PaymentType": "Cash", "AccountRef": {"value": seed["accounts"]["Checking"]}, "Line": line},
                operation="void",
            )
        )["code"]
        == "500"
    )


def test_negative_line_amount_is_2290(api, seed):
    customer = api.create("Customer", {"DisplayName": "Neg Co"})
    error = api.fault(
        api.post(
            "invoice",
            {
                "CustomerRef": {"value": customer["Id"]},
                "Line": [_line(seed["items"]["Sales"], amount=-5.0, qty=1, price=-5.0)],
            },
        )
    )
    assert error["code"] == "2290"


def test_invoice_total_cannot_drop_below_applied_payments(api, seed):
    customer = api.create("Customer", {"DisplayName": "Shrink Co"})
    invoice = _invoice(api, customer["Id"], seed["items"]["Sales"], amount=100.0)
    api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 80.0,
            "Line": [{"Amount": 80.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    current = api.read("Invoice", invoice["Id"])
    shrunk = {**current, "Line": [_line(seed["items"]["Sales"], 50.0, 1, 50.0)]}
    assert api.fault(api.post("invoice", shrunk))["code"] == "6000"
    grown = api.create("Invoice", {**current, "Line": [_line(seed["items"]["Sales"], 120.0, 1, 120.0)]})
    assert grown["Balance"] == 40.0
    assert grown["SyncToken"] == str(int(current["SyncToken"]) + 1)


def test_wrongly_typed_values_are_2010_not_server_errors(api, seed):
    customer = api.create("Customer", {"DisplayName": "Typed Co"})
    line = _line(seed["items"]["Sales"])
    for body in (
        {"CustomerRef": customer["Id"], "Line": [line]},
        {"CustomerRef": {"value": customer["Id"]}, "Line": "one line"},
        {"CustomerRef": {"value": customer["Id"]}, "Line": [line], "TxnTaxDetail": {"TaxLine": "x"}},
        {"CustomerRef": {"value": customer["Id"]}, "Line": [{**line, "SalesItemLineDetail": "x"}]},
        {"CustomerRef": {"value": customer["Id"]}, "Line": [line], "TxnDate": 20260101},
    ):
        assert api.fault(api.post("invoice", body))["code"] == "2010", body
    assert (
        api.fault(api.post("customer", {"DisplayName": "E", "PrimaryEmailAddr": "e@x.example"}))["code"]
        == "2010"
    )
