"""A missing or bad setting fails the invocation at handler start, loudly (qbsync.wiring.start).

One ConfigurationError log line naming the setting (never its value, never a secret); an SQS worker's
invocation raises (nothing of the batch is handled, so nothing reaches a record or the error center); an
API handler answers a JSON 500 carrying the request id, never a 4xx.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from qbsync.errors import ConfigurationError
from qbsync.observability import logger

from tests.fixtures.deployment import APP, REGION, deployed
from tests.fixtures.lambda_runtime import LambdaContext, load_function

__all__ = ["deployed"]

START_FAILED = "configuration error: the invocation cannot start"


def _start_lines(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.getMessage() == START_FAILED]


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(str(r.__dict__) for r in caplog.records)


def _sqs_record(body: Any) -> dict[str, Any]:
    return {
        "messageId": "m-1",
        "receiptHandle": "rh-1",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:qbsync-outbound",
        "awsRegion": REGION,
    }


def _api_event(path: str, request_id: str) -> dict[str, Any]:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Authorization": "Bearer x"},
        "multiValueHeaders": {"Authorization": ["Bearer x"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": "GET",
            "path": f"/dev{path}",
            "stage": "dev",
            "requestId": request_id,
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "identity": {"sourceIp": "203.0.113.7"},
            "authorizer": {
                "firm_id": "firm-1",
                "user_id": "user-1",
                "role": "owner",
                "principalId": "user-1",
            },
        },
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize(
    ("function", "variable"),
    [
        ("entity_sync", "OUTBOUND_QUEUE_URL"),
        ("entity_sync", "QBO_API_BASE_URL"),
        ("retry_fanout", "RETRY_QUEUE_URL"),
        ("inbound_worker", "INBOUND_DLQ_URL"),
        ("inbound_worker", "QBO_API_BASE_URL"),
    ],
)
def test_an_sqs_worker_without_a_required_variable_fails_the_invocation(
    deployed: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    function: str,
    variable: str,
) -> None:
    handler = load_function(function, prefix="unit_start")
    monkeypatch.delenv(variable)
    event = {"Records": [_sqs_record({"kind": "anything", "firm_id": "firm-1"})]}
    with pytest.raises(ConfigurationError, match=variable):
        handler.lambda_handler(event, LambdaContext())
    [line] = _start_lines(caplog)
    assert line.levelname == "ERROR"
    assert variable in str(line.__dict__)
    # nothing of the batch ran: no message was looked at, retried or reported
    assert not [r for r in caplog.records if "m-1" in str(r.__dict__)]


def test_a_bad_secret_field_fails_the_invocation_naming_the_setting_not_the_secret(
    deployed: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    handler = load_function("entity_sync", prefix="unit_start")
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=deployed["INTUIT_APP_SECRET_ARN"],
        SecretString=json.dumps({"client_secret": APP["client_secret"]}),  # client_id is gone
    )
    with pytest.raises(ConfigurationError, match="INTUIT_APP_SECRET_ARN"):
        handler.lambda_handler({"Records": [_sqs_record({})]}, LambdaContext())
    [line] = _start_lines(caplog)
    assert "INTUIT_APP_SECRET_ARN" in str(line.__dict__)
    assert APP["client_secret"] not in _logged(caplog)


@pytest.mark.parametrize(
    ("function", "path", "variable"),
    [("admin_api", "/sync/summary", "SYNC_TABLE_NAME"), ("oauth", "/connection", "STATE_SIGNING_SECRET_ARN")],
)
def test_an_api_handler_without_a_required_variable_answers_a_json_500_with_the_request_id(
    deployed: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    function: str,
    path: str,
    variable: str,
) -> None:
    handler = load_function(function, prefix="unit_start")
    monkeypatch.delenv(variable)
    request_id = str(uuid.uuid4())
    response = handler.lambda_handler(_api_event(path, request_id), LambdaContext())
    assert response["statusCode"] == 500
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == {
        "error": "configuration_error",
        "message": "internal error",
        "request_id": request_id,
    }
    [line] = _start_lines(caplog)
    assert line.levelname == "ERROR"
    assert variable in str(line.__dict__)
    # the log line is found by the answer's request id (Powertools' correlation id of the request)
    assert json.loads(logger.registered_formatter.format(line))["correlation_id"] == request_id


def test_before_the_intuit_app_is_configured_routes_that_need_it_answer_a_json_500_with_the_request_id(
    deployed: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The template creates the Intuit app secret with empty values; the operator fills it in after the
    first deploy. The admin API still starts (the error center needs no Intuit app); a route that needs the
    connection answers a JSON 500 with the request id and logs why."""
    handler = load_function("admin_api", prefix="unit_start")
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=deployed["INTUIT_APP_SECRET_ARN"],
        SecretString=json.dumps({"client_id": "", "client_secret": "", "webhook_verifier_token": ""}),
    )
    request_id = str(uuid.uuid4())
    response = handler.lambda_handler(_api_event("/settings", request_id), LambdaContext())
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {
        "error": "configuration_error",
        "message": "internal error",
        "request_id": request_id,
    }
    assert _start_lines(caplog) == []  # the invocation started; the route found the problem
    [line] = [r for r in caplog.records if r.getMessage() == "request failed: configuration error"]
    assert "Intuit app" in str(line.__dict__)


def test_a_deployment_with_every_setting_starts(deployed: dict[str, str]) -> None:
    """The fixture's environment is complete: the failures above are the removed variable's."""
    from qbsync import wiring

    wiring.start(wiring.sync_service, wiring.retry_worker, wiring.admin_api, wiring.connection_api)
