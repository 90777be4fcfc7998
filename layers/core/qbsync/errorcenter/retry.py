"""Resync from the error center (PRODUCT.md E.3, E.4): requests, the "retry all" throttle, the fan-out.

Three parts, each over the tables and queues of ``qbsync.settings``:

* :class:`RetryGuard` - "retry all" at most once every :data:`RETRY_WINDOW_SECONDS` (3 minutes) per firm,
  and the same window per category (one admin clicking "Retry Invoices" ten times does not fan out ten
  times; retrying another category stays possible). One conditional PutItem on the sync-state table (the
  ``RETRYALL`` / ``RETRYCAT#`` item, :class:`~qbsync.repositories.retry_requests.RetryGuardRepository`),
  ``until`` = now + 3 min, free when absent or ``until <= now``; a guard that is held is
  :class:`~qbsync.errors.TooManyRequests` with ``retry_after`` = the seconds left. The guard is given back
  when the request could not be queued (the admin may try again at once). A one-error resync has no guard.
  The replays of ``POST /sync/replay`` take the same guard: a category replay is the category retry (same
  item), a record replay holds the window per record (``RETRYREC#{entity_type}#{platform_id}``: replaying
  another record stays possible), a time-window replay per firm (``RETRYWIN``: any window, as windows
  overlap at will and one can re-run thousands of records).
* :class:`RetryRequests` (the admin API) - checks the caller (owner or admin), takes the guard and puts a
  :class:`~qbsync.models.commands.RetryRequest` on ``RetryQueue``; a one-error resync also notes "resync
  requested" on the error's history. Answers at once (202): the fan-out runs behind the queue.
* :class:`RetryWorker` (``functions/retry_fanout``) - takes a parsed ``RetryQueue`` message
  (:data:`~qbsync.models.messages.RetryMessage`): a RetryRequest fans out, a "Connection Changed" event
  (status ``connected``, ``ConnectionResumeRule``) resumes the firm's paused work through
  :meth:`qbsync.outbound.resume.PausedWorkResumer.resume`.

Fan-out (:class:`RetryFanout`): the matching errors - scope ``error``: that one entry (open or skipped; an
explicit resync also retries a skipped error); ``category`` / ``all``: OPEN entries only (skipped errors are
left alone, E.3), read page by page from the error-log indexes - become one
:class:`~qbsync.models.commands.SyncCommand` per record on ``OutboundQueue`` (``reason`` ``resync_error`` /
``retry_category`` / ``retry_all``), sent in batches of 10.

Idempotency (a redelivered or repeated request, same ``request_id``, never enqueues a record twice) lives in
the sync-state table, partition ``FIRM#{firm_id}#RETRYREQ#{request_id}``
(:class:`~qbsync.repositories.retry_requests.RetryRequestRepository`: items, keys and conditions):

* ``REQUEST`` - the request's progress: ``status`` running|done, ``cursor`` (the error-list page to
  continue from), ``enqueued``; a request found ``done`` is not fanned out again.
* ``REC#{entity_type}#{platform_id}`` - one marker per record: ``state`` ``sending`` (with ``owner`` and
  ``lease_until``) while its command is being sent, ``sent`` once SQS accepted it. Per batch of 10: read the
  markers, take the free ones in ONE transaction (condition: absent, or ``sending`` with an expired lease),
  send their commands, mark them ``sent``. A marker ``sent`` is never sent again; a marker ``sending`` under
  a live lease belongs to another delivery of the same request (this one then reports itself retryable, so
  nothing it skipped is lost if the other dies).

The one unavoidable window: a crash AFTER SQS accepted a batch and BEFORE its markers were set to ``sent``.
The redelivery (after the queue's 180 s visibility timeout, longer than the 120 s marker lease) sends those
at most 10 commands again. That duplicate is harmless: the entity-sync worker re-runs the record's stored
event, and its lease/version checks make a second run of the same version a no-op. The opposite order
(mark, then send) could lose records instead, which is worse. A send that fails gives its markers back.

Markers live one day (a request is finished or dead-lettered long before), the ``REQUEST`` item 5 days
(longer than RetryQueue's 4-day retention). Time-bounded: when the Lambda's remaining time runs low, the
fan-out stores its cursor and puts the same request back on RetryQueue to continue (a large firm is
fanned out over several invocations, never restarted).

Errors of the list that cannot be resynced (an entity type with no outbound sync, e.g. ``contact`` or
``connection``) are counted as ``unsupported`` and left as they are. An error that moves from behind the
cursor to the front of the list while the fan-out runs (it failed again meanwhile) is not enqueued by this
request: it has just been attempted anyway.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from qbsync import vocab
from qbsync.adapters.sqs import SqsMessage
from qbsync.auth import Caller, require_role
from qbsync.errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    NotFound,
    QbsyncError,
    RetryableError,
    TooManyRequests,
)
from qbsync.models.commands import RetryRequest, SyncCommand
from qbsync.models.messages import ConnectionChangedMessage, RetryMessage
from qbsync.repositories.error_log import OPEN, RESOLVED, ErrorEntry, ErrorLogRepository
from qbsync.repositories.retry_requests import (
    GUARD_TTL_SECONDS,
    RetryGuardRepository,
    RetryRequestRepository,
    Target,
)
from qbsync.repositories.timeline import TimelineRepository

__all__ = [
    "GUARD_TTL_SECONDS",
    "MARKER_LEASE_SECONDS",
    "MAX_REPLAY_WINDOW_SECONDS",
    "RETRY_WINDOW_SECONDS",
    "FanoutResult",
    "ReplayTarget",
    "RetryAccepted",
    "RetryFanout",
    "RetryGuard",
    "RetryRequests",
    "RetryWorker",
    "WorkOutcome",
]

logger = logging.getLogger("qbsync.errorcenter.retry")

#: "retry all" (and "retry this category") at most once per window per firm (E.4)
RETRY_WINDOW_SECONDS = 180
#: a marker ``sending`` is another delivery's for this long: longer than the fan-out Lambda's timeout
#: (30 s), shorter than RetryQueue's visibility timeout (180 s), so a redelivery finds it expired
MARKER_LEASE_SECONDS = 120
#: errors read per page of the fan-out
PAGE_SIZE = 50
#: SyncCommands per SendMessageBatch (the SQS maximum)
BATCH = 10
#: stop and continue in a new invocation when less than this is left (milliseconds)
CONTINUE_BELOW_MS = 8000
_MAX_RACE = 5

Scope = Literal["error", "category", "all"]
_REASONS: dict[str, Literal["resync_error", "retry_category", "retry_all", "replay"]] = {
    "error": "resync_error",
    "category": "retry_category",
    "all": "retry_all",
    "record": "replay",
    "window": "replay",
}
#: the longest time window one replay may name (PRODUCT.md J.5; the timeline keeps 30 days)
MAX_REPLAY_WINDOW_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """A record a replay sends a command for (no error-log entry behind it)."""

    entity_type: str
    platform_id: str
    error_id: str = ""


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


# --- the throttle ------------------------------------------------------------------------------------


class RetryGuard:
    """The "once every 3 minutes" guard of retry-all / retry-category (see the module doc).

    Args:
        guards: the guard items (:class:`~qbsync.repositories.retry_requests.RetryGuardRepository`).
        window_seconds: the window (production: :data:`RETRY_WINDOW_SECONDS`).
    """

    def __init__(self, guards: RetryGuardRepository, *, window_seconds: int = RETRY_WINDOW_SECONDS) -> None:
        self._guards = guards
        self._window = window_seconds

    def acquire(self, firm_id: str, scope: str, subject: str | None, *, request_id: str, now: float) -> None:
        """Take the window for ``request_id``. ``subject``: the category (scope ``category``),
        ``{entity_type}#{platform_id}`` (scope ``record``), None (``all``, ``window``).

        Raises:
            TooManyRequests: the window is taken; ``retry_after`` = whole seconds until it ends (≥ 1).
            BadRequest: ``scope`` has no guard (only ``all``, a known ``category``, ``record`` and
            ``window`` are throttled).
        """
        until = now + self._window
        if self._guards.take(firm_id, scope, subject, request_id=request_id, now=now, until=until):
            return
        left = (self._guards.held_until(firm_id, scope, subject) or until) - now
        raise TooManyRequests(
            f"{_what(scope, subject)} was requested less than {self._window // 60} minutes ago; "
            "try again later",
            retry_after=max(1, math.ceil(left)),
            firm_id=firm_id,
        )

    def release(self, firm_id: str, scope: str, subject: str | None, *, request_id: str) -> None:
        """Give the window back (only if ``request_id`` still holds it; another request's is not ours)."""
        self._guards.release(firm_id, scope, subject, request_id=request_id)


def _what(scope: str, subject: str | None) -> str:
    if scope == "all":
        return "Retry all"
    if scope == "record":
        entity_type, _, platform_id = (subject or "").partition("#")
        return f"A replay of {entity_type.replace('_', ' ')} {platform_id}"
    if scope == "window":
        return "A replay of a time window"
    return f"Retry {subject}"


# --- the admin API side --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryAccepted:
    """A queued resync request (the 202 answer)."""

    request_id: str
    scope: str
    requested_at: float
    category: str | None = None
    error_id: str | None = None


def _new_request_id() -> str:
    return uuid.uuid4().hex


class RetryRequests:
    """Queues resync requests for the fan-out (admin API: owner or admin).

    Args:
        errors: the error log.
        guard: the retry-all / retry-category throttle.
        retry_queue: sender to ``RETRY_QUEUE_URL``.
        clock: epoch seconds.
    """

    def __init__(
        self,
        *,
        errors: ErrorLogRepository,
        guard: RetryGuard,
        retry_queue: Sender,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._errors = errors
        self._guard = guard
        self._queue = retry_queue
        self._clock = clock

    def resync_error(
        self, caller: Caller, error_id: str, *, correlation_id: str | None = None
    ) -> RetryAccepted:
        """Resync the record of one error (open or skipped). History: "resync requested".

        Raises:
            Forbidden: not owner/admin. NotFound: no such error of the caller's firm.
            Conflict: the error is already resolved (its record synced).
        """
        require_role(caller, "owner", "admin")
        entry = self._errors.get(caller.firm_id, error_id)
        if entry is None:
            raise NotFound("no such error")
        if entry.status == RESOLVED:
            raise Conflict("the error is resolved: its record is synced")
        now = self._clock()
        request = RetryRequest(
            firm_id=caller.firm_id,
            request_id=_new_request_id(),
            scope="error",
            error_id=entry.error_id,
            requested_by=caller.user_id,
            requested_at=now,
            correlation_id=correlation_id,
        )
        self._send(request)
        self._errors.note_action(
            caller.firm_id,
            entry.error_id,
            action="resync requested",
            by=caller.user_id,
            now=now,
            detail=f"request {request.request_id}",
        )
        return RetryAccepted(request.request_id, "error", now, error_id=entry.error_id)

    def retry(
        self,
        caller: Caller,
        scope: Literal["category", "all"],
        category: str | None = None,
        *,
        correlation_id: str | None = None,
    ) -> RetryAccepted:
        """Resync every OPEN error of a category, or of the firm (skipped errors are left alone).

        Raises:
            Forbidden: not owner/admin. BadRequest: scope ``category`` without a known category, or a
            category with scope ``all``. TooManyRequests: the same retry ran less than 3 minutes ago.
        """
        require_role(caller, "owner", "admin")
        if scope == "category" and category not in vocab.ERROR_CATEGORIES:
            raise BadRequest(f"category must be one of {', '.join(vocab.ERROR_CATEGORIES)}")
        if scope == "all" and category is not None:
            raise BadRequest("category is only allowed with scope 'category'")
        if scope not in ("category", "all"):
            raise BadRequest("scope must be 'category' or 'all'")
        now = self._clock()
        request = RetryRequest(
            firm_id=caller.firm_id,
            request_id=_new_request_id(),
            scope=scope,
            category=category,  # type: ignore[arg-type]  # checked against vocab.ERROR_CATEGORIES above
            requested_by=caller.user_id,
            requested_at=now,
            correlation_id=correlation_id,
        )
        self._guarded_send(request, category, now=now)
        logger.info(
            "retry requested",
            extra={
                "firm_id": caller.firm_id,
                "scope": scope,
                "category": category,
                "request_id": request.request_id,
            },
        )
        return RetryAccepted(request.request_id, scope, now, category=category)

    def replay_record(
        self, caller: Caller, entity_type: str, platform_id: str, *, correlation_id: str | None = None
    ) -> RetryAccepted:
        """Replay one record (PRODUCT.md J.5) through the fan-out: a ``replay`` SyncCommand for it.

        Raises: Forbidden: not owner/admin. BadRequest: a record type without outbound sync.
        TooManyRequests: the same record's replay was requested less than 3 minutes ago.
        """
        require_role(caller, "owner", "admin")
        if entity_type not in vocab.SYNCABLE_TYPES:
            raise BadRequest(f"record.entity_type must be one of {', '.join(vocab.SYNCABLE_TYPES)}")
        now = self._clock()
        request = RetryRequest(
            firm_id=caller.firm_id,
            request_id=_new_request_id(),
            scope="record",
            entity_type=entity_type,  # type: ignore[arg-type]  # checked against vocab.SYNCABLE_TYPES
            platform_id=platform_id,
            requested_by=caller.user_id,
            requested_at=now,
            correlation_id=correlation_id,
        )
        self._guarded_send(request, f"{entity_type}#{platform_id}", now=now)
        return RetryAccepted(request.request_id, "record", now)

    def replay_window(
        self,
        caller: Caller,
        realm_id: str,
        window: tuple[float, float],
        *,
        correlation_id: str | None = None,
    ) -> RetryAccepted:
        """Replay every record of the realm whose timeline has a run that started in ``[from, to)``.

        Raises: Forbidden: not owner/admin. BadRequest: ``from`` not before ``to``, a window longer than
        :data:`MAX_REPLAY_WINDOW_SECONDS`, or one that ends in the future. TooManyRequests: a window replay
        of the firm was requested less than 3 minutes ago.
        """
        require_role(caller, "owner", "admin")
        start, end = window
        now = self._clock()
        if not start < end:
            raise BadRequest("window.to: must be after window.from")
        if end - start > MAX_REPLAY_WINDOW_SECONDS:
            raise BadRequest("window: at most 7 days")
        if end > now + 60:
            raise BadRequest("window.to: must not be in the future")
        request = RetryRequest(
            firm_id=caller.firm_id,
            request_id=_new_request_id(),
            scope="window",
            realm_id=realm_id,
            window_from=float(start),
            window_to=float(end),
            requested_by=caller.user_id,
            requested_at=now,
            correlation_id=correlation_id,
        )
        self._guarded_send(request, None, now=now)
        logger.info(
            "replay requested",
            extra={"firm_id": caller.firm_id, "scope": "window", "request_id": request.request_id},
        )
        return RetryAccepted(request.request_id, "window", now)

    def _guarded_send(self, request: RetryRequest, subject: str | None, *, now: float) -> None:
        """Take the request's guard (TooManyRequests when held), send the request, give the guard back when
        the send failed (the admin may try again at once)."""
        firm_id, scope = request.firm_id, request.scope
        self._guard.acquire(firm_id, scope, subject, request_id=request.request_id, now=now)
        try:
            self._send(request)
        except QbsyncError:
            self._guard.release(firm_id, scope, subject, request_id=request.request_id)
            raise

    def _send(self, request: RetryRequest) -> None:
        self._queue.send_many(
            [
                SqsMessage(
                    body=request, id="retry", correlation_id=request.correlation_id or request.request_id
                )
            ]
        )


# --- the fan-out -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class FanoutResult:
    """What one run of a request did (counts only: logs and metrics)."""

    request_id: str
    scope: str
    enqueued: int = 0
    already: int = 0
    unsupported: int = 0
    contended: int = 0
    pages: int = 0
    complete: bool = False
    continued: bool = False
    skipped_done: bool = False


class RetryFanout:
    """Fans one :class:`RetryRequest` out into SyncCommands (see the module doc for the idempotency).

    Args:
        errors: the error log.
        requests: the request and marker items (:class:`RetryRequestRepository`).
        outbound: sender to ``OUTBOUND_QUEUE_URL``.
        retry_queue: sender to ``RETRY_QUEUE_URL`` (continuations of a long fan-out).
        clock: epoch seconds.
        owner: this worker's id (marker leases).
        page_size: errors read per page.
        timeline: the timeline items (window replays: which records ran in the window).
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        errors: ErrorLogRepository,
        requests: RetryRequestRepository,
        outbound: Sender,
        retry_queue: Sender,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        page_size: int = PAGE_SIZE,
        timeline: TimelineRepository | None = None,
    ) -> None:
        self._timeline = timeline
        self._errors = errors
        self._requests = requests
        self._outbound = outbound
        self._retry_queue = retry_queue
        self._clock = clock
        self._owner = owner or f"retry-{uuid.uuid4().hex[:12]}"
        self._page_size = page_size

    def run(self, request: RetryRequest, *, time_left_ms: Callable[[], int] | None = None) -> FanoutResult:
        """Fan ``request`` out (resuming where an earlier run of the same request stopped).

        Raises:
            RetryableError: some records are being sent by another delivery of the same request right now
                (retry later: nothing is lost), or SQS/DynamoDB failed (the markers of unsent records are
                given back first).
        """
        result = FanoutResult(request.request_id, request.scope)
        header = self._requests.start(request, now=self._clock())
        if header.done:
            result.complete = result.skipped_done = True
            return result
        if request.scope in ("record", "window"):
            return self._replay(request, result, time_left_ms)
        if request.scope == "error":
            entry = self._errors.get(request.firm_id, str(request.error_id))
            if entry is not None and entry.status != RESOLVED:
                self._process(request, [entry], result)
                result.pages = 1
            self._finish(request, result)
            return result
        cursor = header.cursor
        while True:
            entries, cursor = self._errors.list(
                request.firm_id,
                category=request.category if request.scope == "category" else None,
                status=OPEN,
                limit=self._page_size,
                cursor=cursor,
            )
            self._process(request, entries, result)
            result.pages += 1
            if cursor is None:
                break
            if not result.contended:
                # After a contended page the stored cursor stays before it: the retry re-reads from there.
                self._requests.save_cursor(request.firm_id, request.request_id, cursor)
            if time_left_ms is not None and time_left_ms() < CONTINUE_BELOW_MS:
                # Continue in a fresh invocation: the same request, resumed from the stored cursor.
                self._retry_queue.send_many(
                    [SqsMessage(body=request, id="continue", correlation_id=request.correlation_id)]
                )
                result.continued = True
                return result
        self._finish(request, result)
        return result

    def _replay(
        self, request: RetryRequest, result: FanoutResult, time_left_ms: Callable[[], int] | None
    ) -> FanoutResult:
        """A replay: the one record, or the records that ran in the window (read again by a continuation:
        the markers of the ones already sent keep them from being sent twice)."""
        targets = self._replay_targets(request)
        result.pages = 1
        for start in range(0, len(targets), BATCH):
            self._batch(request, targets[start : start + BATCH], result)
            if (
                start + BATCH < len(targets)
                and time_left_ms is not None
                and time_left_ms() < CONTINUE_BELOW_MS
            ):
                self._retry_queue.send_many(
                    [SqsMessage(body=request, id="continue", correlation_id=request.correlation_id)]
                )
                result.continued = True
                return result
        self._finish(request, result)
        return result

    def _replay_targets(self, request: RetryRequest) -> list[Target]:
        if request.scope == "record":
            return [ReplayTarget(str(request.entity_type), str(request.platform_id))]
        if self._timeline is None:
            raise ConfigurationError("the retry fan-out has no timeline: window replays cannot run")
        assert request.realm_id and request.window_from is not None and request.window_to is not None
        found = self._timeline.records_run_between(
            request.firm_id,
            request.realm_id,
            start=request.window_from,
            end=request.window_to,
            now=self._clock(),
        )
        return [ReplayTarget(t, p) for t, p in found if t in vocab.SYNCABLE_TYPES]

    # --- request item --------------------------------------------------------------------------------

    def _finish(self, request: RetryRequest, result: FanoutResult) -> None:
        if result.contended:
            raise RetryableError(
                f"{result.contended} record(s) of this request are being sent by another delivery; retry",
                firm_id=request.firm_id,
                request_id=request.request_id,
            )
        self._requests.finish(request.firm_id, request.request_id, now=self._clock())
        result.complete = True

    # --- records -------------------------------------------------------------------------------------

    def _process(self, request: RetryRequest, entries: Sequence[ErrorEntry], result: FanoutResult) -> None:
        usable: dict[tuple[str, str], Target] = {}
        for entry in entries:
            if entry.entity_type not in vocab.SYNCABLE_TYPES:
                result.unsupported += 1
                continue
            usable.setdefault((entry.entity_type, entry.platform_id), entry)
        todo = list(usable.values())
        for start in range(0, len(todo), BATCH):
            self._batch(request, todo[start : start + BATCH], result)

    def _batch(self, request: RetryRequest, entries: Sequence[Target], result: FanoutResult) -> None:
        taken = self._take(request, entries, result)
        if not taken:
            return
        reason = _REASONS[request.scope]
        messages = [
            SqsMessage(
                body=SyncCommand(
                    firm_id=request.firm_id,
                    entity_type=entry.entity_type,  # type: ignore[arg-type]  # checked against vocab.SYNCABLE_TYPES
                    platform_id=entry.platform_id,
                    reason=reason,
                    request_id=request.request_id,
                    requested_by=request.requested_by,
                    correlation_id=request.correlation_id,
                ),
                id=f"r{i}",
                correlation_id=request.correlation_id or request.request_id,
            )
            for i, entry in enumerate(taken)
        ]
        firm_id, request_id = request.firm_id, request.request_id
        try:
            self._outbound.send_many(messages)
        except QbsyncError as err:
            sent = set(err.extra.get("sent_ids") or [])
            done = [e for i, e in enumerate(taken) if f"r{i}" in sent]
            failed = [e for i, e in enumerate(taken) if f"r{i}" not in sent]
            self._requests.mark_sent(firm_id, request_id, done, now=self._clock())
            result.enqueued += len(done)
            self._requests.give_back(firm_id, request_id, failed)
            raise
        self._requests.mark_sent(firm_id, request_id, taken, now=self._clock())
        result.enqueued += len(taken)
        self._requests.add_enqueued(firm_id, request_id, len(taken))
        if request.scope in ("category", "all"):  # a one-error resync was noted by the API already
            now = self._clock()
            for entry in taken:
                # NotFound: the entry expired meanwhile; the command is on its way regardless
                with contextlib.suppress(NotFound):
                    self._errors.note_action(
                        request.firm_id,
                        entry.error_id,
                        action="resync requested",
                        by=request.requested_by,
                        now=now,
                        detail=f"{reason} {request.request_id}",
                    )

    def _take(self, request: RetryRequest, entries: Sequence[Target], result: FanoutResult) -> list[Target]:
        """Markers of this batch: take the free ones in one transaction; count the sent / contended ones."""
        for _ in range(_MAX_RACE):
            now = self._clock()
            existing = self._requests.markers(request.firm_id, request.request_id, entries)
            free: list[Target] = []
            already = contended = 0
            for entry in entries:
                marker = existing.get((entry.entity_type, entry.platform_id))
                if marker is None:
                    free.append(entry)
                elif marker.sent:
                    already += 1
                elif marker.lease_until <= now or marker.owner == self._owner:
                    free.append(entry)  # a dead delivery's (or our own earlier) attempt: send it again
                else:
                    contended += 1
            if not free:
                result.already += already
                result.contended += contended
                return []
            if not self._requests.take_markers(
                request.firm_id,
                request.request_id,
                free,
                owner=self._owner,
                now=now,
                lease_until=now + MARKER_LEASE_SECONDS,
            ):
                continue  # another delivery took one of them in between: read again
            result.already += already
            result.contended += contended
            return free
        raise RetryableError(
            "retry markers changed concurrently too many times; retry later",
            firm_id=request.firm_id,
            request_id=request.request_id,
        )


# --- the RetryQueue worker --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkOutcome:
    """What one RetryQueue message did: ``kind`` ``retry`` (with ``fanout``) or ``resume`` (``resumed``)."""

    kind: Literal["retry", "resume", "ignored"]
    firm_id: str
    fanout: FanoutResult | None = None
    resumed: int = 0


class RetryWorker:
    """Handles one parsed RetryQueue message (:func:`~qbsync.models.messages.parse_retry_message`).

    Args:
        fanout: the fan-out.
        resume: ``(firm_id) -> int``: resume the firm's paused work
            (:meth:`qbsync.outbound.resume.PausedWorkResumer.resume`).
    """

    def __init__(self, *, fanout: RetryFanout, resume: Callable[[str], int]) -> None:
        self._fanout = fanout
        self._resume = resume

    def handle(self, message: RetryMessage, *, time_left_ms: Callable[[], int] | None = None) -> WorkOutcome:
        """A RetryRequest fans out; a "Connection Changed" event resumes the firm's paused work when its
        status is ``connected`` (otherwise it is ignored).

        Raises:
            RetryableError / ConfigurationError / adapter errors: retry the message.
        """
        if isinstance(message, ConnectionChangedMessage):
            if not message.connected:
                return WorkOutcome("ignored", message.firm_id)
            return WorkOutcome("resume", message.firm_id, resumed=self._resume(message.firm_id))
        return WorkOutcome(
            "retry", message.firm_id, fanout=self._fanout.run(message, time_left_ms=time_left_ms)
        )
