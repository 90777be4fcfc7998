"""GET /health figures match the work done (issue 15 item 3, PRODUCT.md J.6): the real entity-sync handler
syncs N accounts to the simulator, k records are left blocked and f failed (the worker's own transitions),
d malformed events go to OutboundDLQ through the handler; the admin API handler then reports exactly those
figures, and "Firm Health Changed" is published once per crossing (GET /health and the resync's step)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from qbsync import wiring
from qbsync.models.record_key import RecordKey
from qbsync.reconcile.resync import FirmRun, HealthStep
from qbsync.repositories.dead_letters import DeadLetter, DeadLetterLog
from qbsync.repositories.records import QboLink, RecordError

from local.stack.provision import clients
from tests.integration.api.conftest import AdminApi
from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, sqs_record

OWNER = "health-test"
N_SYNCED, K_BLOCKED, F_FAILED, D_DEAD = 4, 3, 2, 2


def _drain(sqs: Any, url: str) -> None:
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


@pytest.fixture
def health(stack: SyncStack, function_env: Any, qbsync_events: Any) -> Any:
    env = function_env("AdminApiFunction")
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    _drain(sqs, env["OUTBOUND_DLQ_URL"])
    capture = qbsync_events("Firm Health Changed")
    capture.drain()
    api = AdminApi(stack.resources, stack.sim, stack.realm_id, stack.client_id, env)
    return api, capture


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _leave(stack: SyncStack, key: RecordKey, *, failed: bool) -> None:
    assert stack.records.claim(key, version=1, owner=OWNER, lease_seconds=60, now=time.time()).claimed
    if failed:
        stack.records.mark_failed(
            key, owner=OWNER, error=RecordError("qbo_validation", "Invoices", "refused"), now=time.time()
        )
    else:
        stack.records.mark_blocked(
            key, owner=OWNER, waiting_on=[("client_account", "acct-x")], now=time.time()
        )


def _changes(capture: Any) -> list[dict[str, Any]]:
    return [e["detail"] for e in capture.drain() if e["detail-type"] == "Firm Health Changed"]


def _api_requests(stack: SyncStack, realm: str) -> int:
    return sum(
        "/v3/company/" in str(r.get("path", "")) for r in stack.sim.control.requests(realm, limit=5000)
    )


def _metric_values(out: str, name: str) -> list[float]:
    """The values of ``name`` in the EMF lines Powertools printed."""
    values: list[float] = []
    for line in out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and "_aws" in blob and name in blob:
            got = blob[name]
            values.extend(got if isinstance(got, list) else [got])
    return values


def test_health_figures_match_the_work_done(
    stack: SyncStack, health: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    api, capture = health
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    connection = stack.connections().get(firm)
    assert connection is not None and connection.tokens is not None
    realm = connection.realm_id
    requests_before = _api_requests(stack, realm)

    # N accounts synced through the handler, their events having occurred 1..N minutes ago
    now = time.time()
    occurred = {f"acct-h{i}": now - 60 * (i + 1) for i in range(N_SYNCED)}
    events = []
    for i, (account, at) in enumerate(occurred.items()):
        event = platform_event("client_account_created", firm, id=account)
        event["detail"]["data"]["name"] = f"Health Client {i}"
        event["detail"].update(event_id=f"evt-h{i}", occurred_at=_iso(at))
        events.append(event)
    capsys.readouterr()
    delivering = time.time()
    stack.deliver_until_drained(*events)
    delivered_in = time.time() - delivering
    emitted = sorted(_metric_values(capsys.readouterr().out, "EventToQuickBooksLag"))
    synced_at = {}
    for account in occurred:
        record = stack.records.get(RecordKey(firm, realm, "client_account", account))
        assert record is not None and record.status == "synced" and record.updated_at is not None
        synced_at[account] = record.updated_at
    # k blocked, f failed (the worker's transitions), d malformed events to the DLQ through the handler
    for i in range(K_BLOCKED):
        _leave(stack, RecordKey(firm, realm, "payment", f"pay-b{i}"), failed=False)
    for i in range(F_FAILED):
        _leave(stack, RecordKey(firm, realm, "invoice", f"inv-f{i}"), failed=True)
    malformed = []
    for i in range(D_DEAD):
        bad = platform_event("client_account_created", firm)
        del bad["detail"]["data"]["id"]
        bad["detail"]["event_id"] = f"evt-dead-{i}"
        malformed.append(sqs_record(bad, message_id=f"m-dead-{i}"))
    assert stack.deliver_records(malformed) == {"batchItemFailures": []}
    # one past the DLQ's 14-day retention (DynamoDB's TTL deletes late; moto never): not counted
    DeadLetterLog(stack.sync_table).record(
        DeadLetter(firm, "evt-expired", "ClientAccount Created", "data.id: missing", None, now - 15 * 86400)
    )
    assert stack.sync_table.get({"pk": f"FIRM#{firm}", "sk": "DEADLETTER#evt-expired"}) is not None
    requests_made = _api_requests(stack, realm) - requests_before

    result = api.call("GET", "/health", firm_id=firm, role="owner")

    assert result.status == 200, result.body
    body = result.json()
    lags = sorted(synced_at[a] - occurred[a] for a in occurred)
    # the fleet metric (EventToQuickBooksLagAlarm): one value per record written, measured just after it
    assert len(emitted) == N_SYNCED
    assert all(-0.001 <= e - lag < delivered_in + 0.01 for e, lag in zip(emitted, lags, strict=True))
    assert body["lag"] == {
        "window_seconds": 3600,
        "samples": N_SYNCED,
        "complete": True,
        "p50_seconds": round(lags[math.ceil(0.5 * N_SYNCED) - 1], 3),
        "p95_seconds": round(lags[math.ceil(0.95 * N_SYNCED) - 1], 3),
        "max_seconds": round(lags[-1], 3),
    }
    assert body["records"] == {"failed": F_FAILED, "blocked": K_BLOCKED, "complete": True}
    assert (body["dead_letters"], body["dead_letters_complete"]) == (D_DEAD, True)
    queues = {q["queue"]: q for q in body["backlog"]["queues"]}
    assert body["backlog"]["scope"] == "fleet"
    assert queues["outbound_dead_letters"]["visible"] == D_DEAD
    assert set(queues) == {
        "outbound",
        "outbound_dead_letters",
        "inbound",
        "inbound_dead_letters",
        "retry",
        "catch_up",
    }
    assert datetime.fromisoformat(body["last_synced_at"]).timestamp() == pytest.approx(
        max(synced_at.values()), abs=1e-3
    )
    assert requests_made > 0
    assert body["budget"]["last_hour"] == requests_made  # every QuickBooks call went through the limiter
    assert body["budget"]["limit_per_minute"] == 500 and body["budget"]["window_seconds"] == 3600
    tokens = connection.tokens
    assert tokens.refresh_expires_at is not None
    assert datetime.fromisoformat(body["tokens"]["idle_expires_at"]).timestamp() == pytest.approx(
        tokens.refresh_expires_at, abs=1e-3
    )
    assert 99 < body["tokens"]["idle_days_left"] <= 101
    assert tokens.access_token not in result.body and tokens.refresh_token not in result.body
    assert (body["level"], body["reasons"]) == ("degraded", ["failed_records", "dead_letters"])
    (changed,) = _changes(capture)
    assert (changed["firm_id"], changed["realm_id"]) == (firm, realm)
    assert (changed["previous_level"], changed["level"]) == ("ok", "degraded")
    assert changed["reasons"] == ["failed_records", "dead_letters"]

    # unchanged: no second event
    assert api.call("GET", "/health", firm_id=firm, role="admin").json()["level"] == "degraded"
    assert _changes(capture) == []

    # the firm fixes it: the failed records sync, the dead letters are redriven; the hourly resync's
    # health step sees the crossing back to ok and announces it once
    for i in range(F_FAILED):
        key = RecordKey(firm, realm, "invoice", f"inv-f{i}")
        assert stack.records.claim(key, version=1, owner=OWNER, lease_seconds=60, now=time.time()).claimed
        stack.records.mark_synced(
            key, owner=OWNER, version=1, link=QboLink("Invoice", f"9{i}", "0", None), now=time.time()
        )
    log = DeadLetterLog(stack.sync_table)
    for i in range(D_DEAD):
        log.clear(firm, f"evt-dead-{i}")
    step = HealthStep(wiring.build_firm_health())
    assert step.run(FirmRun(firm, realm, "req-1", "scheduled")) == {"level": "ok", "reasons": []}
    (back,) = _changes(capture)
    assert (back["previous_level"], back["level"], back["reasons"]) == ("degraded", "ok", [])
    assert step.run(FirmRun(firm, realm, "req-2", "scheduled"))["level"] == "ok"
    assert _changes(capture) == []


def test_health_is_the_callers_firm_only_and_owner_or_admin(stack: SyncStack, health: Any) -> None:
    api, _capture = health
    firm, other = new_firm(), new_firm()
    stack.connect(firm)
    connection = stack.connections().get(firm)
    assert connection is not None
    realm = connection.realm_id
    for i in range(F_FAILED):
        _leave(stack, RecordKey(firm, realm, "invoice", f"inv-f{i}"), failed=True)

    assert api.call("GET", "/health", firm_id=firm, role="staff").status == 403
    theirs = api.call("GET", "/health", firm_id=other, role="owner")
    assert theirs.status == 200, theirs.body
    body = theirs.json()
    assert body["firm_id"] == other and body["realm_id"] is None
    assert body["records"] == {"failed": 0, "blocked": 0, "complete": True}
    assert body["connection_status"] == "not_connected" and body["tokens"] is None
    assert firm not in theirs.body and realm not in theirs.body
