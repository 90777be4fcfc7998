"""Timeline items on the real table (qbsync.repositories.timeline): a record's runs newest first, expired
ones never returned (moto keeps them), and the records of a time window read day by day through gsi1."""

from __future__ import annotations

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.record_key import RecordKey
from qbsync.repositories.timeline import TIMELINE_TTL_SECONDS, RunItem, TimelineRepository

from tests.integration.repositories.conftest import new_id

DAY = 24 * 3600
T0 = 1_795_449_900.0  # 2026-11-17T..Z


def _run(key: RecordKey, started_at: float, status: str = "synced") -> RunItem:
    steps = [{"step": "event", "at": started_at}, {"step": "final", "at": started_at + 1, "status": status}]
    return RunItem(key, new_id("r"), started_at, started_at + 1, status, steps)


def test_a_records_runs_come_newest_first_and_expired_runs_are_left_out(table: DynamoTable) -> None:
    repo = TimelineRepository(table)
    key = RecordKey(new_id("f"), "9130351234567890", "invoice", new_id("inv"))
    other = key.sibling("invoice", new_id("inv"))
    repo.put(_run(key, T0, "failed"))
    repo.put_many([_run(key, T0 + 60), _run(other, T0 + 30)])

    runs = repo.runs_of(key, now=T0 + 120)

    assert [r.status for r in runs] == ["synced", "failed"]
    assert runs[1].steps[-1]["status"] == "failed"
    # 30 days after the first run ended it is gone for readers, whether or not DynamoDB deleted it yet
    later = repo.runs_of(key, now=T0 + 1 + TIMELINE_TTL_SECONDS)
    assert [r.status for r in later] == ["synced"]


def test_a_window_lists_each_record_that_started_a_run_in_it_once_across_days(table: DynamoTable) -> None:
    repo = TimelineRepository(table)
    firm, realm = new_id("f"), "9130351234567890"
    key = RecordKey(firm, realm, "service", "svc-0")
    early, a, b, c, late = (key.sibling("service", f"svc-{n}") for n in range(1, 6))
    repo.put_many(
        [
            _run(early, T0 - 1),
            _run(a, T0),  # the window's first instant is in it
            _run(b, T0 + DAY),  # the next UTC day
            _run(b, T0 + DAY + 5),  # a second run: listed once
            _run(c, T0 + 2 * DAY - 1),
            _run(late, T0 + 2 * DAY),  # the window's end is not in it
            _run(RecordKey(new_id("f"), realm, "service", "svc-2"), T0 + 10),  # another firm
        ]
    )

    found = repo.records_run_between(firm, realm, start=T0, end=T0 + 2 * DAY, now=T0 + 2 * DAY)

    assert found == [("service", "svc-2"), ("service", "svc-3"), ("service", "svc-4")]
    assert repo.records_run_between(firm, realm, start=T0, end=T0 + 2 * DAY, now=T0 + 40 * DAY) == []
