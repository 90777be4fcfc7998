"""A record's timeline and a replay of a time window (issue 15 item 4) through the whole local stack, driven
only from outside: the platform's events on the bus, the admin API over HTTP, the status events back.

1. A service syncs; then, inside the window, a client account and its invoice. The invoice's timeline
   (``GET /sync/records/invoice/inv-400/timeline``) shows every step of the run that synced it, in order -
   the event, the mapped payload, the QuickBooks request, the answer, the final status - with no token and
   none of the client's personal data.
2. ``POST /sync/replay`` of the window: the retry fan-out re-runs exactly the records that ran in it. The
   invoice gets a second run, a ``replay`` command that the one writer answers ``already_synced`` (nothing
   written twice); the service, synced before the window, is not touched.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fixtures.firms import admin_jwt
from tests.fixtures.platform import (
    DEADLINE_SECONDS,
    StatusInbox,
    admin_api,
    connect_owner,
    put_on_bus,
    sample_event,
    untaxed_invoice_without_services,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-timeline-{secrets.token_hex(4)}"


def _runs(local_stack: Any, token: str, entity_type: str, platform_id: str) -> list[dict[str, Any]]:
    got = admin_api(local_stack, token, "GET", f"/sync/records/{entity_type}/{platform_id}/timeline")
    assert got.status_code == 200, got.text
    runs: list[dict[str, Any]] = got.json()["runs"]
    return runs


def test_a_timeline_shows_every_step_and_a_window_replay_re_runs_exactly_its_records(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    service = sample_event("service_created", firm_id)
    put_on_bus(local_stack, service)
    service_id = service["detail"]["data"]["id"]
    status_inbox.wait_for("Service", service_id, "synced", deadline)
    start = datetime.now(UTC)
    account = sample_event("client_account_created", firm_id)
    put_on_bus(local_stack, account)
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)

    got = admin_api(local_stack, token, "GET", "/sync/records/invoice/inv-400/timeline")

    assert got.status_code == 200, got.text
    before = got.json()["runs"]  # newest first: the run that synced it (an earlier one may have waited)
    run = before[0]
    assert [s["step"] for s in run["steps"]] == ["event", "mapped", "request", "response", "final"], before
    assert run["status"] == "synced" and run["steps"][3]["ok"] is True
    data = account["detail"]["data"]
    personal = [data["name"], data["email"], data["phones"][0]["number"], data["billing_address"]["line1"]]
    for secret in [*personal, "Bearer", "access_token", "refresh_token"]:
        assert secret not in got.text, secret

    end = datetime.now(UTC)
    replay = admin_api(
        local_stack,
        token,
        "POST",
        "/sync/replay",
        {"window": {"from": start.isoformat(), "to": end.isoformat()}},
    )
    assert replay.status_code == 202, replay.text
    assert replay.json()["scope"] == "window"

    while True:
        runs = _runs(local_stack, token, "invoice", "inv-400")
        if len(runs) > len(before) or time.monotonic() > deadline:
            break
        status_inbox.poll(2)
    assert [r["status"] for r in runs] == ["already_synced", *(r["status"] for r in before)], runs
    assert runs[0]["steps"][0] | {"step": "command", "reason": "replay"} == runs[0]["steps"][0]
    assert [r["status"] for r in _runs(local_stack, token, "service", service_id)] == ["synced"]
    invoices = [
        i
        for i in qbo_sim.control.entities(qbo_company, "Invoice")
        if "inv-400" in (i.get("PrivateNote") or "")
    ]
    assert len(invoices) == 1  # the replay wrote nothing twice
