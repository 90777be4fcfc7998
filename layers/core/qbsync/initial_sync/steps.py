"""The task steps of the initial-sync state machine, behind one entry point (``InitialSyncFunction``).

``{"step": ..., "run": {...}}`` → :meth:`InitialSyncSteps.handle`. Steps and what they return to the state
machine (docs/initial-sync.md):

==================  ======================================================================================
step                does
==================  ======================================================================================
begin               :meth:`RunControl.begin <qbsync.initial_sync.runs.RunControl.begin>`
request_snapshot    the run waits (task token) and "Snapshot Requested" asks the platform for its records
preflight           the pre-flight check of the QuickBooks company, stored with the run
plan                the dry-run plan (:mod:`qbsync.initial_sync.plan`), stored, "Initial Sync Planned";
                    returns the chunk index key of each phase
await_approval      the run waits for the owner (task token), or goes on at once when the firm's settings
                    approve automatically
chunk               one chunk of a phase (:mod:`qbsync.initial_sync.execute`); a chunk that fails for good
                    leaves its reason on the run
phase_done          the phase is completed, "Initial Sync Progress" (``completed``; a phase with nothing
                    planned is ``started`` first, so every phase is announced started once);
                    :class:`PhaseIncomplete` when some of its planned records were not counted (a chunk
                    failed: the run fails, and a resume runs what is left)
summary             the run is completed, "Initial Sync Progress" with every phase's figures
failed / cancelled  the run's end after a step failed for good / after the owner cancelled
==================  ======================================================================================
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from qbsync import vocab
from qbsync.errors import BadRequest, Conflict, QbsyncError, RetryableError
from qbsync.initial_sync.execute import ChunkExecutor, ChunkRef, ChunkRetry
from qbsync.initial_sync.plan import Planner
from qbsync.initial_sync.runs import RunControl, phase_progress, progress_event
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.preflight import PreflightResult
from qbsync.models.qbsync_events import InitialSyncPlanned, PlanFinding, PlanTotals
from qbsync.models.snapshot import SnapshotRequested
from qbsync.qbo.client import QboClient
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.initial_sync import InitialSyncRuns, Run, RunRef

__all__ = ["SNAPSHOT_WAIT", "InitialSyncSteps", "PhaseIncomplete", "PlanSteps"]

logger = logging.getLogger("qbsync.initial_sync")

#: how long the platform has to export (the RequestSnapshot task's TimeoutSeconds)
SNAPSHOT_WAIT = timedelta(days=1)


class PhaseIncomplete(QbsyncError):
    """A phase's Map ended with planned records not counted: one of its chunks failed for good. Not retried:
    the run fails (with the chunk's reason) and a resume runs the chunks that are not counted.

    Step Functions fails the Map itself when an item fails (the default tolerated failure is none) and its
    Catch records the failure; this check makes "every planned record was counted" the condition of a phase's
    end wherever the Map's own failure handling differs (moto's Distributed Map reports a failed item as a
    ``null`` result and succeeds: docs/initial-sync.md, Operations)."""

    code = "initial_sync_phase_incomplete"


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Settings(Protocol):
    def get(self, firm_id: str, *, seed: Mapping[str, Any] | None = None) -> FirmSyncSettings: ...


class RealmClients(Protocol):
    def qbo_for(self, firm_id: str, realm_id: str) -> QboClient: ...


class Publisher(Protocol):
    def publish(self, events: Any) -> Any: ...


class Preflight(Protocol):
    def run(self, qbo: QboClient, settings: FirmSyncSettings) -> Any: ...


class PreflightResults(Protocol):
    def save(self, firm_id: str, result: Any) -> Any: ...


class PlanSteps:
    """The steps that read QuickBooks and the snapshot: pre-flight, plan, approval."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        runs: InitialSyncRuns,
        control: RunControl,
        planner: Planner,
        preflight: Preflight,
        preflight_results: PreflightResults,
        context: FirmContext,
        publisher: Publisher,
    ) -> None:
        self._runs = runs
        self._control = control
        self._planner = planner
        self._preflight = preflight
        self._results = preflight_results
        self._context = context
        self._publisher = publisher

    def preflight(self, ref: RunRef) -> dict[str, Any]:
        qbo, settings = self._context.open(ref)
        result = self._preflight.run(qbo, settings)
        self._results.save(ref.firm_id, result)
        findings = result.to_json()
        self._runs.save_preflight(ref, findings, now=self._context.now())
        severities = [f.severity for f in result.findings]
        return {"warnings": severities.count("warning"), "blocking": severities.count("blocking")}

    def plan(self, ref: RunRef) -> dict[str, Any]:
        run = self._run(ref)
        if not run.manifest_key:
            raise Conflict("the run has no snapshot to plan")
        qbo, settings = self._context.open(ref)
        planned = self._planner.plan(
            firm_id=ref.firm_id,
            realm_id=ref.realm_id,
            run_id=ref.run_id,
            manifest_key=run.manifest_key,
            settings=settings,
            qbo=qbo,
            preflight=PreflightResult.from_json(run.preflight) if run.preflight else None,
        )
        summary = {**planned.summary, "preflight": run.preflight}
        self._runs.save_plan(
            ref, summary=summary, keys=planned.keys, planned=planned.planned, now=self._context.now()
        )
        return {"keys": planned.keys}

    def await_approval(self, ref: RunRef, token: str) -> dict[str, Any]:
        _, settings = self._context.open(ref, qbo=False)
        run = self._control.wait(ref, what="approval", token=token)
        # announced only once the run can be approved (an approval before the wait would find no token)
        self._publisher.publish([_planned_event(ref, run.plan or {}, run.preflight, settings)])
        if settings.initial_sync_auto_approve:
            self._control.approve(ref.firm_id, ref.run_id, by="auto", correlation_id=ref.run_id, auto=True)
        return {}

    def _run(self, ref: RunRef) -> Run:
        run = self._runs.get(ref)
        if run is None:
            raise BadRequest("no such initial-sync run")
        return run


class FirmContext:
    """The firm's connection (still connected to the run's company), its settings and its QBO client."""

    def __init__(
        self,
        *,
        connections: Connections,
        settings: Settings,
        realm_clients: RealmClients,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connections = connections
        self._settings = settings
        self._realm_clients = realm_clients
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def open(self, ref: RunRef, *, qbo: bool = True) -> tuple[Any, FirmSyncSettings]:
        connection = self._connections.get(ref.firm_id)
        if connection is None or connection.realm_id != ref.realm_id:
            raise Conflict("the firm is not connected to this company any more")
        if connection.status != CONNECTED:
            raise ChunkRetry(f"QuickBooks is {connection.status.replace('_', ' ')}")
        settings = self._settings.get(ref.firm_id, seed=connection.settings)
        client = self._realm_clients.qbo_for(ref.firm_id, ref.realm_id) if qbo else None
        return client, settings


def _planned_event(
    ref: RunRef, summary: Mapping[str, Any], preflight: Mapping[str, Any] | None, settings: FirmSyncSettings
) -> InitialSyncPlanned:
    findings = [
        PlanFinding(
            code=f["code"],
            severity=f["severity"],
            message=f["message"],
            fix=f.get("fix"),
            record_types=list(f.get("record_types") or []),
            count=f.get("count"),
        )
        for f in [*((preflight or {}).get("findings") or []), *summary.get("findings", [])]
    ][:100]
    return InitialSyncPlanned(
        firm_id=ref.firm_id,
        correlation_id=ref.run_id,
        realm_id=ref.realm_id,
        run_id=ref.run_id,
        needs_approval=not settings.initial_sync_auto_approve,
        totals=[PlanTotals(**t) for t in summary.get("totals", [])],
        findings=findings,
    )


class InitialSyncSteps:
    """Dispatches the state machine's steps (module doc)."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        runs: InitialSyncRuns,
        control: RunControl,
        plan_steps: PlanSteps,
        executor: ChunkExecutor,
        publisher: Publisher,
        snapshot_bucket: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runs = runs
        self._control = control
        self._plan = plan_steps
        self._executor = executor
        self._publisher = publisher
        self._bucket = snapshot_bucket
        self._clock = clock

    def handle(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Run the step ``payload["step"]``; what it returns goes back to the state machine."""
        step = payload.get("step")
        if step == "begin":
            execution = payload.get("execution")
            if not isinstance(execution, str) or not isinstance(payload.get("input"), Mapping):
                raise BadRequest("begin needs the execution's input and id")
            return self._control.begin(payload["input"], execution).as_dict()
        ref = _ref(payload)
        if step == "request_snapshot":
            return self._request_snapshot(ref, _token(payload))
        if step == "preflight":
            return self._plan.preflight(ref)
        if step == "plan":
            return self._plan.plan(ref)
        if step == "await_approval":
            return self._plan.await_approval(ref, _token(payload))
        if step == "chunk":
            return self._chunk(ref, payload.get("chunk"))
        if step == "phase_done":
            return self._phase_done(ref, payload.get("phase"))
        if step == "summary":
            run = self._control.finish(ref, correlation_id=ref.run_id)
            return {"status": run.status}
        if step == "failed":
            self._control.fail(ref, error=self._failure(ref, payload.get("error")), correlation_id=ref.run_id)
            return {}
        if step == "cancelled":
            self._control.cancelled(ref, correlation_id=ref.run_id)
            return {}
        raise BadRequest(f"unknown initial-sync step {step!r}")

    def _failure(self, ref: RunRef, error: Any) -> str:
        """The failed step's error, with the reason of the chunk that failed for good when the step's own
        error does not say it (a Map that failed because an item failed:
        ``States.ExceedToleratedFailureThreshold``)."""
        text = _error_text(error)
        run = self._runs.get(ref)
        if run is not None and run.chunk_error and run.chunk_error not in text:
            text = f"{text} (chunk {run.chunk_error})"
        return text[:1000]

    def _request_snapshot(self, ref: RunRef, token: str) -> dict[str, Any]:
        self._control.wait(ref, what="snapshot", token=token)
        respond_by = datetime.fromtimestamp(self._clock(), UTC) + SNAPSHOT_WAIT
        self._publisher.publish(
            [
                SnapshotRequested(
                    firm_id=ref.firm_id,
                    correlation_id=ref.run_id,
                    realm_id=ref.realm_id,
                    run_id=ref.run_id,
                    bucket=self._bucket,
                    prefix=f"snapshots/{ref.firm_id}/{ref.run_id}/",
                    record_types=[vocab.PHASE_RECORD_TYPE[p] for p in vocab.INITIAL_SYNC_PHASES],
                    respond_by=respond_by,
                )
            ]
        )
        logger.info("snapshot requested from the platform", extra=ref.as_dict())
        return {}

    def _chunk(self, ref: RunRef, chunk: Any) -> dict[str, Any]:
        if not isinstance(chunk, Mapping):
            raise BadRequest("chunk needs its descriptor")
        try:
            descriptor = ChunkRef(str(chunk["phase"]), int(chunk["index"]), str(chunk["key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest("chunk needs phase, index and key") from exc
        if descriptor.phase not in vocab.INITIAL_SYNC_PHASES:
            raise BadRequest("unknown phase")
        try:
            result = self._executor.run(ref, descriptor)
        except RetryableError:
            raise
        except QbsyncError as err:
            self._runs.chunk_failed(ref, descriptor.phase, descriptor.index, err.message, now=self._clock())
            raise
        return {"counted": bool(result.get("counted", False)), **result}

    def _phase_done(self, ref: RunRef, phase: Any) -> dict[str, Any]:
        if phase not in vocab.INITIAL_SYNC_PHASES:
            raise BadRequest("unknown phase")
        before = self._runs.get(ref)
        if before is None:
            raise BadRequest("no such initial-sync run")
        progress = phase_progress(before, str(phase))
        if progress.remaining and not before.terminal:
            why = f": chunk {before.chunk_error}" if before.chunk_error else ""
            raise PhaseIncomplete(
                f"{progress.remaining} of the {progress.planned} planned {phase} did not run{why}"
            )
        started = self._runs.start_phase(ref, str(phase), now=self._clock())
        if started is not None:  # a phase without chunks (nothing planned) starts as it ends
            self._progress(started, "started")
        run = self._runs.phase(ref, str(phase), status="completed", now=self._clock())
        self._progress(run, "completed")
        return {}

    def _progress(self, run: Run, phase_status: str) -> None:
        try:
            self._publisher.publish(
                [progress_event(run, correlation_id=run.ref.run_id, phase_status=phase_status)]
            )
        except Exception:
            logger.warning("initial sync progress not published", extra=run.ref.as_dict())


def _ref(payload: Mapping[str, Any]) -> RunRef:
    run = payload.get("run")
    if not isinstance(run, Mapping):
        raise BadRequest("the step needs its run")
    try:
        return RunRef.from_dict(run)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _token(payload: Mapping[str, Any]) -> str:
    token = payload.get("token")
    if not isinstance(token, str) or not token:
        raise BadRequest("the step needs its task token")
    return token


def _error_text(error: Any) -> str:
    """The failed step's error in plain words (Step Functions' ``Error`` and the first line of ``Cause``)."""
    if not isinstance(error, Mapping):
        return "a step failed"
    name = str(error.get("Error") or "error")
    cause = error.get("Cause")
    detail = ""
    if isinstance(cause, str) and cause:
        try:
            parsed = json.loads(cause)
            detail = str(parsed.get("errorMessage", "")) if isinstance(parsed, dict) else cause
        except ValueError:
            detail = cause
    return f"{name}: {detail}"[:1000] if detail else name
