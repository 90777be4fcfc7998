"""The webhook intake handler (``functions/webhook_intake``) on moto, configured exactly as template.yaml
configures it (``function_env``): API Gateway proxy events in, InboundQueue read back.

A realm is "known" when a firm's connection holds it (the realm-owner item the connection writes); the
verifier token is the ``webhook_verifier_token`` field of ``IntuitAppSecret``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from qbsync import wiring
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.kms import TokenCipher
from qbsync.models.messages import parse_inbound_message
from qbsync.repositories.connections import ConnectionsRepository, Tokens

from local.qbo_sim.webhooks import sign
from local.stack.provision import Resources, clients
from tests.fixtures.events import drain_queue
from tests.fixtures.firms import new_firm
from tests.fixtures.lambda_runtime import HttpResult, LambdaContext, load_function

KNOWN_A, KNOWN_B, UNKNOWN = "9341455100000001", "9341455100000002", "9341455100000009"


class Intake:
    """The handler, its queue and its secret."""

    def __init__(self, resources: Resources, env: dict[str, str], handler: Any) -> None:
        self.resources = resources
        self.env = env
        self.handler = handler
        self.aws = clients(resources.endpoint_url, resources.region)
        self.token = ""

    def set_token(self, token: str) -> None:
        self.aws["secretsmanager"].put_secret_value(
            SecretId=self.resources.ref("IntuitAppSecret"),
            SecretString=json.dumps(
                {"client_id": "c", "client_secret": "s", "webhook_verifier_token": token}
            ),
        )
        self.token = token

    def post(
        self,
        body: bytes,
        *,
        signature: str | None = None,
        base64_body: bool = False,
        content_type: str = "application/json",
    ) -> HttpResult:
        headers = {"Content-Type": content_type, "User-Agent": "Intuit-Webhooks"}
        if signature is not None:
            headers["intuit-signature"] = signature
        event = {
            "resource": "/webhooks/intuit",
            "path": "/webhooks/intuit",
            "httpMethod": "POST",
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": None,
            "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8"),
            "isBase64Encoded": base64_body,
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "stage": "test",
                "resourcePath": "/webhooks/intuit",
            },
        }
        answer = self.handler.lambda_handler(event, LambdaContext(function_name="webhook-intake"))
        return HttpResult(answer["statusCode"], answer["headers"], answer["body"])

    def signed(self, body: bytes, **kwargs: Any) -> HttpResult:
        return self.post(body, signature=sign(self.token, body), **kwargs)

    def queued(self) -> list[Any]:
        """Every InboundQueue message, parsed as the worker parses it (and deleted)."""
        return [
            parse_inbound_message(json.dumps(m))
            for m in drain_queue(self.aws["sqs"], self.env["INBOUND_QUEUE_URL"])
        ]


@pytest.fixture
def intake(aws_clean: Resources, function_env: Callable[[str], dict[str, str]]) -> Iterator[Intake]:
    env = function_env("WebhookIntakeFunction")
    wiring.reset()
    handler = load_function("webhook_intake", prefix="wh")
    handler._intake.clear()
    connections = ConnectionsRepository(
        DynamoTable(env["SYNC_TABLE_NAME"]), TokenCipher(env["TOKEN_KMS_KEY_ID"])
    )
    now = time.time()
    for realm in (KNOWN_A, KNOWN_B):
        connections.create(
            firm_id=new_firm(),
            realm_id=realm,
            tokens=Tokens("access", "refresh", now + 3600, now + 86400),
            company_name=None,
            connected_by="user-1",
            settings={},
            now=now,
        )
    box = Intake(aws_clean, env, handler)
    box.set_token(secrets.token_urlsafe(16))
    yield box
    handler._intake.clear()
    wiring.reset()


def classic(realm: str, *entities: tuple[str, str, str]) -> bytes:
    rows = [
        {"name": n, "id": i, "operation": o, "lastUpdated": "2026-12-07T01:00:00.000Z"}
        for n, i, o in entities
    ]
    return json.dumps(
        {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": rows}}]}
    ).encode()


def cloudevents(*events: tuple[str, str, str]) -> bytes:
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "intuit.x",
                "type": kind,
                "datacontenttype": "application/json",
                "time": "2026-12-07T01:00:00.000Z",
                "intuitentityid": qbo_id,
                "intuitaccountid": realm,
                "data": {},
            }
            for realm, kind, qbo_id in events
        ]
    ).encode()


def _changes(notice: Any) -> list[tuple[str, str, str]]:
    return [(c.entity, c.qbo_id, c.operation) for c in notice.changes]


def test_a_signed_classic_post_lands_on_inbound_queue(intake: Intake) -> None:
    body = classic(KNOWN_A, ("Invoice", "130", "Update"), ("Payment", "9", "Create"))
    answer = intake.signed(body)
    assert answer.status == 200, answer.body
    (notice,) = intake.queued()
    assert (notice.realm_id, notice.source) == (KNOWN_A, "webhook_classic")
    assert _changes(notice) == [("Invoice", "130", "Update"), ("Payment", "9", "Create")]
    assert answer.json() == {
        "queued": 1,
        "notification_ids": [notice.notification_id],
        "unknown_realms": 0,
        "skipped_events": 0,
    }


def test_cloudevents_of_two_realms_and_an_unknown_one_base64_and_any_content_type(intake: Intake) -> None:
    body = cloudevents(
        (KNOWN_A, "qbo.payment.created.v1", "11"),
        (UNKNOWN, "qbo.invoice.updated.v1", "12"),
        (KNOWN_B, "qbo.creditmemo.deleted.v1", "13"),
        (KNOWN_A, "qbo.invoice.voided.v1", "14"),
    )
    answer = intake.signed(body, base64_body=True, content_type="application/cloudevents-batch+json")
    assert answer.status == 200, answer.body
    notices = sorted(intake.queued(), key=lambda n: n.realm_id)
    assert [(n.realm_id, n.source, _changes(n)) for n in notices] == [
        (KNOWN_A, "webhook_cloudevents", [("Payment", "11", "Create"), ("Invoice", "14", "Void")]),
        (KNOWN_B, "webhook_cloudevents", [("CreditMemo", "13", "Delete")]),
    ]
    assert answer.json()["unknown_realms"] == 1
    assert sorted(answer.json()["notification_ids"]) == sorted(n.notification_id for n in notices)


def test_a_replay_queues_the_same_notification_ids_again(intake: Intake) -> None:
    body = classic(KNOWN_B, ("Customer", "58", "Update"))
    first, again = intake.signed(body), intake.signed(body)
    assert first.status == again.status == 200
    assert first.json()["notification_ids"] == again.json()["notification_ids"]
    # the intake does not dedupe (a stateless 200 within Intuit's 3 s); the worker tolerates duplicates
    assert [n.notification_id for n in intake.queued()] == first.json()["notification_ids"] * 2


@pytest.mark.parametrize("forge", ["missing", "wrong_token", "tampered"])
def test_a_forged_or_missing_signature_is_401_and_queues_nothing(intake: Intake, forge: str) -> None:
    body = classic(KNOWN_A, ("Invoice", "130", "Update"))
    signature = {
        "missing": None,
        "wrong_token": sign("not-the-token", body),
        "tampered": sign(intake.token, body.replace(b"130", b"131")),
    }[forge]
    answer = intake.post(body, signature=signature)
    assert answer.status == 401
    assert answer.json()["error"] == "unauthorized"
    assert intake.queued() == []


def test_no_verifier_token_configured_refuses_even_a_body_signed_with_the_empty_token(intake: Intake) -> None:
    intake.set_token("")
    body = classic(KNOWN_A, ("Invoice", "130", "Update"))
    assert intake.post(body, signature=sign("", body)).status == 401
    assert intake.queued() == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"<xml/>", "not JSON"),
        (b'{"eventNotifications": "x"}', "eventNotifications"),
        (cloudevents(*[(KNOWN_A, "qbo.invoice.updated.v1", str(i)) for i in range(101)]), "1 to 100 events"),
        (
            json.dumps(
                [{"specversion": "1.0", "type": "qbo.invoice.updated.v1", "intuitaccountid": KNOWN_A}]
            ).encode(),
            "[0].intuitentityid",
        ),
    ],
)
def test_a_signed_unreadable_body_is_400_naming_the_problem_and_queues_nothing(
    intake: Intake, body: bytes, named: str
) -> None:
    answer = intake.signed(body)
    assert answer.status == 400
    assert named in answer.json()["message"]
    assert intake.queued() == []


def test_a_body_over_one_mib_is_413_before_any_signature_check(intake: Intake) -> None:
    body = classic(KNOWN_A, ("Invoice", "1", "Update")) + b" " * (1024 * 1024)
    answer = intake.signed(body)
    assert answer.status == 413
    assert intake.queued() == []


def test_only_unknown_realms_answer_200_and_queue_nothing(intake: Intake) -> None:
    answer = intake.signed(classic(UNKNOWN, ("Invoice", "130", "Update")))
    assert answer.status == 200
    assert answer.json() == {"queued": 0, "notification_ids": [], "unknown_realms": 1, "skipped_events": 0}
    assert intake.queued() == []


def test_a_queue_that_does_not_exist_is_a_json_500_with_the_request_id(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOUND_QUEUE_URL", intake.env["INBOUND_QUEUE_URL"] + "-gone")
    wiring.reset()
    intake.handler._intake.clear()
    answer = intake.signed(classic(KNOWN_A, ("Invoice", "130", "Update")))
    assert answer.status == 500
    assert answer.json()["request_id"]
    assert intake.queued() == []
