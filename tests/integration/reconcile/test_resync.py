"""The scheduled resync's handler (functions/cdc_catchup, qbsync.reconcile) on moto + the simulator: records
the event-driven path left behind are run again through the outbound sync, exactly once in QuickBooks, and
the daily pre-flight check is stored once.

The states are made by the real sync worker; only their age is moved back ("as if an hour ago"), and a lost
release is the releaser's mark without its send (the crash the release path's redelivery would repair, had
that redelivery not been dead-lettered).
"""

from __future__ import annotations

import json
import time
from typing import Any

from qbsync.models.messages import CatchUpRequest
from qbsync.models.record_key import RecordKey
from qbsync.outbound.mapping import parse_marker
from qbsync.reconcile import sweep
from qbsync.repositories.preflight import PreflightRepository
from qbsync.repositories.records import ClaimOptions

from local.stack.provision import clients
from tests.fixtures.events import drain_queue
from tests.fixtures.lambda_runtime import LambdaContext, load_function, sqs_record
from tests.integration.entity_sync.conftest import untaxed_invoice
from tests.integration.errorcenter.actions.conftest import Env, platform_event

RESYNC = load_function("cdc_catchup", prefix="resync")


def _scheduled_run(env: Env, request_id: str = "sched-1") -> dict[str, Any]:
    body = CatchUpRequest(firm_id=env.firm, reason="scheduled", request_id=request_id).body()
    return RESYNC.lambda_handler({"Records": [sqs_record(body, queue="qbsync-catchup")]}, LambdaContext())


def _age(env: Env, entity_type: str, platform_id: str, seconds: float) -> None:
    """As if the record's last change was ``seconds`` ago."""
    env.stack.sync_table.update(
        {"pk": f"FIRM#{env.firm}#REALM#{env.realm}", "sk": f"REC#{entity_type}#{platform_id}"},
        update="SET updated_at = updated_at - :d",
        values={":d": int(seconds)},
    )


def _invoices(env: Env) -> list[dict[str, Any]]:
    return [i for i in env.qbo("Invoice") if parse_marker(i.get("PrivateNote")) == ("Invoice", "inv-400")]


def _blocked_invoice_whose_release_was_lost(env: Env) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("service_created", env.firm))
    env.sync(untaxed_invoice(env.firm))
    assert env.record("invoice", "inv-400").status == "blocked"
    key = RecordKey(env.firm, env.realm, "invoice", "inv-400")
    # another releaser marked it and crashed before its send; its redelivery never came (dead-lettered)
    assert env.stack.records.mark_requeued(key, by="service#svc-lost", statuses=("blocked",))
    env.sync(platform_event("client_account_created", env.firm))
    assert env.record("client_account", "acct-100").status == "synced"
    assert env.record("invoice", "inv-400").status == "blocked"  # its release was not sent again
    assert env.commands() == []


def test_a_blocked_invoice_whose_release_was_lost_syncs_through_the_sweep_exactly_once(env: Env) -> None:
    _blocked_invoice_whose_release_was_lost(env)
    assert _scheduled_run(env) == {"batchItemFailures": []}
    assert env.commands() == []  # blocked only minutes ago: a release may still be on its way

    _age(env, "invoice", "inv-400", 3600)
    assert _scheduled_run(env, "sched-2") == {"batchItemFailures": []}
    assert env.commands() == []  # the account synced only now: its release may still be on its way

    _age(env, "client_account", "acct-100", 3600)
    assert _scheduled_run(env, "sched-2b") == {"batchItemFailures": []}
    (command,) = env.commands()
    assert (command["entity_type"], command["platform_id"], command["reason"]) == (
        "invoice",
        "inv-400",
        "scheduled",
    )
    env.sync(command)
    assert env.record("invoice", "inv-400").status == "synced"
    assert len(_invoices(env)) == 1

    env.sync(command)  # the same command again (a redelivered sweep): already synced, nothing written
    assert len(_invoices(env)) == 1
    assert _scheduled_run(env, "sched-3") == {"batchItemFailures": []}
    assert env.commands() == []  # nothing left to sweep


def test_an_invoice_whose_retries_ran_out_is_run_again_from_its_stored_event(env: Env) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    control = env.stack.sim.control
    control.inject_fault("http_503", count=50, realm_id=env.realm, method="POST", path_regex="/invoice")
    try:
        answer = env.stack.deliver(untaxed_invoice(env.firm))
    finally:
        control.clear_faults()
    assert len(answer["batchItemFailures"]) == 1  # QuickBooks down: SQS would retry, then dead-letter it
    left = env.record("invoice", "inv-400")
    assert left.status in ("not_synced", "syncing") and left.last_event_version is not None
    assert _invoices(env) == []

    _age(env, "invoice", "inv-400", 2 * 3600)  # its 5 receives are long over: the message is in the DLQ
    assert _scheduled_run(env) == {"batchItemFailures": []}
    (command,) = env.commands()
    env.sync(command)

    assert env.record("invoice", "inv-400").status == "synced"
    assert len(_invoices(env)) == 1


def test_the_daily_preflight_check_is_stored_once_a_day(env: Env) -> None:
    results = PreflightRepository(env.stack.sync_table)
    assert results.latest(env.firm, env.realm) is None
    assert _scheduled_run(env) == {"batchItemFailures": []}
    first = results.latest(env.firm, env.realm)
    assert first is not None
    assert _scheduled_run(env, "sched-2") == {"batchItemFailures": []}
    assert results.latest(env.firm, env.realm) == first  # not checked again the same day


def test_a_firm_that_is_not_connected_is_skipped_without_failing(env: Env) -> None:
    body = CatchUpRequest(firm_id="firm-never-connected", reason="scheduled", request_id="s").body()
    answer = RESYNC.lambda_handler({"Records": [sqs_record(body, queue="qbsync-catchup")]}, LambdaContext())
    assert answer == {"batchItemFailures": []}


def test_quickbooks_down_fails_catch_up_and_preflight_not_the_sweep_and_the_run_is_redelivered(
    env: Env,
) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    control = env.stack.sim.control
    control.inject_fault("http_503", count=50, realm_id=env.realm, method="POST", path_regex="/invoice")
    try:
        assert len(env.stack.deliver(untaxed_invoice(env.firm))["batchItemFailures"]) == 1
    finally:
        control.clear_faults()
    _age(env, "invoice", "inv-400", 2 * 3600)

    control.inject_fault("http_503", count=500, realm_id=env.realm)  # every QuickBooks call fails
    try:
        answer = _scheduled_run(env)
    finally:
        control.clear_faults()

    assert len(answer["batchItemFailures"]) == 1  # catch-up and pre-flight failed: SQS redelivers the run
    assert PreflightRepository(env.stack.sync_table).latest(env.firm, env.realm) is None
    (command,) = env.commands()  # the sweep, between the two, ran all the same
    env.sync(command)
    assert env.record("invoice", "inv-400").status == "synced" and len(_invoices(env)) == 1


def test_a_backlog_larger_than_one_run_continues_in_messages_of_the_firm_until_swept(
    env: Env, monkeypatch: Any
) -> None:
    """Pages of one record and two pages a run (the real bound is 20 pages of 100): the run stops with the
    real gsi2 key, the continuation on CatchUpQueue parses and goes on from it, nothing is swept twice."""
    monkeypatch.setattr(sweep, "PAGE_SIZE", 1)
    monkeypatch.setattr(sweep, "PAGES_PER_RUN", 2)
    env.stack.set_settings(env.firm, sync_accounts="all")
    past = time.time() - 2 * 3600
    for i in range(3):  # three accounts left not_synced two hours ago (a claim, then its lease given back)
        event = platform_event("client_account_created", env.firm, id=f"acct-{i}")
        event["detail"]["data"]["name"] = f"Backlog Co {i}"
        key = RecordKey(env.firm, env.realm, "client_account", f"acct-{i}")
        claim = env.stack.records.claim(
            key, version=1, owner="w-gone", lease_seconds=60, now=past, options=ClaimOptions("create", event)
        )
        assert claim.claimed
        env.stack.records.release(key, owner="w-gone", status="not_synced", now=past)
    sqs = clients(env.stack.resources.endpoint_url, env.stack.resources.region)["sqs"]
    queue = env.stack.env["CATCHUP_QUEUE_URL"]
    drain_queue(sqs, queue)

    runs, commands = 0, []
    body: Any = CatchUpRequest(firm_id=env.firm, reason="scheduled", request_id="sched-big").body()
    while body is not None:
        runs += 1
        answer = RESYNC.lambda_handler(
            {"Records": [sqs_record(body, queue="qbsync-catchup")]}, LambdaContext()
        )
        assert answer == {"batchItemFailures": []}
        commands += env.commands()
        (body, *_more) = drain_queue(sqs, queue) or [None]
        assert _more == []
        if body is not None:
            assert body["reason"] == "continued" and body["firm_id"] == env.firm
    assert runs > 2
    assert sorted(c["platform_id"] for c in commands) == ["acct-0", "acct-1", "acct-2"]
    env.sync(*commands)
    assert all(env.record("client_account", f"acct-{i}").status == "synced" for i in range(3))


def test_the_schedule_redrives_a_dead_letter_that_left_no_record_and_keeps_what_cannot_be_understood(
    env: Env,
) -> None:
    """A platform event SQS parked after 5 receives before any claim (no record holds it: only the DLQ)
    goes back and syncs; a malformed one and one redriven 3 times already stay for the engineer."""
    env.stack.set_settings(env.firm, sync_accounts="all")
    sqs = clients(env.stack.resources.endpoint_url, env.stack.resources.region)["sqs"]
    dlq, outbound = env.stack.env["OUTBOUND_DLQ_URL"], env.stack.env["OUTBOUND_QUEUE_URL"]
    drain_queue(sqs, dlq)
    parked = json.dumps(platform_event("client_account_created", env.firm))
    sqs.send_message(QueueUrl=dlq, MessageBody=parked)  # as SQS's redrive leaves it: no attributes
    string = {"DataType": "String"}
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody="{}",
        MessageAttributes={"dead_letter_reason": {**string, "StringValue": "malformed"}},
    )
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=parked,
        MessageAttributes={"qbsync_redrives": {**string, "StringValue": "3"}},
    )
    assert env.record("client_account", "acct-100") is None

    answer = RESYNC.lambda_handler({"id": "sched-evt-9", "detail-type": "Scheduled Event"}, LambdaContext())

    assert answer["redriven"] == 1
    moved = sqs.receive_message(QueueUrl=outbound, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    (message,) = [m for m in moved.get("Messages", []) if m["Body"] == parked]
    assert message["MessageAttributes"]["qbsync_redrives"]["StringValue"] == "1"
    env.sync(json.loads(message["Body"]))
    assert env.record("client_account", "acct-100").status == "synced"
    sqs.delete_message(QueueUrl=outbound, ReceiptHandle=message["ReceiptHandle"])
    drain_queue(sqs, env.stack.env["CATCHUP_QUEUE_URL"])  # the fan-out's runs: not this test's
    kept = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert int(kept["ApproximateNumberOfMessages"]) + int(kept["ApproximateNumberOfMessagesNotVisible"]) == 2
