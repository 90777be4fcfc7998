"""GET /health's event-to-QuickBooks lag counts only syncs that wrote a platform event (issue 15 item 3).

A record an admin action makes synced (here: an account whose 3-day-old event failed on a duplicate name,
mapped to an existing QuickBooks customer through ``POST /errors/{id}/map-customer``) turns synced now with
an old ``occurred_at``: as a sample it would read as a 3-day lag and make the firm ``lag_critical``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tests.integration.errorcenter.actions.conftest import Env, platform_event

DAY = 86400


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _account(env: Env, account_id: str, name: str, *, occurred_at: float, event_id: str) -> dict[str, Any]:
    event = platform_event("client_account_created", env.firm, id=account_id, account_type="company")
    event["detail"]["data"]["name"] = name
    event["detail"].update(event_id=event_id, occurred_at=_iso(occurred_at))
    return event


def test_a_sync_made_by_an_admin_action_is_not_a_lag_sample(env: Env) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    now = time.time()
    # one account synced by its event, which occurred 2 minutes ago: the one true sample
    env.sync(_account(env, "acct-lag-1", "Lag Client One", occurred_at=now - 120, event_id="evt-lag-1"))
    synced = env.record("client_account", "acct-lag-1")
    assert synced.status == "synced" and synced.updated_at is not None
    # one whose event (3 days old) failed: named like the seeded vendor "Stripe" (6240)
    env.sync(_account(env, "acct-lag-2", "Stripe", occurred_at=now - 3 * DAY, event_id="evt-lag-2"))
    assert env.record("client_account", "acct-lag-2").status == "failed"
    error_id = env.open_error("client_account", "acct-lag-2")
    customer = env.qbo_client().create(
        "Customer", {"DisplayName": f"Stripe lag {env.firm[-6:]}"}, request_id=f"t-lag-{env.firm}"
    )
    mapped = env.call("POST", f"/errors/{error_id}/map-customer", body={"qbo_customer_id": customer["Id"]})
    assert mapped.status == 200, mapped.body
    linked = env.record("client_account", "acct-lag-2")
    assert linked.status == "synced" and linked.qbo_id == customer["Id"]

    result = env.call("GET", "/health")

    assert result.status == 200, result.body
    body = result.json()
    lag = round(synced.updated_at - (now - 120), 3)
    assert body["lag"] == {
        "window_seconds": 3600,
        "samples": 1,
        "complete": True,
        "p50_seconds": lag,
        "p95_seconds": lag,
        "max_seconds": lag,
    }
    assert "lag_critical" not in body["reasons"] and "lag_high" not in body["reasons"]
    # the mapped account is still the firm's last sync
    assert datetime.fromisoformat(body["last_synced_at"]).timestamp() >= linked.updated_at - 1e-3

    # its next platform event is written by the sync: a sample again, measured from that event
    name = customer["DisplayName"]  # the platform renames it like the customer (not the vendor's name)
    update = _account(env, "acct-lag-2", name, occurred_at=time.time() - 60, event_id="evt-lag-3")
    update["detail"]["version"] = 2
    update["detail"]["data"]["email"] = "ap@example.test"
    env.sync(update)
    rewritten = env.record("client_account", "acct-lag-2")
    assert rewritten.status == "synced" and rewritten.platform_version == 2
    assert env.call("GET", "/health").json()["lag"]["samples"] == 2
