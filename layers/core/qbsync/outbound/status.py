"""Status reporting of the outbound sync: the qbsync events and the error center entry of a record.

:class:`StatusReporter` tells the platform what became of a record:

- **Synced** (:meth:`StatusReporter.synced`): the record's error log entry is resolved (when the record
  failed since the last resolve: ``error_open``; no error-log read for a record that never failed) and
  "Sync Status Changed" (synced, with the QBO id, deep link and the record's note) is published.
- **Skipped** (:meth:`StatusReporter.publish_status`): "Sync Status Changed" (skipped).
- Records without a job (the initial sync's links and its snapshot lines that do not parse) are announced
  the same way by key: :meth:`StatusReporter.record_synced`, :meth:`StatusReporter.record_failure`.
- **Failed** (:meth:`StatusReporter.report_failure`, for a :class:`~qbsync.errors.DataError` once the
  record is marked ``failed``): the error log entry is recorded, "Sync Status Changed" (failed, with the
  entry's id and explanation) is published and, for a new open error, "Sync Error Raised".

Log lines keep the logger ``qbsync.outbound.service``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync import vocab
from qbsync.errors import DataError, QbsyncError
from qbsync.models.qbsync_events import SyncErrorRaised, SyncStatusChanged
from qbsync.models.record_key import RecordKey
from qbsync.outbound.job import Job, Outcome, log_context
from qbsync.repositories.records import SyncRecord

__all__ = ["ErrorLog", "Publisher", "StatusReporter"]

logger = logging.getLogger("qbsync.outbound.service")


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


class StatusReporter:
    """Publishes a record's sync status and keeps its error center entry (see the module doc).

    Args:
        errorlog: the error center (``ErrorLogRepository``).
        publisher: publishes qbsync events (``EventPublisher``).
        clock: epoch seconds.
    """

    def __init__(self, *, errorlog: ErrorLog, publisher: Publisher, clock: Callable[[], float]) -> None:
        self._errorlog = errorlog
        self._publisher = publisher
        self._clock = clock

    def synced(self, job: Job, synced: SyncRecord) -> None:
        """The record is in QuickBooks: resolve its error log entry (when it failed since the last
        resolve: ``error_open``) and announce "synced"."""
        self.record_synced(job.key, synced, correlation_id=job.event.correlation_id)

    def record_synced(self, key: RecordKey, synced: SyncRecord, *, correlation_id: str | None) -> None:
        """:meth:`synced` for a record without a job (the initial sync's links: no platform event runs)."""
        if synced.error_open:
            self._errorlog.resolve(
                firm_id=key.firm_id,
                entity_type=key.record_type,
                platform_id=key.platform_id,
                now=self._clock(),
            )
        self._publish(
            key,
            "synced",
            correlation_id,
            qbo_id=synced.qbo_id,
            qbo_url=synced.deep_link,
            note=synced.note,
        )

    def report_failure(self, job: Job, err: DataError) -> Outcome:
        """Record ``err`` in the error center and announce "failed" (and "Sync Error Raised" when new)."""
        code = getattr(err, "reason_code", None) or err.code
        logger.warning("record failed", extra=log_context(job, error_code=code, qbo_code=err.qbo_code))
        return self._failure(job.key, err, job.event.correlation_id)

    def record_failure(self, key: RecordKey, err: DataError, *, correlation_id: str | None) -> Outcome:
        """:meth:`report_failure` for a record without a job (the initial sync's snapshot lines that do not
        parse: there is no platform event to run)."""
        code = getattr(err, "reason_code", None) or err.code
        logger.warning(
            "record failed",
            extra={
                "firm_id": key.firm_id,
                "realm_id": key.realm_id,
                "entity_type": key.record_type,
                "platform_id": key.platform_id,
                "error_code": code,
            },
        )
        return self._failure(key, err, correlation_id)

    def record_failed_again(self, key: RecordKey, entry: Any, *, correlation_id: str | None) -> None:
        """Announce "failed" again for a record whose error ``entry`` is recorded already (a repeat of the
        same run: nothing is recorded, no "Sync Error Raised")."""
        self._publish(
            key,
            "failed",
            correlation_id,
            error_id=str(getattr(entry, "error_id", "") or "") or None,
            error_message=str(getattr(entry, "explanation", "") or "")[:2000] or None,
        )

    def _failure(self, key: RecordKey, err: DataError, correlation_id: str | None) -> Outcome:
        now = self._clock()
        entry = self._errorlog.record(
            firm_id=key.firm_id,
            realm_id=key.realm_id,
            entity_type=key.record_type,
            platform_id=key.platform_id,
            error=err,
            now=now,
        )
        error_id = str(getattr(entry, "error_id", "") or "") or None
        explanation = str(getattr(entry, "explanation", "") or getattr(err, "explanation", "") or err)
        code = getattr(err, "reason_code", None) or err.code
        events: list[Any] = [
            SyncStatusChanged(
                firm_id=key.firm_id,
                correlation_id=correlation_id,
                realm_id=key.realm_id,
                entity_type=vocab.EVENT_ENTITY_OF[key.record_type],
                platform_id=key.platform_id,
                status="failed",
                error_id=error_id,
                error_message=explanation[:2000],
            )
        ]
        if getattr(entry, "is_new", False) and error_id:
            events.append(
                SyncErrorRaised(
                    firm_id=key.firm_id,
                    correlation_id=correlation_id,
                    error_id=error_id,
                    realm_id=key.realm_id,
                    category=_category(  # type: ignore[arg-type]
                        getattr(entry, "category", None) or getattr(err, "category", None), key.record_type
                    ),
                    entity_type=vocab.EVENT_ENTITY_OF[key.record_type],
                    platform_id=key.platform_id,
                    qbo_code=(err.qbo_code or None) and str(err.qbo_code)[:50],
                    qbo_message=(err.qbo_detail or None) and str(err.qbo_detail)[:2000],
                    explanation=explanation[:2000] or "The record could not be synced.",
                    attempts=max(1, int(getattr(entry, "attempts", 1) or 1)),
                    first_seen=_as_datetime(getattr(entry, "first_seen", None), now),
                    last_seen=_as_datetime(getattr(entry, "last_seen", None), now),
                )
            )
        self._publisher.publish(events)
        return Outcome("failed", key.record_type, key.platform_id, error_code=code)

    def publish_status(
        self,
        job: Job,
        status: str,
        *,
        qbo_id: str | None = None,
        qbo_url: str | None = None,
        note: str | None = None,
    ) -> None:
        """Publish "Sync Status Changed" (``status``) for the job's record."""
        self._publish(job.key, status, job.event.correlation_id, qbo_id=qbo_id, qbo_url=qbo_url, note=note)

    def _publish(  # noqa: PLR0913
        self,
        key: RecordKey,
        status: str,
        correlation_id: str | None,
        *,
        qbo_id: str | None = None,
        qbo_url: str | None = None,
        note: str | None = None,
        error_id: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self._publisher.publish(
            [
                SyncStatusChanged(
                    firm_id=key.firm_id,
                    correlation_id=correlation_id,
                    realm_id=key.realm_id,
                    entity_type=vocab.EVENT_ENTITY_OF[key.record_type],
                    platform_id=key.platform_id,
                    status=status,  # type: ignore[arg-type]
                    qbo_id=qbo_id,
                    qbo_url=qbo_url,
                    note=note,
                    error_id=error_id,
                    error_message=error_message,
                )
            ]
        )
