"""qbsync.outbound.batch: what one SQS batch shares (reads once, deferred work once, events sent together)."""

from __future__ import annotations

from typing import Any

import pytest
from qbsync.outbound.batch import MAX_HELD_EVENTS, BatchedPublisher, batch_scope, current_scope


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[Any]] = []
        self.fail = fail

    def publish(self, events: Any) -> None:
        if self.fail:
            raise RuntimeError("PutEvents refused")
        self.calls.append(list(events))


def test_events_published_in_a_batch_leave_together_when_it_closes() -> None:
    sent = Recorder()
    publisher = BatchedPublisher(sent)
    with batch_scope():
        publisher.publish(["synced acct-1"])
        publisher.publish(["synced inv-1", "raised inv-2"])
        assert sent.calls == []  # held while the batch runs
    assert sent.calls == [["synced acct-1", "synced inv-1", "raised inv-2"]]
    assert current_scope() is None


def test_outside_a_batch_events_leave_at_once() -> None:
    sent = Recorder()
    BatchedPublisher(sent).publish(["synced acct-1"])
    assert sent.calls == [["synced acct-1"]]


def test_a_runaway_batch_sends_what_it_holds_before_growing_past_the_bound() -> None:
    sent = Recorder()
    publisher = BatchedPublisher(sent)
    with batch_scope():
        publisher.publish([f"e{i}" for i in range(MAX_HELD_EVENTS)])
        assert [len(c) for c in sent.calls] == [MAX_HELD_EVENTS]
        publisher.publish(["late"])
    assert sent.calls[-1] == ["late"]


def test_a_failed_send_at_close_is_raised_so_the_batch_comes_back() -> None:
    publisher = BatchedPublisher(Recorder(fail=True))
    with pytest.raises(RuntimeError, match="PutEvents refused"), batch_scope():
        publisher.publish(["synced acct-1"])


def test_a_batch_ending_in_error_keeps_its_error_sends_what_it_holds_and_skips_deferred_work() -> None:
    sent = Recorder()
    publisher = BatchedPublisher(sent)
    finished: list[list[Any]] = []
    with pytest.raises(ValueError, match="a bug"), batch_scope() as scope:
        publisher.publish(["synced acct-1"])
        scope.defer("release", "inv-1", finished.append)
        raise ValueError("a bug")
    assert finished == []  # the redelivered records release then
    assert sent.calls == [["synced acct-1"]]  # what was written is still announced


def test_a_send_failure_never_hides_the_error_the_batch_ended_with() -> None:
    publisher = BatchedPublisher(Recorder(fail=True))
    with pytest.raises(ValueError, match="a bug"), batch_scope():
        publisher.publish(["synced acct-1"])
        raise ValueError("a bug")


def test_a_read_is_done_once_per_batch_until_forgotten_and_never_shared_across_batches() -> None:
    reads: list[str] = []

    def read() -> str:
        reads.append("connection")
        return f"connection #{len(reads)}"

    with batch_scope() as scope:
        assert scope.remember(("connection", "firm-1"), read) == "connection #1"
        assert scope.remember(("connection", "firm-1"), read) == "connection #1"
        scope.forget(("connection", "firm-1"))
        assert scope.remember(("connection", "firm-1"), read) == "connection #2"
    with batch_scope() as scope:
        assert scope.remember(("connection", "firm-1"), read) == "connection #3"


def test_deferred_work_runs_once_with_every_item_in_first_use_order() -> None:
    done: list[tuple[str, list[Any]]] = []
    with batch_scope() as scope:
        scope.defer("release", "inv-1", lambda items: done.append(("release", items)))
        scope.defer("notes", "n-1", lambda items: done.append(("notes", items)))
        scope.defer("release", "inv-2", lambda items: done.append(("release", items)))
        assert done == []
    assert done == [("release", ["inv-1", "inv-2"]), ("notes", ["n-1"])]
