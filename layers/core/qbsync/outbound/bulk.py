"""A chunk of a firm's existing records synced through QuickBooks batch calls (issue 13 item 3).

:meth:`BulkRunner.run` takes a chunk of platform events (the initial sync's "Created" events of one firm and
one record type, e.g. 300 invoices) and runs every one of them through :meth:`SyncService.handle
<qbsync.outbound.service.SyncService.handle>`: the same claim, prerequisites, mapping, skips, error center,
status events and exactly-once writer (:class:`~qbsync.outbound.writer.ExactlyOnceWriter`) as a platform
event from the queue. Nothing about a record's guarantees differs:

* **One writer, one record state.** Each record is claimed (its lease), has its intent written before QBO is
  called and its outcome after; a record a platform event changed meanwhile (synced at a newer version:
  ``stale``; the same version: ``already_synced``) is not written again, and a record another worker holds
  right now comes back as ``retry`` (:class:`~qbsync.errors.LeaseHeld`), not written.
* **Batch calls.** The chunk runs on up to ``max_workers`` (30) threads, each with its own
  :class:`SyncService` whose QBO client is a :class:`~qbsync.qbo.batching.CoalescingQboClient` over the
  chunk's :class:`~qbsync.qbo.batching.WriteCoalescer`: the creates (and updates) of the threads leave as
  one QBO batch call when every thread is waiting on its write or done (≤ 30 items a call). A batch whose
  answer is lost after commit is :class:`~qbsync.errors.UncertainOutcome` for each of its records: the
  intent stays, the record comes back as ``retry``, and its next run looks the object up (the qbsync marker)
  and adopts it before any resend.
* **Reads.** The chunk's connection, settings, records and prerequisites are read once before the threads
  start (:meth:`SyncService.read_ahead`: one BatchGetItem per 100 keys), with the exact-name matches of its
  new accounts and services (one QBO query per 20 names). The chunk opens ONE batch scope
  (:mod:`qbsync.outbound.batch`) that every thread joins, after :meth:`SyncService.prepare` with that read:
  the chunk's status events leave together when it is done (ten a PutEvents call), and the records waiting
  on its synced ones are released then, one query per waiting status for the whole chunk.

**QuickBooks down.** When a record comes back ``retry`` because QuickBooks itself failed it - unavailable
after the client's retries (:class:`~qbsync.errors.ServiceUnavailable`), still throttled
(:class:`~qbsync.errors.Throttled`), a batch whose answer never came
(:class:`~qbsync.errors.UncertainOutcome`), a connection to reconnect
(:class:`~qbsync.errors.ReconnectRequired`) - the chunk stops: no thread starts another record, and each
record not started yet is ``retry`` with the same reason (it was never claimed, so nothing about it
changed). Records of the chunk already running finish as they would. Whoever runs the chunk backs off and
runs it again (the initial sync's state machine: Retry on ``ChunkRetry``), instead of the chunk's threads
sending every remaining record into an outage, each through the client's own retries.

Outcomes are :class:`~qbsync.outbound.job.Outcome` s, one per event, in the order of the chunk. Besides the
service's statuses (``synced``, ``adopted``, ``already_synced``, ``stale``, ``skipped``, ``blocked``,
``failed`` - the error center has it -, ``paused``, ``ignored``), a record whose run raised what the queue
would retry (:class:`~qbsync.errors.RetryableError` incl. LeaseHeld and Throttled, UncertainOutcome,
Conflict, ReconnectRequired) is ``retry`` with ``reason`` = the error's class and ``error_code`` = its code:
run those events again (a later chunk, the state machine's retry). A chunk whose status events could not
be sent (or whose releases failed) turns every outcome into ``retry`` (a rerun announces them again:
``already_synced``).
:class:`~qbsync.errors.ConfigurationError` and errors that are bugs propagate, after every thread ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from qbsync import vocab
from qbsync.errors import (
    ConfigurationError,
    QbsyncError,
    ReconnectRequired,
    ServiceUnavailable,
    Throttled,
    UncertainOutcome,
)
from qbsync.models.platform_events import PlatformEvent
from qbsync.outbound.batch import BatchScope, batch_scope, joined
from qbsync.outbound.job import Outcome
from qbsync.outbound.service import ReadAhead, SyncService
from qbsync.qbo.batching import WriteCoalescer
from qbsync.qbo.client import BATCH_MAX_ITEMS

__all__ = ["MAX_CHUNK", "QBO_DOWN", "RETRY", "BulkRunner", "ServiceFactory"]

logger = logging.getLogger("qbsync.outbound.bulk")

#: ``(coalescer, worker number) -> SyncService`` whose QBO clients send their writes through ``coalescer``
ServiceFactory = Callable[[WriteCoalescer, int], SyncService]

#: the most events one chunk holds
MAX_CHUNK = 1000
#: the outcome status of a record to run again
RETRY = "retry"
#: the errors that say QuickBooks, not the record, failed: the chunk stops starting records (module doc)
QBO_DOWN: tuple[type[QbsyncError], ...] = (ServiceUnavailable, Throttled, UncertainOutcome, ReconnectRequired)

_Share = list[tuple[int, PlatformEvent]]


class BulkRunner:
    """Runs chunks of one firm's records through the outbound sync with QBO batch calls (see the module doc).

    Args:
        services: builds one worker's :class:`SyncService` over the chunk's coalescer
            (:func:`qbsync.wiring.build_bulk_runner`).
        max_workers: threads per chunk (at most 30: one batch call holds one write of each).
    """

    def __init__(self, services: ServiceFactory, *, max_workers: int = BATCH_MAX_ITEMS) -> None:
        if not isinstance(max_workers, int) or not 1 <= max_workers <= BATCH_MAX_ITEMS:
            raise ValueError(f"max_workers must be 1 to {BATCH_MAX_ITEMS}")
        self._services = services
        self._max_workers = max_workers

    def run(self, events: Sequence[PlatformEvent], *, force: Collection[str] = ()) -> list[Outcome]:
        """Sync the chunk; one outcome per event, in order. ``force``: the record ids to sync even where the
        firm's rules would skip them for no activity yet (the initial sync's accounts whose invoices come in a
        later phase: :meth:`SyncService.handle`'s ``force``).

        Raises:
            ValueError: an empty or oversized chunk, events of more than one firm or record type, or one
                record twice (nothing is run).
            ConfigurationError: the deployment is wrong (raised after every thread ended).
        """
        _check_chunk(events)
        workers = min(self._max_workers, len(events))
        shares: list[_Share] = [[] for _ in range(workers)]
        for index, event in enumerate(events):
            shares[index % workers].append((index, event))
        coalescer = WriteCoalescer(workers)
        services = [self._services(coalescer, number) for number in range(workers)]
        ahead = _read_ahead(services[0], events)
        outcomes: list[Outcome | None] = [None] * len(events)
        breaker = _Breaker()
        try:
            # one batch scope for the chunk, joined by every thread: the dependents of its synced records
            # are released with one query per status, and its status events leave ten a call, at the end
            with batch_scope() as scope:
                context = _ShareContext(ahead, frozenset(force), scope, breaker)
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk-sync") as pool:
                    futures = [
                        pool.submit(_run_share, coalescer, service, share, context)
                        for service, share in zip(services, shares, strict=True)
                    ]
                for future in futures:
                    for index, outcome in future.result():  # re-raises a thread's ConfigurationError or bug
                        outcomes[index] = outcome
        except ConfigurationError:
            raise
        except QbsyncError as err:
            # the releases or the status events at the chunk's close failed: a rerun does them again
            # (its records are already_synced and announced again)
            logger.warning("bulk chunk: closing it failed, its records run again", extra=err.context())
            outcomes = [_retry(event, err) for event in events]
        done = [o for o in outcomes if o is not None]
        assert len(done) == len(events)
        logger.info(
            "bulk chunk run",
            extra={
                "firm_id": events[0].firm_id,
                "records": len(events),
                "workers": workers,
                "batch_calls": len(coalescer.batch_sizes),
                "batched_writes": sum(coalescer.batch_sizes),
                "retry": sum(1 for o in done if o.status == RETRY),
                "stopped_by": breaker.reason,
            },
        )
        return done


def _check_chunk(events: Sequence[PlatformEvent]) -> None:
    if not events:
        raise ValueError("a chunk needs at least one event")
    if len(events) > MAX_CHUNK:
        raise ValueError(f"a chunk holds at most {MAX_CHUNK} events")
    if len({e.firm_id for e in events}) != 1:
        raise ValueError("every event of a chunk must be of one firm")
    types = {vocab.RECORD_TYPE_OF.get(type(e).ENTITY) for e in events}
    if len(types) != 1 or None in types:
        raise ValueError("every event of a chunk must be of one synced record type")
    ids = [e.record_id for e in events]
    if len(set(ids)) != len(ids):
        raise ValueError("a chunk holds each record once")


def _read_ahead(service: SyncService, events: Sequence[PlatformEvent]) -> ReadAhead | None:
    """The chunk's connection, settings, records and prerequisites, read once for every thread (None when
    the read fails: each thread then reads its share itself)."""
    try:
        return service.read_ahead(events)
    except ConfigurationError:
        raise
    except QbsyncError as err:
        logger.warning("reading the chunk ahead failed: each thread reads its share", extra=err.context())
        return None


class _Breaker:
    """Trips on the first outcome that says QuickBooks is down (:data:`QBO_DOWN`); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tripped: Outcome | None = None

    def trip(self, outcome: Outcome) -> None:
        with self._lock:
            if self._tripped is None:
                self._tripped = outcome

    @property
    def tripped(self) -> Outcome | None:
        with self._lock:
            return self._tripped

    @property
    def reason(self) -> str | None:
        tripped = self.tripped
        return tripped.reason if tripped is not None else None


@dataclass(frozen=True)
class _ShareContext:
    """What every thread of a chunk shares: the chunk's read ahead, the ids to force, its batch scope, and
    the breaker that stops it when QuickBooks is down."""

    ahead: ReadAhead | None
    force: frozenset[str]
    scope: BatchScope
    breaker: _Breaker


def _run_share(
    coalescer: WriteCoalescer, service: SyncService, share: _Share, context: _ShareContext
) -> list[tuple[int, Outcome]]:
    """One worker thread: its share of the chunk, each record in turn, its writes batched with the others',
    inside the chunk's batch scope."""
    with coalescer.party(), joined(context.scope):
        service.prepare([event for _, event in share], context.ahead)
        done: list[tuple[int, Outcome]] = []
        for index, event in share:
            tripped = context.breaker.tripped
            if tripped is not None:  # QuickBooks is down: not started, so nothing about it changed
                done.append((index, _not_started(event, tripped)))
                continue
            done.append((index, _run_one(service, event, context)))
        return done


def _run_one(service: SyncService, event: PlatformEvent, context: _ShareContext) -> Outcome:
    try:
        return service.handle(event, force=event.record_id in context.force)
    except ConfigurationError:
        raise
    except QbsyncError as err:  # DataErrors never get here: the service records them (failed)
        logger.info(
            "bulk record to run again",
            extra={"event_id": event.event_id, "platform_id": event.record_id, **err.context()},
        )
        outcome = _retry(event, err)
        if isinstance(err, QBO_DOWN):
            context.breaker.trip(outcome)
        return outcome


def _not_started(event: PlatformEvent, tripped: Outcome) -> Outcome:
    return Outcome(
        RETRY,
        vocab.RECORD_TYPE_OF.get(type(event).ENTITY),
        event.record_id,
        reason=tripped.reason,
        error_code=tripped.error_code,
    )


def _retry(event: PlatformEvent, err: QbsyncError) -> Outcome:
    return Outcome(
        RETRY,
        vocab.RECORD_TYPE_OF.get(type(event).ENTITY),
        event.record_id,
        reason=type(err).__name__,
        error_code=err.code,
    )
