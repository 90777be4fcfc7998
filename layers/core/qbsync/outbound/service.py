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
   the sync start date → ``skipped``. A skipped account keeps its event for later (the dependency gate,
   :mod:`qbsync.outbound.gate`).
5. **Prerequisites** (:func:`~qbsync.outbound.mapping.dependencies`): any not in QBO yet → the record is
   blocked until they are; records blocked on a record that syncs are released. The protocol (stored
   events, ``requeued_by``, ``released_version``) is in :mod:`qbsync.outbound.gate`
   (:class:`~qbsync.outbound.gate.DependencyGate`).
6. **Payload + write.** Reference data (:class:`ReferenceCache`, per realm, a few minutes) and the mapper
   build the payload; :class:`~qbsync.outbound.writer.ExactlyOnceWriter` writes it exactly once, with
   :func:`~qbsync.outbound.lookups.find_existing` to adopt an object a lost write created.
7. **Credit payments.** A payment from client credit becomes a CreditMemo, then an exactly-once
   application of it to the invoices (:mod:`qbsync.outbound.credits`,
   :class:`~qbsync.outbound.credits.CreditApplier`).
   Invoice lines billed on QBO's "Sales" item (services not created as items) carry the service name,
   read from the service record's ``last_event``, as their description.
8. **Outcomes.** Synced → error log entry resolved, "Sync Status Changed" (synced), dependents released.
   :class:`~qbsync.errors.DataError` (MappingError before any QBO call, or QBO's validation fault) → record
   ``failed``, error log entry recorded, "Sync Status Changed" (failed) and, for a new open error, "Sync
   Error Raised"; the event is consumed (data must change first). Retryable errors, ReconnectRequired,
   UncertainOutcome and lease/Conflict races propagate: the message is retried. The status events and the
   error center entry are :mod:`qbsync.outbound.status` (:class:`~qbsync.outbound.status.StatusReporter`).

:meth:`SyncService.handle_command` runs a :class:`~qbsync.models.commands.SyncCommand` ("sync this record
again"): it loads the record's ``last_event`` and runs it through :meth:`SyncService.handle` (``force``:
the settings-based skips - no activity, before the sync start date, offline payment, draft - do not apply
to that run; errors and dependencies do). A synced record answers ``already_synced``; a failed, skipped,
blocked or not synced record at the same version is claimed and runs again. A record without a stored
event answers ``ignored`` (logged). Commands that arrive while the firm is not connected are parked too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from qbsync import vocab
from qbsync.connection.clients import RealmClients
from qbsync.errors import BadRequest, ConfigurationError, DataError, QbsyncError, RetryableError
from qbsync.models.commands import SyncCommand
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.messages import OutboundMessage
from qbsync.models.platform_events import (
    ClientAccount,
    Invoice,
    Payment,
    PlatformEvent,
    ProcessingFee,
    Refund,
    Service,
    parse_platform_event,
)
from qbsync.models.record_key import RecordKey
from qbsync.outbound import mapping
from qbsync.outbound.batch import BatchedPublisher, BatchScope, batch_scope, current_scope
from qbsync.outbound.credits import CreditApplier
from qbsync.outbound.gate import DependencyGate, Sender
from qbsync.outbound.job import NO_ACTIVITY, Job, Outcome, event_envelope, forced, log_context, record_date
from qbsync.outbound.lookups import find_existing, lookup_statement, parse_marker
from qbsync.outbound.mapping import MappingError, Resolved
from qbsync.outbound.prefetch import BatchPrefetch
from qbsync.outbound.resume import PausedWorkResumer
from qbsync.outbound.status import ErrorLog, Publisher, StatusReporter
from qbsync.outbound.timeline import RunTrail, TimelineRecorder
from qbsync.outbound.writer import DEFAULT_LEASE_SECONDS, ExactlyOnceWriter, WriteRequest, create_intent
from qbsync.qbo.batching import CoalescingQboClient
from qbsync.qbo.client import QboClient, deep_link
from qbsync.qbo.reference import QboReference, ReferenceCache
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.repositories.paused import PausedWork
from qbsync.repositories.records import (
    EXCLUDED_BY_FIRM,
    SKIPPED,
    ClaimOptions,
    ClaimOutcome,
    QboLink,
    RecordError,
    RecordsRepository,
    SyncRecord,
)

__all__ = [
    "Outcome",
    "ReadAhead",
    "SyncPaused",
    "SyncService",
    "event_envelope",
]

logger = logging.getLogger("qbsync.outbound.service")

_T = TypeVar("_T")

#: MappingError reasons that mean "deliberately not synced" (skipped, not failed)
_SKIP_REASONS = frozenset({"before_sync_start", "offline_payment_not_synced", "invoice_not_sent"})


class SyncPaused(RetryableError):
    """The firm's QuickBooks connection is not ``connected``: the event must wait.

    The service itself parks such events (outcome ``paused``); the class stays for callers that need to
    say "paused, retry later" as an error."""

    code = "sync_paused"


# --- ports -------------------------------------------------------------------------------------------


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


@dataclasses.dataclass(frozen=True)
class ReadAhead:
    """What :meth:`SyncService.read_ahead` read once for several batches: each firm's connection (None: not
    connected), the settings of each connected firm and realm, each record and prerequisite (None: no item
    yet) and the exact-name matches of the new accounts and services. The batches' own writes (claims,
    conditional on the record's state) catch what changed since."""

    connections: dict[str, Connection | None]
    settings: dict[tuple[str, str], FirmSyncSettings]
    records: dict[RecordKey, SyncRecord | None]
    #: the exact-name matches of the new accounts and services by (realm, QBO entity): name → active rows
    names: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = dataclasses.field(default_factory=dict)


# --- the service -------------------------------------------------------------------------------------


_DRAFT = "draft invoices are not synced"
_DATED = "dated"


def _number_note(
    invoice: Invoice, ref: QboReference, qbo_numbers: bool
) -> Callable[[dict[str, Any]], str | None]:
    """The invoice's note on the QBO Invoice it landed as: QuickBooks' number when the platform's was not
    sent (:func:`~qbsync.outbound.mapping.invoice_number_note`)."""

    def note(landed: dict[str, Any]) -> str | None:
        return mapping.invoice_number_note(invoice, ref, landed, qbo_numbers=qbo_numbers)

    return note


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
        timeline: writes each run's steps (:mod:`qbsync.outbound.timeline`); None: no timeline is kept.
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
        timeline: TimelineRecorder | None = None,
    ) -> None:
        if not owner_id:
            raise ValueError("owner_id is required")
        self._connections = connections
        self._realm_clients = realm_clients
        self._records = records
        self._settings = settings
        self._clock = clock
        self._owner = owner_id
        self._app_base_url = app_base_url
        self._references = references or ReferenceCache(clock)
        self._lease_seconds = lease_seconds
        self._paused = paused
        self._timeline = timeline
        self._resumer = PausedWorkResumer(self._paused, requeue)
        self._status = StatusReporter(errorlog=errorlog, publisher=BatchedPublisher(publisher), clock=clock)
        self._gate = DependencyGate(
            records=records, requeue=requeue, status=self._status, clock=clock, owner_id=owner_id
        )
        self._prefetch = BatchPrefetch(records)
        self._credits = CreditApplier(
            records=records,
            settings=settings,
            references=self._references,
            gate=self._gate,
            status=self._status,
            writer=self._writer,
        )

    # ------------------------------------------------------------------ entry point

    @contextlib.contextmanager
    def batch(self) -> Iterator[BatchScope]:
        """Run the messages of one SQS batch inside: the firm's connection and settings are read once for
        the batch, and the status events are sent together when it closes (:mod:`qbsync.outbound.batch`).
        Raises what sending them raises (the caller's invocation then fails and SQS redelivers)."""
        with batch_scope() as scope:
            yield scope

    def prepare(self, messages: Sequence[OutboundMessage], ahead: ReadAhead | None = None) -> None:
        """Inside :meth:`batch`, before its messages run: read the batch's records and prerequisites in
        one BatchGetItem, and note its new accounts' and services' names so the first exact-name lookup
        asks QuickBooks for all of them in one query per entity (:mod:`qbsync.outbound.prefetch`).
        ``ahead``: what :meth:`read_ahead` read once for several batches (the bulk path's threads): its
        connections, settings and records are taken instead of being read again.
        Never raises: a failed read ahead is logged and every record then reads for itself."""
        try:
            if ahead is not None:
                self._seed(ahead)
            jobs = [job for job in (self._job_ahead(m) for m in messages) if job is not None]
            self._prefetch.load(
                (k for job in jobs for k in (job.key, *self._gate.prerequisite_keys(job))),
                known=ahead.records if ahead is not None else None,
            )
            self._names_ahead(jobs)
        except QbsyncError as err:
            logger.warning(
                "reading the batch ahead failed: each record reads for itself", extra=err.context()
            )

    def read_ahead(self, messages: Sequence[OutboundMessage]) -> ReadAhead:
        """Outside any batch: what :meth:`prepare` reads, read once for several batches that run the
        ``messages`` between them (the bulk path's threads, :mod:`qbsync.outbound.bulk`): the firms'
        connections and settings, and every record and prerequisite of the messages (consistent
        BatchGetItem, 100 keys a call). Raises what the reads raise."""
        with batch_scope():
            jobs = [job for job in (self._job_ahead(m) for m in messages) if job is not None]
            connections = {firm: self._connection(firm) for firm in {m.firm_id for m in messages}}
            settings = {
                (firm, conn.realm_id): self._firm_settings(firm, conn)
                for firm, conn in connections.items()
                if conn is not None and conn.status == CONNECTED
            }
            keys = [k for job in jobs for k in (job.key, *self._gate.prerequisite_keys(job))]
            records = self._records.get_many(keys)
            return ReadAhead(connections, settings, records, self._names_read_ahead(jobs, records))

    def _names_read_ahead(
        self, jobs: list[Job], records: dict[RecordKey, SyncRecord | None]
    ) -> dict[tuple[str, str], dict[str, list[dict[str, Any]]]]:
        """The exact-name matches of the new accounts and services among ``jobs``, asked now (one query per
        20 names and entity); a failed query leaves those names to the batches (logged)."""
        wanted: dict[tuple[str, str, str], set[str]] = {}
        for job in jobs:
            if job.entity_type not in vocab.NAME_LISTS or not isinstance(job.record, ClientAccount | Service):
                continue
            current = records.get(job.key)
            if current is not None and (current.qbo_id or current.intent):
                continue
            wanted.setdefault((job.firm_id, job.realm_id, job.qbo_entity), set()).add(job.record.name)
        names: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
        for (firm_id, realm_id, qbo_entity), wanted_names in wanted.items():
            try:
                qbo = self._realm_clients.qbo_for(firm_id, realm_id)
                names[(realm_id, qbo_entity)] = self._prefetch.names_now(qbo, qbo_entity, wanted_names)
            except ConfigurationError:
                raise
            except QbsyncError as err:
                logger.warning("reading names ahead failed: the batches ask for them", extra=err.context())
        return names

    def _seed(self, ahead: ReadAhead) -> None:
        """The open batch takes the connections and settings read ahead as its own reads."""
        scope = current_scope()
        if scope is None:
            return
        for firm, conn in ahead.connections.items():
            scope.remember(("connection", firm), _value(conn))
        for (firm, realm), values in ahead.settings.items():
            scope.remember(("settings", firm, realm), _value(values))
        for (realm, qbo_entity), table in ahead.names.items():
            self._prefetch.known_names(realm, qbo_entity, table)

    def _job_ahead(self, message: OutboundMessage) -> Job | None:
        """The job a platform event will run (None for commands, contacts, deletes, voids, and firms that
        are not connected: those read for themselves)."""
        if isinstance(message, SyncCommand) or type(message).ACTION in ("Deleted", "Voided"):
            return None
        entity_type = vocab.RECORD_TYPE_OF.get(type(message).ENTITY)
        connection = self._connection(message.firm_id)
        if entity_type is None or connection is None or connection.status != CONNECTED:
            return None
        return self._job(message, entity_type, connection.realm_id)

    def _names_ahead(self, jobs: list[Job]) -> None:
        wanted: dict[tuple[str, str], set[str]] = {}
        for job in jobs:
            if job.entity_type not in vocab.NAME_LISTS or not isinstance(job.record, ClientAccount | Service):
                continue
            seen = self._prefetch.seen([job.key])
            current = seen[job.key] if seen else None
            if current is not None and (current.qbo_id or current.intent):
                continue
            wanted.setdefault((job.realm_id, job.qbo_entity), set()).add(job.record.name)
        for (realm_id, qbo_entity), names in wanted.items():
            self._prefetch.expect_names(realm_id, qbo_entity, names)

    def _connection(self, firm_id: str) -> Connection | None:
        """The firm's connection: read once per batch (every time outside one)."""
        scope = current_scope()
        if scope is None:
            return self._connections.get(firm_id)
        return scope.remember(("connection", firm_id), lambda: self._connections.get(firm_id))

    def _firm_settings(self, firm_id: str, connection: Connection) -> FirmSyncSettings:
        """The firm's sync settings: read once per batch (every time outside one)."""
        scope = current_scope()
        if scope is None:
            return self._settings.get(firm_id, seed=connection.settings)
        key = ("settings", firm_id, connection.realm_id)
        return scope.remember(key, lambda: self._settings.get(firm_id, seed=connection.settings))

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

        connection = self._connection(event.firm_id)
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
        connection = self._connection(command.firm_id)
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
        return self._run(event, command.entity_type, connection, force=command.force, command=command)

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
        scope = current_scope()
        if scope is not None:
            scope.forget(("connection", firm_id))
        again = self._connection(firm_id)
        if again is not None and again.status == CONNECTED:
            # connected while we parked: the resume that follows a reconnect may have run before our park
            resumed = self._resumer.resume(firm_id)
            return Outcome(
                "paused", entity_type, platform_id, reason="connected meanwhile: resumed", released=resumed
            )
        return Outcome("paused", entity_type, platform_id, reason=f"QuickBooks is not connected ({status})")

    def _run(
        self,
        event: PlatformEvent,
        entity_type: str,
        connection: Connection,
        *,
        force: bool,
        command: SyncCommand | None = None,
    ) -> Outcome:
        realm_id = connection.realm_id
        qbo = self._realm_clients.qbo_for(event.firm_id, realm_id)
        job = self._job(event, entity_type, realm_id)
        job.force = force
        job.trail = self._start_trail(job, event, command)
        try:
            outcome = self._run_job(job, event, connection, qbo)
        except BaseException as err:
            self._end_trail(job.trail, "retry", error_code=getattr(err, "code", None) or type(err).__name__)
            raise
        self._end_trail(job.trail, outcome.status, reason=outcome.reason, error_code=outcome.error_code)
        return outcome

    def _run_job(self, job: Job, event: PlatformEvent, connection: Connection, qbo: QboClient) -> Outcome:
        # one consistent read of the record and its prerequisites (the batch's, when it read them ahead);
        # the claim stores the event in its own write
        keys = [job.key, *self._gate.prerequisite_keys(job)]
        job.seen = self._prefetch.seen(keys) or self._records.get_many(keys)
        try:
            return self._claim_and_run(job, event, connection, qbo)
        finally:
            self._prefetch.ran(job.key)

    def _start_trail(self, job: Job, event: PlatformEvent, command: SyncCommand | None) -> RunTrail | None:
        """The run's timeline (:mod:`qbsync.outbound.timeline`): what asked for it comes first."""
        if self._timeline is None:
            return None
        trail = self._timeline.start(job.key)
        if command is not None:
            trail.command(reason=command.reason, request_id=command.request_id, force=command.force)
        trail.event(
            event_id=event.event_id,
            version=event.version,
            occurred_at=event.occurred_at.isoformat(),
            detail_type=event.DETAIL_TYPE,
        )
        return trail

    def _end_trail(
        self, trail: RunTrail | None, status: str, *, reason: str | None = None, error_code: str | None = None
    ) -> None:
        if trail is None or self._timeline is None:
            return
        if trail.awaiting_response:
            trail.response(ok=False, code=error_code)  # the call raised: no answer, or one to retry
        trail.final(status, reason=reason, error_code=error_code)
        self._timeline.save(trail)

    def _claim_and_run(
        self, job: Job, event: PlatformEvent, connection: Connection, qbo: QboClient
    ) -> Outcome:
        entity_type = job.entity_type
        now = self._clock()
        claim = self._records.claim(
            job.key,
            version=job.version,
            owner=self._owner,
            lease_seconds=self._lease_seconds,
            now=now,
            options=ClaimOptions(
                job.operation,
                event_envelope(event),
                job.seen[job.key],
                # a create notes its intent with the lease: the writer does not write it again
                intent=create_intent(job.key, job.version, now) if job.operation == "create" else None,
            ),
        )
        if claim.outcome is ClaimOutcome.STALE:
            return Outcome("stale", entity_type, job.platform_id, claim.record.qbo_id)
        if claim.outcome is ClaimOutcome.SUPERSEDED:
            # a newer version was claimed before (it is handled, stored or still on its way through SQS):
            # running this one now would overwrite it in QuickBooks or leave it unsent
            logger.info("older event superseded by a newer claimed version", extra=log_context(job))
            return Outcome("stale", entity_type, job.platform_id, claim.record.qbo_id, reason="superseded")
        if claim.outcome is ClaimOutcome.ALREADY_APPLIED:
            released = self._gate.after_sync(job, claim.record, event)
            done = Outcome(
                "already_synced", entity_type, job.platform_id, claim.record.qbo_id, released=released
            )
            return self._credits.ensure(job, claim.record, connection, qbo, done)

        rest = claim.record.prev_status or "not_synced"
        job.fresh_intent = claim.record.fresh_intent
        try:
            return self._claimed(job, claim.record, connection, qbo)
        except DataError as err:
            # before any QBO write (settings, reference data, a prerequisite read): the data must change
            return self._failed(job, err)
        except BaseException:
            self._gate.release_quietly(job, rest)
            raise

    # ------------------------------------------------------------------ steps

    def _job(self, event: PlatformEvent, entity_type: str, realm_id: str) -> Job:
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
        return Job(
            event=event,
            key=key,
            version=event.version,
            operation=operation,
            record=record,
            qbo_entity=qbo_entity,
        )

    def _claimed(self, job: Job, current: SyncRecord, connection: Connection, qbo: QboClient) -> Outcome:
        settings = self._firm_settings(job.firm_id, connection)
        record = job.record

        if record is None:
            return self._remove(job, current, qbo)
        if job.force:
            settings, record = forced(settings, record)

        if isinstance(record, Invoice) and record.status == "void":
            if current.qbo_id and current.qbo_entity == "Invoice":
                job.operation = "void"
                return self._write(job, current, qbo, {})
            return self._skip(job, "the invoice is void on the platform and was never synced")

        skip = self._skip_reason(job, record, current, settings)
        if skip is not None:
            return self._skip_explained(job, record, skip, settings)
        # what QuickBooks would refuse in any company fails now, before any QuickBooks call and without
        # waiting for prerequisites (a MappingError: _run marks the record failed with its explained error)
        mapping.check_record(record)

        waiting, resolved = self._gate.prerequisites(job, record, qbo)
        if waiting:
            return self._wait(job, waiting)

        ref = self._references.get(qbo)
        if isinstance(record, Invoice):
            self._name_sales_lines(job, record, resolved, ref)
        try:
            payload = self._payload(record, resolved, ref, settings, qbo_numbers=current.qbo_numbers)
        except MappingError as err:
            if err.reason_code in _SKIP_REASONS:
                return self._skip(job, err.explanation)
            if err.reason_code == "services_use_sales_item" and ref.sales_item_id:
                return self._link(job, current, "Item", ref.sales_item_id, note=vocab.SALES_ITEM_NOTE)
            # the fix is often made in QBO (a new account, tax code, payment method): reload on the resync
            self._references.invalidate(job.realm_id)
            return self._failed(job, err)
        note_of = _number_note(record, ref, current.qbo_numbers) if isinstance(record, Invoice) else None
        outcome = self._write(job, current, qbo, payload, note_of=note_of)
        if (
            isinstance(record, Payment)
            and record.credit_source
            and outcome.status in ("synced", "adopted", "already_synced")
            and outcome.qbo_id
        ):
            return self._credits.apply(job, record, resolved, ref, settings, qbo, outcome)
        return outcome

    def _skip_reason(
        self, job: Job, record: Any, current: SyncRecord, settings: FirmSyncSettings
    ) -> str | None:
        if job.force:
            return None  # a forced run (manual sync of a skipped record) ignores the settings
        if current.prev_status == SKIPPED and current.skip_reason == EXCLUDED_BY_FIRM:
            return EXCLUDED_BY_FIRM  # the firm chose "don't sync this account": only a manual sync overrides
        if (
            isinstance(record, ClientAccount)
            and current.qbo_id is None
            and settings.sync_accounts != "all"  # every account syncs: no need to ask about its activity
            and not mapping.account_should_sync(self._gate.has_activity(job), settings)
        ):
            self._gate.store_event(job)  # synced later, when an invoice or payment waits on it
            return self._gate.account_reason(job, settings.sync_start_date)
        if isinstance(record, Payment) and not mapping.payment_should_sync(record, settings):
            return "manually recorded payments are not synced by the firm's settings"
        if isinstance(record, Invoice) and record.status == "draft":
            return _DRAFT
        start = settings.sync_start_date
        day = record_date(record)
        if start is not None and day is not None and day < start:
            return f"{_DATED} {day.isoformat()}, before the sync start date {start.isoformat()}"
        return None

    def _skip_explained(self, job: Job, record: Any, skip: str, settings: FirmSyncSettings) -> Outcome:
        """Skip the record by the settings. Issue 11 item 4: an account skipped for no activity says what it
        has instead. An invoice skipped as a draft or before the sync start date is first noted beside its
        account (re-explained if skipped: it says so by the time the invoice is announced skipped); a
        skipped account then counts the invoices noted while it was being skipped."""
        start = settings.sync_start_date
        if isinstance(record, Invoice) and (skip == _DRAFT or skip.startswith(_DATED)):
            kind = "draft" if skip == _DRAFT else "before_start"
            self._gate.note_unsynced_invoice(job, record.account_id, kind, start)
        outcome = self._skip(job, skip)
        if isinstance(record, ClientAccount) and skip.startswith(NO_ACTIVITY):
            self._gate.recheck_account_reason(job, start, skip)
        return outcome

    @staticmethod
    def _payload(
        record: Any, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings, *, qbo_numbers: bool
    ) -> dict[str, Any]:
        if isinstance(record, ClientAccount):
            return mapping.customer_payload(record, ref, settings)
        if isinstance(record, Service):
            return mapping.item_payload(record, ref, settings)
        if isinstance(record, Invoice):
            return mapping.invoice_payload(record, resolved, ref, settings, qbo_numbers=qbo_numbers)
        if isinstance(record, Payment):
            if record.credit_source:
                return mapping.credit_memo_payload(record, resolved, ref, settings)
            return mapping.payment_payload(record, resolved, ref, settings)
        if isinstance(record, Refund):
            return mapping.refund_receipt_payload(record, resolved, ref, settings)
        if isinstance(record, ProcessingFee):
            return mapping.purchase_payload(record, resolved, ref, settings)
        raise TypeError(f"not a platform record: {type(record).__name__}")

    def _remove(self, job: Job, current: SyncRecord, qbo: QboClient) -> Outcome:
        """Delete / void events: act on the QBO object, or skip when the record never reached QBO."""
        if not current.qbo_id or current.qbo_entity != job.qbo_entity:
            action = "voided" if job.operation == "void" else "deleted"
            return self._skip(job, f"{action} on the platform before it was synced")
        if job.entity_type == "payment" and job.qbo_entity == "CreditMemo":
            self._credits.remove(job, qbo)
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

    def _write(
        self,
        job: Job,
        current: SyncRecord,
        qbo: QboClient,
        payload: dict[str, Any],
        *,
        note_of: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> Outcome:
        """Write the payload exactly once; ``note_of``: how the QBO object landed differently (the record's
        note, :class:`~qbsync.outbound.writer.WriteRequest`)."""
        if (
            job.operation == "create"
            and payload
            and current.qbo_id is None
            and current.leftover_intent is None
            and job.entity_type in vocab.NAME_LISTS
        ):
            match = self._name_match(job, qbo, payload)
            if match is not None:
                return self._link(job, current, job.qbo_entity, *match)
        writer = self._writer(qbo)
        finder = None
        if job.operation == "create" and payload:
            finder = find_existing(job.qbo_entity, job.entity_type, job.platform_id, payload)
        trail = job.trail
        if trail is not None:
            trail.mapped(job.qbo_entity, payload)
        request = WriteRequest(
            job.version,
            job.operation,
            job.qbo_entity,
            payload,
            finder,
            note_of=note_of,
            observe=_observer(trail, job.qbo_entity, payload, qbo),
        )
        job.writing = True  # from here the writer owns the intent (it sends under it, or resolves it)
        try:
            result = writer.write_claimed(current, request)
        except DataError as err:
            if trail is not None and trail.awaiting_response:
                trail.response(ok=False, code=err.code, qbo_code=err.qbo_code)
            # the writer already marked the record failed (with QBO's code); record it in the error center
            return self._report_failure(job, err)
        if trail is not None and result.status in ("synced", "adopted"):
            trail.response(ok=True, qbo_id=result.record.qbo_id, sync_token=result.record.sync_token)
        if result.status in ("stale", "already_synced"):
            return Outcome(result.status, job.entity_type, job.platform_id, result.record.qbo_id)
        released = self._gate.after_sync(job, result.record, job.event)
        return Outcome(
            result.status, job.entity_type, job.platform_id, result.record.qbo_id, released=released
        )

    def _name_sales_lines(self, job: Job, invoice: Invoice, resolved: Resolved, ref: QboReference) -> None:
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

    def _name_match(self, job: Job, qbo: QboClient, payload: dict[str, Any]) -> tuple[str, str | None] | None:
        """C.1/C.2: an active QBO Customer with exactly this DisplayName (Item: Name) that no other record of
        the firm is linked to (and that carries no other record's marker) is linked instead of created.

        Returns ``(qbo_id, sync_token)`` or None (no match: the writer creates the object).
        """
        key = "DisplayName" if job.qbo_entity == "Customer" else "Name"
        name = payload.get(key)
        if not isinstance(name, str) or not name:
            return None
        own = (vocab.RECORD_TYPE_INFO[job.entity_type].marker, job.platform_id)
        rows = self._prefetch.name_rows(qbo, job.qbo_entity, name)
        if rows is None:
            rows = qbo.query(lookup_statement(job.qbo_entity, payload))
        for row in rows:
            if row.get(key) != name or row.get("Active") is False or not row.get("Id"):
                continue
            marker = parse_marker(row.get("Notes" if job.qbo_entity == "Customer" else "Description"))
            if marker is not None and marker != own:
                continue  # another record's object
            linked = self._records.find_by_qbo_id(job.realm_id, job.qbo_entity, str(row["Id"]))
            if linked is not None and linked.platform_id != job.platform_id:
                continue
            token = row.get("SyncToken")
            logger.info("matched an existing QuickBooks object by exact name", extra=log_context(job))
            return str(row["Id"]), (str(token) if token is not None else None)
        return None

    def _link(
        self,
        job: Job,
        current: SyncRecord,
        qbo_entity: str,
        qbo_id: str,
        sync_token: str | None = None,
        *,
        note: str | None = None,
    ) -> Outcome:
        """Record the platform record as mapped to an existing QBO object (services on "Sales", exact-name
        matches of customers and items); ``note``: how it landed (a service on "Sales":
        :data:`qbsync.vocab.SALES_ITEM_NOTE`, so the drift comparisons leave the item's fields alone)."""
        synced = self._records.mark_synced(
            job.key,
            owner=self._owner,
            version=job.version,
            link=QboLink(
                qbo_entity=qbo_entity,
                qbo_id=qbo_id,
                sync_token=sync_token,
                deep_link=_link_of(self._app_base_url, qbo_entity, qbo_id, job.realm_id),
                note=note,
            ),
            now=self._clock(),
            operation=job.operation,
        )
        released = self._gate.after_sync(job, synced, job.event)
        return Outcome("synced", job.entity_type, job.platform_id, qbo_id, reason="linked", released=released)

    def _wait(self, job: Job, waiting: list[tuple[str, str]]) -> Outcome:
        """Prerequisites are not in QuickBooks: blocked while they are on their way, else skipped naming
        the ones that will not sync as things stand (issue 11)."""
        held = self._gate.held_back(job, waiting)
        if held is not None:
            return self._skip(job, held, waiting_on=waiting)
        return self._gate.block(job, waiting)

    def _skip(self, job: Job, reason: str, *, waiting_on: Sequence[tuple[str, str]] = ()) -> Outcome:
        """Mark the record skipped (``waiting_on``: behind prerequisites that will not sync, kept so that
        it is released when they do) and let its dependents settle."""
        self._records.mark_skipped(
            job.key,
            owner=self._owner,
            reason=reason,
            now=self._clock(),
            waiting_on=waiting_on,
            drop_intent=job.unsent_intent,
        )
        self._status.publish_status(job, "skipped")
        logger.info("record skipped", extra=log_context(job, reason=reason.split(":")[0][:80]))
        released = self._gate.after_skip(job, reason, waiting_on)
        return Outcome(
            "skipped",
            job.entity_type,
            job.platform_id,
            reason=reason,
            waiting_on=tuple(waiting_on),
            released=released,
        )

    def _failed(self, job: Job, err: DataError) -> Outcome:
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
            # an intent left by an earlier attempt must still be resolved; the claim's own, unsent, goes
            keep_intent=not job.unsent_intent,
        )
        return self._report_failure(job, err)

    def _report_failure(self, job: Job, err: DataError) -> Outcome:
        """The record failed: the error center, the status event, then the records blocked on it settle."""
        outcome = self._status.report_failure(job, err)
        released = self._gate.after_failure(job)
        return dataclasses.replace(outcome, released=outcome.released + released)


def _observer(
    trail: RunTrail | None, qbo_entity: str, payload: dict[str, Any], qbo: QboClient
) -> Callable[[str, str], None] | None:
    """What tells the run's timeline about each QuickBooks call the writer makes (None: no timeline)."""
    if trail is None:
        return None

    def observe(operation: str, request_id: str) -> None:
        batched = isinstance(qbo, CoalescingQboClient) and operation in ("create", "update")
        trail.request(
            qbo_entity=qbo_entity,
            operation=operation,
            request_id=request_id,
            mode="batch" if batched else "single",
            body=payload,
        )

    return observe


def _value(value: _T) -> Callable[[], _T]:
    """A read that answers ``value`` (what was read ahead)."""
    return lambda: value


def _link_of(app_base_url: str, qbo_entity: str, qbo_id: str, realm_id: str) -> str | None:
    """The QBO web-app link of an object, or None for entities without a page of their own (items)."""
    try:
        return deep_link(app_base_url, qbo_entity, qbo_id, realm_id=realm_id)
    except ValueError:
        return None
