"""What the outbound sync's collaborators share: the job one event asks for and the outcome it has.

:class:`Job` (the write one event asks for), :class:`Outcome` (what :meth:`SyncService.handle` did),
:func:`event_envelope` (how a stored event is re-enqueued), :func:`log_context` (the structured log fields
of a job) and :func:`forced` (settings and record of a forced run). Used by
:mod:`qbsync.outbound.service` and its collaborators :mod:`~qbsync.outbound.gate`,
:mod:`~qbsync.outbound.credits` and :mod:`~qbsync.outbound.status`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.platform_events import PLATFORM_SOURCE, Invoice, Payment, PlatformEvent
from qbsync.models.record_key import RecordKey
from qbsync.outbound.timeline import RunTrail

__all__ = ["NO_ACTIVITY", "Job", "Outcome", "event_envelope", "forced", "log_context"]

#: the skip reason of a client account without activity (prefix of ``skip_reason``)
NO_ACTIVITY = "no_activity"


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
class Job:
    """The write one event asks for."""

    event: PlatformEvent
    key: RecordKey
    version: int
    operation: str
    record: Any  # the platform record (None for deletes/voids)
    qbo_entity: str
    force: bool = False  # a SyncCommand with force: settings-based skips do not apply
    #: the record and its prerequisites as one consistent read before the claim returned them (None: the
    #: item does not exist); the gate's first look at the prerequisites uses it instead of reading again
    seen: dict[RecordKey, Any] = field(default_factory=dict)
    #: the run's timeline steps, written once when it ends (:mod:`qbsync.outbound.timeline`); None: not kept
    trail: RunTrail | None = None
    #: the claim noted the create's intent with the lease (:attr:`~qbsync.repositories.records.Intent.fresh`)
    fresh_intent: bool = False
    #: the writer was handed the record: from then on it sends under the intent or resolves it
    writing: bool = False

    @property
    def unsent_intent(self) -> bool:
        """True when the record's intent is the claim's own and the writer never had it: an outcome reached
        now (skipped, blocked, failed before the write, released) removes it, since nothing was sent."""
        return self.fresh_intent and not self.writing

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


def log_context(job: Job, **extra: Any) -> dict[str, Any]:
    """The ``extra`` of a log line about ``job``."""
    return {
        "firm_id": job.firm_id,
        "realm_id": job.realm_id,
        "entity_type": job.entity_type,
        "platform_id": job.platform_id,
        "version": job.version,
        "operation": job.operation,
        **extra,
    }


def forced(settings: FirmSyncSettings, record: Any) -> tuple[FirmSyncSettings, Any]:
    """Settings and record of a forced run: no start date, offline payments and drafts sync."""
    settings = settings.model_copy(
        update={"sync_accounts": "all", "sync_start_date": None, "sync_offline_payments": True}
    )
    if isinstance(record, Payment) and record.sync_override is False:
        record = record.model_copy(update={"sync_override": True})
    if isinstance(record, Invoice) and record.status == "draft":
        record = record.model_copy(update={"status": "sent"})  # a manual sync of a draft posts it
    return settings, record


def record_date(record: Any) -> date | None:
    """The date a platform record is dated by (invoice issue date, payment / refund / fee date), or None
    (accounts, services): what the sync start date and the closed books are compared with."""
    for attr in ("issue_date", "payment_date", "refund_date", "fee_date"):
        value = getattr(record, attr, None)
        if isinstance(value, date):
            return value
    return None
