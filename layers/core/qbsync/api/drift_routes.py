"""Admin API: records changed in QuickBooks, and the CDC catch-up on demand (issue 14 items 4 and 5).

* ``POST /errors/{error_id}/accept-quickbooks`` - keep QuickBooks' change of a client account edited there
  (its email, phone numbers, billing address go to the platform as "Contact Updated").
* ``POST /errors/{error_id}/unlink`` - detach the record of an ``edited_in_quickbooks`` /
  ``deleted_in_quickbooks`` error from its QuickBooks object and stop syncing it.
* ``POST /sync/catch-up`` - queue a CDC catch-up of the caller's firm now → 202.

The third action of a drift error, "push the platform's version again", is the error center's Resync
(``POST /errors/{error_id}/resync``). No request bodies. Thin: each route calls one method of
:class:`qbsync.errorcenter.drift_actions.DriftActions` or :class:`qbsync.inbound.catchup.CatchUpRequests`.
Owner or admin; the firm is always the caller's (another firm's error answers 404).
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

import uuid
from typing import Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from qbsync import wiring
from qbsync.api.common import ErrorIdPath, caller_of, error_responses
from qbsync.errorcenter.drift_actions import DriftActionResult
from qbsync.observability import metrics

__all__ = ["CatchUpView", "DriftActionView", "router"]

router = Router()
_ERROR_TAGS = ["errors"]
_RECORD_TAGS = ["records"]


class DriftActionView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_id: str
    entity_type: str
    platform_id: str
    outcome: Literal["accepted", "unlinked"]
    record_status: str = Field(description="synced (accepted) or skipped (unlinked)")
    changed_fields: list[str] = Field(
        default_factory=list, description="accepted: the contact fields sent to the platform"
    )
    released: int = Field(0, description="unlinked: records waiting on it that run again")


class CatchUpView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(description="ties the queued run to this request (logs)")
    status: Literal["queued"]


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
