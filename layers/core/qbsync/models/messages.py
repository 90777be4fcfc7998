"""The bodies of qbsync's work queues, each parsed once, at the edge, into a typed value.

``OutboundQueue`` (``functions/entity_sync``) → :data:`OutboundMessage`:

* a :class:`~qbsync.models.commands.SyncCommand` - a JSON object whose ``kind`` is
  :data:`~qbsync.models.commands.SYNC_COMMAND_KIND` (manual sync, resync, resume);
* otherwise a platform event - the whole EventBridge event ``PlatformEventsRule`` delivered (or one qbsync
  re-enqueued), parsed by :func:`~qbsync.models.platform_events.parse_platform_event` into the
  :class:`~qbsync.models.platform_events.PlatformEvent` of its detail type.

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
    "CONNECTION_CHANGED",
    "ConnectionChangedMessage",
    "OutboundMessage",
    "RetryMessage",
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
