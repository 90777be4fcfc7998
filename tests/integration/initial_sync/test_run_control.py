"""RunControl: a Connection Changed starts one run (a redelivery is a duplicate), a company switch
supersedes the old company's run and stops its execution, approvals and cancels resume or end the waiting
execution exactly once, and a failed run resumes in a new execution where it was; a phase ends only when
every planned record of it was counted, and a chunk that failed for good leaves its reason on the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from qbsync.errors import BadRequest, Conflict, NotFound
from qbsync.initial_sync.execute import ChunkRetry
from qbsync.initial_sync.runs import CANCELLED_ERROR, RunControl, run_id_for
from qbsync.initial_sync.steps import InitialSyncSteps, PhaseIncomplete
from qbsync.repositories.connections import Connection
from qbsync.repositories.initial_sync import ChunkCounts, InitialSyncRuns, RunRef

from tests.integration.repositories.conftest import new_id

REALM_A, REALM_B = "9130351234567890", "9130359999999999"


@dataclass
class FakeExecutions:
    started: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    succeeded: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)

    def start(self, state_machine_arn: str, *, name: str, payload: dict[str, Any]) -> str:
        self.started.append((state_machine_arn, name, payload))
        return f"arn:exec:{name}"

    def status(self, execution_arn: str) -> str:
        return self.statuses.get(execution_arn, "FAILED")

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        self.stopped.append(execution_arn)

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self.succeeded.append((token, output))

    def fail(self, token: str, *, error: str, cause: str) -> None:
        self.failed.append((token, error))


class FakeConnections:
    def __init__(self) -> None:
        self.by_firm: dict[str, Connection] = {}

    def connect(self, firm_id: str, realm_id: str, status: str = "connected") -> None:
        self.by_firm[firm_id] = Connection(firm_id=firm_id, realm_id=realm_id, status=status, tokens=None)

    def get(self, firm_id: str) -> Connection | None:
        return self.by_firm.get(firm_id)


class Published(list):
    def publish(self, events: Any) -> None:
        self.extend(events)


@pytest.fixture
def parts(table, clock):
    sfn, connections, published = FakeExecutions(), FakeConnections(), Published()
    control = RunControl(
        runs=InitialSyncRuns(table),
        executions=sfn,
        connections=connections,
        publisher=published,
        clock=clock,
        state_machine_arn="arn:sm",
    )
    return control, InitialSyncRuns(table), sfn, connections, published


def _changed(firm: str, realm: str, change: str = "connected", event_id: str = "evt-1") -> dict[str, Any]:
    detail = {
        "firm_id": firm,
        "realm_id": realm,
        "event_id": event_id,
        "change": change,
        "status": "connected",
    }
    return {"detail-type": "Connection Changed", "source": "qbsync", "detail": detail}


def test_one_run_per_event_and_a_redelivery_is_a_duplicate(parts) -> None:
    control, _, _, connections, published = parts
    firm = new_id("f")
    connections.connect(firm, REALM_A)
    first = control.begin(_changed(firm, REALM_A), "arn:exec:1")
    assert first.action == "run" and first.resume_at == "snapshot"
    assert first.ref == RunRef(firm, REALM_A, run_id_for(firm, REALM_A, "evt-1"))
    assert control.begin(_changed(firm, REALM_A), "arn:exec:2").action == "duplicate"
    assert control.begin(_changed(firm, REALM_A), "arn:exec:1").action == "run"  # Begin itself retried
    assert published[0].status == "waiting_for_snapshot"


def test_no_run_for_other_changes_or_a_company_no_longer_connected(parts) -> None:
    control, _, _, connections, _ = parts
    firm = new_id("f")
    connections.connect(firm, REALM_B)
    assert control.begin(_changed(firm, REALM_A), "arn:1").action == "ignore"
    assert control.begin(_changed(firm, REALM_B, change="reconnected"), "arn:1").action == "ignore"


def test_a_company_switch_supersedes_the_old_run_and_stops_its_execution(parts) -> None:
    control, runs, sfn, connections, published = parts
    firm = new_id("f")
    connections.connect(firm, REALM_A)
    old = control.begin(_changed(firm, REALM_A), "arn:exec:old")
    connections.connect(firm, REALM_B)
    new = control.begin(_changed(firm, REALM_B, change="switched", event_id="evt-2"), "arn:exec:new")
    assert new.action == "run"
    assert sfn.stopped == ["arn:exec:old"]
    assert old.ref is not None and runs.get(old.ref).status == "superseded"
    latest = runs.latest(firm)
    assert latest is not None and latest.ref == new.ref
    assert any(e.status == "superseded" and e.realm_id == REALM_A for e in published)


def _awaiting(control, runs, connections, firm: str) -> RunRef:
    connections.connect(firm, REALM_A)
    ref = control.begin(_changed(firm, REALM_A), "arn:exec:1").ref
    control.wait(ref, what="snapshot", token="tok-s")
    assert control.snapshot_ready(ref, manifest_key="snapshots/k", snapshot_id="s1")
    runs.save_plan(ref, summary={"totals": []}, keys={}, planned={}, now=0)
    control.wait(ref, what="approval", token="tok-a")
    return ref


def test_snapshot_ready_resumes_the_execution_once(parts) -> None:
    control, runs, sfn, connections, _ = parts
    firm = new_id("f")
    ref = _awaiting(control, runs, connections, firm)
    assert sfn.succeeded == [("tok-s", {"manifest_key": "snapshots/k", "snapshot_id": "s1"})]
    assert not control.snapshot_ready(ref, manifest_key="snapshots/k", snapshot_id="s1")
    assert len(sfn.succeeded) == 1


def test_approve_once_then_conflict(parts) -> None:
    control, runs, sfn, connections, _ = parts
    firm = new_id("f")
    ref = _awaiting(control, runs, connections, firm)
    run = control.approve(firm, ref.run_id, by="u-owner", correlation_id="c1")
    assert run.status == "running" and ("tok-a", {"approved_by": "u-owner"}) in sfn.succeeded
    with pytest.raises(Conflict):
        control.approve(firm, ref.run_id, by="u-owner", correlation_id="c2")
    with pytest.raises(NotFound):
        control.approve(firm, "is-00000000000000000000", by="u-owner", correlation_id="c3")
    with pytest.raises(NotFound):
        control.approve(new_id("f"), ref.run_id, by="u-owner", correlation_id="c4")  # another firm


def test_cancel_fails_the_wait_and_stops_the_execution(parts) -> None:
    control, runs, sfn, connections, _ = parts
    firm = new_id("f")
    ref = _awaiting(control, runs, connections, firm)
    run = control.cancel(firm, ref.run_id, by="u-admin", correlation_id="c1")
    assert run.status == "cancelled"
    assert sfn.failed == [("tok-a", CANCELLED_ERROR)] and sfn.stopped == ["arn:exec:1"]
    with pytest.raises(Conflict):
        control.cancel(firm, ref.run_id, by="u-admin", correlation_id="c2")
    with pytest.raises(Conflict):
        control.resume(firm, ref.run_id, correlation_id="c3")


def test_a_failed_run_resumes_in_a_new_execution_that_takes_it_over(parts) -> None:
    control, runs, sfn, connections, _ = parts
    firm = new_id("f")
    ref = _awaiting(control, runs, connections, firm)
    control.approve(firm, ref.run_id, by="u-owner", correlation_id="c1")
    control.fail(ref, error="InitialSyncFailed: boom", correlation_id="c2")
    assert runs.get(ref).status == "failed"
    control.resume(firm, ref.run_id, correlation_id="c3")
    (arn, name, payload) = sfn.started[0]
    assert arn == "arn:sm" and name == f"{ref.run_id}-r2" and payload == {"resume": ref.as_dict()}
    begun = control.begin(payload, f"arn:exec:{name}")
    assert begun.action == "run" and begun.resume_at == "execute"
    assert runs.get(ref).execution_arn == f"arn:exec:{name}"


class ChunkOutcomes:
    """The chunk executor's port: counts a chunk on the run, or raises what it was told to for that chunk."""

    def __init__(self, runs: InitialSyncRuns) -> None:
        self.runs, self.raising = runs, {}

    def run(self, ref: RunRef, chunk: Any) -> dict[str, Any]:
        if (chunk.phase, chunk.index) in self.raising:
            raise self.raising[(chunk.phase, chunk.index)]
        size = CHUNK_SIZES[chunk.index]
        counted = self.runs.chunk_done(ref, chunk.phase, chunk.index, ChunkCounts(done=size), now=0)
        return {"counts": {"done": size}, "counted": counted}


CHUNK_SIZES = {0: 90, 1: 10}


def _running_with_invoices(parts) -> tuple[RunRef, InitialSyncSteps, ChunkOutcomes]:
    control, runs, _, connections, published = parts
    firm = new_id("f")
    ref = _awaiting(control, runs, connections, firm)
    runs.save_plan(ref, summary={"totals": []}, keys={}, planned={"invoices": 100}, now=0)
    control.wait(ref, what="approval", token="tok-a2")
    control.approve(firm, ref.run_id, by="u-owner", correlation_id="c1")
    chunks = ChunkOutcomes(runs)
    steps = InitialSyncSteps(
        runs=runs,
        control=control,
        plan_steps=None,  # type: ignore[arg-type] - not these steps
        executor=chunks,  # type: ignore[arg-type]
        publisher=published,
        snapshot_bucket="b",
    )
    return ref, steps, chunks


def _chunk(ref: RunRef, index: int) -> dict[str, Any]:
    key = f"plans/{ref.firm_id}/{ref.run_id}/invoices/{index:05d}.json"
    return {"step": "chunk", "run": ref.as_dict(), "chunk": {"phase": "invoices", "index": index, "key": key}}


def test_a_phase_does_not_end_while_a_chunk_that_failed_for_good_is_not_counted(parts) -> None:
    control, runs, _, _, _ = parts
    ref, steps, chunks = _running_with_invoices(parts)
    chunks.raising[("invoices", 1)] = BadRequest("the plan chunk invoices:1 does not read")
    assert steps.handle(_chunk(ref, 0))["counted"] is True
    with pytest.raises(BadRequest):
        steps.handle(_chunk(ref, 1))
    done = {"step": "phase_done", "run": ref.as_dict(), "phase": "invoices"}
    # the Map came back without failing (moto's Distributed Map does so for a failed item): the phase's end
    # refuses, naming what is left and why
    with pytest.raises(PhaseIncomplete, match=r"10 of the 100 planned invoices did not run") as err:
        steps.handle(done)
    assert "invoices:1: the plan chunk invoices:1 does not read" in err.value.message
    assert runs.get(ref).phases["invoices"].get("status") != "completed"
    # where the Map itself fails (AWS: States.ExceedToleratedFailureThreshold), the run's error still says why
    steps.handle(
        {
            "step": "failed",
            "run": ref.as_dict(),
            "error": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "threshold exceeded"},
        }
    )
    failed = runs.get(ref)
    assert failed.status == "failed"
    assert failed.error.startswith("States.ExceedToleratedFailureThreshold: threshold exceeded")
    assert "invoices:1: the plan chunk invoices:1 does not read" in failed.error
    # the cause is fixed, the run resumes: the reasons are gone, the chunk runs, the phase ends
    control.resume(ref.firm_id, ref.run_id, correlation_id="c4")
    resumed = runs.get(ref)
    assert (resumed.status, resumed.error, resumed.chunk_error) == ("running", None, None)
    del chunks.raising[("invoices", 1)]
    assert steps.handle(_chunk(ref, 0))["counted"] is False  # counted once, before the failure
    assert steps.handle(_chunk(ref, 1))["counted"] is True
    steps.handle(done)
    ended = runs.get(ref)
    assert ended.phases["invoices"]["status"] == "completed" and ended.phases["invoices"]["done"] == 100


def test_a_chunk_retried_leaves_no_failure_reason(parts) -> None:
    _, runs, _, _, _ = parts
    ref, steps, chunks = _running_with_invoices(parts)
    chunks.raising[("invoices", 0)] = ChunkRetry("3 records of chunk invoices:0 will run again")
    with pytest.raises(ChunkRetry):
        steps.handle(_chunk(ref, 0))
    assert runs.get(ref).chunk_error is None
