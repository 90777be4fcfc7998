"""Admin API: the firm's initial sync (PRODUCT.md F, J.1, J.2; docs/initial-sync.md).

* ``GET /initial-sync`` (owner, admin, staff): the firm's latest run: status, the pre-flight findings, the
  dry-run plan (per record type: create / link / skip / block with money totals, and its blocking findings),
  and progress per phase (planned, done, failed, skipped, blocked, changed, remaining, rate, ETA).
* ``POST /initial-sync/<run_id>/approve`` (owner): the plan runs, exactly as shown.
* ``POST /initial-sync/<run_id>/cancel`` (owner, admin): the run stops wherever it is; what was synced stays.
* ``POST /initial-sync/<run_id>/resume`` (owner, admin): a failed run starts again where it was.

No request bodies: the run id in the path names the run, and only the firm's latest run can be acted on.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict, Field

from qbsync import vocab, wiring
from qbsync.api.common import caller_of, error_responses
from qbsync.auth import require_role
from qbsync.errors import NotFound
from qbsync.initial_sync.runs import phase_progress
from qbsync.models.qbsync_events import PhaseProgress
from qbsync.observability import metrics
from qbsync.repositories.initial_sync import Run

__all__ = ["InitialSyncView", "router"]

router = Router()
_TAGS = ["initial sync"]

RunIdPath = Annotated[
    str,
    Path(pattern=r"^is-[0-9a-f]{20}$", max_length=23, description="the run's id (from GET /initial-sync)"),
]


class FindingView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    code: str
    severity: str = Field(description="warning (records land differently) or blocking (records will fail)")
    message: str
    fix: str | None = None
    record_types: list[str] = Field(default_factory=list)
    count: int | None = Field(None, description="records of the plan it affects, when counted")
    examples: list[str] = Field(default_factory=list, description="up to 5 platform record ids")


class TotalsView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    record_type: str
    create: int = 0
    link: int = 0
    skip: int = 0
    block: int = 0
    create_amount: str | None = None
    link_amount: str | None = None
    skip_amount: str | None = None
    block_amount: str | None = None


class PlanView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    snapshot_id: str | None = None
    totals: list[TotalsView]
    findings: list[FindingView] = Field(description="the plan's blocking findings (records that will fail)")


class InitialSyncView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    run_id: str
    realm_id: str
    status: str = Field(
        description="waiting_for_snapshot, planning, awaiting_approval, running, completed, "
        "failed (resumable), "
        "cancelled, superseded (the firm switched companies)"
    )
    trigger: str = Field(description="connected or switched")
    started_at: datetime
    updated_at: datetime
    current_phase: str | None = None
    approved_by: str | None = None
    auto_approved: bool = False
    cancelled_by: str | None = None
    error: str | None = Field(None, description="why a failed run stopped")
    preflight: list[FindingView] = Field(description="the pre-flight check of the QuickBooks company")
    plan: PlanView | None = Field(None, description="the dry-run plan, once made")
    phases: list[PhaseProgress]


def _findings(items: Any) -> list[FindingView]:
    out: list[FindingView] = []
    for f in items or []:
        if isinstance(f, dict):
            known = {k: v for k, v in f.items() if k in FindingView.model_fields}
            out.append(FindingView(**known))
    return out


def view_of(run: Run, now: float) -> InitialSyncView:
    plan = None
    if run.plan is not None:
        plan = PlanView(
            snapshot_id=run.plan.get("snapshot_id"),
            totals=[TotalsView(**t) for t in run.plan.get("totals", [])],
            findings=_findings(run.plan.get("findings")),
        )
    return InitialSyncView(
        run_id=run.ref.run_id,
        realm_id=run.ref.realm_id,
        status=run.status,
        trigger=run.trigger,
        started_at=datetime.fromtimestamp(run.started_at, UTC),
        updated_at=datetime.fromtimestamp(run.updated_at, UTC),
        current_phase=run.current_phase,
        approved_by=run.approved_by,
        auto_approved=run.auto_approved,
        cancelled_by=run.cancelled_by,
        error=run.error,
        preflight=_findings((run.preflight or {}).get("findings")),
        plan=plan,
        phases=[phase_progress(run, p, now=now) for p in vocab.INITIAL_SYNC_PHASES],
    )


@router.get(
    "/initial-sync",
    summary="The firm's initial sync",
    description="The firm's latest initial sync of its history into QuickBooks: status, the pre-flight "
    "findings about the QuickBooks company, the dry-run plan (per record type what will be created, linked "
    "to an object already in QuickBooks, skipped or blocked, with money totals) and progress per phase. "
    "404 when "
    "the firm never connected. Owner, admin or staff.",
    tags=_TAGS,
    responses=error_responses(404),
)
def get_initial_sync() -> InitialSyncView:
    caller = caller_of(router)
    require_role(caller, "owner", "admin", "staff")
    run = wiring.initial_sync_runs().latest(caller.firm_id)
    if run is None:
        raise NotFound("no initial sync yet: it starts when QuickBooks is connected")
    return view_of(run, time.time())


@router.post(
    "/initial-sync/<run_id>/approve",
    summary="Approve the initial sync's plan",
    description="The plan shown by GET /initial-sync runs, exactly as planned (a record changed on the "
    "platform since is synced by its own event and counted `changed`). 409 when the run is not awaiting "
    "approval. No request body. Owner.",
    tags=_TAGS,
    responses=error_responses(404, 409),
)
def approve(run_id: RunIdPath) -> InitialSyncView:
    caller = caller_of(router)
    require_role(caller, "owner")
    run = wiring.run_control().approve(caller.firm_id, run_id, by=caller.user_id, correlation_id=run_id)
    metrics.add_metric(name="InitialSyncApproved", unit="Count", value=1)
    return view_of(run, time.time())


@router.post(
    "/initial-sync/<run_id>/cancel",
    summary="Cancel the initial sync",
    description="Stops the run wherever it is (waiting for the snapshot or the approval, or syncing: the "
    "chunk being written finishes its records). What was synced stays synced; later platform events sync as "
    "usual. 409 when the run has ended. No request body. Owner or admin.",
    tags=_TAGS,
    responses=error_responses(404, 409),
)
def cancel(run_id: RunIdPath) -> InitialSyncView:
    caller = caller_of(router)
    require_role(caller, "owner", "admin")
    run = wiring.run_control().cancel(caller.firm_id, run_id, by=caller.user_id, correlation_id=run_id)
    metrics.add_metric(name="InitialSyncCancelled", unit="Count", value=1)
    return view_of(run, time.time())


@router.post(
    "/initial-sync/<run_id>/resume",
    summary="Resume a failed initial sync",
    description="Starts the run again where it stopped: completed chunks are not run again and synced "
    "records "
    "are not rewritten. 409 when the run is running or has ended. No request body. Owner or admin.",
    tags=_TAGS,
    responses=error_responses(404, 409),
)
def resume(run_id: RunIdPath) -> InitialSyncView:
    caller = caller_of(router)
    require_role(caller, "owner", "admin")
    run = wiring.run_control().resume(caller.firm_id, run_id, correlation_id=run_id)
    metrics.add_metric(name="InitialSyncResumed", unit="Count", value=1)
    return view_of(run, time.time())
