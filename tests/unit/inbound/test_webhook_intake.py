"""The webhook intake's domain (qbsync.inbound.intake): signature, both payload shapes, realms, enqueue.

Ports are small fakes (a realm directory, a queue recording what it was given); the intake itself runs for
real. The handler on moto: tests/integration/inbound/test_webhook_intake_handler.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import pytest
from qbsync.adapters.sqs import SendReceipt, SqsMessage
from qbsync.errors import BadRequest, ConfigurationError, ServiceUnavailable, Unauthorized
from qbsync.inbound.intake import (
    CLASSIC,
    CLOUDEVENTS,
    MAX_BODY_BYTES,
    MAX_CLOUDEVENTS,
    VerifierToken,
    WebhookIntake,
    intuit_signature,
    notification_id,
    parse_webhook,
    raw_body,
    sign,
    verifier_reader,
)
from qbsync.models.messages import MAX_CHANGES_PER_NOTICE, EntityChange, parse_inbound_message

from local.qbo_sim.webhooks import sign as simulator_sign

TOKEN = "verifier-token-1"
REALM_A, REALM_B, UNKNOWN = "9341455000000001", "9341455000000002", "9341455099999999"


class Realms:
    def __init__(self, *known: str) -> None:
        self.known = set(known)
        self.asked: list[str] = []

    def firms_of_realms(self, realm_ids: list[str]) -> dict[str, str | None]:
        self.asked.extend(realm_ids)
        return {r: f"firm-{r[-1]}" if r in self.known else None for r in realm_ids}


class Queue:
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[SqsMessage] = []
        self.fail = fail

    def send_many(self, messages: Iterable[SqsMessage]) -> list[SendReceipt]:
        batch = list(messages)
        if self.fail is not None and batch:
            raise self.fail
        self.sent.extend(batch)
        return [SendReceipt(id=str(m.id), message_id=f"mid-{m.id}") for m in batch]

    def notices(self) -> list[Any]:
        return [parse_inbound_message(m.body) for m in self.sent]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenSource:
    """The Intuit app secret's verifier token, as Secrets Manager would give it (counts the reads)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.reads: list[bool] = []

    def __call__(self, force: bool) -> str:
        self.reads.append(force)
        return self.token


def classic(*notifications: tuple[str, list[dict[str, Any]]]) -> bytes:
    body = {
        "eventNotifications": [
            {"realmId": realm, "dataChangeEvent": {"entities": entities}} for realm, entities in notifications
        ]
    }
    return json.dumps(body).encode()


def entity(
    name: str = "Invoice", qbo_id: str = "130", operation: str = "Update", **extra: str
) -> dict[str, str]:
    return {
        "name": name,
        "id": qbo_id,
        "operation": operation,
        "lastUpdated": "2026-03-02T18:11:12.000Z",
        **extra,
    }


def cloudevent(
    realm: str, kind: str = "qbo.invoice.updated.v1", qbo_id: str = "130", **extra: Any
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{realm}-{qbo_id}-{kind}",
        "source": "intuit.abc=",
        "type": kind,
        "datacontenttype": "application/json",
        "time": "2026-03-02T18:11:12.034Z",
        "intuitentityid": qbo_id,
        "intuitaccountid": realm,
        "data": {},
        **extra,
    }


def intake(realms: Realms | None = None, queue: Queue | None = None, token: str = TOKEN) -> WebhookIntake:
    return WebhookIntake(
        verifier=VerifierToken(TokenSource(token), clock=Clock()),
        realms=realms or Realms(REALM_A, REALM_B),
        queue=queue or Queue(),
        clock=lambda: 1_765_000_000.0,
    )


# ------------------------------------------------------------------------------------------- signature


def test_sign_is_the_simulators_and_intuits_algorithm() -> None:
    body = b'{"eventNotifications":[]}'
    assert sign(TOKEN, body) == simulator_sign(TOKEN, body)
    assert base64.b64decode(sign(TOKEN, body)) != b""


def test_a_correct_signature_verifies() -> None:
    body = classic((REALM_A, [entity()]))
    VerifierToken(TokenSource(TOKEN)).verify(body, sign(TOKEN, body))


@pytest.mark.parametrize(
    ("signature_of", "reason"),
    [
        (lambda body: None, "missing_signature"),
        (lambda body: sign("another-token", body), "bad_signature"),  # wrong token
        (lambda body: sign(TOKEN, body[:-1] + b" "), "bad_signature"),  # one byte tampered
        (lambda body: sign(TOKEN, body)[:-2], "bad_signature"),  # truncated
        (lambda body: "é" * 44, "bad_signature"),  # not even ASCII
        (lambda body: "A" * 1000, "bad_signature"),  # absurdly long
    ],
)
def test_a_bad_or_missing_signature_is_refused(signature_of: Any, reason: str) -> None:
    body = classic((REALM_A, [entity()]))
    with pytest.raises(Unauthorized) as refused:
        VerifierToken(TokenSource(TOKEN)).verify(body, signature_of(body))
    assert refused.value.extra["reason"] == reason


def test_no_verifier_token_refuses_every_request_even_a_signed_one() -> None:
    body = classic((REALM_A, [entity()]))
    with pytest.raises(Unauthorized) as refused:
        VerifierToken(TokenSource("")).verify(body, sign("", body))
    assert refused.value.extra["reason"] == "no_verifier_token"


def test_a_rotated_token_is_read_again_once_and_then_verifies() -> None:
    source, clock = TokenSource("old-token"), Clock()
    verifier = VerifierToken(source, clock=clock, reread_seconds=30)
    body = classic((REALM_A, [entity()]))
    verifier.verify(body, sign("old-token", body))
    source.token = "new-token"
    clock.now += 31
    verifier.verify(body, sign("new-token", body))
    assert source.reads == [False, True]
    verifier.verify(body, sign("new-token", body))  # cached now
    assert source.reads == [False, True]


def test_forged_signatures_do_not_drive_secret_reads() -> None:
    source, clock = TokenSource(TOKEN), Clock()
    verifier = VerifierToken(source, clock=clock, reread_seconds=30)
    body = classic((REALM_A, [entity()]))
    for _ in range(5):
        with pytest.raises(Unauthorized):
            verifier.verify(body, sign("forged", body))
    assert source.reads == [False]  # read at the first request; no re-read within 30 s
    clock.now += 30
    with pytest.raises(Unauthorized):
        verifier.verify(body, sign("forged", body))
    assert source.reads == [False, True]


def test_the_verifier_token_field_of_the_app_secret() -> None:
    read = verifier_reader(lambda force: {"client_id": "x", "webhook_verifier_token": " tok "})
    assert read(False) == "tok"
    assert verifier_reader(lambda force: {"client_id": "x"})(False) == ""
    with pytest.raises(ConfigurationError):
        verifier_reader(lambda force: {"webhook_verifier_token": 5})(False)


# ------------------------------------------------------------------------------------------- raw request


def test_raw_body_is_the_bytes_sent_plain_or_base64() -> None:
    body = classic((REALM_A, [entity(name="Customer")]))
    assert raw_body({"body": body.decode()}) == body
    assert raw_body({"body": base64.b64encode(body).decode(), "isBase64Encoded": True}) == body
    assert raw_body({"body": None}) == b""


def test_raw_body_bounds_the_size_and_refuses_false_base64() -> None:
    big = "x" * (MAX_BODY_BYTES + 1)
    with pytest.raises(BadRequest) as too_big:
        raw_body({"body": big})
    assert too_big.value.http_status == 413
    with pytest.raises(BadRequest) as too_big_b64:
        raw_body({"body": base64.b64encode(big.encode()).decode(), "isBase64Encoded": True})
    assert too_big_b64.value.http_status == 413
    with pytest.raises(BadRequest) as not_b64:
        raw_body({"body": "not base64 !!", "isBase64Encoded": True})
    assert not_b64.value.http_status == 400
    assert raw_body({"body": "x" * MAX_BODY_BYTES}) == b"x" * MAX_BODY_BYTES


def test_the_signature_header_is_found_in_any_case_and_must_be_single() -> None:
    assert intuit_signature({"headers": {"Intuit-Signature": " abc= "}}) == "abc="
    assert intuit_signature({"headers": {"intuit-signature": "abc="}}) == "abc="
    assert intuit_signature({"headers": {"Content-Type": "application/json"}}) is None
    assert intuit_signature({"headers": {"intuit-signature": "  "}}) is None
    assert intuit_signature({"headers": None}) is None
    repeated = {
        "multiValueHeaders": {"intuit-signature": ["a=", "b="]},
        "headers": {"intuit-signature": "b="},
    }
    assert intuit_signature(repeated) is None


# ------------------------------------------------------------------------------------------- shapes


def test_classic_body_is_read_with_merge_and_deleted_id() -> None:
    parsed = parse_webhook(classic((REALM_A, [entity(), entity("Customer", "58", "Merge", deletedId="61")])))
    assert parsed.source == CLASSIC
    assert parsed.changes == {
        REALM_A: [
            EntityChange("Invoice", "130", "Update", "2026-03-02T18:11:12.000Z"),
            EntityChange("Customer", "58", "Merge", "2026-03-02T18:11:12.000Z", "61"),
        ]
    }
    assert parsed.skipped == []


@pytest.mark.parametrize(
    ("kind", "entity_name", "operation"),
    [
        ("qbo.invoice.updated.v1", "Invoice", "Update"),
        ("qbo.payment.created.v1", "Payment", "Create"),
        ("qbo.creditmemo.deleted.v1", "CreditMemo", "Delete"),
        ("qbo.customer.merged.v1", "Customer", "Merge"),
        ("qbo.refundreceipt.voided.v1", "RefundReceipt", "Void"),
        ("qbo.invoice.emailed.v1", "Invoice", "Emailed"),
        ("qbo.paymentmethod.updated.v1", "PaymentMethod", "Update"),
        ("qbo.preferences.updated.v1", "Preferences", "Update"),
    ],
)
def test_cloudevents_types_map_to_qbo_names_and_classic_operations(
    kind: str, entity_name: str, operation: str
) -> None:
    parsed = parse_webhook(json.dumps([cloudevent(REALM_A, kind, "7")]).encode())
    assert parsed.source == CLOUDEVENTS
    assert parsed.changes == {
        REALM_A: [EntityChange(entity_name, "7", operation, "2026-03-02T18:11:12.034Z")]
    }


def test_cloudevents_mixing_realms_are_split_per_realm_in_order() -> None:
    events = [
        cloudevent(REALM_A, qbo_id="1"),
        cloudevent(REALM_B, qbo_id="2"),
        cloudevent(REALM_A, qbo_id="3"),
    ]
    parsed = parse_webhook(json.dumps(events).encode())
    assert {realm: [c.qbo_id for c in changes] for realm, changes in parsed.changes.items()} == {
        REALM_A: ["1", "3"],
        REALM_B: ["2"],
    }


def test_unknown_entities_verbs_and_versions_are_skipped_not_refused() -> None:
    events = [
        cloudevent(REALM_A, "qbo.invoice.updated.v1", "1"),
        cloudevent(REALM_A, "qbo.widget.updated.v1", "2"),  # an entity QBO does not send
        cloudevent(REALM_A, "qbo.invoice.archived.v1", "3"),  # a verb that is not a QBO operation
        cloudevent(REALM_A, "qbo.invoice.updated.v2", "4"),  # a version qbsync does not read
    ]
    parsed = parse_webhook(json.dumps(events).encode())
    assert [c.qbo_id for c in parsed.changes[REALM_A]] == ["1"]
    assert parsed.skipped == ["qbo.widget.updated.v1", "qbo.invoice.archived.v1", "qbo.invoice.updated.v2"]
    classic_parsed = parse_webhook(
        classic((REALM_A, [entity("Widget"), entity(operation="Archive"), entity("invoice"), entity()]))
    )
    assert [c.entity for c in classic_parsed.changes[REALM_A]] == ["Invoice"]
    assert classic_parsed.skipped == ["Widget/Update", "Invoice/Archive", "invoice/Update"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "not JSON"),  # nesting deeper than the decoder goes
        (b'{"hello": 1}', "neither a classic notification"),
        (b'"text"', "neither a classic notification"),
        (b"[]", "1 to 100 events"),
        (json.dumps([cloudevent(REALM_A)] * (MAX_CLOUDEVENTS + 1)).encode(), "1 to 100 events"),
        (json.dumps([5]).encode(), "[0] is not an object"),
        (json.dumps([{**cloudevent(REALM_A), "intuitentityid": None}]).encode(), "[0].intuitentityid"),
        (json.dumps([{**cloudevent(REALM_A), "intuitaccountid": 1}]).encode(), "[0].intuitaccountid"),
        (json.dumps([{**cloudevent(REALM_A), "type": ["x"]}]).encode(), "[0].type"),
        (
            json.dumps([{k: v for k, v in cloudevent(REALM_A).items() if k != "specversion"}]).encode(),
            "[0].specversion",
        ),
        (json.dumps({"eventNotifications": []}).encode(), "eventNotifications must be a list"),
        (json.dumps({"eventNotifications": [{"realmId": REALM_A}]}).encode(), "dataChangeEvent.entities"),
        (classic((REALM_A, [{"name": "Invoice", "operation": "Update"}])), "entities[0].id"),
        (classic((REALM_A, [entity(qbo_id="9" * 65)])), "entities[0].id"),
        (classic(("", [entity()])), "eventNotifications[0].realmId"),
    ],
)
def test_an_unreadable_body_is_refused_naming_what_is_wrong(body: bytes, named: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_webhook(body)
    assert named in refused.value.message
    assert refused.value.http_status == 400


# ------------------------------------------------------------------------------------------- the intake


def test_a_classic_post_becomes_one_notice_on_the_queue() -> None:
    queue = Queue()
    body = classic((REALM_A, [entity(), entity("Payment", "9", "Create")]))
    result = intake(queue=queue).receive(body, sign(TOKEN, body))
    (notice,) = queue.notices()
    assert notice.realm_id == REALM_A and notice.source == CLASSIC
    assert [(c.entity, c.qbo_id, c.operation) for c in notice.changes] == [
        ("Invoice", "130", "Update"),
        ("Payment", "9", "Create"),
    ]
    assert notice.notification_id == notification_id(body, REALM_A, 0)
    assert notice.received_at == "2025-12-06T05:46:40.000+00:00"
    assert result.answer() == {
        "queued": 1,
        "notification_ids": [notice.notification_id],
        "unknown_realms": 0,
        "skipped_events": 0,
    }


def test_mixed_realms_give_one_notice_each_and_an_unknown_realm_is_dropped() -> None:
    realms, queue = Realms(REALM_A, REALM_B), Queue()
    events = [
        cloudevent(REALM_A, qbo_id="1"),
        cloudevent(UNKNOWN, qbo_id="2"),
        cloudevent(REALM_B, qbo_id="3"),
    ]
    body = json.dumps(events).encode()
    result = intake(realms, queue).receive(body, sign(TOKEN, body))
    assert [(n.realm_id, [c.qbo_id for c in n.changes]) for n in queue.notices()] == [
        (REALM_A, ["1"]),
        (REALM_B, ["3"]),
    ]
    assert result.unknown_realms == {UNKNOWN: 1}
    assert realms.asked == [REALM_A, UNKNOWN, REALM_B]  # one lookup for every realm of the POST
    assert len({n.notification_id for n in queue.notices()}) == 2


def test_only_unknown_realms_queue_nothing() -> None:
    queue = Queue()
    body = classic((UNKNOWN, [entity()]))
    result = intake(Realms(), queue).receive(body, sign(TOKEN, body))
    assert queue.sent == [] and result.answer()["queued"] == 0 and result.unknown_realms == {UNKNOWN: 1}


def test_a_replay_of_the_same_bytes_gives_the_same_notification_ids() -> None:
    queue = Queue()
    body = json.dumps([cloudevent(REALM_A, qbo_id="1"), cloudevent(REALM_B, qbo_id="2")]).encode()
    service = intake(queue=queue)
    first = service.receive(body, sign(TOKEN, body))
    again = service.receive(body, sign(TOKEN, body))
    assert first.answer()["notification_ids"] == again.answer()["notification_ids"]
    other = json.dumps([cloudevent(REALM_A, qbo_id="1", id="another-event-id")]).encode()
    assert (
        service.receive(other, sign(TOKEN, other)).answer()["notification_ids"][0]
        not in first.answer()["notification_ids"]
    )


def test_a_realm_with_more_changes_than_a_notice_holds_is_split_in_chunks() -> None:
    queue = Queue()
    body = classic((REALM_A, [entity(qbo_id=str(i)) for i in range(MAX_CHANGES_PER_NOTICE + 3)]))
    intake(queue=queue).receive(body, sign(TOKEN, body))
    notices = queue.notices()
    assert [len(n.changes) for n in notices] == [MAX_CHANGES_PER_NOTICE, 3]
    assert [n.notification_id for n in notices] == [notification_id(body, REALM_A, i) for i in (0, 1)]
    assert [c.qbo_id for n in notices for c in n.changes] == [
        str(i) for i in range(MAX_CHANGES_PER_NOTICE + 3)
    ]


def test_nothing_is_read_or_queued_before_the_signature_verifies() -> None:
    realms, queue = Realms(REALM_A), Queue()
    body = classic((REALM_A, [entity()]))
    with pytest.raises(Unauthorized):
        intake(realms, queue).receive(body, sign("forged", body))
    with pytest.raises(Unauthorized):
        intake(realms, queue).receive(b"not json", None)
    assert realms.asked == [] and queue.sent == []


def test_a_signed_unreadable_body_queues_nothing() -> None:
    realms, queue = Realms(REALM_A), Queue()
    body = json.dumps([cloudevent(REALM_A), {"specversion": "1.0"}]).encode()
    with pytest.raises(BadRequest):
        intake(realms, queue).receive(body, sign(TOKEN, body))
    assert realms.asked == [] and queue.sent == []


def test_an_sqs_failure_raises_the_retryable_error() -> None:
    body = classic((REALM_A, [entity()]))
    with pytest.raises(ServiceUnavailable):
        intake(queue=Queue(fail=ServiceUnavailable("SQS down"))).receive(body, sign(TOKEN, body))
