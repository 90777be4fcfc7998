"""The pre-flight check (PRODUCT.md J.2) against the QuickBooks simulator: it reads the real v3 wire format
(a batch of queries, CompanyInfo, Preferences) with the real QboClient, a fresh company gives the baseline,
and changing the company changes exactly the findings that change says - at one QuickBooks request a check."""

from __future__ import annotations

from typing import Any

from qbsync.connection.preflight import PreflightCheck, PreflightResult
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.qbo.reference import ReferenceCache

from local.qbo_sim.client import SimAccountant

#: a fresh simulator company (its default seed): custom transaction numbers are off, everything else fits
BASELINE = ("custom_txn_numbers_off",)


def run(
    rig, qbo_sim, realm: str, settings: FirmSyncSettings | None = None
) -> tuple[PreflightResult, list[Any]]:
    """One check, and the QuickBooks requests it made (from the simulator's request log)."""
    before = len(qbo_sim.control.requests(realm, limit=1000))
    result = PreflightCheck(ReferenceCache(lambda: 0.0)).run(rig.client, settings or FirmSyncSettings())
    made = qbo_sim.control.requests(realm, limit=1000)[before:]
    return result, made


def _named(qbo_sim, realm: str, entity: str, name: str) -> dict[str, Any]:
    return next(o for o in qbo_sim.control.entities(realm, entity) if o["Name"] == name)


def test_a_fresh_company_gives_the_baseline_in_one_batch_request(rig, qbo_sim, qbo_company) -> None:
    result, made = run(rig, qbo_sim, qbo_company)

    assert result.codes == BASELINE
    assert result.realm_id == qbo_company
    assert result.company_name is not None and result.company_name.startswith("Test Co ")
    assert (result.books_closed_on, result.multicurrency, result.home_currency) == (None, False, "USD")
    assert [(r["method"], r["path"].rsplit("/", 1)[-1], r["status"]) for r in made] == [
        ("POST", "batch", 200)
    ]


def test_changing_the_preferences_changes_exactly_those_findings(rig, qbo_sim, qbo_company) -> None:
    qbo_sim.control.set_preferences(
        qbo_company,
        books_closed_date="2025-12-31",
        custom_txn_numbers=True,
        multicurrency=True,
        automated_sales_tax=True,
        auto_apply_credit=True,
    )

    result, made = run(rig, qbo_sim, qbo_company)

    assert result.codes == (
        "books_closed",
        "auto_apply_credit_on",
        "multicurrency_on",
        "automated_sales_tax_on",
    )
    assert result.finding("books_closed").detail == {"books_closed_on": "2025-12-31"}  # type: ignore[union-attr]
    assert result.books_closed_on is not None and result.books_closed_on.isoformat() == "2025-12-31"
    assert result.multicurrency is True and result.blocking == ()
    assert len(made) == 1

    qbo_sim.control.set_preferences(qbo_company, books_closed_date=None, auto_apply_credit=False)
    again, _ = run(rig, qbo_sim, qbo_company)
    assert again.codes == ("multicurrency_on", "automated_sales_tax_on")


def test_objects_made_inactive_in_quickbooks_block_what_needs_them(rig, qbo_sim, qbo_company) -> None:
    accountant = SimAccountant.sign_in(qbo_sim.control, qbo_company)
    card = _named(qbo_sim, qbo_company, "PaymentMethod", "Credit Card")
    checking = _named(qbo_sim, qbo_company, "Account", "Checking")
    accountant.update("PaymentMethod", {"Id": card["Id"], "SyncToken": card["SyncToken"], "Active": False})
    accountant.update("Account", {"Id": checking["Id"], "SyncToken": checking["SyncToken"], "Active": False})

    result, _ = run(rig, qbo_sim, qbo_company, FirmSyncSettings(deposit_account_id=checking["Id"]))

    assert result.codes == ("deposit_account_missing", "payment_method_missing", *BASELINE)
    assert result.finding("payment_method_missing").detail["payment_methods"] == "card"  # type: ignore[union-attr]
    assert result.finding("deposit_account_missing").detail["qbo_ids"] == checking["Id"]  # type: ignore[union-attr]
    assert result.blocked_record_types() == {"payment"}


def test_settings_naming_items_cost_one_more_query(rig, qbo_sim, qbo_company) -> None:
    services = _named(qbo_sim, qbo_company, "Item", "Services")
    settings = FirmSyncSettings(work_type_map={"wt_tax": services["Id"], "wt_gone": "9999"})

    result, made = run(rig, qbo_sim, qbo_company, settings)

    assert result.codes == ("work_type_item_missing", *BASELINE)
    assert result.finding("work_type_item_missing").detail["settings"] == "work_type_map.wt_gone"  # type: ignore[union-attr]
    assert [r["path"].rsplit("/", 1)[-1] for r in made] == ["batch", "query"]


def test_an_empty_company_blocks_everything_that_needs_its_lists(rig, qbo_sim, qbo_company) -> None:
    qbo_sim.control._call("POST", f"/_sim/companies/{qbo_company}/reset", {"seed": "empty"})

    result, made = run(rig, qbo_sim, qbo_company)

    assert result.codes == (
        "undeposited_funds_missing",
        "payment_method_missing",
        "fee_expense_account_missing",
        "default_service_missing",
        "custom_txn_numbers_off",
        "individual_customer_type_missing",
        "services_use_sales_item",
    )
    assert result.blocked_record_types() == {"payment", "fee", "invoice", "refund"}
    assert len(made) == 1
