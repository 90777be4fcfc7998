"""What a QuickBooks change means for qbsync: our own write, a change to a synced record, or a payment.

:meth:`InboundProcessor.process` takes the :class:`~qbsync.inbound.changes.ChangedObject` s of one realm,
already proven to belong to ``firm_id`` and already read from QuickBooks (by the webhook worker,
:mod:`qbsync.inbound.worker`, or by the CDC catch-up), and routes each one:

==========================================  ===============================================================
the object                                  what happens
==========================================  ===============================================================
linked to a qbsync record, and it is our    **echo**: dropped (debug log, ``echo`` count). Its
own write                                   ``SyncToken`` equals the record's stored ``sync_token`` (the
                                            version qbsync wrote), or the record has a write in flight whose
                                            result is exactly that version (``intent_sync_token`` + 1, ``0``
                                            for a create); a deletion after qbsync's own ``delete`` /
                                            ``void`` (``applied_op``)
linked, any other version or a deletion     **a change made in QuickBooks** to a record qbsync synced:
                                            ``synced_changes.handle(record, change)``
                                            (:class:`SyncedRecordChanges`)
not linked, a ``Payment``                   a payment recorded in QuickBooks: ``payments.handle(...)``
                                            (:class:`~qbsync.inbound.payments.PaymentsReceived`), all the
                                            batch's payments in one call
not linked, anything else                   ignored (debug log with the reason): qbsync does not import
                                            QuickBooks-only customers, items, invoices, credit memos,
                                            refunds or purchases (contact import is its own flow, D.1)
==========================================  ===============================================================

"Linked" = :meth:`~qbsync.repositories.records.RecordsRepository.find_by_qbo_id` finds a record of the
firm and realm mapped to that QuickBooks object (gsi1); or, when it does not, the object carries qbsync's
marker (``qbsync:<Entity>:<platform id>`` in its note, :func:`~qbsync.models.record_key.parse_marker`) and
that record exists (a consistent GetItem) and is not mapped to another object. The second way covers
qbsync's own write whose outcome is not recorded yet (a create in flight) and gsi1's eventual consistency
right after a sync: without it, a platform payment qbsync just wrote would come back as a payment
"recorded in QuickBooks".

The marker is asked first for the whole set: the records its markers name are read in one consistent
BatchGetItem (100 keys a call), and an object whose named record is mapped to exactly that object is linked
to it with no query. Only the others take the way above (a gsi1 query each, then the marker's record). Our
own writes echo back by the hundred during an initial sync; each costs a key read now, not an index query.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qbsync import vocab
from qbsync.inbound.changes import ChangedObject
from qbsync.models.record_key import RecordKey, note_of, parse_marker
from qbsync.repositories.records import SyncRecord

__all__ = [
    "SUPPORTED_ENTITIES",
    "InboundProcessor",
    "LoggedSyncedChanges",
    "PaymentHandler",
    "ProcessReport",
    "RecordLookup",
    "SyncedRecordChanges",
    "is_own_write",
]

logger = logging.getLogger("qbsync.inbound.processor")

#: the QuickBooks entities qbsync writes (and so may find linked), plus Payment for payments recorded in
#: QuickBooks. Changes of any other entity (Account, Vendor, TaxCode, Preferences, ...) are not read.
SUPPORTED_ENTITIES = ("Customer", "Item", "Invoice", "Payment", "CreditMemo", "RefundReceipt", "Purchase")
PAYMENT = "Payment"


class RecordLookup(Protocol):
    def find_by_qbo_id(self, realm_id: str, qbo_entity: str, qbo_id: str) -> SyncRecord | None: ...

    def get(self, key: RecordKey, *, consistent: bool = True) -> SyncRecord | None: ...

    def get_many(self, keys: Sequence[RecordKey]) -> dict[RecordKey, SyncRecord | None]: ...


class SyncedRecordChanges(Protocol):
    """What to do when a record qbsync synced was changed (edited, voided, deleted) in QuickBooks
    (PRODUCT.md D.4: an error on that entity with its actions)."""

    def handle(self, record: SyncRecord, change: ChangedObject) -> None: ...


class PaymentHandler(Protocol):
    """Payments recorded in QuickBooks that no qbsync record is linked to (PRODUCT.md D.3)."""

    def handle(self, firm_id: str, realm_id: str, payments: Sequence[ChangedObject]) -> object: ...


class LoggedSyncedChanges:
    """Placeholder :class:`SyncedRecordChanges` until edit/delete detection (issue 14, h-drift) is merged:
    the change is logged (ids and versions only) and counted; nothing else happens. It is REPLACED in
    ``qbsync.wiring`` by that implementation at merge."""

    def __init__(self) -> None:
        self.seen = 0

    def handle(self, record: SyncRecord, change: ChangedObject) -> None:
        self.seen += 1
        logger.info(
            "synced record changed in QuickBooks",
            extra={
                "firm_id": record.firm_id,
                "realm_id": record.realm_id,
                "entity_type": record.entity_type,
                "platform_id": record.platform_id,
                "qbo_entity": change.entity,
                "qbo_id": change.qbo_id,
                "operation": change.operation,
                "sync_token": change.sync_token,
                "record_sync_token": record.sync_token,
            },
        )


def is_own_write(record: SyncRecord, change: ChangedObject) -> bool:
    """True when ``change`` is the version qbsync itself wrote for ``record`` (see the module table)."""
    if change.deleted:
        return record.applied_op in vocab.REMOVING_OPERATIONS
    token = change.sync_token
    if token is not None and token == record.sync_token:
        return True
    intent = record.intent
    if intent is None or token is None:
        return False
    if intent.sync_token is None:
        return token == "0"  # a create in flight: its result is version 0
    try:
        return int(token) == int(intent.sync_token) + 1
    except ValueError:
        return False


@dataclass
class ProcessReport:
    """What :meth:`InboundProcessor.process` did, by route (for the handler's metrics and logs)."""

    echo: int = 0
    synced_changes: int = 0
    payments: int = 0
    ignored: int = 0
    ignored_reasons: dict[str, int] = field(default_factory=dict)

    def ignore(self, reason: str) -> None:
        self.ignored += 1
        self.ignored_reasons[reason] = self.ignored_reasons.get(reason, 0) + 1


class InboundProcessor:
    """Routes the changed objects of one realm (see the module doc). Independent of where they came from.

    Args:
        records: the realm's records (``RecordsRepository``): the object → record link.
        synced_changes: changes made in QuickBooks to synced records.
        payments: payments recorded in QuickBooks.
    """

    def __init__(
        self, *, records: RecordLookup, synced_changes: SyncedRecordChanges, payments: PaymentHandler
    ) -> None:
        self._records = records
        self.synced_changes = synced_changes
        self._payments = payments

    def process(self, firm_id: str, realm_id: str, objects: Sequence[ChangedObject]) -> ProcessReport:
        """Route every object; raises what a route raises (the caller retries the whole set, which is
        safe: every route is idempotent per object version)."""
        report = ProcessReport()
        payments: list[ChangedObject] = []
        supported = [obj for obj in objects if obj.entity in SUPPORTED_ENTITIES]
        marked = self._marked_records(firm_id, realm_id, supported)
        for obj in objects:
            if obj.entity not in SUPPORTED_ENTITIES:
                report.ignore("entity_not_synced")
                continue
            record = marked.get((obj.entity, obj.qbo_id)) or self.linked_record(firm_id, realm_id, obj)
            if record is None:
                if obj.entity == PAYMENT:
                    payments.append(obj)
                else:
                    report.ignore("not_created_by_qbsync")
                    logger.debug(
                        "QuickBooks object not created by qbsync: ignored",
                        extra={"realm_id": realm_id, "qbo_entity": obj.entity, "qbo_id": obj.qbo_id},
                    )
                continue
            if is_own_write(record, obj):
                report.echo += 1
                logger.debug(
                    "our own write: no inbound change",
                    extra={
                        "realm_id": realm_id,
                        "qbo_entity": obj.entity,
                        "qbo_id": obj.qbo_id,
                        "sync_token": obj.sync_token,
                        "entity_type": record.entity_type,
                        "platform_id": record.platform_id,
                    },
                )
                continue
            report.synced_changes += 1
            self.synced_changes.handle(record, obj)
        if payments:
            report.payments += len(payments)
            self._payments.handle(firm_id, realm_id, payments)
        return report

    def _marked_records(
        self, firm_id: str, realm_id: str, objects: Sequence[ChangedObject]
    ) -> dict[tuple[str, str], SyncRecord]:
        """(entity, QBO id) → the record an object's marker names, for each object whose named record is
        mapped to exactly that object (one BatchGetItem per 100 keys; the module doc)."""
        wanted = {(obj.entity, obj.qbo_id): _marker_keys(firm_id, realm_id, obj) for obj in objects}
        keys = [key for found in wanted.values() for key in found]
        if not keys:
            return {}
        read = self._records.get_many(keys)
        linked: dict[tuple[str, str], SyncRecord] = {}
        for (entity, qbo_id), found in wanted.items():
            for key in found:
                record = read.get(key)
                if record is not None and record.qbo_entity == entity and record.qbo_id == qbo_id:
                    linked[(entity, qbo_id)] = record
                    break
        return linked

    def linked_record(self, firm_id: str, realm_id: str, obj: ChangedObject) -> SyncRecord | None:
        """The firm's record of ``obj`` (see the module doc), or None."""
        record = self._records.find_by_qbo_id(realm_id, obj.entity, obj.qbo_id)
        if record is not None and record.firm_id == firm_id:
            return record
        # none, or a record another firm kept from its own time with this company: ask the marker
        for key in _marker_keys(firm_id, realm_id, obj):
            candidate = self._records.get(key, consistent=True)
            if candidate is not None and candidate.qbo_id in (None, obj.qbo_id):
                return candidate
        return None


def _marker_keys(firm_id: str, realm_id: str, obj: ChangedObject) -> list[RecordKey]:
    """The keys of the firm's records the object's marker may name (none without a marker)."""
    found = parse_marker(note_of(obj.entity, obj.body)) if obj.body is not None else None
    if found is None:
        return []
    marker_type, platform_id = found
    keys: list[RecordKey] = []
    for info in vocab.RECORD_TYPE_INFO.values():
        if obj.entity not in info.qbo_entities:
            continue
        # a credit application (a zero Payment) carries its payment's marker
        if info.marker != marker_type and not (
            info.record_type == vocab.CREDIT_APPLICATION and marker_type == "Payment"
        ):
            continue
        try:
            keys.append(RecordKey(firm_id, realm_id, info.record_type, platform_id))
        except ValueError:
            continue
    return keys
