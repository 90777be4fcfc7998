"""Per-record timeline and replay (PRODUCT.md J.5) on moto + the simulator: the real entity-sync handler
writes one timeline item per run, the real admin API reads it (``GET .../timeline``) and queues replays
(``POST /sync/replay``), the real retry fan-out turns a replay into SyncCommands."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from qbsync import wiring
from qbsync.models.platform_events import parse_platform_event
from qbsync.models.record_key import RecordKey
from qbsync.repositories.connections import Tokens

from local.stack.provision import clients
from tests.fixtures.events import drain_queue
from tests.fixtures.firms import company_for
from tests.fixtures.lambda_runtime import LambdaContext, load_function, sqs_record
from tests.integration.api.conftest import AdminApi
from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event

Requests = Callable[[], Counter[tuple[str, str, str]]]

FANOUT = load_function("retry_fanout", prefix="tl")


def _api(stack: SyncStack) -> AdminApi:
    return AdminApi(stack.resources, stack.sim, stack.realm_id, stack.client_id, stack.env)


def _connect_keeping_tokens(stack: SyncStack, firm: str) -> dict[str, str]:
    """Connect ``firm`` like ``stack.connect`` and return the tokens it holds (to look for them)."""
    connections = stack.connections()
    realm = company_for(connections, stack.sim, firm, stack.realm_id, stack.made)
    issued = stack.sim.control.issue_tokens(stack.client_id, realm)
    now = time.time()
    connections.create(
        firm_id=firm,
        realm_id=realm,
        tokens=Tokens(
            access_token=issued["access_token"],
            refresh_token=issued["refresh_token"],
            access_expires_at=now + float(issued["expires_in"]),
            refresh_expires_at=now + float(issued["x_refresh_token_expires_in"]),
        ),
        company_name=None,
        connected_by="user-1",
        settings={},
        now=now,
    )
    return {"access": issued["access_token"], "refresh": issued["refresh_token"]}


def _account(firm: str, account_id: str) -> dict[str, Any]:
    event = platform_event("client_account_created", firm, id=account_id)
    event["detail"]["data"]["name"] = f"Harbour Bakery {account_id}"
    event["detail"]["event_id"] = f"evt-{account_id}"
    return event


def _service(firm: str, service_id: str) -> dict[str, Any]:
    event = platform_event("service_created", firm, id=service_id)
    event["detail"]["data"]["name"] = f"Service {service_id}"
    event["detail"]["event_id"] = f"evt-{service_id}"
    return event


def _timeline(api: AdminApi, firm: str, entity_type: str, platform_id: str) -> dict[str, Any]:
    got = api.call("GET", f"/sync/records/{entity_type}/{platform_id}/timeline", firm_id=firm, role="staff")
    assert got.status == 200, got.body
    return got.json()  # type: ignore[no-any-return]


def test_a_synced_record_shows_every_step_in_order_without_a_token_or_personal_data(stack: SyncStack) -> None:
    firm = new_firm()
    tokens = _connect_keeping_tokens(stack, firm)
    stack.set_settings(firm, sync_accounts="all")
    event = _account(firm, "acct-901")

    assert stack.deliver(event) == {"batchItemFailures": []}

    record = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-901"))
    assert record is not None and record.status == "synced"
    got = _api(stack).call(
        "GET", "/sync/records/client_account/acct-901/timeline", firm_id=firm, role="staff"
    )
    assert got.status == 200, got.body
    (run,) = got.json()["runs"]
    steps = run["steps"]
    assert [s["step"] for s in steps] == ["event", "mapped", "request", "response", "final"]
    assert steps[0] | {"event_id": "evt-acct-901", "version": 1} == steps[0]
    assert steps[1]["qbo_entity"] == "Customer" and steps[1]["payload"]["DisplayName"] == "[redacted]"
    assert steps[2] | {"method": "POST", "operation": "create", "mode": "single"} == steps[2]
    assert steps[2]["request_id"] and "DisplayName" in steps[2]["body_fields"]
    assert steps[3] | {"ok": True, "qbo_id": record.qbo_id, "sync_token": record.sync_token} == steps[3]
    assert steps[4]["status"] == "synced" and run["status"] == "synced"
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)
    data = event["detail"]["data"]
    personal = [
        data["name"],
        "Harbour Bakery",
        data["email"],
        data["phones"][0]["number"],
        "555 0100",
        data["billing_address"]["line1"],
        data["billing_address"]["city"],
        data["billing_address"]["postal_code"],
    ]
    for secret in [*personal, tokens["access"], tokens["refresh"], "Bearer", "access_token"]:
        assert secret not in got.body, secret


def test_a_batch_writes_its_runs_in_one_batch_write_and_stays_within_the_request_budget(
    stack: SyncStack, aws_requests: Requests
) -> None:
    firm = new_firm()
    stack.connect(firm)
    services = [_service(firm, f"svc-9{i:02d}") for i in range(6)]
    before = aws_requests()

    assert stack.deliver(*services) == {"batchItemFailures": []}

    aws = Counter({op: n for (_, _, op), n in (aws_requests() - before).items()})
    api = _api(stack)
    for service in services:
        runs = _timeline(api, firm, "service", service["detail"]["data"]["id"])["runs"]
        assert [r["status"] for r in runs] == ["synced"]
    # the six runs' timelines are the batch's only BatchWriteItem (the sync itself writes none), and no
    # PutItem per record or per step: the timeline adds one request per batch (≤ 25 runs a call)
    assert aws["BatchWriteItem"] == 1
    assert aws["PutItem"] == 0


def _replay(api: AdminApi, firm: str, body: Any) -> Any:
    return api.call("POST", "/sync/replay", firm_id=firm, role="admin", body=body)


def _fan_out(stack: SyncStack) -> list[dict[str, Any]]:
    """Run what the replay put on RetryQueue through the real fan-out; the SyncCommands it sent."""
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    requests = drain_queue(sqs, stack.env["RETRY_QUEUE_URL"])
    assert len(requests) == 1, requests
    records = [sqs_record(r, queue="qbsync-retry") for r in requests]
    assert FANOUT.lambda_handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
    return stack.requeued()


def test_replaying_a_time_window_re_runs_exactly_the_records_that_ran_in_it(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    before = [_service(firm, f"svc-8{i}") for i in range(3)]
    inside = [_service(firm, f"svc-7{i}") for i in range(3)]
    assert stack.deliver(*before) == {"batchItemFailures": []}
    start = time.time()
    assert stack.deliver(*inside) == {"batchItemFailures": []}
    end = time.time() + 0.001
    api = _api(stack)
    window = {
        "from": datetime.fromtimestamp(start, UTC).isoformat(),
        "to": datetime.fromtimestamp(end, UTC).isoformat(),
    }

    got = _replay(api, firm, {"window": window})

    assert got.status == 202, got.body
    assert got.json()["scope"] == "window"
    commands = _fan_out(stack)
    assert sorted(c["platform_id"] for c in commands) == sorted(s["detail"]["data"]["id"] for s in inside)
    assert {c["reason"] for c in commands} == {"replay"}
    assert {c["request_id"] for c in commands} == {got.json()["request_id"]}

    # the replayed runs go through the one writer: synced records answer already_synced, nothing is
    # written twice, and each replayed record's timeline shows the replay's run first
    created = len(stack.entities("Item"))
    assert stack.deliver(*commands) == {"batchItemFailures": []}
    assert len(stack.entities("Item")) == created
    for service in inside:
        runs = _timeline(api, firm, "service", service["detail"]["data"]["id"])["runs"]
        assert [r["status"] for r in runs] == ["already_synced", "synced"]
        assert runs[0]["steps"][0] | {"step": "command", "reason": "replay"} == runs[0]["steps"][0]
    for service in before:
        runs = _timeline(api, firm, "service", service["detail"]["data"]["id"])["runs"]
        assert [r["status"] for r in runs] == ["synced"]


def test_replaying_one_record_sends_one_command(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    assert stack.deliver(_service(firm, "svc-601")) == {"batchItemFailures": []}

    got = _replay(_api(stack), firm, {"record": {"entity_type": "service", "platform_id": "svc-601"}})

    assert got.status == 202, got.body
    commands = _fan_out(stack)
    assert [(c["entity_type"], c["platform_id"], c["reason"]) for c in commands] == [
        ("service", "svc-601", "replay")
    ]


def test_a_replay_names_exactly_one_target_and_a_bounded_window(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    api = _api(stack)
    now = time.time()
    day = 24 * 3600
    stamp: Callable[[float], str] = lambda t: datetime.fromtimestamp(t, UTC).isoformat()  # noqa: E731

    both = _replay(
        api,
        firm,
        {"category": "Invoices", "record": {"entity_type": "service", "platform_id": "svc-1"}},
    )
    none = _replay(api, firm, {})
    long = _replay(api, firm, {"window": {"from": stamp(now - 8 * day), "to": stamp(now - 1)}})
    backwards = _replay(api, firm, {"window": {"from": stamp(now - 10), "to": stamp(now - 20)}})
    viewer = api.call(
        "POST",
        "/sync/replay",
        firm_id=firm,
        role="staff",
        body={"record": {"entity_type": "service", "platform_id": "svc-1"}},
    )

    assert both.status == 400 and "exactly one of record, category, window" in both.json()["message"]
    assert none.status == 400 and "exactly one" in none.json()["message"]
    assert long.status == 400 and "window" in long.json()["message"]
    assert backwards.status == 400 and "window.to" in backwards.json()["message"]
    assert viewer.status == 403
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    assert drain_queue(sqs, stack.env["RETRY_QUEUE_URL"]) == []
    assert json.loads(both.body)["error"] == "bad_request"


def test_a_bulk_chunk_records_its_batch_calls_and_writes_its_runs_25_a_call(
    stack: SyncStack, aws_requests: Requests
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    n = 30
    accounts = [parse_platform_event(_account(firm, f"acct-b{i:02d}")) for i in range(n)]
    before = aws_requests()

    outcomes = wiring.build_bulk_runner().run(accounts)

    aws = Counter({op: c for (_, _, op), c in (aws_requests() - before).items()})
    assert Counter(o.status for o in outcomes) == {"synced": n}, outcomes
    assert aws["BatchWriteItem"] == math.ceil(n / 25) and aws["PutItem"] == 0, aws
    api = _api(stack)
    for account in accounts[:5]:
        (run,) = _timeline(api, firm, "client_account", account.record_id)["runs"]
        request = next(s for s in run["steps"] if s["step"] == "request")
        assert request["mode"] == "batch" and request["operation"] == "create"
        assert "Harbour Bakery" not in json.dumps(run)


def test_a_run_whose_answer_was_lost_shows_the_retry_and_the_next_run_the_adoption(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    record = sqs_record(_service(firm, "svc-555"), message_id="m-svc")
    stack.sim.control.inject_fault(
        "drop_after_commit", count=10, realm_id=stack.realm_id, method="POST", path_regex="/item$"
    )
    try:
        assert stack.deliver_records([record]) == {"batchItemFailures": [{"itemIdentifier": "m-svc"}]}
    finally:
        stack.sim.control.clear_faults()
    assert stack.deliver_records([record]) == {"batchItemFailures": []}

    later, first = _timeline(_api(stack), firm, "service", "svc-555")["runs"]
    assert first["status"] == "retry"
    steps = [s["step"] for s in first["steps"]]
    assert steps[:3] == ["event", "mapped", "request"] and steps[-2:] == ["response", "final"]
    assert first["steps"][-2]["ok"] is False and first["steps"][-1]["error_code"]
    assert later["status"] in ("adopted", "synced")
    assert len([o for o in stack.entities("Item") if o.get("Name") == "Service svc-555"]) == 1


def test_replaying_a_category_is_the_error_centers_category_retry_with_its_3_minute_guard(
    stack: SyncStack,
) -> None:
    firm = new_firm()
    stack.connect(firm)
    api = _api(stack)

    first = _replay(api, firm, {"category": "Invoices"})
    again = _replay(api, firm, {"category": "Invoices"})

    assert first.status == 202 and first.json()["scope"] == "category", first.body
    assert first.json()["category"] == "Invoices"
    assert again.status == 429 and int(again.headers["Retry-After"]) >= 1
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    (request,) = drain_queue(sqs, stack.env["RETRY_QUEUE_URL"])
    assert (request["scope"], request["category"]) == ("category", "Invoices")
