"""POST /sync/records/{entity_type}/{platform_id}/sync: manual sync (PRODUCT.md C.6) through the handler."""

from __future__ import annotations

import time

from qbsync.errorcenter.actions import CLIENT_ACCOUNT_FIRST, NOT_RECEIVED
from qbsync.models.record_key import RecordKey
from qbsync.repositories.records import RecordError

from tests.integration.entity_sync.conftest import untaxed_invoice
from tests.integration.errorcenter.actions.conftest import Env, platform_event


def test_a_skipped_account_is_synced_on_request_and_then_refused_as_synced(env: Env) -> None:
    # default settings: an account without invoices or payments is skipped (no activity)
    env.sync(platform_event("client_account_created", env.firm))
    assert env.record("client_account", "acct-100").status == "skipped"

    answer = env.call("POST", "/sync/records/client_account/acct-100/sync")

    assert answer.status == 202, answer.body
    body = answer.json()
    assert body["status"] == "queued" and body["force"] is True and body["request_id"]
    commands = env.commands()
    assert [
        (c["entity_type"], c["platform_id"], c["reason"], c["force"], c["requested_by"]) for c in commands
    ] == [("client_account", "acct-100", "manual_sync", True, "user-1")]
    assert commands[0]["request_id"] == body["request_id"]

    # the worker runs the command: the account's stored event is synced despite the settings
    env.sync(*commands)
    account = env.record("client_account", "acct-100")
    assert account.status == "synced" and account.qbo_id
    assert [c["Id"] for c in env.qbo("Customer") if c["DisplayName"] == "Harbour Bakery LLC"] == [
        account.qbo_id
    ]

    again = env.call("POST", "/sync/records/client_account/acct-100/sync")
    assert (again.status, again.json()["message"]) == (409, "already synced")
    assert env.commands() == []


def test_an_invoice_of_an_account_not_in_quickbooks_is_refused(env: Env) -> None:
    env.sync(untaxed_invoice(env.firm))  # blocks on its account, which qbsync never received
    assert env.record("invoice", "inv-400").status == "blocked"
    env.stack.requeued()

    answer = env.call("POST", "/sync/records/invoice/inv-400/sync")

    assert answer.status == 409
    assert answer.json() == {
        "error": "conflict",
        "message": f"{CLIENT_ACCOUNT_FIRST} (client account acct-100)",
    }
    assert env.commands() == []


def test_a_record_without_a_stored_event_unknown_ids_roles_and_bad_input(env: Env) -> None:
    # a failed record that qbsync holds no platform event for (written by the repository directly)
    records = env.stack.records
    now = time.time()
    assert records.claim(
        RecordKey(env.firm, env.realm, "service", "svc-1"), version=1, owner="w", lease_seconds=60, now=now
    ).claimed
    records.mark_failed(
        RecordKey(env.firm, env.realm, "service", "svc-1"),
        owner="w",
        error=RecordError("x", "services", "boom"),
        now=now,
    )
    refused = env.call("POST", "/sync/records/service/svc-1/sync")
    assert (refused.status, refused.json()["message"]) == (409, NOT_RECEIVED)

    assert env.call("POST", "/sync/records/service/svc-1/sync", role="staff").status == 403
    # another firm's record, and an id qbsync never saw: 404 alike
    other = "firm-other-" + env.firm[-4:]
    env.stack.connect(other)
    assert env.call("POST", "/sync/records/service/svc-1/sync", firm=other).status == 404
    assert env.call("POST", "/sync/records/service/svc-unknown/sync").status == 404
    bad = env.call("POST", "/sync/records/contact/c-1/sync")
    assert bad.status == 400 and "entity_type" in bad.json()["message"]
    assert env.commands() == []


def test_not_connected_is_a_conflict(env: Env) -> None:
    answer = env.call("POST", "/sync/records/invoice/inv-400/sync", firm="firm-never-connected")
    assert answer.status == 409 and "not connected" in answer.json()["message"]
