"""Admin API: records changed in QuickBooks, and the CDC catch-up on demand (issue 14 items 4 and 5).

* ``POST /errors/{error_id}/accept-quickbooks`` - keep QuickBooks' change of a client account edited there
  (its email, phone numbers, billing address go to the platform as "Contact Updated").
* ``POST /errors/{error_id}/unlink`` - detach the record of an ``edited_in_quickbooks`` /
  ``deleted_in_quickbooks`` error from its QuickBooks object and stop syncing it.
* ``POST /errors/{error_id}/relink`` ``{"qbo_id"}`` - link the record of a ``missing_in_quickbooks`` /
  ``deleted_in_quickbooks`` error to an existing QuickBooks object.
* ``POST /sync/catch-up`` - queue a CDC catch-up of the caller's firm now → 202.
* ``GET /drift`` - the newest drift report of the caller's firm (J.3); ``POST /drift/run`` - run it now.

The third action of a drift error, "push the platform's version again", is the error center's Resync
(``POST /errors/{error_id}/resync``). No request bodies but Relink's. Thin: each route calls one method of
:class:`qbsync.errorcenter.drift_actions.DriftActions`, :class:`qbsync.inbound.catchup.CatchUpRequests` or
:class:`qbsync.reconcile.report.DriftReports`.
Owner or admin; the firm is always the caller's (another firm's error answers 404).
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field

from qbsync import wiring
from qbsync.api.common import ErrorIdPath, caller_of, error_responses
from qbsync.errorcenter.drift_actions import DriftActionResult
from qbsync.errors import BadRequest, NotFound
from qbsync.observability import metrics
from qbsync.reconcile.report import DriftReport, finding_item

__all__ = ["CatchUpView", "DriftActionView", "DriftReportView", "RelinkBody", "router"]

router = Router()
_ERROR_TAGS = ["errors"]
_RECORD_TAGS = ["records"]


class DriftActionView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    error_id: str
    entity_type: str
    platform_id: str
    outcome: Literal["accepted", "unlinked", "relinked"]
    record_status: str = Field(description="synced (accepted, relinked) or skipped (unlinked)")
    changed_fields: list[str] = Field(
        default_factory=list, description="accepted: the contact fields sent to the platform"
    )
    released: int = Field(0, description="unlinked: records waiting on it that run again")


class CatchUpView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    request_id: str = Field(description="ties the queued run to this request (logs)")
    status: Literal["queued"]


class RelinkBody(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    qbo_id: str = Field(
        pattern=r"^[0-9]{1,20}$",
        description="the Id of the QuickBooks object (of the record's entity, in the connected company) that "
        "is the same record",
    )


DriftKind = Literal[
    "missing_in_quickbooks",
    "deleted_in_quickbooks",
    "amount_mismatch",
    "edited_in_quickbooks",
    "paid_status_mismatch",
    "balance_mismatch",
]


class DifferenceView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    field: str
    was: str | None = Field(None, description="the platform's value (what qbsync wrote); money to the cent")
    now: str | None = Field(None, description="QuickBooks' value; both null for client data (named only)")


class FindingView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    kind: DriftKind
    entity_type: str
    platform_id: str
    qbo_entity: str | None = None
    qbo_id: str | None = None
    differences: list[DifferenceView] = Field(default_factory=list)
    explained_by: list[str] = Field(
        default_factory=list,
        description="derived findings: the records (entity_type#platform_id) whose own findings explain it",
    )
    error_id: str | None = Field(None, description="record kinds: the error-center entry the actions act on")
    new: bool = Field(description="not known before this report")
    actions: list[Literal["resync", "relink", "accept", "unlink"]] = Field(
        default_factory=list,
        description="resync: POST /errors/{error_id}/resync; relink: POST /errors/{error_id}/relink; accept: "
        "POST /errors/{error_id}/accept-quickbooks; unlink: POST /errors/{error_id}/unlink",
    )


class DriftReportView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    report_id: str
    realm_id: str
    ran_at: str = Field(description="UTC, ISO 8601")
    records_compared: int
    qbo_queries: int = Field(description="QuickBooks queries the report took (batches of up to 100 ids)")
    counts: dict[str, int] = Field(description="findings per kind")
    new_count: int
    finding_count: int = Field(description="every finding of the report (the list is one page of them)")
    findings: list[FindingView] = Field(description="by entity type and platform id")
    next_cursor: str | None = Field(
        None, description="more findings: GET /drift?cursor=... (null on the last page)"
    )


_PAGE = 200


def _report_view(
    header: dict[str, Any], findings: list[dict[str, Any]], *, limit: int = _PAGE, offset: int = 0
) -> DriftReportView:
    ordered = sorted(findings, key=lambda f: (str(f["entity_type"]), str(f["platform_id"])))
    page = ordered[offset : offset + limit]
    more = offset + limit < len(ordered)
    return DriftReportView(
        report_id=str(header["report_id"]),
        realm_id=str(header["realm_id"]),
        ran_at=datetime.fromtimestamp(float(header["ran_at"]), UTC).isoformat().replace("+00:00", "Z"),
        records_compared=int(header.get("records_compared", 0)),
        qbo_queries=int(header.get("qbo_queries", 0)),
        counts={str(k): int(v) for k, v in (header.get("counts") or {}).items()},
        new_count=int(header.get("new_count", 0)),
        finding_count=len(ordered),
        findings=[FindingView.model_validate(_shown(f)) for f in page],
        next_cursor=f"{header['report_id']}.{offset + limit}" if more else None,
    )


def _shown(finding: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in finding.items() if k != "fingerprint"}


def _offset(cursor: str | None, report_id: str) -> int:
    """The position a ``next_cursor`` names, in the report it was made for (400 otherwise)."""
    if cursor is None:
        return 0
    rid, _, position = cursor.partition(".")
    if rid != report_id:
        raise BadRequest("query.cursor: the cursor belongs to an older report; start again without it")
    return int(position)


def _run_view(report: DriftReport) -> DriftReportView:
    header = {
        "report_id": report.report_id,
        "realm_id": report.realm_id,
        "ran_at": report.ran_at,
        "records_compared": report.records_compared,
        "qbo_queries": report.qbo_queries,
        "counts": report.counts(),
        "new_count": len(report.new),
    }
    return _report_view(header, [finding_item(f) for f in report.findings])


def _view(result: DriftActionResult) -> DriftActionView:
    return DriftActionView(
        error_id=result.error_id,
        entity_type=result.entity_type,
        platform_id=result.platform_id,
        outcome=result.outcome,  # type: ignore[arg-type]
        record_status=result.record_status,
        changed_fields=list(result.changed_fields),
        released=result.released,
    )


@router.post(
    "/errors/<error_id>/accept-quickbooks",
    summary="Accept QuickBooks' change of a client account",
    description="For an open `edited_in_quickbooks` error of a client account whose changed fields are all "
    'contact fields (email, phone numbers, billing address): publishes "Contact Updated" with QuickBooks\' '
    "values for the account's first contact, marks the account Synced again and resolves the error "
    "(`accepted_quickbooks`). 409 when other fields changed too (the message names them), for any other "
    "error, or when the account has no contact. No request body. Owner or admin.",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 429, 503),
)
def accept_quickbooks(error_id: ErrorIdPath) -> DriftActionView:
    caller = caller_of(router)
    result = wiring.drift_actions().accept_quickbooks(caller, error_id)
    metrics.add_metric(name="QuickBooksChangeAccepted", unit="Count", value=1)
    return _view(result)


@router.post(
    "/errors/<error_id>/unlink",
    summary="Unlink a record changed in QuickBooks",
    description="For an open `edited_in_quickbooks` or `deleted_in_quickbooks` error: the record is detached "
    "from its QuickBooks object (QuickBooks keeps its version) and Skipped (excluded by the firm: later "
    "platform versions stay skipped until a manual sync, which creates a new QuickBooks entry); the error "
    "resolves (`not_synced`) and records waiting on it run again. 409 for any other error or while the "
    "record is being synced. No request body. Owner or admin.",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 503),
)
def unlink(error_id: ErrorIdPath) -> DriftActionView:
    caller = caller_of(router)
    result = wiring.drift_actions().unlink(caller, error_id)
    metrics.add_metric(name="RecordUnlinked", unit="Count", value=1)
    return _view(result)


@router.post(
    "/errors/<error_id>/relink",
    summary="Relink a record missing in QuickBooks",
    description="For an open `missing_in_quickbooks` or `deleted_in_quickbooks` error: links the record to "
    "the QuickBooks object `qbo_id` that is the same record (e.g. re-entered by the accountant): it must "
    "exist in the connected company as the record's entity (Invoice for an invoice, Payment or CreditMemo "
    "for a payment...) and no other record may be linked to it (400 naming `body.qbo_id` otherwise). The "
    "record is Synced at that object, the error resolves (`mapped_existing`); the next drift report "
    "compares it. 409 for any other error or while the record is being synced. Owner or admin.",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 429, 503),
)
def relink(error_id: ErrorIdPath, body: Annotated[RelinkBody, Body()]) -> DriftActionView:
    caller = caller_of(router)
    result = wiring.drift_actions().relink(caller, error_id, body.qbo_id)
    metrics.add_metric(name="RecordRelinked", unit="Count", value=1)
    return _view(result)


@router.get(
    "/drift",
    summary="The newest drift report",
    description="The newest drift report of the caller's firm (kept 90 days): every synced record whose two "
    "sides disagree - missing in QuickBooks, edited there, amount or paid-status mismatch, per-client "
    "balance difference - each with what differs (was/now, to the cent) and its one-click fixes (the "
    "error-center actions of its `error_id`), `limit` findings a page (pass `next_cursor` back as "
    "`cursor`). 404 when no report ran yet; 409 when QuickBooks is not connected. Owner or admin.",
    tags=_RECORD_TAGS,
    responses=error_responses(404, 409, 503),
)
def latest_drift(
    cursor: Annotated[
        str | None,
        Query(description="next_cursor of the previous page", pattern=r"^[0-9TZ]{1,40}\.[0-9]{1,7}$"),
    ] = None,
    limit: Annotated[int, Query(description="findings per page", ge=1, le=500)] = _PAGE,
) -> DriftReportView:
    caller = caller_of(router)
    stored = wiring.drift_reports().latest_for(caller)
    if stored is None:
        raise NotFound("no drift report yet: POST /drift/run runs one")
    header, findings = stored
    return _report_view(header, findings, limit=limit, offset=_offset(cursor, str(header["report_id"])))


@router.post(
    "/drift/run",
    summary="Run the drift report now",
    description="Compares every synced record of the caller's firm with QuickBooks now (batch queries: one "
    "per 100 records and entity, paced by the company's request budget), raises an error-center entry for "
    "each record newly found missing, edited or with another amount, stores the report and answers it "
    "(its first 200 findings; the rest: GET /drift with `next_cursor`); "
    '"Drift Detected" is published when something new was found. Running it again on unchanged data finds '
    "the same findings, none new. No request body. 409 when QuickBooks is not connected. Owner or admin.",
    tags=_RECORD_TAGS,
    responses=error_responses(409, 429, 503),
)
def run_drift() -> DriftReportView:
    caller = caller_of(router)
    report = wiring.drift_reports().run_for(caller)
    metrics.add_metric(name="DriftReportRun", unit="Count", value=1)
    return _run_view(report)


@router.post(
    "/sync/catch-up",
    summary="Catch up with QuickBooks now",
    description="Queues a CDC catch-up of the caller's firm: every change made in QuickBooks since the "
    "stored watermark is read (a full comparison of the synced records when the watermark is missing or "
    "older than 30 days) and handled like a webhook (records edited or deleted there get their error). "
    "The same run the hourly schedule queues. No request body. 409 when QuickBooks is not connected. "
    "Owner or admin.",
    tags=_RECORD_TAGS,
    responses={
        202: {
            "description": "Queued: the catch-up runs in the background",
            "content": {"application/json": {"model": CatchUpView}},
        },
        **error_responses(409, 503, ok=None),
    },
)
def catch_up() -> Response[CatchUpView]:
    caller = caller_of(router)
    request = wiring.catch_up_requests().request(caller, uuid.uuid4().hex)
    metrics.add_metric(name="CatchUpRequested", unit="Count", value=1)
    view = CatchUpView(request_id=request.request_id, status="queued")
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=view)
