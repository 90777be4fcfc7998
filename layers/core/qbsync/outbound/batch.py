"""One SQS batch of the outbound sync as a unit of cost (issue 12): reads shared by its records, events sent
together.

The entity-sync handler runs a batch (up to 10 messages) inside :meth:`SyncService.batch
<qbsync.outbound.service.SyncService.batch>`, which opens a :class:`BatchScope`. While it is open:

- **Reads once per batch.** :meth:`BatchScope.remember` keeps what a key read the first time (the firm's
  connection, its settings) for the batch's other records. A batch lasts seconds; a connection that is
  disconnected meanwhile is caught by the next batch, and the QBO calls of this one are refused (401,
  :class:`~qbsync.errors.ReconnectRequired`: the message is retried and then parked).
- **Work done once for the batch.** :meth:`BatchScope.defer` collects items under a key and registers
  what to do with all of them when the batch closes (the dependency gate releases the records waiting on
  the batch's synced records with one query per status and realm, instead of two per record). It runs
  only when the batch ends normally: after an error SQS redelivers the batch, and the redelivered
  records (``already_synced``) do it then.
- **One PutEvents per batch.** :class:`BatchedPublisher` holds the qbsync events ("Sync Status Changed",
  "Sync Error Raised") published during the batch and sends them when it closes, ten entries a call.
  Every event follows the state write it announces, as before; what changes is only when it leaves. If
  the batch ends with an error, or the send fails, nothing is lost: the handler's invocation fails (a send
  failure is raised), SQS redelivers the batch, and each record already written is ``already_synced`` and
  announced again ("Sync Status Changed" states a status: a repeat says the same thing again, as any
  redelivery's does).

Outside a scope (the admin API's actions, tests that call the service directly) reads are not shared and
events are published at once. The scope lives in a :class:`contextvars.ContextVar`, so concurrent callers
in one process (threads) never share one by accident; the bulk path shares one on purpose: its chunk's
worker threads :func:`join <joined>` the scope the chunk opened (a scope is thread-safe), so a chunk of 90
records releases their dependents with one query per status and sends its events ten a call, not once per
thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["BatchScope", "BatchedPublisher", "batch_scope", "current_scope", "joined"]

logger = logging.getLogger("qbsync.outbound.service")

T = TypeVar("T")

#: the events a batch holds before it sends what it has (a runaway batch never grows without bound)
MAX_HELD_EVENTS = 500


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


class BatchScope:
    """What the records of one batch share: reads by key, and the events to send when it closes. Safe to
    use from several threads (the bulk path's, :func:`joined`); :meth:`finish` runs once they are done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[tuple[str, ...], Any] = {}
        self._deferred: dict[str, tuple[list[Any], Callable[[list[Any]], None]]] = {}
        self._events: list[tuple[Publisher, Any]] = []

    def defer(self, key: str, item: Any, finish: Callable[[list[Any]], None]) -> None:
        """Add ``item`` to the batch's ``key`` list; ``finish(items)`` runs once when the batch closes."""
        with self._lock:
            self._deferred.setdefault(key, ([], finish))[0].append(item)

    def hold(self, publisher: Publisher, events: Iterable[Any]) -> list[tuple[Publisher, Any]]:
        """Hold ``events`` for the close; returns what to send now when the batch holds too many."""
        with self._lock:
            self._events.extend((publisher, e) for e in events)
            if len(self._events) < MAX_HELD_EVENTS:
                return []
            return self._take_events()

    def take_events(self) -> list[tuple[Publisher, Any]]:
        """The held events, no longer held."""
        with self._lock:
            return self._take_events()

    def _take_events(self) -> list[tuple[Publisher, Any]]:
        taken, self._events = self._events, []
        return taken

    def finish(self) -> None:
        """Run what was deferred (each key's ``finish`` with its items, in the order keys were first used)."""
        while self._deferred:
            key = next(iter(self._deferred))
            items, finish = self._deferred.pop(key)
            finish(items)

    def remember(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        """``read()`` the first time ``key`` is asked for in this batch; its value afterwards."""
        with self._lock:
            if key in self._reads:
                return self._reads[key]  # type: ignore[no-any-return]
        value = read()  # outside the lock: two threads may both read; the first one's value is kept
        with self._lock:
            return self._reads.setdefault(key, value)  # type: ignore[no-any-return]

    def forget(self, key: tuple[str, ...]) -> None:
        """Read ``key`` again next time (e.g. the connection, after a record found it changed)."""
        with self._lock:
            self._reads.pop(key, None)


_scope: contextvars.ContextVar[BatchScope | None] = contextvars.ContextVar("qbsync_batch_scope", default=None)


def current_scope() -> BatchScope | None:
    """The open batch of this context, or None."""
    return _scope.get()


@contextlib.contextmanager
def batch_scope() -> Iterator[BatchScope]:
    """Open a batch; on exit send its held events (raised on a normal exit if the send fails; logged, not
    raised, when the batch is already ending with an error, so that error is the one the caller sees)."""
    scope = BatchScope()
    token = _scope.set(scope)
    failed = False
    try:
        yield scope
        scope.finish()
    except BaseException:
        failed = True
        raise
    finally:
        _scope.reset(token)
        try:
            _send(scope.take_events())
        except Exception:
            if not failed:
                raise
            logger.exception("the batch's held events could not be sent: the redelivery announces them")


@contextlib.contextmanager
def joined(scope: BatchScope) -> Iterator[BatchScope]:
    """Make ``scope`` (opened by another thread with :func:`batch_scope`) this thread's open batch; its
    opener finishes it and sends its events."""
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def _send(held: list[tuple[Publisher, Any]]) -> None:
    by_publisher: dict[int, tuple[Publisher, list[Any]]] = {}
    for publisher, event in held:
        by_publisher.setdefault(id(publisher), (publisher, []))[1].append(event)
    for publisher, events in by_publisher.values():
        publisher.publish(events)


class BatchedPublisher:
    """A :class:`Publisher` that holds events while a batch is open (see the module doc)."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def publish(self, events: Iterable[Any]) -> None:
        scope = current_scope()
        if scope is None:
            self._publisher.publish(list(events))
            return
        overflow = scope.hold(self._publisher, events)
        if overflow:
            _send(overflow)
