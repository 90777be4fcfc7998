"""Outbound sync of one platform event to the firm's QuickBooks company (PRODUCT.md C, issue 4).

:meth:`SyncService.handle` takes a parsed :class:`~qbsync.models.platform_events.PlatformEvent` and:

1. **Connection.** The firm's connection must be ``connected``. Otherwise (no connection, needs reconnect,
   disconnected, switch pending) it raises :class:`SyncPaused` (a :class:`~qbsync.errors.RetryableError`):
   the SQS message is NOT deleted, becomes visible again after the queue's visibility timeout and is
   redelivered; after ``maxReceiveCount`` (5) receives it moves to ``OutboundDLQ``, whose alarm tells the
   operator to redrive it once the firm has reconnected. Work is paused, never lost. A token provider that
   finds the authorization gone raises :class:`~qbsync.errors.ReconnectRequired` (propagated the same way).
2. **What to do.** ClientAccount → ``client_account`` / Customer; Service → ``service`` / Item; Invoice
   Created/Updated/Sent → create-or-update, Voided → void, Deleted → delete; Payment → Payment (CreditMemo
   for credit payments, :func:`~qbsync.sync.mapping.qbo_entity_for`); Refund → RefundReceipt; ProcessingFee →
   Purchase. Deleting a client account or service deactivates its QBO Customer/Item (QBO never deletes name
   lists). Contact events are ignored here (contacts sync inbound, a later issue).
3. **Lease.** The record is claimed (:meth:`RecordsRepository.claim`): an older version → ``stale``; the same
   version already applied → ``already_synced`` (redelivery: nothing is written, the status event is sent
   again and records blocked on it are released again, so a crash after the write loses nothing).
4. **Settings** (:class:`~qbsync.repositories.firm_settings.FirmSettingsRepository`): accounts without
   activity under "with_activity", payments that must not sync (offline), drafts and records dated before
   the sync start date → ``skipped``. A skipped account keeps its event: when an invoice or payment later
   waits on it, the account event is re-enqueued and then syncs (it has activity now).
5. **Prerequisites** (:func:`~qbsync.sync.mapping.dependencies`): any not in QBO yet → the event is stored
   on the record, the record is marked ``blocked`` (``waiting_on``), prerequisites are re-checked (gsi2 is
   eventually consistent: one that synced in between re-enqueues this event), and skipped accounts it
   waits on are re-enqueued. When a record syncs, every record blocked on it gets its stored event
   re-enqueued to ``OUTBOUND_QUEUE_URL`` and goes through this same path.
6. **Payload + write.** Reference data (:class:`ReferenceCache`, per realm, a few minutes) and the mapper
   build the payload; :class:`~qbsync.sync.writer.ExactlyOnceWriter` writes it exactly once, with
   :func:`~qbsync.sync.lookups.find_existing` to adopt an object a lost write created.
7. **Outcomes.** Synced → error log entry resolved, "Sync Status Changed" (synced), dependents released.
   :class:`~qbsync.errors.DataError` (MappingError before any QBO call, or QBO's validation fault) → record
   ``failed``, error log entry recorded, "Sync Status Changed" (failed) and, for a new open error, "Sync
   Error Raised"; the event is consumed (data must change first). Retryable errors, ReconnectRequired,
   UncertainOutcome and lease/Conflict races propagate: the message is retried.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.sqs import SqsMessage
from qbsync.errors import DataError, QbsyncError, RetryableError
from qbsync.models.platform_events import (
    PLATFORM_SOURCE,
    ClientAccount,
    Invoice,
    Payment,
    PlatformEvent,
    ProcessingFee,
    Refund,
    Service,
)
from qbsync.models.qbsync_events import SyncErrorRaised, SyncStatusChanged
from qbsync.qbo.client import QboClient, TokenSource, quote_literal
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.sync import mapping
from qbsync.sync.lookups import find_existing
from qbsync.sync.mapping import MappingError, Resolved
from qbsync.sync.records import (
    SKIPPED,
    SYNCED,
    ClaimOutcome,
    RecordError,
    RecordsRepository,
    SyncRecord,
    record_key,
)
from qbsync.sync.reference import QboReference
from qbsync.sync.settings import FirmSyncSettings
from qbsync.sync.writer import DEFAULT_LEASE_SECONDS, ERROR_CATEGORIES, ExactlyOnceWriter

__all__ = [
    "ENTITY_TYPE_OF",
    "Outcome",
    "ReferenceCache",
    "SyncPaused",
    "SyncService",
    "clear",
    "event_envelope",
    "sync_service",
]

logger = logging.getLogger("qbsync.sync.service")

#: platform entity (event ``ENTITY``) -> record entity type
ENTITY_TYPE_OF = {
    "ClientAccount": "client_account",
    "Service": "service",
    "Invoice": "invoice",
    "Payment": "payment",
    "Refund": "refund",
    "ProcessingFee": "fee",
}
#: record entity type -> the EntityType of qbsync events
_EVENT_ENTITY = {v: k for k, v in ENTITY_TYPE_OF.items()}
#: the QBO entity of each record type when the event alone does not say (deletes)
_DEFAULT_QBO_ENTITY = {
    "client_account": "Customer",
    "service": "Item",
    "invoice": "Invoice",
    "payment": "Payment",
    "refund": "RefundReceipt",
    "fee": "Purchase",
}
_NAME_LISTS = ("client_account", "service")
#: MappingError reasons that mean "deliberately not synced" (skipped, not failed)
_SKIP_REASONS = frozenset({"before_sync_start", "offline_payment_not_synced", "invoice_not_sent"})
NO_ACTIVITY = "no_activity"
_ERROR_CATEGORIES = (
    "Accounts",
    "Invoices",
    "Payments",
    "Refunds",
    "Expenses",
    "Services",
    "Contacts",
    "Taxes",
    "Connection",
)
_PENDING_ATTR = "pending_event"


class SyncPaused(RetryableError):
    """The firm's QuickBooks connection is not ``connected``: the event must wait (SQS redelivers it)."""

    code = "sync_paused"


# --- ports -------------------------------------------------------------------------------------------


class ErrorLog(Protocol):
    """``qbsync.errorlog.ErrorLogRepository`` (the error center, E)."""

    def record(
        self,
        *,
        firm_id: str,
        realm_id: str,
        entity_type: str,
        platform_id: str,
        error: QbsyncError,
        now: float,
    ) -> Any: ...

    def resolve(self, *, firm_id: str, entity_type: str, platform_id: str, now: float) -> None: ...


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What :meth:`SyncService.handle` did with one event.

    ``status``: ``synced`` / ``adopted`` (written now / an earlier lost write linked), ``already_synced``
    (redelivery), ``stale`` (older version), ``skipped``, ``blocked`` (waits on ``waiting_on``), ``failed``
    (data must be fixed; ``error_code``), ``ignored`` (not an outbound event).
    """

    status: str
    entity_type: str | None = None
    platform_id: str | None = None
    qbo_id: str | None = None
    reason: str | None = None
    waiting_on: tuple[tuple[str, str], ...] = ()
    released: int = 0
    error_code: str | None = None


@dataclass
class _Job:
    """The write one event asks for."""

    event: PlatformEvent
    firm_id: str
    realm_id: str
    entity_type: str
    platform_id: str
    version: int
    operation: str
    record: Any  # the platform record (None for deletes/voids)
    qbo_entity: str


def event_envelope(event: PlatformEvent) -> dict[str, Any]:
    """The EventBridge event (as the bus rule delivers it to SQS) that carries ``event``.

    Used to re-enqueue a stored event: the consumer cannot tell it from the original delivery.
    """
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"qbsync:{event.firm_id}:{event.event_id}")),
        "detail-type": event.DETAIL_TYPE,
        "source": PLATFORM_SOURCE,
        "time": event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": [],
        "detail": event.model_dump(mode="json"),
    }


# --- reference data ----------------------------------------------------------------------------------


class ReferenceCache:
    """Per-realm :class:`QboReference`, loaded through QBO queries and kept ``ttl_seconds`` per container.

    TaxCode/TaxRate are not in CDC, so a short TTL is how changes in QBO are picked up (QBO.md §5.10).
    """

    def __init__(self, clock: Callable[[], float], ttl_seconds: float = 300.0) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._clock = clock
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, QboReference]] = {}

    def get(self, qbo: QboClient) -> QboReference:
        """The realm's reference data (cached). QBO errors propagate; ReferenceDataError if malformed."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(qbo.realm_id)
            if hit is not None and hit[0] > now:
                return hit[1]
        ref = self.load(qbo)
        with self._lock:
            self._cache[qbo.realm_id] = (now + self._ttl, ref)
        return ref

    def invalidate(self, realm_id: str) -> None:
        with self._lock:
            self._cache.pop(realm_id, None)

    @staticmethod
    def load(qbo: QboClient) -> QboReference:
        def every(entity: str) -> list[dict[str, Any]]:
            return list(qbo.query_all(f"SELECT * FROM {entity} ORDERBY Id"))  # noqa: S608 - fixed names

        info = qbo.company_info()
        return QboReference.from_qbo(
            accounts=every("Account"),
            customer_types=every("CustomerType"),
            payment_methods=every("PaymentMethod"),
            tax_codes=every("TaxCode"),
            tax_rates=every("TaxRate"),
            preferences=qbo.preferences(),
            items=qbo.query(f"SELECT * FROM Item WHERE Name = {quote_literal('Sales')}"),  # noqa: S608
            country=str(info.get("Country") or "US"),
        )


# --- the service -------------------------------------------------------------------------------------


def _record_date(record: Any) -> Any:
    for attr in ("issue_date", "payment_date", "refund_date", "fee_date"):
        value = getattr(record, attr, None)
        if value is not None:
            return value
    return None


def _iso_now(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _as_datetime(value: Any, fallback: float) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return _iso_now(fallback)


def _category(value: Any, entity_type: str) -> str:
    text = str(value or "").strip()
    for name in _ERROR_CATEGORIES:
        if text.lower() == name.lower():
            return name
    return ERROR_CATEGORIES.get(entity_type, "accounts").capitalize()


class SyncService:
    """Applies platform events to QuickBooks (see the module doc).

    Args:
        connections: ``ConnectionsRepository`` (``get(firm_id)``).
        token_provider: ``(firm_id, realm_id) -> TokenSource`` (``ConnectionService.token_provider``).
        qbo_client: ``(realm_id, tokens) -> QboClient``.
        records: the records repository; ``table``: the sync-state table (stored events of blocked records).
        settings: firm settings repository.
        errorlog: the error center (``ErrorLogRepository``).
        publisher: publishes qbsync events (``EventPublisher``).
        requeue: sends re-enqueued events to the outbound queue (``SqsSender``).
        clock: epoch seconds; ``owner_id``: this worker's lease owner; ``app_base_url``: deep links.
        references: the per-realm reference cache.
    """

    def __init__(
        self,
        *,
        connections: Connections,
        token_provider: Callable[[str, str], TokenSource],
        qbo_client: Callable[[str, TokenSource], QboClient],
        records: RecordsRepository,
        table: DynamoTable,
        settings: FirmSettingsRepository,
        errorlog: ErrorLog,
        publisher: Publisher,
        requeue: Sender,
        clock: Callable[[], float],
        owner_id: str,
        app_base_url: str,
        references: ReferenceCache | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if not owner_id:
            raise ValueError("owner_id is required")
        self._connections = connections
        self._token_provider = token_provider
        self._qbo_client = qbo_client
        self._records = records
        self._table = table
        self._settings = settings
        self._errorlog = errorlog
        self._publisher = publisher
        self._requeue = requeue
        self._clock = clock
        self._owner = owner_id
        self._app_base_url = app_base_url
        self._references = references or ReferenceCache(clock)
        self._lease_seconds = lease_seconds

    # ------------------------------------------------------------------ entry point

    def handle(self, event: PlatformEvent) -> Outcome:
        """Apply one platform event (see the module doc for every outcome).

        Raises:
            SyncPaused: the firm's connection is not ``connected`` (retry later; nothing was written).
            ReconnectRequired / RetryableError / UncertainOutcome / Conflict: retry later (the record's
                lease was released; an in-flight write intent is kept for the next attempt).
            ConfigurationError: the deployment is wrong.
        DataErrors are handled here (record failed + error log) and never raised.
        """
        entity = type(event).ENTITY
        if entity == "Contact":
            logger.info(
                "contact event ignored by the outbound sync",
                extra={
                    "firm_id": event.firm_id,
                    "detail_type": event.DETAIL_TYPE,
                    "event_id": event.event_id,
                },
            )
            return Outcome("ignored", reason="contacts sync inbound")
        entity_type = ENTITY_TYPE_OF.get(entity)
        if entity_type is None:
            raise ValueError(f"no outbound sync for {event.DETAIL_TYPE!r}")

        connection = self._connections.get(event.firm_id)
        if connection is None or connection.status != CONNECTED:
            status = connection.status if connection else "not_connected"
            raise SyncPaused(
                f"QuickBooks is not connected for this firm ({status}); the event waits for a reconnect",
                firm_id=event.firm_id,
                entity=entity_type,
                entity_id=event.record_id,
                connection_status=status,
            )
        realm_id = connection.realm_id
        qbo = self._qbo_client(realm_id, self._token_provider(event.firm_id, realm_id))
        job = self._job(event, entity_type, realm_id)

        now = self._clock()
        claim = self._records.claim(
            job.firm_id,
            realm_id,
            entity_type,
            job.platform_id,
            version=job.version,
            owner=self._owner,
            lease_seconds=self._lease_seconds,
            now=now,
            operation=job.operation,
        )
        if claim.outcome is ClaimOutcome.STALE:
            return Outcome("stale", entity_type, job.platform_id, claim.record.qbo_id)
        if claim.outcome is ClaimOutcome.ALREADY_APPLIED:
            released = self._after_sync(job, claim.record, event)
            return Outcome(
                "already_synced", entity_type, job.platform_id, claim.record.qbo_id, released=released
            )

        rest = claim.record.prev_status or "not_synced"
        try:
            return self._claimed(job, claim.record, connection, qbo)
        except DataError as err:
            # before any QBO write (settings, reference data, a prerequisite read): the data must change
            return self._failed(job, err)
        except BaseException:
            self._release_quietly(job, rest)
            raise

    # ------------------------------------------------------------------ steps

    def _job(self, event: PlatformEvent, entity_type: str, realm_id: str) -> _Job:
        action = type(event).ACTION
        data = event.data
        record: Any = None
        if action == "Deleted":
            operation = "update" if entity_type in _NAME_LISTS else "delete"
        elif action == "Voided":
            operation = "void"
        else:
            operation = "create"  # the writer turns it into an update when the object exists
            record = data
        if record is not None:
            qbo_entity = mapping.qbo_entity_for(record)
        else:
            known = self._records.get(event.firm_id, realm_id, entity_type, event.record_id)
            qbo_entity = (known.qbo_entity if known and known.qbo_entity else None) or _DEFAULT_QBO_ENTITY[
                entity_type
            ]
        return _Job(
            event=event,
            firm_id=event.firm_id,
            realm_id=realm_id,
            entity_type=entity_type,
            platform_id=event.record_id,
            version=event.version,
            operation=operation,
            record=record,
            qbo_entity=qbo_entity,
        )

    def _claimed(self, job: _Job, current: SyncRecord, connection: Connection, qbo: QboClient) -> Outcome:
        settings = self._settings.get(job.firm_id, seed=connection.settings)
        record = job.record

        if record is None:
            return self._remove(job, current, qbo)

        if isinstance(record, Invoice) and record.status == "void":
            if current.qbo_id and current.qbo_entity == "Invoice":
                job.operation = "void"
                return self._write(job, current, qbo, {})
            return self._skip(job, "the invoice is void on the platform and was never synced")

        skip = self._skip_reason(job, record, current, settings)
        if skip is not None:
            return self._skip(job, skip)

        waiting, resolved = self._prerequisites(job, record, qbo)
        if waiting:
            return self._block(job, waiting)

        ref = self._references.get(qbo)
        try:
            payload = self._payload(record, resolved, ref, settings)
        except MappingError as err:
            if err.reason_code in _SKIP_REASONS:
                return self._skip(job, err.explanation)
            if err.reason_code == "services_use_sales_item" and ref.sales_item_id:
                return self._link(job, current, "Item", ref.sales_item_id)
            # the fix is often made in QBO (a new account, tax code, payment method): reload on the resync
            self._references.invalidate(job.realm_id)
            return self._failed(job, err)
        return self._write(job, current, qbo, payload)

    def _skip_reason(
        self, job: _Job, record: Any, current: SyncRecord, settings: FirmSyncSettings
    ) -> str | None:
        if isinstance(record, ClientAccount) and current.qbo_id is None:
            has_activity = any(
                True
                for _ in self._records.blocked_on(
                    job.firm_id, job.realm_id, ("client_account", job.platform_id)
                )
            )
            if not mapping.account_should_sync(has_activity, settings):
                self._store_event(job)  # synced later, when an invoice or payment waits on it
                return f"{NO_ACTIVITY}: the client account has no invoices or payments yet"
        if isinstance(record, Payment) and not mapping.payment_should_sync(record, settings):
            return "manually recorded payments are not synced by the firm's settings"
        if isinstance(record, Invoice) and record.status == "draft":
            return "draft invoices are not synced"
        start = settings.sync_start_date
        day = _record_date(record)
        if start is not None and day is not None and day < start:
            return f"dated {day.isoformat()}, before the sync start date {start.isoformat()}"
        return None

    def _prerequisites(
        self, job: _Job, record: Any, qbo: QboClient
    ) -> tuple[list[tuple[str, str]], Resolved]:
        resolved = Resolved()
        waiting: list[tuple[str, str]] = []
        for dep_entity, dep_id in mapping.dependencies(record):
            dep_type = ENTITY_TYPE_OF[dep_entity]
            found = self._records.get(job.firm_id, job.realm_id, dep_type, dep_id)
            if found is None or not found.qbo_id or found.status == SKIPPED:
                waiting.append((dep_type, dep_id))
                continue
            if dep_type == "client_account":
                resolved.customer_id = found.qbo_id
            elif dep_type == "service":
                resolved.item_ids[dep_id] = found.qbo_id
            elif dep_type == "invoice":
                resolved.invoice_ids[dep_id] = found.qbo_id
            elif dep_type == "payment":
                resolved.payment_id = found.qbo_id
                if found.qbo_entity == "Payment":
                    paid = qbo.read("Payment", found.qbo_id)
                    resolved.payment_deposit_account_id = _ref(paid.get("DepositToAccountRef"))
                    resolved.payment_method_id = _ref(paid.get("PaymentMethodRef"))
                else:
                    resolved.credit_memo_id = found.qbo_id
        if isinstance(record, Refund) and resolved.customer_id is None:
            # a refund receipt names the customer, which its payment's dependencies do not list
            account_id = record.account_id
            if account_id:
                account = self._records.get(job.firm_id, job.realm_id, "client_account", account_id)
                if account is None or not account.qbo_id:
                    waiting.append(("client_account", account_id))
                else:
                    resolved.customer_id = account.qbo_id
        return waiting, resolved

    @staticmethod
    def _payload(
        record: Any, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings
    ) -> dict[str, Any]:
        if isinstance(record, ClientAccount):
            return mapping.customer_payload(record, ref, settings)
        if isinstance(record, Service):
            return mapping.item_payload(record, ref, settings)
        if isinstance(record, Invoice):
            return mapping.invoice_payload(record, resolved, ref, settings)
        if isinstance(record, Payment):
            if record.credit_source:
                return mapping.credit_memo_payload(record, resolved, ref, settings)
            return mapping.payment_payload(record, resolved, ref, settings)
        if isinstance(record, Refund):
            return mapping.refund_receipt_payload(record, resolved, ref, settings)
        if isinstance(record, ProcessingFee):
            return mapping.purchase_payload(record, resolved, ref, settings)
        raise TypeError(f"not a platform record: {type(record).__name__}")

    def _remove(self, job: _Job, current: SyncRecord, qbo: QboClient) -> Outcome:
        """Delete / void events: act on the QBO object, or skip when the record never reached QBO."""
        if not current.qbo_id or current.qbo_entity != job.qbo_entity:
            action = "voided" if job.operation == "void" else "deleted"
            return self._skip(job, f"{action} on the platform before it was synced")
        payload: dict[str, Any] = {"Active": False} if job.entity_type in _NAME_LISTS else {}
        return self._write(job, current, qbo, payload)

    # ------------------------------------------------------------------ outcomes

    def _write(self, job: _Job, current: SyncRecord, qbo: QboClient, payload: dict[str, Any]) -> Outcome:
        writer = ExactlyOnceWriter(
            self._records,
            qbo,
            self._clock,
            self._owner,
            app_base_url=self._app_base_url,
            lease_seconds=self._lease_seconds,
        )
        finder = None
        if job.operation == "create" and payload:
            finder = find_existing(job.qbo_entity, job.entity_type, job.platform_id, payload)
        try:
            result = writer.write(
                job.firm_id,
                job.realm_id,
                job.entity_type,
                job.platform_id,
                job.version,
                job.operation,
                job.qbo_entity,
                payload,
                finder,
            )
        except DataError as err:
            # the writer already marked the record failed (with QBO's code); record it in the error center
            return self._report_failure(job, err)
        if result.status in ("stale", "already_synced"):
            return Outcome(result.status, job.entity_type, job.platform_id, result.record.qbo_id)
        released = self._after_sync(job, result.record, job.event)
        return Outcome(
            result.status, job.entity_type, job.platform_id, result.record.qbo_id, released=released
        )

    def _link(self, job: _Job, current: SyncRecord, qbo_entity: str, qbo_id: str) -> Outcome:
        """Record the platform record as mapped to an existing QBO object (services on "Sales")."""
        synced = self._records.mark_synced(
            job.firm_id,
            job.realm_id,
            job.entity_type,
            job.platform_id,
            owner=self._owner,
            version=job.version,
            qbo_entity=qbo_entity,
            qbo_id=qbo_id,
            sync_token=None,
            deep_link=None,
            now=self._clock(),
            operation=job.operation,
        )
        released = self._after_sync(job, synced, job.event)
        return Outcome("synced", job.entity_type, job.platform_id, qbo_id, reason="linked", released=released)

    def _skip(self, job: _Job, reason: str) -> Outcome:
        self._records.mark_skipped(
            job.firm_id,
            job.realm_id,
            job.entity_type,
            job.platform_id,
            owner=self._owner,
            reason=reason,
            now=self._clock(),
        )
        self._publish_status(job, "skipped")
        logger.info("record skipped", extra=self._ctx(job, reason=reason.split(":")[0][:80]))
        return Outcome("skipped", job.entity_type, job.platform_id, reason=reason)

    def _block(self, job: _Job, waiting: list[tuple[str, str]]) -> Outcome:
        self._store_event(job)
        self._records.mark_blocked(
            job.firm_id,
            job.realm_id,
            job.entity_type,
            job.platform_id,
            owner=self._owner,
            waiting_on=waiting,
            now=self._clock(),
        )
        logger.info("record blocked on prerequisites", extra=self._ctx(job, waiting_on=len(waiting)))
        still = []
        wake: list[tuple[str, str]] = []
        for dep_type, dep_id in waiting:
            found = self._records.get(job.firm_id, job.realm_id, dep_type, dep_id)
            if found is not None and found.qbo_id and found.status != SKIPPED:
                continue
            still.append((dep_type, dep_id))
            if (
                found is not None
                and found.status == SKIPPED
                and (found.skip_reason or "").startswith(NO_ACTIVITY)
            ):
                wake.append((dep_type, dep_id))  # an account waiting for activity: it has some now
        if not still:
            wake.append((job.entity_type, job.platform_id))  # everything synced in between: run again
        released = self._requeue_stored(job, wake)
        return Outcome(
            "blocked", job.entity_type, job.platform_id, waiting_on=tuple(still), released=released
        )

    def _failed(self, job: _Job, err: DataError) -> Outcome:
        """A DataError before any QBO write (mapping): mark the record failed under our lease."""
        self._records.mark_failed(
            job.firm_id,
            job.realm_id,
            job.entity_type,
            job.platform_id,
            owner=self._owner,
            error=RecordError(
                code=getattr(err, "reason_code", None) or err.code,
                category=ERROR_CATEGORIES[job.entity_type],
                message=str(err)[:1000],
                qbo_code=err.qbo_code,
            ),
            now=self._clock(),
            keep_intent=True,  # an intent left by an earlier attempt must still be resolved
        )
        return self._report_failure(job, err)

    def _report_failure(self, job: _Job, err: DataError) -> Outcome:
        now = self._clock()
        entry = self._errorlog.record(
            firm_id=job.firm_id,
            realm_id=job.realm_id,
            entity_type=job.entity_type,
            platform_id=job.platform_id,
            error=err,
            now=now,
        )
        error_id = str(getattr(entry, "error_id", "") or "") or None
        explanation = str(getattr(entry, "explanation", "") or getattr(err, "explanation", "") or err)
        code = getattr(err, "reason_code", None) or err.code
        logger.warning("record failed", extra=self._ctx(job, error_code=code, qbo_code=err.qbo_code))
        events: list[Any] = [
            SyncStatusChanged(
                firm_id=job.firm_id,
                correlation_id=job.event.correlation_id,
                realm_id=job.realm_id,
                entity_type=_EVENT_ENTITY[job.entity_type],  # type: ignore[arg-type]
                platform_id=job.platform_id,
                status="failed",
                error_id=error_id,
                error_message=explanation[:2000],
            )
        ]
        if getattr(entry, "is_new", False) and error_id:
            events.append(
                SyncErrorRaised(
                    firm_id=job.firm_id,
                    correlation_id=job.event.correlation_id,
                    error_id=error_id,
                    realm_id=job.realm_id,
                    category=_category(  # type: ignore[arg-type]
                        getattr(entry, "category", None) or getattr(err, "category", None), job.entity_type
                    ),
                    entity_type=_EVENT_ENTITY[job.entity_type],  # type: ignore[arg-type]
                    platform_id=job.platform_id,
                    qbo_code=(err.qbo_code or None) and str(err.qbo_code)[:50],
                    qbo_message=(err.qbo_detail or None) and str(err.qbo_detail)[:2000],
                    explanation=explanation[:2000] or "The record could not be synced.",
                    attempts=max(1, int(getattr(entry, "attempts", 1) or 1)),
                    first_seen=_as_datetime(getattr(entry, "first_seen", None), now),
                    last_seen=_as_datetime(getattr(entry, "last_seen", None), now),
                )
            )
        self._publisher.publish(events)
        return Outcome("failed", job.entity_type, job.platform_id, error_code=code)

    def _after_sync(self, job: _Job, synced: SyncRecord, event: PlatformEvent) -> int:
        """Close the error, announce the status, release the records blocked on this one."""
        if synced.status != SYNCED:
            return 0
        now = self._clock()
        self._errorlog.resolve(
            firm_id=job.firm_id, entity_type=job.entity_type, platform_id=job.platform_id, now=now
        )
        self._publish_status(job, "synced", qbo_id=synced.qbo_id, qbo_url=synced.deep_link)
        dependents = [
            (r.entity_type, r.platform_id)
            for r in self._records.blocked_on(job.firm_id, job.realm_id, (job.entity_type, job.platform_id))
        ]
        return self._requeue_stored(job, dependents)

    def _publish_status(
        self, job: _Job, status: str, *, qbo_id: str | None = None, qbo_url: str | None = None
    ) -> None:
        self._publisher.publish(
            [
                SyncStatusChanged(
                    firm_id=job.firm_id,
                    correlation_id=job.event.correlation_id,
                    realm_id=job.realm_id,
                    entity_type=_EVENT_ENTITY[job.entity_type],  # type: ignore[arg-type]
                    platform_id=job.platform_id,
                    status=status,  # type: ignore[arg-type]
                    qbo_id=qbo_id,
                    qbo_url=qbo_url,
                )
            ]
        )

    # ------------------------------------------------------------------ stored events

    def _store_event(self, job: _Job) -> None:
        """Keep the event on the record item so it can be re-enqueued when the record may proceed."""
        self._table.update(
            record_key(job.firm_id, job.realm_id, job.entity_type, job.platform_id),
            update="SET #e = :e",
            names={"#e": _PENDING_ATTR},
            values={":e": json.dumps(event_envelope(job.event), separators=(",", ":"))},
        )

    def _requeue_stored(self, job: _Job, targets: list[tuple[str, str]]) -> int:
        messages: list[SqsMessage] = []
        for entity_type, platform_id in dict.fromkeys(targets):
            item = self._table.get(
                record_key(job.firm_id, job.realm_id, entity_type, platform_id),
                consistent=True,
                attributes=[_PENDING_ATTR],
            )
            body = (item or {}).get(_PENDING_ATTR)
            if not isinstance(body, str):
                logger.warning(
                    "blocked record has no stored event to re-enqueue",
                    extra={"firm_id": job.firm_id, "entity_type": entity_type, "platform_id": platform_id},
                )
                continue
            messages.append(
                SqsMessage(
                    body=body,
                    id=f"{entity_type}-{len(messages)}",
                    correlation_id=job.event.correlation_id,
                )
            )
        if messages:
            self._requeue.send_many(messages)
            logger.info("stored events re-enqueued", extra=self._ctx(job, released=len(messages)))
        return len(messages)

    # ------------------------------------------------------------------ helpers

    def _release_quietly(self, job: _Job, status: str) -> None:
        # not ours any more (the writer released or finished it), or the lease expires by itself
        with contextlib.suppress(QbsyncError):
            self._records.release(
                job.firm_id,
                job.realm_id,
                job.entity_type,
                job.platform_id,
                owner=self._owner,
                status=status if status != "syncing" else "not_synced",
                now=self._clock(),
            )

    @staticmethod
    def _ctx(job: _Job, **extra: Any) -> dict[str, Any]:
        return {
            "firm_id": job.firm_id,
            "realm_id": job.realm_id,
            "entity_type": job.entity_type,
            "platform_id": job.platform_id,
            "version": job.version,
            "operation": job.operation,
            **extra,
        }


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("value") is not None:
        return str(value["value"])
    return None


# --- wiring ------------------------------------------------------------------------------------------

_lock = threading.Lock()
_service: SyncService | None = None


def build_sync_service() -> SyncService:
    """A fully wired service from the deployment's settings. Raises ConfigurationError (missing env)."""
    from qbsync.adapters.eventbridge import EventPublisher
    from qbsync.adapters.sqs import SqsSender
    from qbsync.connection.wiring import connection_service
    from qbsync.errorlog import ErrorLogRepository
    from qbsync.settings import get_core_settings, get_qbo_settings

    core = get_core_settings()
    qbo = get_qbo_settings()
    connections = connection_service()
    table = DynamoTable(core.sync_table_name)

    def client(realm_id: str, tokens: TokenSource) -> QboClient:
        return QboClient(
            base_url=qbo.qbo_api_base_url,
            realm_id=realm_id,
            tokens=tokens,
            minor_version=qbo.qbo_minor_version,
        )

    return SyncService(
        connections=connections.connections,
        token_provider=lambda firm_id, realm_id: connections.token_provider(firm_id, realm_id),
        qbo_client=client,
        records=RecordsRepository(table),
        table=table,
        settings=FirmSettingsRepository(table),
        errorlog=ErrorLogRepository(DynamoTable(core.error_table_name)),
        publisher=EventPublisher(core.event_bus_name),
        requeue=SqsSender(core.outbound_queue_url),
        clock=time.time,
        owner_id=f"entity-sync-{uuid.uuid4().hex[:12]}",
        app_base_url=qbo.qbo_app_base_url,
    )


def sync_service() -> SyncService:
    """The container's service, built on first use."""
    global _service
    with _lock:
        if _service is None:
            _service = build_sync_service()
        return _service


def clear() -> None:
    """Forget the cached service (tests that change the environment)."""
    global _service
    with _lock:
        _service = None
