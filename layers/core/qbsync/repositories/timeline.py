"""The per-record timeline (PRODUCT.md J.5): one item per run of a record, in the sync-state table.

A run is one pass of a record through the outbound sync (:meth:`SyncService.handle
<qbsync.outbound.service.SyncService.handle>`, the queue's and the initial sync's bulk path alike). Its steps
are collected in memory while it runs (:class:`qbsync.outbound.timeline.RunTrail`) and written here once,
at its end: batched (BatchWriteItem, 25 a call) when a batch is open, else one PutItem. Never one request
per step (issue 12: the AWS requests per synced record are watched).

=====================  ======================================================================================
attribute              meaning
=====================  ======================================================================================
``pk`` / ``sk``        the record's partition ``FIRM#{f}#REALM#{r}`` / ``TL#{record_type}#{platform_id}#``
                       ``{started_at}#{run_id}`` (``started_at`` UTC, fixed width
                       ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: a record's runs sort by time)
``gsi1pk`` / ``gsi1sk`` ``FIRM#{f}#REALM#{r}#TL#{yyyy-mm-dd}`` (the UTC day the run started) /
                       ``{started_at}#{record_type}#{platform_id}``: the runs of a day in time order (window
                       replays read the window's days, not the realm's timeline)
``firm_id`` …          ``firm_id``, ``realm_id``, ``entity_type``, ``platform_id``, ``run_id``
``started_at``         epoch seconds the run started (``finished_at``: ended)
``status``             the run's final status (``synced``, ``already_synced``, ``skipped``, ``failed``,
                       ``blocked``, ``stale``, ``retry`` …)
``steps``              JSON text: the list of steps (redacted by the recorder; at most
                       :data:`MAX_STEPS_BYTES`)
``ttl``                ``finished_at`` + :data:`TIMELINE_TTL_SECONDS` (30 days)
=====================  ======================================================================================

Readers drop items past their ``ttl`` themselves (DynamoDB deletes late, moto never).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.record_key import RecordKey

__all__ = [
    "MAX_STEPS_BYTES",
    "TIMELINE_PREFIX",
    "TIMELINE_TTL_SECONDS",
    "RunItem",
    "TimelineRepository",
    "timeline_stamp",
]

TIMELINE_PREFIX = "TL#"
TIMELINE_TTL_SECONDS = 30 * 24 * 3600
#: the steps of one run, serialized, at most (the recorder summarizes to fit)
MAX_STEPS_BYTES = 8000
#: runs of one record returned by :meth:`TimelineRepository.runs_of`, at most
MAX_RUNS = 50


def timeline_stamp(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, fixed width: sorts as time)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RunItem:
    """One run of one record as stored (``steps`` already redacted and capped by the recorder)."""

    key: RecordKey
    run_id: str
    started_at: float
    finished_at: float
    status: str
    steps: list[dict[str, Any]]

    def item(self) -> dict[str, Any]:
        steps = json.dumps(self.steps, separators=(",", ":"), sort_keys=True, default=str)
        if len(steps.encode()) > MAX_STEPS_BYTES:
            raise ValueError(f"a run's steps must fit in {MAX_STEPS_BYTES} bytes")
        return {
            "pk": self.key.pk,
            "sk": _sk(self.key, self.started_at, self.run_id),
            "gsi1pk": _day_pk(self.key.firm_id, self.key.realm_id, self.started_at),
            "gsi1sk": f"{timeline_stamp(self.started_at)}#{self.key.record_type}#{self.key.platform_id}",
            "firm_id": self.key.firm_id,
            "realm_id": self.key.realm_id,
            "entity_type": self.key.record_type,
            "platform_id": self.key.platform_id,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "steps": steps,
            "ttl": int(self.finished_at) + TIMELINE_TTL_SECONDS,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RunItem:
        key = RecordKey(
            str(item["firm_id"]), str(item["realm_id"]), str(item["entity_type"]), str(item["platform_id"])
        )
        try:
            steps = json.loads(str(item.get("steps") or "[]"))
        except ValueError:
            steps = []
        return cls(
            key=key,
            run_id=str(item.get("run_id") or ""),
            started_at=float(item.get("started_at") or 0),
            finished_at=float(item.get("finished_at") or 0),
            status=str(item.get("status") or "unknown"),
            steps=steps if isinstance(steps, list) else [],
        )


def _day_pk(firm_id: str, realm_id: str, epoch: float) -> str:
    return f"FIRM#{firm_id}#REALM#{realm_id}#TL#{timeline_stamp(epoch)[:10]}"


def _sk(key: RecordKey, started_at: float, run_id: str) -> str:
    return f"{TIMELINE_PREFIX}{key.record_type}#{key.platform_id}#{timeline_stamp(started_at)}#{run_id}"


class TimelineRepository:
    """The timeline items (see the module doc).

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).
    """

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def put(self, run: RunItem) -> None:
        """One PutItem (no batch open)."""
        self._table.put(run.item())

    def put_many(self, runs: Sequence[RunItem]) -> None:
        """BatchWriteItem, 25 a call (the runs of one batch)."""
        if runs:
            self._table.batch_write(puts=[r.item() for r in runs])

    def runs_of(self, key: RecordKey, *, now: float, limit: int = MAX_RUNS) -> list[RunItem]:
        """The record's runs still within their TTL, newest first (at most ``limit``)."""
        items = self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": key.pk, ":prefix": f"{TIMELINE_PREFIX}{key.record_type}#{key.platform_id}#"},
            forward=False,
            consistent=True,
            page_size=limit,
            max_items=limit * 2,
        )
        runs = [RunItem.from_item(i) for i in items if float(i.get("ttl") or 0) > now]
        return runs[:limit]

    def records_run_between(
        self, firm_id: str, realm_id: str, *, start: float, end: float, now: float
    ) -> list[tuple[str, str]]:
        """``(record_type, platform_id)`` of every record of the realm with a run that started in
        ``[start, end)`` and is still within its TTL, each once, in the order of their first run there.
        One Query of ``gsi1`` per UTC day of the window (``gsi1sk`` between the window's ends; the index is
        eventually consistent: a run of the last second may not be listed yet)."""
        if not start < end:
            return []
        seen: dict[tuple[str, str], None] = {}
        day = datetime.fromtimestamp(start, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while day.timestamp() < end:
            items = self._table.query(
                index="gsi1",
                key_condition="gsi1pk = :pk AND gsi1sk BETWEEN :a AND :b",
                values={
                    ":pk": _day_pk(firm_id, realm_id, day.timestamp()),
                    ":a": timeline_stamp(start),
                    ":b": timeline_stamp(end),
                },
            )
            for item in items:
                started = float(item.get("started_at") or 0)
                if start <= started < end and float(item.get("ttl") or 0) > now:
                    seen.setdefault((str(item["entity_type"]), str(item["platform_id"])), None)
            day += timedelta(days=1)
        return list(seen)
