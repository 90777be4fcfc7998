"""An invoice number longer than QuickBooks' 21 characters (issue 11): an explained Invoices error on the
record - not a malformed event - with the firm's two fixes: "let QuickBooks number it" (the action) or a
corrected number from the platform. Real admin API and entity-sync handlers on moto + the simulator."""

from __future__ import annotations

from typing import Any

from tests.integration.entity_sync.conftest import platform_event, untaxed_invoice
from tests.integration.errorcenter.actions.conftest import Env

LONG_NUMBER = "INV-2026-PORTAL-000001042"  # 25 characters


def _invoice_posts(env: Env) -> int:
    return sum(
        1
        for r in env.stack.sim.control.requests(env.realm, limit=500)
        if r.get("method") == "POST" and "/invoice" in str(r.get("path", "")).lower()
    )


def _ours(env: Env) -> list[dict[str, Any]]:
    from qbsync.outbound.mapping import parse_marker

    return [i for i in env.qbo("Invoice") if parse_marker(i.get("PrivateNote")) == ("Invoice", "inv-400")]


def _failed_on_its_number(env: Env) -> str:
    """Custom transaction numbers on (so DocNumber is sent), prerequisites synced, the long-numbered invoice
    delivered: the record fails with an open Invoices error and nothing is written to QuickBooks."""
    env.stack.sim.control.set_preferences(env.realm, custom_txn_numbers=True)
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    before = _invoice_posts(env)
    env.sync(untaxed_invoice(env.firm, number=LONG_NUMBER))
    record = env.record("invoice", "inv-400")
    assert record.status == "failed" and record.error.code == "doc_number_too_long"
    assert _invoice_posts(env) == before and _ours(env) == []  # QuickBooks was never asked
    listed = env.call("GET", "/errors", query={"status": "open", "category": "Invoices"})
    assert listed.status == 200, listed.body
    [error] = [e for e in listed.json()["errors"] if e["platform_id"] == "inv-400"]
    assert error["code"] == "doc_number_too_long" and error["category"] == "Invoices"
    detail = env.call("GET", f"/errors/{error['error_id']}").json()
    assert "Let QuickBooks number it" in detail["fix"] and "fix the invoice number" in detail["fix"]
    assert LONG_NUMBER not in str(detail)  # the number is client data: never echoed
    return str(error["error_id"])


def test_let_quickbooks_number_it_syncs_the_invoice_without_its_number_and_resolves_the_error(
    env: Env,
) -> None:
    error_id = _failed_on_its_number(env)

    staff = env.call("POST", f"/errors/{error_id}/let-quickbooks-number", role="staff")
    assert staff.status == 403
    accepted = env.call("POST", f"/errors/{error_id}/let-quickbooks-number")
    assert accepted.status == 202, accepted.body
    assert accepted.json()["status"] == "queued" and accepted.json()["invoice_id"] == "inv-400"
    [command] = env.commands()
    assert command["platform_id"] == "inv-400" and command["request_id"] == accepted.json()["request_id"]
    assert env.record("invoice", "inv-400").status == "failed"  # until the resync runs

    env.sync(command)

    record = env.record("invoice", "inv-400")
    assert record.status == "synced" and record.qbo_numbers
    [created] = _ours(env)
    assert not created.get("DocNumber")  # custom numbers: QuickBooks leaves it for the firm to fill in
    errors = env.call("GET", f"/errors/{error_id}").json()
    assert errors["status"] == "resolved"
    assert [h["action"] for h in errors["history"]].count("let QuickBooks number it") == 1

    # the choice holds for later versions: an edit is sent without the platform's number too
    edited = untaxed_invoice(env.firm, number=LONG_NUMBER)
    edited["detail"].update(version=5, event_id="evt-0009-edit")
    edited["detail"]["data"]["memo"] = "edited"
    env.sync(edited)
    assert env.record("invoice", "inv-400").status == "synced"
    [updated] = _ours(env)
    assert not updated.get("DocNumber") and updated["Id"] == created["Id"]

    again = env.call("POST", f"/errors/{error_id}/let-quickbooks-number")
    assert again.status == 409  # the error is resolved


def test_a_corrected_number_from_the_platform_syncs_and_resolves_the_error(env: Env) -> None:
    error_id = _failed_on_its_number(env)

    fixed = untaxed_invoice(env.firm, number="INV-1042")
    fixed["detail"].update(version=3, event_id="evt-0009-fixed")
    env.sync(fixed)

    assert env.record("invoice", "inv-400").status == "synced"
    [created] = _ours(env)
    assert created["DocNumber"] == "INV-1042"
    assert env.call("GET", f"/errors/{error_id}").json()["status"] == "resolved"


def test_the_action_is_only_for_invoice_number_errors(env: Env) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    env.sync(platform_event("invoice_sent", env.firm))  # its tax rate is not mapped: a Taxes error
    error_id = env.open_error("invoice", "inv-400")

    refused = env.call("POST", f"/errors/{error_id}/let-quickbooks-number")

    assert refused.status == 409
    assert env.commands() == []
    assert not env.record("invoice", "inv-400").qbo_numbers
    assert env.call("POST", "/errors/nope/let-quickbooks-number").status == 404
