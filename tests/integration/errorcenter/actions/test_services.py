"""Service error "Delete" (E.3) through the handler (copying services: tests/integration/inbound)."""

from __future__ import annotations

from tests.integration.errorcenter.actions.conftest import Env, platform_event


def _failing_service(env: Env) -> str:
    bad = platform_event("service_created", env.firm)
    bad["detail"]["data"]["name"] = "Tax: preparation"  # QuickBooks refuses a colon in a name
    env.sync(bad)
    assert env.record("service", "svc-300").status == "failed"
    env.events()
    return env.open_error("service", "svc-300")


def test_delete_service_asks_the_platform_and_resolves_the_error(env: Env) -> None:
    error_id = _failing_service(env)
    assert env.call("POST", f"/errors/{error_id}/delete-service", role="staff").status == 403
    outsider = "firm-other-" + env.firm[-4:]
    env.stack.connect(outsider)
    assert env.call("POST", f"/errors/{error_id}/delete-service", firm=outsider).status == 404

    answer = env.call("POST", f"/errors/{error_id}/delete-service", role="admin")

    assert answer.status == 200, answer.body
    assert answer.json() == {"error_id": error_id, "service_id": "svc-300", "outcome": "delete_requested"}
    events = env.events()
    requested = [d for t, d in events if t == "Service Delete Requested"]
    assert [(d["service_id"], d["error_id"], d["requested_by"], d["realm_id"]) for d in requested] == [
        ("svc-300", error_id, "user-1", env.realm)
    ]
    assert [d["resolution"] for t, d in events if t == "Sync Error Resolved"] == ["deleted"]
    entry = env.stack.errors.get(env.firm, error_id)
    assert entry is not None and entry.status == "resolved"
    assert [h["action"] for h in entry.history][-2:] == ["service deleted", "resolved"]
    assert env.call("POST", f"/errors/{error_id}/delete-service").status == 409  # resolved now

    # an account error cannot delete a service
    account = platform_event("client_account_created", env.firm)
    account["detail"]["data"]["name"] = "Stripe"  # the seeded vendor's name: 6240
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(account)
    refused = env.call("POST", f"/errors/{env.open_error('client_account', 'acct-100')}/delete-service")
    assert (
        refused.status == 409
        and refused.json()["message"] == "delete is only available for errors of services"
    )
