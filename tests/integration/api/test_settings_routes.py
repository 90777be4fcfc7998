"""GET/PUT /settings through the admin API handler, validated against the simulator's company."""

from __future__ import annotations

import time
from typing import Any

import requests
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.repositories.firm_settings import FirmSettingsRepository

from tests.integration.api.conftest import AdminApi, new_firm


def _id(api: AdminApi, entity: str, name: str) -> str:
    for obj in api.qbo(entity):
        if obj.get("Name") == name:
            return str(obj["Id"])
    raise AssertionError(f"the simulator company has no {entity} {name!r}")


def _valid_settings(api: AdminApi) -> dict[str, Any]:
    return {
        "sync_accounts": "all",
        "sync_start_date": "2026-01-01",
        "sync_offline_payments": True,
        "deposit_account_id": _id(api, "Account", "Checking"),
        "service_income_account_id": _id(api, "Account", "Services"),
        "fee_expense_account_id": _id(api, "Account", "Merchant Fees"),
        "customer_type_id": _id(api, "CustomerType", "Business"),
        "tax_map": {"rate-sf": {"tax_code_id": "3", "primary_rate_id": "1", "secondary_rate_id": "2"}},
        "work_type_map": {"wt-tax-prep": _id(api, "Item", "Services")},
        "default_service_id": _id(api, "Item", "Sales"),
    }


def test_get_returns_the_defaults_to_every_role_until_settings_are_stored(api: AdminApi) -> None:
    firm = new_firm()
    for role in ("owner", "admin", "staff"):
        got = api.call("GET", "/settings", firm_id=firm, role=role)
        assert got.status == 200, got.body
        body = got.json()
        assert body["is_default"] is True and body["updated_at"] is None
        assert body["settings"]["sync_accounts"] == "with_activity"
        assert body["settings"]["deposit_account_id"] is None and body["settings"]["tax_map"] == {}


def test_put_checks_against_quickbooks_then_stores_and_get_returns_it(api: AdminApi) -> None:
    firm = new_firm()
    api.connect(firm)
    wanted = _valid_settings(api)
    put = api.call("PUT", "/settings", firm_id=firm, role="admin", body=wanted)
    assert put.status == 200, put.body
    assert put.json()["is_default"] is False and put.json()["updated_at"]
    got = api.call("GET", "/settings", firm_id=firm, role="staff").json()
    assert got["is_default"] is False
    for key, value in wanted.items():
        assert got["settings"][key] == value, key
    # PUT replaces the whole document: what is left out goes back to its default
    partial = api.call("PUT", "/settings", firm_id=firm, body={"sync_accounts": "with_activity"})
    assert partial.status == 200, partial.body
    assert partial.json()["settings"]["deposit_account_id"] is None
    assert partial.json()["settings"]["tax_map"] == {}


def test_every_setting_that_does_not_fit_the_company_is_named_in_one_400(api: AdminApi) -> None:
    firm = new_firm()
    api.connect(firm)
    bad = {
        **_valid_settings(api),
        "deposit_account_id": _id(api, "Account", "Visa Credit Card"),  # a Credit Card account
        "service_income_account_id": _id(api, "Account", "Bank Service Charges"),  # an Expense account
        "fee_expense_account_id": "99999",  # does not exist
        "customer_type_id": "123",
        "tax_map": {
            "rate-x": {"tax_code_id": "77"},
            "rate-ca": {"tax_code_id": "2", "primary_rate_id": "2"},  # rate 2 is not part of code 2
        },
        "work_type_map": {"wt-audit": "4242", "wt-odd": "not-a-qbo-id"},
        "default_service_id": "31337",
    }
    got = api.call("PUT", "/settings", firm_id=firm, body=bad)
    assert got.status == 400, got.body
    body = got.json()
    assert body["error"] == "bad_request"
    message = body["message"]
    for expected in (
        "deposit_account_id: account",
        "Credit Card account; choose a Bank or Other Current Asset account",
        "service_income_account_id: account",
        "is a Expense account; choose an Income account",
        "fee_expense_account_id: QuickBooks has no account 99999",
        "customer_type_id: QuickBooks has no customer type 123",
        "tax_map.rate-x.tax_code_id: QuickBooks has no tax code 77",
        "tax_map.rate-ca.primary_rate_id: tax rate 2 is not a sales rate of tax code 2",
        "work_type_map.wt-audit: QuickBooks has no active service 4242",
        "work_type_map.wt-odd: QuickBooks has no active service not-a-qbo-id",
        "default_service_id: QuickBooks has no active service 31337",
    ):
        assert expected in message, (expected, message)
    # nothing was stored
    assert api.call("GET", "/settings", firm_id=firm).json()["is_default"] is True


def test_a_non_service_item_cannot_be_a_work_type_target(api: AdminApi) -> None:
    firm = new_firm()
    api.connect(firm)
    income = _id(api, "Account", "Sales")
    issued = api.sim.control.issue_tokens(api.client_id, api.realm_id)
    created = requests.post(
        f"{api.sim.url}/v3/company/{api.realm_id}/item",
        json={"Name": "Widget", "Type": "NonInventory", "IncomeAccountRef": {"value": income}},
        headers={"Authorization": f"Bearer {issued['access_token']}", "Accept": "application/json"},
        timeout=10,
    )
    assert created.status_code == 200, created.text
    widget = created.json()["Item"]["Id"]
    got = api.call("PUT", "/settings", firm_id=firm, body={"default_service_id": widget})
    assert got.status == 400
    assert (
        f"default_service_id: QuickBooks item {widget} is not a service (type NonInventory)"
        in got.json()["message"]
    )


def test_put_needs_owner_or_admin(api: AdminApi) -> None:
    firm = new_firm()
    api.connect(firm)
    got = api.call("PUT", "/settings", firm_id=firm, role="staff", body={})
    assert got.status == 403 and got.json()["error"] == "forbidden"
    assert api.call("GET", "/settings", firm_id=firm).json()["is_default"] is True


def test_put_while_quickbooks_is_not_connected_is_a_409(api: AdminApi) -> None:
    got = api.call("PUT", "/settings", firm_id=new_firm(), body={"sync_accounts": "all"})
    assert got.status == 409, got.body
    assert got.json()["error"] == "conflict"
    assert "QuickBooks is not connected (not_connected)" in got.json()["message"]


def test_bad_bodies_are_400_naming_the_fields_without_echoing_values(api: AdminApi) -> None:
    firm = new_firm()
    api.connect(firm)
    secret_looking = "jane.doe@example.com"
    cases = [
        ({"sync_accounts": secret_looking}, "body.sync_accounts"),
        ({"colour": secret_looking}, "body.colour"),
        ({"tax_map": {"r1": {"tax_code_id": "3", "secondary_rate_id": "2"}}}, "body.tax_map.r1"),
        ({"sync_start_date": secret_looking}, "body.sync_start_date"),
        ([secret_looking], "body"),
    ]
    for body, field in cases:
        got = api.call("PUT", "/settings", firm_id=firm, body=body)
        assert got.status == 400, (body, got.body)
        assert got.json()["error"] == "bad_request"
        assert field in got.json()["message"], (field, got.body)
        assert secret_looking not in got.body
    not_json = api.call("PUT", "/settings", firm_id=firm, raw_body="{not json")
    assert not_json.status == 400 and not_json.json()["error"] == "bad_request", not_json.body


def test_settings_are_per_firm(api: AdminApi) -> None:
    firm_a, firm_b = new_firm(), new_firm()
    api.connect(firm_a)
    stored = api.call("PUT", "/settings", firm_id=firm_a, body={"sync_accounts": "all"})
    assert stored.status == 200, stored.body
    assert api.call("GET", "/settings", firm_id=firm_b).json()["is_default"] is True
    assert api.call("GET", "/settings", firm_id=firm_a).json()["settings"]["sync_accounts"] == "all"


def test_unknown_routes_and_methods_are_json_404(api: AdminApi) -> None:
    for method, path in (("GET", "/nope"), ("DELETE", "/settings"), ("GET", "/settings/extra")):
        got = api.call(method, path, firm_id=new_firm())
        assert got.status == 404, (method, path, got.body)
        assert got.json()["error"] == "not_found"


def test_choices_list_what_put_accepts_and_only_that(api: AdminApi) -> None:
    firm = new_firm()
    assert api.call("GET", "/settings/choices", firm_id=firm).status == 409  # not connected yet
    api.connect(firm)
    assert api.call("GET", "/settings/choices", firm_id=firm, role="staff").status == 403

    got = api.call("GET", "/settings/choices", firm_id=firm, role="admin")

    assert got.status == 200, got.body
    choices = got.json()
    accounts = {a["Id"]: a for a in api.qbo("Account")}
    assert choices["deposit_accounts"] and {
        accounts[c["id"]]["AccountType"] for c in choices["deposit_accounts"]
    } <= {
        "Bank",
        "Other Current Asset",
    }
    assert "Checking" in {c["name"] for c in choices["deposit_accounts"]}
    assert {c["type"] for c in choices["income_accounts"]} == {"Income"}
    assert {c["type"] for c in choices["expense_accounts"]} <= {"Expense", "Other Expense"}
    assert "Business" in {c["name"] for c in choices["customer_types"]}
    assert choices["tax_codes"] and choices["tax_rates"]
    assert {c["type"] for c in choices["services"]} == {"Service"}
    # every choice is one PUT /settings accepts
    first = {key: rows[0]["id"] for key, rows in choices.items()}
    code = next(c for c in choices["tax_codes"] if c["rate_ids"])
    assert set(code["rate_ids"]) <= {r["id"] for r in choices["tax_rates"]}
    body = {
        "deposit_account_id": first["deposit_accounts"],
        "service_income_account_id": first["income_accounts"],
        "fee_expense_account_id": first["expense_accounts"],
        "customer_type_id": first["customer_types"],
        "tax_map": {"rate-x": {"tax_code_id": code["id"], "primary_rate_id": code["rate_ids"][0]}},
        "work_type_map": {"wt-x": first["services"]},
        "default_service_id": first["services"],
    }
    put = api.call("PUT", "/settings", firm_id=firm, body=body)
    assert put.status == 200, put.body
    # and something that is not a choice is refused: a Credit Card account as the deposit account
    card = next(a["Id"] for a in accounts.values() if a["AccountType"] == "Credit Card")
    assert card not in {c["id"] for c in choices["deposit_accounts"]}
    refused = api.call("PUT", "/settings", firm_id=firm, body={**body, "deposit_account_id": card})
    assert refused.status == 400 and "deposit_account_id" in refused.json()["message"]


# ------------------------------------------------------------------ warnings (issue 11 item 4)

CUSTOM_NUMBERS_HOW = "Settings > Account and settings > Sales > Custom transaction numbers"


def test_the_check_warns_when_custom_transaction_numbers_are_off_and_blocks_nothing(api: AdminApi) -> None:
    firm = new_firm()
    api.connect(firm)
    api.sim.control.set_preferences(api.realm_id, custom_txn_numbers=False)

    check = api.call("GET", "/settings/check", firm_id=firm, role="admin")
    assert check.status == 200, check.body
    body = check.json()
    assert body["ok"] is True and body["problems"] == []
    [warning] = body["warnings"]
    assert warning["code"] == "custom_txn_numbers_off"
    assert "QuickBooks' own numbers" in warning["message"] and CUSTOM_NUMBERS_HOW in warning["message"]

    put = api.call("PUT", "/settings", firm_id=firm, body=_valid_settings(api))
    assert put.status == 200, put.body  # a warning, not a problem: stored
    assert [w["code"] for w in put.json()["warnings"]] == ["custom_txn_numbers_off"]

    api.sim.control.set_preferences(api.realm_id, custom_txn_numbers=True)
    assert api.call("GET", "/settings/check", firm_id=firm).json()["warnings"] == []
    assert api.call("PUT", "/settings", firm_id=firm, body=_valid_settings(api)).json()["warnings"] == []


def test_the_check_names_the_problems_of_the_stored_settings(api: AdminApi) -> None:
    firm = new_firm()
    api.connect(firm)
    api.sim.control.set_preferences(api.realm_id, custom_txn_numbers=True)
    # stored when they fitted; the account is gone from the company since (stored directly: PUT refuses it)
    stored = FirmSyncSettings.model_validate({**_valid_settings(api), "deposit_account_id": "99999"})
    FirmSettingsRepository(api.sync_table).put(firm, stored, now=time.time())

    body = api.call("GET", "/settings/check", firm_id=firm).json()

    assert body["ok"] is False and body["warnings"] == []
    assert body["problems"] == ["deposit_account_id: QuickBooks has no account 99999"]


def test_the_check_needs_a_writer_role_and_a_connection(api: AdminApi) -> None:
    firm = new_firm()
    assert api.call("GET", "/settings/check", firm_id=firm).status == 409
    api.connect(firm)
    assert api.call("GET", "/settings/check", firm_id=firm, role="staff").status == 403
