"""Admin API: the firm's sync health (PRODUCT.md J.6, issue 15 item 3).

* ``GET /health`` (owner, admin): event-to-QuickBooks lag (p50/p95 over the last hour), failed and blocked
  records, the firm's dead letters, the fleet-wide queue backlog, the last successful sync, the refresh
  token's countdown (100-day idle rule, 5-year cap) and the QuickBooks requests used against the realm's
  budget, with the level they add up to (:mod:`qbsync.health`). Evaluating it announces "Firm Health
  Changed" when the level crossed a threshold.

The figures and the AWS calls per request: docs/admin-api.md; what the on-call reads: docs/operations.md.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

from aws_lambda_powertools.event_handler.api_gateway import Router

from qbsync import wiring
from qbsync.api.common import caller_of, error_responses
from qbsync.auth import require_role
from qbsync.models.health import FirmHealth

__all__ = ["router"]

router = Router()


@router.get(
    "/health",
    summary="The firm's sync health",
    description="Event-to-QuickBooks lag (p50/p95 of the records synced in the last hour, seconds), failed "
    "and blocked records, the firm's dead letters (14 days), the queues' backlog (fleet-wide: the queues are "
    "shared by every firm), the last successful sync, the refresh token's countdown (Intuit's 100-day idle "
    "rule and 5-year cap; dates only, never a token) and the QuickBooks requests used against the realm's "
    "budget (500/minute), with the level they add up to (ok, degraded, failing) and why. Owner or admin.",
    tags=["operations"],
    responses=error_responses(),
)
def get_health() -> FirmHealth:
    caller = caller_of(router)
    require_role(caller, "owner", "admin")
    return wiring.build_firm_health().evaluate(caller.firm_id, queues=wiring.health_queues())
