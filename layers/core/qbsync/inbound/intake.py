"""Intuit webhook intake (QBO.md §6): verify, read by shape, split per realm, drop unknown realms, enqueue.

One POST of Intuit's (``POST /webhooks/intuit``, ``functions/webhook_intake``) goes through
:meth:`WebhookIntake.receive`, in this order, and nothing is queued unless every step before the last
passed:

1. **Size** - the raw body is at most :data:`MAX_BODY_BYTES` (1 MiB; Intuit documents about 1 MB for 100
   CloudEvents). Larger: 413, before any HMAC is computed. The body is read raw whatever the
   Content-Type (``application/json``, ``application/cloudevents+json``, ...); API Gateway's base64
   encoding (``isBase64Encoded``) is undone first (:func:`raw_body`).
2. **Signature** - ``intuit-signature`` must be base64(HMAC-SHA256(verifier token, raw body)), compared in
   constant time (:class:`VerifierToken`). Missing, repeated, wrong, or no verifier token configured:
   :class:`~qbsync.errors.Unauthorized` (401). The token is the ``webhook_verifier_token`` field of the
   Intuit app secret, cached per container; a signature that fails with the cached token re-reads the
   secret once (a rotated token) - at most once per :data:`REREAD_SECONDS`, so forged requests cannot
   drive Secrets Manager reads.
3. **Shape** - a JSON object with ``eventNotifications`` is the classic format, a JSON array the
   CloudEvents one (1 to :data:`MAX_CLOUDEVENTS` events, each with ``specversion``). Anything else, a
   field missing or of the wrong type or size: :class:`~qbsync.errors.BadRequest` (400) naming the field
   path (never a value). A readable event of a type qbsync does not know (an entity outside
   :data:`QBO_ENTITIES`, an operation outside ``QBO_OPERATIONS``, a CloudEvents type that is not
   ``qbo.<entity>.<verb>.v1``) is *skipped*: counted and logged with its type, the rest of the POST goes
   on. A 400 would make Intuit retry the same bytes for days and hold back every later notification of the
   app (head-of-line blocking, QBO.md §6.5).
4. **Realms** - the changes are grouped per realm (CloudEvents may mix companies). A realm no firm holds
   (``REALM#{realm}/OWNER``, one BatchGetItem for every realm of the POST:
   :meth:`~qbsync.repositories.connections.ConnectionsRepository.firms_of_realms`) is dropped: one log
   line ``webhook for an unknown realm dropped`` with the realm id and the change count, never routed by
   guess.
5. **Enqueue** - one :class:`~qbsync.models.messages.InboundNotice` per realm (and per
   :data:`~qbsync.models.messages.MAX_CHANGES_PER_NOTICE` changes) to ``InboundQueue`` with
   SendMessageBatch (10 a call). ``notification_id`` is a hash of the raw body, the realm and the chunk
   index, so Intuit's retry of the same bytes carries the same ids. An SQS failure raises the retryable
   error (503): Intuit retries the same bytes; notices already sent are then sent again with the same
   ids, and the worker tolerates duplicates (it reads each object from QuickBooks before acting).

Duplicates and replays are harmless by construction: the intake only announces "this object changed"
(a replay of the same bytes carries the same ``notification_id``); dedupe is the worker's, which reads
each object from QuickBooks before acting on it. Nothing here logs the body or the signature.

The intake sits on Intuit's 3 s budget: this module imports no pydantic model and no service of the
other packages (``qbsync.models.messages`` holds plain dataclasses).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync.adapters.sqs import SendReceipt, SqsMessage
from qbsync.errors import BadRequest, ConfigurationError, Unauthorized
from qbsync.models.messages import MAX_CHANGES_PER_NOTICE, QBO_OPERATIONS, EntityChange, InboundNotice
from qbsync.observability import logger

__all__ = [
    "CLASSIC",
    "CLOUDEVENTS",
    "MAX_BODY_BYTES",
    "MAX_CLASSIC_ENTITIES",
    "MAX_CLOUDEVENTS",
    "QBO_ENTITIES",
    "REREAD_SECONDS",
    "IntakeResult",
    "NoticeQueue",
    "ParsedWebhook",
    "RealmOwners",
    "VerifierToken",
    "WebhookIntake",
    "intuit_signature",
    "parse_webhook",
    "raw_body",
    "sign",
]

#: the largest raw body accepted (Intuit: about 1 MB for a POST of 100 CloudEvents)
MAX_BODY_BYTES = 1024 * 1024
#: CloudEvents per POST (Intuit's documented maximum)
MAX_CLOUDEVENTS = 100
#: entities of one classic POST, all notifications together (1 MiB holds about 10,000)
MAX_CLASSIC_ENTITIES = 10_000
#: notifications of one classic POST (Intuit sends one realm a notification, one notification a POST)
MAX_CLASSIC_NOTIFICATIONS = 100
#: a failed signature re-reads the verifier token at most this often per container (seconds)
REREAD_SECONDS = 30.0
CLASSIC = "webhook_classic"
CLOUDEVENTS = "webhook_cloudevents"
_SIGNATURE_HEADER = "intuit-signature"
_MAX_SIGNATURE_LENGTH = 256
_ID_MAX = 64  # realm ids and object ids (what parse_inbound_message accepts)
_TEXT_MAX = 64  # timestamps
_TYPE_MAX = 128

#: QBO's webhook entities (QBO.md §6.1) in QBO's capitalisation; CloudEvents types carry them lower-cased
QBO_ENTITIES: Mapping[str, str] = {
    name.lower(): name
    for name in (
        "Account",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CreditMemo",
        "Currency",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
}
#: CloudEvents verbs → the classic operations (QBO.md §6.3)
_VERBS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}
_CE_TYPE = re.compile(r"^qbo\.([a-z]+)\.([a-z]+)\.v1$")


# ----------------------------------------------------------------------------------- the raw request


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The exact bytes Intuit sent, from an API Gateway proxy event (base64-decoded when
    ``isBase64Encoded``), whatever the Content-Type.

    Raises:
        BadRequest: 413 above :data:`MAX_BODY_BYTES` (checked before decoding); 400 for a body that is
            flagged base64 but is not.
    """
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadRequest("the request body is not text", field="body")
    if event.get("isBase64Encoded"):
        if len(body) > (MAX_BODY_BYTES + 2) // 3 * 4:
            raise _too_large()
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the request body is flagged base64 but is not", field="body") from None
    else:
        raw = body.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large()
    return raw


def _too_large() -> BadRequest:
    return BadRequest(
        f"the request body is larger than {MAX_BODY_BYTES} bytes", field="body", http_status=413
    )


def intuit_signature(event: Mapping[str, Any]) -> str | None:
    """The one ``intuit-signature`` header value (any case), or None when missing, empty or repeated."""
    values: list[str] = []
    multi = event.get("multiValueHeaders") or {}
    for name, items in multi.items():
        if isinstance(name, str) and name.lower() == _SIGNATURE_HEADER and isinstance(items, list):
            values.extend(v for v in items if isinstance(v, str))
    if not values:
        headers = event.get("headers") or {}
        values = [
            v
            for k, v in headers.items()
            if isinstance(k, str) and k.lower() == _SIGNATURE_HEADER and isinstance(v, str)
        ]
    if len(values) != 1 or not values[0].strip():
        return None
    return values[0].strip()


def sign(verifier_token: str, body: bytes) -> str:
    """The ``intuit-signature`` of ``body``: base64(HMAC-SHA256(verifier token, body))."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class VerifierToken:
    """Checks ``intuit-signature`` against the app's verifier token, cached per container.

    Args:
        read: the token from the Intuit app secret (``force`` = bypass any cache); ``""`` when the field
            is empty or missing. May raise a retryable error (Secrets Manager unavailable).
        clock: monotonic seconds (tests pass a fake clock).
        reread_seconds: a failed signature re-reads the token at most this often.
    """

    def __init__(
        self,
        read: Callable[[bool], str],
        *,
        clock: Callable[[], float] = time.monotonic,
        reread_seconds: float = REREAD_SECONDS,
    ) -> None:
        self._read = read
        self._clock = clock
        self._reread_seconds = reread_seconds
        self._token: str | None = None
        self._read_at = 0.0

    def _current(self, force: bool) -> str:
        if self._token is None or force:
            self._token = self._read(force)
            self._read_at = self._clock()
        return self._token

    def verify(self, raw: bytes, signature: str | None) -> None:
        """Return when ``signature`` signs ``raw``.

        Raises:
            Unauthorized: no signature, a wrong one, or no verifier token configured (logged as an error:
                every webhook is refused until an operator writes the token).
        """
        token = self._current(False)
        if not token:
            token = self._current(self._clock() - self._read_at >= self._reread_seconds)
        if not token:
            logger.error(
                "webhook refused: the Intuit app secret has no webhook_verifier_token",
                extra={"secret_key": "webhook_verifier_token"},
            )
            raise Unauthorized("no webhook verifier token is configured", reason="no_verifier_token")
        if signature is None:
            raise Unauthorized("the intuit-signature header is missing", reason="missing_signature")
        if len(signature) > _MAX_SIGNATURE_LENGTH:
            raise Unauthorized("the intuit-signature header is not a signature", reason="bad_signature")
        if _matches(token, raw, signature):
            return
        if self._clock() - self._read_at >= self._reread_seconds:
            fresh = self._current(True)  # the token may have been rotated since it was cached
            if fresh and fresh != token and _matches(fresh, raw, signature):
                return
        raise Unauthorized("the intuit-signature does not match the body", reason="bad_signature")


def _matches(token: str, raw: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(token, raw).encode("ascii"), signature.encode("utf-8"))


# ----------------------------------------------------------------------------------- the payload


@dataclass
class ParsedWebhook:
    """What a verified body announced: ``source``, the changes per realm in order of appearance, and the
    events skipped as unknown (their ``type`` text or ``entity/operation``)."""

    source: str
    changes: dict[str, list[EntityChange]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def add(self, realm_id: str, change: EntityChange | None, unknown: str) -> None:
        if change is None:
            self.skipped.append(unknown)
        else:
            self.changes.setdefault(realm_id, []).append(change)


def parse_webhook(raw: bytes) -> ParsedWebhook:
    """Read a verified body by its shape (classic ``eventNotifications`` or a CloudEvents array).

    Raises:
        BadRequest: not JSON, neither shape, too many events, a field missing or of the wrong type/size
            (the message names the field path, never a value).
    """
    try:
        decoded = json.loads(raw)
    except (
        ValueError,
        RecursionError,
    ):  # UnicodeDecodeError is a ValueError; nesting too deep: RecursionError
        raise BadRequest("the body is not JSON", field="body") from None
    if isinstance(decoded, list):
        return _cloudevents(decoded)
    if isinstance(decoded, dict) and "eventNotifications" in decoded:
        return _classic(decoded["eventNotifications"])
    raise BadRequest(
        "the body is neither a classic notification (eventNotifications) nor a CloudEvents array",
        field="body",
    )


def _cloudevents(events: list[Any]) -> ParsedWebhook:
    if not 1 <= len(events) <= MAX_CLOUDEVENTS:
        raise BadRequest(f"a CloudEvents body holds 1 to {MAX_CLOUDEVENTS} events", field="body")
    parsed = ParsedWebhook(CLOUDEVENTS)
    for i, event in enumerate(events):
        path = f"[{i}]"
        if not isinstance(event, dict):
            raise BadRequest(f"{path} is not an object", field=path)
        _text(event, "specversion", path, _TEXT_MAX)
        kind = _text(event, "type", path, _TYPE_MAX)
        realm_id = _text(event, "intuitaccountid", path, _ID_MAX)
        qbo_id = _text(event, "intuitentityid", path, _ID_MAX)
        when = _text(event, "time", path, _TEXT_MAX, optional=True)
        match = _CE_TYPE.match(kind)
        entity = QBO_ENTITIES.get(match.group(1)) if match else None
        operation = _VERBS.get(match.group(2)) if match else None
        change = EntityChange(entity, qbo_id, operation, when) if entity and operation else None
        parsed.add(realm_id, change, kind)
    return parsed


def _classic(notifications: Any) -> ParsedWebhook:
    if not isinstance(notifications, list) or not 1 <= len(notifications) <= MAX_CLASSIC_NOTIFICATIONS:
        raise BadRequest(
            f"eventNotifications must be a list of 1 to {MAX_CLASSIC_NOTIFICATIONS} objects",
            field="eventNotifications",
        )
    parsed = ParsedWebhook(CLASSIC)
    total = 0
    for i, notification in enumerate(notifications):
        path = f"eventNotifications[{i}]"
        if not isinstance(notification, dict):
            raise BadRequest(f"{path} is not an object", field=path)
        realm_id = _text(notification, "realmId", path, _ID_MAX)
        data = notification.get("dataChangeEvent")
        entities = data.get("entities") if isinstance(data, dict) else None
        if not isinstance(entities, list):
            raise BadRequest(f"{path}.dataChangeEvent.entities must be a list", field=path)
        total += len(entities)
        if total > MAX_CLASSIC_ENTITIES:
            raise BadRequest(f"a classic body holds at most {MAX_CLASSIC_ENTITIES} entities", field=path)
        for j, entity in enumerate(entities):
            change, unknown = _classic_change(entity, f"{path}.dataChangeEvent.entities[{j}]")
            parsed.add(realm_id, change, unknown)
    return parsed


def _classic_change(entity: Any, path: str) -> tuple[EntityChange | None, str]:
    if not isinstance(entity, dict):
        raise BadRequest(f"{path} is not an object", field=path)
    name = _text(entity, "name", path, _TYPE_MAX)
    qbo_id = _text(entity, "id", path, _ID_MAX)
    operation = _text(entity, "operation", path, _TEXT_MAX)
    when = _text(entity, "lastUpdated", path, _TEXT_MAX, optional=True)
    deleted_id = _text(entity, "deletedId", path, _ID_MAX, optional=True)
    known = QBO_ENTITIES.get(name.lower())
    if known != name or operation not in QBO_OPERATIONS:
        return None, f"{name}/{operation}"
    return EntityChange(name, qbo_id, operation, when, deleted_id), ""


def _text(obj: Mapping[str, Any], name: str, path: str, limit: int, *, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        where = f"{path}.{name}"
        raise BadRequest(f"{where} must be a non-empty string of at most {limit} characters", field=where)
    return value


# ----------------------------------------------------------------------------------- routing and enqueue


class RealmOwners(Protocol):
    """``ConnectionsRepository``: the firm whose live connection holds each realm, or None (one read for
    every realm of the POST)."""

    def firms_of_realms(self, realm_ids: Sequence[str]) -> Mapping[str, str | None]: ...


class NoticeQueue(Protocol):
    """``InboundQueue`` (:class:`~qbsync.adapters.sqs.SqsSender`): SendMessageBatch, 10 a call; raises
    if any message is unsent."""

    def send_many(self, messages: Iterable[SqsMessage]) -> list[SendReceipt]: ...


@dataclass(frozen=True)
class IntakeResult:
    """What one verified POST became: the notices queued, the realms dropped as unknown (with their change
    counts) and the events skipped as of an unknown type."""

    source: str
    notices: tuple[InboundNotice, ...]
    unknown_realms: dict[str, int]
    skipped: tuple[str, ...]

    def answer(self) -> dict[str, Any]:
        """The 200 body (Intuit ignores it; tests and operators read it). No payload content."""
        return {
            "queued": len(self.notices),
            "notification_ids": [n.notification_id for n in self.notices],
            "unknown_realms": len(self.unknown_realms),
            "skipped_events": len(self.skipped),
        }


def notification_id(raw: bytes, realm_id: str, chunk: int) -> str:
    """The id of the ``chunk``-th notice of ``realm_id`` from the body ``raw``: the same bytes again (an
    Intuit retry, a replay) give the same id."""
    digest = hashlib.sha256(raw)
    digest.update(b"\0" + realm_id.encode("utf-8") + b"\0" + str(chunk).encode("ascii"))
    return "wh-" + digest.hexdigest()


class WebhookIntake:
    """Verify → parse by shape → split per realm → drop unknown realms → enqueue (see the module doc).

    Args:
        verifier: checks ``intuit-signature``.
        realms: which realms some firm holds.
        queue: ``InboundQueue``.
        clock: epoch seconds (``received_at`` of the notices).
    """

    def __init__(
        self,
        *,
        verifier: VerifierToken,
        realms: RealmOwners,
        queue: NoticeQueue,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._realms = realms
        self._queue = queue
        self._clock = clock

    def receive(self, raw: bytes, signature: str | None) -> IntakeResult:
        """Handle one POST's raw body and ``intuit-signature``.

        Raises:
            Unauthorized: the signature does not verify (nothing read, nothing queued).
            BadRequest: a signed body that cannot be read (nothing queued).
            RetryableError / ConfigurationError / InfrastructureError: a realm lookup or the enqueue
                failed; Intuit retries the same bytes (same notification ids).
        """
        self._verifier.verify(raw, signature)
        parsed = parse_webhook(raw)
        if parsed.skipped:
            logger.warning(
                "webhook events of an unknown type skipped",
                extra={
                    "source": parsed.source,
                    "skipped": len(parsed.skipped),
                    "types": _few(parsed.skipped),
                },
            )
        received_at = datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds")
        notices: list[InboundNotice] = []
        unknown: dict[str, int] = {}
        owners = self._realms.firms_of_realms(list(parsed.changes)) if parsed.changes else {}
        for realm_id, changes in parsed.changes.items():
            if owners.get(realm_id) is None:
                unknown[realm_id] = len(changes)
                logger.warning(
                    "webhook for an unknown realm dropped",
                    extra={"realm_id": realm_id, "changes": len(changes), "source": parsed.source},
                )
                continue
            notices.extend(_notices(raw, realm_id, changes, parsed.source, received_at))
        receipts = self._queue.send_many(SqsMessage(n.body(), id=f"n{i}") for i, n in enumerate(notices))
        for notice, receipt in zip(notices, receipts, strict=True):
            logger.info(
                "inbound notice queued",
                extra={
                    "realm_id": notice.realm_id,
                    "notification_id": notice.notification_id,
                    "message_id": receipt.message_id,
                    "source": notice.source,
                    "changes": len(notice.changes),
                    "entities": sorted({c.entity for c in notice.changes}),
                },
            )
        return IntakeResult(parsed.source, tuple(notices), unknown, tuple(parsed.skipped))


def _notices(
    raw: bytes, realm_id: str, changes: list[EntityChange], source: str, received_at: str
) -> Iterable[InboundNotice]:
    for chunk, start in enumerate(range(0, len(changes), MAX_CHANGES_PER_NOTICE)):
        yield InboundNotice(
            realm_id=realm_id,
            changes=tuple(changes[start : start + MAX_CHANGES_PER_NOTICE]),
            source=source,
            received_at=received_at,
            notification_id=notification_id(raw, realm_id, chunk),
        )


def _few(items: Sequence[str], limit: int = 10) -> list[str]:
    """At most ``limit`` distinct items (log lines stay small)."""
    return sorted(set(items))[:limit]


def verifier_reader(read_secret: Callable[[bool], Mapping[str, Any]]) -> Callable[[bool], str]:
    """``VerifierToken``'s ``read`` from a reader of the Intuit app secret's JSON (``force`` passed on):
    the ``webhook_verifier_token`` field, ``""`` when it is missing or empty.

    Raises:
        ConfigurationError: the field is there but not a string.
    """

    def read(force: bool) -> str:
        value = read_secret(force).get("webhook_verifier_token")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigurationError(
                "the Intuit app secret's webhook_verifier_token is not a string", key="webhook_verifier_token"
            )
        return value.strip()

    return read
