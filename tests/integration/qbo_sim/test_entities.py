"""v3 entity CRUD over HTTP: shapes, Id sequences, SyncToken, sparse/full update, delete/void, links."""

from __future__ import annotations

import requests


def _invoice_body(customer_id, item_id, amount=900.0, qty=2, price=450.0, **extra):
    return {
        "CustomerRef": {"value": customer_id},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": amount,
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item_id},
                    "Qty": qty,
                    "UnitPrice": price,
                    "TaxCodeRef": {"value": "NON"},
                },
            }
        ],
        **extra,
    }


def _customer(api, name="Rivera & Sons LLC", **extra):
    return api.create("Customer", {"DisplayName": name, **extra})


def test_companyinfo_and_preferences_shapes(api, qbo_company):
    info = api.get(f"companyinfo/{qbo_company}").json()
    assert info["CompanyInfo"]["Id"] == "1"
    assert info["CompanyInfo"]["Country"] == "US"
    assert "time" in info
    prefs = api.get("preferences").json()["Preferences"]
    assert prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is False
    assert prefs["CurrencyPrefs"]["HomeCurrency"]["value"] == "USD"


def test_default_seed_has_the_accounts_items_methods_and_types(qbo_sim, qbo_company):
    control = qbo_sim.control
    accounts = {a["Name"]: a for a in control.entities(qbo_company, "Account")}
    assert accounts["Undeposited Funds"]["AccountType"] == "Other Current Asset"
    assert accounts["Uncategorized Income"]["AccountType"] == "Income"
    assert any(a["AccountType"] == "Bank" for a in accounts.values())
    assert accounts["Bank Service Charges"]["AccountType"] == "Expense"
    methods = {m["Name"]: m for m in control.entities(qbo_company, "PaymentMethod")}
    assert methods["Credit Card"]["Type"] == "CREDIT_CARD"
    assert {"Cash", "Check"} <= set(methods)
    assert "Individual" in {t["Name"] for t in control.entities(qbo_company, "CustomerType")}
    assert {"TAX", "NON"} <= {t["Id"] for t in control.entities(qbo_company, "TaxCode")}
    items = control.entities(qbo_company, "Item")
    assert any(i["Name"] == "Sales" and i["Type"] == "Service" for i in items)


def test_customer_create_shape_and_id_sequence(api):
    first = _customer(api, "Alpha LLC", PrimaryEmailAddr={"Address": "a@alpha.example"}, Title="")
    second = _customer(api, "Beta LLC")
    assert int(second["Id"]) == int(first["Id"]) + 1
    assert first["SyncToken"] == "0"
    assert first["domain"] == "QBO" and first["sparse"] is False
    assert first["MetaData"]["CreateTime"] == first["MetaData"]["LastUpdatedTime"]
    assert first["Balance"] == 0
    assert first["FullyQualifiedName"] == "Alpha LLC"
    assert "Title" not in first  # empty fields are omitted
    wrapped = api.get(f"customer/{first['Id']}").json()
    assert set(wrapped) == {"Customer", "time"}


def test_customer_name_built_from_parts(api):
    customer = api.create("Customer", {"GivenName": "Ana", "FamilyName": "Rivera"})
    assert customer["DisplayName"] == "Ana Rivera"


def test_sparse_update_keeps_other_fields_and_full_update_clears_them(api, qbo_sim):
    customer = _customer(api, PrimaryEmailAddr={"Address": "x@y.example"}, Notes="keep")
    sparse = api.create(
        "Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "changed"}
    )
    assert sparse["SyncToken"] == "1"
    assert sparse["Notes"] == "changed"
    assert sparse["PrimaryEmailAddr"]["Address"] == "x@y.example"
    full = api.create(
        "Customer", {"Id": customer["Id"], "SyncToken": "1", "DisplayName": customer["DisplayName"]}
    )
    assert full["SyncToken"] == "2"
    assert "PrimaryEmailAddr" not in full and "Notes" not in full
    assert full["MetaData"]["CreateTime"] == customer["MetaData"]["CreateTime"]


def test_soft_delete_name_lists_with_active_false(api, seed):
    customer = _customer(api)
    inactive = api.create(
        "Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False}
    )
    assert inactive["Active"] is False
    assert api.read("Customer", customer["Id"])["Active"] is False
    account = api.create(
        "Account", {"Name": "Old Fees", "AccountType": "Expense", "AccountSubType": "BankCharges"}
    )
    gone = api.create("Account", {**account, "Active": False})
    assert gone["Name"] == "Old Fees (deleted)"
    method = api.create("PaymentMethod", {"Name": "Zelle"})
    assert method["Type"] == "NON_CREDIT_CARD"
    off = api.create("PaymentMethod", {"Id": method["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert off["Active"] is False


def test_item_service_create(api, seed):
    item = api.create(
        "Item",
        {
            "Name": "Individual Tax Return (1040)",
            "Type": "Service",
            "UnitPrice": 450,
            "IncomeAccountRef": {"value": seed["accounts"]["Services"]},
        },
    )
    assert item["IncomeAccountRef"] == {"value": seed["accounts"]["Services"], "name": "Services"}
    assert item["FullyQualifiedName"] == "Individual Tax Return (1040)"
    assert item["Active"] is True


def test_invoice_totals_docnumber_and_payment_links_both_sides(api, seed):
    customer = _customer(api)
    invoice = api.create("Invoice", _invoice_body(customer["Id"], seed["items"]["Sales"]))
    assert invoice["TotalAmt"] == 900.0
    assert invoice["Balance"] == 900.0
    assert invoice["DocNumber"]  # QBO numbers it (CustomTxnNumbers off)
    assert invoice["Line"][-1]["DetailType"] == "SubTotalLineDetail"
    assert invoice["DueDate"] > invoice["TxnDate"]
    payment = api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 1000.0,
            "PaymentMethodRef": {"value": seed["methods"]["Credit Card"]},
            "Line": [{"Amount": 600.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert payment["UnappliedAmt"] == 400.0
    assert payment["DepositToAccountRef"]["value"] == seed["accounts"]["Undeposited Funds"]
    after = api.read("Invoice", invoice["Id"])
    assert after["Balance"] == 300.0
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert after["SyncToken"] == "1"  # the payment changed the invoice
    assert api.read("Customer", customer["Id"])["Balance"] == -100.0


def test_credit_memo_applied_through_payment(api, seed):
    customer = _customer(api)
    invoice = api.create("Invoice", _invoice_body(customer["Id"], seed["items"]["Sales"]))
    memo = api.create(
        "CreditMemo", _invoice_body(customer["Id"], seed["items"]["Sales"], amount=100.0, qty=1, price=100.0)
    )
    assert memo["RemainingCredit"] == 100.0
    payment = api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 800.0,
            "Line": [
                {"Amount": 900.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
                {"Amount": 100.0, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]},
            ],
        },
    )
    assert payment["UnappliedAmt"] == 0.0
    assert api.read("Invoice", invoice["Id"])["Balance"] == 0.0
    memo_after = api.read("CreditMemo", memo["Id"])
    assert memo_after["RemainingCredit"] == 0.0
    assert memo_after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]


def test_refund_receipt_and_purchase(api, seed):
    customer = _customer(api)
    refund = api.create(
        "RefundReceipt",
        {
            **_invoice_body(customer["Id"], seed["items"]["Sales"], amount=200.0, qty=1, price=200.0),
            "DepositToAccountRef": {"value": seed["accounts"]["Checking"]},
            "PaymentMethodRef": {"value": seed["methods"]["Credit Card"]},
        },
    )
    assert refund["TotalAmt"] == 200.0
    assert refund["Balance"] == 0
    purchase = api.create(
        "Purchase",
        {
            "PaymentType": "Cash",
            "AccountRef": {"value": seed["accounts"]["Checking"]},
            "Line": [
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": 29.3,
                    "AccountBasedExpenseLineDetail": {
                        "AccountRef": {"value": seed["accounts"]["Merchant Fees"]}
                    },
                },
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": 0.7,
                    "AccountBasedExpenseLineDetail": {
                        "AccountRef": {"value": seed["accounts"]["Merchant Fees"]}
                    },
                },
            ],
        },
    )
    assert purchase["TotalAmt"] == 30.0
    assert purchase["AccountRef"]["name"] == "Checking"


def test_delete_transaction_then_read_gives_610(api, seed):
    customer = _customer(api)
    invoice = api.create("Invoice", _invoice_body(customer["Id"], seed["items"]["Sales"]))
    response = api.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="delete")
    assert response.status_code == 200
    assert response.json()["Invoice"] == {"domain": "QBO", "status": "Deleted", "Id": invoice["Id"]}
    error = api.fault(api.get(f"invoice/{invoice['Id']}"))
    assert error["code"] == "610"
    assert error["Message"] == "Object Not Found"


def test_void_invoice_keeps_it_with_zero_amounts(api, seed):
    customer = _customer(api)
    invoice = api.create("Invoice", _invoice_body(customer["Id"], seed["items"]["Sales"]))
    response = api.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void")
    assert response.status_code == 200
    voided = response.json()["Invoice"]
    assert voided["TotalAmt"] == 0 and voided["Balance"] == 0
    assert voided["PrivateNote"] == "Voided"
    assert voided["SyncToken"] == "1"
    assert voided["DocNumber"] == invoice["DocNumber"]


def test_void_payment_with_update_include_void_releases_invoice(api, seed):
    customer = _customer(api)
    invoice = api.create("Invoice", _invoice_body(customer["Id"], seed["items"]["Sales"]))
    payment = api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 900.0,
            "Line": [{"Amount": 900.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert api.read("Invoice", invoice["Id"])["Balance"] == 0.0
    response = api.post(
        "payment", {"Id": payment["Id"], "SyncToken": "0", "sparse": True}, operation="update", include="void"
    )
    assert response.status_code == 200, response.text
    assert response.json()["Payment"]["TotalAmt"] == 0
    restored = api.read("Invoice", invoice["Id"])
    assert restored["Balance"] == 900.0
    assert restored["LinkedTxn"] == []


def test_deleting_a_paid_invoice_unapplies_the_payment(api, seed):
    customer = _customer(api)
    invoice = api.create("Invoice", _invoice_body(customer["Id"], seed["items"]["Sales"]))
    payment = api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 900.0,
            "Line": [{"Amount": 900.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    current = api.read("Invoice", invoice["Id"])
    assert api.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": current["SyncToken"]}, operation="delete"
    ).ok
    after = api.read("Payment", payment["Id"])
    assert after["UnappliedAmt"] == 900.0
    assert after["Line"] == []


def test_name_lists_cannot_be_hard_deleted_and_tax_entities_are_read_only(api):
    customer = _customer(api)
    error = api.fault(api.post("customer", {"Id": customer["Id"], "SyncToken": "0"}, operation="delete"))
    assert error["code"] == "500"
    error = api.fault(api.post("taxcode", {"Name": "New"}))
    assert error["code"] == "500"
    assert api.get("taxcode/TAX").json()["TaxCode"]["Name"] == "TAX"
    assert api.get("taxrate/1").json()["TaxRate"]["RateValue"] == 7.25


def test_requestid_replays_the_original_response(api, qbo_sim, qbo_company):
    first = api.post("customer", {"DisplayName": "Replay Co"}, requestid="req-0001")
    again = api.post("customer", {"DisplayName": "Replay Co"}, requestid="req-0001")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert (
        len([c for c in qbo_sim.control.entities(qbo_company, "Customer") if c["DisplayName"] == "Replay Co"])
        == 1
    )
    other = api.post("customer", {"DisplayName": "Replay Co"}, requestid="req-0002")
    assert api.fault(other)["code"] == "6240"


def test_requestid_too_long_is_rejected(api):
    error = api.fault(api.post("customer", {"DisplayName": "X"}, requestid="r" * 51))
    assert error["code"] == "2130"


def test_minorversion_below_75_is_served_and_above_max_is_refused(api, qbo_company):
    assert api.get(f"companyinfo/{qbo_company}", minorversion="4").status_code == 200
    assert api.get(f"companyinfo/{qbo_company}", minorversion="").status_code == 200
    error = api.fault(api.get(f"companyinfo/{qbo_company}", minorversion="999"))
    assert error["code"] == "2010"


def test_missing_bearer_token_is_401_lowercase_fault(qbo_sim, qbo_company):
    response = requests.get(f"{qbo_sim.url}/v3/company/{qbo_company}/preferences", timeout=10)
    assert response.status_code == 401
    assert response.json()["fault"]["type"] == "AUTHENTICATION"
    assert "WWW-Authenticate" in response.headers


def test_preferences_and_companyinfo_updates_use_synctoken(api, qbo_company):
    prefs = api.get("preferences").json()["Preferences"]
    updated = api.post(
        "preferences",
        {
            "Id": prefs["Id"],
            "SyncToken": prefs["SyncToken"],
            "sparse": True,
            "SalesFormsPrefs": {**prefs["SalesFormsPrefs"], "AllowShipping": True},
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()["Preferences"]
    assert body["SalesFormsPrefs"]["AllowShipping"] is True
    assert body["SyncToken"] == str(int(prefs["SyncToken"]) + 1)
    assert body["TaxPrefs"] == prefs["TaxPrefs"]  # sparse: untouched
    stale = api.post("preferences", {"Id": prefs["Id"], "SyncToken": prefs["SyncToken"], "sparse": True})
    assert api.fault(stale)["code"] == "5010"
    info = api.get(f"companyinfo/{qbo_company}").json()["CompanyInfo"]
    renamed = api.post(
        "companyinfo",
        {"Id": info["Id"], "SyncToken": info["SyncToken"], "sparse": True, "CompanyName": "Renamed CPA"},
    )
    assert renamed.json()["CompanyInfo"]["CompanyName"] == "Renamed CPA"


def test_requestid_replay_is_the_original_even_after_later_changes(api, seed):
    customer = api.create("Customer", {"DisplayName": "Frozen Co"})
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 50.0,
                "SalesItemLineDetail": {"ItemRef": {"value": seed["items"]["Sales"]}},
            }
        ],
    }
    first = api.post("invoice", body, requestid="frozen-1").json()
    api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 50.0,
            "Line": [
                {"Amount": 50.0, "LinkedTxn": [{"TxnId": first["Invoice"]["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )
    replay = api.post("invoice", body, requestid="frozen-1").json()
    assert replay == first
    assert replay["Invoice"]["Balance"] == 50.0
    assert api.read("Invoice", first["Invoice"]["Id"])["Balance"] == 0.0
