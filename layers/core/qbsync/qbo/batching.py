"""QuickBooks writes of several worker threads sent together as batch calls (issue 13 item 3, QBO.md §2.9).

The bulk path of the initial sync (:mod:`qbsync.outbound.bulk`) runs a chunk of records on N worker threads,
each through the one exactly-once writer (:class:`~qbsync.outbound.writer.ExactlyOnceWriter`), which calls
``qbo.create(...)`` / ``qbo.update(...)`` as it always does. Here those calls meet:

* :class:`WriteCoalescer` is shared by the chunk's workers. It is built for ``parties`` threads; a thread
  takes part inside :meth:`WriteCoalescer.party` (and counts as busy from the start, joined or not, until
  it leaves). A write of a taking part thread is queued with its deterministic ``requestid`` and the thread
  waits. The queued writes are sent as ONE :meth:`QboClient.batch <qbsync.qbo.client.QboClient.batch>`
  call when every thread still taking part is waiting in the coalescer (a barrier: it depends only on what
  the threads do, never on timers or sleeping), or as soon as ``max_items`` (30) are queued. The thread
  whose arrival (or a thread whose leaving) completes the condition sends the call; the others wait for
  their answer.
* :class:`CoalescingQboClient` is a :class:`~qbsync.qbo.client.QboClient` whose ``create`` and ``update``
  go through the coalescer when the calling thread takes part (otherwise they are single calls as before);
  reads, queries, deletes and voids are single calls, unchanged. Every request of these clients takes one of
  the coalescer's ``in_flight`` slots (a semaphore, 3 by default) so that 30 threads never hold more than
  that many requests open against the realm (Intuit: 10 in flight per realm and app).

What a waiting thread gets is exactly what its single call would have given it: the object, or the same
typed error - its item's Fault (6240 → :class:`~qbsync.errors.QboValidationError`, 5010 →
:class:`~qbsync.errors.StaleObject`, …), :class:`~qbsync.errors.UncertainOutcome` for an item QBO did not
answer, and the whole call's error for every item when the call fails (a response lost after commit is
:class:`~qbsync.errors.UncertainOutcome`, ``maybe_applied``, for every item: the writer keeps each
record's intent and its next run looks the object up before any resend).

The batch call's own ``requestid`` (≤ 36 chars) is derived from its items' request ids (sorted), and its
``bId`` s are the items' positions in that order: the same set of writes resent is the same request, which
QBO replays instead of applying again (QBO.md §2.4). The client's own retries of the call reuse it too.

One batch never holds two writes of one target (the same ``requestid``, or updates of the same object):
the later one waits for the next call. Items of a batch are independent (QBO.md §2.9); a write and its
prerequisite never meet in one because the writer only writes a record whose prerequisites are already in
QuickBooks (the dependency gate), and the initial sync runs one record type per chunk.

Every batch call takes a batch slot of the realm's shared request budget (``QboClient`` passes
``is_batch`` to its limiter for the ``batch`` operation: :mod:`qbsync.qbo.ratelimit`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qbsync.errors import QbsyncError, UncertainOutcome
from qbsync.qbo.client import BATCH_MAX_ITEMS, REQUEST_ID_MAX, BatchItemResult, BatchOperation, QboClient
from qbsync.qbo.http import request_id_for

__all__ = ["CoalescingQboClient", "WriteCoalescer", "batch_request_id"]

logger = logging.getLogger("qbsync.qbo")

#: placeholder bId of a queued operation (the real one is its position in the batch that sends it)
_QUEUED_BID = "queued"


def batch_request_id(item_request_ids: list[str]) -> str:
    """The ``requestid`` of a batch call: a function of the set of its items' request ids (36 chars)."""
    if not item_request_ids:
        raise ValueError("a batch needs at least one item")
    return request_id_for("qbsync-batch", *sorted(item_request_ids))


@dataclass(eq=False)
class _Item:
    """One queued write and, once its batch was answered, its answer."""

    operation: BatchOperation
    request_id: str
    done: bool = False
    data: dict[str, Any] | None = field(default=None, repr=False)
    error: BaseException | None = None

    @property
    def target(self) -> tuple[str, ...]:
        """What two items of one batch must never share: the write itself, or the object it updates."""
        body = self.operation.body or {}
        if self.operation.operation == "create" or not body.get("Id"):
            return ("request", self.request_id)
        return ("object", str(self.operation.entity), str(body["Id"]))


class WriteCoalescer:
    """Sends the writes of up to ``parties`` threads as QBO batch calls (see the module doc).

    Args:
        parties: how many threads will take part (each through :meth:`party`, once); until a thread has
            joined and left, the barrier waits for it.
        max_items: the most writes one call holds (QBO: 30).
        in_flight: the most requests the parties' clients have open at once (batch calls, reads and queries
            together): Intuit allows 10 in flight per realm and app, and the entity sync and the inbound
            worker use the rest (:mod:`qbsync.qbo.ratelimit`).
    """

    def __init__(self, parties: int, *, max_items: int = BATCH_MAX_ITEMS, in_flight: int = 3) -> None:
        if not isinstance(parties, int) or parties < 1:
            raise ValueError("parties must be a positive integer")
        if not 1 <= max_items <= BATCH_MAX_ITEMS:
            raise ValueError(f"max_items must be 1 to {BATCH_MAX_ITEMS}")
        if not isinstance(in_flight, int) or in_flight < 1:
            raise ValueError("in_flight must be a positive integer")
        self.requests = threading.BoundedSemaphore(in_flight)
        self._cond = threading.Condition(threading.Lock())
        self._max_items = max_items
        self._unjoined = parties
        self._live = parties  # joined-and-not-left plus not yet joined
        self._members: set[int] = set()
        self._pending: list[_Item] = []
        self._sizes: list[int] = []

    # ------------------------------------------------------------------ taking part

    @contextlib.contextmanager
    def party(self) -> Iterator[None]:
        """The calling thread takes part until the block ends (its writes are batched meanwhile)."""
        me = threading.get_ident()
        with self._cond:
            if me in self._members:
                raise ValueError("this thread already takes part")
            if self._unjoined < 1:
                raise ValueError("every party of this coalescer has joined already")
            self._unjoined -= 1
            self._members.add(me)
        try:
            yield
        finally:
            with self._cond:
                self._members.discard(me)
                self._live -= 1
                self._cond.notify_all()  # a waiting thread may now complete the barrier

    def takes_part(self) -> bool:
        """Whether the calling thread's writes are batched."""
        with self._cond:
            return threading.get_ident() in self._members

    @property
    def batch_sizes(self) -> list[int]:
        """The number of writes of every batch call sent so far, in order."""
        with self._cond:
            return list(self._sizes)

    # ------------------------------------------------------------------ writes

    def submit(self, client: QboClient, operation: BatchOperation, request_id: str) -> dict[str, Any]:
        """Queue one write of the calling (taking part) thread and wait for its answer.

        ``client`` sends the batch when this thread is the one that sends it. Returns the written object;
        raises what the single call would have raised (see the module doc).
        """
        if not isinstance(request_id, str) or not 1 <= len(request_id) <= REQUEST_ID_MAX:
            raise ValueError(f"requestid must be 1 to {REQUEST_ID_MAX} characters")
        item = _Item(operation, request_id)
        with self._cond:
            if threading.get_ident() not in self._members:
                raise ValueError("only a thread that takes part (party()) can queue a write")
            self._pending.append(item)
            try:
                self._wait_for(client, item)
            except BaseException:
                if item in self._pending:
                    self._pending.remove(item)
                    self._cond.notify_all()
                raise
        if item.error is not None:
            raise item.error
        assert item.data is not None
        return item.data

    def _wait_for(self, client: QboClient, item: _Item) -> None:
        """Under the lock: until ``item`` is answered, send a batch whenever the barrier is complete."""
        while not item.done:
            batch = self._take_ready()
            if not batch:
                self._cond.wait()
                continue
            self._cond.release()
            try:
                _send(client, batch)
            finally:
                self._cond.acquire()
                self._cond.notify_all()

    def _take_ready(self) -> list[_Item]:
        """Under the lock: the next batch when the barrier is complete (every live thread waiting here with
        a queued write, or ``max_items`` queued), removed from the queue; else []."""
        if not self._pending:
            return []
        if len(self._pending) < self._max_items and len(self._pending) < self._live:
            return []
        batch: list[_Item] = []
        targets: set[tuple[str, ...]] = set()
        for queued in self._pending:
            if len(batch) == self._max_items:
                break
            if queued.target in targets:
                continue  # the same write or object twice: the later one goes in the next call
            targets.add(queued.target)
            batch.append(queued)
        for taken in batch:
            self._pending.remove(taken)
        self._sizes.append(len(batch))
        return batch


def _send(client: QboClient, batch: list[_Item]) -> None:
    """One batch call for ``batch``; every item gets its answer (never raises: a thread left without one
    would wait forever)."""
    ordered = sorted(batch, key=lambda i: i.request_id)
    try:
        operations = [dataclasses.replace(item.operation, bid=str(n)) for n, item in enumerate(ordered)]
        results = client.batch(operations, request_id=batch_request_id([i.request_id for i in ordered]))
        answers = [_answer_of(result) for result in results]
        if len(answers) != len(ordered):
            raise UncertainOutcome("QuickBooks answered a batch with another number of items")
    except BaseException as err:  # every waiting thread gets the call's error, as its own
        logger.info(
            "qbo batch call failed for every item",
            extra={"realm_id": client.realm_id, "items": len(ordered), "error": type(err).__name__},
        )
        for item in ordered:
            _answer(item, error=_own_copy(err))
        return
    for item, (data, error) in zip(ordered, answers, strict=True):
        _answer(item, data=data, error=error)


def _answer_of(result: BatchItemResult) -> tuple[dict[str, Any] | None, BaseException | None]:
    if result.error is not None:
        return None, result.error
    if result.data is None:
        return None, UncertainOutcome("QuickBooks answered a batch item without its object")
    return result.data, None


def _answer(item: _Item, *, data: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
    item.data, item.error, item.done = data, error, True


def _own_copy(err: BaseException) -> BaseException:
    """A copy of ``err`` for one waiting thread (threads never raise one exception object together)."""
    if not isinstance(err, QbsyncError):
        return err
    try:
        clone = copy.copy(err)
    except Exception:  # an error class that does not copy
        return err
    clone.__traceback__ = None
    return clone


class CoalescingQboClient(QboClient):
    """A :class:`QboClient` whose creates and updates are batched with the other threads of a
    :class:`WriteCoalescer` while the calling thread takes part (see the module doc).

    Args:
        coalescer: the chunk's coalescer.
        client_options: :class:`QboClient` keyword arguments (base URL, realm, tokens, limiter, …).
    """

    def __init__(self, *, coalescer: WriteCoalescer, **client_options: Any) -> None:
        super().__init__(**client_options)
        self._coalescer = coalescer

    def create(self, entity: str, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        if not self._coalescer.takes_part():
            return super().create(entity, body, request_id=request_id)
        return self._coalescer.submit(self, BatchOperation.create(_QUEUED_BID, entity, body), request_id)

    def _call(self, method: str, path: str, **request: Any) -> dict[str, Any]:
        """Every HTTP request of the client (writes alone, batch calls, reads, queries) takes one of the
        coalescer's in-flight slots first (a thread holding one never waits on the barrier)."""
        with self._coalescer.requests:
            return super()._call(method, path, **request)

    def update(
        self, entity: str, body: dict[str, Any], *, request_id: str, sparse: bool = True
    ) -> dict[str, Any]:
        if not self._coalescer.takes_part():
            return super().update(entity, body, request_id=request_id, sparse=sparse)
        operation = BatchOperation.update(_QUEUED_BID, entity, body, sparse=sparse)
        return self._coalescer.submit(self, operation, request_id)
