"""Events that cannot be understood go to OutboundDLQ at once (issue 11 item 3), visible (redacted) and
redrivable: the real entity-sync handler and scripts/redrive_dlq.py on moto + the simulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from qbsync.models.record_key import RecordKey
from qbsync.outbound.mapping import parse_marker
from qbsync.repositories.dead_letters import DeadLetterLog

from local.stack.provision import clients
from scripts import redrive_dlq
from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, sqs_record


def _sqs(stack: SyncStack) -> Any:
    return clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]


def _dlq(stack: SyncStack) -> list[dict[str, Any]]:
    """Every message on OutboundDLQ (received, then deleted)."""
    sqs, url, out = _sqs(stack), stack.env["OUTBOUND_DLQ_URL"], []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    ).get("Messages", []):
        out.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return out


def _attrs(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


@pytest.fixture
def clean_dlq(stack: SyncStack) -> SyncStack:
    _dlq(stack)
    return stack


def test_what_cannot_be_understood_goes_to_the_dlq_on_its_first_receive(
    clean_dlq: SyncStack, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    stack = clean_dlq
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    no_id = platform_event("client_account_created", firm)
    del no_id["detail"]["data"]["id"]
    no_id["detail"]["event_id"] = "evt-no-id"
    no_id["detail"]["data"]["name"] = "Private Person Name"
    wrong_type = platform_event("invoice_created", firm)
    wrong_type["detail"]["event_id"] = "evt-wrong-type"
    wrong_type["detail"]["data"]["total"] = 633.88  # money is a two-decimal string
    unknown = platform_event("client_account_created", firm)
    unknown["detail-type"] = "ClientAccount Exploded"
    unknown["detail"]["event_id"] = "evt-unknown"
    bodies = {"m-no-id": no_id, "m-type": wrong_type, "m-unknown": unknown, "m-json": "not json {"}
    records = [sqs_record(b, message_id=m) for m, b in bodies.items()]
    records.append(sqs_record(platform_event("client_account_created", firm), message_id="m-good"))

    response = stack.deliver_records(records)

    assert response == {"batchItemFailures": []}  # consumed: nothing comes back every 720 s
    parked = {_attrs(m)["source_message_id"]: m for m in _dlq(stack)}
    assert sorted(parked) == ["m-json", "m-no-id", "m-type", "m-unknown"]
    for message_id, message in parked.items():
        body = bodies[message_id]
        assert message["Body"] == (body if isinstance(body, str) else json.dumps(body))  # unchanged
        attrs = _attrs(message)
        assert attrs["dead_letter_reason"] == "malformed" and attrs["source_receive_count"] == "1"
    assert _attrs(parked["m-no-id"])["detail_type"] == "ClientAccount Created"
    assert _attrs(parked["m-no-id"])["event_id"] == "evt-no-id"
    assert _attrs(parked["m-no-id"])["firm_id"] == firm
    assert "data.id" in _attrs(parked["m-no-id"])["problem"]
    assert "data.total" in _attrs(parked["m-type"])["problem"]
    assert _attrs(parked["m-unknown"])["detail_type"] == "ClientAccount Exploded"
    assert "firm_id" not in _attrs(parked["m-json"])  # nobody's: only in the DLQ
    assert "Private Person Name" not in json.dumps([_attrs(m) for m in parked.values()])

    # the firm's redacted log (what GET /dead-letters shows), and the metric + log line
    letters = DeadLetterLog(stack.sync_table).list(firm, now=_now())
    assert sorted(d.event_id for d in letters) == ["evt-no-id", "evt-unknown", "evt-wrong-type"]
    metrics = capsys.readouterr().out
    assert '"MalformedEvents":[1.0,1.0,1.0,1.0]' in metrics
    lines = [
        r for r in caplog.records if r.getMessage() == "malformed platform event: sent to the DLQ at once"
    ]
    assert len(lines) == 4
    assert {getattr(r, "event_id", None) for r in lines} == {
        None,
        "evt-no-id",
        "evt-wrong-type",
        "evt-unknown",
    }
    assert "Private Person Name" not in "\n".join(str(r.__dict__) for r in caplog.records)

    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "synced"  # the good one of the batch


def test_redrive_moves_them_back_and_a_redriven_event_syncs_exactly_once(clean_dlq: SyncStack) -> None:
    stack = clean_dlq
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    sqs, dlq, outbound = _sqs(stack), stack.env["OUTBOUND_DLQ_URL"], stack.env["OUTBOUND_QUEUE_URL"]
    # an event the contract refused before it was fixed, parked twice (a crash between the send to the DLQ
    # and the delete from OutboundQueue: a duplicate), and one that is still malformed
    fixed_meanwhile = json.dumps(platform_event("client_account_created", firm))
    attributes = {
        "dead_letter_reason": {"DataType": "String", "StringValue": "malformed"},
        "firm_id": {"DataType": "String", "StringValue": firm},
        "event_id": {"DataType": "String", "StringValue": "evt-0001"},
    }
    for _ in range(2):
        sqs.send_message(QueueUrl=dlq, MessageBody=fixed_meanwhile, MessageAttributes=attributes)
    still_bad = platform_event("client_account_created", firm)
    del still_bad["detail"]["data"]["id"]
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(still_bad))
    log = DeadLetterLog(stack.sync_table)
    stack.deliver_records([sqs_record(still_bad, message_id="m-seed")])  # logs evt-0001 for the firm too
    assert [d.event_id for d in log.list(firm, now=_now())] == ["evt-0001"]
    assert redrive_dlq.list_dead_letters(sqs, dlq)["count"] == 4  # listing moves nothing

    moved = redrive_dlq.redrive(sqs, dlq, outbound, cleared=log.clear)

    assert moved == {"moved": 4, "failed": 0}
    assert log.list(firm, now=_now()) == []
    redriven = stack.requeued()  # what is on OutboundQueue now, delivered as the poller would
    assert len(redriven) == 4
    assert stack.deliver(*redriven) == {"batchItemFailures": []}
    customers = [
        c for c in stack.entities("Customer") if parse_marker(c.get("Notes")) == ("ClientAccount", "acct-100")
    ]
    assert len(customers) == 1  # redelivered twice, created once
    # the still-malformed ones went straight back to the DLQ (once each), not into a redrive loop
    assert sorted(_attrs(m).get("dead_letter_reason") for m in _dlq(stack)) == ["malformed", "malformed"]


def _now() -> float:
    import time

    return time.time()
