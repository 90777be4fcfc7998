"""Admin API: the error center (PRODUCT.md E). Lists, banner counts, one error, skip, resync, retry.

* ``GET /errors`` ``?category&status&entity_type&cursor&limit`` (any role): one page, newest first.
* ``GET /errors/counts`` (any role): open errors per category and in total (the banner).
* ``GET /errors/{error_id}`` (any role): the error with its history and the record's deep link.
* ``POST /errors/{error_id}/skip`` (owner, admin): stop retrying and notifying about it (E.3).
* ``POST /errors/{error_id}/resync`` (owner, admin): resync its record (also a skipped one) → 202.
* ``POST /errors/retry`` ``{"scope": "category"|"all", "category"?}`` (owner, admin): resync every OPEN
  error of a category / of the firm → 202; once per 3 minutes per firm for ``all`` and per category for
  ``category``, else 429 + Retry-After.

Resyncs are queued (``RetryQueue``) and fanned out by ``functions/retry_fanout``
(:mod:`qbsync.errorcenter.retry`); the 202 answer carries the ``request_id`` every resulting sync command
repeats. The firm is always the caller's: another firm's error id answers 404.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from qbsync import wiring
from qbsync.api.common import ErrorIdPath, caller_of, error_responses
from qbsync.errorcenter.retry import RetryAccepted
from qbsync.errors import BadRequest
from qbsync.observability import metrics
from qbsync.repositories.error_log import ErrorEntry
from qbsync.vocab import RECORD_ID_PATTERN, ErrorCategory, SyncableType

__all__ = [
    "ErrorCounts",
    "ErrorDetailView",
    "ErrorPage",
    "ErrorSummary",
    "HistoryEvent",
    "ReplayBody",
    "RetryAcceptedView",
    "RetryBody",
    "router",
]

router = Router()

Category = ErrorCategory
Status = Literal["open", "resolved", "skipped"]
ErrorId = ErrorIdPath
_TAGS = ["errors"]


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class HistoryEvent(BaseModel):
    """One change of an error: ``created``, ``code_changed``, ``skipped``, ``resolved``, ``resync requested``,
    and the fixes of the error actions (``customer mapped``, ...)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    at: datetime
    action: str
    by: str | None = Field(None, description="admin user id (absent for the sync itself)")
    code: str | None = Field(None, description="the reason code at that moment (created, code_changed)")
    detail: str | None = Field(None, description="ids only, e.g. the resync request id")


class ErrorSummary(BaseModel):
    """An error as lists show it."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    error_id: str
    category: str = Field(
        description="Accounts, Invoices, Payments, Refunds, Expenses, Services, Contacts, ..."
    )
    status: Status
    entity_type: str = Field(description="the platform record type, e.g. invoice, client_account")
    platform_id: str = Field(description="the platform record id")
    code: str = Field(description="stable reason code, e.g. duplicate_document_number")
    title: str
    qbo_code: str | None = Field(None, description="QuickBooks error code, when QuickBooks refused")
    message: str = Field(description="the error message (QuickBooks' message, without client data)")
    attempts: int
    first_seen: datetime
    last_seen: datetime

    @classmethod
    def of(cls, entry: ErrorEntry) -> "ErrorSummary":
        return cls(**_summary_fields(entry))


def _summary_fields(entry: ErrorEntry) -> dict[str, Any]:
    return {
        "error_id": entry.error_id,
        "category": entry.category,
        "status": entry.status,
        "entity_type": entry.entity_type,
        "platform_id": entry.platform_id,
        "code": entry.code,
        "title": entry.title,
        "qbo_code": entry.qbo_code,
        "message": entry.message,
        "attempts": entry.attempts,
        "first_seen": _when(entry.first_seen),
        "last_seen": _when(entry.last_seen),
    }


class ErrorDetailView(ErrorSummary):
    """One error: what it means, how to fix it, what happened to it."""

    realm_id: str | None = Field(None, description="the QuickBooks company the error happened in")
    explanation: str = Field(description="plain-language explanation")
    fix: str = Field(description="what to do in QuickBooks or in the platform")
    history: list[HistoryEvent]
    record_status: str | None = Field(None, description="the record's sync status now, when known")
    deep_link: str | None = Field(None, description="the record in QuickBooks, when it is synced")


class ErrorPage(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    errors: list[ErrorSummary]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")


class ErrorCounts(BaseModel):
    """The banner: open errors per category (every category, zeros included) and in total."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    total: int
    by_category: dict[str, int]


class RetryBody(BaseModel):
    """What to resync: every open error of one category, or of the firm."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    scope: Literal["category", "all"]
    category: Category | None = Field(None, description="required with scope 'category'")


class ReplayRecord(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    entity_type: SyncableType
    platform_id: str = Field(pattern=RECORD_ID_PATTERN, max_length=128)


class ReplayWindow(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    from_: AwareDatetime = Field(alias="from", description="runs that started at or after this time")
    to: AwareDatetime = Field(description="…and before this time; at most 7 days after `from`")


class ReplayBody(BaseModel):
    """What to replay: exactly one of ``record``, ``category`` or ``window``."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    record: ReplayRecord | None = Field(None, description="one record")
    category: Category | None = Field(None, description="every OPEN error of this error-center category")
    window: ReplayWindow | None = Field(
        None, description="every record whose timeline has a run that started in [from, to)"
    )


class RetryAcceptedView(BaseModel):
    """A queued resync: the fan-out runs in the background; its sync commands carry ``request_id``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    request_id: str
    scope: Literal["error", "category", "all", "record", "window"]
    category: str | None = None
    error_id: str | None = None
    requested_at: datetime


def _accepted_response() -> dict[int, OpenAPIResponse]:
    return {
        202: {
            "description": "Queued: the resync runs in the background",
            "content": {"application/json": {"model": RetryAcceptedView}},
        }
    }


def _correlation_id() -> str | None:
    context = router.current_event.raw_event.get("requestContext") or {}
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return request_id if isinstance(request_id, str) and 0 < len(request_id) <= 128 else None


def _accepted(accepted: RetryAccepted) -> Response[RetryAcceptedView]:
    metrics.add_metric(name=f"ResyncRequested_{accepted.scope}", unit="Count", value=1)
    view = RetryAcceptedView(
        request_id=accepted.request_id,
        scope=accepted.scope,  # type: ignore[arg-type]
        category=accepted.category,
        error_id=accepted.error_id,
        requested_at=_when(accepted.requested_at),
    )
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=view)


@router.get(
    "/errors",
    summary="List errors",
    description="Errors of the caller's firm with one status (default open), optionally of one category "
    "and/or one record type, most recently seen first. Follow `next_cursor` for the next page (a page "
    "filtered by `entity_type` may hold fewer than `limit` errors).",
    tags=_TAGS,
    responses=error_responses(),
)
def list_errors(
    category: Annotated[Category | None, Query(description="one error-center category")] = None,
    status: Annotated[Status, Query(description="open (default), resolved or skipped")] = "open",
    entity_type: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,40}$", description="record type, e.g. invoice")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=2000, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="page size (1-200, default 50)")] = 50,
) -> ErrorPage:
    caller = caller_of(router)
    entries, next_cursor = wiring.error_center().list(
        caller, category=category, status=status, entity_type=entity_type, limit=limit, cursor=cursor
    )
    return ErrorPage(errors=[ErrorSummary.of(e) for e in entries], next_cursor=next_cursor)


@router.post(
    "/sync/replay",
    summary="Replay one record, a category or a time window",
    description="Re-runs records through the sync (PRODUCT.md J.5), queued on the retry fan-out like a "
    "resync: `record` (one record), `category` (every OPEN error of the category: the same request as "
    "`POST /errors/retry` scope category) or `window` (every record of the current "
    "QuickBooks company whose timeline has a run that started in [from, to), at most 7 days, within the "
    "timeline's 30 days). Exactly one of them. Each record runs its latest platform event through the one "
    "exactly-once writer: a failed, skipped or blocked record runs again; a synced one answers "
    "already_synced (nothing is written twice). Each is limited like the error center's retries: once "
    "every 3 minutes per category, per record, and for windows per firm; sooner answers 429 "
    "`too_many_requests` with `Retry-After` (seconds). Owner or admin.",
    tags=_TAGS,
    responses={**_accepted_response(), **error_responses(429, ok=None)},
)
def replay(body: ReplayBody) -> Response[RetryAcceptedView]:
    caller = caller_of(router)
    given = [name for name in ("record", "category", "window") if getattr(body, name) is not None]
    if len(given) != 1:
        raise BadRequest("body: exactly one of record, category, window is required")
    requests = wiring.retry_requests()
    correlation_id = _correlation_id()
    if body.record is not None:
        accepted = requests.replay_record(
            caller, body.record.entity_type, body.record.platform_id, correlation_id=correlation_id
        )
    elif body.category is not None:
        accepted = requests.retry(caller, "category", body.category, correlation_id=correlation_id)
    else:
        assert body.window is not None
        connection = wiring.records_wiring().connections.get(caller.firm_id)
        if connection is None:
            raise BadRequest("window: the firm has no QuickBooks company to replay")
        window = (body.window.from_.timestamp(), body.window.to.timestamp())
        accepted = requests.replay_window(caller, connection.realm_id, window, correlation_id=correlation_id)
    return _accepted(accepted)


@router.get(
    "/errors/counts",
    summary="Open error counts (banner)",
    description="Open errors per category (every category, zeros included) and in total.",
    tags=_TAGS,
    responses=error_responses(),
)
def count_errors() -> ErrorCounts:
    caller = caller_of(router)
    counts = wiring.error_center().counts(caller)
    return ErrorCounts(total=sum(counts.values()), by_category=counts)


@router.post(
    "/errors/retry",
    summary="Resync a category or all errors",
    description="Queues a resync of every OPEN error of one category (`scope: category`) or of the firm "
    "(`scope: all`); skipped errors are left alone. Allowed once every 3 minutes per firm for `all`, and "
    "once every 3 minutes per category: otherwise 429 with Retry-After. Owner or admin.",
    tags=_TAGS,
    responses={**_accepted_response(), **error_responses(429, ok=None)},
)
def retry_errors(body: RetryBody) -> Response[RetryAcceptedView]:
    caller = caller_of(router)
    accepted = wiring.retry_requests().retry(
        caller, body.scope, body.category, correlation_id=_correlation_id()
    )
    return _accepted(accepted)


@router.get(
    "/errors/<error_id>",
    summary="One error",
    description="The error with its explanation, fix, QuickBooks code and message, attempts, first and last "
    "seen, history, and the record's QuickBooks deep link when it is synced.",
    tags=_TAGS,
    responses=error_responses(),
)
def get_error(error_id: ErrorId) -> ErrorDetailView:
    caller = caller_of(router)
    found = wiring.error_center().detail(caller, error_id)
    entry = found.entry
    return ErrorDetailView(
        **_summary_fields(entry),
        realm_id=entry.realm_id or None,
        explanation=entry.explanation,
        fix=entry.fix,
        history=[_history(h) for h in entry.history],
        record_status=found.record_status,
        deep_link=found.deep_link,
    )


def _history(event: dict[str, Any]) -> HistoryEvent:
    return HistoryEvent(
        at=_when(float(event.get("at") or 0)),
        action=str(event.get("action") or ""),
        by=event.get("by"),
        code=event.get("code"),
        detail=event.get("detail"),
    )


@router.post(
    "/errors/<error_id>/skip",
    summary="Skip an error",
    description="Stops retrying and notifying about this error (E.3); a different error of the same record "
    "still notifies. Only open errors can be skipped (409 otherwise). Owner or admin.",
    tags=_TAGS,
    responses=error_responses(409),
)
def skip_error(error_id: ErrorId) -> ErrorSummary:
    caller = caller_of(router)
    entry = wiring.error_center().skip(caller, error_id, correlation_id=_correlation_id())
    metrics.add_metric(name="ErrorSkipped", unit="Count", value=1)
    return ErrorSummary.of(entry)


@router.post(
    "/errors/<error_id>/resync",
    summary="Resync one error",
    description="Queues a resync of the error's record (also of a skipped error); the history notes "
    '"resync requested". 409 when the error is already resolved. Owner or admin.',
    tags=_TAGS,
    responses={**_accepted_response(), **error_responses(409, ok=None)},
)
def resync_error(error_id: ErrorId) -> Response[RetryAcceptedView]:
    caller = caller_of(router)
    accepted = wiring.retry_requests().resync_error(caller, error_id, correlation_id=_correlation_id())
    return _accepted(accepted)
