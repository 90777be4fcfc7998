"""Running one chunk of an approved plan (the item processor of each phase's Distributed Map).

A chunk is a file of at most :data:`~qbsync.initial_sync.plan.CHUNK_SIZE` plan lines of one record type.
:meth:`ChunkExecutor.run` runs it exactly as planned:

- ``skip`` lines that are already in QuickBooks at their version are counted done and not touched;
- ``link`` lines are linked to the QuickBooks object the plan matched: the record is claimed at its planned
  version (the same lease and version rules as every write) and marked synced to that object (with the line's
  ``note``: a service on QuickBooks' "Sales" item keeps :data:`qbsync.vocab.SALES_ITEM_NOTE`), nothing written
  to QuickBooks, and announced "Sync Status Changed" (synced) like every other sync (its open error, if it
  had one, is resolved);
- ``block`` lines of ``invalid_in_snapshot`` (the line did not parse) that name a record: the record is
  claimed at the line's version and marked failed, with an error-center entry of code
  ``invalid_in_snapshot`` naming the fields (never values), "Sync Status Changed" (failed) and "Sync Error
  Raised" (:class:`~qbsync.outbound.status.StatusReporter`, the outbound sync's own). The platform's next
  event for the record syncs it normally and resolves the entry. A chunk run again finds the record failed
  with that open entry and writes nothing (one entry, one attempt), announcing "Sync Status Changed" again
  (a link already applied is announced again too: the repeat may replace an announcement that was lost).
  A line without a readable id, or a second line of a record (``duplicate_in_snapshot``), is a finding of
  the plan only and counted failed;
- every other line (``create``, the other skips, ``block``) runs through the outbound sync
  (:class:`ChunkRunner`: the one exactly-once writer, its skips, gates and error center), so each record ends
  synced, skipped with a reason, failed with an error, or blocked on a named prerequisite. In Lambda the
  runner is :class:`qbsync.outbound.bulk.BulkRunner` (``wiring.bulk_runner``): the chunk's records on worker
  threads, their creates leaving as QuickBooks batch calls with the same exactly-once guarantee.

A record a platform event changed after the plan is not written at the planned version: its claim is
stale or superseded and it is counted ``changed`` (its own event syncs it). Records that could not run now
(a lease held by an event's worker, a QuickBooks or AWS fault) make the chunk raise :class:`ChunkRetry`: the
state machine retries it with back-off, and records that finished the first time are ``already_synced``.
The chunk's counters are added to the run once, with the chunk's id (:meth:`InitialSyncRuns.chunk_done`).
The first chunk of a phase to run starts the phase (:meth:`InitialSyncRuns.start_phase`, once) and announces
it ("Initial Sync Progress", ``phase_status`` ``started``) before its records run; each chunk counted
announces ``running``.

Before anything runs, the run must still be ``running`` (a cancel stops at the next chunk), the firm must
still be connected to the run's company (after a company switch nothing of the old plan is written).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qbsync import vocab
from qbsync.errors import BadRequest, Conflict, LeaseHeld, QbsyncError, RetryableError
from qbsync.initial_sync.plan import ALREADY_SYNCED, PlanLine
from qbsync.initial_sync.runs import progress_event
from qbsync.models.platform_events import PlatformEvent, parse_platform_event
from qbsync.models.record_key import RecordKey
from qbsync.outbound.batch import BatchedPublisher, batch_scope
from qbsync.outbound.job import Outcome
from qbsync.outbound.mapping import MappingError
from qbsync.outbound.status import ErrorLog as StatusErrorLog
from qbsync.outbound.status import StatusReporter
from qbsync.qbo.client import deep_link
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.initial_sync import RUNNING, ChunkCounts, InitialSyncRuns, Run, RunRef
from qbsync.repositories.records import (
    FAILED,
    ClaimOptions,
    ClaimOutcome,
    QboLink,
    RecordError,
    RecordsRepository,
    SyncRecord,
)

__all__ = ["ChunkExecutor", "ChunkRetry", "ChunkRunner"]

logger = logging.getLogger("qbsync.initial_sync")

_DONE = frozenset({"synced", "adopted", "already_synced"})
_LINK_ENTITY = {"client_account": "Customer", "service": "Item"}


class ChunkRetry(RetryableError):
    """Some records of the chunk could not run now: the state machine runs the chunk again (``ChunkRetry`` is
    the error name its Retry matches)."""

    code = "initial_sync_chunk_retry"


class ChunkRunner(Protocol):
    """Runs a chunk's platform events through the outbound sync; one :class:`Outcome` per event, in order;
    an event that could not run now has status ``retry``. ``force``: the record ids whose settings-based
    skips do not apply (client accounts the plan found activity for in the snapshot)."""

    def run(self, events: Sequence[PlatformEvent], *, force: Collection[str] = ()) -> list[Outcome]: ...


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Publisher(Protocol):
    def publish(self, events: Any) -> Any: ...


class Objects(Protocol):
    def get_text(self, key: str) -> str: ...


class ErrorLog(StatusErrorLog, Protocol):
    """The outbound sync's error-log port (the error center's one writer), plus reading an open entry."""

    def current(self, firm_id: str, entity_type: str, platform_id: str) -> Any: ...


@dataclass(frozen=True)
class ChunkRef:
    """Which chunk: its phase, index and object key (an item of the phase's chunk index)."""

    phase: str
    index: int
    key: str


class ChunkExecutor:
    """Runs chunks of approved plans (module doc).

    Args:
        runs: the run items; ``objects``: the snapshot bucket; ``records``: the records repository (links);
        connections: the firms' connections; ``runner``: builds the :class:`ChunkRunner` of a chunk;
        publisher: qbsync events; ``errorlog``: the error center (lines that did not parse);
        ``owner_id``: the lease owner of links; ``app_base_url``: deep links.
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        runs: InitialSyncRuns,
        objects: Objects,
        records: RecordsRepository,
        connections: Connections,
        runner: Callable[[], ChunkRunner],
        publisher: Publisher,
        errorlog: ErrorLog,
        owner_id: str,
        app_base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runs = runs
        self._objects = objects
        self._records = records
        self._connections = connections
        self._runner = runner
        self._publisher = publisher
        self._owner = owner_id
        self._app_base_url = app_base_url
        self._clock = clock
        self._errorlog = errorlog
        # the records' status events of a chunk leave together when its scope closes (qbsync.outbound.batch)
        self._status = StatusReporter(errorlog=errorlog, publisher=BatchedPublisher(publisher), clock=clock)

    def run(self, ref: RunRef, chunk: ChunkRef) -> dict[str, Any]:
        """Run one chunk; returns what it did (``counts``, or ``skipped`` with why nothing ran).

        Raises ChunkRetry when records must run again, RetryableError on faults of AWS."""
        run = self._runs.get(ref)
        if run is None or run.status != RUNNING:
            return {"skipped": f"the run is {run.status if run else 'gone'}"}
        chunk_id = f"{chunk.phase}:{chunk.index}"
        if chunk_id in run.chunks_done:
            return {"skipped": "counted before"}
        connection = self._connections.get(ref.firm_id)
        if connection is None or connection.realm_id != ref.realm_id:
            return {"skipped": "the firm is not connected to this company any more"}
        if connection.status != CONNECTED:
            raise ChunkRetry(f"QuickBooks is {connection.status.replace('_', ' ')}: the chunk waits")
        if run.phases.get(chunk.phase, {}).get("status") not in ("running", "completed"):
            started = self._runs.start_phase(ref, chunk.phase, now=self._clock())
            if started is not None:  # this chunk started the phase: announced before its records run
                self._publish_progress(started, "started")
        lines = self._lines(chunk)
        counts = self._execute(ref, lines)
        retry = counts.pop("retry", 0)
        if retry:
            logger.info(
                "chunk has records to retry", extra={**ref.as_dict(), "chunk": chunk_id, "retry": retry}
            )
            raise ChunkRetry(f"{retry} records of chunk {chunk_id} will run again")
        counted = self._runs.chunk_done(
            ref, chunk.phase, chunk.index, ChunkCounts(**counts), now=self._clock()
        )
        if counted:
            self._announce(ref)
        return {"counts": counts, "counted": counted}

    def _lines(self, chunk: ChunkRef) -> list[PlanLine]:
        try:
            body = json.loads(self._objects.get_text(chunk.key))
            return [PlanLine.from_dict(line) for line in body["lines"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest(f"the plan chunk {chunk.phase}:{chunk.index} does not read") from exc

    def _execute(self, ref: RunRef, lines: Sequence[PlanLine]) -> dict[str, int]:
        counts: Counter[str] = Counter()
        events: list[PlatformEvent] = []
        # the plan found these accounts' activity in the snapshot: their invoices and payments come in a
        # later phase, so the sync must not skip them as "no activity yet"
        force = {
            line.platform_id
            for line in lines
            if line.record_type == "client_account" and line.action == "create" and line.platform_id
        }
        with batch_scope():  # the links' and bad lines' status events: one PutEvents call per ten
            for line in lines:
                if line.action == "skip" and line.reason == ALREADY_SYNCED:
                    counts["done"] += 1
                elif line.event is None:
                    counts[self._unreadable(ref, line)] += 1
                elif line.action == "link" and line.target_qbo_id:
                    counts[self._link(ref, line)] += 1
                else:
                    events.append(parse_platform_event(line.event))
        if events:
            for outcome in self._runner().run(events, force=force):
                counts[_counter(outcome)] += 1
        return dict(counts)

    def _link(self, ref: RunRef, line: PlanLine) -> str:
        """Link the record to the object the plan matched: claimed at the planned version, then synced."""
        assert line.platform_id and line.target_qbo_id and line.event
        key = RecordKey(ref.firm_id, ref.realm_id, line.record_type, line.platform_id)
        entity = _LINK_ENTITY[line.record_type]
        try:
            claim = self._records.claim(
                key,
                version=line.version,
                owner=self._owner,
                lease_seconds=60,
                now=self._clock(),
                options=ClaimOptions("create", line.event),
            )
        except (LeaseHeld, Conflict):
            return "retry"
        if claim.outcome in (ClaimOutcome.STALE, ClaimOutcome.SUPERSEDED):
            return "changed"
        if claim.outcome is ClaimOutcome.ALREADY_APPLIED:
            # linked by an earlier run of the chunk: announced again, as a redelivery is (its announcement may
            # be the one that was lost)
            self._announce_synced(key, claim.record, line.version, ref)
            return "done"
        try:
            url = deep_link(self._app_base_url, entity, line.target_qbo_id, realm_id=ref.realm_id)
        except ValueError:
            url = None
        qbo_id = claim.record.qbo_id or line.target_qbo_id
        synced = self._records.mark_synced(
            key,
            owner=self._owner,
            version=line.version,
            link=QboLink(entity, qbo_id, claim.record.sync_token, url, note=line.note),
            now=self._clock(),
            operation="create",
        )
        self._announce_synced(key, synced, line.version, ref)
        return "done"

    def _announce_synced(self, key: RecordKey, synced: SyncRecord, version: int, ref: RunRef) -> None:
        self._status.record_synced(key, synced, correlation_id=ref.run_id)
        if synced.error_open:
            self._records.clear_error_open(key, version=version)  # after the resolve: redone if lost

    def _unreadable(self, ref: RunRef, line: PlanLine) -> str:
        """A line that did not parse: the record it names fails with an error-center entry (module doc).
        Lines without a readable id and second lines of a record are the plan's findings only."""
        if (line.reason or "").split(":", 1)[0] != vocab.INVALID_IN_SNAPSHOT or not line.platform_id:
            return "failed"
        key = RecordKey(ref.firm_id, ref.realm_id, line.record_type, line.platform_id)
        current = self._records.get(key)
        if (
            current is not None
            and max(current.claimed_version or 0, current.last_event_version or 0) > line.version
        ):
            return "changed"  # a newer version came as an event: its own sync says what became of it
        reported = self._reported(key, current, line.version)
        if reported is not None:  # announced again, as a redelivery is; nothing written
            self._status.record_failed_again(key, reported, correlation_id=ref.run_id)
            return "failed"
        try:
            claim = self._records.claim(
                key,
                version=line.version,
                owner=self._owner,
                lease_seconds=60,
                now=self._clock(),
                options=ClaimOptions("create", seen=current),
            )
        except (LeaseHeld, Conflict):
            return "retry"
        if claim.outcome in (ClaimOutcome.STALE, ClaimOutcome.SUPERSEDED):
            return "changed"
        if claim.outcome is ClaimOutcome.ALREADY_APPLIED:
            return "done"
        problem = (line.reason or "").split(":", 1)[-1].strip() or "the line does not parse"
        err = MappingError(
            vocab.RECORD_TYPE_INFO[line.record_type].category,  # type: ignore[arg-type]
            vocab.INVALID_IN_SNAPSHOT,
            f"The platform's export of this record does not read: {problem}"[:1000],
            entity=line.record_type,
            entity_id=line.platform_id,
        )
        self._records.mark_failed(
            key,
            owner=self._owner,
            error=RecordError(
                code=vocab.INVALID_IN_SNAPSHOT,
                category=vocab.record_error_category(line.record_type),
                message=err.explanation,
            ),
            now=self._clock(),
            keep_intent=True,  # an intent of an earlier write must still be resolved by the next one
        )
        self._status.record_failure(key, err, correlation_id=ref.run_id)
        return "failed"

    def _reported(self, key: RecordKey, current: SyncRecord | None, version: int) -> Any:
        """The record's entry when the line failed it before (a chunk run again) and the entry is still open
        or skipped; None otherwise."""
        if (
            current is None
            or current.status != FAILED
            or current.error is None
            or current.error.code != vocab.INVALID_IN_SNAPSHOT
            or current.claimed_version != version
        ):
            return None
        entry = self._errorlog.current(key.firm_id, key.record_type, key.platform_id)
        return entry if entry is not None and entry.code == vocab.INVALID_IN_SNAPSHOT else None

    def _announce(self, ref: RunRef) -> None:
        run = self._runs.get(ref)
        if run is not None:
            self._publish_progress(run, "running")

    def _publish_progress(self, run: Run, phase_status: str) -> None:
        try:
            self._publisher.publish(
                [progress_event(run, correlation_id=run.ref.run_id, phase_status=phase_status)]
            )
        except QbsyncError as err:
            logger.warning(
                "initial sync progress not published", extra={**run.ref.as_dict(), **err.context()}
            )


def _counter(outcome: Outcome) -> str:
    if outcome.status in _DONE:
        return "done"
    if outcome.status == "stale":
        return "changed"
    if outcome.status in ("failed", "skipped", "blocked"):
        return outcome.status
    if outcome.status == "ignored":
        return "skipped"
    return "retry"  # retry, paused: it did not end
