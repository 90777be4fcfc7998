"""The entity-sync handler's batch contract and the service's guards, without AWS or QBO."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from qbsync.models.platform_events import parse_platform_event
from qbsync.outbound.service import SyncService
from qbsync.repositories.connections import Connection

from tests.fixtures.lambda_runtime import load_function

ROOT = Path(__file__).resolve().parents[3]


HANDLER = load_function("entity_sync", prefix="unit")


@dataclass
class LambdaContext:
    function_name: str = "entity-sync-unit"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:entity-sync-unit"
    aws_request_id: str = "req-1"


def sample(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(str(r.__dict__) for r in caplog.records)


def test_malformed_messages_the_dlq_does_not_take_stay_batch_item_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A malformed message is sent to OutboundDLQ, then consumed (tests/integration/entity_sync/
    # test_dead_letters.py). Here the DLQ does not exist: the send fails, so the message must NOT be
    # consumed - it stays a batch-item failure and comes back (nothing is lost).
    event = sample("handlers/entity_sync_malformed.json")
    response = HANDLER.lambda_handler(event, LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
    malformed = [r for r in caplog.records if r.getMessage().startswith("malformed platform event")]
    assert [r.getMessage() for r in malformed] == [
        "malformed platform event: the DLQ did not take it, left on the queue"
    ] * 2


def test_malformed_log_line_carries_no_record_content(caplog: pytest.LogCaptureFixture) -> None:
    event = sample("handlers/entity_sync_client_account_created.json")
    body = json.loads(event["Records"][0]["body"])
    body["detail"]["data"]["account_type"] = "secret-person-name"
    event["Records"][0]["body"] = json.dumps(body)
    response = HANDLER.lambda_handler(event, LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    out = _logged(caplog)
    assert "data.account_type" in out
    assert "secret-person-name" not in out and "Harbour Bakery" not in out


class NoConnections:
    def __init__(self, connection: Connection | None) -> None:
        self.connection = connection

    def get(self, firm_id: str) -> Connection | None:
        return self.connection


def _service(connection: Connection | None) -> SyncService:
    def unused(*_: Any, **__: Any) -> Any:
        raise AssertionError("no QBO, AWS or record access expected")

    return SyncService(
        connections=NoConnections(connection),
        realm_clients=unused,  # type: ignore[arg-type]
        records=unused,  # type: ignore[arg-type]
        paused=unused,  # type: ignore[arg-type]
        settings=unused,  # type: ignore[arg-type]
        errorlog=unused,  # type: ignore[arg-type]
        publisher=unused,  # type: ignore[arg-type]
        requeue=unused,  # type: ignore[arg-type]
        clock=lambda: 0.0,
        owner_id=f"unit-{uuid.uuid4().hex[:6]}",
        app_base_url="https://app.qbo.example",
    )


def test_contact_events_are_ignored_by_the_outbound_sync() -> None:
    event = parse_platform_event(sample("platform/contact_created.json"))
    outcome = _service(None).handle(event)
    assert outcome.status == "ignored"
