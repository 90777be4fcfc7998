"""A synced record edited or deleted in QuickBooks becomes one error on that record (issue 14 item 4).

:class:`SyncedRecordChanges` is what :class:`qbsync.inbound.processor.InboundProcessor` calls for a real
change (not our own echo) of a QuickBooks object linked to a qbsync record, whether a webhook or the CDC
catch-up (:mod:`qbsync.inbound.catchup`) reported it. :meth:`SyncedRecordChanges.handle`:

* **Which records.** A ``synced`` record, or one already ``failed`` with :data:`EDITED` (an edit after an
  edit updates the same open error). A record being written right now (live lease) raises
  :class:`~qbsync.errors.LeaseHeld`: the change is read again later (the notice is retried, the CDC page
  is not marked processed). Other records (failed for another reason, a write in flight to resolve,
  skipped, blocked) are left alone: their next sync re-reads QuickBooks and writes the platform's version
  (a 5010 is resent with the fresh SyncToken). A change older than the record's SyncToken is ignored.
* **Edited.** The QuickBooks object is compared with the platform record qbsync last wrote
  (:func:`qbsync.inbound.differences.differences` over the stored ``last_event``). Nothing that matters
  differs (a memo, QuickBooks' own bookkeeping, an edit that was undone) → the record stays / becomes
  ``synced`` with QuickBooks' SyncToken (an open :data:`EDITED` error resolves, ``matched_again``).
  Otherwise the record becomes ``failed`` with :data:`EDITED` (``RecordAdmin.mark_changed_in_qbo``: QBO's
  SyncToken kept, ``epoch`` + 1) and the error center gets one entry (``ErrorLogRepository.record``: a
  repeat updates the open entry, never a second one) whose explanation names every change, amounts
  was/now to the cent.
* **Deleted** (no body) → ``failed`` with :data:`DELETED`, the QuickBooks link removed (the push creates a
  new object; dependents wait for it as for any failed prerequisite).
* **Removed by the platform** (the record's ``applied_op`` is in :data:`qbsync.vocab.REMOVING_OPERATIONS`:
  deleted or voided on the platform, so deleted, voided or inactive in QuickBooks too): never compared, as
  in the drift report. An edit of the voided object or its deletion in QuickBooks settles (SyncToken
  adopted); a drift error left open from before the removal resolves.
* Then "Sync Status Changed" (failed) and, for a new error, "Sync Error Raised".

The error's actions (:mod:`qbsync.errorcenter.drift_actions`): push the platform's version again (the
error center's Resync: the exactly-once writer; ``epoch`` + 1 makes its request ids new, so QBO writes
rather than replays), accept QuickBooks' change (client accounts whose contact fields changed: "Contact
Updated"), unlink.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync import vocab
from qbsync.errors import Conflict, DataError, LeaseHeld, RetryableError
from qbsync.inbound.changes import ChangedObject
from qbsync.inbound.differences import (
    Difference,
    differences,
    explain_delete,
    explain_edit,
    on_sales_item,
    written_by_qbsync,
)
from qbsync.models.qbsync_events import SyncErrorRaised, SyncErrorResolved, SyncStatusChanged
from qbsync.repositories.error_log import ErrorEntry, ErrorLogRepository
from qbsync.repositories.record_admin import RecordAdmin
from qbsync.repositories.records import FAILED, SYNCED, RecordError, RecordsRepository, SyncRecord

__all__ = [
    "AMOUNT_MISMATCH",
    "COMPARED_TYPES",
    "DELETED",
    "DRIFT_CODES",
    "EDITED",
    "MISSING",
    "UNLINKED_CODES",
    "QuickBooksChanged",
    "SyncedRecordChanges",
    "event_data",
]

logger = logging.getLogger("qbsync.inbound.drift")

EDITED = "edited_in_quickbooks"
DELETED = "deleted_in_quickbooks"
#: the drift report's (``qbsync.reconcile``): the linked object is not in QuickBooks (deleted or never there;
#: a query cannot tell), and an edit in QuickBooks that changed an amount (total, a line, a payment's amount)
MISSING = "missing_in_quickbooks"
AMOUNT_MISMATCH = "amount_mismatch"
DRIFT_CODES = frozenset({EDITED, DELETED, MISSING, AMOUNT_MISMATCH})
#: the drift codes whose record lost its QuickBooks link (a push creates a new object)
UNLINKED_CODES = frozenset({DELETED, MISSING})
#: record types whose platform record names a client account (the customer compared)
_HAS_ACCOUNT = frozenset({"invoice", "payment", "refund", "fee"})


class QuickBooksChanged(DataError):
    """A synced record's QuickBooks object was edited or deleted there. Carries ``reason_code``
    (:data:`EDITED` / :data:`DELETED`), ``category`` and the specific ``explanation`` (the catalog keeps
    them and adds title and fix); ``differences`` are the changed fields."""

    code = "changed_in_quickbooks"

    def __init__(
        self, record: SyncRecord, reason_code: str, explanation: str, found: tuple[Difference, ...] = ()
    ) -> None:
        category = vocab.RECORD_TYPE_INFO[record.entity_type].category
        super().__init__(
            explanation,
            firm_id=record.firm_id,
            realm_id=record.realm_id,
            entity=record.entity_type,
            entity_id=record.platform_id,
            reason_code=reason_code,
        )
        self.reason_code = reason_code
        self.category = category
        self.explanation = explanation
        self.differences = found


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


def event_data(envelope: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``detail.data`` of a stored platform event envelope (None when absent or not an object)."""
    detail = (envelope or {}).get("detail")
    data = detail.get("data") if isinstance(detail, Mapping) else None
    return dict(data) if isinstance(data, Mapping) else None


def _token(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


class SyncedRecordChanges:
    """Turns a change in QuickBooks of a linked record into its error (see the module doc).

    Args:
        records: the sync records (reads, the stored platform event); ``admin``: their changes outside a
            lease; ``errorlog``: the error center; ``publisher``: qbsync events; ``clock``: epoch seconds.
    """

    def __init__(
        self,
        *,
        records: RecordsRepository,
        admin: RecordAdmin,
        errorlog: ErrorLogRepository,
        publisher: Publisher,
        clock: Callable[[], float],
    ) -> None:
        self._records = records
        self._admin = admin
        self._errorlog = errorlog
        self._publisher = publisher
        self._clock = clock

    def handle(self, record: SyncRecord, change: ChangedObject) -> None:
        """Raise, update or resolve the record's drift error for ``change``. Raises LeaseHeld (a write of
        the record is in flight) and RetryableError (the record changed meanwhile): read it again later."""
        now = self._clock()
        ctx = _log_ctx(record)
        if record.lease_live(now):
            raise LeaseHeld(
                "the record is being written; its change in QuickBooks is read again later",
                firm_id=record.firm_id,
                entity=record.entity_type,
                entity_id=record.platform_id,
                retry_after=max(1.0, (record.lease_until or now) - now),
            )
        drifted = record.status == FAILED and record.error is not None and record.error.code in DRIFT_CODES
        if record.intent is not None or not (record.status == SYNCED or drifted):
            logger.info(
                "change in QuickBooks left to the record's next sync", extra={**ctx, "status": record.status}
            )
            return
        body = change.body
        if record.applied_op in vocab.REMOVING_OPERATIONS:
            # deleted or voided on the platform, so removed in QuickBooks too: an edit of the voided object (a
            # memo) or its deletion there is no drift, and its amounts (zero once voided) are not compared
            logger.info("change in QuickBooks of a record the platform removed: not compared", extra=ctx)
            token = None if body is None else _token(body.get("SyncToken"))
            self.settle(record, None if token is None else str(token), drifted=drifted)
            return
        if body is None:
            self.raise_drift(
                record,
                QuickBooksChanged(record, DELETED, explain_delete(record.entity_type, self._data(record))),
                deleted=True,
                sync_token=None,
            )
            return
        token, known = _token(body.get("SyncToken")), _token(record.sync_token)
        if token is not None and known is not None and token < known:
            logger.info("older change of a QuickBooks object ignored", extra=ctx)
            return
        data = self._data(record)
        if record.entity_type not in _COMPARED or not data:
            logger.info("change in QuickBooks of a record qbsync does not compare", extra=ctx)
            return
        sync_token = None if token is None else str(token)
        if not written_by_qbsync(record.entity_type, record.platform_id, change.entity, body):
            # linked to an object that was in QuickBooks before (a match, the firm's mapping): its fields are
            # QuickBooks' own, not an edit of what qbsync wrote; the record keeps up with its SyncToken
            logger.info("change in QuickBooks of an object qbsync linked and never wrote", extra=ctx)
            self.settle(record, sync_token, drifted=drifted)
            return
        found = differences(
            record.entity_type,
            data,
            body,
            customer_id=self._customer_id(record, data),
            sales_item=on_sales_item(record.entity_type, record.note),
        )
        if not found:
            self.settle(record, sync_token, drifted=drifted)
            return
        err = QuickBooksChanged(record, EDITED, explain_edit(record.entity_type, data, found), tuple(found))
        self.raise_drift(record, err, deleted=False, sync_token=sync_token)

    # ------------------------------------------------------------------ steps

    def _data(self, record: SyncRecord) -> dict[str, Any]:
        return event_data(self._records.last_event(record.key)) or {}

    def _customer_id(self, record: SyncRecord, data: Mapping[str, Any]) -> str | None:
        account_id = data.get("account_id")
        if record.entity_type not in _HAS_ACCOUNT or not isinstance(account_id, str) or not account_id:
            return None
        try:
            account = self._records.get(record.key.sibling("client_account", account_id), consistent=False)
        except ValueError:
            return None
        return account.qbo_id if account is not None else None

    def settle(self, record: SyncRecord, sync_token: str | None, *, drifted: bool) -> None:
        """QuickBooks matches the platform: adopt its SyncToken; a drift error open on the record resolves
        (``matched_again``). Raises RetryableError when the record changed meanwhile."""
        now = self._clock()
        if not drifted and (sync_token is None or sync_token == record.sync_token):
            return
        try:
            settled = self._admin.settle_in_qbo(
                record.key, sync_token=sync_token, seen_revision=record.revision, now=now
            )
        except Conflict:
            raise _changed_meanwhile(record) from None
        if not drifted:
            return
        entry = self._errorlog.current(record.firm_id, record.entity_type, record.platform_id)
        self._errorlog.resolve(
            firm_id=record.firm_id, entity_type=record.entity_type, platform_id=record.platform_id, now=now
        )
        correlation = uuid.uuid4().hex
        events: list[Any] = [_status(settled, SYNCED, correlation)]
        if entry is not None:
            events.append(
                SyncErrorResolved(
                    firm_id=record.firm_id,
                    correlation_id=correlation,
                    error_id=entry.error_id,
                    category=vocab.RECORD_TYPE_INFO[record.entity_type].category,
                    entity_type=vocab.EVENT_ENTITY_OF.get(record.entity_type),
                    platform_id=record.platform_id,
                    resolution="matched_again",
                )
            )
        self._publisher.publish(events)
        logger.info("QuickBooks matches the platform again: drift error resolved", extra=_log_ctx(record))

    def raise_drift(
        self, record: SyncRecord, err: QuickBooksChanged, *, deleted: bool, sync_token: str | None
    ) -> ErrorEntry:
        """The record becomes ``failed`` with ``err`` (``deleted``: its QuickBooks link removed) and the error
        center gets its one entry (a repeat updates it); "Sync Status Changed" and, for a new entry, "Sync
        Error Raised". Returns the entry. Raises RetryableError when the record changed meanwhile."""
        now = self._clock()
        error = RecordError(
            code=err.reason_code,
            category=vocab.record_error_category(record.entity_type),
            message=err.explanation[:1000],
        )
        try:
            marked = self._admin.mark_changed_in_qbo(
                record.key,
                error=error,
                sync_token=sync_token,
                deleted=deleted,
                seen_revision=record.revision,
                now=now,
            )
        except Conflict:
            raise _changed_meanwhile(record) from None
        entry = self._errorlog.record(
            firm_id=record.firm_id,
            realm_id=record.realm_id,
            entity_type=record.entity_type,
            platform_id=record.platform_id,
            error=err,
            now=now,
        )
        correlation = uuid.uuid4().hex
        events: list[Any] = [
            _status(marked, FAILED, correlation, error_id=entry.error_id, message=entry.explanation)
        ]
        if entry.is_new:
            events.append(
                SyncErrorRaised(
                    firm_id=record.firm_id,
                    correlation_id=correlation,
                    error_id=entry.error_id,
                    realm_id=record.realm_id,
                    category=err.category,  # type: ignore[arg-type]  # vocab category
                    entity_type=vocab.EVENT_ENTITY_OF.get(record.entity_type),
                    platform_id=record.platform_id,
                    explanation=entry.explanation[:2000],
                    attempts=max(1, entry.attempts),
                    first_seen=_when(entry.first_seen),
                    last_seen=_when(entry.last_seen),
                )
            )
        self._publisher.publish(events)
        logger.warning(
            "synced record changed in QuickBooks",
            extra={
                **_log_ctx(record),
                "error_code": err.reason_code,
                "fields": [d.field for d in err.differences],
            },
        )
        return entry


_COMPARED = frozenset({"invoice", "payment", "refund", "fee", "client_account", "service"})
#: the record types whose QuickBooks object is compared with the platform's (here and by the drift report)
COMPARED_TYPES = _COMPARED


def _status(
    record: SyncRecord,
    status: str,
    correlation: str,
    *,
    error_id: str | None = None,
    message: str | None = None,
) -> SyncStatusChanged:
    return SyncStatusChanged(
        firm_id=record.firm_id,
        correlation_id=correlation,
        realm_id=record.realm_id,
        entity_type=vocab.EVENT_ENTITY_OF[record.entity_type],
        platform_id=record.platform_id,
        status=status,  # type: ignore[arg-type]
        qbo_id=record.qbo_id if status == SYNCED else None,
        qbo_url=record.deep_link if status == SYNCED else None,
        error_id=error_id,
        error_message=(message or None) and message[:2000],
    )


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _changed_meanwhile(record: SyncRecord) -> RetryableError:
    return RetryableError(
        "the record changed while its change in QuickBooks was being compared; read again later",
        firm_id=record.firm_id,
        entity=record.entity_type,
        entity_id=record.platform_id,
    )


def _log_ctx(record: SyncRecord) -> dict[str, Any]:
    return {
        "firm_id": record.firm_id,
        "realm_id": record.realm_id,
        "entity_type": record.entity_type,
        "platform_id": record.platform_id,
        "qbo_id": record.qbo_id,
    }
