"""The retry fan-out on moto: RetryQueue message → handler → one SyncCommand per record on OutboundQueue,
idempotent per request id (redeliveries, crashes part-way, concurrent deliveries, continuations), malformed
messages as batch-item failures, and "Connection Changed" → ConnectionResumeRule → resume of paused work."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from qbsync.adapters.sqs import SqsMessage, SqsSender
from qbsync.errorcenter.retry import MARKER_LEASE_SECONDS, RetryFanout
from qbsync.errors import RetryableError, ServiceUnavailable
from qbsync.models.commands import RetryRequest, parse_sync_command
from qbsync.models.qbsync_events import ConnectionChanged
from qbsync.repositories.paused import PausedWork
from qbsync.repositories.retry_requests import RetryRequestRepository

from local.stack.provision import clients
from tests.integration.errorcenter.conftest import REALM, T0, ErrorStack, new_firm, sqs_record

ROOT = Path(__file__).resolve().parents[3]


def request(firm_id: str, scope: str = "all", **fields: Any) -> RetryRequest:
    return RetryRequest(
        firm_id=firm_id,
        request_id=fields.pop("request_id", uuid.uuid4().hex),
        scope=scope,  # type: ignore[arg-type]
        requested_by="user-1",
        requested_at=time.time(),
        **fields,
    )


def commands(estack: ErrorStack) -> list[Any]:
    return [parse_sync_command(body) for body in estack.drain("OUTBOUND_QUEUE_URL")]


def keys(cmds: Iterable[Any]) -> Counter[tuple[str, str]]:
    return Counter((c.entity_type, c.platform_id) for c in cmds)


def fanout(
    estack: ErrorStack, *, outbound: Any = None, page_size: int = 50, clock: Any = time.time
) -> RetryFanout:
    return RetryFanout(
        errors=estack.errors,
        requests=RetryRequestRepository(estack.sync_table),
        outbound=outbound or SqsSender(estack.env["OUTBOUND_QUEUE_URL"]),
        retry_queue=SqsSender(estack.env["RETRY_QUEUE_URL"]),
        clock=clock,
        page_size=page_size,
    )


class FlakySender:
    """The real OutboundQueue sender that dies on its ``fail_on``-th call after sending ``send_first``
    messages of it (what SQS or the Lambda does when it fails part-way)."""

    def __init__(self, real: SqsSender, *, fail_on: int, send_first: int = 0) -> None:
        self.real, self.fail_on, self.send_first, self.calls = real, fail_on, send_first, 0

    def send_many(self, messages: Iterable[SqsMessage]) -> Any:
        batch = list(messages)
        self.calls += 1
        if self.calls != self.fail_on:
            return self.real.send_many(batch)
        sent = self.real.send_many(batch[: self.send_first]) if self.send_first else []
        raise ServiceUnavailable(
            "SQS did not accept the batch",
            sent_ids=[r.id for r in sent],
            failed_ids=[m.id for m in batch[self.send_first :]],
        )


def test_retry_all_enqueues_each_open_record_once_even_when_redelivered(estack: ErrorStack) -> None:
    firm, other = new_firm(), new_firm()
    for i in range(14):
        estack.seed(firm, f"inv-{i}", now=T0 + i)
    for i in range(9):
        estack.seed(firm, f"pay-{i}", entity_type="payment", now=T0 + 100 + i)
    skipped = estack.seed(firm, "inv-skipped", code="6200")
    estack.errors.skip(firm, skipped.error_id, now=T0 + 1)
    estack.seed(firm, "contact-1", entity_type="contact")  # no outbound sync for contacts: left alone
    estack.seed(other, "inv-other")
    body = json.loads(request(firm, correlation_id="corr-1").model_dump_json())

    assert estack.fan_out(sqs_record(body, message_id="m1")) == {"batchItemFailures": []}
    sent = commands(estack)
    expected = {("invoice", f"inv-{i}") for i in range(14)} | {("payment", f"pay-{i}") for i in range(9)}
    assert keys(sent) == Counter(expected)
    assert {(c.reason, c.request_id, c.firm_id, c.requested_by, c.correlation_id, c.force) for c in sent} == {
        ("retry_all", body["request_id"], firm, "user-1", "corr-1", False)
    }
    history = estack.errors.get(firm, estack.errors.list(firm, limit=1)[0][0].error_id).history
    assert history[-1]["action"] == "resync requested" and history[-1]["by"] == "user-1"
    assert estack.errors.get(firm, skipped.error_id).history[-1]["action"] == "skipped"

    # redelivered twice (two copies in one batch, then once more): nothing is enqueued again
    assert estack.fan_out(sqs_record(body, message_id="m2"), sqs_record(body, message_id="m3")) == {
        "batchItemFailures": []
    }
    assert estack.fan_out(sqs_record(body, message_id="m4")) == {"batchItemFailures": []}
    assert commands(estack) == []
    header = estack.sync_table.get({"pk": f"FIRM#{firm}#RETRYREQ#{body['request_id']}", "sk": "REQUEST"})
    assert header["status"] == "done" and int(header["enqueued"]) == 23


def test_category_and_single_error_scopes(estack: ErrorStack) -> None:
    firm = new_firm()
    for i in range(3):
        estack.seed(firm, f"inv-{i}")
    estack.seed(firm, "pay-1", entity_type="payment")
    skipped = estack.seed(firm, "pay-skipped", entity_type="payment", code="6200")
    estack.errors.skip(firm, skipped.error_id, now=T0 + 1)

    payments = request(firm, "category", category="Payments")
    assert estack.fan_out(sqs_record(payments.model_dump_json())) == {"batchItemFailures": []}
    sent = commands(estack)
    assert keys(sent) == Counter({("payment", "pay-1"): 1})  # the skipped payment is left alone
    assert sent[0].reason == "retry_category"

    one = request(firm, "error", error_id=skipped.error_id)  # explicitly: a skipped error too
    assert estack.fan_out(sqs_record(one.model_dump_json())) == {"batchItemFailures": []}
    sent = commands(estack)
    assert keys(sent) == Counter({("payment", "pay-skipped"): 1})
    assert (sent[0].reason, sent[0].request_id) == ("resync_error", one.request_id)

    gone = request(firm, "error", error_id="0000000000000000-1")  # unknown (or expired) error: nothing to do
    assert estack.fan_out(sqs_record(gone.model_dump_json())) == {"batchItemFailures": []}
    assert commands(estack) == []


def test_a_crash_part_way_resumes_without_duplicates_or_losses(estack: ErrorStack) -> None:
    firm = new_firm()
    for i in range(27):
        estack.seed(firm, f"inv-{i}", now=T0 + i)
    req = request(firm)
    real = SqsSender(estack.env["OUTBOUND_QUEUE_URL"])

    # pages of 8 (one batch each): the 3rd send (page 3) dies after 3 of its 8 messages went out
    with pytest.raises(ServiceUnavailable):
        fanout(estack, outbound=FlakySender(real, fail_on=3, send_first=3), page_size=8).run(req)
    first = commands(estack)
    assert len(first) == 8 + 8 + 3
    assert len(first) == len(set(keys(first)))

    # the redelivery (same request) resumes at page 3 (the stored cursor) and sends exactly the rest
    result = fanout(estack, page_size=8).run(req)
    rest = commands(estack)
    assert keys(first) + keys(rest) == Counter({("invoice", f"inv-{i}"): 1 for i in range(27)})
    assert result.complete
    assert (result.pages, result.already, result.enqueued) == (2, 3, 27 - 19)


def test_records_another_delivery_is_sending_are_retried_not_lost(estack: ErrorStack) -> None:
    firm = new_firm()
    for i in range(4):
        estack.seed(firm, f"inv-{i}")
    req = request(firm)
    now = time.time()
    busy = {"pk": f"FIRM#{firm}#RETRYREQ#{req.request_id}", "sk": "REC#invoice#inv-2"}
    estack.sync_table.put(
        {
            **busy,
            "state": "sending",
            "owner": "another-worker",
            "lease_until": now + 60,
            "ttl": int(now) + 600,
        }
    )

    with pytest.raises(RetryableError):
        fanout(estack).run(req)
    assert keys(commands(estack)) == Counter({("invoice", f"inv-{i}"): 1 for i in (0, 1, 3)})

    # the other delivery died: once its lease is over, the retry sends what it left
    later = fanout(estack, clock=lambda: now + MARKER_LEASE_SECONDS).run(req)
    assert later.complete
    assert keys(commands(estack)) == Counter({("invoice", "inv-2"): 1})


def test_a_long_fan_out_continues_in_a_new_message(estack: ErrorStack) -> None:
    firm = new_firm()
    for i in range(7):
        estack.seed(firm, f"inv-{i}", now=T0 + i)
    req = request(firm)

    result = fanout(estack, page_size=3).run(req, time_left_ms=lambda: 1000)  # time is up after page 1
    assert result.continued and not result.complete
    first = commands(estack)
    assert len(first) == 3
    continuation = estack.drain("RETRY_QUEUE_URL")
    assert [m["request_id"] for m in continuation] == [req.request_id]

    assert estack.fan_out(sqs_record(continuation[0])) == {"batchItemFailures": []}
    rest = commands(estack)
    assert keys(first) + keys(rest) == Counter({("invoice", f"inv-{i}"): 1 for i in range(7)})
    assert estack.drain("RETRY_QUEUE_URL") == []


def test_malformed_messages_are_batch_item_failures_and_do_not_stop_the_batch(estack: ErrorStack) -> None:
    firm = new_firm()
    estack.seed(firm, "inv-1")
    good = request(firm)
    invalid = json.loads(good.model_dump_json())
    invalid["scope"] = "category"  # without a category
    response = estack.fan_out(
        sqs_record("not json", message_id="m-json"),
        sqs_record({"hello": "world"}, message_id="m-unknown"),
        sqs_record(invalid, message_id="m-invalid"),
        sqs_record(["a", "list"], message_id="m-list"),
        sqs_record(good.model_dump_json(), message_id="m-good"),
    )
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == [
        "m-invalid",
        "m-json",
        "m-list",
        "m-unknown",
    ]
    assert keys(commands(estack)) == Counter({("invoice", "inv-1"): 1})


def test_connection_changed_to_connected_resumes_paused_work_through_the_rule(estack: ErrorStack) -> None:
    firm = new_firm()
    parked_event = json.loads((ROOT / "events" / "platform" / "invoice_sent.json").read_text())
    parked_event["detail"]["firm_id"] = firm
    paused = PausedWork(estack.sync_table)
    assert paused.park_event(firm, "invoice", "inv-400", version=1, envelope=parked_event)
    events = clients(estack.resources.endpoint_url, estack.resources.region)["events"]

    def changed(change: str, status: str) -> dict[str, Any]:
        detail = ConnectionChanged(
            firm_id=firm, correlation_id="corr-c", change=change, status=status, realm_id=REALM
        )  # type: ignore[arg-type]
        return {
            "Source": "qbsync",
            "DetailType": "Connection Changed",
            "Detail": detail.model_dump_json(),
            "EventBusName": estack.env["EVENT_BUS_NAME"],
        }

    put = events.put_events(
        Entries=[changed("needs_reconnect", "needs_reconnect"), changed("reconnected", "connected")]
    )
    assert put["FailedEntryCount"] == 0
    delivered = estack.drain("RETRY_QUEUE_URL")  # ConnectionResumeRule: only status "connected"
    assert [(m["detail-type"], m["detail"]["change"]) for m in delivered] == [
        ("Connection Changed", "reconnected")
    ]

    assert estack.fan_out(sqs_record(delivered[0])) == {"batchItemFailures": []}
    resumed = estack.drain("OUTBOUND_QUEUE_URL")
    assert [(m["detail-type"], m["detail"]["firm_id"]) for m in resumed] == [
        (parked_event["detail-type"], firm)
    ]
    assert paused.parked(firm) == []

    # a connection event that is not "connected" (e.g. delivered by hand) changes nothing
    not_connected = {**delivered[0], "detail": {**delivered[0]["detail"], "status": "needs_reconnect"}}
    assert estack.fan_out(sqs_record(not_connected)) == {"batchItemFailures": []}
    assert estack.drain("OUTBOUND_QUEUE_URL") == []
