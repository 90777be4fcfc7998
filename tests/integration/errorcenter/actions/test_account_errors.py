"""Account error actions (PRODUCT.md C.1 / E.3): search, map to a customer, create one, don't sync."""

from __future__ import annotations

from typing import Any

from qbsync.errorcenter.actions import EXCLUDED_BY_FIRM

from tests.integration.entity_sync.conftest import untaxed_invoice
from tests.integration.errorcenter.actions.conftest import Env, platform_event


def _account(env: Env, account_id: str, name: str) -> dict[str, Any]:
    event = platform_event("client_account_created", env.firm, id=account_id, account_type="company")
    event["detail"]["data"]["name"] = name
    return event


def _failing_account(env: Env) -> str:
    """acct-100 named like the seeded vendor "Stripe" (6240: names are shared) + its invoice waiting on it:
    skipped naming the failed account (it will not sync until the firm acts), kept to come back (issue 11)."""
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(_account(env, "acct-100", "Stripe"))
    env.sync(platform_event("service_created", env.firm))
    assert env.record("client_account", "acct-100").status == "failed"
    env.sync(untaxed_invoice(env.firm))
    invoice = env.record("invoice", "inv-400")
    assert invoice.status == "skipped" and ("client_account", "acct-100") in invoice.waiting_on
    assert invoice.skip_reason.startswith(
        "waiting_on_prerequisite: waiting on client account acct-100 failed"
    )
    env.stack.requeued()
    env.events()
    return env.open_error("client_account", "acct-100")


def _history(env: Env, error_id: str) -> list[dict[str, Any]]:
    entry = env.stack.errors.get(env.firm, error_id)
    assert entry is not None
    return entry.history


def test_search_then_map_to_an_existing_customer_releases_the_waiting_invoice(env: Env) -> None:
    error_id = _failing_account(env)
    qbo = env.qbo_client()
    mine = qbo.create("Customer", {"DisplayName": "Stripe Payments (client)"}, request_id="t-cust-1")
    other = qbo.create("Customer", {"DisplayName": "Someone Else"}, request_id="t-cust-2")

    found = env.call("GET", "/qbo/customers", query={"search": "stripe"})
    assert found.status == 200, found.body
    assert [(c["id"], c["display_name"]) for c in found.json()["customers"]] == [
        (mine["Id"], "Stripe Payments (client)")
    ]
    assert {c["id"] for c in env.call("GET", "/qbo/customers").json()["customers"]} >= {
        mine["Id"],
        other["Id"],
    }
    assert env.call("GET", "/qbo/customers", role="staff").status == 403
    for odd in ("O'Brien", "100%", "back\\slash", "_", "  "):
        assert env.call("GET", "/qbo/customers", query={"search": odd}).status == 200, odd
    assert env.call("GET", "/qbo/customers", query={"search": "bell\x07"}).status == 400

    answer = env.call("POST", f"/errors/{error_id}/map-customer", body={"qbo_customer_id": mine["Id"]})

    assert answer.status == 200, answer.body
    body = answer.json()
    assert (body["outcome"], body["record_status"], body["qbo_customer_id"], body["released"]) == (
        "mapped",
        "synced",
        mine["Id"],
        1,
    )
    account = env.record("client_account", "acct-100")
    assert account.status == "synced" and account.qbo_id == mine["Id"] and account.error is None
    assert env.stack.records.find_by_qbo_id(env.realm, "Customer", mine["Id"]).platform_id == "acct-100"
    entry = env.stack.errors.get(env.firm, error_id)
    assert entry is not None and entry.status == "resolved"
    assert {"action": "mapped to customer", "by": "user-1", "detail": mine["Id"]}.items() <= _history(
        env, error_id
    )[-2].items()
    kinds = sorted((t, d.get("status") or d.get("resolution")) for t, d in env.events())
    assert kinds == [("Sync Error Resolved", "mapped_existing"), ("Sync Status Changed", "synced")]
    # the invoice that waited on the account is queued again and now reaches QuickBooks on that customer
    commands = env.commands()
    assert [(c["entity_type"], c["platform_id"]) for c in commands] == [("invoice", "inv-400")]
    env.sync(*commands)
    invoice = env.record("invoice", "inv-400")
    assert invoice.status == "synced"
    qbo_invoice = next(i for i in env.qbo("Invoice") if i["Id"] == invoice.qbo_id)
    assert qbo_invoice["CustomerRef"]["value"] == mine["Id"]

    # the error is closed now; a second account cannot take the same customer
    assert (
        env.call("POST", f"/errors/{error_id}/map-customer", body={"qbo_customer_id": mine["Id"]}).status
        == 409
    )
    env.sync(_account(env, "acct-101", "Emily Platt"))
    second = env.open_error("client_account", "acct-101")
    taken = env.call("POST", f"/errors/{second}/map-customer", body={"qbo_customer_id": mine["Id"]})
    assert taken.status == 409 and "acct-100" in taken.json()["message"]
    missing = env.call("POST", f"/errors/{second}/map-customer", body={"qbo_customer_id": "999999"})
    assert missing.status == 400
    assert env.call("POST", f"/errors/{second}/map-customer", body={"qbo_customer_id": "x"}).status == 400
    extra = env.call("POST", f"/errors/{second}/map-customer", body={"qbo_customer_id": "1", "more": 1})
    assert extra.status == 400
    assert (
        env.call(
            "POST", f"/errors/{second}/map-customer", role="staff", body={"qbo_customer_id": other["Id"]}
        ).status
        == 403
    )
    outsider = "firm-other-" + env.firm[-4:]
    env.stack.connect(outsider)
    assert (
        env.call(
            "POST", f"/errors/{second}/map-customer", firm=outsider, body={"qbo_customer_id": other["Id"]}
        ).status
        == 404
    )


def test_create_customer_exactly_once_under_a_lost_answer_and_a_repeat(env: Env) -> None:
    error_id = _failing_account(env)
    path = f"/errors/{error_id}/create-customer"
    assert env.call("POST", path, body={"display_name": "Stripe: client"}).status == 400
    assert env.call("POST", path, body={"display_name": "x" * 101}).status == 400
    taken = env.call("POST", path, body={"display_name": "Emily Platt"})  # a seeded employee
    assert taken.status == 409 and "employee" in taken.json()["message"]
    assert env.call("POST", path, role="staff", body={}).status == 403
    # no body: the account's own name, which the seeded vendor has
    default = env.call("POST", path)
    assert default.status == 409 and "vendor" in default.json()["message"], default.body

    # every try of the create commits in QuickBooks but its answer is lost
    env.stack.sim.control.inject_fault(
        "drop_after_commit", count=10, realm_id=env.realm, method="POST", path_regex="/customer$"
    )
    try:
        lost = env.call("POST", path, body={"display_name": "Stripe (client)"})
    finally:
        env.stack.sim.control.clear_faults()
    assert lost.status == 503, lost.body
    assert env.record("client_account", "acct-100").intent is not None

    answer = env.call("POST", path, body={"display_name": "Stripe (client)"})

    assert answer.status == 200, answer.body
    created = [c for c in env.qbo("Customer") if c["DisplayName"] == "Stripe (client)"]
    assert len(created) == 1
    assert created[0]["CompanyName"] == "Stripe"  # the account's own name stays the company name
    body = answer.json()
    assert (body["outcome"], body["qbo_customer_id"], body["released"]) == ("created", created[0]["Id"], 1)
    account = env.record("client_account", "acct-100")
    assert account.status == "synced" and account.qbo_id == created[0]["Id"] and account.intent is None
    assert _history(env, error_id)[-2]["action"] == "created customer"

    repeat = env.call("POST", path, body={"display_name": "Stripe (client)"})
    assert repeat.status == 200 and repeat.json()["outcome"] == "already_done"
    assert repeat.json()["qbo_customer_id"] == created[0]["Id"]
    assert len([c for c in env.qbo("Customer") if c["DisplayName"] == "Stripe (client)"]) == 1


def test_dont_sync_excludes_the_account_and_only_account_errors_take_account_actions(env: Env) -> None:
    error_id = _failing_account(env)
    assert env.call("POST", f"/errors/{error_id}/dont-sync", role="staff").status == 403

    answer = env.call("POST", f"/errors/{error_id}/dont-sync")

    assert answer.status == 200, answer.body
    assert (answer.json()["outcome"], answer.json()["record_status"]) == ("excluded", "skipped")
    account = env.record("client_account", "acct-100")
    assert account.status == "skipped" and account.skip_reason == EXCLUDED_BY_FIRM
    entry = env.stack.errors.get(env.firm, error_id)
    assert entry is not None and entry.status == "resolved"
    assert _history(env, error_id)[-2]["action"] == "not synced (excluded by the firm)"
    kinds = sorted((t, d.get("status") or d.get("resolution")) for t, d in env.events())
    assert kinds == [("Sync Error Resolved", "not_synced"), ("Sync Status Changed", "skipped")]
    # the invoice that waited on the account runs again and now names the firm's choice (issue 11)
    commands = env.commands()
    assert [(c["entity_type"], c["platform_id"]) for c in commands] == [("invoice", "inv-400")]
    env.sync(*commands)
    invoice = env.record("invoice", "inv-400")
    assert invoice.status == "skipped" and "acct-100 is skipped (excluded by the firm)" in invoice.skip_reason
    env.events()
    assert env.call("POST", f"/errors/{error_id}/dont-sync").status == 409  # not open any more
    assert env.call("POST", "/errors/0000000000000000-1/dont-sync").status == 404
    # a later platform change of the account keeps it out of QuickBooks
    renamed = _account(env, "acct-100", "Stripe Holdings")
    renamed["detail"]["version"] = renamed["detail"].get("version", 1) + 1
    env.sync(renamed)
    account = env.record("client_account", "acct-100")
    assert account.status == "skipped" and account.skip_reason == EXCLUDED_BY_FIRM
    assert not [c for c in env.qbo("Customer") if c.get("DisplayName") == "Stripe Holdings"]
    env.events()
    # a manual sync still syncs it on request, past the exclusion
    queued = env.call("POST", "/sync/records/client_account/acct-100/sync")
    assert queued.status == 202 and queued.json()["force"] is True

    # a service error is not an account error
    bad = platform_event("service_created", env.firm, id="svc-bad")
    bad["detail"]["data"]["name"] = "Tax: preparation"  # QuickBooks refuses a colon in a name
    env.sync(bad)
    service_error = env.open_error("service", "svc-bad")
    for action, body in (
        ("dont-sync", None),
        ("create-customer", {}),
        ("map-customer", {"qbo_customer_id": "1"}),
    ):
        refused = env.call("POST", f"/errors/{service_error}/{action}", body=body)
        assert refused.status == 409, (action, refused.body)
        assert refused.json()["message"] == "this action is only available for errors of client accounts"


def test_an_account_named_exactly_like_an_existing_customer_is_linked_not_duplicated(env: Env) -> None:
    """C.1: automatic match on the exact DisplayName; a near miss is a new customer."""
    env.stack.set_settings(env.firm, sync_accounts="all")
    qbo = env.qbo_client()
    existing = qbo.create("Customer", {"DisplayName": "Marsh & Reed Consulting LLC"}, request_id="t-cust-m")

    env.sync(_account(env, "acct-200", "Marsh & Reed Consulting LLC"))
    env.sync(_account(env, "acct-201", "Marsh & Reed Consulting"))

    linked = env.record("client_account", "acct-200")
    assert (linked.status, linked.qbo_id) == ("synced", existing["Id"])
    assert linked.deep_link and existing["Id"] in linked.deep_link
    near = env.record("client_account", "acct-201")
    assert near.status == "synced" and near.qbo_id not in (None, existing["Id"])
    names = [c["DisplayName"] for c in env.qbo("Customer")]
    assert names.count("Marsh & Reed Consulting LLC") == 1
    # a second account of the same name does not steal the linked customer: QuickBooks refuses the duplicate
    env.sync(_account(env, "acct-202", "Marsh & Reed Consulting LLC"))
    assert env.record("client_account", "acct-202").status == "failed"
    assert env.stack.records.find_by_qbo_id(env.realm, "Customer", existing["Id"]).platform_id == "acct-200"
