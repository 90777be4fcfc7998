"""GET /health through the whole local stack (issue 15 item 3), driven only from outside.

A firm connects through the real HTTP endpoints; the platform puts an account and an invoice on the bus,
whose events occurred two minutes earlier; once both are synced (qbsync's own "Sync Status Changed"),
the owner's ``GET /health`` through API Gateway reports them as the hour's lag samples, with the lag they
had, nothing failed, and the token countdown of the fresh connection. No sleeps: one deadline.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.fixtures.firms import admin_jwt, connect_through_stack
from tests.fixtures.platform import (
    DEADLINE_SECONDS,
    StatusInbox,
    put_on_bus,
    sample_event,
    untaxed_invoice_without_services,
)

pytestmark = pytest.mark.e2e
EARLIER = 120  # seconds between the platform change and its event reaching the bus


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-health-{secrets.token_hex(4)}"


def _occurred(event: dict[str, Any], at: float) -> dict[str, Any]:
    event["detail"]["occurred_at"] = datetime.fromtimestamp(at, UTC).isoformat()
    return event


def test_health_reports_the_lag_of_what_synced(
    local_stack: Any, qbo_sim: Any, firm_id: str, status_inbox: StatusInbox
) -> None:
    token = admin_jwt(local_stack, firm_id, ttl_seconds=1800)
    realm = qbo_sim.control.create_company(company_name=f"Health Co {secrets.token_hex(3)}")["realm_id"]
    connect_through_stack(local_stack, qbo_sim, token, realm)
    deadline = time.monotonic() + DEADLINE_SECONDS
    started = time.time()

    put_on_bus(local_stack, _occurred(sample_event("client_account_created", firm_id), started - EARLIER))
    put_on_bus(local_stack, _occurred(untaxed_invoice_without_services(firm_id), started - EARLIER))
    status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    elapsed = time.time() - started

    answer = requests.get(
        f"{local_stack.api_url}/health", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["firm_id"], body["realm_id"], body["connection_status"]) == (firm_id, realm, "connected")
    lag = body["lag"]
    assert (lag["samples"], lag["complete"], lag["window_seconds"]) == (2, True, 3600)
    assert EARLIER <= lag["p50_seconds"] <= lag["p95_seconds"] == lag["max_seconds"] <= EARLIER + elapsed + 1
    assert body["records"] == {"failed": 0, "blocked": 0, "complete": True}
    assert body["last_synced_at"] is not None
    assert body["budget"]["last_hour"] > 0 and body["budget"]["limit_per_minute"] == 500
    assert 99 < body["tokens"]["idle_days_left"] <= 101
    assert {q["queue"] for q in body["backlog"]["queues"]} >= {"outbound", "outbound_dead_letters"}
    assert body["level"] == "ok" and body["reasons"] == []
    staff = admin_jwt(local_stack, firm_id, role="staff")
    refused = requests.get(
        f"{local_stack.api_url}/health", headers={"Authorization": f"Bearer {staff}"}, timeout=60
    )
    assert refused.status_code == 403
