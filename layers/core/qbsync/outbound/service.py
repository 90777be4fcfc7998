"""Outbound sync of one platform event to the firm's QuickBooks company (PRODUCT.md C, issue 4).

:meth:`SyncService.handle` takes a parsed :class:`~qbsync.models.platform_events.PlatformEvent` and:

1. **Connection.** The firm's connection must be ``connected``. Otherwise (no connection, needs reconnect,
   disconnected, switch pending) the event is parked in :class:`~qbsync.repositories.paused.PausedWork` (one
   item per record, the newest version kept) and the message is consumed: outcome ``paused``. When the
   connection is ``connected`` again the retry fan-out calls
   :meth:`~qbsync.outbound.resume.PausedWorkResumer.resume`,
   which sends every parked event back to ``OUTBOUND_QUEUE_URL``. Race: after parking, the connection is
   read again; if it is ``connected`` by now (the resume may have run before the park), this worker resumes
   the firm's parked work itself. Work is paused, never lost, and never waits in SQS retries or the DLQ. A
   token provider that finds the authorization gone raises :class:`~qbsync.errors.ReconnectRequired`
   (the message is retried; the next attempt finds the connection ``needs_reconnect`` and parks it).
2. **What to do.** ClientAccount → ``client_account`` / Customer; Service → ``service`` / Item; Invoice
   Created/Updated/Sent → create-or-update, Voided → void, Deleted → delete; Payment → Payment (CreditMemo
   for credit payments, :func:`~qbsync.outbound.mapping.qbo_entity_for`); Refund → RefundReceipt;
   ProcessingFee →
   Purchase. Deleting a client account or service deactivates its QBO Customer/Item (QBO never deletes name
   lists). Contact events are ignored here (contacts sync inbound, a later issue).
3. **Lease.** The record is claimed (:meth:`RecordsRepository.claim`): an older version → ``stale``; the same
   version already applied → ``already_synced`` (redelivery: nothing is written, the status event is sent
   again and, unless the earlier run noted ``released_version``, records blocked on it are released, so a
   crash after the write loses nothing). Every claimed event is kept on the record as ``last_event``
   (:meth:`RecordsRepository.store_last_event`, never replaced by an older version), whatever the outcome
   after the claim; an event older than the stored one is ``stale`` (reason ``superseded``): the newer
   version was claimed first and is handled (or still on its way through SQS).
4. **Settings** (:class:`~qbsync.repositories.firm_settings.FirmSettingsRepository`): accounts without
   activity under "with_activity", payments that must not sync (offline), drafts and records dated before
   the sync start date → ``skipped``. A skipped account keeps its event: when an invoice or payment later
   waits on it, the account event is re-enqueued and then syncs (it has activity now).
5. **Prerequisites** (:func:`~qbsync.outbound.mapping.dependencies`): any not in QBO yet → the event is stored
   on the record, the record is marked ``blocked`` (``waiting_on``), prerequisites are re-checked (gsi2 is
   eventually consistent: one that synced in between re-enqueues this event), and skipped accounts it
   waits on are re-enqueued. When a record syncs, every record blocked on it whose prerequisites are all
   in QuickBooks now gets its stored event re-enqueued to ``OUTBOUND_QUEUE_URL`` and goes through this
   same path. Each stored event is re-enqueued once per claim of its record: the sender first marks the
   record (``requeued_by``, conditional), so an account woken by 30 blocked invoices, or a record released
   by its prerequisite and its own re-check at once, is sent once; the releaser notes ``released_version``
   after its sends, so redeliveries of a synced record do not release again (a crash before the note: the
   redelivered message sends again what it marked). A skipped account re-checks for dependents that
   blocked on it while it was being skipped and runs again if there are any.
6. **Payload + write.** Reference data (:class:`ReferenceCache`, per realm, a few minutes) and the mapper
   build the payload; :class:`~qbsync.outbound.writer.ExactlyOnceWriter` writes it exactly once, with
   :func:`~qbsync.outbound.lookups.find_existing` to adopt an object a lost write created.
7. **Credit payments.** A payment from client credit becomes a CreditMemo (the payment record); once it is
   in QBO, a zero-total Payment linking the CreditMemo and the invoices applies it
   (:func:`~qbsync.outbound.mapping.credit_application_payload`), written through the exactly-once writer as
   its own record (entity type ``credit_application``, same platform id and version), so redelivery, a
   crash or a second worker never applies it twice. A redelivered, already synced credit payment checks
   the application and writes it if it is missing. A failed application is reported on the payment in the
   error center (a resync of the payment retries it). Deleting the payment deletes the application first.
   Invoice lines billed on QBO's "Sales" item (services not created as items) carry the service name,
   read from the service record's ``last_event``, as their description.
8. **Outcomes.** Synced → error log entry resolved, "Sync Status Changed" (synced), dependents released.
   :class:`~qbsync.errors.DataError` (MappingError before any QBO call, or QBO's validation fault) → record
   ``failed``, error log entry recorded, "Sync Status Changed" (failed) and, for a new open error, "Sync
   Error Raised"; the event is consumed (data must change first). Retryable errors, ReconnectRequired,
   UncertainOutcome and lease/Conflict races propagate: the message is retried.

:meth:`SyncService.handle_command` runs a :class:`~qbsync.models.commands.SyncCommand` ("sync this record
again"): it loads the record's ``last_event`` and runs it through :meth:`SyncService.handle` (``force``:
the settings-based skips - no activity, before the sync start date, offline payment, draft - do not apply
to that run; errors and dependencies do). A synced record answers ``already_synced``; a failed, skipped,
blocked or not synced record at the same version is claimed and runs again. A record without a stored
event answers ``ignored`` (logged). Commands that arrive while the firm is not connected are parked too.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync import vocab
from qbsync.adapters.sqs import SqsMessage
from qbsync.connection.clients import RealmClients
from qbsync.errors import BadRequest, DataError, QbsyncError, RetryableError
from qbsync.models.commands import SyncCommand
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.messages import OutboundMessage
from qbsync.models.platform_events import (
    PLATFORM_SOURCE,
    ClientAccount,
    Invoice,
    Payment,
    PlatformEvent,
    ProcessingFee,
    Refund,
    Service,
    parse_platform_event,
)
from qbsync.models.qbsync_events import SyncErrorRaised, SyncStatusChanged
from qbsync.models.record_key import RecordKey
from qbsync.outbound import mapping
from qbsync.outbound.lookups import find_existing, lookup_statement, parse_marker
from qbsync.outbound.mapping import MappingError, Resolved
from qbsync.outbound.resume import PausedWorkResumer
from qbsync.outbound.writer import DEFAULT_LEASE_SECONDS, ExactlyOnceWriter
from qbsync.qbo.client import QboClient, deep_link
from qbsync.qbo.reference import QboReference, ReferenceCache
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.repositories.paused import PausedWork
from qbsync.repositories.records import (
    BLOCKED,
    EXCLUDED_BY_FIRM,
    SKIPPED,
    SYNCED,
    ClaimOutcome,
    QboLink,
    RecordError,
    RecordsRepository,
    SyncRecord,
)

__all__ = [
    "Outcome",
    "SyncPaused",
    "SyncService",
    "event_envelope",
]

logger = logging.getLogger("qbsync.outbound.service")

#: MappingError reasons that mean "deliberately not synced" (skipped, not failed)
_SKIP_REASONS = frozenset({"before_sync_start", "offline_payment_not_synced", "invoice_not_sent"})
NO_ACTIVITY = "no_activity"


class SyncPaused(RetryableError):
    """The firm's QuickBooks connection is not ``connected``: the event must wait.

    The service itself parks such events (outcome ``paused``); the class stays for callers that need to
    say "paused, retry later" as an error."""

    code = "sync_paused"


# --- ports -------------------------------------------------------------------------------------------


class ErrorLog(Protocol):
    """``qbsync.errorcenter.ErrorLogRepository`` (the error center, E)."""

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
    (data must be fixed; ``error_code``), ``ignored`` (not an outbound event, or a command without a
    stored event), ``paused`` (the firm is not connected: parked until it is; ``released`` = records
    resumed when the connection came back meanwhile).
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
    key: RecordKey
    version: int
    operation: str
    record: Any  # the platform record (None for deletes/voids)
    qbo_entity: str
    force: bool = False  # a SyncCommand with force: settings-based skips do not apply

    @property
    def firm_id(self) -> str:
        return self.key.firm_id

    @property
    def realm_id(self) -> str:
        return self.key.realm_id

    @property
    def entity_type(self) -> str:
        return self.key.record_type

    @property
    def platform_id(self) -> str:
        return self.key.platform_id


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
    for name in vocab.ERROR_CATEGORIES:
        if text.lower() == name.lower():
            return name
    known = vocab.RECORD_TYPE_INFO.get(entity_type)
    return known.category if known else "Accounts"


class SyncService:
    """Applies platform events to QuickBooks (see the module doc).

    Args:
        connections: ``ConnectionsRepository`` (``get(firm_id)``: the firm's status and realm).
        realm_clients: a QBO client per firm and realm (:class:`~qbsync.connection.clients.RealmClients`).
        records: the records repository (state, leases and the stored events of blocked records).
        settings: firm settings repository.
        errorlog: the error center (``ErrorLogRepository``).
        publisher: publishes qbsync events (``EventPublisher``).
        requeue: sends re-enqueued events to the outbound queue (``SqsSender``).
        clock: epoch seconds; ``owner_id``: this worker's lease owner; ``app_base_url``: deep links.
        references: the per-realm reference cache.
        paused: where events wait while the firm is not connected (``PausedWork``); resumed through
            ``requeue``.
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        connections: Connections,
        realm_clients: RealmClients,
        records: RecordsRepository,
        settings: FirmSettingsRepository,
        errorlog: ErrorLog,
        publisher: Publisher,
        requeue: Sender,
        clock: Callable[[], float],
        owner_id: str,
        app_base_url: str,
        references: ReferenceCache | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        paused: PausedWork,
    ) -> None:
        if not owner_id:
            raise ValueError("owner_id is required")
        self._connections = connections
        self._realm_clients = realm_clients
        self._records = records
        self._settings = settings
        self._errorlog = errorlog
        self._publisher = publisher
        self._requeue = requeue
        self._clock = clock
        self._owner = owner_id
        self._app_base_url = app_base_url
        self._references = references or ReferenceCache(clock)
        self._lease_seconds = lease_seconds
        self._paused = paused
        self._resumer = PausedWorkResumer(self._paused, requeue)

    # ------------------------------------------------------------------ entry point

    def handle_message(self, message: OutboundMessage) -> Outcome:
        """Run one parsed ``OutboundQueue`` message: a SyncCommand (:meth:`handle_command`) or a platform
        event (:meth:`handle`). Same outcomes and errors."""
        if isinstance(message, SyncCommand):
            return self.handle_command(message)
        return self.handle(message)

    def handle(self, event: PlatformEvent, *, force: bool = False) -> Outcome:
        """Apply one platform event (see the module doc for every outcome).

        ``force`` (a SyncCommand's): the settings-based skips do not apply to this run.

        Raises:
            ReconnectRequired / RetryableError / UncertainOutcome / Conflict: retry later (the record's
                lease was released; an in-flight write intent is kept for the next attempt).
            ConfigurationError: the deployment is wrong.
        DataErrors are handled here (record failed + error log) and never raised. A firm that is not
        connected is not an error: the event is parked (outcome ``paused``).
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
        entity_type = vocab.RECORD_TYPE_OF.get(entity)
        if entity_type is None:
            raise ValueError(f"no outbound sync for {event.DETAIL_TYPE!r}")

        connection = self._connections.get(event.firm_id)
        if connection is None or connection.status != CONNECTED:
            self._paused.park_event(
                event.firm_id,
                entity_type,
                event.record_id,
                version=event.version,
                envelope=event_envelope(event),
            )
            return self._paused_outcome(event.firm_id, entity_type, event.record_id, connection)
        return self._run(event, entity_type, connection, force=force)

    def handle_command(self, command: SyncCommand) -> Outcome:
        """Sync one record again from its stored ``last_event`` (manual sync, resync, retry all).

        Same outcomes and errors as :meth:`handle`; ``ignored`` when the record has no stored event (it was
        never claimed, or synced before events were kept) or the stored event no longer parses.
        """
        ctx = {
            "firm_id": command.firm_id,
            "entity_type": command.entity_type,
            "platform_id": command.platform_id,
            "request_id": command.request_id,
            "reason": command.reason,
            "force": command.force,
        }
        connection = self._connections.get(command.firm_id)
        if connection is None or connection.status != CONNECTED:
            self._paused.park_command(command)
            return self._paused_outcome(command.firm_id, command.entity_type, command.platform_id, connection)
        envelope = self._records.last_event(
            RecordKey(command.firm_id, connection.realm_id, command.entity_type, command.platform_id)
        )
        if envelope is None:
            logger.warning("sync command for a record without a stored platform event", extra=ctx)
            return Outcome(
                "ignored",
                command.entity_type,
                command.platform_id,
                reason="no platform event is stored for this record",
            )
        try:
            event = parse_platform_event(envelope)
        except BadRequest as err:
            logger.warning(
                "the stored platform event of the record does not parse", extra={**ctx, "error": err.message}
            )
            return Outcome(
                "ignored", command.entity_type, command.platform_id, reason="the stored event does not parse"
            )
        if (
            event.firm_id != command.firm_id
            or vocab.RECORD_TYPE_OF.get(type(event).ENTITY) != command.entity_type
            or event.record_id != command.platform_id
        ):
            logger.warning("the stored platform event belongs to another record", extra=ctx)
            return Outcome(
                "ignored",
                command.entity_type,
                command.platform_id,
                reason="the stored event is not this record's",
            )
        if command.correlation_id:
            event = event.model_copy(update={"correlation_id": command.correlation_id})
        logger.info("sync command", extra={**ctx, "version": event.version})
        return self._run(event, command.entity_type, connection, force=command.force)

    def _paused_outcome(
        self, firm_id: str, entity_type: str, platform_id: str, connection: Connection | None
    ) -> Outcome:
        status = connection.status if connection else "not_connected"
        logger.info(
            "sync paused: work parked until QuickBooks is connected",
            extra={
                "firm_id": firm_id,
                "entity_type": entity_type,
                "platform_id": platform_id,
                "connection_status": status,
            },
        )
        again = self._connections.get(firm_id)
        if again is not None and again.status == CONNECTED:
            # connected while we parked: the resume that follows a reconnect may have run before our park
            resumed = self._resumer.resume(firm_id)
            return Outcome(
                "paused", entity_type, platform_id, reason="connected meanwhile: resumed", released=resumed
            )
        return Outcome("paused", entity_type, platform_id, reason=f"QuickBooks is not connected ({status})")

    def _run(self, event: PlatformEvent, entity_type: str, connection: Connection, *, force: bool) -> Outcome:
        realm_id = connection.realm_id
        qbo = self._realm_clients.qbo_for(event.firm_id, realm_id)
        job = self._job(event, entity_type, realm_id)
        job.force = force

        now = self._clock()
        claim = self._records.claim(
            job.key,
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
            done = Outcome(
                "already_synced", entity_type, job.platform_id, claim.record.qbo_id, released=released
            )
            return self._ensure_credit_application(job, claim.record, connection, qbo, done)

        rest = claim.record.prev_status or "not_synced"
        try:
            newest = self._records.store_last_event(
                job.key,
                version=job.version,
                envelope=event_envelope(event),
            )
            if not newest:
                # a newer version was claimed before (it is handled, stored or still on its way through
                # SQS): running this one now would overwrite it in QuickBooks or leave it unsent
                self._release_quietly(job, rest)
                logger.info("older event superseded by a newer claimed version", extra=self._ctx(job))
                qbo_id = claim.record.qbo_id
                return Outcome("stale", entity_type, job.platform_id, qbo_id, reason="superseded")
            return self._claimed(job, claim.record, connection, qbo)
        except DataError as err:
            # before any QBO write (settings, reference data, a prerequisite read): the data must change
            return self._failed(job, err)
        except BaseException:
            self._release_quietly(job, rest)
            raise

    # ------------------------------------------------------------------ steps

    def _job(self, event: PlatformEvent, entity_type: str, realm_id: str) -> _Job:
        key = RecordKey(event.firm_id, realm_id, entity_type, event.record_id)
        action = type(event).ACTION
        data = event.data
        record: Any = None
        if action == "Deleted":
            operation = "update" if entity_type in vocab.NAME_LISTS else "delete"
        elif action == "Voided":
            operation = "void"
        else:
            operation = "create"  # the writer turns it into an update when the object exists
            record = data
        if record is not None:
            qbo_entity = mapping.qbo_entity_for(record)
        else:
            known = self._records.get(key)
            qbo_entity = (known.qbo_entity if known and known.qbo_entity else None) or vocab.RECORD_TYPE_INFO[
                entity_type
            ].qbo_entity
        return _Job(
            event=event,
            key=key,
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
        if job.force:
            settings, record = _forced(settings, record)

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
        if isinstance(record, Invoice):
            self._name_sales_lines(job, record, resolved, ref)
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
        outcome = self._write(job, current, qbo, payload)
        if (
            isinstance(record, Payment)
            and record.credit_source
            and outcome.status in ("synced", "adopted", "already_synced")
            and outcome.qbo_id
        ):
            return self._apply_credit(job, record, resolved, ref, settings, qbo, outcome)
        return outcome

    def _skip_reason(
        self, job: _Job, record: Any, current: SyncRecord, settings: FirmSyncSettings
    ) -> str | None:
        if job.force:
            return None  # a forced run (manual sync of a skipped record) ignores the settings
        if current.prev_status == SKIPPED and current.skip_reason == EXCLUDED_BY_FIRM:
            return EXCLUDED_BY_FIRM  # the firm chose "don't sync this account": only a manual sync overrides
        if (
            isinstance(record, ClientAccount)
            and current.qbo_id is None
            and not mapping.account_should_sync(self._has_activity(job), settings)
        ):
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
            dep_type = vocab.RECORD_TYPE_OF[dep_entity]
            found = self._records.get(job.key.sibling(dep_type, dep_id))
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
                account = self._records.get(job.key.sibling("client_account", account_id))
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
        if job.entity_type == "payment" and job.qbo_entity == "CreditMemo":
            self._remove_credit_application(job, qbo)
        payload: dict[str, Any] = {"Active": False} if job.entity_type in vocab.NAME_LISTS else {}
        return self._write(job, current, qbo, payload)

    # ------------------------------------------------------------------ outcomes

    def _writer(self, qbo: QboClient) -> ExactlyOnceWriter:
        return ExactlyOnceWriter(
            self._records,
            qbo,
            self._clock,
            self._owner,
            app_base_url=self._app_base_url,
            lease_seconds=self._lease_seconds,
        )

    def _write(self, job: _Job, current: SyncRecord, qbo: QboClient, payload: dict[str, Any]) -> Outcome:
        if (
            job.operation == "create"
            and payload
            and current.qbo_id is None
            and current.intent is None
            and job.entity_type in vocab.NAME_LISTS
        ):
            match = self._name_match(job, qbo, payload)
            if match is not None:
                return self._link(job, current, job.qbo_entity, *match)
        writer = self._writer(qbo)
        finder = None
        if job.operation == "create" and payload:
            finder = find_existing(job.qbo_entity, job.entity_type, job.platform_id, payload)
        try:
            result = writer.write(
                job.key,
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

    # ------------------------------------------------------------------ credit payments

    def _apply_credit(  # noqa: PLR0913
        self,
        job: _Job,
        payment: Payment,
        resolved: Resolved,
        ref: QboReference,
        settings: FirmSyncSettings,
        qbo: QboClient,
        memo: Outcome,
    ) -> Outcome:
        """Apply the credit payment's CreditMemo (``memo``, in QBO now) to its invoices, exactly once.

        The zero-total Payment is its own record (``credit_application``, the payment's id and version)
        written by the exactly-once writer. A DataError is reported on the payment in the error center.
        """
        resolved.credit_memo_id = memo.qbo_id
        try:
            payload = mapping.credit_application_payload(payment, resolved, ref, settings)
            result = self._writer(qbo).write(
                job.key.sibling(vocab.CREDIT_APPLICATION),
                job.version,
                "create",
                "Payment",
                payload,
                find_existing("Payment", vocab.CREDIT_APPLICATION, job.platform_id, payload),
            )
        except DataError as err:
            logger.warning("credit application failed", extra=self._ctx(job, error_code=err.code))
            return self._report_failure(job, err)
        logger.info(
            "credit applied to invoices",
            extra=self._ctx(job, status=result.status, qbo_id=result.record.qbo_id),
        )
        return memo

    def _ensure_credit_application(
        self, job: _Job, record: SyncRecord, connection: Connection, qbo: QboClient, done: Outcome
    ) -> Outcome:
        """A redelivered credit payment whose CreditMemo is synced: write the application if it is missing
        (a crash or a retryable error came between the CreditMemo and its application)."""
        payment = job.record
        if not (
            isinstance(payment, Payment)
            and payment.credit_source
            and record.qbo_entity == "CreditMemo"
            and record.qbo_id
        ):
            return done
        applied = self._records.get(job.key.sibling(vocab.CREDIT_APPLICATION))
        if (
            applied is not None
            and applied.status == SYNCED
            and applied.intent is None
            and (applied.platform_version or 0) >= job.version
        ):
            return done
        settings = self._settings.get(job.firm_id, seed=connection.settings)
        if job.force:
            settings, payment = _forced(settings, payment)
        waiting, resolved = self._prerequisites(job, payment, qbo)
        if waiting:
            logger.warning(
                "credit application waits: a prerequisite is not in QuickBooks",
                extra=self._ctx(job, waiting_on=len(waiting)),
            )
            return done
        return self._apply_credit(job, payment, resolved, self._references.get(qbo), settings, qbo, done)

    def _remove_credit_application(self, job: _Job, qbo: QboClient) -> None:
        """Before a credit payment's CreditMemo is deleted, delete the Payment that applied it."""
        applied = self._records.get(job.key.sibling(vocab.CREDIT_APPLICATION))
        if applied is None or not applied.qbo_id or applied.applied_op == "delete":
            return
        self._writer(qbo).write(
            job.key.sibling(vocab.CREDIT_APPLICATION),
            max(job.version, applied.platform_version or 0),
            "delete",
            "Payment",
            {},
        )

    def _name_sales_lines(self, job: _Job, invoice: Invoice, resolved: Resolved, ref: QboReference) -> None:
        """Names the invoice's lines billed on the "Sales" item after their service (its stored event)."""
        if not ref.sales_item_id:
            return
        for line in invoice.line_items:
            sid = line.service_id
            if not sid or line.description or sid in resolved.service_names:
                continue
            if resolved.item_ids.get(sid, ref.sales_item_id) != ref.sales_item_id:
                continue
            envelope = self._records.last_event(job.key.sibling("service", sid))
            data = ((envelope or {}).get("detail") or {}).get("data") or {}
            name = data.get("name") if isinstance(data, dict) else None
            if isinstance(name, str) and name:
                resolved.service_names[sid] = name

    def _name_match(
        self, job: _Job, qbo: QboClient, payload: dict[str, Any]
    ) -> tuple[str, str | None] | None:
        """C.1/C.2: an active QBO Customer with exactly this DisplayName (Item: Name) that no other record of
        the firm is linked to (and that carries no other record's marker) is linked instead of created.

        Returns ``(qbo_id, sync_token)`` or None (no match: the writer creates the object).
        """
        key = "DisplayName" if job.qbo_entity == "Customer" else "Name"
        name = payload.get(key)
        if not isinstance(name, str) or not name:
            return None
        own = (vocab.RECORD_TYPE_INFO[job.entity_type].marker, job.platform_id)
        for row in qbo.query(lookup_statement(job.qbo_entity, payload)):
            if row.get(key) != name or row.get("Active") is False or not row.get("Id"):
                continue
            marker = parse_marker(row.get("Notes" if job.qbo_entity == "Customer" else "Description"))
            if marker is not None and marker != own:
                continue  # another record's object
            linked = self._records.find_by_qbo_id(job.realm_id, job.qbo_entity, str(row["Id"]))
            if linked is not None and linked.platform_id != job.platform_id:
                continue
            token = row.get("SyncToken")
            logger.info("matched an existing QuickBooks object by exact name", extra=self._ctx(job))
            return str(row["Id"]), (str(token) if token is not None else None)
        return None

    def _link(
        self, job: _Job, current: SyncRecord, qbo_entity: str, qbo_id: str, sync_token: str | None = None
    ) -> Outcome:
        """Record the platform record as mapped to an existing QBO object (services on "Sales", exact-name
        matches of customers and items)."""
        synced = self._records.mark_synced(
            job.key,
            owner=self._owner,
            version=job.version,
            link=QboLink(
                qbo_entity=qbo_entity,
                qbo_id=qbo_id,
                sync_token=sync_token,
                deep_link=_link_of(self._app_base_url, qbo_entity, qbo_id, job.realm_id),
            ),
            now=self._clock(),
            operation=job.operation,
        )
        released = self._after_sync(job, synced, job.event)
        return Outcome("synced", job.entity_type, job.platform_id, qbo_id, reason="linked", released=released)

    def _skip(self, job: _Job, reason: str) -> Outcome:
        self._records.mark_skipped(
            job.key,
            owner=self._owner,
            reason=reason,
            now=self._clock(),
        )
        self._publish_status(job, "skipped")
        logger.info("record skipped", extra=self._ctx(job, reason=reason.split(":")[0][:80]))
        released = 0
        if reason.startswith(NO_ACTIVITY) and self._has_activity(job):
            # an invoice or payment blocked on this account while we decided (its re-check saw the account
            # mid-claim, not skipped, so it did not wake it): run again, now with activity
            released = self._requeue_stored(job, [(job.entity_type, job.platform_id)], statuses=(SKIPPED,))
        return Outcome("skipped", job.entity_type, job.platform_id, reason=reason, released=released)

    def _has_activity(self, job: _Job) -> bool:
        return any(True for _ in self._records.blocked_on(job.key.sibling("client_account", job.platform_id)))

    def _block(self, job: _Job, waiting: list[tuple[str, str]]) -> Outcome:
        self._store_event(job)
        self._records.mark_blocked(
            job.key,
            owner=self._owner,
            waiting_on=waiting,
            now=self._clock(),
        )
        logger.info("record blocked on prerequisites", extra=self._ctx(job, waiting_on=len(waiting)))
        still = []
        wake: list[tuple[str, str]] = []
        for dep_type, dep_id in waiting:
            found = self._records.get(job.key.sibling(dep_type, dep_id))
            if found is not None and found.qbo_id and found.status != SKIPPED:
                continue
            still.append((dep_type, dep_id))
            if (
                found is not None
                and found.status == SKIPPED
                and (found.skip_reason or "").startswith(NO_ACTIVITY)
            ):
                wake.append((dep_type, dep_id))  # an account waiting for activity: it has some now
        # one wake per skipped account (the first dependent that blocks on it sends it; the others see the
        # mark); everything synced in between: run again, unless a prerequisite's release sent it already
        released = self._requeue_stored(job, wake, statuses=(SKIPPED,))
        if not still:
            released += self._requeue_stored(job, [(job.entity_type, job.platform_id)], statuses=(BLOCKED,))
        return Outcome(
            "blocked", job.entity_type, job.platform_id, waiting_on=tuple(still), released=released
        )

    def _failed(self, job: _Job, err: DataError) -> Outcome:
        """A DataError before any QBO write (mapping): mark the record failed under our lease."""
        self._records.mark_failed(
            job.key,
            owner=self._owner,
            error=RecordError(
                code=getattr(err, "reason_code", None) or err.code,
                category=vocab.record_error_category(job.entity_type),
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
                entity_type=vocab.EVENT_ENTITY_OF[job.entity_type],
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
                    entity_type=vocab.EVENT_ENTITY_OF[job.entity_type],
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
        """Close the error, announce the status, release the records blocked on this one.

        Only a dependent whose every prerequisite is in QuickBooks now is released (the others are released
        by their last prerequisite), and only by one worker (:meth:`RecordsRepository.mark_requeued`). Once
        all are sent the record notes ``released_version``: a redelivery of the same version (an
        ``already_synced`` run) releases nothing again. A crash before that note leaves the release to the
        redelivered message, which sends again what it had marked and releases what it had not reached.
        """
        if synced.status != SYNCED:
            return 0
        now = self._clock()
        self._errorlog.resolve(
            firm_id=job.firm_id, entity_type=job.entity_type, platform_id=job.platform_id, now=now
        )
        self._publish_status(job, "synced", qbo_id=synced.qbo_id, qbo_url=synced.deep_link)
        version = synced.platform_version
        if version is not None and synced.released_version == version:
            return 0
        me = (job.entity_type, job.platform_id)
        ready = [
            (r.entity_type, r.platform_id)
            for r in self._records.blocked_on(job.key)
            if self._prerequisites_synced(job, r.waiting_on, but=me)
        ]
        released = self._requeue_stored(job, ready, statuses=(BLOCKED,))
        if version is not None:
            self._records.mark_released(job.key, version=version)
        return released

    def _prerequisites_synced(
        self, job: _Job, waiting_on: Iterable[tuple[str, str]], *, but: tuple[str, str]
    ) -> bool:
        """Every prerequisite (but ``but``, synced by this worker) is in QuickBooks (consistent reads)."""
        for dep_type, dep_id in waiting_on:
            if (dep_type, dep_id) == but:
                continue
            found = self._records.get(job.key.sibling(dep_type, dep_id))
            if found is None or not found.qbo_id or found.status == SKIPPED:
                return False
        return True

    def _publish_status(
        self, job: _Job, status: str, *, qbo_id: str | None = None, qbo_url: str | None = None
    ) -> None:
        self._publisher.publish(
            [
                SyncStatusChanged(
                    firm_id=job.firm_id,
                    correlation_id=job.event.correlation_id,
                    realm_id=job.realm_id,
                    entity_type=vocab.EVENT_ENTITY_OF[job.entity_type],
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
        self._records.store_pending_event(job.key, event_envelope(job.event))

    def _requeue_stored(self, job: _Job, targets: list[tuple[str, str]], *, statuses: tuple[str, ...]) -> int:
        """Send the stored event of each target record that is in one of ``statuses`` and that no other
        worker re-enqueued since its last claim (the mark names ``job``'s record: a redelivery of this
        job sends again what a crashed run marked). The newest claimed event (``last_event``) is sent,
        else the ``pending_event`` kept when the record was blocked or skipped."""
        messages: list[SqsMessage] = []
        by = f"{job.entity_type}#{job.platform_id}"
        for entity_type, platform_id in dict.fromkeys(targets):
            if not self._records.mark_requeued(
                job.key.sibling(entity_type, platform_id), by=by, statuses=statuses
            ):
                continue  # not waiting any more, or another worker sent it
            body = self._records.stored_event(job.key.sibling(entity_type, platform_id))
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
                job.key,
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


def _forced(settings: FirmSyncSettings, record: Any) -> tuple[FirmSyncSettings, Any]:
    """Settings and record of a forced run: no start date, offline payments and drafts sync."""
    settings = settings.model_copy(
        update={"sync_accounts": "all", "sync_start_date": None, "sync_offline_payments": True}
    )
    if isinstance(record, Payment) and record.sync_override is False:
        record = record.model_copy(update={"sync_override": True})
    if isinstance(record, Invoice) and record.status == "draft":
        record = record.model_copy(update={"status": "sent"})  # a manual sync of a draft posts it
    return settings, record


def _link_of(app_base_url: str, qbo_entity: str, qbo_id: str, realm_id: str) -> str | None:
    """The QBO web-app link of an object, or None for entities without a page of their own (items)."""
    try:
        return deep_link(app_base_url, qbo_entity, qbo_id, realm_id=realm_id)
    except ValueError:
        return None


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("value") is not None:
        return str(value["value"])
    return None
