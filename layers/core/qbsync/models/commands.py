"""Messages qbsync sends itself on its work queues (docs/contracts.md, "Queue messages").

``OutboundQueue`` carries two kinds of body:

* an EventBridge event from the platform (``source = "platform"``), delivered by ``PlatformEventsRule`` or
  re-enqueued by qbsync (a released blocked record, a resumed paused record);
* a :class:`SyncCommand`: "sync this record again from the last platform event qbsync holds for it". The
  admin API (manual sync), the retry fan-out (resync an error, a category, all) and resume-after-reconnect
  send it. It is small (ids only), so the event itself never travels twice and always is the newest one.

``RetryQueue`` carries :class:`RetryRequest` bodies (the admin API, schedules) and, through
``ConnectionResumeRule``, "Connection Changed" events of qbsync's own bus (status ``connected``).

Both models are strict (unknown fields rejected, no type coercion: ``force`` is a JSON boolean) and
versioned by ``kind``. A queue body is told apart and
parsed once, at the edge, by :mod:`qbsync.models.messages`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qbsync.errors import BadRequest
from qbsync.vocab import RECORD_ID_PATTERN, ErrorCategory, SyncableType

__all__ = [
    "RETRY_REQUEST_KIND",
    "SYNC_COMMAND_KIND",
    "RetryRequest",
    "SyncCommand",
    "parse_retry_request",
    "parse_sync_command",
]

SYNC_COMMAND_KIND = "qbsync.sync_record.v1"
RETRY_REQUEST_KIND = "qbsync.retry_request.v1"
_ID = RECORD_ID_PATTERN


class SyncCommand(BaseModel):
    """Sync one record again from the platform event stored on its record item (``last_event``).

    ``force`` (manual sync of a Skipped record, PRODUCT.md C.6): settings-based skips (no activity, before
    the sync start date, offline payment, draft) do not apply to this run. Errors and dependencies do.
    ``reason`` says who asked; ``request_id`` ties the command to its API call or retry request (logs,
    fan-out idempotency); ``requested_by`` is the admin user id (never a name or an email).
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)

    kind: Literal["qbsync.sync_record.v1"] = "qbsync.sync_record.v1"
    firm_id: str = Field(pattern=_ID)
    entity_type: SyncableType
    platform_id: str = Field(pattern=_ID)
    reason: Literal[
        "manual_sync", "resync_error", "retry_category", "retry_all", "resume", "scheduled", "replay"
    ]
    force: bool = False
    request_id: str = Field(pattern=_ID)
    requested_by: str | None = Field(default=None, max_length=128)
    correlation_id: str | None = Field(default=None, max_length=128)


class RetryRequest(BaseModel):
    """A resync request for the retry fan-out (``RetryQueue``): one error, a category, or all; or a replay
    (PRODUCT.md J.5) of one record (``record``: ``entity_type`` + ``platform_id``) or of the records of the
    realm ``realm_id`` whose timeline has a run that started in ``[window_from, window_to)`` (``window``,
    epoch seconds).

    ``request_id`` makes the fan-out idempotent: a redelivered or repeated request with the same id never
    enqueues a record twice.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)

    kind: Literal["qbsync.retry_request.v1"] = "qbsync.retry_request.v1"
    firm_id: str = Field(pattern=_ID)
    request_id: str = Field(pattern=_ID)
    scope: Literal["error", "category", "all", "record", "window"]
    error_id: str | None = Field(default=None, max_length=200)
    category: ErrorCategory | None = None
    entity_type: SyncableType | None = None
    platform_id: str | None = Field(default=None, pattern=_ID)
    realm_id: str | None = Field(default=None, pattern=_ID)
    window_from: float | None = None
    window_to: float | None = None
    requested_by: str | None = Field(default=None, max_length=128)
    requested_at: float
    correlation_id: str | None = Field(default=None, max_length=128)

    def model_post_init(self, context: Any, /) -> None:
        if self.scope == "error" and not self.error_id:
            raise ValueError("scope 'error' needs error_id")
        if self.scope == "category" and not self.category:
            raise ValueError("scope 'category' needs category")
        if self.scope == "record" and not (self.entity_type and self.platform_id):
            raise ValueError("scope 'record' needs entity_type and platform_id")
        if self.scope == "window" and not (
            self.realm_id
            and self.window_from is not None
            and self.window_to is not None
            and self.window_from < self.window_to
        ):
            raise ValueError("scope 'window' needs realm_id and window_from < window_to")


def _parse(model: type[BaseModel], body: Any) -> Any:
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            raise BadRequest(f"{model.__name__}: the message body is not JSON") from None
    try:
        return model.model_validate(body)
    except (ValidationError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
        else:
            where = str(exc)
        raise BadRequest(f"{model.__name__}: {where}") from None


def parse_sync_command(body: Any) -> SyncCommand:
    """Validate a SyncCommand body (dict or JSON text). Raises BadRequest naming fields, never values."""
    result: SyncCommand = _parse(SyncCommand, body)
    return result


def parse_retry_request(body: Any) -> RetryRequest:
    """Validate a RetryRequest body (dict or JSON text). Raises BadRequest naming fields, never values."""
    result: RetryRequest = _parse(RetryRequest, body)
    return result
