"""The bodies of qbsync's work queues, each parsed once, at the edge, into a typed value.

``OutboundQueue`` (``functions/entity_sync``) → :data:`OutboundMessage`:

* a :class:`~qbsync.models.commands.SyncCommand` - a JSON object whose ``kind`` is
  :data:`~qbsync.models.commands.SYNC_COMMAND_KIND` (manual sync, resync, resume);
* otherwise a platform event - the whole EventBridge event ``PlatformEventsRule`` delivered (or one qbsync
  re-enqueued), parsed by :func:`~qbsync.models.platform_events.parse_platform_event` into the
  :class:`~qbsync.models.platform_events.PlatformEvent` of its detail type.

``InboundQueue`` (the inbound worker) → :class:`InboundNotice`: the changes one verified Intuit webhook
POST announced for one realm (the intake splits a POST per realm), or a CDC request. Built by the webhook
intake with :meth:`InboundNotice.body`, read back with :func:`parse_inbound_message`. The intake has
already checked the signature and that some firm holds the realm; the worker proves the realm again
through the connection before it reads anything.

``RetryQueue`` (``functions/retry_fanout``) → :data:`RetryMessage`:

* a :class:`~qbsync.models.commands.RetryRequest` - ``kind`` is
  :data:`~qbsync.models.commands.RETRY_REQUEST_KIND` (admin API resync / retry category / retry all, and
  the fan-out's own continuations);
* a :class:`ConnectionChangedMessage` - a "Connection Changed" event of qbsync's bus (``source = "qbsync"``)
  that ``ConnectionResumeRule`` delivers; only its ``detail.firm_id`` (required) and ``detail.status`` are
  read.

A body that cannot be understood (not JSON, not a JSON object, neither kind, or a field that fails its
schema) raises :class:`~qbsync.errors.MalformedMessage` (a BadRequest): ``what`` says what it was read as,
the message names field paths and never values (bodies hold client personal data). Nothing downstream
decodes a queue body again: the services take these values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from qbsync.errors import BadRequest, MalformedMessage
from qbsync.models.commands import (
    RETRY_REQUEST_KIND,
    SYNC_COMMAND_KIND,
    RetryRequest,
    SyncCommand,
    parse_retry_request,
    parse_sync_command,
)
from qbsync.models.platform_events import PlatformEvent, parse_platform_event

__all__ = [
    "CATCH_UP_KIND",
    "CATCH_UP_REASONS",
    "CONNECTION_CHANGED",
    "INBOUND_NOTICE_KIND",
    "MAX_CHANGES_PER_NOTICE",
    "QBO_OPERATIONS",
    "CatchUpRequest",
    "ConnectionChangedMessage",
    "EntityChange",
    "InboundNotice",
    "OutboundMessage",
    "RetryMessage",
    "parse_catch_up_message",
    "parse_inbound_message",
    "parse_outbound_message",
    "parse_retry_message",
]

#: the detail type of qbsync's own connection events (``qbsync.models.qbsync_events.ConnectionChanged``)
CONNECTION_CHANGED = "Connection Changed"
_QBSYNC_SOURCE = "qbsync"


@dataclass(frozen=True, slots=True)
class ConnectionChangedMessage:
    """A "Connection Changed" event on ``RetryQueue``: the firm's connection is ``status`` now.

    ``status`` is None when the event carries no status text. Only ``connected`` resumes paused work.
    """

    firm_id: str
    status: str | None = None

    @property
    def connected(self) -> bool:
        return self.status == "connected"


#: ``kind`` of an InboundQueue body
INBOUND_NOTICE_KIND = "qbo_changes"
#: the operations of Intuit's classic webhook format; CloudEvents verbs are mapped onto these at intake
QBO_OPERATIONS = ("Create", "Update", "Delete", "Merge", "Void", "Emailed")
#: changes per InboundQueue message (a message stays far below SQS's 256 KiB: ~150 bytes a change)
MAX_CHANGES_PER_NOTICE = 500
_QBO_ENTITY_MAX = 64
_QBO_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class EntityChange:
    """One changed QBO object a webhook named: ``entity`` (``Payment``), its ``Id``, the operation, when.

    ``last_updated`` is the notification's timestamp text (ISO 8601), kept as sent; ``deleted_id`` is the
    merged-away id of a classic ``Merge``. Nothing here is trusted beyond its shape: the worker reads the
    object from QuickBooks before acting on it.
    """

    entity: str
    qbo_id: str
    operation: str
    last_updated: str | None = None
    deleted_id: str | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entity": self.entity, "id": self.qbo_id, "operation": self.operation}
        if self.last_updated is not None:
            out["last_updated"] = self.last_updated
        if self.deleted_id is not None:
            out["deleted_id"] = self.deleted_id
        return out


@dataclass(frozen=True, slots=True)
class InboundNotice:
    """An InboundQueue body: the changes of one realm from one verified webhook POST.

    ``source`` is ``webhook_classic`` or ``webhook_cloudevents``; ``received_at`` is when the intake
    accepted the POST (ISO 8601 UTC); ``notification_id`` identifies the POST (a hash of its bytes, so an
    Intuit retry of the same bytes carries the same id) for logs and dedupe.
    """

    realm_id: str
    changes: tuple[EntityChange, ...]
    source: str
    received_at: str
    notification_id: str

    def body(self) -> str:
        """The SQS message body (JSON)."""
        return json.dumps(
            {
                "kind": INBOUND_NOTICE_KIND,
                "realm_id": self.realm_id,
                "source": self.source,
                "received_at": self.received_at,
                "notification_id": self.notification_id,
                "changes": [c.wire() for c in self.changes],
            },
            separators=(",", ":"),
        )


#: an ``OutboundQueue`` body
OutboundMessage: TypeAlias = PlatformEvent | SyncCommand
#: a ``RetryQueue`` body
RetryMessage: TypeAlias = RetryRequest | ConnectionChangedMessage


def parse_outbound_message(body: Any) -> OutboundMessage:
    """An ``OutboundQueue`` body (JSON text, or the decoded object): a SyncCommand or a platform event.

    Raises:
        MalformedMessage: ``what`` ``sync command`` for a body of the command kind that fails its schema,
            ``platform event`` for everything else that cannot be read (not JSON, not an object, not a
            valid platform event). Carries the context of the underlying parse (``detail_type``,
            ``event_id``, ``firm_id`` when known).
    """
    decoded = _decoded(body, "the SQS message body is not JSON", what="platform event")
    if not isinstance(decoded, dict):
        raise MalformedMessage("the SQS message body is not a JSON object", what="platform event")
    if decoded.get("kind") == SYNC_COMMAND_KIND:
        try:
            return parse_sync_command(decoded)
        except BadRequest as err:
            raise _malformed(err, "sync command") from None
    try:
        return parse_platform_event(decoded)
    except BadRequest as err:
        raise _malformed(err, "platform event") from None


def parse_retry_message(body: Any) -> RetryMessage:
    """A ``RetryQueue`` body (JSON text, or the decoded object): a RetryRequest or a Connection Changed event.

    Raises:
        MalformedMessage: (``what`` ``retry message``) not JSON, not an object, neither kind, a retry
            request that fails its schema, or a Connection Changed event without an object ``detail`` or
            a ``detail.firm_id``.
    """
    decoded = _decoded(body, "the RetryQueue message body is not JSON", what="retry message")
    if not isinstance(decoded, Mapping):
        raise MalformedMessage("the RetryQueue message is not a JSON object", what="retry message")
    if decoded.get("kind") == RETRY_REQUEST_KIND:
        try:
            return parse_retry_request(dict(decoded))
        except BadRequest as err:
            raise _malformed(err, "retry message") from None
    if decoded.get("source") == _QBSYNC_SOURCE and decoded.get("detail-type") == CONNECTION_CHANGED:
        detail = decoded.get("detail")
        if not isinstance(detail, Mapping):
            raise MalformedMessage("Connection Changed: detail is not an object", what="retry message")
        firm_id = detail.get("firm_id")
        if not isinstance(firm_id, str) or not firm_id:
            raise MalformedMessage("Connection Changed: detail.firm_id is missing", what="retry message")
        status = detail.get("status")
        return ConnectionChangedMessage(firm_id, status if isinstance(status, str) else None)
    raise MalformedMessage(
        "the RetryQueue message is neither a retry request nor a Connection Changed event",
        what="retry message",
    )


def parse_inbound_message(body: Any) -> InboundNotice:
    """An ``InboundQueue`` body (JSON text, or the decoded object) as an :class:`InboundNotice`.

    Raises:
        MalformedMessage: (``what`` ``inbound notice``) not JSON, not an object, another ``kind``, or a field
            of the wrong type or size (named by path, never by value).
    """
    what = "inbound notice"
    decoded = _decoded(body, "the InboundQueue message body is not JSON", what=what)
    if not isinstance(decoded, Mapping):
        raise MalformedMessage("the InboundQueue message is not a JSON object", what=what)
    if decoded.get("kind") != INBOUND_NOTICE_KIND:
        raise MalformedMessage(f"kind is not {INBOUND_NOTICE_KIND!r}", what=what)
    realm_id = _text(decoded, "realm_id", what, limit=_QBO_ID_MAX)
    raw_changes = decoded.get("changes")
    if not isinstance(raw_changes, list) or not raw_changes or len(raw_changes) > MAX_CHANGES_PER_NOTICE:
        raise MalformedMessage(
            f"changes must be a list of 1 to {MAX_CHANGES_PER_NOTICE} objects", what=what, realm_id=realm_id
        )
    changes = tuple(_change(item, f"changes[{i}]", what) for i, item in enumerate(raw_changes))
    return InboundNotice(
        realm_id=realm_id,
        changes=changes,
        source=_text(decoded, "source", what, limit=64),
        received_at=_text(decoded, "received_at", what, limit=64),
        notification_id=_text(decoded, "notification_id", what, limit=128),
    )


def _change(item: Any, path: str, what: str) -> EntityChange:
    if not isinstance(item, Mapping):
        raise MalformedMessage(f"{path} is not an object", what=what)
    operation = _text(item, "operation", what, limit=16, path=path)
    if operation not in QBO_OPERATIONS:
        raise MalformedMessage(f"{path}.operation is not one of {', '.join(QBO_OPERATIONS)}", what=what)
    return EntityChange(
        entity=_text(item, "entity", what, limit=_QBO_ENTITY_MAX, path=path),
        qbo_id=_text(item, "id", what, limit=_QBO_ID_MAX, path=path),
        operation=operation,
        last_updated=_text(item, "last_updated", what, limit=64, path=path, optional=True),
        deleted_id=_text(item, "deleted_id", what, limit=_QBO_ID_MAX, path=path, optional=True),
    )


def _text(
    obj: Mapping[str, Any], name: str, what: str, *, limit: int, path: str = "", optional: bool = False
) -> Any:
    value = obj.get(name)
    where = f"{path}.{name}" if path else name
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise MalformedMessage(f"{where} must be a non-empty string of at most {limit} characters", what=what)
    return value


def _decoded(body: Any, not_json: str, *, what: str) -> Any:
    if body is None or isinstance(body, str | bytes | bytearray):
        try:
            return json.loads(body)  # type: ignore[arg-type]  # None: TypeError, refused below
        except (TypeError, ValueError):
            raise MalformedMessage(not_json, what=what) from None
    return body


def _malformed(err: BadRequest, what: str) -> MalformedMessage:
    """The parse error ``err`` as the one typed error of a malformed message (same message and context)."""
    return MalformedMessage(
        err.message,
        what=what,
        firm_id=err.firm_id,
        realm_id=err.realm_id,
        entity=err.entity,
        entity_id=err.entity_id,
        qbo_code=err.qbo_code,
        qbo_detail=err.qbo_detail,
        intuit_tid=err.intuit_tid,
        **err.extra,
    )


# ---------------------------------------------------------------------------------------------- CatchUpQueue
#: ``kind`` of a ``CatchUpQueue`` body
CATCH_UP_KIND = "qbsync.cdc_catch_up.v1"
CATCH_UP_REASONS = ("scheduled", "on_demand", "continued")
#: the record statuses a continued sweep may resume in (qbsync.reconcile.sweep.SWEPT_STATUSES)
SWEEP_STATUSES = ("blocked", "skipped", "not_synced", "syncing")
_SWEEP_KEYS = ("pk", "sk", "gsi2pk", "gsi2sk")
_FIRM_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")  # vocab.RECORD_ID_PATTERN


@dataclass(frozen=True, slots=True)
class CatchUpRequest:
    """A ``CatchUpQueue`` body (``functions/cdc_catchup``): run the resync of one firm
    (:class:`qbsync.reconcile.resync.Resync`: the CDC catch-up, the record sweep, the daily pre-flight check).
    ``reason``: ``scheduled`` (the schedule's fan-out: every step), ``on_demand`` (``POST /sync/catch-up``:
    the CDC catch-up only) or ``continued`` (a record sweep cut short goes on from ``sweep_status`` /
    ``sweep_after``: the gsi2 partition and the last key read, keys of the firm's own items only);
    ``request_id`` ties the run to its request (logs); ``requested_by``: the admin user id of an on-demand
    run."""

    firm_id: str
    reason: str
    request_id: str
    requested_by: str | None = None
    sweep_status: str | None = None
    sweep_after: Mapping[str, str] | None = None

    def body(self) -> str:
        out: dict[str, Any] = {
            "kind": CATCH_UP_KIND,
            "firm_id": self.firm_id,
            "reason": self.reason,
            "request_id": self.request_id,
        }
        if self.requested_by is not None:
            out["requested_by"] = self.requested_by
        if self.sweep_status is not None:
            out["sweep_status"] = self.sweep_status
        if self.sweep_after is not None:
            out["sweep_after"] = dict(self.sweep_after)
        return json.dumps(out, separators=(",", ":"))


def parse_catch_up_message(body: Any) -> CatchUpRequest:
    """A ``CatchUpQueue`` body (JSON text or decoded object). Raises MalformedMessage (``what``
    ``catch-up request``) naming the field, never its value."""
    what = "catch-up request"
    decoded = _decoded(body, "the CatchUpQueue message body is not JSON", what=what)
    if not isinstance(decoded, Mapping):
        raise MalformedMessage("the CatchUpQueue message is not a JSON object", what=what)
    if decoded.get("kind") != CATCH_UP_KIND:
        raise MalformedMessage(f"kind is not {CATCH_UP_KIND!r}", what=what)
    known = {"kind", "firm_id", "reason", "request_id", "requested_by", "sweep_status", "sweep_after"}
    unknown = sorted(set(decoded) - known)
    if unknown:
        raise MalformedMessage(f"unknown fields: {', '.join(unknown)[:200]}", what=what)
    firm_id = _text(decoded, "firm_id", what, limit=128)
    if not _FIRM_ID_RE.match(firm_id):
        raise MalformedMessage("firm_id is not an id", what=what)
    reason = _text(decoded, "reason", what, limit=16)
    if reason not in CATCH_UP_REASONS:
        raise MalformedMessage(f"reason is not one of {', '.join(CATCH_UP_REASONS)}", what=what)
    sweep_status, sweep_after = _sweep_cursor(decoded, firm_id, what)
    if (reason == "continued") != (sweep_status is not None):
        raise MalformedMessage("sweep_status is given exactly when reason is continued", what=what)
    return CatchUpRequest(
        firm_id=firm_id,
        reason=reason,
        request_id=_text(decoded, "request_id", what, limit=128),
        requested_by=_text(decoded, "requested_by", what, limit=128, optional=True),
        sweep_status=sweep_status,
        sweep_after=sweep_after,
    )


def _sweep_cursor(
    decoded: Mapping[str, Any], firm_id: str, what: str
) -> tuple[str | None, dict[str, str] | None]:
    """``sweep_status`` / ``sweep_after`` of a continued sweep: a known status, and a key of the firm's own
    items (``pk`` and ``gsi2pk`` start with ``FIRM#{firm_id}#``: a message never points at another firm)."""
    status = _text(decoded, "sweep_status", what, limit=16, optional=True)
    if status is not None and status not in SWEEP_STATUSES:
        raise MalformedMessage(f"sweep_status is not one of {', '.join(SWEEP_STATUSES)}", what=what)
    after = decoded.get("sweep_after")
    if after is None:
        return status, None
    if status is None:
        raise MalformedMessage("sweep_after needs sweep_status", what=what)
    if (
        not isinstance(after, Mapping)
        or set(after) != set(_SWEEP_KEYS)
        or not all(isinstance(v, str) and 0 < len(v) <= 1024 for v in after.values())
    ):
        raise MalformedMessage(f"sweep_after is not a key of {', '.join(_SWEEP_KEYS)} strings", what=what)
    own = f"FIRM#{firm_id}#"
    if not (after["pk"].startswith(own) and after["gsi2pk"].startswith(own)):
        raise MalformedMessage("sweep_after is not a key of the firm's items", what=what)
    return status, {k: after[k] for k in _SWEEP_KEYS}
