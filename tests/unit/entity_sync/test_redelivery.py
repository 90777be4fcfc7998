"""When a failed outbound message comes back (the entity-sync handler's visibility choice)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from qbsync.errors import DataError, LeaseHeld, ServiceUnavailable, Throttled

from tests.fixtures.lambda_runtime import load_function

ROOT = Path(__file__).resolve().parents[3]


visibility_for = load_function("entity_sync", prefix="unit_redelivery").visibility_for


@pytest.mark.parametrize(
    ("retry_after", "jitter", "seconds"),
    [(0.2, 0.0, 1), (3.4, 0.0, 4), (3.4, 0.99, 5), (60.0, 0.0, 60), (60.0, 1.0, 75), (600.0, 0.5, 120)],
)
def test_throttled_messages_come_back_after_about_retry_after(retry_after, jitter, seconds) -> None:
    err = Throttled("slow down", retry_after=retry_after)
    assert visibility_for(err, receive_count=1, jitter=jitter) == seconds


def test_errors_without_retry_after_keep_the_queue_timeout() -> None:
    assert visibility_for(ServiceUnavailable("5xx"), receive_count=1, jitter=0.0) is None
    assert visibility_for(DataError("bad"), receive_count=1, jitter=0.0) is None


def test_a_held_lease_backs_off_by_receive_and_outlasts_a_crashed_holder() -> None:
    lease = LeaseHeld("busy", retry_after=119.0)
    waits = [visibility_for(lease, receive_count=n, jitter=0.0) for n in (1, 2, 3, 4)]
    assert waits == [10, 20, 40, 80]
    # the 5th receive, the last before the DLQ, comes after a 120 s lease has run out
    assert sum(w for w in waits if w is not None) > 120
    assert visibility_for(LeaseHeld("busy", retry_after=2.0), receive_count=3, jitter=0.0) == 2


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
