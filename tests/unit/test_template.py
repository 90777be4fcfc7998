"""Structural checks of template.yaml against docs/contracts.md (fast, offline).

They fail when the template drifts from the contract the handlers, the layer and the local stack rely on:
names, env vars, routes and their authorizer, key schemas, queues with DLQs and alarms, build metadata.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from qbsync.connection.keepalive import KeepAliveReport

from scripts.translate_template import TemplateError, load_template, translate

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")


def _section(title_prefix: str) -> str:
    """Text of the contracts.md section whose `## ` heading starts with title_prefix."""
    match = re.search(rf"^## {re.escape(title_prefix)}.*?$(.*?)(?=^## |\Z)", CONTRACTS, re.M | re.S)
    assert match, f"contracts.md has no section '{title_prefix}'"
    return match.group(1)


def _table_rows(section: str) -> list[str]:
    return [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return translate(template, region="us-east-1")


def _resources(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _resources(template, "AWS::Serverless::Function")


# ----------------------------------------------------------------------------- names and parameters


def test_every_contract_logical_id_exists_with_its_type(template: dict[str, Any]) -> None:
    expected_types = {
        "CoreLayer": "AWS::Serverless::LayerVersion",
        "OAuthFunction": "AWS::Serverless::Function",
        "AdminApiFunction": "AWS::Serverless::Function",
        "AdminAuthorizerFunction": "AWS::Serverless::Function",
        "TokenKeepAliveFunction": "AWS::Serverless::Function",
        "EntitySyncFunction": "AWS::Serverless::Function",
        "RetryFanoutFunction": "AWS::Serverless::Function",
        "WebhookIntakeFunction": "AWS::Serverless::Function",
        "CdcCatchUpFunction": "AWS::Serverless::Function",
        "InboundWorkerFunction": "AWS::Serverless::Function",
        "InitialSyncFunction": "AWS::Serverless::Function",
        "InitialSyncStateMachine": "AWS::Serverless::StateMachine",
        "SnapshotBucket": "AWS::S3::Bucket",
        "AdminApi": "AWS::Serverless::Api",
        "SyncStateTable": "AWS::DynamoDB::Table",
        "ErrorLogTable": "AWS::DynamoDB::Table",
        "IdempotencyTable": "AWS::DynamoDB::Table",
        "EventBus": "AWS::Events::EventBus",
        "PlatformEventsRule": "AWS::Events::Rule",
        "ConnectionResumeRule": "AWS::Events::Rule",
        "TokenKey": "AWS::KMS::Key",
        "IntuitAppSecret": "AWS::SecretsManager::Secret",
        "StateSigningSecret": "AWS::SecretsManager::Secret",
        "AdminJwtSecret": "AWS::SecretsManager::Secret",
    }
    for name in ("Outbound", "Inbound", "Retry", "CatchUp"):
        expected_types[f"{name}Queue"] = "AWS::SQS::Queue"
        expected_types[f"{name}DLQ"] = "AWS::SQS::Queue"
    # Every backticked logical id of the contract's table must be covered by the mapping above.
    contract_ids = set()
    for row in _table_rows(_section("Template logical ids"))[1:]:
        contract_ids.update(re.findall(r"`([A-Z][A-Za-z]+)`", row.split("|")[1]))
    assert contract_ids <= set(expected_types), contract_ids - set(expected_types)
    for logical_id, rtype in expected_types.items():
        assert logical_id in template["Resources"], logical_id
        assert template["Resources"][logical_id]["Type"] == rtype, logical_id


def test_parameters_match_contract(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    for name in (
        "Stage",
        "IntuitDiscoveryUrl",
        "QboApiBaseUrl",
        "QboAppBaseUrl",
        "OAuthRedirectUri",
        "PlatformReturnUrl",
        "LogLevel",
    ):
        assert name in params, name
    assert params["OAuthRedirectUri"]["Default"] == ""
    # Empty: the callback shows the handle on its page; a value must be an http(s) URL.
    return_url = params["PlatformReturnUrl"]
    assert return_url["Default"] == ""
    for ok in ("", "https://platform.example/qb?tab=1", "http://platform.localhost/quickbooks/connected"):
        assert re.fullmatch(return_url["AllowedPattern"], ok), ok
    for bad in ("platform.example", "javascript:alert(1)", "https://has space"):
        assert not re.fullmatch(return_url["AllowedPattern"], bad), bad
    assert params["IntuitDiscoveryUrl"]["Default"] == (
        "https://developer.intuit.com/.well-known/openid_configuration/"
    )
    assert params["QboApiBaseUrl"]["Default"] == "https://quickbooks.api.intuit.com"
    assert params["QboAppBaseUrl"]["Default"] == "https://app.qbo.intuit.com"
    assert params["QboMinorVersion"]["Default"] == "75"
    # The local stack passes simulator URLs (http://127.0.0.1:PORT): the patterns must accept them.
    for name in ("QboApiBaseUrl", "QboAppBaseUrl"):
        pattern = params[name]["AllowedPattern"]
        assert re.fullmatch(pattern, "http://127.0.0.1:8910"), name
        assert re.fullmatch(pattern, params[name]["Default"]), name
        assert not re.fullmatch(pattern, "not a url"), name


# ----------------------------------------------------------------------------- functions


def test_globals_runtime_and_powertools(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["Tracing"] == "Active"
    assert glob["Layers"] == [{"Ref": "CoreLayer"}]
    env = glob["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "qbsync"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "qbsync"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_every_contract_env_var_is_set_for_every_function(template: dict[str, Any]) -> None:
    contract_vars: set[str] = set()
    for row in _table_rows(_section("Environment variables"))[1:]:
        contract_vars.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
    assert {"SYNC_TABLE_NAME", "OAUTH_REDIRECT_URI", "RETRY_QUEUE_URL"} <= contract_vars  # parser sanity
    global_env = template["Globals"]["Function"]["Environment"]["Variables"]
    for logical_id, function in _functions(template).items():
        env = {**global_env, **function["Properties"].get("Environment", {}).get("Variables", {})}
        missing = contract_vars - set(env)
        assert not missing, f"{logical_id} lacks {sorted(missing)}"


def test_env_vars_point_at_the_right_resources(template: dict[str, Any]) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["SYNC_TABLE_NAME"] == {"Ref": "SyncStateTable"}
    assert env["ERROR_TABLE_NAME"] == {"Ref": "ErrorLogTable"}
    assert env["IDEMPOTENCY_TABLE_NAME"] == {"Ref": "IdempotencyTable"}
    assert env["INTUIT_APP_SECRET_ARN"] == {"Ref": "IntuitAppSecret"}
    assert env["STATE_SIGNING_SECRET_ARN"] == {"Ref": "StateSigningSecret"}
    assert env["ADMIN_JWT_SECRET_ARN"] == {"Ref": "AdminJwtSecret"}
    assert env["OUTBOUND_QUEUE_URL"] == {"Ref": "OutboundQueue"}
    assert env["OUTBOUND_DLQ_URL"] == {"Ref": "OutboundDLQ"}
    assert env["INBOUND_QUEUE_URL"] == {"Ref": "InboundQueue"}
    assert env["INBOUND_DLQ_URL"] == {"Ref": "InboundDLQ"}
    assert env["RETRY_QUEUE_URL"] == {"Ref": "RetryQueue"}
    assert env["CATCHUP_QUEUE_URL"] == {"Ref": "CatchUpQueue"}
    assert env["OAUTH_REDIRECT_URI"] == {"Ref": "OAuthRedirectUri"}
    assert env["PLATFORM_RETURN_URL"] == {"Ref": "PlatformReturnUrl"}
    assert "TokenKey" in json.dumps(env["TOKEN_KMS_KEY_ID"])
    assert "EventBus" in json.dumps(env["EVENT_BUS_NAME"])


def test_every_function_and_layer_builds_with_its_makefile(template: dict[str, Any]) -> None:
    buildables = {**_functions(template), **_resources(template, "AWS::Serverless::LayerVersion")}
    assert len(buildables) >= 4
    for logical_id, resource in buildables.items():
        assert resource.get("Metadata", {}).get("BuildMethod") == "makefile", logical_id
        props = resource["Properties"]
        folder = ROOT / (props.get("CodeUri") or props["ContentUri"])
        makefile = folder / "Makefile"
        assert makefile.is_file(), f"{logical_id}: {makefile} missing"
        assert re.search(rf"^build-{logical_id}:", makefile.read_text(encoding="utf-8"), re.M), (
            f"{makefile} has no build-{logical_id} target"
        )


def test_layer_targets_python313_arm64(template: dict[str, Any]) -> None:
    props = template["Resources"]["CoreLayer"]["Properties"]
    assert props["ContentUri"] == "layers/core"
    assert props["CompatibleRuntimes"] == ["python3.13"]
    assert props["CompatibleArchitectures"] == ["arm64"]
    makefile = (ROOT / "layers/core/Makefile").read_text(encoding="utf-8")
    for flag in (
        "manylinux2014_aarch64",
        "--python-version $(PY_VERSION)",
        "--only-binary=:all:",
        "--no-compile",
    ):
        assert flag in makefile, flag
    assert "PY_VERSION ?= 3.13" in makefile
    # bytecode for the runtime, compiled by a 3.13 interpreter and loaded without timestamp checks
    assert "--invalidation-mode unchecked-hash" in makefile and "sys.version_info[:2] != (3, 13)" in makefile


def test_keepalive_runs_on_a_classic_schedule(template: dict[str, Any]) -> None:
    events = template["Resources"]["TokenKeepAliveFunction"]["Properties"]["Events"]
    schedules = [e for e in events.values() if e["Type"] == "Schedule"]
    assert schedules and schedules[0]["Properties"]["Schedule"] == "rate(15 minutes)"


def test_entity_sync_consumes_the_outbound_queue_in_batches(template: dict[str, Any]) -> None:
    function = template["Resources"]["EntitySyncFunction"]
    props = function["Properties"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert props["CodeUri"] == "functions/entity_sync"
    assert props["Handler"] == "app.lambda_handler"
    (event,) = _sqs_events(function)
    assert event["Queue"] == {"Fn::GetAtt": ["OutboundQueue", "Arn"]}
    assert event["BatchSize"] == 10
    assert 0 < event["MaximumBatchingWindowInSeconds"] <= 5
    # Without it one failed record makes SQS redeliver the whole batch (written records included).
    assert event.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
    # QBO allows 10 requests in flight per realm+app; every invocation writes one record at a time.
    assert 2 <= event["ScalingConfig"]["MaximumConcurrency"] <= 10
    # Reserved concurrency would throttle the pollers and push healthy records to the DLQ.
    assert "ReservedConcurrentExecutions" not in props
    # The only consumer of OutboundQueue, and the queue hides a message for 6x its timeout.
    assert _consumers_of(template, "OutboundQueue") == [function]
    queue = template["Resources"]["OutboundQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * props["Timeout"]
    assert props["Timeout"] >= template["Globals"]["Function"]["Timeout"]  # a batch is up to 10 QBO writes


def test_entity_sync_event_source_mapping_after_translation(translated: dict[str, Any]) -> None:
    mappings = [
        r["Properties"]
        for r in translated["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "EntitySyncFunction"}
    ]
    (mapping,) = mappings
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["OutboundQueue", "Arn"]}
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] <= 10


def test_entity_sync_environment_points_at_its_resources(translated: dict[str, Any]) -> None:
    env = translated["Resources"]["EntitySyncFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SYNC_TABLE_NAME"] == {"Ref": "SyncStateTable"}
    assert env["ERROR_TABLE_NAME"] == {"Ref": "ErrorLogTable"}
    assert env["OUTBOUND_QUEUE_URL"] == {"Ref": "OutboundQueue"}
    assert env["INTUIT_APP_SECRET_ARN"] == {"Ref": "IntuitAppSecret"}
    assert env["TOKEN_KMS_KEY_ID"] == {"Fn::GetAtt": ["TokenKey", "Arn"]}
    assert env["EVENT_BUS_NAME"] == {"Fn::GetAtt": ["EventBus", "Name"]}
    assert env["QBO_API_BASE_URL"] == {"Ref": "QboApiBaseUrl"}
    assert env["QBO_MINOR_VERSION"] == {"Ref": "QboMinorVersion"}


def test_inbound_worker_consumes_the_inbound_queue_in_batches(template: dict[str, Any]) -> None:
    function = template["Resources"]["InboundWorkerFunction"]
    props = function["Properties"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert props["CodeUri"] == "functions/inbound_worker"
    assert props["Handler"] == "app.lambda_handler"
    (event,) = _sqs_events(function)
    assert event["Queue"] == {"Fn::GetAtt": ["InboundQueue", "Arn"]}
    assert event["BatchSize"] == 10
    # a burst of Intuit notifications for one realm is gathered and collapsed into one read per entity type
    assert 0 < event["MaximumBatchingWindowInSeconds"] <= 10
    assert event.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
    # inbound reads share the realm's 10 requests in flight with the outbound sync (at most 5)
    assert event["ScalingConfig"]["MaximumConcurrency"] + 5 <= 10
    assert "ReservedConcurrentExecutions" not in props
    assert _consumers_of(template, "InboundQueue") == [function]
    queue = template["Resources"]["InboundQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * props["Timeout"]


def test_inbound_worker_policies_name_their_resources(translated: dict[str, Any]) -> None:
    role = translated["Resources"]["InboundWorkerFunctionRole"]
    granted: dict[str, set[str]] = {}
    for statement in _statements(role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = set(
            re.findall(r'"(?:Ref|Fn::GetAtt)": \[?"([A-Za-z0-9]+)"', json.dumps(statement["Resource"]))
        )
        assert targets, statement  # never a bare "*"
        for action in actions:
            granted.setdefault(action.split(":")[0], set()).update(targets)
        if any(a.startswith("kms:") for a in actions):
            assert statement.get("Condition") == {"Null": {"kms:EncryptionContext:firm_id": "false"}}
        if "sqs:ChangeMessageVisibility" in actions:
            assert targets == {"InboundQueue"}
    assert granted == {
        "dynamodb": {"SyncStateTable", "ErrorLogTable"},
        "secretsmanager": {"IntuitAppSecret"},
        "events": {"EventBus"},
        "sqs": {"InboundQueue", "InboundDLQ"},  # early redelivery of a throttled realm; malformed notices
        "kms": {"TokenKey"},
    }


# ----------------------------------------------------------------------------- API and authorizer


def _api_routes(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    routes = {}
    for logical_id, function in _functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                assert props["RestApiId"] == {"Ref": "AdminApi"}, logical_id
                routes[(props["Method"].upper(), props["Path"])] = {"function": logical_id, **props}
    return routes


def test_routes_match_contract(template: dict[str, Any]) -> None:
    contract_routes = set()
    for row in _table_rows(_section("HTTP routes")):
        match = re.match(r"\| `(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)", row)
        if match:
            contract_routes.add((match.group(1), match.group(2)))
    assert ("GET", "/oauth/callback") in contract_routes  # parser sanity
    routes = _api_routes(template)
    # The connection routes are explicit OAuthFunction routes; every other admin route reaches
    # AdminApiFunction through the greedy proxy (API Gateway prefers the more specific explicit routes).
    assert routes[("ANY", "/{proxy+}")]["function"] == "AdminApiFunction"
    for method, path in contract_routes:
        explicit = routes.get((method, path))
        if path == "/oauth/callback" or path.startswith("/connection"):
            assert explicit is not None and explicit["function"] == "OAuthFunction", (method, path)
        elif path == "/webhooks/intuit":
            assert explicit is not None and explicit["function"] == "WebhookIntakeFunction", (method, path)
        else:
            assert explicit is None, (method, path)  # served by AdminApiFunction via /{proxy+}


def test_only_the_callback_and_the_webhooks_skip_the_authorizer(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    auth = template["Resources"]["AdminApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "AdminAuthorizer"
    authorizer = auth["Authorizers"]["AdminAuthorizer"]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AdminAuthorizerFunction", "Arn"]}
    assert authorizer["Identity"]["Headers"] == ["Authorization"]
    # Checked on the generated OpenAPI body: that is what API Gateway (and the local stack) enforce.
    paths = translated["Resources"]["AdminApi"]["Properties"]["Body"]["paths"]
    seen = 0
    for path, item in paths.items():
        for method, operation in item.items():
            seen += 1
            if (method, path) in (("get", "/oauth/callback"), ("post", "/webhooks/intuit")):
                assert operation["security"] == [{"NONE": []}]
            else:
                assert operation["security"] == [{"AdminAuthorizer": []}], (method, path)
    assert seen == len(_api_routes(template))


# ----------------------------------------------------------------------------- DynamoDB


def _key_schema(props: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]]


@pytest.mark.parametrize("table", ["SyncStateTable", "ErrorLogTable"])
def test_single_table_key_design(template: dict[str, Any], table: str) -> None:
    resource = template["Resources"][table]
    props = resource["Properties"]
    assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain"
    assert _key_schema(props) == [("pk", "HASH"), ("sk", "RANGE")]
    gsis = {g["IndexName"]: g for g in props["GlobalSecondaryIndexes"]}
    assert set(gsis) == {"gsi1", "gsi2"}
    for name, gsi in gsis.items():
        assert _key_schema(gsi) == [(f"{name}pk", "HASH"), (f"{name}sk", "RANGE")]
        assert gsi["Projection"] == {"ProjectionType": "ALL"}
    attrs = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attrs == {n: "S" for n in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_idempotency_table_uses_powertools_defaults(template: dict[str, Any]) -> None:
    props = template["Resources"]["IdempotencyTable"]["Properties"]
    assert _key_schema(props) == [("id", "HASH")]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"]["SSEEnabled"] is True


# ----------------------------------------------------------------------------- SQS, alarms, events


def _dlq_of(queue: dict[str, Any]) -> str | None:
    redrive = queue["Properties"].get("RedrivePolicy")
    return redrive["deadLetterTargetArn"]["Fn::GetAtt"][0] if redrive else None


def _all_dlqs(template: dict[str, Any]) -> set[str]:
    """Queues that receive dead letters: SQS redrive targets and EventBridge target dead-letter configs."""
    dlqs = {dlq for q in _resources(template, "AWS::SQS::Queue").values() if (dlq := _dlq_of(q))}
    for rule in _resources(template, "AWS::Events::Rule").values():
        for target in rule["Properties"].get("Targets", []):
            if "DeadLetterConfig" in target:
                dlqs.add(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    return dlqs


def _sqs_events(function: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["Properties"] for e in function["Properties"].get("Events", {}).values() if e["Type"] == "SQS"]


def _consumers_of(template: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    """Functions with an SQS event source on that queue."""
    return [
        function
        for function in _functions(template).values()
        if any(e["Queue"] == {"Fn::GetAtt": [queue, "Arn"]} for e in _sqs_events(function))
    ]


def test_every_work_queue_has_a_dlq(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    dlqs = _all_dlqs(template)
    work_queues = {k: q for k, q in queues.items() if k not in dlqs}
    assert set(work_queues) == {"OutboundQueue", "InboundQueue", "RetryQueue", "CatchUpQueue"}
    default_timeout = template["Globals"]["Function"]["Timeout"]
    for logical_id, queue in work_queues.items():
        props = queue["Properties"]
        assert _dlq_of(queue) == logical_id.replace("Queue", "DLQ"), logical_id
        assert props["RedrivePolicy"]["maxReceiveCount"] == 5, logical_id
        # AWS guidance for SQS event sources: visibility >= 6x the consumer's timeout (a queue nobody
        # consumes yet is held to the default timeout, so a consumer added later with it is covered).
        timeouts = [default_timeout] + [
            consumer["Properties"].get("Timeout", default_timeout)
            for consumer in _consumers_of(template, logical_id)
        ]
        assert props["VisibilityTimeout"] >= 6 * max(timeouts), logical_id
        assert props["SqsManagedSseEnabled"] is True, logical_id
        assert "FifoQueue" not in props, logical_id
    for dlq in dlqs:
        props = queues[dlq]["Properties"]
        assert props["MessageRetentionPeriod"] == 14 * 24 * 3600, dlq
        assert props["SqsManagedSseEnabled"] is True, dlq


def test_every_dlq_has_an_alarm(template: dict[str, Any]) -> None:
    dlqs = _all_dlqs(template)
    assert {"OutboundDLQ", "InboundDLQ", "RetryDLQ"} <= dlqs
    alarmed = set()
    for logical_id, alarm in _resources(template, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if props.get("Namespace") != "AWS/SQS" or props["MetricName"] == "ApproximateAgeOfOldestMessage":
            continue  # the age alarms of the live queues are test_fleet_health_alarms'
        assert props["MetricName"] == "ApproximateNumberOfMessagesVisible", logical_id
        assert props["Threshold"] == 0 and props["ComparisonOperator"] == "GreaterThanThreshold", logical_id
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        (dimension,) = props["Dimensions"]
        assert dimension["Name"] == "QueueName"
        alarmed.add(dimension["Value"]["Fn::GetAtt"][0])
    assert dlqs and dlqs <= alarmed, dlqs - alarmed


def test_fleet_health_alarms(template: dict[str, Any]) -> None:
    """The fleet-wide health signals (docs/operations.md "Per-firm health"): the live queues' oldest message,
    and alarms on qbsync's own metrics only for metric names the code actually emits."""
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    aged = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
    }
    assert {"OutboundQueue", "InboundQueue"} <= aged
    sources = "\n".join(p.read_text() for p in (ROOT / "functions").glob("*/app.py"))
    emitted = set(re.findall(r'add_metric\(name=f?"([A-Za-z_]+)', sources))
    keepalive = {f"KeepAlive_{n}" for n in KeepAliveReport().as_dict()}  # functions/token_keepalive
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        if props.get("Namespace") == "qbsync":
            name = props["MetricName"]
            assert name in emitted or name in keepalive, (logical_id, name)
            assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
    for name in (
        "EventToQuickBooksLag",
        "ThrottledRedelivery",
        "KeepAlive_needs_reconnect",
        "KeepAlive_hard_expiry_soon",
    ):
        assert any(a["Properties"].get("MetricName") == name for a in alarms.values()), name


def test_platform_events_reach_the_outbound_queue(template: dict[str, Any]) -> None:
    rule = template["Resources"]["PlatformEventsRule"]["Properties"]
    assert "EventBus" in json.dumps(rule["EventBusName"])
    # every platform event but the snapshot's announcement, which goes to the initial sync
    assert rule["EventPattern"] == {
        "source": ["platform"],
        "detail-type": [{"anything-but": ["Snapshot Ready"]}],
    }
    assert [t["Arn"] for t in rule["Targets"]] == [{"Fn::GetAtt": ["OutboundQueue", "Arn"]}]
    snapshot = template["Resources"]["InitialSyncFunction"]["Properties"]["Events"]["SnapshotReady"]
    assert snapshot["Properties"]["Pattern"] == {"source": ["platform"], "detail-type": ["Snapshot Ready"]}
    policies = _resources(template, "AWS::SQS::QueuePolicy").values()
    statements = [
        s
        for p in policies
        if {"Ref": "OutboundQueue"} in p["Properties"]["Queues"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        s["Principal"] == {"Service": "events.amazonaws.com"}
        and s["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["PlatformEventsRule", "Arn"]}
        for s in statements
    )


# ----------------------------------------------------------------------------- KMS, secrets, IAM


def test_token_key_rotates(template: dict[str, Any]) -> None:
    props = template["Resources"]["TokenKey"]["Properties"]
    assert props["EnableKeyRotation"] is True


def test_secrets_have_the_contract_shape(template: dict[str, Any]) -> None:
    app = json.loads(template["Resources"]["IntuitAppSecret"]["Properties"]["SecretString"])
    assert set(app) == {"client_id", "client_secret", "webhook_verifier_token"}
    for name in ("StateSigningSecret", "AdminJwtSecret"):
        generated = template["Resources"][name]["Properties"]["GenerateSecretString"]
        assert generated["GenerateStringKey"] == "key", name
        assert json.loads(generated["SecretStringTemplate"]) == {}, name
        assert generated["PasswordLength"] >= 32, name


def test_function_policies_are_scoped(template: dict[str, Any], translated: dict[str, Any]) -> None:
    roles = {k: v for k, v in translated["Resources"].items() if k.endswith("FunctionRole")}
    assert set(roles) == {f"{logical_id}Role" for logical_id in _functions(template)}
    for logical_id, role in roles.items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                assert statement["Resource"] not in ("*", ["*"]), (logical_id, statement["Action"])
    # The authorizer reads the admin JWT key and nothing else.
    authorizer_policies = json.dumps(roles["AdminAuthorizerFunctionRole"]["Properties"]["Policies"])
    assert "AdminJwtSecret" in authorizer_policies
    for other in ("IntuitAppSecret", "StateSigningSecret", "dynamodb", "kms:"):
        assert other not in authorizer_policies, other
    # The webhook intake reads the Intuit app secret and the sync-state table, and sends to InboundQueue only.
    intake = _statements(roles["WebhookIntakeFunctionRole"])
    intake_text = json.dumps(intake)
    assert "IntuitAppSecret" in intake_text and "InboundQueue" in intake_text
    for other in ("StateSigningSecret", "AdminJwtSecret", "OutboundQueue", "RetryQueue", "kms:", "events:"):
        assert other not in intake_text, other
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    actions = {a for s in intake for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not actions & writes, actions & writes


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def test_entity_sync_policies_name_their_resources(translated: dict[str, Any]) -> None:
    role = translated["Resources"]["EntitySyncFunctionRole"]
    granted: dict[str, set[str]] = {}
    for statement in _statements(role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        # Logical ids the statement's resources are built from (Ref / GetAtt inside the ARN).
        targets = set(
            re.findall(r'"(?:Ref|Fn::GetAtt)": \[?"([A-Za-z0-9]+)"', json.dumps(statement["Resource"]))
        )
        assert targets, statement  # never a bare "*"
        for action in actions:
            granted.setdefault(action.split(":")[0], set()).update(targets)
        if any(a.startswith("kms:") for a in actions):
            assert sorted(actions) == ["kms:Decrypt", "kms:Encrypt"]
            assert statement.get("Condition") == {"Null": {"kms:EncryptionContext:firm_id": "false"}}
    assert granted == {
        "dynamodb": {"SyncStateTable", "ErrorLogTable"},
        "secretsmanager": {"IntuitAppSecret"},
        "events": {"EventBus"},
        "sqs": {"OutboundQueue", "OutboundDLQ"},  # the DLQ: malformed events sent at once (issue 11)
        "kms": {"TokenKey"},
    }
    # Consuming the queue is SAM's managed SQS poller policy; nothing else is attached.
    assert sorted(role["Properties"]["ManagedPolicyArns"]) == sorted(
        [
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        ]
    )


# ----------------------------------------------------------------------------- translation helper


def test_translate_is_offline_pure_and_complete(template: dict[str, Any], translated: dict[str, Any]) -> None:
    before = json.dumps(template, sort_keys=True)
    again = translate(template, region="eu-west-1")
    assert json.dumps(template, sort_keys=True) == before  # input not modified
    assert not [r for r in again["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
    functions = {k: v for k, v in translated["Resources"].items() if v["Type"] == "AWS::Lambda::Function"}
    assert set(functions) >= {
        "OAuthFunction",
        "AdminApiFunction",
        "AdminAuthorizerFunction",
        "TokenKeepAliveFunction",
        "EntitySyncFunction",
    }
    code = functions["OAuthFunction"]["Properties"]["Code"]
    assert code == {"S3Bucket": "qbsync-local-artifacts", "S3Key": "functions/oauth.zip"}
    assert functions["OAuthFunction"]["Properties"]["Runtime"] == "python3.13"


def test_translate_inlines_state_machine_definitions(tmp_path: Path) -> None:
    (tmp_path / "statemachines").mkdir()
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    (tmp_path / "statemachines" / "x.asl.json").write_text(json.dumps(definition))
    sam: dict[str, Any] = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Machine": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {"DefinitionUri": "statemachines/x.asl.json", "Policies": []},
            }
        },
    }
    cfn = translate(sam, base_dir=tmp_path)
    # SAM's join of the definition's lines, written as the one string it makes
    assert json.loads(cfn["Resources"]["Machine"]["Properties"]["DefinitionString"]) == definition
    sam["Resources"]["Machine"]["Properties"]["DefinitionUri"] = "statemachines/missing.asl.json"
    with pytest.raises(TemplateError, match="DefinitionUri"):
        translate(sam, base_dir=tmp_path)


def test_translate_reports_invalid_sam() -> None:
    bad = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "functions/x",
                    "Handler": "app.h",
                    "Runtime": "python3.13",
                    "Events": {"E": {"Type": "Api", "Properties": {"Path": "/x"}}},
                },
            }
        },
    }
    with pytest.raises(TemplateError, match="SAM translation failed"):
        translate(bad)


def test_load_template_rejects_non_templates(tmp_path: Path) -> None:
    broken = tmp_path / "t.yaml"
    broken.write_text("Resources: [unclosed")
    with pytest.raises(TemplateError):
        load_template(broken)
    scalar = tmp_path / "s.yaml"
    scalar.write_text("just text")
    with pytest.raises(TemplateError, match="not a mapping"):
        load_template(scalar)
    with pytest.raises(TemplateError):
        load_template(tmp_path / "missing.yaml")


def test_short_form_intrinsics_load_as_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("A: !Ref X\nB: !GetAtt Y.Arn\nC: !Sub 'a-${X}'\nD: !If [Cond, 1, 2]\n")
    assert load_template(path) == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Y", "Arn"]},
        "C": {"Fn::Sub": "a-${X}"},
        "D": {"Fn::If": ["Cond", 1, 2]},
    }


# ----------------------------------------------------------------------------- tooling pins and config


def test_samconfig_has_dev_and_prod() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    for env in ("dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["stack_name"] == f"qbsync-{env}"
        assert deploy["resolve_s3"] is True
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        overrides = " ".join(deploy["parameter_overrides"])
        assert f"Stage={env}" in overrides
        assert ("sandbox" in overrides) is (env == "dev")


def test_asl_validator_is_pinned() -> None:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    assert package["devDependencies"]["asl-validator"] == "4.0.0"
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/asl-validator"]["version"] == "4.0.0"


def test_command_line_writes_translated_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scripts.translate_template import main

    out = tmp_path / "cfn.json"
    assert main([str(ROOT / "template.yaml"), "-o", str(out), "--region", "eu-west-1"]) == 0
    cfn = json.loads(out.read_text())
    assert cfn["Resources"]["OAuthFunction"]["Type"] == "AWS::Lambda::Function"
    broken = tmp_path / "broken.yaml"
    broken.write_text("Resources: [unclosed")
    assert main([str(broken)]) == 1
    assert "cannot load template" in capsys.readouterr().err


def test_data_model_documents_every_contract_key() -> None:
    data_model = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    keys = set()
    for row in _table_rows(_section("DynamoDB key design"))[1:]:
        cells = row.split("|")[2:4]  # pk and sk columns
        for cell in cells:
            keys.update(re.findall(r"`([^`]+)`", cell))
    assert {"FIRM#{firm_id}", "CONNECTION", "OAUTHSTATE#{nonce}", "WATERMARK#{stream}"} <= keys
    # The error-log keys are given in a sentence after the table.
    keys.update({"ERR#{error_id}", "FIRM#{firm_id}#CAT#{category}", "FIRM#{firm_id}#STATUS#{status}"})
    missing = {key for key in keys if key not in data_model}
    assert not missing, f"docs/data-model.md does not document {sorted(missing)}"
