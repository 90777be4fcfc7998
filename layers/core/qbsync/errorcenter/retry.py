"""Resync from the error center (PRODUCT.md E.3, E.4): requests, the "retry all" throttle, the fan-out.

Three parts, each over the tables and queues of ``qbsync.settings``:

* :class:`RetryGuard` - "retry all" at most once every :data:`RETRY_WINDOW_SECONDS` (3 minutes) per firm,
  and the same window per category (one admin clicking "Retry Invoices" ten times does not fan out ten
  times; retrying another category stays possible). One conditional PutItem on the sync-state table:
  pk ``FIRM#{firm_id}``, sk ``RETRYALL`` (scope all) or ``RETRYCAT#{category lower}`` (scope category),
  ``until`` = now + 3 min, condition ``attribute_not_exists(pk) OR until <= :now``; a failed condition is
  :class:`~qbsync.errors.TooManyRequests` with ``retry_after`` = the seconds left. The guard is given back
  when the request could not be queued (the admin may try again at once). A one-error resync has no guard.
* :class:`RetryRequests` (the admin API) - checks the caller (owner or admin), takes the guard and puts a
  :class:`~qbsync.models.commands.RetryRequest` on ``RetryQueue``; a one-error resync also notes "resync
  requested" on the error's history. Answers at once (202): the fan-out runs behind the queue.
* :class:`RetryWorker` (``functions/retry_fanout``) - reads ``RetryQueue``: a RetryRequest fans out, a
  "Connection Changed" event (status ``connected``, ``ConnectionResumeRule``) resumes the firm's paused work
  through :meth:`qbsync.repositories.paused.PausedWork.resume`.

Fan-out (:class:`RetryFanout`): the matching errors - scope ``error``: that one entry (open or skipped; an
explicit resync also retries a skipped error); ``category`` / ``all``: OPEN entries only (skipped errors are
left alone, E.3), read page by page from the error-log indexes - become one
:class:`~qbsync.models.commands.SyncCommand` per record on ``OutboundQueue`` (``reason`` ``resync_error`` /
``retry_category`` / ``retry_all``), sent in batches of 10.

Idempotency (a redelivered or repeated request, same ``request_id``, never enqueues a record twice) lives in
the sync-state table, partition ``FIRM#{firm_id}#RETRYREQ#{request_id}``:

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
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from qbsync import vocab
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.sqs import SqsMessage
from qbsync.auth import Caller, require_role
from qbsync.errors import (
    BadRequest,
    Conflict,
    NotFound,
    QbsyncError,
    RetryableError,
    TooManyRequests,
)
from qbsync.models.commands import (
    RETRY_REQUEST_KIND,
    RetryRequest,
    SyncCommand,
    parse_retry_request,
)
from qbsync.repositories.error_log import OPEN, RESOLVED, ErrorEntry, ErrorLogRepository

__all__ = [
    "GUARD_TTL_SECONDS",
    "MARKER_LEASE_SECONDS",
    "RETRY_WINDOW_SECONDS",
    "FanoutResult",
    "RetryAccepted",
    "RetryFanout",
    "RetryGuard",
    "RetryRequests",
    "RetryWorker",
    "WorkOutcome",
    "body_of",
]

logger = logging.getLogger("qbsync.errorcenter.retry")

#: "retry all" (and "retry this category") at most once per window per firm (E.4)
RETRY_WINDOW_SECONDS = 180
#: the guard item outlives its window by an hour (docs/data-model.md, TTL summary)
GUARD_TTL_SECONDS = 3600
#: a marker ``sending`` is another delivery's for this long: longer than the fan-out Lambda's timeout
#: (30 s), shorter than RetryQueue's visibility timeout (180 s), so a redelivery finds it expired
MARKER_LEASE_SECONDS = 120
MARKER_TTL_SECONDS = 24 * 3600
REQUEST_TTL_SECONDS = 5 * 24 * 3600
#: errors read per page of the fan-out
PAGE_SIZE = 50
#: SyncCommands per SendMessageBatch (the SQS maximum)
BATCH = 10
#: stop and continue in a new invocation when less than this is left (milliseconds)
CONTINUE_BELOW_MS = 8000
_MAX_RACE = 5

Scope = Literal["error", "category", "all"]
_REASONS: dict[str, Literal["resync_error", "retry_category", "retry_all"]] = {
    "error": "resync_error",
    "category": "retry_category",
    "all": "retry_all",
}
_SENDING = "sending"
_SENT = "sent"
_RUNNING = "running"
_DONE = "done"


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


# --- the throttle ------------------------------------------------------------------------------------


def _guard_key(firm_id: str, scope: str, category: str | None) -> dict[str, str]:
    if scope == "all":
        return {"pk": f"FIRM#{firm_id}", "sk": "RETRYALL"}
    if scope == "category" and category in vocab.ERROR_CATEGORIES:
        return {"pk": f"FIRM#{firm_id}", "sk": f"RETRYCAT#{category.lower()}"}
    raise BadRequest("only 'all' and 'category' retries are throttled")


class RetryGuard:
    """The "once every 3 minutes" guard of retry-all / retry-category (see the module doc).

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).
        window_seconds: the window (production: :data:`RETRY_WINDOW_SECONDS`).
    """

    def __init__(self, table: DynamoTable, *, window_seconds: int = RETRY_WINDOW_SECONDS) -> None:
        self._table = table
        self._window = window_seconds

    def acquire(self, firm_id: str, scope: str, category: str | None, *, request_id: str, now: float) -> None:
        """Take the window for ``request_id``.

        Raises:
            TooManyRequests: the window is taken; ``retry_after`` = whole seconds until it ends (≥ 1).
        """
        key = _guard_key(firm_id, scope, category)
        until = now + self._window
        item = {
            **key,
            "firm_id": firm_id,
            "scope": scope,
            "request_id": request_id,
            "until": until,
            "ttl": int(until) + GUARD_TTL_SECONDS,
        }
        if category:
            item["category"] = category
        try:
            self._table.put(
                item,
                condition="attribute_not_exists(pk) OR #until <= :now",
                names={"#until": "until"},
                values={":now": now},
            )
        except Conflict:
            held = self._table.get(key, consistent=True) or {}
            left = float(held.get("until") or until) - now
            what = "Retry all" if scope == "all" else f"Retry {category}"
            raise TooManyRequests(
                f"{what} was requested less than {self._window // 60} minutes ago; try again later",
                retry_after=max(1, math.ceil(left)),
                firm_id=firm_id,
            ) from None

    def release(self, firm_id: str, scope: str, category: str | None, *, request_id: str) -> None:
        """Give the window back (only if ``request_id`` still holds it)."""
        with contextlib.suppress(Conflict):  # another request holds it now: not ours to give back
            self._table.delete(
                _guard_key(firm_id, scope, category),
                condition="request_id = :rid",
                values={":rid": request_id},
            )


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
        self._guard.acquire(caller.firm_id, scope, category, request_id=request.request_id, now=now)
        try:
            self._send(request)
        except QbsyncError:
            self._guard.release(caller.firm_id, scope, category, request_id=request.request_id)
            raise
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


def _req_pk(firm_id: str, request_id: str) -> str:
    return f"FIRM#{firm_id}#RETRYREQ#{request_id}"


def _marker_sk(entity_type: str, platform_id: str) -> str:
    return f"REC#{entity_type}#{platform_id}"


@dataclass(slots=True)
class _Batch:
    entries: list[ErrorEntry] = field(default_factory=list)


class RetryFanout:
    """Fans one :class:`RetryRequest` out into SyncCommands (see the module doc for the idempotency).

    Args:
        errors: the error log.
        table: the sync-state table (request and marker items).
        outbound: sender to ``OUTBOUND_QUEUE_URL``.
        retry_queue: sender to ``RETRY_QUEUE_URL`` (continuations of a long fan-out).
        clock: epoch seconds.
        owner: this worker's id (marker leases).
        page_size: errors read per page.
    """

    def __init__(
        self,
        *,
        errors: ErrorLogRepository,
        table: DynamoTable,
        outbound: Sender,
        retry_queue: Sender,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._errors = errors
        self._table = table
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
        header = self._header(request)
        if header.get("status") == _DONE:
            result.complete = result.skipped_done = True
            return result
        if request.scope == "error":
            entry = self._errors.get(request.firm_id, str(request.error_id))
            if entry is not None and entry.status != RESOLVED:
                self._process(request, [entry], result)
                result.pages = 1
            self._finish(request, result)
            return result
        cursor = header.get("cursor") or None
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
                self._save_cursor(request, cursor)
            if time_left_ms is not None and time_left_ms() < CONTINUE_BELOW_MS:
                # Continue in a fresh invocation: the same request, resumed from the stored cursor.
                self._retry_queue.send_many(
                    [SqsMessage(body=request, id="continue", correlation_id=request.correlation_id)]
                )
                result.continued = True
                return result
        self._finish(request, result)
        return result

    # --- request item --------------------------------------------------------------------------------

    def _header(self, request: RetryRequest) -> dict[str, Any]:
        key = {"pk": _req_pk(request.firm_id, request.request_id), "sk": "REQUEST"}
        now = self._clock()
        item = self._table.get(key, consistent=True)
        if item and float(item.get("ttl") or 0) > now:
            return item
        fresh: dict[str, Any] = {
            **key,
            "firm_id": request.firm_id,
            "request_id": request.request_id,
            "scope": request.scope,
            "status": _RUNNING,
            "enqueued": 0,
            "started_at": now,
            "ttl": int(now) + REQUEST_TTL_SECONDS,
        }
        if request.category:
            fresh["category"] = request.category
        if request.error_id:
            fresh["error_id"] = request.error_id
        try:
            self._table.put(
                fresh,
                condition="attribute_not_exists(pk) OR #ttl <= :now",
                names={"#ttl": "ttl"},
                values={":now": now},
            )
        except Conflict:  # another delivery of the same request created it just now
            return self._table.get(key, consistent=True) or fresh
        return fresh

    def _save_cursor(self, request: RetryRequest, cursor: str) -> None:
        self._table.update(
            {"pk": _req_pk(request.firm_id, request.request_id), "sk": "REQUEST"},
            update="SET #cursor = :c",
            names={"#cursor": "cursor"},
            values={":c": cursor},
        )

    def _finish(self, request: RetryRequest, result: FanoutResult) -> None:
        if result.contended:
            raise RetryableError(
                f"{result.contended} record(s) of this request are being sent by another delivery; retry",
                firm_id=request.firm_id,
                request_id=request.request_id,
            )
        self._table.update(
            {"pk": _req_pk(request.firm_id, request.request_id), "sk": "REQUEST"},
            update="SET #status = :done, finished_at = :now REMOVE #cursor",
            names={"#status": "status", "#cursor": "cursor"},
            values={":done": _DONE, ":now": self._clock()},
        )
        result.complete = True

    # --- records -------------------------------------------------------------------------------------

    def _process(self, request: RetryRequest, entries: Sequence[ErrorEntry], result: FanoutResult) -> None:
        usable: dict[tuple[str, str], ErrorEntry] = {}
        for entry in entries:
            if entry.entity_type not in vocab.SYNCABLE_TYPES:
                result.unsupported += 1
                continue
            usable.setdefault((entry.entity_type, entry.platform_id), entry)
        todo = list(usable.values())
        for start in range(0, len(todo), BATCH):
            self._batch(request, todo[start : start + BATCH], result)

    def _batch(self, request: RetryRequest, entries: list[ErrorEntry], result: FanoutResult) -> None:
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
        pk = _req_pk(request.firm_id, request.request_id)
        try:
            self._outbound.send_many(messages)
        except QbsyncError as err:
            sent = set(err.extra.get("sent_ids") or [])
            done = [e for i, e in enumerate(taken) if f"r{i}" in sent]
            failed = [e for i, e in enumerate(taken) if f"r{i}" not in sent]
            self._mark_sent(pk, done)
            result.enqueued += len(done)
            self._table.batch_write(
                deletes=[{"pk": pk, "sk": _marker_sk(e.entity_type, e.platform_id)} for e in failed]
            )
            raise
        self._mark_sent(pk, taken)
        result.enqueued += len(taken)
        self._table.update(
            {"pk": pk, "sk": "REQUEST"},
            update="ADD enqueued :n",
            values={":n": len(taken)},
        )
        if request.scope != "error":  # a one-error resync was noted by the API already
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

    def _take(
        self, request: RetryRequest, entries: list[ErrorEntry], result: FanoutResult
    ) -> list[ErrorEntry]:
        """Markers of this batch: take the free ones in one transaction; count the sent / contended ones."""
        pk = _req_pk(request.firm_id, request.request_id)
        for _ in range(_MAX_RACE):
            now = self._clock()
            keys = [{"pk": pk, "sk": _marker_sk(e.entity_type, e.platform_id)} for e in entries]
            existing = {item["sk"]: item for item in self._table.batch_get(keys, consistent=True)}
            free: list[ErrorEntry] = []
            already = contended = 0
            for entry, key in zip(entries, keys, strict=True):
                marker = existing.get(key["sk"])
                if marker is None:
                    free.append(entry)
                elif marker.get("state") == _SENT:
                    already += 1
                elif float(marker.get("lease_until") or 0) <= now or marker.get("owner") == self._owner:
                    free.append(entry)  # a dead delivery's (or our own earlier) attempt: send it again
                else:
                    contended += 1
            if not free:
                result.already += already
                result.contended += contended
                return []
            actions = [
                self._table.tx_put(
                    {
                        "pk": pk,
                        "sk": _marker_sk(e.entity_type, e.platform_id),
                        "state": _SENDING,
                        "owner": self._owner,
                        "lease_until": now + MARKER_LEASE_SECONDS,
                        "error_id": e.error_id,
                        "ttl": int(now) + MARKER_TTL_SECONDS,
                    },
                    condition="attribute_not_exists(sk) OR (#state = :sending AND lease_until <= :now) "
                    "OR (#state = :sending AND #owner = :me)",
                    names={"#state": "state", "#owner": "owner"},
                    values={":sending": _SENDING, ":now": now, ":me": self._owner},
                )
                for e in free
            ]
            try:
                self._table.transact_write(actions)
            except Conflict:
                continue  # another delivery took one of them in between: read again
            result.already += already
            result.contended += contended
            return free
        raise RetryableError(
            "retry markers changed concurrently too many times; retry later",
            firm_id=request.firm_id,
            request_id=request.request_id,
        )

    def _mark_sent(self, pk: str, entries: Sequence[ErrorEntry]) -> None:
        if not entries:
            return
        now = self._clock()
        self._table.batch_write(
            puts=[
                {
                    "pk": pk,
                    "sk": _marker_sk(e.entity_type, e.platform_id),
                    "state": _SENT,
                    "error_id": e.error_id,
                    "sent_at": now,
                    "ttl": int(now) + MARKER_TTL_SECONDS,
                }
                for e in entries
            ]
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
    """Handles one decoded RetryQueue body.

    Args:
        fanout: the fan-out.
        resume: ``(firm_id) -> int``: resume the firm's paused work
            (:meth:`qbsync.repositories.paused.PausedWork.resume`).
    """

    def __init__(self, *, fanout: RetryFanout, resume: Callable[[str], int]) -> None:
        self._fanout = fanout
        self._resume = resume

    def handle(self, body: Any, *, time_left_ms: Callable[[], int] | None = None) -> WorkOutcome:
        """Dispatch a RetryQueue body (dict): a RetryRequest, or a "Connection Changed" event.

        Raises:
            BadRequest: neither (or a field fails validation); the message names fields, never values.
            RetryableError / ConfigurationError / adapter errors: retry the message.
        """
        if not isinstance(body, Mapping):
            raise BadRequest("the RetryQueue message is not a JSON object")
        if body.get("kind") == RETRY_REQUEST_KIND:
            request = parse_retry_request(dict(body))
            return WorkOutcome(
                "retry", request.firm_id, fanout=self._fanout.run(request, time_left_ms=time_left_ms)
            )
        if body.get("source") == "qbsync" and body.get("detail-type") == "Connection Changed":
            detail = body.get("detail")
            if not isinstance(detail, Mapping):
                raise BadRequest("Connection Changed: detail is not an object")
            firm_id = detail.get("firm_id")
            if not isinstance(firm_id, str) or not firm_id:
                raise BadRequest("Connection Changed: detail.firm_id is missing")
            if detail.get("status") != "connected":
                return WorkOutcome("ignored", firm_id)
            return WorkOutcome("resume", firm_id, resumed=self._resume(firm_id))
        raise BadRequest("the RetryQueue message is neither a retry request nor a Connection Changed event")


def body_of(text: str) -> Any:
    """Decode a RetryQueue message body. Raises BadRequest (never echoing the content) if it is not JSON."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise BadRequest("the RetryQueue message body is not JSON") from None
