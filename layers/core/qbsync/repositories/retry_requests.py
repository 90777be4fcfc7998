"""Items of the error center's resync (``qbsync.errorcenter.retry``) in the sync-state table.

The protocols (the "once every 3 minutes" throttle, the idempotent fan-out) are documented with the logic
in :mod:`qbsync.errorcenter.retry`; this module holds their items, keys and conditions
(docs/data-model.md).

Retry guards (:class:`RetryGuardRepository`): pk ``FIRM#{firm_id}``, sk ``RETRYALL`` (scope all),
``RETRYCAT#{category lower}`` (scope category), ``RETRYREC#{entity_type}#{platform_id}`` (a replay of one
record: the ``subject`` is ``{entity_type}#{platform_id}``) or ``RETRYWIN`` (a replay of a time window, any
window of the firm); ``firm_id``, ``scope``, ``category`` (scope category), ``subject`` (scope record),
``request_id``, ``until`` (the end of the window), ``ttl`` = ``until`` + :data:`GUARD_TTL_SECONDS`. Taken
with one conditional PutItem, condition ``attribute_not_exists(pk) OR until <= :now``; given back with a
DeleteItem conditional on ``request_id = :rid`` (only the request that holds it).

Fan-out idempotency (:class:`RetryRequestRepository`), partition ``FIRM#{firm_id}#RETRYREQ#{request_id}``:

* ``REQUEST`` - the request's progress: ``status`` running|done, ``cursor`` (the error-list page to
  continue from), ``enqueued``, ``firm_id``, ``request_id``, ``scope``, ``category`` / ``error_id`` (when
  set), ``started_at``, ``finished_at``; created with condition ``attribute_not_exists(pk) OR ttl <= :now``
  (an expired item TTL has not removed yet counts as absent); ``ttl`` :data:`REQUEST_TTL_SECONDS` (5 days,
  longer than RetryQueue's 4-day retention).
* ``REC#{entity_type}#{platform_id}`` - one marker per record: ``state`` ``sending`` (with ``owner`` and
  ``lease_until``) while its command is being sent, ``sent`` (with ``sent_at``) once SQS accepted it;
  ``error_id``; ``ttl`` :data:`MARKER_TTL_SECONDS` (one day: a request is finished or dead-lettered long
  before). The markers of a batch are taken in ONE transaction, each with condition
  ``attribute_not_exists(sk) OR (state = :sending AND lease_until <= :now) OR (state = :sending AND
  owner = :me)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qbsync import vocab
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import BadRequest, Conflict
from qbsync.models.commands import RetryRequest

__all__ = [
    "DONE",
    "GUARD_TTL_SECONDS",
    "MARKER_TTL_SECONDS",
    "REQUEST_TTL_SECONDS",
    "RUNNING",
    "SENDING",
    "SENT",
    "Marker",
    "RequestProgress",
    "RetryGuardRepository",
    "RetryRequestRepository",
    "Target",
]


class Target(Protocol):
    """A record the fan-out sends a command for: an error-log entry, or a replayed record
    (``error_id`` empty)."""

    @property
    def entity_type(self) -> str: ...
    @property
    def platform_id(self) -> str: ...
    @property
    def error_id(self) -> str: ...


#: the guard item outlives its window by an hour (docs/data-model.md, TTL summary)
GUARD_TTL_SECONDS = 3600
MARKER_TTL_SECONDS = 24 * 3600
REQUEST_TTL_SECONDS = 5 * 24 * 3600

#: ``REQUEST`` status
RUNNING = "running"
DONE = "done"
#: marker state
SENDING = "sending"
SENT = "sent"


# --- retry guards -------------------------------------------------------------------------------------

_RECORD_ID = re.compile(vocab.RECORD_ID_PATTERN)


def _record_subject(subject: str | None) -> bool:
    entity_type, _, platform_id = (subject or "").partition("#")
    return entity_type in vocab.SYNCABLE_TYPES and bool(_RECORD_ID.match(platform_id))


def _guard_key(firm_id: str, scope: str, subject: str | None) -> dict[str, str]:
    if scope == "all":
        return {"pk": f"FIRM#{firm_id}", "sk": "RETRYALL"}
    if scope == "category" and subject in vocab.ERROR_CATEGORIES:
        return {"pk": f"FIRM#{firm_id}", "sk": f"RETRYCAT#{subject.lower()}"}
    if scope == "record" and subject is not None and _record_subject(subject):
        return {"pk": f"FIRM#{firm_id}", "sk": f"RETRYREC#{subject}"}
    if scope == "window" and subject is None:
        return {"pk": f"FIRM#{firm_id}", "sk": "RETRYWIN"}
    raise BadRequest("only 'all', 'category', 'record' and 'window' requests are throttled")


class RetryGuardRepository:
    """The ``RETRYALL`` / ``RETRYCAT#`` / ``RETRYREC#`` / ``RETRYWIN`` guard items (see the module doc).
    ``subject``: the category (scope ``category``), ``{entity_type}#{platform_id}`` (scope ``record``), None
    (scopes ``all`` and ``window``).

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).

    Raises (every method): BadRequest for a scope that has no guard (``error``), or a subject that does not
    fit its scope (a category not in :data:`~qbsync.vocab.ERROR_CATEGORIES`, a record that is not one).
    """

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def take(
        self, firm_id: str, scope: str, subject: str | None, *, request_id: str, now: float, until: float
    ) -> bool:
        """Hold the guard for ``request_id`` until ``until`` if it is free at ``now`` (absent, or its
        ``until`` has passed). False: someone else holds it."""
        item = {
            **_guard_key(firm_id, scope, subject),
            "firm_id": firm_id,
            "scope": scope,
            "request_id": request_id,
            "until": until,
            "ttl": int(until) + GUARD_TTL_SECONDS,
        }
        if subject and scope == "category":
            item["category"] = subject
        elif subject:
            item["subject"] = subject
        try:
            self._table.put(
                item,
                condition="attribute_not_exists(pk) OR #until <= :now",
                names={"#until": "until"},
                values={":now": now},
            )
        except Conflict:
            return False
        return True

    def held_until(self, firm_id: str, scope: str, subject: str | None) -> float | None:
        """The ``until`` of the guard item (strongly consistent); None without an item (or an ``until``)."""
        held = self._table.get(_guard_key(firm_id, scope, subject), consistent=True) or {}
        until = held.get("until")
        return float(until) if until else None

    def release(self, firm_id: str, scope: str, subject: str | None, *, request_id: str) -> bool:
        """Delete the guard if ``request_id`` still holds it. False: another request holds it now."""
        try:
            self._table.delete(
                _guard_key(firm_id, scope, subject),
                condition="request_id = :rid",
                values={":rid": request_id},
            )
        except Conflict:
            return False
        return True


# --- fan-out progress and markers ---------------------------------------------------------------------


def _req_pk(firm_id: str, request_id: str) -> str:
    return f"FIRM#{firm_id}#RETRYREQ#{request_id}"


def _marker_sk(entity_type: str, platform_id: str) -> str:
    return f"REC#{entity_type}#{platform_id}"


@dataclass(frozen=True, slots=True)
class RequestProgress:
    """The ``REQUEST`` item of a resync request: ``status`` (:data:`RUNNING` / :data:`DONE`), ``cursor``."""

    status: str
    cursor: str | None = None
    enqueued: int = 0

    @property
    def done(self) -> bool:
        return self.status == DONE

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RequestProgress:
        return cls(
            status=str(item.get("status") or ""),
            cursor=item.get("cursor") or None,
            enqueued=int(item.get("enqueued") or 0),
        )


@dataclass(frozen=True, slots=True)
class Marker:
    """One record's marker of a request: ``state`` (:data:`SENDING` / :data:`SENT`), ``owner``,
    ``lease_until`` (0 when absent)."""

    state: str | None
    owner: str | None = None
    lease_until: float = 0.0

    @property
    def sent(self) -> bool:
        return self.state == SENT


class RetryRequestRepository:
    """The ``RETRYREQ#`` partitions of resync requests (see the module doc).

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).
    """

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    # --- REQUEST ------------------------------------------------------------------------------------

    def start(self, request: RetryRequest, *, now: float) -> RequestProgress:
        """The request's progress; a fresh ``running`` item when there is none (or only an expired one)."""
        key = {"pk": _req_pk(request.firm_id, request.request_id), "sk": "REQUEST"}
        item = self._table.get(key, consistent=True)
        if item and float(item.get("ttl") or 0) > now:
            return RequestProgress.from_item(item)
        fresh: dict[str, Any] = {
            **key,
            "firm_id": request.firm_id,
            "request_id": request.request_id,
            "scope": request.scope,
            "status": RUNNING,
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
            return RequestProgress.from_item(self._table.get(key, consistent=True) or fresh)
        return RequestProgress.from_item(fresh)

    def save_cursor(self, firm_id: str, request_id: str, cursor: str) -> None:
        self._table.update(
            {"pk": _req_pk(firm_id, request_id), "sk": "REQUEST"},
            update="SET #cursor = :c",
            names={"#cursor": "cursor"},
            values={":c": cursor},
        )

    def add_enqueued(self, firm_id: str, request_id: str, count: int) -> None:
        self._table.update(
            {"pk": _req_pk(firm_id, request_id), "sk": "REQUEST"},
            update="ADD enqueued :n",
            values={":n": count},
        )

    def finish(self, firm_id: str, request_id: str, *, now: float) -> None:
        """Mark the request ``done`` (it is not fanned out again) and drop its cursor."""
        self._table.update(
            {"pk": _req_pk(firm_id, request_id), "sk": "REQUEST"},
            update="SET #status = :done, finished_at = :now REMOVE #cursor",
            names={"#status": "status", "#cursor": "cursor"},
            values={":done": DONE, ":now": now},
        )

    # --- REC# markers -------------------------------------------------------------------------------

    def markers(
        self, firm_id: str, request_id: str, entries: Sequence[Target]
    ) -> dict[tuple[str, str], Marker]:
        """The existing markers of the entries' records (strongly consistent), by entity type and id."""
        pk = _req_pk(firm_id, request_id)
        keys = [{"pk": pk, "sk": _marker_sk(e.entity_type, e.platform_id)} for e in entries]
        by_sk = {item["sk"]: item for item in self._table.batch_get(keys, consistent=True)}
        out: dict[tuple[str, str], Marker] = {}
        for entry, key in zip(entries, keys, strict=True):
            item = by_sk.get(key["sk"])
            if item is not None:
                out[(entry.entity_type, entry.platform_id)] = Marker(
                    state=item.get("state"),
                    owner=item.get("owner"),
                    lease_until=float(item.get("lease_until") or 0),
                )
        return out

    def take_markers(
        self,
        firm_id: str,
        request_id: str,
        entries: Sequence[Target],
        *,
        owner: str,
        now: float,
        lease_until: float,
    ) -> bool:
        """Set the entries' markers ``sending`` (``owner``, ``lease_until``) in ONE transaction, each only if
        it is absent, or ``sending`` under an expired lease or ``owner``'s own. False: one of them was
        taken by someone else (nothing was written)."""
        pk = _req_pk(firm_id, request_id)
        actions = [
            self._table.tx_put(
                {
                    "pk": pk,
                    "sk": _marker_sk(e.entity_type, e.platform_id),
                    "state": SENDING,
                    "owner": owner,
                    "lease_until": lease_until,
                    "error_id": e.error_id,
                    "ttl": int(now) + MARKER_TTL_SECONDS,
                },
                condition="attribute_not_exists(sk) OR (#state = :sending AND lease_until <= :now) "
                "OR (#state = :sending AND #owner = :me)",
                names={"#state": "state", "#owner": "owner"},
                values={":sending": SENDING, ":now": now, ":me": owner},
            )
            for e in entries
        ]
        try:
            self._table.transact_write(actions)
        except Conflict:
            return False
        return True

    def mark_sent(self, firm_id: str, request_id: str, entries: Sequence[Target], *, now: float) -> None:
        """Set the entries' markers ``sent`` (never sent again by this request)."""
        if not entries:
            return
        pk = _req_pk(firm_id, request_id)
        self._table.batch_write(
            puts=[
                {
                    "pk": pk,
                    "sk": _marker_sk(e.entity_type, e.platform_id),
                    "state": SENT,
                    "error_id": e.error_id,
                    "sent_at": now,
                    "ttl": int(now) + MARKER_TTL_SECONDS,
                }
                for e in entries
            ]
        )

    def give_back(self, firm_id: str, request_id: str, entries: Sequence[Target]) -> None:
        """Delete the entries' markers (their commands were not sent)."""
        pk = _req_pk(firm_id, request_id)
        self._table.batch_write(
            deletes=[{"pk": pk, "sk": _marker_sk(e.entity_type, e.platform_id)} for e in entries]
        )
