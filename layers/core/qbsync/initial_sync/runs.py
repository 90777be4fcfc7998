"""The lifecycle of an initial-sync run: the state machine's control steps and the owner's decisions.

The state machine (``statemachines/initial_sync.asl.json``) calls these through ``InitialSyncFunction``;
the admin API calls :meth:`RunControl.approve`, :meth:`RunControl.cancel` and :meth:`RunControl.resume`.

- **begin**: a ``Connection Changed`` (``connected`` | ``switched``) starts a run whose id derives from the
  event's id, so a second delivery of the event finds the run and its execution ends (``duplicate``). A run
  of the firm's previous company that is still active is ``superseded`` and its execution stopped. A resume
  (``{"resume": run}``) makes the new execution the run's owner (compare-and-set on the execution ARN) and
  says where it continues: ``snapshot``, ``plan``, ``approval`` or ``execute``.
- **request_snapshot**: the execution waits (task token on the run item) while the platform exports the
  firm's records (docs/events/snapshot.md); :meth:`RunControl.snapshot_ready` resumes it.
- **await_approval**: the execution waits for the owner's approval of the plan, or goes on at once when the
  firm's settings approve automatically.
- **finish / fail / cancelled**: the run's end, announced with "Initial Sync Progress".

Every transition is a conditional write of the run item (:mod:`qbsync.repositories.initial_sync`): two
approvals, a cancel racing an approval, or a resume racing another resume have exactly one winner.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from qbsync import vocab
from qbsync.errors import BadRequest, Conflict, NotFound, QbsyncError
from qbsync.models.qbsync_events import InitialSyncProgress, PhaseProgress
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.initial_sync import (
    AWAITING_APPROVAL,
    CANCELLED,
    COMPLETED,
    FAILED,
    SUPERSEDED,
    WAITING_FOR_SNAPSHOT,
    InitialSyncRuns,
    Run,
    RunRef,
)

__all__ = [
    "CANCELLED_ERROR",
    "Begun",
    "RunControl",
    "progress_event",
    "run_id_for",
]

logger = logging.getLogger("qbsync.initial_sync")

#: the error a cancelled wait fails with (the state machine's Catch goes to its Cancelled state)
CANCELLED_ERROR = "InitialSync.Cancelled"
_RUN_TRIGGERS = ("connected", "switched")


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Publisher(Protocol):
    def publish(self, events: Any) -> Any: ...


class Executions(Protocol):
    def start(self, state_machine_arn: str, *, name: str, payload: Mapping[str, Any]) -> str: ...
    def status(self, execution_arn: str) -> str: ...
    def stop(self, execution_arn: str, *, error: str, cause: str) -> None: ...
    def succeed(self, token: str, output: Mapping[str, Any]) -> None: ...
    def fail(self, token: str, *, error: str, cause: str) -> None: ...


def run_id_for(firm_id: str, realm_id: str, event_id: str) -> str:
    """The run a ``Connection Changed`` event starts: the same event (redelivered) names the same run."""
    digest = hashlib.sha256(f"{firm_id}|{realm_id}|{event_id}".encode()).hexdigest()
    return f"is-{digest[:20]}"


@dataclass(frozen=True)
class Begun:
    """What :meth:`RunControl.begin` decided: ``run`` (go on at ``resume_at``), ``duplicate``, ``ignore``."""

    action: str
    ref: RunRef | None = None
    resume_at: str | None = None
    reason: str | None = None
    keys: Mapping[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every field present (the state machine's selectors read each one)."""
        return {
            "action": self.action,
            "run": self.ref.as_dict() if self.ref is not None else None,
            "resume_at": self.resume_at,
            "reason": self.reason,
            "keys": dict(self.keys or {}),
        }


def _resume_point(run: Run) -> str:
    if run.approved_by:
        return "execute"
    if run.plan is not None:
        return "approval"
    if run.manifest_key:
        return "plan"
    return "snapshot"


def progress_event(
    run: Run, *, correlation_id: str, error: str | None = None, phase_status: str | None = None
) -> InitialSyncProgress:
    """The run's "Initial Sync Progress" (also the body of ``GET /initial-sync``'s ``phases``);
    ``phase_status``: the moment of the current phase it announces (``started``, ``running``,
    ``completed``), None for a change of the run's status."""
    phases = [phase_progress(run, phase) for phase in vocab.INITIAL_SYNC_PHASES]
    current = run.current_phase if run.current_phase in vocab.INITIAL_SYNC_PHASES else None
    return InitialSyncProgress(
        firm_id=run.ref.firm_id,
        correlation_id=correlation_id,
        realm_id=run.ref.realm_id,
        run_id=run.ref.run_id,
        status=run.status,  # type: ignore[arg-type]
        current_phase=current,  # type: ignore[arg-type]
        phases=phases,
        phase_status=phase_status if current is not None else None,  # type: ignore[arg-type]
        error=(error or run.error),
    )


def phase_progress(run: Run, phase: str, *, now: float | None = None) -> PhaseProgress:
    counters = run.phases.get(phase, {})
    planned = int(counters.get("planned", 0))
    finished = sum(int(counters.get(k, 0)) for k in ("done", "failed", "skipped", "blocked", "changed"))
    remaining = max(planned - finished, 0)
    status = counters.get("status", "pending")
    rate: float | None = None
    eta: int | None = None
    started = counters.get("started_at")
    if started is not None and finished:
        end = counters.get("finished_at") or (now if now is not None else time.time())
        minutes = max((float(end) - float(started)) / 60.0, 1 / 60)
        rate = round(finished / minutes, 1)
        eta = int(remaining / rate * 60) if rate and status == "running" else (0 if not remaining else None)
    return PhaseProgress(
        phase=phase,  # type: ignore[arg-type]
        status=status if status in ("pending", "running", "completed") else "pending",
        planned=planned,
        done=int(counters.get("done", 0)),
        failed=int(counters.get("failed", 0)),
        skipped=int(counters.get("skipped", 0)),
        blocked=int(counters.get("blocked", 0)),
        changed=int(counters.get("changed", 0)),
        remaining=remaining,
        rate_per_minute=rate,
        eta_seconds=eta,
    )


class RunControl:
    """Begin, wait, approve, cancel, resume and end runs (module doc).

    Args:
        runs: the run items; ``executions``: Step Functions (``qbsync.adapters.stepfunctions.StepFunctions``);
        connections: the firms' connections; ``publisher``: qbsync events; ``clock``: epoch seconds;
        ``state_machine_arn``: what a resume starts (the admin API's setting; None where nothing resumes).
    """

    def __init__(
        self,
        *,
        runs: InitialSyncRuns,
        executions: Executions,
        connections: Connections,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
        state_machine_arn: str | None = None,
    ) -> None:
        self._runs = runs
        self._sfn = executions
        self._connections = connections
        self._publisher = publisher
        self._clock = clock
        self._state_machine_arn = state_machine_arn

    # ------------------------------------------------------------------ state machine steps

    def begin(self, payload: Mapping[str, Any], execution_arn: str) -> Begun:
        """The first step of every execution (module doc). ``payload``: the execution's input."""
        if not execution_arn:
            raise ValueError("begin needs the execution's ARN")
        if isinstance(payload.get("resume"), Mapping):
            return self._begin_resume(RunRef.from_dict(payload["resume"]), execution_arn)
        detail = payload.get("detail")
        if payload.get("detail-type") != "Connection Changed" or not isinstance(detail, Mapping):
            raise BadRequest("the initial sync starts from a Connection Changed event or a resume")
        change = detail.get("change")
        firm_id, realm_id, event_id = detail.get("firm_id"), detail.get("realm_id"), detail.get("event_id")
        if not all(isinstance(v, str) and v and "#" not in v for v in (firm_id, realm_id, event_id)):
            raise BadRequest("Connection Changed needs firm_id, realm_id and event_id")
        assert isinstance(firm_id, str) and isinstance(realm_id, str) and isinstance(event_id, str)
        if change not in _RUN_TRIGGERS:
            return Begun("ignore", reason=f"no initial sync on {change!r}")
        connection = self._connections.get(firm_id)
        if connection is None or connection.status != CONNECTED or connection.realm_id != realm_id:
            return Begun("ignore", reason="the firm is not connected to this company any more")
        ref = RunRef(firm_id, realm_id, run_id_for(firm_id, realm_id, event_id))
        previous = self._runs.latest(firm_id)
        run, created = self._runs.begin(
            ref, trigger=str(change), execution_arn=execution_arn, now=self._clock()
        )
        if not created:
            return self._begin_again(run, execution_arn)
        if previous is not None and previous.ref != ref and not previous.terminal:
            self._supersede(previous, ref)
        logger.info("initial sync run begun", extra={**ref.as_dict(), "trigger": change})
        self._announce(run, correlation_id=event_id)
        return Begun("run", ref, "snapshot")

    def _begin_again(self, run: Run, execution_arn: str) -> Begun:
        """A second execution for the same event (redelivery)."""
        if run.execution_arn == execution_arn:
            return Begun("run", run.ref, _resume_point(run), keys=run.plan_keys)  # Begin itself was retried
        return Begun("duplicate", run.ref, reason="this run has its execution already")

    def _begin_resume(self, ref: RunRef, execution_arn: str) -> Begun:
        run = self._runs.get(ref)
        if run is None:
            raise NotFound("no such initial-sync run")
        if run.terminal:
            return Begun("duplicate", ref, reason=f"the run is {run.status}")
        if run.execution_arn != execution_arn:
            run = self._runs.take_over(
                ref, execution_arn=execution_arn, previous_arn=run.execution_arn, now=self._clock()
            )
        return Begun("run", ref, _resume_point(run), keys=run.plan_keys)

    def _supersede(self, previous: Run, by: RunRef) -> None:
        try:
            ended = self._runs.end(previous.ref, status=SUPERSEDED, now=self._clock())
        except Conflict:
            return  # it ended meanwhile
        if ended.execution_arn:
            self._sfn.stop(
                ended.execution_arn, error="InitialSync.Superseded", cause="the firm switched companies"
            )
        logger.info(
            "initial sync run superseded by a company switch",
            extra={**previous.ref.as_dict(), "by_run_id": by.run_id, "by_realm_id": by.realm_id},
        )
        fresh = self._runs.get(previous.ref)
        if fresh is not None:
            self._announce(fresh, correlation_id=by.run_id)

    def wait(self, ref: RunRef, *, what: str, token: str) -> Run:
        """The execution waits for ``what`` (``snapshot`` | ``approval``) on ``token``."""
        status = WAITING_FOR_SNAPSHOT if what == "snapshot" else AWAITING_APPROVAL
        return self._runs.wait_for(ref, what=what, token=token, status=status, now=self._clock())

    def snapshot_ready(self, ref: RunRef, *, manifest_key: str, snapshot_id: str) -> bool:
        """The platform's "Snapshot Ready": resume the waiting execution once. False for a repeat or a run
        that is not waiting (logged, not an error: the platform may announce twice)."""
        try:
            before = self._runs.snapshot_ready(
                ref, manifest_key=manifest_key, snapshot_id=snapshot_id, now=self._clock()
            )
        except Conflict:
            logger.info("snapshot ready for a run that does not wait for one", extra=ref.as_dict())
            return False
        if before.task_token:
            self._sfn.succeed(before.task_token, {"manifest_key": manifest_key, "snapshot_id": snapshot_id})
        return True

    def finish(self, ref: RunRef, *, correlation_id: str) -> Run:
        """The last phase is done: ``completed``."""
        self._runs.end(ref, status=COMPLETED, now=self._clock())
        run = self._runs.get(ref)
        assert run is not None
        self._announce(run, correlation_id=correlation_id)
        return run

    def fail(self, ref: RunRef, *, error: str, correlation_id: str) -> None:
        """An execution step failed for good: ``failed`` (resumable through ``POST /initial-sync/resume``)."""
        try:
            self._runs.end(ref, status=FAILED, now=self._clock(), error=error)
        except Conflict:
            return
        run = self._runs.get(ref)
        if run is not None:
            self._announce(run, correlation_id=correlation_id)

    def cancelled(self, ref: RunRef, *, correlation_id: str) -> None:
        """The execution's Cancelled state: the run is ``cancelled`` (the API marked it already)."""
        with contextlib.suppress(Conflict):
            self._runs.end(ref, status=CANCELLED, now=self._clock())
        run = self._runs.get(ref)
        if run is not None:
            self._announce(run, correlation_id=correlation_id)

    # ------------------------------------------------------------------ the owner's decisions

    def approve(self, firm_id: str, run_id: str, *, by: str, correlation_id: str, auto: bool = False) -> Run:
        """Approve the plan the run waits on (``auto``: the firm's settings did). Raises NotFound, Conflict
        (not awaiting approval)."""
        run = self._latest(firm_id, run_id)
        if run.status != AWAITING_APPROVAL or not run.task_token:
            raise Conflict(f"the initial sync is {run.status.replace('_', ' ')}, not awaiting approval")
        before = self._runs.approve(run.ref, by=by, auto=auto, now=self._clock())
        if before.task_token:
            self._sfn.succeed(before.task_token, {"approved_by": by})
        logger.info("initial sync plan approved", extra={**run.ref.as_dict(), "user_id": by})
        after = self._runs.get(run.ref)
        assert after is not None
        self._announce(after, correlation_id=correlation_id)
        return after

    def cancel(self, firm_id: str, run_id: str, *, by: str, correlation_id: str) -> Run:
        """Cancel the run wherever it is (waiting, or executing: the execution is stopped; a chunk that is
        running finishes its records first). Raises NotFound, Conflict (the run has ended)."""
        run = self._latest(firm_id, run_id)
        try:
            before = self._runs.end(run.ref, status=CANCELLED, now=self._clock(), by=by)
        except Conflict as exc:
            raise Conflict(f"the initial sync is {run.status} already") from exc
        if before.task_token and before.task_token != "auto":
            try:
                self._sfn.fail(before.task_token, error=CANCELLED_ERROR, cause="cancelled by the owner")
            except QbsyncError:
                logger.warning("the cancelled run's wait could not be ended", extra=run.ref.as_dict())
        if before.execution_arn:
            self._sfn.stop(before.execution_arn, error=CANCELLED_ERROR, cause="cancelled by the owner")
        logger.info("initial sync cancelled", extra={**run.ref.as_dict(), "user_id": by})
        after = self._runs.get(run.ref)
        assert after is not None
        self._announce(after, correlation_id=correlation_id)
        return after

    def resume(self, firm_id: str, run_id: str, *, correlation_id: str) -> Run:
        """Start a new execution of a ``failed`` run (or of one whose execution stopped without ending it);
        it continues where the run was. Raises NotFound, Conflict."""
        if not self._state_machine_arn:
            raise Conflict("resuming is not configured here")
        run = self._latest(firm_id, run_id)
        if run.terminal:
            raise Conflict(f"the initial sync is {run.status}: it does not run again")
        if run.status != FAILED:
            if run.execution_arn and self._sfn.status(run.execution_arn) == "RUNNING":
                raise Conflict("the initial sync is running")
        else:
            run = self._runs.reopen(run.ref, now=self._clock())
        name = f"{run.ref.run_id}-r{run.executions + 1}"
        self._sfn.start(self._state_machine_arn, name=name, payload={"resume": run.ref.as_dict()})
        logger.info("initial sync resumed", extra={**run.ref.as_dict(), "execution_name": name})
        after = self._runs.get(run.ref)
        assert after is not None
        return after

    def _latest(self, firm_id: str, run_id: str) -> Run:
        run = self._runs.latest(firm_id)
        if run is None or run.ref.run_id != run_id:
            raise NotFound("no such initial-sync run")
        return run

    def _announce(self, run: Run, *, correlation_id: str) -> None:
        try:
            self._publisher.publish([progress_event(run, correlation_id=correlation_id)])
        except QbsyncError as err:
            # progress is also readable through GET /initial-sync; the next boundary announces again
            logger.warning(
                "initial sync progress not published", extra={**run.ref.as_dict(), **err.context()}
            )
