"""Admin API: sync status of the firm's records (PRODUCT.md H "sync status per entity").

``GET /sync/records`` (filters, cursor pages), ``GET /sync/records/{entity_type}/{platform_id}``, its
``/timeline`` (the record's runs, PRODUCT.md J.5: redacted steps, 30 days) and ``GET /sync/summary``.
Records are those of the firm's current QuickBooks company (the connection's realm); a firm that never
connected has none. Any role may read.

Costs (DynamoDB): a status filter reads the gsi2 status partition; no status reads the firm's records by
type; ``client_id`` filters those reads on the stored ``last_event`` (every record of the scope is read,
at most 1000 per call, so a page may hold fewer rows than ``limit`` and still have a ``next_cursor``);
the summary reads every record of the firm once.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

import base64
import binascii
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from qbsync.api.common import PlatformIdPath, caller_of, error_responses
from qbsync.errors import BadRequest, NotFound
from qbsync.models.record_key import RecordKey
from qbsync.repositories.records import RecordError, SyncRecord
from qbsync.vocab import RECORD_ID_PATTERN, RecordType
from qbsync.wiring import RecordsWiring, records_wiring

__all__ = ["RecordList", "RecordRow", "RecordTimeline", "SyncSummary", "router"]

router = Router()

EntityType = RecordType
Status = Literal["not_synced", "syncing", "synced", "failed", "skipped", "blocked"]
_CURSOR_MAX = 2048


class RecordErrorView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    code: str = Field(description="qbsync error code")
    category: str = Field(description="error-center category")
    message: str = Field(description="what went wrong and how to fix it")
    qbo_code: str | None = Field(None, description="QuickBooks fault code, when QuickBooks refused")


class RecordRef(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    entity_type: EntityType
    platform_id: str


class RecordRow(BaseModel):
    """The sync state of one platform record."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    entity_type: EntityType
    platform_id: str
    status: Status
    qbo_entity: str | None = Field(None, description="QuickBooks object type, e.g. Invoice")
    qbo_id: str | None = Field(None, description="QuickBooks object id once synced")
    deep_link: str | None = Field(None, description="link to the object in the QuickBooks web app")
    error: RecordErrorView | None = Field(None, description="why the last attempt failed (status failed)")
    waiting_on: list[RecordRef] = Field(
        default_factory=list,
        description="prerequisites still to sync (status blocked, or skipped behind one that will not sync)",
    )
    skip_reason: str | None = Field(None, description="why the record is not synced (status skipped)")
    note: str | None = Field(
        None,
        description='synced: how the record landed differently from the platform, e.g. "QuickBooks numbered '
        "it 1042: custom transaction numbers are off in the company, so the platform's number INV-7 was not "
        'sent"',
    )
    attempts: int = Field(0, description="attempts since the last success")
    platform_version: int | None = Field(None, description="the platform version last applied in QuickBooks")
    updated_at: datetime | None = None


class RecordList(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    items: list[RecordRow]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null at the end")


class StatusCounts(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    not_synced: int = 0
    syncing: int = 0
    synced: int = 0
    failed: int = 0
    skipped: int = 0
    blocked: int = 0
    total: int = 0


class SyncSummary(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    realm_id: str | None = Field(None, description="the QuickBooks company the counts are for")
    totals: StatusCounts
    by_entity_type: dict[EntityType, StatusCounts]


def _error(error: RecordError) -> dict[str, Any]:
    return {
        "code": error.code,
        "category": error.category,
        "message": error.message,
        "qbo_code": error.qbo_code,
    }


def _row(record: SyncRecord) -> RecordRow:
    error = record.error
    return RecordRow.model_validate(
        {
            "entity_type": record.entity_type,
            "platform_id": record.platform_id,
            "status": record.status,
            "qbo_entity": record.qbo_entity,
            "qbo_id": record.qbo_id,
            "deep_link": record.deep_link,
            "error": None
            if error is None
            else {
                "code": error.code,
                "category": error.category,
                "message": error.message,
                "qbo_code": error.qbo_code,
            },
            "waiting_on": [{"entity_type": t, "platform_id": p} for t, p in record.waiting_on],
            "skip_reason": record.skip_reason,
            "note": record.note,
            "attempts": record.attempts,
            "platform_version": record.platform_version,
            "updated_at": datetime.fromtimestamp(record.updated_at, UTC) if record.updated_at else None,
        }
    )


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadRequest("cursor: not a cursor this API returned") from None
    if not isinstance(key, dict):
        raise BadRequest("cursor: not a cursor this API returned")
    return key


def _realm(w: RecordsWiring, firm_id: str) -> str | None:
    connection = w.connections.get(firm_id)
    return connection.realm_id if connection is not None else None


@router.get(
    "/sync/records",
    summary="List the sync state of the firm's records",
    description="Filters: entity_type, status, client_id (records of one client account: the account itself "
    "and the invoices, payments, refunds and fees whose latest event names it). Pages with cursor/limit; "
    "with a status filter the newest changes come first. Any role.",
    tags=["Sync status"],
    responses=error_responses(),
)
def list_sync_records(
    entity_type: Annotated[EntityType | None, Query(description="only this record type")] = None,
    status: Annotated[Status | None, Query(description="only records in this sync status")] = None,
    client_id: Annotated[
        str | None,
        Query(description="platform id of a client account", pattern=RECORD_ID_PATTERN, max_length=128),
    ] = None,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page", max_length=_CURSOR_MAX)
    ] = None,
    limit: Annotated[int, Query(description="rows per page", ge=1, le=200)] = 50,
) -> RecordList:
    caller = caller_of(router)
    w = records_wiring()
    realm_id = _realm(w, caller.firm_id)
    if realm_id is None:
        return RecordList(items=[])
    start_key = _decode_cursor(cursor) if cursor else None
    try:
        page = w.admin.browse(
            caller.firm_id,
            realm_id,
            entity_type=entity_type,
            status=status,
            client_id=client_id,
            limit=limit,
            start_key=start_key,
        )
    except ValueError:
        # the only caller-made ValueError left after validation: a cursor of another listing
        raise BadRequest("cursor: not a cursor of this listing (same filters required)") from None
    return RecordList(
        items=[_row(r) for r in page.records],
        next_cursor=_encode_cursor(page.next_key) if page.next_key else None,
    )


@router.get(
    "/sync/records/<entity_type>/<platform_id>",
    summary="Get the sync state of one record",
    description="404 when the firm's current QuickBooks company has no sync state for this record. Any role.",
    tags=["Sync status"],
    responses=error_responses(),
)
def get_sync_record(
    entity_type: Annotated[EntityType, Path(description="record type")],
    platform_id: PlatformIdPath,
) -> RecordRow:
    caller = caller_of(router)
    w = records_wiring()
    realm_id = _realm(w, caller.firm_id)
    record = (
        w.records.get(RecordKey(caller.firm_id, realm_id, entity_type, platform_id)) if realm_id else None
    )
    if record is None:
        raise NotFound(f"no sync state for {entity_type} {platform_id}", firm_id=caller.firm_id)
    return _row(record)


class TimelineRun(BaseModel):
    """One run of the record through the sync, its steps in order."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    run_id: str
    started_at: datetime
    finished_at: datetime
    status: str = Field(
        description="the run's outcome: synced, already_synced, skipped, failed, blocked, retry…"
    )
    steps: list[dict[str, Any]] = Field(
        description="event (or command, then event), mapped (payload summary, personal values redacted), "
        "request (method, entity, operation, requestid, batch or single, body field names), response (QBO Id "
        "and SyncToken, or the fault code), final (status, reason, error code)"
    )


class RecordTimeline(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    entity_type: EntityType
    platform_id: str
    runs: list[TimelineRun] = Field(description="newest first; runs are kept 30 days")


@router.get(
    "/sync/records/<entity_type>/<platform_id>/timeline",
    summary="Get the timeline of one record: every run and its steps",
    description="The record's runs of the last 30 days (at most 50, newest first) in the firm's current "
    "QuickBooks company. No tokens and no client personal data: payloads are summarized with names, "
    "emails, phones, addresses and notes redacted. A record without runs has an empty list. Any role.",
    tags=["Sync status"],
    responses=error_responses(),
)
def get_record_timeline(
    entity_type: Annotated[EntityType, Path(description="record type")],
    platform_id: PlatformIdPath,
) -> RecordTimeline:
    caller = caller_of(router)
    w = records_wiring()
    realm_id = _realm(w, caller.firm_id)
    runs = (
        w.timeline.runs_of(RecordKey(caller.firm_id, realm_id, entity_type, platform_id), now=time.time())
        if realm_id
        else []
    )
    return RecordTimeline(
        entity_type=entity_type,
        platform_id=platform_id,
        runs=[
            TimelineRun(
                run_id=r.run_id,
                started_at=datetime.fromtimestamp(r.started_at, UTC),
                finished_at=datetime.fromtimestamp(r.finished_at, UTC),
                status=r.status,
                steps=r.steps,
            )
            for r in runs
        ],
    )


def _counts(per_status: dict[str, int]) -> StatusCounts:
    known = {k: v for k, v in per_status.items() if k in StatusCounts.model_fields and k != "total"}
    return StatusCounts(**known, total=sum(known.values()))


@router.get(
    "/sync/summary",
    summary="Count the firm's records per type and sync status",
    description="Counts of the firm's current QuickBooks company (zero everywhere before the first "
    "connection). Reads every record of the firm: meant for an admin page, not polling. Any role.",
    tags=["Sync status"],
    responses=error_responses(),
)
def get_sync_summary() -> SyncSummary:
    caller = caller_of(router)
    w = records_wiring()
    realm_id = _realm(w, caller.firm_id)
    counts = w.admin.count_by_status(caller.firm_id, realm_id) if realm_id else {}
    by_type = {t: _counts(counts.get(t, {})) for t in EntityType.__args__}  # type: ignore[attr-defined]
    totals: dict[str, int] = {}
    for per_status in counts.values():
        for status, n in per_status.items():
            totals[status] = totals.get(status, 0) + n
    return SyncSummary.model_validate(
        {"realm_id": realm_id, "totals": _counts(totals), "by_entity_type": by_type}
    )
