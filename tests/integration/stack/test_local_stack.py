"""The local stack's machinery on the test template: API Gateway, authorizer, SQS batches, DLQ redrive,
schedules, EventBridge → Lambda, Step Functions → Lambda, the Lambda API, timeouts."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import time

import pytest
import requests
from boto3.dynamodb.conditions import Key

from local.stack import FunctionError, LocalStack, ScheduleError
from local.stack.api_gateway import ApiGatewayServer
from local.stack.events import rate_seconds
from local.stack.provision import clients, empty_resources

ALLOW = {"Authorization": "Bearer allow"}


def _c(stack: LocalStack) -> dict:
    return clients(stack.endpoint_url, stack.region)


def _markers(stack: LocalStack, category: str) -> list[dict]:
    import boto3

    table = boto3.resource(
        "dynamodb",
        endpoint_url=stack.endpoint_url,
        region_name=stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).Table(stack.resources.ref("MarkerTable"))
    return table.query(KeyConditionExpression=Key("pk").eq(f"MARK#{category}"))["Items"]


def _clear(stack: LocalStack) -> None:
    empty_resources(stack.resources)


# ---------------------------------------------------------------- API Gateway
def test_proxy_event_carries_path_query_headers_body_and_authorizer_context(test_stack: LocalStack) -> None:
    assert test_stack.api_url.endswith("/test")
    resp = requests.get(
        f"{test_stack.api_url}/items/abc-1?x=1&x=2&y=z", headers={**ALLOW, "X-Test": "yes"}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    body = resp.json()
    assert body["resource"] == "/items/{item_id}"
    assert body["path"] == "/items/abc-1"
    assert body["method"] == "GET"
    assert body["pathParameters"] == {"item_id": "abc-1"}
    assert body["queryStringParameters"] == {"x": "2", "y": "z"}
    assert body["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["z"]}
    assert body["header"] == "yes"
    assert body["authorizer"] == {
        "firm_id": "firm-1",
        "user_id": "user-1",
        "role": "owner",
        "principalId": "user-1",
    }
    assert body["stage"] == "test"
    assert body["sourceIp"] == "127.0.0.1"
    assert body["function_name"] == test_stack.resources.functions["ApiFunction"].name
    assert 0 < body["remaining_ms"] <= 10_000
    assert body["env_stage"] == "test"
    assert body["endpoint"] == test_stack.endpoint_url


def test_binary_body_is_base64_encoded_and_status_is_passed_through(test_stack: LocalStack) -> None:
    raw = bytes([0xFF, 0x00, 0xFE])
    resp = requests.post(f"{test_stack.api_url}/items", data=raw, headers=ALLOW, timeout=30)
    assert resp.status_code == 201
    body = resp.json()
    assert body["isBase64Encoded"] is True
    assert base64.b64decode(body["body"]) == raw
    text = requests.post(f"{test_stack.api_url}/items", json={"a": 1}, headers=ALLOW, timeout=30).json()
    assert text["isBase64Encoded"] is False and json.loads(text["body"]) == {"a": 1}


def test_authorizer_denies_and_rejects_like_api_gateway(test_stack: LocalStack) -> None:
    url = f"{test_stack.api_url}/items/1"
    missing = requests.get(url, timeout=30)
    assert (missing.status_code, missing.json()) == (401, {"message": "Unauthorized"})
    bad = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert (bad.status_code, bad.json()) == (401, {"message": "Unauthorized"})
    denied = requests.get(url, headers={"Authorization": "Bearer deny"}, timeout=30)
    assert denied.status_code == 403
    assert denied.json() == {
        "Message": "User is not authorized to access this resource with an explicit deny"
    }


def test_routes_without_authorizer_unknown_routes_and_malformed_results(test_stack: LocalStack) -> None:
    public = requests.get(f"{test_stack.api_url}/public", timeout=30)
    assert public.status_code == 200 and public.json()["authorizer"] is None
    for method, path in (("GET", "/nope"), ("DELETE", "/items/1"), ("GET", "/items/1/extra")):
        resp = requests.request(method, f"{test_stack.api_url}{path}", headers=ALLOW, timeout=30)
        assert (resp.status_code, resp.json()) == (403, {"message": "Missing Authentication Token"}), path
    no_stage = requests.get(f"{test_stack.api_url.rsplit('/', 1)[0]}/public", timeout=30)
    assert no_stage.status_code == 403
    bad = requests.get(f"{test_stack.api_url}/bad", timeout=30)
    assert (bad.status_code, bad.json()) == (502, {"message": "Internal server error"})


# ---------------------------------------------------------------- SQS event source
def _send(stack: LocalStack, *bodies: str) -> None:
    c = _c(stack)
    for body in bodies:
        c["sqs"].send_message(QueueUrl=stack.resources.ref("WorkQueue"), MessageBody=body)


def test_partial_batch_failure_deletes_successes_and_redrives_failures_to_the_dlq(
    test_stack: LocalStack,
) -> None:
    _clear(test_stack)
    poller = test_stack.pollers["BatchFunctionWork"]
    assert poller.source.batch_size == 5 and poller.source.report_batch_item_failures
    _send(test_stack, "ok:1", "fail:2", "ok:3")
    first = poller.poll_once()
    assert len(first.received) == 3 and first.error is None
    assert len(first.deleted) == 2 and len(first.kept) == 1
    assert sorted(m["sk"] for m in _markers(test_stack, "batch")) == ["ok:1", "ok:3"]
    assert {m["size"] for m in _markers(test_stack, "batch")} == {"3"}  # one batch of three records
    # VisibilityTimeout 0: the failed message is visible again at once; maxReceiveCount is 2.
    second = poller.poll_once()
    assert second.received == first.kept and second.kept == first.kept
    third = poller.poll_once(wait_seconds=0)
    assert third.received == []  # moto moved it to the DLQ on this receive
    dlq = _c(test_stack)["sqs"].receive_message(
        QueueUrl=test_stack.resources.ref("WorkDLQ"), MaxNumberOfMessages=10
    )
    assert [m["Body"] for m in dlq["Messages"]] == ["fail:2"]


def test_whole_batch_failure_keeps_every_message(test_stack: LocalStack) -> None:
    _clear(test_stack)
    poller = test_stack.pollers["BatchFunctionWork"]
    _send(test_stack, "raise:1", "ok:2")
    outcome = poller.poll_once()
    assert outcome.error is not None and outcome.error["errorType"] == "RuntimeError"
    assert outcome.deleted == [] and sorted(outcome.kept) == sorted(outcome.received)
    assert len(outcome.received) == 2
    attrs = _c(test_stack)["sqs"].get_queue_attributes(
        QueueUrl=test_stack.resources.ref("WorkQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "2"


def test_sqs_records_have_the_lambda_event_shape(test_stack: LocalStack) -> None:
    from local.stack.sqs_poller import sqs_record

    _clear(test_stack)
    c = _c(test_stack)
    c["sqs"].send_message(
        QueueUrl=test_stack.resources.ref("WorkQueue"),
        MessageBody="ok:shape",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "k"}},
    )
    poller = test_stack.pollers["BatchFunctionWork"]
    msg = c["sqs"].receive_message(
        QueueUrl=poller.source.queue_url, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"][0]
    record = sqs_record(msg, poller.source, "us-east-1")
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == test_stack.resources.get_att("WorkQueue", "Arn")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "k"
    assert record["body"] == "ok:shape" and record["md5OfBody"] == msg["MD5OfBody"]


def test_background_poller_delivers_without_being_driven(test_stack: LocalStack) -> None:
    _clear(test_stack)
    poller = test_stack.pollers["BatchFunctionWork"]
    poller.start()
    try:
        _send(test_stack, "ok:background")
        deadline = time.monotonic() + 20
        while not _markers(test_stack, "batch") and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a remote condition, not timing
    finally:
        poller.stop()
    assert [m["sk"] for m in _markers(test_stack, "batch")] == ["ok:background"]


# ---------------------------------------------------------------- schedules and EventBridge
def test_fire_schedule_invokes_the_target_with_its_input(test_stack: LocalStack) -> None:
    _clear(test_stack)
    assert test_stack.schedule_id_for("EchoFunction") == "EchoFunctionTick"
    (result,) = test_stack.fire_schedule("EchoFunctionTick")
    assert result.ok and result.payload["echo"] == {"kind": "tick"}
    assert [m["kind"] for m in _markers(test_stack, "echo")] == ["tick"]
    with pytest.raises(ScheduleError):
        test_stack.fire_schedule("NoSuchSchedule")


def test_rate_expressions() -> None:
    assert rate_seconds("rate(15 minutes)") == 900
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(2 days)") == 172800
    assert rate_seconds("cron(0 12 * * ? *)") is None
    with pytest.raises(ScheduleError):
        rate_seconds("every minute")


def test_rules_with_lambda_targets_are_delivered_by_the_stack(test_stack: LocalStack) -> None:
    _clear(test_stack)
    bus = test_stack.resources.ref("Bus")
    out = _c(test_stack)["events"].put_events(
        Entries=[
            {"Source": "lambda-target", "DetailType": "Thing Happened", "Detail": "{}", "EventBusName": bus},
            {"Source": "transform-target", "DetailType": "Other Thing", "Detail": "{}", "EventBusName": bus},
        ]
    )
    assert out["FailedEntryCount"] == 0  # moto would fail here with a real Lambda target
    routes = {r.logical_id: r for r in test_stack.resources.event_routes}
    assert set(routes) == {"EchoFunctionRouted", "EchoFunctionTransformed"}
    (plain,) = test_stack.router.drain_once(routes["EchoFunctionRouted"], wait_seconds=1)
    assert plain.ok and plain.payload["echo"]["detail-type"] == "Thing Happened"
    assert plain.payload["echo"]["source"] == "lambda-target"
    (transformed,) = test_stack.router.drain_once(routes["EchoFunctionTransformed"], wait_seconds=1)
    assert transformed.ok and transformed.payload["echo"] == {
        "kind": "Other Thing"
    }  # InputTransformer applied
    assert sorted(m["kind"] for m in _markers(test_stack, "echo")) == ["Other Thing", "Thing Happened"]


# ---------------------------------------------------------------- invoke paths
def _wait_execution(sfn, arn: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING" or time.monotonic() > deadline:
            return desc
        time.sleep(0.05)  # polling a remote state, not timing


def test_step_functions_tasks_run_the_real_handler(test_stack: LocalStack) -> None:
    sfn = _c(test_stack)["stepfunctions"]
    arn = test_stack.resources.state_machines["EchoStateMachine"]
    ok = sfn.start_execution(
        stateMachineArn=arn, name=f"ok-{time.time_ns()}", input=json.dumps({"kind": "sfn"})
    )
    desc = _wait_execution(sfn, ok["executionArn"])
    assert desc["status"] == "SUCCEEDED"
    assert json.loads(desc["output"])["echo"] == {"kind": "sfn"}
    bad = sfn.start_execution(
        stateMachineArn=arn, name=f"bad-{time.time_ns()}", input=json.dumps({"kind": "error"})
    )
    desc = _wait_execution(sfn, bad["executionArn"])
    assert desc["status"] == "FAILED" and desc["error"] == "ValueError"


def test_lambda_api_invoke_reports_function_errors(test_stack: LocalStack) -> None:
    lam = _c(test_stack)["lambda"]
    name = test_stack.resources.functions["EchoFunction"].name
    ok = lam.invoke(FunctionName=name, Payload=json.dumps({"kind": "api"}))
    assert "FunctionError" not in ok and json.loads(ok["Payload"].read())["echo"] == {"kind": "api"}
    bad = lam.invoke(FunctionName=name, Payload=json.dumps({"kind": "error"}))
    assert bad["FunctionError"] == "Unhandled"
    error = json.loads(bad["Payload"].read())
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "echo was asked to fail"
    assert any("handlers/echo/app.py" in line for line in error["stackTrace"])


def test_timeout_kills_the_worker_and_the_next_invoke_starts_a_fresh_one(test_stack: LocalStack) -> None:
    result = test_stack.invoke("EchoFunction", {"kind": "sleep"})
    assert result.error is not None and result.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in result.error["errorMessage"]
    assert test_stack.invoke("EchoFunction", {"kind": "again"}).raise_for_error()["echo"] == {"kind": "again"}
    log = test_stack.log_path("EchoFunction").read_text()
    assert f"START RequestId: {result.request_id}" in log and "Sandbox.Timedout" in log


def test_environment_and_conditions_resolve(test_stack: LocalStack, moto_server: str) -> None:
    env = test_stack.resources.functions["ApiFunction"].environment
    assert env["QUEUE_URL"] == test_stack.resources.ref("WorkQueue")
    assert env["KEY_ARN"] == test_stack.resources.get_att("Key", "Arn")
    assert env["BUS_NAME"] == f"{test_stack.stack_name}-bus"
    assert env["REDIRECT_URI"] == "https://example.com/test/oauth/callback"  # HasRedirect is false
    assert env["MARKER_TABLE_NAME"] == test_stack.resources.ref("MarkerTable")  # from Globals
    secret = json.loads(
        _c(test_stack)["secretsmanager"].get_secret_value(SecretId=env["SECRET_ARN"])["SecretString"]
    )
    assert secret["user"] == "app" and len(secret["key"]) == 40 and secret["key"].isalnum()


def test_concurrent_invocations_run_in_separate_warm_workers(test_stack: LocalStack, tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    event = {"kind": "rendezvous", "dir": str(tmp_path), "count": 2}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: test_stack.invoke("EchoFunction", event), range(2)))
    assert all(r.ok for r in results), [r.error for r in results]
    assert results[0].payload["pid"] != results[1].payload["pid"]


def test_import_errors_are_reported_like_lambda(test_stack: LocalStack) -> None:
    result = test_stack.invoke("BrokenFunction", {})
    assert result.error is not None and result.error["errorType"] == "Runtime.ImportModuleError"
    assert "qbsync_no_such_module" in result.error["errorMessage"]
    with pytest.raises(FunctionError):
        result.raise_for_error()


def test_authorizer_results_are_cached_for_their_ttl(test_stack: LocalStack) -> None:
    resources = copy.copy(test_stack.resources)
    resources.api_routes = [
        dataclasses.replace(r, authorizer=dataclasses.replace(r.authorizer, ttl_seconds=60))
        if r.authorizer
        else r
        for r in test_stack.resources.api_routes
    ]
    calls: list[str] = []

    def invoke(function: str, event):
        calls.append(function)
        return test_stack.invoke(function, event)

    now = [1000.0]
    api = ApiGatewayServer("TestApi", clock=lambda: now[0])
    api.attach(resources, invoke)
    api.start()
    try:
        for _ in range(2):
            assert requests.get(f"{api.url}/items/1", headers=ALLOW, timeout=30).status_code == 200
        assert calls.count("AuthorizerFunction") == 1
        assert (
            requests.get(
                f"{api.url}/items/1", headers={"Authorization": "Bearer deny"}, timeout=30
            ).status_code
            == 403
        )
        assert calls.count("AuthorizerFunction") == 2  # another identity, another cache entry
        now[0] += 61
        assert requests.get(f"{api.url}/items/1", headers=ALLOW, timeout=30).status_code == 200
        assert calls.count("AuthorizerFunction") == 3
    finally:
        api.stop()
