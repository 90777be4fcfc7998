"""SqsSender and EventPublisher against moto; partial failures through botocore's Stubber."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from botocore.stub import ANY, Stubber
from pydantic import BaseModel
from qbsync.adapters.eventbridge import EventEntry, EventPublisher
from qbsync.adapters.sqs import SqsMessage, SqsSender
from qbsync.errors import ConfigurationError, InfrastructureError, ServiceUnavailable, Throttled


def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def queue_url(aws_client, unique) -> str:
    return aws_client("sqs").create_queue(QueueName=f"core-q-{unique}")["QueueUrl"]


def _drain(sqs, queue_url: str) -> list[dict]:
    out: list[dict] = []
    while True:
        resp = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        )
        msgs = resp.get("Messages", [])
        if not msgs:
            return out
        out.extend(msgs)
        for m in msgs:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


class Thing(BaseModel):
    n: int


# --- SQS ----------------------------------------------------------------------------------------------


def test_send_many_chunks_by_ten_and_returns_a_receipt_per_message(aws_client, queue_url):
    sqs = aws_client("sqs")
    sender = SqsSender(queue_url, client=sqs, sleep=_no_sleep)
    messages = [SqsMessage(body={"n": i}, id=f"rec-{i}", correlation_id="corr-1") for i in range(23)]
    messages.append(SqsMessage(body=Thing(n=99), id="model"))

    receipts = sender.send_many(messages)

    assert [r.id for r in receipts] == [m.id for m in messages]
    assert len({r.message_id for r in receipts}) == 24
    received = _drain(sqs, queue_url)
    assert sorted(json.loads(m["Body"])["n"] for m in received) == [*range(23), 99]
    with_corr = [m for m in received if "MessageAttributes" in m]
    assert len(with_corr) == 23
    assert all(m["MessageAttributes"]["correlation_id"]["StringValue"] == "corr-1" for m in with_corr)


def test_send_many_chunks_by_size(aws_client, queue_url):
    sqs = aws_client("sqs")
    big = "x" * (100 * 1024)
    calls: list[int] = []
    original = sqs.send_message_batch

    class CountingClient:
        def send_message_batch(self, **kwargs):
            calls.append(len(kwargs["Entries"]))
            return original(**kwargs)

    SqsSender(queue_url, client=CountingClient(), sleep=_no_sleep).send_many(
        [SqsMessage(body=big, id=f"b{i}") for i in range(5)]
    )
    assert calls == [2, 2, 1]  # 2 x 100 KiB fit in 256 KiB, 3 do not
    assert len(_drain(sqs, queue_url)) == 5


def test_oversized_message_is_rejected_before_sending(aws_client, queue_url):
    with pytest.raises(InfrastructureError, match="256 KiB") as err:
        SqsSender(queue_url, client=aws_client("sqs")).send_many(
            [SqsMessage(body="y" * (256 * 1024 + 1), id="huge")]
        )
    assert err.value.extra["failed_ids"] == ["huge"]
    assert _drain(aws_client("sqs"), queue_url) == []


def test_duplicate_and_invalid_entry_ids_are_rejected(aws_client, queue_url):
    sender = SqsSender(queue_url, client=aws_client("sqs"))
    with pytest.raises(InfrastructureError, match="duplicate"):
        sender.send_many([SqsMessage(body="a", id="same"), SqsMessage(body="b", id="same")])
    with pytest.raises(InfrastructureError, match="entry ids"):
        sender.send(SqsMessage(body="a", id="has space"))


def test_only_failed_entries_are_retried_then_succeed(aws_client, queue_url):
    sqs = aws_client("sqs")
    sender = SqsSender(queue_url, client=sqs, sleep=_no_sleep)
    with Stubber(sqs) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "a", "MessageId": "m-a", "MD5OfMessageBody": "x"}],
                "Failed": [{"Id": "b", "SenderFault": False, "Code": "InternalError"}],
            },
            {"QueueUrl": queue_url, "Entries": [ANY, ANY]},
        )
        # the retry carries only entry "b"
        stub.add_response(
            "send_message_batch",
            {"Successful": [{"Id": "b", "MessageId": "m-b", "MD5OfMessageBody": "x"}], "Failed": []},
            {"QueueUrl": queue_url, "Entries": [{"Id": "b", "MessageBody": "B"}]},
        )
        receipts = sender.send_many([SqsMessage(body="A", id="a"), SqsMessage(body="B", id="b")])
        stub.assert_no_pending_responses()
    assert [(r.id, r.message_id) for r in receipts] == [("a", "m-a"), ("b", "m-b")]


def test_entries_still_failing_after_bounded_retries_raise_with_their_ids(aws_client, queue_url):
    sqs = aws_client("sqs")
    sender = SqsSender(queue_url, client=sqs, max_attempts=2, sleep=_no_sleep)
    failed = {"Successful": [], "Failed": [{"Id": "b", "SenderFault": False, "Code": "InternalError"}]}
    with Stubber(sqs) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "a", "MessageId": "m-a", "MD5OfMessageBody": "x"}],
                **{"Failed": failed["Failed"]},
            },
        )
        stub.add_response("send_message_batch", failed)
        with pytest.raises(ServiceUnavailable) as err:
            sender.send_many([SqsMessage(body="A", id="a"), SqsMessage(body="B", id="b")])
        stub.assert_no_pending_responses()  # exactly max_attempts calls
    assert err.value.extra["failed_ids"] == ["b"]
    assert err.value.extra["sent_ids"] == ["a"]
    assert "InternalError" in str(err.value)


def test_sender_fault_is_not_retried(aws_client, queue_url):
    sqs = aws_client("sqs")
    with Stubber(sqs) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [],
                "Failed": [{"Id": "0", "SenderFault": True, "Code": "InvalidMessageContents"}],
            },
        )
        with pytest.raises(InfrastructureError) as err:
            SqsSender(queue_url, client=sqs, sleep=_no_sleep).send(SqsMessage(body="bad"))
        stub.assert_no_pending_responses()
    assert err.value.extra["failed_ids"] == ["0"]


def test_whole_call_failure_reports_what_was_sent_before(aws_client, queue_url):
    sqs = aws_client("sqs")
    with Stubber(sqs) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [
                    {"Id": str(i), "MessageId": f"m{i}", "MD5OfMessageBody": "x"} for i in range(10)
                ],
                "Failed": [],
            },
        )
        stub.add_client_error(
            "send_message_batch", service_error_code="ThrottlingException", http_status_code=400
        )
        with pytest.raises(Throttled) as err:
            SqsSender(queue_url, client=sqs, sleep=_no_sleep).send_many(
                [SqsMessage(body="x") for _ in range(12)]
            )
    assert err.value.extra["sent_ids"] == [str(i) for i in range(10)]
    assert err.value.extra["failed_ids"] == ["10", "11"]


def test_missing_queue_is_a_configuration_error(aws_client, moto_endpoint):
    url = f"{moto_endpoint}/123456789012/no-such-queue"
    with pytest.raises(ConfigurationError):
        SqsSender(url, client=aws_client("sqs")).send(SqsMessage(body="x"))


# --- EventBridge --------------------------------------------------------------------------------------


class ConnectionChangedForTest(BaseModel):
    DETAIL_TYPE: ClassVar[str] = "Connection Changed"
    firm_id: str
    status: str


@pytest.fixture
def bus_and_queue(aws_client, unique):
    events, sqs = aws_client("events"), aws_client("sqs")
    bus = f"core-bus-{unique}"
    events.create_event_bus(Name=bus)
    q = sqs.create_queue(QueueName=f"core-evq-{unique}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"all-{unique}", EventBusName=bus, EventPattern=json.dumps({"source": ["qbsync"]}))
    events.put_targets(Rule=f"all-{unique}", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return bus, q


def test_publish_chunks_and_delivers_every_event(aws_client, bus_and_queue):
    bus, q = bus_and_queue
    calls: list[int] = []
    real = aws_client("events")

    class Counting:
        def put_events(self, **kwargs):
            calls.append(len(kwargs["Entries"]))
            return real.put_events(**kwargs)

    publisher = EventPublisher(bus, client=Counting(), sleep=_no_sleep)
    events: list[BaseModel | EventEntry] = [
        ConnectionChangedForTest(firm_id=f"f{i}", status="connected") for i in range(12)
    ]
    events.append(EventEntry(detail_type="Sync Status Changed", detail={"firm_id": "f99"}))
    receipts = publisher.publish(events)

    assert calls == [10, 3]
    assert [r.index for r in receipts] == list(range(13)) and all(r.event_id for r in receipts)
    delivered = [json.loads(m["Body"]) for m in _drain(aws_client("sqs"), q)]
    assert len(delivered) == 13
    assert {d["detail-type"] for d in delivered} == {"Connection Changed", "Sync Status Changed"}
    assert all(d["source"] == "qbsync" for d in delivered)
    assert sorted(d["detail"]["firm_id"] for d in delivered) == sorted([f"f{i}" for i in range(12)] + ["f99"])


def test_publish_retries_failed_entries_only(aws_client):
    events = aws_client("events")
    publisher = EventPublisher("bus", client=events, sleep=_no_sleep)
    with Stubber(events) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"EventId": "e0"}, {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}],
            },
        )
        stub.add_response(
            "put_events",
            {"FailedEntryCount": 0, "Entries": [{"EventId": "e1"}]},
            {
                "Entries": [
                    {
                        "EventBusName": "bus",
                        "Source": "qbsync",
                        "DetailType": "Connection Changed",
                        "Detail": ANY,
                    }
                ]
            },
        )
        receipts = publisher.publish(
            [
                ConnectionChangedForTest(firm_id="a", status="x"),
                ConnectionChangedForTest(firm_id="b", status="y"),
            ]
        )
        stub.assert_no_pending_responses()
    assert [r.event_id for r in receipts] == ["e0", "e1"]


def test_publish_raises_on_persistent_partial_failure(aws_client):
    events = aws_client("events")
    publisher = EventPublisher("bus", client=events, max_attempts=2, sleep=_no_sleep)
    with Stubber(events) as stub:
        stub.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}, {"EventId": "e1"}]},
        )
        stub.add_response(
            "put_events", {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]}
        )
        with pytest.raises(ServiceUnavailable) as err:
            publisher.publish(
                [
                    ConnectionChangedForTest(firm_id="a", status="x"),
                    ConnectionChangedForTest(firm_id="b", status="y"),
                ]
            )
        stub.assert_no_pending_responses()
    assert err.value.extra["failed_indexes"] == [0]
    assert err.value.extra["published_indexes"] == [1]


def test_publish_does_not_retry_malformed_entries(aws_client):
    events = aws_client("events")
    with Stubber(events) as stub:
        stub.add_response(
            "put_events", {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "MalformedDetail"}]}
        )
        with pytest.raises(InfrastructureError, match="MalformedDetail"):
            EventPublisher("bus", client=events, sleep=_no_sleep).publish_one(
                ConnectionChangedForTest(firm_id="a", status="x")
            )
        stub.assert_no_pending_responses()


def test_publish_rejects_models_without_detail_type_and_oversized_events(aws_client):
    publisher = EventPublisher("bus", client=aws_client("events"))
    with pytest.raises(TypeError, match="DETAIL_TYPE"):
        publisher.publish([Thing(n=1)])
    with pytest.raises(InfrastructureError, match="256 KB"):
        publisher.publish([EventEntry(detail_type="Big", detail={"x": "z" * (256 * 1024)})])
