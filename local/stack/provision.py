"""Create every resource of ``template.yaml`` on moto's server, and describe what the runtime needs.

``provision()`` translates the SAM template offline (samtranslator), orders the CloudFormation
resources by their references, and creates each with boto3 against moto. It does not go through
moto's CloudFormation: that lacks Secrets Manager secrets and CloudWatch alarms, ignores
``DefinitionSubstitutions`` and creates state machines the executing engine cannot see
(LOCAL-AWS.md). What moto cannot run is recorded instead and served by the local stack:

- Lambda functions are registered in moto (so the Lambda API and Step Functions tasks see them) and
  described as ``FunctionSpec`` (handler, code dir, layers, timeout, resolved environment);
- SQS event-source mappings become ``SqsEventSource`` (our poller; moto's delivers one record per call);
- REST API routes and authorizers become ``ApiRoute`` (our HTTP server; moto's API Gateway cannot invoke);
- EventBridge rules with Lambda/Step Functions targets deliver to an internal SQS queue the stack drains
  (moto's PutEvents fails on such targets); schedule rules become ``ScheduleSpec`` (moto never fires them).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from local.stack.intrinsics import Resolver, dependencies
from local.stack.template import (
    TemplateError,
    load_template,
    prepare_for_translation,
    translate,
)

log = logging.getLogger("local.stack")

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_STACK_NAME = "qbsync-local"

# Resource types with no local effect: IAM is not enforced by moto, API Gateway plumbing is served by
# local.stack.api_gateway, Lambda versions/permissions do not change how the runtime invokes.
IGNORED_TYPES = frozenset(
    {
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Lambda::Permission",
        "AWS::Lambda::Version",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::Account",
        "AWS::ApiGateway::Authorizer",
        "AWS::ApiGateway::GatewayResponse",
        "AWS::CloudFormation::WaitConditionHandle",
    }
)


@dataclass(frozen=True)
class SqsEventSource:
    """An SQS event-source mapping (served by ``local.stack.sqs_poller``)."""

    logical_id: str
    function: str  # function logical id
    queue: str  # queue logical id
    queue_url: str
    queue_arn: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_batching_window_seconds: int
    enabled: bool


@dataclass(frozen=True)
class Authorizer:
    """A Lambda authorizer of a REST API."""

    name: str
    function: str  # function logical id
    type: str  # "request" | "token"
    identity_sources: tuple[str, ...]  # e.g. "method.request.header.Authorization"
    ttl_seconds: int


@dataclass(frozen=True)
class ApiRoute:
    """One method of one resource path of a REST API, proxied to a function."""

    api: str  # RestApi logical id
    method: str  # "GET", … or "ANY"
    path: str  # resource path with {param} / {proxy+}
    function: str  # function logical id
    authorizer: Authorizer | None


@dataclass(frozen=True)
class RuleTarget:
    """A target of an EventBridge rule that the local stack delivers itself."""

    id: str
    kind: str  # "lambda" | "states"
    function: str | None  # function logical id (kind == "lambda")
    arn: str
    input: str | None  # the target's constant Input (JSON text)
    input_path: str | None


@dataclass(frozen=True)
class ScheduleSpec:
    """A rule or schedule with a ScheduleExpression (moto stores these, never fires them)."""

    logical_id: str
    name: str
    arn: str
    expression: str  # "rate(5 minutes)" | "cron(...)"
    enabled: bool
    targets: tuple[RuleTarget, ...]


@dataclass(frozen=True)
class EventRoute:
    """A pattern rule with Lambda/Step Functions targets: moto delivers matches to ``queue_url``."""

    logical_id: str
    rule_name: str
    queue_url: str
    targets: tuple[RuleTarget, ...]


@dataclass
class FunctionSpec:
    """What the runtime needs to run one function as Lambda would."""

    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    timeout: int
    memory_size: int
    environment: dict[str, str]
    sqs_sources: list[SqsEventSource] = field(default_factory=list)
    api_routes: list[ApiRoute] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)


@dataclass
class Resources:
    """Everything ``provision`` created, by logical id."""

    stack_name: str
    region: str
    account_id: str
    endpoint_url: str
    parameters: dict[str, str]
    types: dict[str, str]  # logical id -> CloudFormation type (of the translated template)
    physical: dict[str, str]  # logical id -> Ref value (name, URL, ARN or id as CloudFormation gives)
    attributes: dict[str, dict[str, str]]  # logical id -> GetAtt values
    functions: dict[str, FunctionSpec]
    sqs_sources: list[SqsEventSource]
    api_routes: list[ApiRoute]
    api_stages: dict[str, str]  # RestApi logical id -> stage name
    api_gateway_responses: dict[
        str, dict[str, Any]
    ]  # RestApi logical id -> x-amazon-apigateway-gateway-responses
    schedules: dict[str, ScheduleSpec]
    event_routes: list[EventRoute]
    state_machines: dict[str, str]  # logical id -> ARN
    translated: dict[str, Any]  # the CloudFormation template that was provisioned
    skipped: frozenset[str] = frozenset()  # logical ids whose Condition was false

    def ref(self, logical_id: str) -> str:
        try:
            return self.physical[logical_id]
        except KeyError:
            raise KeyError(f"no resource {logical_id!r} in the stack") from None

    def get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[logical_id][attribute]
        except KeyError:
            raise KeyError(f"no attribute {attribute!r} on {logical_id!r}") from None

    def function_by_name(self, name_or_arn: str) -> FunctionSpec | None:
        """The function whose name or ARN (optionally qualified) is given, else None."""
        for spec in self.functions.values():
            if name_or_arn in (spec.name, spec.arn) or name_or_arn.startswith(spec.arn + ":"):
                return spec
        return None

    def queues(self) -> dict[str, str]:
        """Queue logical id -> queue URL."""
        return {lid: self.physical[lid] for lid, t in self.types.items() if t == "AWS::SQS::Queue"}

    def tables(self) -> dict[str, str]:
        """Table logical id -> table name."""
        return {lid: self.physical[lid] for lid, t in self.types.items() if t == "AWS::DynamoDB::Table"}


class _Clients(dict):  # type: ignore[type-arg]
    """boto3 clients on moto with fake credentials (never the caller's real ones), made on first use."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        super().__init__()
        self.endpoint_url = endpoint_url
        self.session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self.config = Config(retries={"max_attempts": 2, "mode": "standard"})
        self.lock = threading.Lock()

    def __missing__(self, service: str) -> Any:
        with self.lock:
            if service not in self:
                # session.client is not thread-safe; one lock for the few creations.
                self[service] = self.session.client(
                    service, endpoint_url=self.endpoint_url, config=self.config
                )
            return dict.__getitem__(self, service)


_clients_cache: dict[tuple[str, str], _Clients] = {}
_clients_lock = threading.Lock()


def clients(endpoint_url: str, region: str) -> _Clients:
    """Cached boto3 clients for moto at ``endpoint_url``: ``clients(url, region)["sqs"]``."""
    with _clients_lock:
        key = (endpoint_url, region)
        if key not in _clients_cache:
            _clients_cache[key] = _Clients(endpoint_url, region)
        return _clients_cache[key]


def _str_params(props: dict[str, Any], skip: set[str]) -> dict[str, str]:
    out = {}
    for key, value in props.items():
        if key in skip:
            continue
        out[key] = (
            json.dumps(value)
            if isinstance(value, (dict, list))
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
    return out


def _generate_secret(spec: dict[str, Any]) -> str:
    length = int(spec.get("PasswordLength", 32))
    alphabet = ""
    if not spec.get("ExcludeLowercase"):
        alphabet += string.ascii_lowercase
    if not spec.get("ExcludeUppercase"):
        alphabet += string.ascii_uppercase
    if not spec.get("ExcludeNumbers"):
        alphabet += string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    if spec.get("IncludeSpace"):
        alphabet += " "
    alphabet = "".join(c for c in alphabet if c not in str(spec.get("ExcludeCharacters", "")))
    if not alphabet:
        raise TemplateError("GenerateSecretString excludes every character")
    value = "".join(secrets.choice(alphabet) for _ in range(length))
    template = spec.get("SecretStringTemplate")
    if template is not None:
        key = spec.get("GenerateStringKey")
        if not key:
            raise TemplateError("GenerateSecretString: SecretStringTemplate needs GenerateStringKey")
        data = json.loads(template)
        data[key] = value
        return json.dumps(data)
    return value


class _Provisioner:
    def __init__(
        self,
        cfn: dict[str, Any],
        prepared_code: dict[str, Path],
        layer_dirs: dict[str, Path],
        endpoint_url: str,
        parameters: dict[str, str],
        region: str,
        stack_name: str,
    ) -> None:
        self.cfn = cfn
        self.code_dirs = prepared_code
        self.layer_dirs = layer_dirs
        self.endpoint_url = endpoint_url
        self.region = region
        self.stack_name = stack_name
        self.suffix = uuid.uuid4().hex[:8].upper()
        self.c = clients(endpoint_url, region)
        self.resources_def: dict[str, Any] = cfn["Resources"]
        self.physical: dict[str, str] = {}
        self.attributes: dict[str, dict[str, str]] = {}
        self.skipped: set[str] = set()
        pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/{uuid.uuid4()}",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],  # type: ignore[dict-item]
        }
        self.resolver = Resolver(
            parameters=parameters,
            pseudo=pseudo,  # type: ignore[arg-type]
            conditions=cfn.get("Conditions") or {},
            mappings=cfn.get("Mappings") or {},
            ref=self._ref,
            get_att=self._get_att,
        )
        self.functions: dict[str, FunctionSpec] = {}
        self.sqs_sources: list[SqsEventSource] = []
        self.schedules: dict[str, ScheduleSpec] = {}
        self.event_routes: list[EventRoute] = []
        self.state_machines: dict[str, str] = {}
        self.rest_api_bodies: dict[str, Any] = {}
        self.api_stages: dict[str, str] = {}
        self.layer_dir_by_arn: dict[str, Path] = {}

    # -- references -------------------------------------------------------------------------------
    def _ref(self, logical_id: str) -> str:
        if logical_id in self.physical:
            return self.physical[logical_id]
        if logical_id in self.skipped:
            raise TemplateError(f"Ref to {logical_id}, whose Condition is false")
        raise TemplateError(f"Ref to unknown or not yet created resource {logical_id!r}")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        attrs = self.attributes.get(logical_id)
        if attrs is None:
            raise TemplateError(f"GetAtt on unknown or not yet created resource {logical_id!r}")
        if attribute not in attrs:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: attribute not supported locally")
        return attrs[attribute]

    def _name(self, logical_id: str, max_len: int = 64) -> str:
        # CloudFormation-like generated physical names: <stack>-<LogicalId>-<SUFFIX>
        name = f"{self.stack_name}-{logical_id}-{self.suffix}"
        return name[-max_len:] if len(name) > max_len else name

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{resource}"

    # -- ordering ---------------------------------------------------------------------------------
    def order(self) -> list[str]:
        ids = set(self.resources_def)
        deps: dict[str, set[str]] = {}
        for lid, res in self.resources_def.items():
            d = dependencies(res.get("Properties") or {}, ids)
            depends_on = res.get("DependsOn") or []
            d |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
            deps[lid] = d - {lid}
        ordered: list[str] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(lid: str) -> None:
            if lid in done:
                return
            if lid in visiting:
                raise TemplateError(f"circular reference through {lid}")
            visiting.add(lid)
            for dep in sorted(deps[lid]):
                if dep not in self.resources_def:
                    raise TemplateError(f"{lid} depends on unknown resource {dep}")
                visit(dep)
            visiting.discard(lid)
            done.add(lid)
            ordered.append(lid)

        for lid in sorted(self.resources_def):
            visit(lid)
        return ordered

    # -- run --------------------------------------------------------------------------------------
    def run(self) -> None:
        for lid in self.order():
            res = self.resources_def[lid]
            rtype = res.get("Type", "")
            cond = res.get("Condition")
            if cond is not None and not self.resolver.condition(cond):
                self.skipped.add(lid)
                continue
            if rtype in IGNORED_TYPES:
                self.physical[lid] = f"{lid}-{self.suffix}"
                self.attributes[lid] = {}
                continue
            creator = getattr(self, "_create_" + rtype.replace("::", "_"), None)
            if creator is None:
                raise TemplateError(f"{lid}: resource type {rtype} is not supported by the local stack")
            props = self.resolver.resolve(res.get("Properties") or {})
            try:
                creator(lid, props)
            except (ClientError, ParamValidationError) as exc:
                raise TemplateError(f"{lid} ({rtype}): moto refused it: {exc}") from exc
            except KeyError as exc:
                raise TemplateError(f"{lid} ({rtype}): required property {exc} is missing") from exc

    def _set(self, lid: str, ref: str, **attrs: str) -> None:
        self.physical[lid] = ref
        self.attributes[lid] = attrs

    # -- resource creators ------------------------------------------------------------------------
    def _create_AWS_DynamoDB_Table(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("TableName") or self._name(lid, 255)
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        if kwargs["BillingMode"] == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = p.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if p.get(key):
                kwargs[key] = p[key]
        if p.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        sse = p.get("SSESpecification")
        if sse:
            kwargs["SSESpecification"] = {
                k: v
                for k, v in {
                    "Enabled": sse.get("SSEEnabled", False),
                    "SSEType": sse.get("SSEType"),
                    "KMSMasterKeyId": sse.get("KMSMasterKeyId"),
                }.items()
                if v is not None
            }
        if p.get("Tags"):
            kwargs["Tags"] = p["Tags"]
        desc = self.c["dynamodb"].create_table(**kwargs)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            self.c["dynamodb"].update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        pitr = p.get("PointInTimeRecoverySpecification")
        if pitr and pitr.get("PointInTimeRecoveryEnabled"):
            self.c["dynamodb"].update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        attrs = {"Arn": desc["TableArn"]}
        if desc.get("LatestStreamArn"):
            attrs["StreamArn"] = desc["LatestStreamArn"]
        self._set(lid, name, **attrs)

    def _create_AWS_SQS_Queue(self, lid: str, p: dict[str, Any]) -> None:
        fifo = str(p.get("FifoQueue", "false")).lower() == "true"
        name = p.get("QueueName") or self._name(lid, 80 - (5 if fifo else 0))
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = _str_params(p, {"QueueName", "Tags"})
        tags = {t["Key"]: t["Value"] for t in p.get("Tags") or []}
        kwargs: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if tags:
            kwargs["tags"] = tags
        url = self.c["sqs"].create_queue(**kwargs)["QueueUrl"]
        arn = self.c["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._set(lid, url, Arn=arn, QueueName=name, QueueUrl=url)

    def _create_AWS_SQS_QueuePolicy(self, lid: str, p: dict[str, Any]) -> None:
        for url in p.get("Queues", []):
            self.c["sqs"].set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])}
            )
        self._set(lid, self._name(lid))

    def _create_AWS_Events_EventBus(self, lid: str, p: dict[str, Any]) -> None:
        name = p["Name"]
        arn = self.c["events"].create_event_bus(Name=name)["EventBusArn"]
        self._set(lid, name, Arn=arn, Name=name)

    def _target_of(self, t: dict[str, Any]) -> RuleTarget | None:
        arn = t["Arn"]
        if ":lambda:" in arn:
            fn = next((s for s in self.functions.values() if arn in (s.arn, s.name)), None)
            if fn is None:
                raise TemplateError(f"rule target {arn} is not a function of this template")
            return RuleTarget(t["Id"], "lambda", fn.logical_id, arn, t.get("Input"), t.get("InputPath"))
        if ":states:" in arn:
            return RuleTarget(t["Id"], "states", None, arn, t.get("Input"), t.get("InputPath"))
        return None

    def _add_schedule(self, spec: ScheduleSpec) -> None:
        self.schedules[spec.logical_id] = spec
        for target in spec.targets:
            if target.function is not None:
                self.functions[target.function].schedules.append(spec)

    def _create_AWS_Events_Rule(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("Name") or self._name(lid)
        bus = p.get("EventBusName", "default")
        if bus.startswith("arn:"):
            bus = bus.rsplit("/", 1)[-1]
        state = p.get("State", "ENABLED")
        kwargs: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": state}
        if "EventPattern" in p:
            pattern = p["EventPattern"]
            kwargs["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if "ScheduleExpression" in p:
            kwargs["ScheduleExpression"] = p["ScheduleExpression"]
        if p.get("Description"):
            kwargs["Description"] = p["Description"]
        arn = self.c["events"].put_rule(**kwargs)["RuleArn"]
        native: list[dict[str, Any]] = []
        routed: list[tuple[RuleTarget, dict[str, Any]]] = []
        for t in p.get("Targets", []):
            target = self._target_of(t)
            if target is None:
                native.append(t)
            else:
                routed.append((target, t))
        if "ScheduleExpression" in p:
            if native:
                raise TemplateError(
                    f"{lid}: schedule targets other than Lambda/Step Functions are not run locally"
                )
            spec = ScheduleSpec(
                lid, name, arn, p["ScheduleExpression"], state == "ENABLED", tuple(t for t, _ in routed)
            )
            self._add_schedule(spec)
        else:
            # moto's PutEvents fails on Lambda/Step Functions targets: moto delivers the matches to one
            # internal queue per target instead (applying its InputTransformer), which the stack drains.
            for index, (target, raw) in enumerate(routed):
                qname = f"{self._name(lid, 70)}-r{index}"
                qurl = self.c["sqs"].create_queue(QueueName=qname)["QueueUrl"]
                route_target: dict[str, Any] = {
                    "Id": f"local-stack-route-{index}",
                    "Arn": self._arn("sqs", qname),
                }
                if raw.get("InputTransformer"):
                    route_target["InputTransformer"] = raw["InputTransformer"]
                native.append(route_target)
                self.event_routes.append(EventRoute(lid, name, qurl, (target,)))
        if native:
            self.c["events"].put_targets(Rule=name, EventBusName=bus, Targets=native)
        self._set(lid, name, Arn=arn)

    def _create_AWS_Events_Archive(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("ArchiveName") or self._name(lid, 48)
        kwargs: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": p["SourceArn"]}
        if p.get("Description"):
            kwargs["Description"] = p["Description"]
        if p.get("EventPattern"):
            pattern = p["EventPattern"]
            kwargs["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if p.get("RetentionDays") is not None:
            kwargs["RetentionDays"] = int(p["RetentionDays"])
        arn = self.c["events"].create_archive(**kwargs)["ArchiveArn"]
        self._set(lid, name, Arn=arn, ArchiveName=name)

    def _create_AWS_Scheduler_Schedule(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("Name") or self._name(lid)
        t = p["Target"]
        target = self._target_of({"Id": "target", "Arn": t["Arn"], "Input": t.get("Input")})
        if target is None:
            raise TemplateError(
                f"{lid}: schedule targets other than Lambda/Step Functions are not run locally"
            )
        arn = self._arn("scheduler", f"schedule/{p.get('GroupName', 'default')}/{name}")
        self._add_schedule(
            ScheduleSpec(
                lid, name, arn, p["ScheduleExpression"], p.get("State", "ENABLED") == "ENABLED", (target,)
            )
        )
        self._set(lid, name, Arn=arn)

    def _create_AWS_KMS_Key(self, lid: str, p: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = {}
        if p.get("KeyPolicy"):
            kwargs["Policy"] = (
                json.dumps(p["KeyPolicy"]) if not isinstance(p["KeyPolicy"], str) else p["KeyPolicy"]
            )
        for src, dst in (("Description", "Description"), ("KeyUsage", "KeyUsage"), ("KeySpec", "KeySpec")):
            if p.get(src):
                kwargs[dst] = p[src]
        meta = self.c["kms"].create_key(**kwargs)["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            self.c["kms"].enable_key_rotation(KeyId=meta["KeyId"])
        self._set(lid, meta["KeyId"], Arn=meta["Arn"], KeyId=meta["KeyId"])

    def _create_AWS_KMS_Alias(self, lid: str, p: dict[str, Any]) -> None:
        self.c["kms"].create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        self._set(lid, p["AliasName"])

    def _create_AWS_SecretsManager_Secret(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("Name") or self._name(lid, 256)
        kwargs: dict[str, Any] = {"Name": name}
        if "SecretString" in p:
            kwargs["SecretString"] = p["SecretString"]
        elif "GenerateSecretString" in p:
            kwargs["SecretString"] = _generate_secret(p["GenerateSecretString"])
        if p.get("KmsKeyId"):
            kwargs["KmsKeyId"] = p["KmsKeyId"]
        if p.get("Description"):
            kwargs["Description"] = p["Description"]
        arn = self.c["secretsmanager"].create_secret(**kwargs)["ARN"]
        self._set(lid, arn, Id=arn, Name=name)

    def _create_AWS_CloudWatch_Alarm(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("AlarmName") or self._name(lid, 255)
        kwargs = {k: v for k, v in p.items() if k != "AlarmName"}
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in kwargs:
                kwargs[key] = int(kwargs[key])
        if "Threshold" in kwargs:
            kwargs["Threshold"] = float(kwargs["Threshold"])
        if "ActionsEnabled" in kwargs:
            kwargs["ActionsEnabled"] = str(kwargs["ActionsEnabled"]).lower() == "true"
        self.c["cloudwatch"].put_metric_alarm(AlarmName=name, **kwargs)
        self._set(lid, name, Arn=self._arn("cloudwatch", f"alarm:{name}"))

    def _create_AWS_IAM_Role(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("RoleName") or self._name(lid)
        role = self.c["iam"].create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
            Path=p.get("Path", "/"),
        )["Role"]
        self._set(lid, name, Arn=role["Arn"], RoleId=role["RoleId"])

    def _create_AWS_Logs_LogGroup(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("LogGroupName") or self._name(lid, 512)
        self.c["logs"].create_log_group(logGroupName=name)
        self._set(lid, name, Arn=self._arn("logs", f"log-group:{name}:*"))

    def _create_AWS_SNS_Topic(self, lid: str, p: dict[str, Any]) -> None:
        arn = self.c["sns"].create_topic(Name=p.get("TopicName") or self._name(lid, 256))["TopicArn"]
        self._set(lid, arn, TopicArn=arn, TopicName=arn.rsplit(":", 1)[-1])

    def _create_AWS_SSM_Parameter(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("Name") or self._name(lid)
        self.c["ssm"].put_parameter(Name=name, Value=str(p["Value"]), Type=p.get("Type", "String"))
        self._set(lid, name, Type=p.get("Type", "String"), Value=str(p["Value"]))

    def _create_AWS_S3_Bucket(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("BucketName") or self._name(lid, 63).lower()
        self.c["s3"].create_bucket(Bucket=name)
        self._set(lid, name, Arn=f"arn:aws:s3:::{name}", DomainName=f"{name}.s3.amazonaws.com")

    def _create_AWS_Lambda_LayerVersion(self, lid: str, p: dict[str, Any]) -> None:
        # Layers are directories on PYTHONPATH locally; the ARN only has to be stable.
        name = p.get("LayerName") or lid
        arn = self._arn("lambda", f"layer:{name}:1")
        # samtranslator appends a content hash to the SAM layer's logical id.
        sam_lid = next((k for k in self.layer_dirs if lid == k or lid.startswith(k)), None)
        if sam_lid is None:
            raise TemplateError(f"{lid}: only layers with a local ContentUri directory exist locally")
        self.layer_dir_by_arn[arn] = self.layer_dirs[sam_lid]
        self._set(lid, arn, LayerVersionArn=arn)

    def _create_AWS_Lambda_Function(self, lid: str, p: dict[str, Any]) -> None:
        import io
        import zipfile

        name = p.get("FunctionName") or self._name(lid)
        if lid not in self.code_dirs:
            raise TemplateError(f"{lid}: only functions with a local CodeUri directory run locally")
        code_dir = self.code_dirs[lid]
        if not code_dir.is_dir():
            raise TemplateError(f"{lid}: CodeUri {code_dir} is not a directory")
        layer_dirs = []
        for layer_arn in p.get("Layers", []):
            if layer_arn not in self.layer_dir_by_arn:
                raise TemplateError(f"{lid}: layer {layer_arn} is not a local layer of this template")
            layer_dirs.append(self.layer_dir_by_arn[layer_arn])
        env = {k: str(v) for k, v in ((p.get("Environment") or {}).get("Variables") or {}).items()}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("README.txt", "code runs from the local directory; see local.stack.runtime")
        fn = self.c["lambda"].create_function(
            FunctionName=name,
            Runtime=p.get("Runtime", "python3.13"),
            Role=p["Role"],
            Handler=p["Handler"],
            Code={"ZipFile": buf.getvalue()},
            Timeout=int(p.get("Timeout", 3)),
            MemorySize=int(p.get("MemorySize", 128)),
            Environment={"Variables": env},
            Architectures=p.get("Architectures", ["x86_64"]),
        )
        self.functions[lid] = FunctionSpec(
            logical_id=lid,
            name=name,
            arn=fn["FunctionArn"],
            handler=p["Handler"],
            runtime=p.get("Runtime", "python3.13"),
            code_dir=code_dir,
            layer_dirs=tuple(layer_dirs),
            timeout=int(p.get("Timeout", 3)),
            memory_size=int(p.get("MemorySize", 128)),
            environment=env,
        )
        self._set(lid, name, Arn=fn["FunctionArn"])

    def _create_AWS_Lambda_EventSourceMapping(self, lid: str, p: dict[str, Any]) -> None:
        source_arn = p["EventSourceArn"]
        queue_lid = next(
            (k for k, a in self.attributes.items() if a.get("Arn") == source_arn and k in self.physical), None
        )
        if queue_lid is None or self.resources_def[queue_lid]["Type"] != "AWS::SQS::Queue":
            raise TemplateError(f"{lid}: only SQS queues of this template are local event sources")
        fn = next((s for s in self.functions.values() if p["FunctionName"] in (s.name, s.arn)), None)
        if fn is None:
            raise TemplateError(f"{lid}: FunctionName {p['FunctionName']} is not a function of this template")
        source = SqsEventSource(
            logical_id=lid,
            function=fn.logical_id,
            queue=queue_lid,
            queue_url=self.physical[queue_lid],
            queue_arn=source_arn,
            batch_size=int(p.get("BatchSize", 10)),
            report_batch_item_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
            maximum_batching_window_seconds=int(p.get("MaximumBatchingWindowInSeconds", 0)),
            enabled=str(p.get("Enabled", True)).lower() == "true",
        )
        self.sqs_sources.append(source)
        fn.sqs_sources.append(source)
        self._set(lid, str(uuid.uuid4()))

    def _create_AWS_ApiGateway_RestApi(self, lid: str, p: dict[str, Any]) -> None:
        api = self.c["apigateway"].create_rest_api(name=p.get("Name") or self._name(lid))
        self.rest_api_bodies[lid] = p.get("Body") or {}
        self._set(lid, api["id"], RootResourceId=api["rootResourceId"])

    def _create_AWS_StepFunctions_StateMachine(self, lid: str, p: dict[str, Any]) -> None:
        name = p.get("StateMachineName") or self._name(lid, 80)
        definition = p.get("DefinitionString") or p.get("Definition")
        if definition is None:
            raise TemplateError(f"{lid}: state machine without an inline definition")
        text = definition if isinstance(definition, str) else json.dumps(definition)
        for key, value in (p.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + key + "}", str(value))
        kwargs: dict[str, Any] = {"name": name, "definition": text, "roleArn": p["RoleArn"]}
        if p.get("StateMachineType"):
            kwargs["type"] = p["StateMachineType"]
        arn = self.c["stepfunctions"].create_state_machine(**kwargs)["stateMachineArn"]
        self.state_machines[lid] = arn
        self._set(lid, arn, Arn=arn, Name=name)

    # -- API routes ---------------------------------------------------------------------------------
    def api_routes(self) -> list[ApiRoute]:
        routes: list[ApiRoute] = []
        for lid, res in self.resources_def.items():
            if res.get("Type") == "AWS::ApiGateway::Stage" and lid not in self.skipped:
                props = self.resolver.resolve(res.get("Properties") or {})
                api_lid = next((k for k, v in self.physical.items() if v == props.get("RestApiId")), None)
                if api_lid:
                    self.api_stages[api_lid] = props.get("StageName", "")
        for api_lid, body in self.rest_api_bodies.items():
            if not body:
                continue
            security_defs = body.get("securityDefinitions") or (body.get("components") or {}).get(
                "securitySchemes", {}
            )
            authorizers = {name: self._authorizer(name, d) for name, d in security_defs.items()}
            default_security = body.get("security")
            for path, methods in (body.get("paths") or {}).items():
                for method, op in methods.items():
                    if not isinstance(op, dict) or "x-amazon-apigateway-integration" not in op:
                        continue
                    uri = str(op["x-amazon-apigateway-integration"].get("uri", ""))
                    fn = self._function_in_uri(uri)
                    if fn is None:
                        raise TemplateError(
                            f"{api_lid} {method.upper()} {path}: integration {uri} is not local"
                        )
                    security = op.get("security", default_security) or []
                    names = [n for req in security for n in req if authorizers.get(n)]
                    auth = authorizers[names[0]] if names else None
                    method_name = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                    route = ApiRoute(api_lid, method_name, path, fn, auth)
                    routes.append(route)
                    self.functions[fn].api_routes.append(route)
        return routes

    def _function_in_uri(self, uri: str) -> str | None:
        for spec in self.functions.values():
            if f"functions/{spec.arn}/invocations" in uri or f":function:{spec.name}/" in uri:
                return spec.logical_id
        return None

    def _authorizer(self, name: str, definition: dict[str, Any]) -> Authorizer | None:
        ext = definition.get("x-amazon-apigateway-authorizer")
        if not ext:
            return None  # e.g. API keys or IAM: not Lambda authorizers
        fn = self._function_in_uri(str(ext.get("authorizerUri", "")))
        if fn is None:
            raise TemplateError(f"authorizer {name}: its function is not local")
        sources = tuple(s.strip() for s in str(ext.get("identitySource", "")).split(",") if s.strip())
        return Authorizer(
            name=name,
            function=fn,
            type=str(ext.get("type", "token")).lower(),
            identity_sources=sources,
            ttl_seconds=int(ext.get("authorizerResultTtlInSeconds", 300)),
        )


def resolve_parameters(cfn: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """Template parameters: defaults, then overrides. Raises TemplateError for unknown/missing ones."""
    declared = cfn.get("Parameters") or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"unknown template parameters: {sorted(unknown)}")
    values: dict[str, str] = {}
    for name, decl in declared.items():
        if name in overrides:
            value: Any = overrides[name]
        elif "Default" in decl:
            value = decl["Default"]
        else:
            raise TemplateError(f"template parameter {name} has no default and no value")
        pattern = decl.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, str(value)):
            raise TemplateError(f"parameter {name}={value!r} does not match AllowedPattern {pattern}")
        allowed = decl.get("AllowedValues")
        if allowed is not None and str(value) not in [str(a) for a in allowed]:
            raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        values[name] = ",".join(value) if isinstance(value, list) else str(value)
    return values


def translate_template(template_path: str | Path, region: str) -> tuple[dict[str, Any], Any]:
    """Load and translate ``template_path``; returns (CloudFormation template, PreparedTemplate)."""
    path = Path(template_path).resolve()
    sam = load_template(path)
    prepared = prepare_for_translation(sam, path.parent)
    cfn = translate(prepared.template, region) if "Transform" in sam else prepared.template
    return cfn, prepared


def provision(
    endpoint_url: str,
    template_path: str | Path = "template.yaml",
    parameters: dict[str, str] | None = None,
    region: str = "us-east-1",
    stack_name: str = DEFAULT_STACK_NAME,
) -> Resources:
    """Create every resource of the template on moto at ``endpoint_url``.

    ``parameters`` override template parameter defaults. Physical names get a fresh random suffix,
    so provisioning twice on one server gives two independent sets of resources.
    Raises TemplateError when the template cannot be translated, names an unknown parameter, uses a
    resource type or attribute the local stack cannot provide, or moto refuses a resource.
    """
    cfn, prepared = translate_template(template_path, region)
    values = resolve_parameters(cfn, parameters or {})
    p = _Provisioner(cfn, prepared.code_dirs, prepared.layer_dirs, endpoint_url, values, region, stack_name)
    p.run()
    routes = p.api_routes()
    return Resources(
        stack_name=stack_name,
        region=region,
        account_id=ACCOUNT_ID,
        endpoint_url=endpoint_url,
        parameters=values,
        types={lid: r.get("Type", "") for lid, r in cfn["Resources"].items() if lid not in p.skipped},
        physical=p.physical,
        attributes=p.attributes,
        functions=p.functions,
        sqs_sources=p.sqs_sources,
        api_routes=routes,
        api_stages=p.api_stages,
        api_gateway_responses={
            lid: body.get("x-amazon-apigateway-gateway-responses") or {}
            for lid, body in p.rest_api_bodies.items()
        },
        schedules=p.schedules,
        event_routes=p.event_routes,
        state_machines=p.state_machines,
        translated=cfn,
        skipped=frozenset(p.skipped),
    )


#: The platform's return page locally (``PlatformReturnUrl``). Nothing serves it: whoever plays the platform
#: (local/demo.py, the tests) reads the callback's redirect to it and completes the connection over the API.
LOCAL_PLATFORM_RETURN_URL = "http://platform.localhost/quickbooks/connected"


def local_parameters(
    template_path: str | Path = "template.yaml",
    simulator_url: str | None = None,
    redirect_uri: str | None = None,
    stage: str | None = None,
    log_level: str | None = None,
    platform_return_url: str | None = None,
) -> dict[str, str]:
    """Parameter overrides that point the application at the QuickBooks simulator (docs/contracts.md).

    Only parameters the template declares are returned (``IntuitDiscoveryUrl``, ``QboApiBaseUrl``,
    ``QboAppBaseUrl``, ``OAuthRedirectUri``, ``PlatformReturnUrl``, ``Stage``, ``LogLevel``); None leaves
    the default. With a simulator, ``PlatformReturnUrl`` defaults to :data:`LOCAL_PLATFORM_RETURN_URL`.
    """
    declared = (load_template(template_path).get("Parameters") or {}).keys()
    values: dict[str, str | None] = {
        "OAuthRedirectUri": redirect_uri,
        "PlatformReturnUrl": platform_return_url,
        "Stage": stage,
        "LogLevel": log_level,
    }
    if simulator_url is not None:
        sim = simulator_url.rstrip("/")
        values.update(
            {
                "IntuitDiscoveryUrl": f"{sim}/.well-known/openid_configuration",
                "QboApiBaseUrl": sim,
                "QboAppBaseUrl": sim,
            }
        )
        if platform_return_url is None:
            values["PlatformReturnUrl"] = LOCAL_PLATFORM_RETURN_URL
    return {k: v for k, v in values.items() if v is not None and k in declared}


def empty_queue(resources: Resources, queue_url: str) -> int:
    """Receive and delete every visible message (PurgeQueue allows one call per 60 s). Returns the count."""
    sqs = clients(resources.endpoint_url, resources.region)["sqs"]
    count = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return count
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        count += len(messages)


def empty_table(resources: Resources, table_name: str) -> int:
    """Delete every item of a table. Returns the count."""
    ddb = clients(resources.endpoint_url, resources.region)["dynamodb"]
    keys = [k["AttributeName"] for k in ddb.describe_table(TableName=table_name)["Table"]["KeySchema"]]
    names = {f"#k{i}": k for i, k in enumerate(keys)}
    count = 0
    for page in ddb.get_paginator("scan").paginate(
        TableName=table_name, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
    ):
        for item in page["Items"]:
            ddb.delete_item(TableName=table_name, Key=item)
            count += 1
    return count


def empty_resources(resources: Resources) -> None:
    """Empty every table and queue of the stack (work queues first: draining may redrive to a DLQ)."""
    for table in resources.tables().values():
        empty_table(resources, table)
    queues = sorted(resources.queues().items(), key=lambda kv: "DLQ" in kv[0] or "Dlq" in kv[0])
    for _, url in queues:
        empty_queue(resources, url)
    for route in resources.event_routes:
        empty_queue(resources, route.queue_url)
