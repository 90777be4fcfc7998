"""Admin API: what a firm may see of its own events qbsync could not understand (issue 11).

* ``GET /dead-letters`` (owner, admin): the firm's platform events that were sent to ``OutboundDLQ``
  because they could not be understood (unknown detail type, missing id, wrong type): count, detail type,
  event id, the problem (field paths and rules, never values), when. Newest first, at most 100.

The DLQ is shared by every firm and holds the events' content, so reading and redriving it stays with
engineers (``scripts/redrive_dlq.py``, docs/operations.md "Dead letters"): a firm sees only this redacted
log of its own events (:class:`qbsync.repositories.dead_letters.DeadLetterLog`), and the fix is the
platform's or qbsync's, not the firm's - so there is no firm-side redrive.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

import time
from datetime import UTC, datetime

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from qbsync import wiring
from qbsync.api.common import caller_of, error_responses
from qbsync.auth import require_role

__all__ = ["DeadLetterList", "DeadLetterView", "router"]

router = Router()
_TAGS = ["operations"]
_MAX_SHOWN = 100


class DeadLetterView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    event_id: str = Field(description="the platform's event id")
    detail_type: str = Field(description='the event\'s DetailType as sent ("unknown" when unreadable)')
    problem: str = Field(description="what the contract refused: field paths and rules, never values")
    dead_lettered_at: datetime


class DeadLetterList(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    count: int = Field(description="events of this firm in the dead-letter queue (the last 14 days)")
    dead_letters: list[DeadLetterView]


@router.get(
    "/dead-letters",
    summary="The firm's events qbsync could not understand",
    description="Platform events of this firm that did not match the event contract (unknown detail type, "
    "a missing id, a wrong type) and went to the dead-letter queue at once, newest first (at most 100). "
    "They are not the firm's to fix: the platform or qbsync fixes the contract and an engineer redrives "
    "them (docs/operations.md). Data QuickBooks would refuse is never here: it is an error on its record "
    "(GET /errors). Owner or admin.",
    tags=_TAGS,
    responses=error_responses(),
)
def list_dead_letters() -> DeadLetterList:
    caller = caller_of(router)
    require_role(caller, "owner", "admin")
    letters = wiring.dead_letter_log().list(caller.firm_id, now=time.time())
    return DeadLetterList(
        count=len(letters),
        dead_letters=[
            DeadLetterView(
                event_id=d.event_id,
                detail_type=d.detail_type,
                problem=d.problem,
                dead_lettered_at=datetime.fromtimestamp(d.dead_lettered_at, UTC),
            )
            for d in letters[:_MAX_SHOWN]
        ],
    )
