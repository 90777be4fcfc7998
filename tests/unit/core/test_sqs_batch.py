"""qbsync.adapters.sqs_batch: the SQS workers' partial-batch loop does what Powertools' BatchProcessor
(``EventType.SQS``, ``raise_on_entire_batch_failure=False``) + ``process_partial_response`` did.

Each case runs the same batch through both with the same record handler and compares what each reports
and which records the handler saw, in which order, with which fields."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from qbsync.adapters.sqs_batch import NotAnSqsBatch, SqsRecord, process_partial_batch


def _record(message_id: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "2"},
        "eventSource": "aws:sqs",
        **extra,
    }


def _handler(seen: list[tuple[str, str, str, Any]]) -> Any:
    """Fails the records whose body says so, the way the workers' handlers fail (they raise)."""

    def handle(record: Any) -> str:
        seen.append((record.message_id, record.body, record.receipt_handle, record.get("attributes")))
        if record.body == "boom":
            raise RuntimeError("QuickBooks said no")
        if record.body == "bad":
            raise ValueError("malformed")
        if record.body == "key":
            raise KeyError("missing")
        return record.body

    return handle


def _both(event: dict[str, Any]) -> tuple[Any, Any, list[Any], list[Any]]:
    ours_seen: list[Any] = []
    theirs_seen: list[Any] = []
    ours = process_partial_batch(event, _handler(ours_seen))
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    theirs = process_partial_response(event=event, record_handler=_handler(theirs_seen), processor=processor)
    return ours, dict(theirs), ours_seen, theirs_seen


@pytest.mark.parametrize(
    "bodies",
    [
        ["ok"],
        ["ok", "ok", "ok"],
        ["boom"],
        ["ok", "boom", "ok", "bad", "key"],
        ["boom", "bad", "key"],  # every record fails: reported, not raised
        ["bad", "ok"],
    ],
)
def test_the_same_failures_reported_and_every_record_handled_once_in_order(bodies: list[str]) -> None:
    event = {"Records": [_record(f"m{i}", body) for i, body in enumerate(bodies)]}
    ours, theirs, ours_seen, theirs_seen = _both(event)
    assert ours == theirs
    assert ours_seen == theirs_seen
    assert [seen[0] for seen in ours_seen] == [f"m{i}" for i in range(len(bodies))]
    assert ours["batchItemFailures"] == [
        {"itemIdentifier": f"m{i}"} for i, body in enumerate(bodies) if body != "ok"
    ]


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": None}, {"Records": {"a": 1}}])
def test_an_event_that_is_not_an_sqs_batch_raises_before_any_record(event: dict[str, Any]) -> None:
    seen: list[Any] = []
    with pytest.raises(NotAnSqsBatch):
        process_partial_batch(event, _handler(seen))
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with pytest.raises(Exception):  # noqa: B017 - Powertools raises its own UnexpectedBatchTypeError
        process_partial_response(event=event, record_handler=_handler(seen), processor=processor)
    assert seen == []


def test_a_base_exception_is_not_a_record_failure_it_ends_the_invocation() -> None:
    def handle(record: SqsRecord) -> None:
        raise KeyboardInterrupt

    event = {"Records": [_record("m0", "ok")]}
    with pytest.raises(KeyboardInterrupt):
        process_partial_batch(event, handle)
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with pytest.raises(KeyboardInterrupt):
        process_partial_response(event=event, record_handler=handle, processor=processor)


def test_the_record_reads_the_lambda_record_as_it_came() -> None:
    raw = _record("m0", '{"a": 1}', md5OfBody="x")
    record = SqsRecord(raw)
    assert (record.message_id, record.receipt_handle, record.body) == ("m0", "rh-m0", '{"a": 1}')
    assert record.get("attributes") == {"ApproximateReceiveCount": "2"}
    assert record.get("messageAttributes") is None
    assert dict(record) == raw and record.raw_event is raw


def test_a_failed_record_without_a_message_id_cannot_be_reported_and_raises_as_before() -> None:
    event = {"Records": [_record("m0", "ok"), {"body": "boom"}]}
    with pytest.raises(KeyError):
        process_partial_batch(
            event, lambda record: record.message_id if record.get("body") == "ok" else 1 / 0
        )
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with pytest.raises(KeyError):
        process_partial_response(
            event=event,
            record_handler=lambda record: record.message_id if record.get("body") == "ok" else 1 / 0,
            processor=processor,
        )
