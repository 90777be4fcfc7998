"""template.yaml provisioned on moto: every resource exists, every function env is resolved."""

from __future__ import annotations

import json
import os

import pytest

from local.stack.provision import IGNORED_TYPES, Resources, clients, provision
from local.stack.template import TemplateError
from tests.fixtures.aws import TEMPLATE, TEST_REDIRECT_URI

CONTRACT_ENV = {
    "SYNC_TABLE_NAME": ("ref", "SyncStateTable"),
    "ERROR_TABLE_NAME": ("ref", "ErrorLogTable"),
    "IDEMPOTENCY_TABLE_NAME": ("ref", "IdempotencyTable"),
    "TOKEN_KMS_KEY_ID": ("att", "TokenKey"),
    "INTUIT_APP_SECRET_ARN": ("ref", "IntuitAppSecret"),
    "STATE_SIGNING_SECRET_ARN": ("ref", "StateSigningSecret"),
    "ADMIN_JWT_SECRET_ARN": ("ref", "AdminJwtSecret"),
    "EVENT_BUS_NAME": ("ref", "EventBus"),
    "OUTBOUND_QUEUE_URL": ("ref", "OutboundQueue"),
    "INBOUND_QUEUE_URL": ("ref", "InboundQueue"),
    "INBOUND_DLQ_URL": ("ref", "InboundDLQ"),
    "RETRY_QUEUE_URL": ("ref", "RetryQueue"),
    "CATCHUP_QUEUE_URL": ("ref", "CatchUpQueue"),
}


def _exists(c, rtype: str, physical: str, res: Resources, lid: str) -> bool:
    if rtype == "AWS::DynamoDB::Table":
        return c["dynamodb"].describe_table(TableName=physical)["Table"]["TableStatus"] == "ACTIVE"
    if rtype == "AWS::SQS::Queue":
        return (
            "QueueArn"
            in c["sqs"].get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]
        )
    if rtype == "AWS::SecretsManager::Secret":
        return c["secretsmanager"].describe_secret(SecretId=physical)["ARN"] == physical
    if rtype == "AWS::KMS::Key":
        return c["kms"].describe_key(KeyId=physical)["KeyMetadata"]["Enabled"]
    if rtype == "AWS::KMS::Alias":
        return physical in [a["AliasName"] for a in c["kms"].list_aliases()["Aliases"]]
    if rtype == "AWS::Events::EventBus":
        return c["events"].describe_event_bus(Name=physical)["Name"] == physical
    if rtype == "AWS::Events::Rule":
        bus = res.translated["Resources"][lid]["Properties"].get("EventBusName")
        kwargs = {"Name": physical}
        if bus:
            kwargs["EventBusName"] = res.ref("EventBus")
        return c["events"].describe_rule(**kwargs)["Name"] == physical
    if rtype == "AWS::Events::Archive":
        return c["events"].describe_archive(ArchiveName=physical)["ArchiveName"] == physical
    if rtype == "AWS::CloudWatch::Alarm":
        return len(c["cloudwatch"].describe_alarms(AlarmNames=[physical])["MetricAlarms"]) == 1
    if rtype == "AWS::Lambda::Function":
        return c["lambda"].get_function(FunctionName=physical)["Configuration"]["FunctionName"] == physical
    if rtype == "AWS::Logs::LogGroup":
        groups = c["logs"].describe_log_groups(logGroupNamePrefix=physical)["logGroups"]
        return any(g["logGroupName"] == physical for g in groups)
    if rtype == "AWS::IAM::Role":
        return c["iam"].get_role(RoleName=physical)["Role"]["RoleName"] == physical
    if rtype == "AWS::SNS::Topic":
        return c["sns"].get_topic_attributes(TopicArn=physical)["Attributes"]["TopicArn"] == physical
    if rtype == "AWS::ApiGateway::RestApi":
        return c["apigateway"].get_rest_api(restApiId=physical)["id"] == physical
    if rtype == "AWS::SQS::QueuePolicy":
        queues = res.translated["Resources"][lid]["Properties"]["Queues"]
        return all(
            "Policy"
            in c["sqs"].get_queue_attributes(QueueUrl=res.ref(q["Ref"]), AttributeNames=["Policy"])[
                "Attributes"
            ]
            for q in queues
        )
    if rtype == "AWS::S3::Bucket":
        return c["s3"].head_bucket(Bucket=physical)["ResponseMetadata"]["HTTPStatusCode"] == 200
    if rtype == "AWS::StepFunctions::StateMachine":
        return c["stepfunctions"].describe_state_machine(stateMachineArn=physical)["status"] == "ACTIVE"
    if rtype in ("AWS::Lambda::LayerVersion", "AWS::Lambda::EventSourceMapping"):
        return True  # served locally (layers on PYTHONPATH, our own SQS poller)
    raise AssertionError(f"the test does not know how to check {rtype}")


def test_every_resource_of_the_translated_template_is_created(provisioned: Resources) -> None:
    c = clients(provisioned.endpoint_url, provisioned.region)
    translated = provisioned.translated["Resources"]
    assert set(provisioned.types) | provisioned.skipped == set(translated)
    assert all("Condition" in translated[lid] for lid in provisioned.skipped)
    checked = 0
    for lid, resource in translated.items():
        if lid in provisioned.skipped:
            continue
        rtype = resource["Type"]
        assert lid in provisioned.physical, lid
        if rtype in IGNORED_TYPES:
            continue
        assert _exists(c, rtype, provisioned.ref(lid), provisioned, lid), lid
        checked += 1
    assert checked >= 25


def test_queues_tables_and_functions_follow_the_template(provisioned: Resources) -> None:
    c = clients(provisioned.endpoint_url, provisioned.region)
    for queue, dlq in (
        ("OutboundQueue", "OutboundDLQ"),
        ("InboundQueue", "InboundDLQ"),
        ("RetryQueue", "RetryDLQ"),
        ("CatchUpQueue", "CatchUpDLQ"),
    ):
        attrs = c["sqs"].get_queue_attributes(QueueUrl=provisioned.ref(queue), AttributeNames=["All"])[
            "Attributes"
        ]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == provisioned.get_att(dlq, "Arn")
        assert int(redrive["maxReceiveCount"]) == 5
        # OutboundQueue: 6x EntitySyncFunction's 120 s timeout (AWS guidance for SQS event sources)
        # CatchUpQueue: 6x CdcCatchUpFunction's 300 s timeout
        expected = {"OutboundQueue": "720", "CatchUpQueue": "1800"}.get(queue, "180")
        assert attrs["VisibilityTimeout"] == expected
    table = c["dynamodb"].describe_table(TableName=provisioned.ref("SyncStateTable"))["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
    ttl = c["dynamodb"].describe_time_to_live(TableName=provisioned.ref("SyncStateTable"))
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    for lid in ("OAuthFunction", "AdminAuthorizerFunction", "TokenKeepAliveFunction"):
        spec = provisioned.functions[lid]
        assert spec.code_dir.name in ("oauth", "authorizer", "token_keepalive")
        assert spec.handler == "app.lambda_handler"
        assert [d.name for d in spec.layer_dirs] == ["core"]
        config = c["lambda"].get_function_configuration(FunctionName=spec.name)
        assert config["Environment"]["Variables"] == spec.environment
        assert config["Timeout"] == spec.timeout
    assert provisioned.functions["TokenKeepAliveFunction"].timeout == 300
    assert provisioned.functions["EntitySyncFunction"].timeout == 120
    assert provisioned.functions["AdminAuthorizerFunction"].timeout == 10


def test_function_environment_resolves_to_moto_and_simulator_values(provisioned: Resources, qbo_sim) -> None:
    for spec in provisioned.functions.values():
        env = spec.environment
        for name, (kind, lid) in CONTRACT_ENV.items():
            expected = provisioned.ref(lid) if kind == "ref" else provisioned.get_att(lid, "Arn")
            assert env[name] == expected, name
        assert env["QBO_API_BASE_URL"] == qbo_sim.url
        assert env["QBO_APP_BASE_URL"] == qbo_sim.url
        assert env["INTUIT_DISCOVERY_URL"] == f"{qbo_sim.url}/.well-known/openid_configuration"
        assert env["OAUTH_REDIRECT_URI"] == TEST_REDIRECT_URI
        assert env["QBO_MINOR_VERSION"] == "75"
        assert all(isinstance(v, str) and "Fn::" not in v and "${" not in v for v in env.values())
    assert provisioned.ref("OutboundQueue").startswith(provisioned.endpoint_url)


def test_function_env_fixture_sets_the_process_environment(provisioned: Resources, function_env) -> None:
    env = function_env("OAuthFunction")
    assert os.environ["SYNC_TABLE_NAME"] == provisioned.ref("SyncStateTable")
    assert os.environ["AWS_ENDPOINT_URL"] == provisioned.endpoint_url
    assert os.environ["AWS_LAMBDA_FUNCTION_NAME"] == provisioned.functions["OAuthFunction"].name
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_routes_and_schedules_come_from_the_template(provisioned: Resources) -> None:
    routes = {(r.method, r.path): r for r in provisioned.api_routes}
    assert set(routes) == {
        ("GET", "/connection"),
        ("POST", "/connection/connect-url"),
        ("GET", "/oauth/callback"),
        ("POST", "/connection/complete"),
        ("POST", "/connection/confirm-switch"),
        ("POST", "/connection/disconnect"),
        ("POST", "/connection/check"),
        ("POST", "/webhooks/intuit"),
        ("ANY", "/{proxy+}"),
    }
    assert routes[("ANY", "/{proxy+}")].function == "AdminApiFunction"
    assert routes[("POST", "/webhooks/intuit")].function == "WebhookIntakeFunction"
    others = {("ANY", "/{proxy+}"), ("POST", "/webhooks/intuit")}
    assert all(r.function == "OAuthFunction" for k, r in routes.items() if k not in others)
    assert routes[("GET", "/oauth/callback")].authorizer is None
    assert routes[("POST", "/webhooks/intuit")].authorizer is None  # the intuit-signature authenticates
    proxy_auth = routes[("ANY", "/{proxy+}")].authorizer
    assert proxy_auth is not None and proxy_auth.function == "AdminAuthorizerFunction"
    auth = routes[("GET", "/connection")].authorizer
    assert auth is not None and auth.function == "AdminAuthorizerFunction" and auth.type == "request"
    assert auth.identity_sources == ("method.request.header.Authorization",)
    by_function = {t.function: s for s in provisioned.schedules.values() for t in s.targets}
    assert set(by_function) == {"TokenKeepAliveFunction", "CdcCatchUpFunction"}
    assert len(provisioned.schedules) == 2
    schedule = by_function["TokenKeepAliveFunction"]
    assert schedule.expression == "rate(15 minutes)"
    assert provisioned.functions["TokenKeepAliveFunction"].schedules == [schedule]
    catch_up = by_function["CdcCatchUpFunction"]
    assert catch_up.expression == "rate(1 hour)"
    assert provisioned.functions["CdcCatchUpFunction"].schedules == [catch_up]


def test_platform_events_reach_the_outbound_queue(aws_clean: Resources) -> None:
    c = clients(aws_clean.endpoint_url, aws_clean.region)
    out = c["events"].put_events(
        Entries=[
            {
                "Source": "platform",
                "DetailType": "ClientAccount Created",
                "Detail": json.dumps({"firm_id": "f1"}),
                "EventBusName": aws_clean.ref("EventBus"),
            },
            {
                "Source": "qbsync",
                "DetailType": "Connection Changed",
                "Detail": "{}",
                "EventBusName": aws_clean.ref("EventBus"),
            },
        ]
    )
    assert out["FailedEntryCount"] == 0
    msgs = c["sqs"].receive_message(QueueUrl=aws_clean.ref("OutboundQueue"), MaxNumberOfMessages=10)[
        "Messages"
    ]
    assert [json.loads(m["Body"])["detail-type"] for m in msgs] == ["ClientAccount Created"]


def test_bad_parameters_are_refused(moto_server: str) -> None:
    with pytest.raises(TemplateError, match="unknown template parameters"):
        provision(moto_server, TEMPLATE, {"NoSuchParameter": "x"})
    with pytest.raises(TemplateError, match="AllowedPattern"):
        provision(moto_server, TEMPLATE, {"Stage": "Not Valid!"})


def test_unsupported_resources_and_missing_properties_fail_loudly(moto_server: str, tmp_path) -> None:
    vpc = tmp_path / "vpc.yaml"
    vpc.write_text("Resources:\n  Net:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: 10.0.0.0/16}\n")
    with pytest.raises(TemplateError, match="AWS::EC2::VPC is not supported"):
        provision(moto_server, vpc)
    table = tmp_path / "table.yaml"
    table.write_text(
        "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties: {BillingMode: PAY_PER_REQUEST}\n"
    )
    with pytest.raises(TemplateError, match="required property 'KeySchema'"):
        provision(moto_server, table)
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(
        "Resources:\n"
        "  A:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !GetAtt B.QueueName}\n"
        "  B:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !GetAtt A.QueueName}\n"
    )
    with pytest.raises(TemplateError, match="circular"):
        provision(moto_server, cycle)
