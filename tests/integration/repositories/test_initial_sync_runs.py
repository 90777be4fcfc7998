"""InitialSyncRuns on moto: one run per event, the firm's pointer, and every transition a conditional write
with exactly one winner (two approvals, cancel against approval, two resumes, a chunk counted twice)."""

from __future__ import annotations

import pytest
from qbsync.errors import Conflict
from qbsync.repositories.initial_sync import (
    AWAITING_APPROVAL,
    CANCELLED,
    FAILED,
    PLANNING,
    RUNNING,
    WAITING_FOR_SNAPSHOT,
    ChunkCounts,
    InitialSyncRuns,
    RunRef,
)

from tests.integration.repositories.conftest import T0, new_id

REALM = "9130351234567890"


@pytest.fixture
def runs(table) -> InitialSyncRuns:
    return InitialSyncRuns(table)


@pytest.fixture
def ref() -> RunRef:
    return RunRef(new_id("f"), REALM, "is-" + new_id("r").replace("-", "")[:20])


def _planned(runs: InitialSyncRuns, ref: RunRef) -> None:
    runs.begin(ref, trigger="connected", execution_arn="arn:1", now=T0)
    runs.wait_for(ref, what="snapshot", token="tok-s", status=WAITING_FOR_SNAPSHOT, now=T0)
    runs.snapshot_ready(ref, manifest_key="snapshots/x/manifest.json", snapshot_id="s1", now=T0 + 1)
    runs.save_plan(
        ref,
        summary={"totals": [{"record_type": "invoice", "create": 3}]},
        keys={"invoices": "plans/x/invoices.json"},
        planned={"invoices": 3},
        now=T0 + 2,
    )
    runs.wait_for(ref, what="approval", token="tok-a", status=AWAITING_APPROVAL, now=T0 + 3)


def test_begin_creates_once_and_moves_the_firms_pointer(runs: InitialSyncRuns, ref: RunRef) -> None:
    run, created = runs.begin(ref, trigger="connected", execution_arn="arn:1", now=T0)
    assert created and run.status == WAITING_FOR_SNAPSHOT and run.execution_arn == "arn:1"
    again, created_again = runs.begin(ref, trigger="connected", execution_arn="arn:2", now=T0 + 5)
    assert not created_again and again.execution_arn == "arn:1"
    latest = runs.latest(ref.firm_id)
    assert latest is not None and latest.ref == ref
    assert set(latest.phases) == {"services", "customers", "invoices", "payments", "refunds", "fees"}


def test_snapshot_ready_resumes_once(runs: InitialSyncRuns, ref: RunRef) -> None:
    runs.begin(ref, trigger="connected", execution_arn="arn:1", now=T0)
    runs.wait_for(ref, what="snapshot", token="tok-s", status=WAITING_FOR_SNAPSHOT, now=T0)
    before = runs.snapshot_ready(ref, manifest_key="k", snapshot_id="s1", now=T0 + 1)
    assert before.task_token == "tok-s"
    after = runs.get(ref)
    assert after is not None and after.status == PLANNING and after.task_token is None
    assert after.manifest_key == "k"
    with pytest.raises(Conflict):
        runs.snapshot_ready(ref, manifest_key="k2", snapshot_id="s2", now=T0 + 2)


def test_plan_then_exactly_one_approval(runs: InitialSyncRuns, ref: RunRef) -> None:
    _planned(runs, ref)
    run = runs.get(ref)
    assert run is not None and run.status == AWAITING_APPROVAL
    assert run.phases["invoices"]["planned"] == 3 and run.plan_keys == {"invoices": "plans/x/invoices.json"}
    before = runs.approve(ref, by="u-owner", auto=False, now=T0 + 4)
    assert before.task_token == "tok-a"
    with pytest.raises(Conflict):
        runs.approve(ref, by="u-other", auto=False, now=T0 + 5)
    run = runs.get(ref)
    assert run is not None and run.status == RUNNING and run.approved_by == "u-owner"


def test_cancel_wins_over_a_later_approval_and_ends_once(runs: InitialSyncRuns, ref: RunRef) -> None:
    _planned(runs, ref)
    before = runs.end(ref, status=CANCELLED, now=T0 + 4, by="u-admin")
    assert before.task_token == "tok-a" and before.execution_arn == "arn:1"
    with pytest.raises(Conflict):
        runs.approve(ref, by="u-owner", auto=False, now=T0 + 5)
    with pytest.raises(Conflict):
        runs.end(ref, status=CANCELLED, now=T0 + 6)
    run = runs.get(ref)
    assert run is not None and run.status == CANCELLED and run.cancelled_by == "u-admin"


def test_a_chunk_is_counted_once(runs: InitialSyncRuns, ref: RunRef) -> None:
    _planned(runs, ref)
    runs.approve(ref, by="u", auto=False, now=T0)
    assert runs.chunk_done(ref, "invoices", 0, ChunkCounts(done=2, failed=1), now=T0 + 1)
    assert not runs.chunk_done(ref, "invoices", 0, ChunkCounts(done=2, failed=1), now=T0 + 2)
    assert runs.chunk_done(ref, "invoices", 1, ChunkCounts(changed=1), now=T0 + 3)
    run = runs.get(ref)
    assert run is not None
    assert run.phases["invoices"]["done"] == 2
    assert run.phases["invoices"]["failed"] == 1
    assert run.phases["invoices"]["changed"] == 1
    assert run.chunks_done == {"invoices:0", "invoices:1"}


def test_a_phase_starts_once_and_not_after_it_ended(runs: InitialSyncRuns, ref: RunRef) -> None:
    _planned(runs, ref)
    runs.approve(ref, by="u", auto=False, now=T0)
    started = runs.start_phase(ref, "invoices", now=T0 + 1)
    assert started is not None
    assert started.phases["invoices"]["status"] == "running" and started.current_phase == "invoices"
    assert started.phases["invoices"]["started_at"] == T0 + 1
    assert runs.start_phase(ref, "invoices", now=T0 + 2) is None  # a second chunk, a resumed execution
    runs.phase(ref, "invoices", status="completed", now=T0 + 3)
    assert runs.start_phase(ref, "invoices", now=T0 + 4) is None
    run = runs.get(ref)
    assert run is not None
    assert run.phases["invoices"]["status"] == "completed" and run.phases["invoices"]["started_at"] == T0 + 1


def test_failed_run_reopens_where_it_was_and_one_resume_takes_it(runs: InitialSyncRuns, ref: RunRef) -> None:
    _planned(runs, ref)
    runs.approve(ref, by="u", auto=False, now=T0)
    runs.end(ref, status=FAILED, now=T0 + 1, error="InitialSyncFailed: QuickBooks refused")
    reopened = runs.reopen(ref, now=T0 + 2)
    assert reopened.status == RUNNING and reopened.error is None
    taken = runs.take_over(ref, execution_arn="arn:2", previous_arn="arn:1", now=T0 + 3)
    assert taken.execution_arn == "arn:2" and taken.executions == 2
    with pytest.raises(Conflict):
        runs.take_over(ref, execution_arn="arn:3", previous_arn="arn:1", now=T0 + 4)
    with pytest.raises(Conflict):
        runs.reopen(ref, now=T0 + 5)  # not failed any more
