"""Per-record sync state: the id mapping, status, lease and in-flight write intent of one platform record.

One item per (firm, realm, entity_type, platform_id) in the sync-state table (docs/data-model.md):

=================  ===========================================================================================
attribute          meaning
=================  ===========================================================================================
``pk`` / ``sk``    ``FIRM#{firm_id}#REALM#{realm_id}`` / ``REC#{entity_type}#{platform_id}``
``gsi1pk/gsi1sk``  ``QBO#{realm_id}#{qbo_entity}#{qbo_id}`` / ``REC`` - only once the QBO object is known
                   (reverse lookup for webhooks / CDC: :meth:`RecordsRepository.find_by_qbo_id`)
``gsi2pk/gsi2sk``  ``FIRM#{firm_id}#REALM#{realm_id}#STATUS#{status}`` / ``{entity_type}#{updated_at ISO}``
                   (status lists, newest first: :meth:`RecordsRepository.list_by_status`)
``status``         ``not_synced`` | ``syncing`` | ``synced`` | ``failed`` | ``skipped`` | ``blocked``
``qbo_entity``,    the QBO object (``Customer`` …), its ``Id``, last known ``SyncToken`` and web-app link
``qbo_id``,
``sync_token``,
``deep_link``
``platform_version``  the last platform version applied in QBO (a lower incoming version is stale)
``applied_op``     the operation the caller asked for when that version was applied (redelivery check)
``claimed_version``   the version the current/last claim is for
``error_*``        ``error_code``, ``error_category``, ``error_message``, ``error_qbo_code`` when failed
``waiting_on``     string set of ``{entity_type}#{platform_id}`` prerequisites when blocked, or when skipped
                   behind a prerequisite that will not sync as things stand (it comes back when that syncs)
``skip_reason``    why the record was skipped
``note``           synced: how it landed differently from the platform record (an invoice QuickBooks
                   numbered itself: "QuickBooks numbered it 1042: custom transaction numbers are off …")
``attempts``       claims since the last success (reset when synced)
``owner``,         the worker holding the lease while ``syncing`` (epoch seconds); a lease whose
``lease_until``    ``lease_until <= now`` is dead and may be taken over
``prev_status``    the status before the current claim (restored by :meth:`RecordsRepository.release`)
``intent_*``       the write in flight: ``intent_op``, ``intent_version``, ``intent_request_id``,
                   ``intent_sync_token`` (the SyncToken it was sent with), ``intent_at``. Written BEFORE the
                   QBO call and removed in the same UpdateItem that records the outcome, so a crash in
                   between leaves it behind for the next attempt to resolve (C.7). The claim of a create of
                   a record with no QBO object and no intent writes the create's intent in its own UpdateItem
                   (:attr:`ClaimOptions.intent`): one write less per record; until something is sent under
                   it, the claimed record's intent is ``fresh`` and every outcome without a send removes it.
``revision``       +1 on every write: the compare-and-set guard of :meth:`RecordsRepository.claim`
``last_event``     the JSON envelope of the newest platform event claimed for the record, with
                   ``last_event_version`` (:meth:`RecordsRepository.store_last_event`, never replaced by an
                   older version; a ``SyncCommand`` re-runs it). Not part of :class:`SyncRecord`.
``requeued_by``    on a ``blocked`` / ``skipped`` record: the ``{entity_type}#{platform_id}`` of the worker's
                   record that re-enqueued its stored event (:meth:`RecordsRepository.mark_requeued`); others
                   do not send it again. Removed by the next claim (the sent event is being handled).
``released_version``  on a synced record: the ``platform_version`` whose dependents were all released
                   (:meth:`RecordsRepository.mark_released`, written after the sends); a redelivery of that
                   version does not release them again. Removed by every new sync.
``synced_via``     on a record an admin action made ``synced`` without a write of its platform event (a link
                   to an existing QuickBooks object, an accepted QuickBooks change, QuickBooks matching
                   again): ``link`` | ``settle`` (:class:`~qbsync.repositories.record_admin.RecordAdmin`).
                   Such a sync is not a lag sample (:meth:`RecordsRepository.synced_since`). Removed by every
                   write of a platform event (:meth:`RecordsRepository.mark_synced`).
``activity_revision``  on an account skipped for no activity: the :class:`UnsyncedActivity` revision its
                   ``skip_reason`` was last written from (:meth:`RecordsRepository.set_skip_reason`)
``updated_at``     epoch seconds
=================  ===========================================================================================

An account's invoices skipped as drafts or dated before the sync start date are noted on a small item beside
its record, ``sk = ACTIVITY#client_account#{account_id}``: string sets ``draft`` and ``before_start`` of
invoice ids (at most :data:`ACTIVITY_CAP` each), ``revision``, ``updated_at``
(:meth:`RecordsRepository.note_unsynced_activity`). An account skipped for "no activity" says from it why.

The write intent lives ON the record item (not in a separate ``INTENT#`` item): recording it, and resolving
it together with the outcome, are then single conditional UpdateItems guarded by the lease.

Blocked records (C.5) and :meth:`RecordsRepository.blocked_on`: a blocked record stores its prerequisites in
the string set ``waiting_on`` and sits in the gsi2 partition ``FIRM#{f}#REALM#{r}#STATUS#blocked``. The
records waiting on prerequisite ``(type, id)`` are one Query of that partition (optionally narrowed with
``begins_with(gsi2sk, {dependent_type}#)``) filtered by ``contains(waiting_on, "{type}#{id}")``. The read
cost is the realm's blocked backlog, which is small (records are blocked only until their prerequisites
sync). gsi2 is eventually consistent: a worker that blocks a record must re-check its prerequisites after
:meth:`RecordsRepository.mark_blocked` (a prerequisite that synced in between would not release it). A record
skipped behind a prerequisite (:meth:`RecordsRepository.mark_skipped` with ``waiting_on``) keeps the set and
is found the same way in the ``STATUS#skipped`` partition (``blocked_on(..., statuses=(BLOCKED, SKIPPED))``).

Re-enqueueing a stored event is deduplicated on the target record: :meth:`RecordsRepository.mark_requeued`
sets ``requeued_by`` only while the record is still blocked/skipped and unmarked (or marked by the same
releaser), and only the worker that set it sends. A crash between the mark and the send is repaired by the
releaser's redelivered message (same ``requeued_by``: it sends again), which is why the releaser's
``released_version`` is written only after all its sends.

This module is the sync workers' side: the record model and the lease state machine. The admin browse,
counts and admin changes (unsync detach, link, "don't sync") of the same items are
:class:`~qbsync.repositories.record_admin.RecordAdmin`.

Races are settled by conditional writes; every state change after :meth:`RecordsRepository.claim` requires
the caller to still hold the lease (``owner`` = caller, status ``syncing``) and raises
:class:`~qbsync.errors.Conflict` otherwise.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict, LeaseHeld
from qbsync.models.record_key import RecordKey, check_id, check_record_type
from qbsync.repositories._ddb import as_float, as_int
from qbsync.repositories.connections import iso

__all__ = [
    "ACTIVITY_CAP",
    "EXCLUDED_BY_FIRM",
    "LAST_EVENT_ATTR",
    "LAST_EVENT_VERSION_ATTR",
    "OPERATIONS",
    "PENDING_EVENT_ATTR",
    "STATUSES",
    "UNSYNCED_KINDS",
    "Claim",
    "ClaimOutcome",
    "Intent",
    "QboLink",
    "RecordError",
    "RecordKey",
    "RecordPage",
    "RecordsRepository",
    "SyncRecord",
    "UnsyncedActivity",
]

#: the newest platform event claimed for the record (JSON envelope) and its version
LAST_EVENT_ATTR = "last_event"
LAST_EVENT_VERSION_ATTR = "last_event_version"
#: how an admin action made the record synced without writing its platform event (``link`` | ``settle``)
SYNCED_VIA_ATTR = "synced_via"
#: the event a blocked or skipped record is re-enqueued with (:meth:`RecordsRepository.store_pending_event`)
PENDING_EVENT_ATTR = "pending_event"
NOT_SYNCED = "not_synced"
SYNCING = "syncing"
SYNCED = "synced"
FAILED = "failed"
SKIPPED = "skipped"
BLOCKED = "blocked"
STATUSES = (NOT_SYNCED, SYNCING, SYNCED, FAILED, SKIPPED, BLOCKED)
#: statuses a lease may end in (``release``)
RESTING_STATUSES = (NOT_SYNCED, SYNCED, FAILED, SKIPPED, BLOCKED)
OPERATIONS = ("create", "update", "delete", "void")
#: skip reason of a record the firm chose not to sync (E.3 "don't sync this account"): later events of it stay
#: skipped until a manual sync (a forced run)
EXCLUDED_BY_FIRM = "excluded by the firm"

logger = logging.getLogger("qbsync.repositories.records")

_QBO_ENTITY_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_MAX_PAGE = 500
#: the kinds of an account's invoices that will not sync as the settings stand (:class:`UnsyncedActivity`)
UNSYNCED_KINDS = ("draft", "before_start")
#: invoice ids kept per kind on an account's activity item (a count past it is shown as "at least")
ACTIVITY_CAP = 100


_check_id = check_id
_check_entity_type = check_record_type


def _envelope(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, str):
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    return envelope if isinstance(envelope, dict) else None


def _check_version(version: Any) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version!r}")
    return version


def _check_qbo_entity(entity: Any) -> str:
    if not isinstance(entity, str) or not _QBO_ENTITY_RE.match(entity):
        raise ValueError(f"invalid QBO entity name {entity!r}")
    return entity


def _status_pk(firm_id: str, realm_id: str, status: str) -> str:
    return f"FIRM#{firm_id}#REALM#{realm_id}#STATUS#{status}"


def _qbo_pk(realm_id: str, qbo_entity: str, qbo_id: str) -> str:
    return f"QBO#{realm_id}#{qbo_entity}#{qbo_id}"


def _waiting_key(prerequisite: Sequence[str]) -> str:
    if not isinstance(prerequisite, tuple | list) or len(prerequisite) != 2:
        raise ValueError("a prerequisite is an (entity_type, platform_id) pair")
    entity_type, platform_id = prerequisite
    return f"{_check_entity_type(entity_type)}#{_check_id(platform_id, 'platform_id')}"


def _split_waiting(key: str) -> tuple[str, str]:
    entity_type, _, platform_id = key.partition("#")
    return entity_type, platform_id


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why a record failed: our error code and category, a safe message, and QBO's fault code if any."""

    code: str
    category: str
    message: str
    qbo_code: str | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    """A QBO write that was (or is being) sent and whose outcome is not recorded yet."""

    operation: str
    version: int
    request_id: str
    sync_token: str | None
    at: float
    #: noted by the claim that returned the record (:attr:`ClaimOptions.intent`), and nothing was sent under
    #: it yet: not a leftover of an earlier attempt. Never stored (a record read back has ``fresh`` False).
    fresh: bool = False


@dataclass(frozen=True, slots=True)
class QboLink:
    """The QBO object a record is mapped to: entity, ``Id``, last known ``SyncToken`` and web-app link."""

    qbo_entity: str
    qbo_id: str
    sync_token: str | None = None
    deep_link: str | None = None
    #: how the object landed differently from the platform record (kept as the record's ``note``), e.g.
    #: "QuickBooks numbered it 1042: custom transaction numbers are off in the company"
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SyncRecord:
    firm_id: str
    realm_id: str
    entity_type: str
    platform_id: str
    status: str = NOT_SYNCED
    qbo_entity: str | None = None
    qbo_id: str | None = None
    sync_token: str | None = None
    platform_version: int | None = None
    applied_op: str | None = None
    claimed_version: int | None = None
    deep_link: str | None = None
    error: RecordError | None = None
    waiting_on: tuple[tuple[str, str], ...] = ()
    skip_reason: str | None = None
    attempts: int = 0
    owner: str | None = None
    lease_until: float | None = None
    prev_status: str | None = None
    intent: Intent | None = None
    revision: int = 0
    updated_at: float | None = None
    #: +1 each time the record is detached from its QBO object (manual unsync): the next object is a new one
    epoch: int = 0
    #: who re-enqueued the stored event of this blocked/skipped record (``{entity_type}#{platform_id}``)
    requeued_by: str | None = None
    #: the synced version whose dependents were all released (a redelivery does not release them again)
    released_version: int | None = None
    #: invoices: the firm chose "let QuickBooks number it" (no DocNumber is sent; RecordAdmin.let_qbo_number)
    qbo_numbers: bool = False
    #: synced: how it landed differently from the platform record (e.g. QuickBooks numbered the invoice)
    note: str | None = None
    #: the record failed since its error center entry was last resolved (set by ``mark_failed``, kept by
    #: blocked/skipped, cleared by :meth:`RecordsRepository.clear_error_open` once a sync resolved it):
    #: a sync resolves the entry only then, instead of reading the error log for every synced record
    error_open: bool = False
    #: the version of ``last_event`` (None: none stored)
    last_event_version: int | None = None

    @property
    def key(self) -> RecordKey:
        """The record's identity (``entity_type`` is the key's ``record_type``)."""
        return RecordKey(self.firm_id, self.realm_id, self.entity_type, self.platform_id)

    def lease_live(self, now: float) -> bool:
        """True while a worker holds an unexpired lease on the record."""
        return self.status == SYNCING and self.lease_until is not None and self.lease_until > now

    def held_by_other(self, owner: str, now: float) -> bool:
        return self.lease_live(now) and self.owner != owner

    @property
    def leftover_intent(self) -> Intent | None:
        """The intent of an earlier attempt whose outcome was never recorded (what must be resolved before
        writing), i.e. :attr:`intent` unless this run's claim noted it (:attr:`Intent.fresh`)."""
        intent = self.intent
        return None if intent is None or intent.fresh else intent

    @property
    def fresh_intent(self) -> bool:
        """True when the intent on the record was noted by this run's claim and nothing was sent under it."""
        return self.intent is not None and self.intent.fresh

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SyncRecord:
        error = None
        if item.get("error_code"):
            error = RecordError(
                code=str(item["error_code"]),
                category=str(item.get("error_category") or ""),
                message=str(item.get("error_message") or ""),
                qbo_code=item.get("error_qbo_code"),
            )
        intent = None
        if item.get("intent_request_id"):
            intent = Intent(
                operation=str(item["intent_op"]),
                version=as_int(item.get("intent_version")),
                request_id=str(item["intent_request_id"]),
                sync_token=item.get("intent_sync_token"),
                at=as_float(item.get("intent_at")) or 0.0,
            )
        waiting = tuple(sorted(_split_waiting(str(w)) for w in item.get("waiting_on") or ()))
        return cls(
            firm_id=str(item["firm_id"]),
            realm_id=str(item["realm_id"]),
            entity_type=str(item["entity_type"]),
            platform_id=str(item["platform_id"]),
            status=str(item.get("status") or NOT_SYNCED),
            qbo_entity=item.get("qbo_entity"),
            qbo_id=item.get("qbo_id"),
            sync_token=item.get("sync_token"),
            platform_version=None
            if item.get("platform_version") is None
            else as_int(item["platform_version"]),
            applied_op=item.get("applied_op"),
            claimed_version=None if item.get("claimed_version") is None else as_int(item["claimed_version"]),
            deep_link=item.get("deep_link"),
            error=error,
            waiting_on=waiting,
            skip_reason=item.get("skip_reason"),
            attempts=as_int(item.get("attempts")),
            owner=item.get("owner"),
            lease_until=as_float(item.get("lease_until")),
            prev_status=item.get("prev_status"),
            intent=intent,
            revision=as_int(item.get("revision")),
            updated_at=as_float(item.get("updated_at")),
            epoch=as_int(item.get("epoch")),
            requeued_by=item.get("requeued_by"),
            released_version=None
            if item.get("released_version") is None
            else as_int(item["released_version"]),
            qbo_numbers=item.get("qbo_numbers") is True,
            note=item.get("note"),
            error_open=item.get("error_open") is True,
            last_event_version=None
            if item.get(LAST_EVENT_VERSION_ATTR) is None
            else as_int(item[LAST_EVENT_VERSION_ATTR]),
        )


class _Unread:
    """``RecordsRepository.claim(seen=UNREAD)``: the claim reads the record itself."""


UNREAD = _Unread()
#: ``contains`` terms in one filter expression of :meth:`RecordsRepository.waiting_on_any`
_MAX_FILTER_REFS = 20


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    """What a :meth:`RecordsRepository.claim` may also take.

    ``operation``: the write the claim is for; the same version synced with another operation is not
    ``ALREADY_APPLIED``. ``last_event``: the event of the claimed version, stored as the record's
    ``last_event`` in the claim's own write (what :meth:`~RecordsRepository.store_last_event` does on its
    own); a record whose stored event is newer is ``SUPERSEDED`` and nothing is written. ``seen``: the
    record as a consistent read just returned it (:meth:`~RecordsRepository.get_many`; None: no item),
    instead of the claim reading it; a change since is caught by the write's condition, after which the
    record is read again. ``intent``: given the record as the claim found it (None: no item), the write
    intent to note in the claim's own UpdateItem, or None; asked only when the record has no intent (a
    leftover intent is never replaced by a claim). The claimed record then carries it ``fresh``.
    """

    operation: str | None = None
    last_event: Mapping[str, Any] | None = None
    seen: SyncRecord | _Unread | None = UNREAD
    intent: Callable[[SyncRecord | None], Intent | None] | None = None


_NO_OPTIONS = ClaimOptions()


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    #: the incoming version is older than the one already applied: skip it
    STALE = "stale"
    #: this exact version is already synced and nothing is in flight: nothing to do (redelivery)
    ALREADY_APPLIED = "already_applied"
    #: a newer version's event is stored on the record (claimed before, handled or on its way through SQS):
    #: running this older one would overwrite it in QuickBooks or leave it unsent (nothing written)
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    record: SyncRecord

    @property
    def claimed(self) -> bool:
        return self.outcome is ClaimOutcome.CLAIMED


@dataclass(frozen=True, slots=True)
class UnsyncedActivity:
    """An account's invoices that were skipped as the settings stand (drafts, dated before the sync start
    date), from its ``ACTIVITY#client_account#{id}`` item: what an account skipped for "no activity" has
    instead of activity. ``revision`` grows with each note (orders concurrent reason updates); a count of
    :data:`ACTIVITY_CAP` means at least that many."""

    drafts: int = 0
    before_start: int = 0
    revision: int = 0

    @property
    def any(self) -> bool:
        return bool(self.drafts or self.before_start)

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> UnsyncedActivity:
        item = item or {}
        return cls(
            drafts=len(item.get("draft") or ()),
            before_start=len(item.get("before_start") or ()),
            revision=as_int(item.get("revision")),
        )


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[SyncRecord]
    next_key: dict[str, Any] | None


def _num(value: float) -> Decimal:
    return Decimal(repr(float(value)))


class RecordsRepository:
    """Record items of the sync-state table (``SYNC_TABLE_NAME``)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    # ------------------------------------------------------------------ reads

    def get(self, key: RecordKey, *, consistent: bool = True) -> SyncRecord | None:
        item = self._table.get(key.item_key(), consistent=consistent)
        return SyncRecord.from_item(item) if item else None

    def get_many(self, keys: Sequence[RecordKey]) -> dict[RecordKey, SyncRecord | None]:
        """Several records in one consistent BatchGetItem (up to 100 keys a call): each key → its record,
        or None when it does not exist."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        if len(unique) == 1:
            return {unique[0]: self.get(unique[0])}
        by_item = {(k.pk, k.sk): k for k in unique}
        found: dict[RecordKey, SyncRecord | None] = dict.fromkeys(unique)
        for item in self._table.batch_get([k.item_key() for k in unique], consistent=True):
            key = by_item.get((str(item.get("pk")), str(item.get("sk"))))
            if key is not None:
                found[key] = SyncRecord.from_item(item)
        return found

    def find_by_qbo_id(self, realm_id: str, qbo_entity: str, qbo_id: str) -> SyncRecord | None:
        """The record mapped to a QBO object (gsi1, eventually consistent); None if unknown."""
        _check_id(realm_id, "realm_id")
        _check_qbo_entity(qbo_entity)
        _check_id(qbo_id, "qbo_id")
        for item in self._table.query(
            index="gsi1",
            key_condition="gsi1pk = :pk AND gsi1sk = :sk",
            values={":pk": _qbo_pk(realm_id, qbo_entity, qbo_id), ":sk": "REC"},
            max_items=1,
        ):
            return SyncRecord.from_item(item)
        return None

    def list_by_status(  # noqa: PLR0913
        self,
        firm_id: str,
        realm_id: str,
        status: str,
        *,
        entity_type: str | None = None,
        newest_first: bool = True,
        limit: int = 50,
        start_key: Mapping[str, Any] | None = None,
    ) -> RecordPage:
        """One page of the records in ``status`` (gsi2), optionally of one entity type, newest first.

        Pass ``next_key`` of a page as ``start_key`` to get the next one (``None`` at the end).
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if not 1 <= limit <= _MAX_PAGE:
            raise ValueError(f"limit must be 1 to {_MAX_PAGE}")
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        condition = "gsi2pk = :pk"
        values: dict[str, Any] = {":pk": _status_pk(firm_id, realm_id, status)}
        if entity_type is not None:
            condition += " AND begins_with(gsi2sk, :prefix)"
            values[":prefix"] = f"{_check_entity_type(entity_type)}#"
        page = self._table.query_page(
            index="gsi2",
            key_condition=condition,
            values=values,
            forward=not newest_first,
            limit=limit,
            start_key=start_key,
        )
        return RecordPage([SyncRecord.from_item(i) for i in page.items], page.last_key)

    def count_in_status(
        self, firm_id: str, realm_id: str, status: str, *, max_pages: int = 10
    ) -> tuple[int, bool]:
        """How many of the realm's records are in ``status``: a ``Select=COUNT`` Query of its gsi2 partition
        (no item returned; at most ``max_pages`` pages of 1 MB). ``(count, complete)``: ``complete`` False
        means the pages ran out and the count is a lower bound."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        return self._table.count(
            index="gsi2",
            key_condition="gsi2pk = :pk",
            values={":pk": _status_pk(firm_id, realm_id, status)},
            max_pages=max_pages,
        )

    def synced_since(
        self, firm_id: str, realm_id: str, entity_type: str, *, since: float, max_items: int
    ) -> list[tuple[float, dict[str, Any] | None]]:
        """The realm's ``entity_type`` records that turned synced at or after ``since`` (epoch seconds),
        newest first, at most ``max_items``: ``(synced_at, envelope)`` each: the stored ``last_event`` when
        it is the version that synced, else None (no event stored, or a newer one pending, or the record was
        made synced by an admin action - ``synced_via`` - whose time says nothing of its event's lag). One
        gsi2 range Query (``gsi2sk >= {entity_type}#{iso(since)}``) of the synced partition, paged."""
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        prefix = f"{_check_entity_type(entity_type)}#"
        rows: list[tuple[float, dict[str, Any] | None]] = []
        for item in self._table.query(
            index="gsi2",
            key_condition="gsi2pk = :pk AND gsi2sk BETWEEN :lo AND :hi",
            values={
                ":pk": _status_pk(firm_id, realm_id, SYNCED),
                ":lo": f"{prefix}{iso(since)}",
                ":hi": f"{prefix}~",
            },
            forward=False,
            page_size=min(max_items, _MAX_PAGE),
            max_items=max_items,
        ):
            synced_at = as_float(item.get("updated_at"))
            if synced_at is None or synced_at < since:
                continue
            same = as_int(item.get("last_event_version")) == as_int(item.get("platform_version"))
            same = same and not item.get(SYNCED_VIA_ATTR)
            rows.append((synced_at, _envelope(item.get(LAST_EVENT_ATTR)) if same else None))
        return rows

    def blocked_on(
        self,
        prerequisite: RecordKey,
        *,
        dependent_type: str | None = None,
        statuses: Sequence[str] = (BLOCKED,),
    ) -> Iterator[SyncRecord]:
        """The records of the prerequisite's realm in ``statuses`` whose ``waiting_on`` names it.

        A Query of the realm's ``STATUS#{status}`` gsi2 partition per status (``blocked``; ``skipped`` for
        the records skipped behind a prerequisite) filtered by ``contains(waiting_on, …)`` (see the module
        doc); ``dependent_type`` narrows it to one entity type.
        """
        if not statuses or any(s not in (BLOCKED, SKIPPED) for s in statuses):
            raise ValueError("records wait on a prerequisite only while blocked or skipped")
        for status in dict.fromkeys(statuses):
            condition = "gsi2pk = :pk"
            values: dict[str, Any] = {
                ":pk": _status_pk(prerequisite.firm_id, prerequisite.realm_id, status),
                ":prereq": prerequisite.ref,
            }
            if dependent_type is not None:
                condition += " AND begins_with(gsi2sk, :prefix)"
                values[":prefix"] = f"{_check_entity_type(dependent_type)}#"
            for item in self._table.query(
                index="gsi2",
                key_condition=condition,
                filter_expression="contains(waiting_on, :prereq)",
                values=values,
            ):
                yield SyncRecord.from_item(item)

    def waiting_on_any(
        self, prerequisites: Sequence[RecordKey], *, statuses: Sequence[str] = (BLOCKED, SKIPPED)
    ) -> Iterator[SyncRecord]:
        """:meth:`blocked_on` for several prerequisites of one realm at once: the records in ``statuses``
        whose ``waiting_on`` names any of them. One Query per status (a filter of up to
        ``_MAX_FILTER_REFS`` ``contains`` terms; more prerequisites take more queries); each record once."""
        unique = list(dict.fromkeys(prerequisites))
        if not unique:
            return
        realms = {(p.firm_id, p.realm_id) for p in unique}
        if len(realms) != 1:
            raise ValueError("prerequisites of one firm and realm at a time")
        if not statuses or any(s not in (BLOCKED, SKIPPED) for s in statuses):
            raise ValueError("records wait on a prerequisite only while blocked or skipped")
        firm_id, realm_id = realms.pop()
        seen: set[str] = set()
        for status in dict.fromkeys(statuses):
            for start in range(0, len(unique), _MAX_FILTER_REFS):
                chunk = unique[start : start + _MAX_FILTER_REFS]
                values: dict[str, Any] = {":pk": _status_pk(firm_id, realm_id, status)}
                terms = []
                for i, prerequisite in enumerate(chunk):
                    values[f":p{i}"] = prerequisite.ref
                    terms.append(f"contains(waiting_on, :p{i})")
                for item in self._table.query(
                    index="gsi2",
                    key_condition="gsi2pk = :pk",
                    filter_expression=" OR ".join(terms),
                    values=values,
                ):
                    record = SyncRecord.from_item(item)
                    if record.key.ref not in seen:
                        seen.add(record.key.ref)
                        yield record

    def last_event(self, key: RecordKey) -> dict[str, Any] | None:
        """The newest platform event claimed for the record (its EventBridge envelope), or None.

        None when the record does not exist, has no stored event (synced before events were kept), or
        the stored text is not a JSON object (logged, never raised: the caller treats it as "nothing to
        re-run").
        """
        item = self._table.get(key.item_key(), consistent=True, attributes=[LAST_EVENT_ATTR])
        body = (item or {}).get(LAST_EVENT_ATTR)
        if not isinstance(body, str):
            return None
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            logger.warning(
                "stored last_event is not a JSON object",
                extra={
                    "firm_id": key.firm_id,
                    "entity_type": key.record_type,
                    "platform_id": key.platform_id,
                },
            )
            return None
        return envelope

    def store_pending_event(self, key: RecordKey, envelope: Mapping[str, Any]) -> None:
        """Keep ``envelope`` as the record's ``pending_event``: the event a blocked or skipped record is
        re-enqueued with when it may proceed (:meth:`stored_event`). Unconditional: the record item exists
        (the caller holds its claim) and the newest such event wins."""
        self._table.update(
            key.item_key(),
            update="SET #e = :e",
            names={"#e": PENDING_EVENT_ATTR},
            values={":e": json.dumps(envelope, separators=(",", ":"))},
        )

    def stored_event(self, key: RecordKey) -> str | None:
        """The JSON text to re-enqueue for the record: its ``last_event`` (the newest claimed event), else
        its ``pending_event``; None when it has neither."""
        item = self._table.get(
            key.item_key(), consistent=True, attributes=[LAST_EVENT_ATTR, PENDING_EVENT_ATTR]
        )
        body = (item or {}).get(LAST_EVENT_ATTR) or (item or {}).get(PENDING_EVENT_ATTR)
        return body if isinstance(body, str) else None

    def store_last_event(self, key: RecordKey, *, version: int, envelope: Mapping[str, Any]) -> bool:
        """Keep ``envelope`` (the event of ``version``) as the record's ``last_event``.

        One conditional UpdateItem of the existing record item (after a claim): a stored event of a newer
        version is never replaced by an older one (the same version replaces it: a re-run). Does not
        touch ``revision`` (not a state change). Returns False when a newer event is already stored.
        """
        _check_version(version)
        try:
            self._table.update(
                key.item_key(),
                update="SET #e = :e, #v = :v",
                condition="attribute_exists(pk) AND (attribute_not_exists(#v) OR #v <= :v)",
                names={"#e": LAST_EVENT_ATTR, "#v": LAST_EVENT_VERSION_ATTR},
                values={":e": json.dumps(dict(envelope), separators=(",", ":")), ":v": version},
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    # ------------------------------------------------------------------ releasing stored events

    def mark_requeued(self, key: RecordKey, *, by: str, statuses: Sequence[str]) -> bool:
        """Take the right to re-enqueue the record's stored event: True when the caller should send it.

        One conditional UpdateItem: the record is in one of ``statuses`` (``blocked`` for a dependent,
        ``skipped`` for an account waiting for activity) and no other releaser marked it since its last
        claim (``requeued_by`` absent, or ``by`` itself - a redelivery of a releaser that may have crashed
        before its send sends again). Not a state change: ``revision`` is kept, so a claim is not disturbed
        (the claim removes the mark).
        """
        if not by or not statuses or any(s not in STATUSES for s in statuses):
            raise ValueError("mark_requeued needs a releaser and known statuses")
        values: dict[str, Any] = {":by": by}
        wanted = []
        for i, status in enumerate(dict.fromkeys(statuses)):
            values[f":st{i}"] = status
            wanted.append(f":st{i}")
        try:
            self._table.update(
                key.item_key(),
                update="SET requeued_by = :by",
                condition=f"#status IN ({', '.join(wanted)}) AND "
                "(attribute_not_exists(requeued_by) OR requeued_by = :by)",
                names={"#status": "status"},
                values=values,
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    def clear_error_open(self, key: RecordKey, *, version: int) -> None:
        """The error center entry of the synced ``version`` was resolved: later syncs need not resolve.

        Conditional on the record still being synced at ``version`` (a failure meanwhile set it again for
        its own entry); otherwise a no-op."""
        self._update_if_synced_at(key, version, "REMOVE error_open")

    def mark_released(self, key: RecordKey, *, version: int) -> None:
        """Every dependent of the synced ``version`` was released (written after the sends).

        Conditional on the record still being synced at ``version``; a newer sync meanwhile (which removes
        the mark and releases by itself) makes it a no-op."""
        self._update_if_synced_at(key, version, "SET released_version = :v")

    def _update_if_synced_at(self, key: RecordKey, version: int, update: str) -> None:
        """``update`` (``:v`` is ``version``) while the record is still synced at ``version``; a no-op
        otherwise (a newer sync or a failure meanwhile)."""
        _check_version(version)
        try:
            self._table.update(
                key.item_key(),
                update=update,
                condition="#status = :synced AND platform_version = :v",
                names={"#status": "status"},
                values={":v": version, ":synced": SYNCED},
                return_values="NONE",
            )
        except Conflict:
            return

    # ------------------------------------------------------------------ unsynced activity of accounts

    @staticmethod
    def _activity_key(account: RecordKey) -> dict[str, str]:
        return {"pk": account.item_key()["pk"], "sk": f"ACTIVITY#client_account#{account.platform_id}"}

    def unsynced_activity(self, account: RecordKey) -> UnsyncedActivity:
        """What the account has instead of activity: its invoices skipped as drafts or before the start."""
        return UnsyncedActivity.from_item(self._table.get(self._activity_key(account), consistent=True))

    def note_unsynced_activity(
        self, account: RecordKey, invoice_id: str, kind: str, *, now: float
    ) -> UnsyncedActivity:
        """Note that ``invoice_id`` of the account was skipped as ``kind`` (``draft``, ``before_start``);
        it leaves the other kind's set (idempotent: a redelivery changes nothing but the revision). A set
        at :data:`ACTIVITY_CAP` is not grown. Returns the account's activity after the note."""
        if kind not in UNSYNCED_KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        check_id(invoice_id, "invoice_id")
        other = next(k for k in UNSYNCED_KINDS if k != kind)
        try:
            item = self._table.update(
                self._activity_key(account),
                update="ADD #k :id, revision :one DELETE #o :id SET updated_at = :now, firm_id = :f",
                condition="attribute_not_exists(#k) OR size(#k) < :cap OR contains(#k, :i)",
                names={"#k": kind, "#o": other},
                values={
                    ":id": {invoice_id},
                    ":i": invoice_id,
                    ":one": 1,
                    ":now": _num(now),
                    ":f": account.firm_id,
                    ":cap": ACTIVITY_CAP,
                },
            )
        except Conflict:
            return self.unsynced_activity(account)  # at the cap: counted as "at least"
        return UnsyncedActivity.from_item(item)

    def set_skip_reason(self, key: RecordKey, reason: str, *, prefix: str, activity_revision: int) -> bool:
        """Replace the skip reason of a record still skipped with a reason starting with ``prefix`` (an
        account skipped for no activity, re-explained when its activity changes), unless a newer activity
        revision was written already. False when the condition fails (it moved on, or a newer one won)."""
        if not reason.startswith(prefix):
            raise ValueError("the new reason must keep the prefix")
        try:
            self._table.update(
                key.item_key(),
                update="SET skip_reason = :r, activity_revision = :rev, "
                "revision = if_not_exists(revision, :zero) + :one",
                condition="#status = :skipped AND begins_with(skip_reason, :prefix) AND "
                "(attribute_not_exists(activity_revision) OR activity_revision < :rev)",
                names={"#status": "status"},
                values={
                    ":r": reason[:500],
                    ":rev": activity_revision,
                    ":skipped": SKIPPED,
                    ":prefix": prefix,
                    ":zero": 0,
                    ":one": 1,
                },
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    # ------------------------------------------------------------------ the lease

    def claim(
        self,
        key: RecordKey,
        *,
        version: int,
        owner: str,
        lease_seconds: float,
        now: float,
        options: ClaimOptions = _NO_OPTIONS,
    ) -> Claim:
        """Take the record's lease to write ``version`` (creating the item if needed); ``options``: the
        operation, the event to store with the claim and the record as already read (:class:`ClaimOptions`).

        Returns a :class:`Claim`: ``CLAIMED`` (status ``syncing``, lease until ``now + lease_seconds``),
        ``STALE`` (``version`` is older than the applied one: skip the event, nothing written) or
        ``ALREADY_APPLIED`` (this version is synced with the same ``operation`` - when given - and no write
        is in flight: a redelivery, nothing written).
        Re-claiming by the same owner renews the lease.

        Raises:
            LeaseHeld: another worker holds a live lease (retry later).
            Conflict: the record changed between our read and our conditional write in another way.
            ValueError: invalid arguments.
        """
        _check_version(version)
        _check_id(owner, "owner")
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        firm_id, realm_id, entity_type, platform_id = (
            key.firm_id,
            key.realm_id,
            key.record_type,
            key.platform_id,
        )
        operation, last_event = options.operation, options.last_event
        current = self.get(key) if isinstance(options.seen, _Unread) else options.seen
        early = self._classify(current, version, owner, now, operation, last_event is not None)
        if early is not None:
            return early
        prev_status = NOT_SYNCED
        if current is not None:
            prev_status = (current.prev_status or NOT_SYNCED) if current.status == SYNCING else current.status
        values: dict[str, Any] = {
            ":syncing": SYNCING,
            ":gsi2pk": _status_pk(firm_id, realm_id, SYNCING),
            ":gsi2sk": f"{entity_type}#{iso(now)}",
            ":owner": owner,
            ":until": _num(now + lease_seconds),
            ":now": _num(now),
            ":version": version,
            ":prev": prev_status,
            ":firm": firm_id,
            ":realm": realm_id,
            ":type": entity_type,
            ":pid": platform_id,
            ":zero": 0,
            ":one": 1,
        }
        names = {"#status": "status", "#owner": "owner"}
        if current is None:
            condition = "attribute_not_exists(pk)"
        else:
            condition = "revision = :rev"
            values[":rev"] = current.revision
        stored = ""
        if last_event is not None:
            names.update({"#le": LAST_EVENT_ATTR, "#lev": LAST_EVENT_VERSION_ATTR})
            values[":le"] = json.dumps(dict(last_event), separators=(",", ":"))
            stored = ", #le = :le, #lev = :version"
            condition += " AND (attribute_not_exists(#lev) OR #lev <= :version)"
        noted = _claim_intent(options, current)
        if noted is not None:
            values.update(
                {
                    ":iop": noted.operation,
                    ":iver": noted.version,
                    ":irid": noted.request_id,
                    ":iat": _num(noted.at),
                }
            )
            stored += (
                ", intent_op = :iop, intent_version = :iver, intent_request_id = :irid, intent_at = :iat"
            )
            if noted.sync_token is not None:
                values[":itok"] = str(noted.sync_token)
                stored += ", intent_sync_token = :itok"
        try:
            item = self._table.update(
                key.item_key(),
                update=(
                    "SET #status = :syncing, gsi2pk = :gsi2pk, gsi2sk = :gsi2sk, #owner = :owner, "
                    "lease_until = :until, updated_at = :now, claimed_version = :version, "
                    "prev_status = :prev, firm_id = :firm, realm_id = :realm, entity_type = :type, "
                    "platform_id = :pid, attempts = if_not_exists(attempts, :zero) + :one, "
                    f"revision = if_not_exists(revision, :zero) + :one{stored} REMOVE requeued_by"
                ),
                condition=condition,
                names=names,
                values=values,
            )
        except Conflict:
            if not isinstance(options.seen, _Unread):
                # the record changed since the caller's read (another worker, a batch's read ahead): claim
                # once more from a fresh read, as if nothing had been seen
                unread = ClaimOptions(operation, last_event, intent=options.intent)
                return self.claim(
                    key, version=version, owner=owner, lease_seconds=lease_seconds, now=now, options=unread
                )
            latest = self.get(key)
            again = self._classify(latest, version, owner, now, operation, last_event is not None)
            if again is not None:
                return again
            raise Conflict(
                "the sync record changed while it was being claimed; retry",
                firm_id=firm_id,
                realm_id=realm_id,
                entity=entity_type,
                entity_id=platform_id,
            ) from None
        record = SyncRecord.from_item(item)
        if noted is not None and record.intent is not None:
            record = replace(record, intent=replace(record.intent, fresh=True))
        return Claim(ClaimOutcome.CLAIMED, record)

    @staticmethod
    def _classify(
        current: SyncRecord | None,
        version: int,
        owner: str,
        now: float,
        operation: str | None = None,
        storing: bool = False,
    ) -> Claim | None:
        """The outcome decided by the stored record alone (None: go ahead and claim). ``storing``: the
        claim stores its event, so a newer stored one makes it ``SUPERSEDED``."""
        if current is None:
            return None
        if current.held_by_other(owner, now):
            raise LeaseHeld(
                "another worker is syncing this record",
                firm_id=current.firm_id,
                realm_id=current.realm_id,
                entity=current.entity_type,
                entity_id=current.platform_id,
                retry_after=max(0.0, (current.lease_until or now) - now),
            )
        applied = current.platform_version
        if applied is not None and version < applied:
            return Claim(ClaimOutcome.STALE, current)
        if (
            applied == version
            and current.status == SYNCED
            and current.intent is None
            and current.qbo_id is not None
            and (operation is None or current.applied_op in (None, operation))
        ):
            return Claim(ClaimOutcome.ALREADY_APPLIED, current)
        if storing and current.last_event_version is not None and current.last_event_version > version:
            return Claim(ClaimOutcome.SUPERSEDED, current)
        return None

    # ------------------------------------------------------------------ transitions under the lease

    def _transition(
        self,
        key: RecordKey,
        *,
        owner: str,
        now: float,
        status: str,
        sets: Mapping[str, Any],
        removes: Sequence[str],
    ) -> SyncRecord:
        names: dict[str, str] = {"#status": "status", "#owner": "owner"}
        values: dict[str, Any] = {":me": owner, ":syncing": SYNCING, ":one": 1, ":zero": 0}
        set_parts = ["revision = if_not_exists(revision, :zero) + :one", "updated_at = :now"]
        values[":now"] = _num(now)
        all_sets: dict[str, Any] = {"status": status, **sets}
        if status != SYNCING:
            all_sets["gsi2pk"] = _status_pk(key.firm_id, key.realm_id, status)
            all_sets["gsi2sk"] = f"{key.record_type}#{iso(now)}"
        for i, (attr, value) in enumerate(all_sets.items()):
            names[f"#s{i}"] = attr
            values[f":s{i}"] = value
            set_parts.append(f"#s{i} = :s{i}")
        remove_attrs = list(removes)
        if status != SYNCING:
            remove_attrs += ["owner", "lease_until", "prev_status"]
        remove_parts = []
        for i, attr in enumerate(dict.fromkeys(remove_attrs)):
            names[f"#r{i}"] = attr
            remove_parts.append(f"#r{i}")
        update = "SET " + ", ".join(set_parts)
        if remove_parts:
            update += " REMOVE " + ", ".join(remove_parts)
        try:
            item = self._table.update(
                key.item_key(),
                update=update,
                condition="#owner = :me AND #status = :syncing",
                names=names,
                values=values,
            )
        except Conflict:
            raise Conflict(
                "the lease on this sync record was lost (expired and taken over, or never held)",
                firm_id=key.firm_id,
                realm_id=key.realm_id,
                entity=key.record_type,
                entity_id=key.platform_id,
            ) from None
        return SyncRecord.from_item(item)

    def renew(self, key: RecordKey, *, owner: str, lease_seconds: float, now: float) -> SyncRecord:
        """Extend the caller's live lease to ``now + lease_seconds`` (before a QuickBooks write that follows a
        long preparation). Conflict when the lease was lost."""
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        return self._transition(
            key,
            owner=owner,
            now=now,
            status=SYNCING,
            sets={"lease_until": _num(now + lease_seconds)},
            removes=[],
        )

    def record_intent(self, key: RecordKey, *, owner: str, intent: Intent) -> SyncRecord:
        """Durably note the QBO write about to be sent (before sending it; ``intent.at`` is now).
        Raises Conflict without lease."""
        if intent.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {intent.operation!r}")
        _check_version(intent.version)
        if not intent.request_id:
            raise ValueError("request_id is required")
        sets: dict[str, Any] = {
            "intent_op": intent.operation,
            "intent_version": intent.version,
            "intent_request_id": intent.request_id,
            "intent_at": _num(intent.at),
        }
        removes: list[str] = []
        if intent.sync_token is None:
            removes.append("intent_sync_token")
        else:
            sets["intent_sync_token"] = str(intent.sync_token)
        return self._transition(
            key,
            owner=owner,
            now=intent.at,
            status=SYNCING,
            sets=sets,
            removes=removes,
        )

    def mark_synced(
        self,
        key: RecordKey,
        *,
        owner: str,
        version: int,
        link: QboLink,
        now: float,
        operation: str | None = None,
    ) -> SyncRecord:
        """The write of ``version`` is applied in QBO: store the mapping (``link``, its ``note`` too, removed
        when it has none), clear intent/error/lease. ``operation`` (the one the caller asked for) is kept as
        ``applied_op``."""
        _check_version(version)
        _check_qbo_entity(link.qbo_entity)
        _check_id(link.qbo_id, "qbo_id")
        sync_token, deep_link = link.sync_token, link.deep_link
        sets: dict[str, Any] = {
            "platform_version": version,
            "qbo_entity": link.qbo_entity,
            "qbo_id": link.qbo_id,
            "gsi1pk": _qbo_pk(key.realm_id, link.qbo_entity, link.qbo_id),
            "gsi1sk": "REC",
            "attempts": 0,
        }
        removes = [
            *_INTENT_ATTRS,
            *_ERROR_ATTRS,
            "waiting_on",
            "skip_reason",
            "released_version",
            SYNCED_VIA_ATTR,
        ]
        if operation is not None:
            if operation not in OPERATIONS:
                raise ValueError(f"unknown operation {operation!r}")
            sets["applied_op"] = operation
        if sync_token is None:
            removes.append("sync_token")
        else:
            sets["sync_token"] = str(sync_token)
        if deep_link is None:
            removes.append("deep_link")
        else:
            sets["deep_link"] = deep_link
        if link.note:
            sets["note"] = link.note[:500]
        else:
            removes.append("note")
        return self._transition(
            key,
            owner=owner,
            now=now,
            status=SYNCED,
            sets=sets,
            removes=removes,
        )

    def mark_failed(
        self,
        key: RecordKey,
        *,
        owner: str,
        error: RecordError,
        now: float,
        keep_intent: bool = False,
    ) -> SyncRecord:
        """The write cannot succeed until data changes. ``keep_intent``: an earlier attempt may have been
        applied, so the next attempt must still resolve the intent first."""
        sets: dict[str, Any] = {
            "error_code": error.code,
            "error_category": error.category,
            "error_message": error.message[:1000],
            "error_open": True,
        }
        removes = ["waiting_on", "skip_reason"]
        if error.qbo_code:
            sets["error_qbo_code"] = error.qbo_code
        else:
            removes.append("error_qbo_code")
        if not keep_intent:
            removes += _INTENT_ATTRS
        return self._transition(
            key,
            owner=owner,
            now=now,
            status=FAILED,
            sets=sets,
            removes=removes,
        )

    def mark_skipped(
        self,
        key: RecordKey,
        *,
        owner: str,
        reason: str,
        now: float,
        waiting_on: Sequence[tuple[str, str]] = (),
        drop_intent: bool = False,
    ) -> SyncRecord:
        """The record is deliberately not synced (settings, admin skip); ``reason`` is shown to admins.

        ``waiting_on``: the record is skipped behind prerequisites that will not sync as things stand
        (skipped, failed, unsynced); they are kept, so the record is released when they sync.
        ``drop_intent``: remove the intent (the claim's own, nothing was sent under it: :attr:`Intent.fresh`);
        a leftover intent is kept for the next write to resolve.
        """
        if not reason:
            raise ValueError("a skip needs a reason")
        keys = {_waiting_key(p) for p in waiting_on}
        if key.ref in keys:
            raise ValueError("a record cannot wait on itself")
        return self._transition(
            key,
            owner=owner,
            now=now,
            status=SKIPPED,
            sets={"skip_reason": reason[:500], **({"waiting_on": keys} if keys else {})},
            removes=[
                *_ERROR_ATTRS,
                *(() if keys else ("waiting_on",)),
                *(_INTENT_ATTRS if drop_intent else ()),
            ],
        )

    def mark_blocked(
        self,
        key: RecordKey,
        *,
        owner: str,
        waiting_on: Sequence[tuple[str, str]],
        now: float,
        drop_intent: bool = False,
    ) -> SyncRecord:
        """The record waits for prerequisites (C.5), e.g. an invoice for its client's customer.

        Re-check the prerequisites afterwards (see the module doc) to close the race with their sync.
        ``drop_intent``: as :meth:`mark_skipped`'s.
        """
        keys = {_waiting_key(p) for p in waiting_on}
        if not keys:
            raise ValueError("a blocked record needs at least one prerequisite")
        if key.ref in keys:
            raise ValueError("a record cannot wait on itself")
        return self._transition(
            key,
            owner=owner,
            now=now,
            status=BLOCKED,
            sets={"waiting_on": keys},
            removes=[*_ERROR_ATTRS, "skip_reason", *(_INTENT_ATTRS if drop_intent else ())],
        )

    def release(
        self,
        key: RecordKey,
        *,
        owner: str,
        status: str,
        now: float,
        drop_intent: bool = False,
    ) -> SyncRecord:
        """Give the lease back without an outcome (retryable errors), leaving ``status`` (usually the
        claim's ``prev_status``). The write intent, if any, stays for the next attempt to resolve, unless
        ``drop_intent`` (the claim's own intent, nothing was sent under it: :attr:`Intent.fresh`)."""
        if status not in RESTING_STATUSES:
            raise ValueError(f"a released record rests in one of {list(RESTING_STATUSES)}, not {status!r}")
        return self._transition(
            key,
            owner=owner,
            now=now,
            status=status,
            sets={},
            removes=_INTENT_ATTRS if drop_intent else [],
        )


def _claim_intent(options: ClaimOptions, current: SyncRecord | None) -> Intent | None:
    """The intent a claim notes in its own write (:attr:`ClaimOptions.intent`), checked; None when the record
    already has one (a leftover is resolved by the writer, never replaced) or the caller notes none."""
    if options.intent is None or (current is not None and current.intent is not None):
        return None
    intent = options.intent(current)
    if intent is None:
        return None
    if intent.operation not in OPERATIONS:
        raise ValueError(f"unknown operation {intent.operation!r}")
    _check_version(intent.version)
    if not intent.request_id:
        raise ValueError("request_id is required")
    return intent


_INTENT_ATTRS = ["intent_op", "intent_version", "intent_request_id", "intent_sync_token", "intent_at"]
_ERROR_ATTRS = ["error_code", "error_category", "error_message", "error_qbo_code"]
