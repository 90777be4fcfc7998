"""The entity-sync handler applies the redelivery policy (qbsync.outbound.redelivery, tested on its own in
tests/unit/outbound/test_redelivery.py)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from qbsync.outbound.batch import batch_scope

from tests.fixtures.lambda_runtime import load_function

ROOT = Path(__file__).resolve().parents[3]


def test_a_malformed_sync_command_is_a_batch_item_failure_logged_without_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = load_function("entity_sync", prefix="unit_redelivery")
    body = {"kind": "qbsync.sync_record.v1", "firm_id": "firm-1", "platform_id": "secret-client-name"}
    record = {
        "messageId": "m-cmd-1",
        "receiptHandle": "rh-1",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:qbsync-outbound",
        "awsRegion": "us-east-1",
    }
    response = handler.lambda_handler({"Records": [record]}, LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-cmd-1"}]}
    logged = [r for r in caplog.records if r.getMessage().startswith("malformed sync command")]
    assert len(logged) == 1
    assert "entity_type" in str(logged[0].__dict__)  # names the missing field ...
    assert "secret-client-name" not in "\n".join(str(r.__dict__) for r in caplog.records)  # ... not values


@dataclass
class LambdaContext:
    function_name: str = "entity-sync-unit"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:entity-sync-unit"
    aws_request_id: str = "req-1"


def _one_record(body: str) -> dict[str, object]:
    return {
        "messageId": "m-1",
        "receiptHandle": "rh-1",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:qbsync-outbound",
        "awsRegion": "us-east-1",
    }


class FakeService:
    """The sync service port of the handler: answers or raises ``result``, and notes what it was given."""

    def __init__(self, result: object) -> None:
        self.result = result
        self.messages: list[object] = []

    def batch(self) -> contextlib.AbstractContextManager[object]:
        return batch_scope()  # the real batch scope: nothing is held in it by this fake

    def prepare(self, messages: list[object]) -> None:
        self.prepared = list(messages)

    def handle_message(self, message: object) -> object:
        self.messages.append(message)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def _deliver(
    monkeypatch: pytest.MonkeyPatch, result: object, body: str
) -> tuple[dict[str, object], FakeService]:
    handler = load_function("entity_sync", prefix="unit_redelivery")
    service = FakeService(result)
    monkeypatch.setattr(handler, "sync_service", lambda: service)
    return handler.lambda_handler({"Records": [_one_record(body)]}, LambdaContext()), service


def _event_body() -> str:
    return json.loads((ROOT / "events" / "handlers" / "entity_sync_client_account_created.json").read_text())[
        "Records"
    ][0]["body"]


def test_an_outcome_consumes_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from qbsync.models.platform_events import ClientAccountCreated
    from qbsync.outbound.service import Outcome

    response, service = _deliver(monkeypatch, Outcome("synced", "client_account", "acct-100"), _event_body())
    assert response == {"batchItemFailures": []}
    assert [type(m) for m in service.messages] == [ClientAccountCreated]  # parsed once, handed over typed


def test_a_qbsync_error_is_a_batch_item_failure_logged_with_its_ids(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from qbsync.errors import ServiceUnavailable

    response, _ = _deliver(monkeypatch, ServiceUnavailable("5xx"), _event_body())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    (retried,) = [r for r in caplog.records if r.getMessage() == "sync retried later"]
    assert retried.__dict__.get("event_id") == "evt-0001"
    # no retry_after: the queue's visibility timeout applies (no visibility change is attempted)
    assert not [r for r in caplog.records if "redelivery" in r.getMessage() or "back early" in r.getMessage()]

    command = json.dumps(
        {
            "kind": "qbsync.sync_record.v1",
            "firm_id": "firm-1",
            "entity_type": "invoice",
            "platform_id": "inv-1",
            "reason": "manual_sync",
            "request_id": "req-9",
        }
    )
    caplog.clear()
    response, _ = _deliver(monkeypatch, ServiceUnavailable("5xx"), command)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    (retried,) = [r for r in caplog.records if r.getMessage() == "sync retried later"]
    assert retried.__dict__.get("request_id") == "req-9"


def test_an_unexpected_exception_is_a_batch_item_failure_and_nothing_more(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    response, _ = _deliver(monkeypatch, ValueError("a bug"), _event_body())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert not [r for r in caplog.records if r.getMessage() in ("sync retried later",)]
    assert not [r for r in caplog.records if r.getMessage().startswith("malformed")]


class _ClosingFails:
    """A batch whose closing work (release, held events) fails with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        raise self.error


def test_a_batch_whose_closing_work_fails_comes_back_whole(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every record ran (outcome synced), but the batch's held status events or releases could not be sent:
    all messages are batch item failures, so SQS redelivers them and the redelivery announces them."""
    from qbsync.errors import ServiceUnavailable
    from qbsync.outbound.service import Outcome

    handler = load_function("entity_sync", prefix="unit_redelivery")
    service = FakeService(Outcome("synced", "client_account", "acct-100"))
    monkeypatch.setattr(service, "batch", lambda: _ClosingFails(ServiceUnavailable("PutEvents failed")))
    monkeypatch.setattr(handler, "sync_service", lambda: service)
    first, second = _one_record(_event_body()), {**_one_record(_event_body()), "messageId": "m-2"}

    response = handler.lambda_handler({"Records": [first, second]}, LambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}
    assert len(service.messages) == 2  # both ran before the batch closed
    (logged,) = [r for r in caplog.records if "every message is redelivered" in r.getMessage()]
    assert logged.__dict__.get("messages") == 2


def test_the_whole_batch_is_handed_to_prepare_once_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    from qbsync.models.platform_events import ClientAccountCreated
    from qbsync.outbound.service import Outcome

    handler = load_function("entity_sync", prefix="unit_redelivery")
    service = FakeService(Outcome("synced", "client_account", "acct-100"))
    monkeypatch.setattr(handler, "sync_service", lambda: service)
    records = [_one_record(_event_body()), {**_one_record("{not json"), "messageId": "m-2"}]

    response = handler.lambda_handler({"Records": records}, LambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}  # the bad body is still its own
    assert [type(m) for m in service.prepared] == [ClientAccountCreated]  # read ahead: the parsable ones
    assert [type(m) for m in service.messages] == [ClientAccountCreated]
