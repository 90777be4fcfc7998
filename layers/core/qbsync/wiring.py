"""The one wiring module: every service of every function, built from the deployment's settings.

Handlers (``functions/*/app.py``) and the admin API's routes (:mod:`qbsync.api`) get their services here and
nowhere else; nothing below this module imports it (the ``layers`` contract of ``make lint``).

* **Shared parts**, one per container: the sync-state and error tables, the event bus publisher, the
  outbound and retry queue senders, the connection service, the paced QBO client factory (every QuickBooks
  call of every function takes a slot of the realm's shared request budget, :mod:`qbsync.qbo.ratelimit`,
  so a busy admin and a busy sync worker together still stay under Intuit's per-realm limits) and
  :func:`realm_clients` (the :class:`~qbsync.connection.clients.RealmClients` port every service asks for a
  realm's client).
* **Services**: ``build_*`` assembles one from the shared parts (tests call the builders too, with their own
  table where they need one); the accessor of the same name without ``build_`` returns the container's
  instance, built on first use (:class:`~qbsync.lazy.Lazy`).
* :func:`start`: a handler calls it at the start of each invocation with what the invocation needs, so a
  missing or bad setting (environment variable, secret field) fails the invocation there, loudly: one log
  line naming the setting (never its value), then the ConfigurationError is raised.
* :func:`reset`: tests that change the environment forget every cached service, setting, secret, AWS client
  and the OAuth discovery document in one call.

Two handlers on a caller's latency budget do not import this module, which imports every service of every
function (about 270 ms of a cold start): the admin authorizer (API Gateway waits on it) and the webhook
intake (Intuit waits 3 s, ``functions/webhook_intake``). Each builds its two or three adapters from
:mod:`qbsync.settings` itself, in its handler module.

Nothing is built at import, so a handler module imports without AWS settings. Builders raise
ConfigurationError (missing environment, secret fields).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from qbsync.adapters import clear_default_clients
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.eventbridge import EventPublisher
from qbsync.adapters.kms import TokenCipher
from qbsync.adapters.s3 import S3Objects
from qbsync.adapters.secrets import clear_caches as clear_secret_caches
from qbsync.adapters.secrets import get_secret_field, get_secret_json
from qbsync.adapters.sqs import SqsSender
from qbsync.adapters.stepfunctions import StepFunctions
from qbsync.connection.clients import ConnectionRealmClients, QboClientFactory, RealmClients
from qbsync.connection.events import ConnectionEvents
from qbsync.connection.preflight import PreflightCheck
from qbsync.connection.service import ConnectionService
from qbsync.connection.state import StateSigner
from qbsync.errorcenter.actions import RecordActions
from qbsync.errorcenter.center import ErrorCenter
from qbsync.errorcenter.drift_actions import DriftActions
from qbsync.errorcenter.retry import RetryFanout, RetryGuard, RetryRequests, RetryWorker
from qbsync.errors import ConfigurationError
from qbsync.health.service import FirmHealthCheck, HealthSources
from qbsync.inbound.catchup import CatchUpRequests, CdcCatchUp
from qbsync.inbound.drift import SyncedRecordChanges as DriftDetection
from qbsync.inbound.payments import PaymentsReceived
from qbsync.inbound.processor import InboundProcessor, SyncedRecordChanges
from qbsync.inbound.services_import import ServicesImport
from qbsync.inbound.worker import InboundWorker
from qbsync.initial_sync.execute import ChunkExecutor
from qbsync.initial_sync.intake import SnapshotIntake
from qbsync.initial_sync.plan import Planner
from qbsync.initial_sync.runs import RunControl
from qbsync.initial_sync.steps import FirmContext, InitialSyncSteps, PlanSteps
from qbsync.lazy import Lazy
from qbsync.observability import logger
from qbsync.outbound.bulk import BulkRunner
from qbsync.outbound.dead_letters import DeadLetters
from qbsync.outbound.resume import PausedWorkResumer
from qbsync.outbound.service import SyncService
from qbsync.outbound.timeline import TimelineRecorder
from qbsync.qbo.batching import CoalescingQboClient, WriteCoalescer
from qbsync.qbo.client import QboClient, TokenSource
from qbsync.qbo.oauth import IntuitOAuthClient, clear_discovery_cache
from qbsync.qbo.ratelimit import RateLimits, RealmRateLimiter
from qbsync.qbo.reference import ReferenceCache
from qbsync.reconcile.redrive import DeadLetterRedrive
from qbsync.reconcile.report import DriftReports, DriftReportStep
from qbsync.reconcile.resync import CatchUpStep, DailyPreflight, HealthStep, Resync, SweepStep
from qbsync.reconcile.sweep import RecordSweep
from qbsync.repositories.connections import ConnectionsRepository
from qbsync.repositories.dead_letters import DeadLetterLog
from qbsync.repositories.drift_reports import DriftReportRepository
from qbsync.repositories.error_log import ErrorLogRepository
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.repositories.health_levels import HealthLevels
from qbsync.repositories.inbound_payments import InboundPayments
from qbsync.repositories.initial_sync import InitialSyncRuns
from qbsync.repositories.oauth_grants import ParkedGrants
from qbsync.repositories.oauth_state import OAuthStateRepository
from qbsync.repositories.paused import PausedWork
from qbsync.repositories.preflight import PreflightRepository
from qbsync.repositories.rate_windows import RateWindows
from qbsync.repositories.record_admin import RecordAdmin
from qbsync.repositories.records import RecordsRepository
from qbsync.repositories.retry_requests import RetryGuardRepository, RetryRequestRepository
from qbsync.repositories.snapshots import SnapshotStore
from qbsync.repositories.timeline import TimelineRepository
from qbsync.repositories.watermarks import WatermarkRepository
from qbsync.settings import clear as clear_settings
from qbsync.settings import (
    get_core_settings,
    get_initial_sync_settings,
    get_qbo_settings,
    get_sweep_settings,
)

__all__ = [
    "RecordsWiring",
    "SettingsWiring",
    "admin_api",
    "build_bulk_runner",
    "build_catch_up",
    "build_catch_up_requests",
    "build_connection_service",
    "build_drift_actions",
    "build_drift_reports",
    "build_error_center",
    "build_firm_health",
    "build_inbound_processor",
    "build_inbound_worker",
    "build_initial_sync_steps",
    "build_preflight_check",
    "build_preflight_repository",
    "build_record_actions",
    "build_resync",
    "build_retry_requests",
    "build_retry_worker",
    "build_run_control",
    "build_services_import",
    "build_snapshot_intake",
    "build_snapshot_store",
    "build_sync_service",
    "build_synced_record_changes",
    "bulk_runner",
    "catch_up",
    "catch_up_queue",
    "catch_up_requests",
    "connection_api",
    "connection_service",
    "dead_letter_log",
    "dead_letter_redrive",
    "dead_letters",
    "drift_actions",
    "drift_reports",
    "error_center",
    "error_log",
    "health_queues",
    "inbound_dead_letters",
    "inbound_processor",
    "inbound_queue",
    "inbound_worker",
    "initial_sync_runs",
    "initial_sync_steps",
    "outbound_queue",
    "paced_client_factory",
    "paused_resumer",
    "paused_work",
    "realm_clients",
    "record_actions",
    "records_wiring",
    "reset",
    "resync",
    "retry_requests",
    "retry_worker",
    "run_control",
    "services_import",
    "settings_wiring",
    "snapshot_intake",
    "start",
    "sync_service",
    "sync_table",
    "synced_record_changes",
]

T = TypeVar("T")

#: every per-container singleton of this module, forgotten together by :func:`reset`
_CACHED: list[Lazy[Any]] = []


def _once(build: Callable[[], T]) -> Callable[[], T]:
    """The container's instance of ``build()``: built on first use, forgotten by :func:`reset`."""
    cached = Lazy(build)
    _CACHED.append(cached)
    return cached.get


# --- shared parts ------------------------------------------------------------------------------------


def paced_client_factory(
    table: Any | None = None, *, coalescer: WriteCoalescer | None = None
) -> QboClientFactory:
    """``(realm_id, tokens) -> QboClient`` from the deployment's settings, paced per realm.

    ``table``: the sync-state table adapter holding the rate windows (default: ``SYNC_TABLE_NAME``);
    ``coalescer``: the clients' creates and updates go out as batch calls with the other threads of that
    :class:`~qbsync.qbo.batching.WriteCoalescer` (the bulk path; each batch call takes a batch slot too).
    """
    qbo = get_qbo_settings()
    windows = table if table is not None else DynamoTable(get_core_settings().sync_table_name)
    limiter = RealmRateLimiter(RateWindows(windows))

    def client(realm_id: str, tokens: TokenSource) -> QboClient:
        options: dict[str, Any] = {
            "base_url": qbo.qbo_api_base_url,
            "realm_id": realm_id,
            "tokens": tokens,
            "minor_version": qbo.qbo_minor_version,
            "limiter": limiter,
        }
        if coalescer is not None:
            return CoalescingQboClient(coalescer=coalescer, **options)
        return QboClient(**options)

    return client


sync_table = _once(lambda: DynamoTable(get_core_settings().sync_table_name))
_error_table = _once(lambda: DynamoTable(get_core_settings().error_table_name))
_publisher = _once(lambda: EventPublisher(get_core_settings().event_bus_name))
#: the OutboundQueue sender (re-enqueued events, sync commands, paused work resumed, early redelivery)
outbound_queue = _once(lambda: SqsSender(get_core_settings().outbound_queue_url))
#: the firm-scoped log of dead-lettered events (entity sync writes it, the admin API reads it)
dead_letter_log = _once(lambda: DeadLetterLog(sync_table()))
#: malformed OutboundQueue messages → OutboundDLQ at once (functions/entity_sync)
dead_letters = _once(
    lambda: DeadLetters(
        dlq=SqsSender(get_core_settings().outbound_dlq_url), log=dead_letter_log(), clock=time.time
    )
)
_retry_queue = _once(lambda: SqsSender(get_core_settings().retry_queue_url))
#: the InboundQueue sender (a throttled realm's notices come back early: change_visibility)
inbound_queue = _once(lambda: SqsSender(get_core_settings().inbound_queue_url))
#: malformed InboundQueue notices → InboundDLQ at once (functions/inbound_worker); a notice names no firm,
#: so the firm-scoped log only gets what is attributable (nothing, today)
inbound_dead_letters = _once(
    lambda: DeadLetters(
        dlq=SqsSender(get_core_settings().inbound_dlq_url), log=dead_letter_log(), clock=time.time
    )
)
_paced_clients = _once(lambda: paced_client_factory(sync_table()))
_records = _once(lambda: RecordsRepository(sync_table()))
_record_admin = _once(lambda: RecordAdmin(sync_table()))
_firm_settings = _once(lambda: FirmSettingsRepository(sync_table()))
error_log = _once(lambda: ErrorLogRepository(_error_table()))
#: events parked while a firm is not connected, resumed by the retry fan-out
paused_work = _once(lambda: PausedWork(sync_table()))
#: sends a firm's parked work back to OutboundQueue (the retry fan-out on "Connection Changed" connected)
paused_resumer = _once(lambda: PausedWorkResumer(paused_work(), outbound_queue()))


def _intuit_app() -> tuple[str, str]:
    app = get_secret_json(get_core_settings().intuit_app_secret_arn)
    client_id, client_secret = app.get("client_id"), app.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        raise ConfigurationError(
            "the Intuit app secret (INTUIT_APP_SECRET_ARN) lacks client_id / client_secret",
            variables=["INTUIT_APP_SECRET_ARN"],
        )
    return client_id, client_secret


def build_connection_service() -> ConnectionService:
    """The connection lifecycle (OAuth, token providers, the connection check)."""
    core = get_core_settings()
    qbo = get_qbo_settings()
    client_id, client_secret = _intuit_app()
    table = sync_table()
    cipher = TokenCipher(core.token_kms_key_id)
    return ConnectionService(
        connections=ConnectionsRepository(table, cipher),
        states=OAuthStateRepository(table),
        grants=ParkedGrants(table, cipher),
        oauth=IntuitOAuthClient(
            discovery_url=qbo.intuit_discovery_url, client_id=client_id, client_secret=client_secret
        ),
        # Fetched on first use: the keep-alive function never signs and has no access to this secret.
        signer=StateSigner(partial(get_secret_field, core.state_signing_secret_arn, "key")),
        events=ConnectionEvents(_publisher(), clock=time.time),
        # Empty OAUTH_REDIRECT_URI (template default): the handler derives the API's own callback URL.
        redirect_uri=getattr(qbo, "oauth_redirect_uri", None) or None,
        qbo_client=_paced_clients(),
        # Empty PLATFORM_RETURN_URL (template default): the callback shows the handle on its own page.
        return_url=qbo.platform_return_url,
    )


connection_service = _once(build_connection_service)


def _connections() -> ConnectionsRepository:
    return connection_service().connections


#: a realm's QuickBooks client with the firm's tokens, paced: the port every service calls QBO through
realm_clients: Callable[[], RealmClients] = _once(
    lambda: ConnectionRealmClients(connection_service(), _paced_clients())
)


# --- services ----------------------------------------------------------------------------------------


def build_sync_service(
    *,
    table: DynamoTable | None = None,
    owner_id: str | None = None,
    clients: RealmClients | None = None,
    references: ReferenceCache | None = None,
) -> SyncService:
    """The outbound sync (``functions/entity_sync``).

    ``table``: another sync-state table adapter for records, settings and parked work (tests that
    interleave two workers); ``owner_id``: the lease owner (default: a new one per service);
    ``clients``: where its QBO clients come from (default: :func:`realm_clients`; the bulk path's batch
    their writes); ``references``: a reference cache shared with other services (default: its own).
    """
    table = table if table is not None else sync_table()
    return SyncService(
        connections=_connections(),
        realm_clients=clients if clients is not None else realm_clients(),
        records=RecordsRepository(table),
        paused=PausedWork(table, time.time),
        settings=FirmSettingsRepository(table),
        errorlog=error_log(),
        publisher=_publisher(),
        requeue=outbound_queue(),
        clock=time.time,
        owner_id=owner_id or f"entity-sync-{uuid.uuid4().hex[:12]}",
        app_base_url=get_qbo_settings().qbo_app_base_url,
        references=references,
        timeline=TimelineRecorder(TimelineRepository(table), time.time),
    )


def build_bulk_runner(*, table: DynamoTable | None = None, max_workers: int = 30) -> BulkRunner:
    """The initial sync's bulk path (:mod:`qbsync.outbound.bulk`): a chunk's records on ``max_workers``
    threads, each with a :func:`build_sync_service` whose QBO writes leave as batch calls (the chunk's
    :class:`~qbsync.qbo.batching.WriteCoalescer`), paced by the realm's shared limiter (batch slots
    included). One reference cache for the runner's threads; a new lease owner per thread and chunk.
    """
    table = table if table is not None else sync_table()
    references = ReferenceCache(time.time)

    def service(coalescer: WriteCoalescer, number: int) -> SyncService:
        clients = ConnectionRealmClients(
            connection_service(), paced_client_factory(table, coalescer=coalescer)
        )
        return build_sync_service(
            table=table,
            owner_id=f"bulk-sync-{uuid.uuid4().hex[:12]}-{number}",
            clients=clients,
            references=references,
        )

    return BulkRunner(service, max_workers=max_workers)


def build_record_actions() -> RecordActions:
    """Admin actions on records and errors (``qbsync.api.actions_routes``)."""
    return RecordActions(
        connections=_connections(),
        realm_clients=realm_clients(),
        records=_records(),
        admin=_record_admin(),
        settings=_firm_settings(),
        errorlog=error_log(),
        publisher=_publisher(),
        outbound=outbound_queue(),
        references=ReferenceCache(time.time),
        clock=time.time,
        app_base_url=get_qbo_settings().qbo_app_base_url,
    )


def build_services_import() -> ServicesImport:
    """Copying services from QuickBooks (``qbsync.api.actions_routes``)."""
    return ServicesImport(
        connections=_connections(),
        realm_clients=realm_clients(),
        records=_record_admin(),
        publisher=_publisher(),
    )


def build_error_center() -> ErrorCenter:
    """The error center's reads and skip (``qbsync.api.errors_routes``)."""
    return ErrorCenter(errors=error_log(), records=_records(), publisher=_publisher())


def build_retry_requests() -> RetryRequests:
    """Resync requests of the admin API (``qbsync.api.errors_routes``)."""
    return RetryRequests(
        errors=error_log(), guard=RetryGuard(RetryGuardRepository(sync_table())), retry_queue=_retry_queue()
    )


def build_retry_worker() -> RetryWorker:
    """The RetryQueue worker (``functions/retry_fanout``): fan-out and resume of paused work."""
    return RetryWorker(
        fanout=RetryFanout(
            errors=error_log(),
            requests=RetryRequestRepository(sync_table()),
            outbound=outbound_queue(),
            retry_queue=_retry_queue(),
            timeline=TimelineRepository(sync_table()),
        ),
        resume=paused_resumer().resume,
    )


def build_synced_record_changes(*, table: DynamoTable | None = None) -> DriftDetection:
    """A synced record edited or deleted in QuickBooks → one error on it with its actions (issue 14 item 4;
    the processor's ``synced_changes`` route)."""
    table = table if table is not None else sync_table()
    return DriftDetection(
        records=RecordsRepository(table),
        admin=RecordAdmin(table),
        errorlog=error_log(),
        publisher=_publisher(),
        clock=time.time,
    )


def build_inbound_processor(
    *, table: DynamoTable | None = None, synced_changes: SyncedRecordChanges | None = None
) -> InboundProcessor:
    """What a QuickBooks change means (``functions/inbound_worker``, and the CDC catch-up).

    ``synced_changes``: what to do with a change made in QuickBooks to a synced record. Default: the
    edit/delete detection of issue 14 (:class:`qbsync.inbound.drift.SyncedRecordChanges`: an error on the
    record with its actions) on the same table.
    """
    table = table if table is not None else sync_table()
    records = RecordsRepository(table)
    return InboundProcessor(
        records=records,
        synced_changes=synced_changes
        if synced_changes is not None
        else build_synced_record_changes(table=table),
        payments=PaymentsReceived(
            records=records,
            states=InboundPayments(table),
            errorlog=error_log(),
            publisher=_publisher(),
            realm_clients=realm_clients(),
            clock=time.time,
        ),
    )


def build_inbound_worker() -> InboundWorker:
    """The InboundQueue worker (``functions/inbound_worker``)."""
    return InboundWorker(
        connections=_connections(), realm_clients=realm_clients(), processor=build_inbound_processor()
    )


sync_service = _once(build_sync_service)
#: the container's bulk runner (its reference cache outlives one chunk: no reference load per chunk)
bulk_runner = _once(build_bulk_runner)
inbound_worker = _once(build_inbound_worker)
record_actions = _once(build_record_actions)
services_import = _once(build_services_import)
error_center = _once(build_error_center)
retry_requests = _once(build_retry_requests)
retry_worker = _once(build_retry_worker)


# --- changes made in QuickBooks (issue 14) ---------------------------------------------------------------

#: the CatchUpQueue sender (the schedule's fan-out, POST /sync/catch-up)
catch_up_queue = _once(lambda: SqsSender(get_core_settings().catchup_queue_url))
_watermarks = _once(lambda: WatermarkRepository(sync_table()))


def build_catch_up() -> CdcCatchUp:
    """One firm's CDC catch-up (``functions/cdc_catchup``)."""
    return CdcCatchUp(
        connections=_connections(),
        realm_clients=realm_clients(),
        watermarks=_watermarks(),
        linked=_record_admin(),
        processor=inbound_processor(),
        clock=time.time,
    )


def build_catch_up_requests() -> CatchUpRequests:
    """Queues catch-up runs (the schedule's fan-out, ``POST /sync/catch-up``)."""
    return CatchUpRequests(connections=_connections(), sender=catch_up_queue())


def build_resync() -> Resync:
    """One firm's scheduled resync (``functions/cdc_catchup``; qbsync.reconcile.resync): its steps in order,
    the drift report (PRODUCT.md J.3, :class:`~qbsync.reconcile.report.DriftReportStep`) last."""
    sweep_settings = get_sweep_settings()
    return Resync(
        connections=_connections(),
        steps=[
            CatchUpStep(catch_up()),
            SweepStep(
                RecordSweep(
                    records=_records(), outbound=outbound_queue(), clock=time.time, settings=sweep_settings
                ),
                initial_sync_runs(),
                clock=time.time,
                stale_after=sweep_settings.initial_sync_stale_seconds,
            ),
            DailyPreflight(
                preflight=build_preflight_check(),
                results=build_preflight_repository(),
                realm_clients=realm_clients(),
                settings=_firm_settings(),
                clock=time.time,
            ),
            DriftReportStep(drift_reports()),
            HealthStep(build_firm_health()),
        ],
        continuations=catch_up_queue(),
    )


def _correlation_id() -> str:
    value = logger.get_correlation_id()
    return value if isinstance(value, str) and value else str(uuid.uuid4())


def build_firm_health() -> FirmHealthCheck:
    """One firm's health and its "Firm Health Changed" (``GET /health``, the resync's ``health`` step)."""
    return FirmHealthCheck(
        HealthSources(
            connections=_connections(),
            records=_records(),
            dead_letters=dead_letter_log(),
            rate=RateWindows(sync_table()),
            limiter_cap_per_minute=RateLimits().per_minute,
        ),
        levels=HealthLevels(sync_table()),
        publisher=_publisher(),
        clock=time.time,
        correlation_id=_correlation_id,
    )


def health_queues() -> dict[str, SqsSender]:
    """The queues whose depth ``GET /health`` shows (fleet-wide), by their public names."""
    core = get_core_settings()
    return {
        "outbound": outbound_queue(),
        "outbound_dead_letters": SqsSender(core.outbound_dlq_url),
        "inbound": inbound_queue(),
        "inbound_dead_letters": SqsSender(core.inbound_dlq_url),
        "retry": _retry_queue(),
        "catch_up": catch_up_queue(),
    }


def build_drift_actions() -> DriftActions:
    """Accept QuickBooks' change / unlink on a drift error (``qbsync.api.actions_routes``)."""
    return DriftActions(
        connections=_connections(),
        realm_clients=realm_clients(),
        records=_records(),
        admin=_record_admin(),
        errorlog=error_log(),
        publisher=_publisher(),
        outbound=outbound_queue(),
        clock=time.time,
        app_base_url=get_qbo_settings().qbo_app_base_url,
    )


def build_drift_reports(*, table: DynamoTable | None = None) -> DriftReports:
    """The drift report of a firm (PRODUCT.md J.3): ``run(firm_id)`` for the scheduled resync, the
    ``/drift`` routes for the caller's firm."""
    table = table if table is not None else sync_table()
    return DriftReports(
        connections=_connections(),
        realm_clients=realm_clients(),
        admin=RecordAdmin(table),
        drift=build_synced_record_changes(table=table),
        errorlog=error_log(),
        reports=DriftReportRepository(table, clock=time.time),
        publisher=_publisher(),
        clock=time.time,
        inbound_payments=InboundPayments(table),
    )


def build_preflight_check() -> PreflightCheck:
    """The pre-flight check of a firm's QuickBooks company (PRODUCT.md J.2; the initial sync and the daily
    check run it with a realm client from :func:`realm_clients`)."""
    return PreflightCheck(ReferenceCache(time.time), clock=time.time)


def build_preflight_repository(*, table: DynamoTable | None = None) -> PreflightRepository:
    """The stored pre-flight results (``PREFLIGHT#`` items of the sync-state table)."""
    return PreflightRepository(table if table is not None else sync_table(), clock=time.time)


def build_snapshot_store() -> SnapshotStore:
    """The platform's snapshots in ``SNAPSHOT_BUCKET_NAME`` (the initial sync; docs/events/snapshot.md)."""
    return SnapshotStore(S3Objects(get_initial_sync_settings().snapshot_bucket_name))


synced_record_changes = _once(build_synced_record_changes)
#: the processor the CDC catch-up feeds (the same routes as the webhook worker's)
inbound_processor = _once(build_inbound_processor)
catch_up = _once(build_catch_up)
catch_up_requests = _once(build_catch_up_requests)
resync = _once(build_resync)
#: the schedule's redrive of OutboundDLQ's infrastructure dead letters (qbsync.reconcile.redrive)
dead_letter_redrive = _once(
    lambda: DeadLetterRedrive(dlq=SqsSender(get_core_settings().outbound_dlq_url), outbound=outbound_queue())
)


# --- the initial sync -------------------------------------------------------------------------------

_snapshot_objects = _once(lambda: S3Objects(get_initial_sync_settings().snapshot_bucket_name))
#: the initial-sync runs (``GET /initial-sync`` reads them)
initial_sync_runs = _once(lambda: InitialSyncRuns(sync_table()))


def build_run_control() -> RunControl:
    """Initial-sync runs: the state machine's control steps and the owner's approve / cancel / resume."""
    return RunControl(
        runs=initial_sync_runs(),
        executions=StepFunctions(),
        connections=_connections(),
        publisher=_publisher(),
        clock=time.time,
        state_machine_arn=get_initial_sync_settings().state_machine_arn,
    )


run_control = _once(build_run_control)


def build_initial_sync_steps() -> InitialSyncSteps:
    """The initial sync's task steps (``functions/initial_sync``)."""
    runs, objects = initial_sync_runs(), _snapshot_objects()
    context = FirmContext(
        connections=_connections(), settings=_firm_settings(), realm_clients=realm_clients(), clock=time.time
    )
    plan_steps = PlanSteps(
        runs=runs,
        control=run_control(),
        planner=Planner(snapshots=build_snapshot_store(), objects=objects, records=_records()),
        preflight=build_preflight_check(),
        preflight_results=build_preflight_repository(),
        context=context,
        publisher=_publisher(),
    )
    executor = ChunkExecutor(
        runs=runs,
        objects=objects,
        records=_records(),
        connections=_connections(),
        runner=bulk_runner,
        publisher=_publisher(),
        errorlog=error_log(),
        owner_id=f"initial-sync-{uuid.uuid4().hex[:12]}",
        app_base_url=get_qbo_settings().qbo_app_base_url,
    )
    return InitialSyncSteps(
        runs=runs,
        control=run_control(),
        plan_steps=plan_steps,
        executor=executor,
        publisher=_publisher(),
        snapshot_bucket=get_initial_sync_settings().snapshot_bucket_name,
    )


def build_snapshot_intake() -> SnapshotIntake:
    """The platform's "Snapshot Ready" (``functions/initial_sync``)."""
    return SnapshotIntake(
        runs=initial_sync_runs(),
        control=run_control(),
        manifests=build_snapshot_store(),
        publisher=_publisher(),
    )


initial_sync_steps = _once(build_initial_sync_steps)
snapshot_intake = _once(build_snapshot_intake)
drift_actions = _once(build_drift_actions)
drift_reports = _once(build_drift_reports)


@dataclass(frozen=True)
class SettingsWiring:
    """What the settings routes need (``qbsync.api.settings_routes``)."""

    settings: FirmSettingsRepository
    connections: ConnectionsRepository
    clients: RealmClients
    clock: Callable[[], float]


@dataclass(frozen=True)
class RecordsWiring:
    """What the sync-status routes need (``qbsync.api.records_routes``)."""

    records: RecordsRepository
    admin: RecordAdmin
    connections: ConnectionsRepository
    timeline: TimelineRepository


settings_wiring = _once(
    lambda: SettingsWiring(
        settings=_firm_settings(), connections=_connections(), clients=realm_clients(), clock=time.time
    )
)
records_wiring = _once(
    lambda: RecordsWiring(
        records=_records(),
        admin=_record_admin(),
        connections=_connections(),
        timeline=TimelineRepository(sync_table()),
    )
)


# --- what each handler needs at its start ------------------------------------------------------------


def admin_api() -> None:
    """What every route of the admin API needs (``functions/admin_api``): its environment and the error
    center's services.

    The routes that read the connection or call QuickBooks (settings, records, actions) also need the
    Intuit app's credentials (``INTUIT_APP_SECRET_ARN``), which an operator writes after the first deploy:
    until then the error center keeps working, and those routes build their services on first use and
    answer the same JSON 500 with the request id (:func:`qbsync.api.common.qbsync_error_response`).
    """
    get_core_settings()
    get_qbo_settings()
    error_center()
    retry_requests()


def _state_signing_key() -> str:
    return get_secret_field(get_core_settings().state_signing_secret_arn, "key")


def connection_api() -> None:
    """The connection routes and the OAuth callback (``functions/oauth``): the service and the state key."""
    connection_service()
    _state_signing_key()


def start(*needs: Callable[[], object]) -> None:
    """Build (or check) what an invocation needs, at its start.

    Raises:
        ConfigurationError: a setting is missing or invalid; logged once here, naming the setting
            (``variables`` / the message: names and resource ids, never a value of a secret).
    """
    try:
        for need in needs:
            need()
    except ConfigurationError as err:
        logger.error(
            "configuration error: the invocation cannot start",
            extra={"error": err.message, **err.context()},
        )
        raise


# --- tests -------------------------------------------------------------------------------------------


def reset() -> None:
    """Forget every cached service and shared part, and the settings, secrets, AWS clients and the OAuth
    discovery document they were built from (tests that change the environment)."""
    for cached in _CACHED:
        cached.clear()
    clear_settings()
    clear_secret_caches()
    clear_default_clients()
    clear_discovery_cache()
