"""The error center on moto: the admin API handler (``functions/admin_api``) driven by API Gateway proxy
events, and the retry fan-out handler (``functions/retry_fanout``) fed SQS records, both configured exactly
as template.yaml configures them (``function_env``). The REQUEST authorizer is played by the proxy event's
``requestContext.authorizer`` (it is tested in tests/integration/connection)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from qbsync import wiring
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import QbsyncError
from qbsync.qbo.faults import FaultError, ParsedFault, error_from_fault
from qbsync.repositories.error_log import ErrorEntry, ErrorLogRepository

from local.stack.provision import Resources, clients
from tests.fixtures.events import EventCapture, drain_queue
from tests.fixtures.firms import new_firm as new_firm  # the tests of this folder import it from here
from tests.fixtures.lambda_runtime import HttpResult, LambdaContext, load_function
from tests.fixtures.lambda_runtime import sqs_record as _sqs_record

ROOT = Path(__file__).resolve().parents[3]
REALM = "9130351234567890"
T0 = 1_795_449_900.0
#: what ``ErrorStack.published`` collects
ERROR_EVENTS = ("Sync Error Raised", "Sync Error Resolved")


def load_handler(name: str) -> Any:
    return load_function(name, prefix="h4")


def sqs_record(body: Any, *, message_id: str | None = None) -> dict[str, Any]:
    """A RetryQueue record (the retry fan-out's event source)."""
    return _sqs_record(body, queue="qbsync-retry", message_id=message_id)


def qbo_fault(code: str, *, entity: str = "Invoice") -> QbsyncError:
    parsed = ParsedFault("ValidationFault", (FaultError(code, "QuickBooks said no", None, None),))
    return error_from_fault(parsed, status=400, realm_id=REALM, entity=entity, is_write=True)


@dataclass
class ErrorStack:
    resources: Resources
    env: dict[str, str]
    captured: EventCapture  # the qbsync events of ERROR_EVENTS

    # --- AWS side ------------------------------------------------------------------------------------
    @property
    def sqs(self) -> Any:
        return clients(self.resources.endpoint_url, self.resources.region)["sqs"]

    @property
    def sync_table(self) -> DynamoTable:
        return DynamoTable(self.env["SYNC_TABLE_NAME"])

    @property
    def errors(self) -> ErrorLogRepository:
        return ErrorLogRepository(DynamoTable(self.env["ERROR_TABLE_NAME"]))

    def drain(self, queue_env: str) -> list[dict[str, Any]]:
        """Every message on a queue (``OUTBOUND_QUEUE_URL`` / ``RETRY_QUEUE_URL``), parsed, deleted."""
        return drain_queue(self.sqs, self.env[queue_env])

    def published(self) -> list[tuple[str, dict[str, Any]]]:
        """qbsync events captured so far (detail-type, detail)."""
        return [(e["detail-type"], e["detail"]) for e in self.captured.drain()]

    def seed(
        self,
        firm_id: str,
        platform_id: str,
        *,
        entity_type: str = "invoice",
        code: str = "6140",
        now: float = T0,
    ) -> ErrorEntry:
        qbo_entity = {"payment": "Payment", "client_account": "Customer", "service": "Item"}.get(
            entity_type, "Invoice"
        )
        return self.errors.record(
            firm_id=firm_id,
            realm_id=REALM,
            entity_type=entity_type,
            platform_id=platform_id,
            error=qbo_fault(code, entity=qbo_entity),
            now=now,
        )

    # --- the admin API -------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        firm_id: str,
        role: str = "admin",
        user_id: str = "user-1",
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> HttpResult:
        event = {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method,
            "headers": {"Content-Type": "application/json", "Host": "api.example.com"},
            "multiValueHeaders": {"Content-Type": ["application/json"], "Host": ["api.example.com"]},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": {"proxy": path.lstrip("/")},
            "stageVariables": None,
            "requestContext": {
                "resourcePath": "/{proxy+}",
                "httpMethod": method,
                "path": f"/dev{path}",
                "stage": "dev",
                "requestId": str(uuid.uuid4()),
                "domainName": "api.example.com",
                "authorizer": {"firm_id": firm_id, "user_id": user_id, "role": role, "principalId": user_id},
                "identity": {"sourceIp": "127.0.0.1"},
            },
            "body": body if body is None or isinstance(body, str) else json.dumps(body),
            "isBase64Encoded": False,
        }
        response = load_handler("admin_api").lambda_handler(event, LambdaContext())
        headers = {k: v for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = values[0]
        return HttpResult(int(response["statusCode"]), headers, response.get("body") or "")

    # --- the fan-out ---------------------------------------------------------------------------------
    def fan_out(self, *records: dict[str, Any], remaining_ms: int = 30_000) -> dict[str, Any]:
        handler = load_handler("retry_fanout")
        return handler.lambda_handler({"Records": list(records)}, LambdaContext(remaining_ms=remaining_ms))


@pytest.fixture
def estack(
    aws_clean: Resources, function_env: Any, qbsync_events: Callable[..., EventCapture]
) -> Iterator[ErrorStack]:
    env = function_env("RetryFanoutFunction")  # every function shares the Globals environment
    wiring.reset()
    s = ErrorStack(aws_clean, env, qbsync_events(*ERROR_EVENTS))
    s.published()  # drop what earlier tests left
    yield s
    wiring.reset()
