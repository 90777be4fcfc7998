"""The scheduled resync of one connected firm (PRODUCT.md G, issue 15 item 1).

One unit of work per firm: the hourly ``CatchUpSchedule`` fans out one
:class:`~qbsync.models.messages.CatchUpRequest` per connected firm on ``CatchUpQueue``
(:class:`~qbsync.inbound.catchup.CatchUpRequests`, one firm every 0.5 s through ``DelaySeconds``: a
thousand firms do not start in the same second), and ``CdcCatchUpFunction`` runs :meth:`Resync.run` on
each. There is no second fan-out: the resync *is* what that message does.

A run is a list of :class:`Step`, each given the firm's :class:`FirmRun`, in order:

1. ``catch_up`` - the CDC catch-up from the realm's watermark (:class:`~qbsync.inbound.catchup.CdcCatchUp`,
   the same watermark the inbound sync keeps);
2. ``sweep`` - records the event-driven path left behind run again (:mod:`qbsync.reconcile.sweep`: blocked
   records whose prerequisites all synced, transient failures whose retries ran out, the records whose
   message reached ``OutboundDLQ``);
3. ``preflight`` - the daily pre-flight check of the company (:class:`DailyPreflight`: at most once per
   :data:`PREFLIGHT_EVERY_SECONDS`, stored as the initial sync stores it).

4. ``health`` - the firm's health is evaluated (:class:`HealthStep`, ``qbsync.health``): "Firm Health Changed"
   when its level crossed a threshold since the last evaluation.

The drift report (PRODUCT.md J.3) is one more step of the same list (``qbsync.wiring.build_resync``): it
implements :class:`Step` and nothing here changes.

Which steps run: ``scheduled`` - all; ``on_demand`` (``POST /sync/catch-up``) - ``catch_up`` only;
``continued`` - ``sweep`` only, from the cursor a run cut short left (the sweep reads at most 20 pages per
run; the rest continues in a new ``CatchUpQueue`` message, behind the firms already queued: the queue's
concurrency of 2 keeps one large firm from holding both runs).

One failing step does not stop the others: each step's failure is logged (its error code, never data) and
the next step runs. A retryable one (QuickBooks throttled or down, AWS unavailable, a lease held) is raised
once every step had its turn, so the message is a batch-item failure and SQS redelivers it; every step is
safe to run again (cursors only advance, a swept record sent twice is ``already_synced``, the pre-flight
check is skipped once stored that day). A step failing with any other qbsync error (a DataError of the
pre-flight read, a reconnect needed) is logged and counted in ``failed``; the run goes on and the message is
consumed - the next hour runs it again. A bug (not a qbsync error) propagates: a batch-item failure, after 5
receives ``CatchUpDLQ`` and its alarm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qbsync.adapters.sqs import SqsMessage
from qbsync.connection.clients import RealmClients
from qbsync.errors import QbsyncError, RetryableError
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.messages import CatchUpRequest
from qbsync.models.preflight import PreflightResult, PreflightResultInvalid
from qbsync.qbo.client import QboClient
from qbsync.reconcile.sweep import RecordSweep, SweepCursor
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.initial_sync import RUNNING, Run

__all__ = [
    "PREFLIGHT_EVERY_SECONDS",
    "CatchUpStep",
    "DailyPreflight",
    "FirmRun",
    "HealthStep",
    "Resync",
    "ResyncReport",
    "Step",
    "SweepStep",
    "steps_for",
]

logger = logging.getLogger("qbsync.reconcile.resync")

#: the daily pre-flight check runs again once the stored one is this old (a day less the hourly slack)
PREFLIGHT_EVERY_SECONDS = 23 * 3600


@dataclass
class FirmRun:
    """One firm's run: who, why, and what a step leaves for the run (``sweep_cursor``: continue there)."""

    firm_id: str
    realm_id: str
    request_id: str
    reason: str
    sweep_from: SweepCursor | None = None
    sweep_cursor: SweepCursor | None = None


class Step(Protocol):
    """One step of a firm's resync: ``name`` (logs, metrics) and ``run`` (counts for the log line)."""

    name: str

    def run(self, firm: FirmRun) -> dict[str, Any]: ...


def steps_for(reason: str, steps: Sequence[Step]) -> list[Step]:
    """The steps a request of ``reason`` runs (see the module doc)."""
    if reason == "on_demand":
        return [s for s in steps if s.name == "catch_up"]
    if reason == "continued":
        return [s for s in steps if s.name == "sweep"]
    return list(steps)


@dataclass
class ResyncReport:
    """What one run did: ``status`` ``done`` | ``not_connected``; counts per step; failed steps (code)."""

    firm_id: str
    status: str = "done"
    realm_id: str | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    continued: bool = False


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


class Resync:
    """Runs a firm's steps (see the module doc).

    Args:
        connections: the firm's connection (only ``connected`` firms run).
        steps: the steps, in order; ``continuations``: ``CatchUpQueue`` (a sweep cut short goes on there).
    """

    def __init__(self, *, connections: Connections, steps: Sequence[Step], continuations: Sender) -> None:
        self._connections = connections
        self._steps = list(steps)
        self._continuations = continuations

    def run(self, request: CatchUpRequest) -> ResyncReport:
        """Run the request's steps. Raises the first retryable failure after every step ran."""
        report = ResyncReport(request.firm_id)
        connection = self._connections.get(request.firm_id)
        if connection is None or connection.status != CONNECTED:
            report.status = "not_connected"
            logger.info("resync skipped: not connected", extra={"firm_id": request.firm_id})
            return report
        report.realm_id = connection.realm_id
        firm = FirmRun(
            request.firm_id,
            connection.realm_id,
            request.request_id,
            request.reason,
            sweep_from=_cursor_of(request),
        )
        retry: QbsyncError | None = None
        for step in steps_for(request.reason, self._steps):
            try:
                report.steps[step.name] = step.run(firm)
            except QbsyncError as err:
                report.failed[step.name] = err.code
                logger.warning(
                    "resync step failed", extra={"firm_id": firm.firm_id, "step": step.name, **err.context()}
                )
                if isinstance(err, RetryableError) and retry is None:
                    retry = err
        if retry is not None:
            raise retry  # every step had its turn; the redelivery runs them again (all idempotent)
        if firm.sweep_cursor is not None:
            self._continue(firm, firm.sweep_cursor)
            report.continued = True
        return report

    def _continue(self, firm: FirmRun, cursor: SweepCursor) -> None:
        request = CatchUpRequest(
            firm_id=firm.firm_id,
            reason="continued",
            request_id=firm.request_id,
            sweep_status=cursor.status,
            sweep_after=dict(cursor.after) if cursor.after else None,
        )
        self._continuations.send_many(
            [
                SqsMessage(
                    body=request.body(),
                    id="continued",
                    correlation_id=firm.request_id,
                    attributes={"firm_id": firm.firm_id},
                )
            ]
        )


def _cursor_of(request: CatchUpRequest) -> SweepCursor | None:
    if request.sweep_status is None:
        return None
    return SweepCursor(request.sweep_status, request.sweep_after)


# ---------------------------------------------------------------------------------------------- steps


class CatchUpRunner(Protocol):
    """``qbsync.inbound.catchup.CdcCatchUp``."""

    def run(self, firm_id: str) -> Any: ...


class CatchUpStep:
    """The CDC catch-up from the realm's watermark (:class:`~qbsync.inbound.catchup.CdcCatchUp`)."""

    name = "catch_up"

    def __init__(self, catch_up: CatchUpRunner) -> None:
        self._catch_up = catch_up

    def run(self, firm: FirmRun) -> dict[str, Any]:
        report = self._catch_up.run(firm.firm_id)
        return {
            "status": report.status,
            "pages": report.pages,
            "objects": sum(report.objects.values()),
            "full": list(report.full),
        }


class InitialSyncs(Protocol):
    """``qbsync.repositories.initial_sync.InitialSyncRuns``: the firm's latest initial-sync run."""

    def latest(self, firm_id: str) -> Run | None: ...


class SweepStep:
    """The record sweep (:class:`~qbsync.reconcile.sweep.RecordSweep`); leaves its cursor on the run.

    Not while the firm's initial sync runs on this company: its chunks own the records they release for a
    retry (``not_synced`` with their snapshot event stored) and run them again themselves, in QuickBooks
    batch calls; a sweep would send each one alone through the entity sync, taking single writes out of the
    realm's budget in the middle of the bulk run (never a duplicate, but twice the work). The first tick after
    the run ends sweeps what it left. A run that says ``running`` but has not moved for ``stale_after``
    seconds (``SWEEP_INITIAL_SYNC_STALE_SECONDS``, :class:`qbsync.settings.SweepSettings`; every finished
    chunk updates it; its execution may have been stopped without ending it) defers nothing: its records
    would otherwise wait on it for ever.
    """

    name = "sweep"

    def __init__(
        self,
        sweep: RecordSweep,
        initial_syncs: InitialSyncs,
        *,
        clock: Callable[[], float],
        stale_after: float,
    ) -> None:
        self._sweep = sweep
        self._initial_syncs = initial_syncs
        self._clock = clock
        self._stale_after = stale_after

    def run(self, firm: FirmRun) -> dict[str, Any]:
        latest = self._initial_syncs.latest(firm.firm_id)
        if (
            latest is not None
            and latest.status == RUNNING
            and latest.ref.realm_id == firm.realm_id
            and self._clock() - latest.updated_at < self._stale_after
        ):
            logger.info(
                "record sweep deferred: the initial sync is running",
                extra={"firm_id": firm.firm_id, "run_id": latest.ref.run_id},
            )
            return {"deferred": "initial_sync_running"}
        report = self._sweep.run(firm.firm_id, firm.realm_id, firm.request_id, start=firm.sweep_from)
        firm.sweep_cursor = report.cursor
        return {"examined": report.examined, "pages": report.pages, **report.sent}


class Preflight(Protocol):
    """``qbsync.connection.preflight.PreflightCheck``."""

    def run(self, qbo: QboClient, settings: FirmSyncSettings) -> PreflightResult: ...


class PreflightResults(Protocol):
    """``qbsync.repositories.preflight.PreflightRepository``."""

    def latest(self, firm_id: str, realm_id: str) -> PreflightResult | None: ...

    def save(self, firm_id: str, result: PreflightResult) -> None: ...


class Settings(Protocol):
    """``qbsync.repositories.firm_settings.FirmSettingsRepository``."""

    def get(self, firm_id: str) -> FirmSyncSettings: ...


class DailyPreflight:
    """The daily pre-flight check of the firm's company (PRODUCT.md J.2; docs/preflight.md): run when the
    stored one is older than :data:`PREFLIGHT_EVERY_SECONDS` (or missing, or unreadable), and stored."""

    name = "preflight"

    def __init__(
        self,
        *,
        preflight: Preflight,
        results: PreflightResults,
        realm_clients: RealmClients,
        settings: Settings,
        clock: Callable[[], float],
    ) -> None:
        self._preflight = preflight
        self._results = results
        self._realm_clients = realm_clients
        self._settings = settings
        self._clock = clock

    def due(self, firm_id: str, realm_id: str) -> bool:
        try:
            latest = self._results.latest(firm_id, realm_id)
        except PreflightResultInvalid:
            return True  # an unreadable stored check is replaced by a fresh one
        return latest is None or self._clock() - latest.checked_at.timestamp() >= PREFLIGHT_EVERY_SECONDS

    def run(self, firm: FirmRun) -> dict[str, Any]:
        if not self.due(firm.firm_id, firm.realm_id):
            return {"ran": 0}
        qbo = self._realm_clients.qbo_for(firm.firm_id, firm.realm_id)
        result = self._preflight.run(qbo, self._settings.get(firm.firm_id))
        self._results.save(firm.firm_id, result)
        severities = [f.severity for f in result.findings]
        return {"ran": 1, "warnings": severities.count("warning"), "blocking": severities.count("blocking")}


class HealthCheck(Protocol):
    """``qbsync.health.service.FirmHealthCheck``."""

    def evaluate(self, firm_id: str) -> Any: ...


class HealthStep:
    """The firm's health (PRODUCT.md J.6): evaluated hourly so a crossing is announced even when nobody opens
    ``GET /health`` (the queues' depths are fleet-wide and left to the alarms)."""

    name = "health"

    def __init__(self, health: HealthCheck) -> None:
        self._health = health

    def run(self, firm: FirmRun) -> dict[str, Any]:
        report = self._health.evaluate(firm.firm_id)
        return {"level": report.level, "reasons": list(report.reasons)}
