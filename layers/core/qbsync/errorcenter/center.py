"""The error center as the admin API sees it (PRODUCT.md E): list, banner counts, one error, skip.

:class:`ErrorCenter` reads :class:`~qbsync.repositories.error_log.ErrorLogRepository` for the caller's firm
only (the firm always comes from the verified :class:`~qbsync.auth.Caller`; another firm's error id is
simply not found), adds the record's QuickBooks deep link to one error when the record is synced
(``qbsync.repositories.records``), and skips errors (owner/admin): the entry stops being retried by
category/all resyncs and its repeats stop notifying (E.3); a "Sync Error Resolved" event
(``resolution = skipped``,
with the new open count for the banner) tells the platform. Resync requests live in
:mod:`qbsync.errorcenter.retry`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from qbsync import vocab
from qbsync.auth import Caller, require_role
from qbsync.errors import NotFound, QbsyncError
from qbsync.models.qbsync_events import SyncErrorResolved
from qbsync.models.record_key import RecordKey
from qbsync.repositories.error_log import ErrorEntry, ErrorLogRepository
from qbsync.repositories.records import SYNCED, RecordsRepository

__all__ = ["ErrorCenter", "ErrorDetail"]

logger = logging.getLogger("qbsync.errorcenter.center")


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One error with its record's state: ``deep_link`` is set when the record is synced in QBO."""

    entry: ErrorEntry
    record_status: str | None = None
    deep_link: str | None = None


class ErrorCenter:
    """Reads and skips of the error center for one caller's firm.

    Args:
        errors: the error log.
        records: the sync-state records (deep links).
        publisher: publishes qbsync events (``EventPublisher``).
        clock: epoch seconds.
    """

    def __init__(
        self,
        *,
        errors: ErrorLogRepository,
        records: RecordsRepository,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._errors = errors
        self._records = records
        self._publisher = publisher
        self._clock = clock

    def list(
        self,
        caller: Caller,
        *,
        category: str | None,
        status: str,
        entity_type: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[ErrorEntry], str | None]:
        """One page of the firm's errors, most recently seen first. Raises BadRequest (bad cursor...)."""
        return self._errors.list(
            caller.firm_id,
            category=category,
            status=status,
            entity_type=entity_type,
            limit=limit,
            cursor=cursor,
        )

    def counts(self, caller: Caller) -> dict[str, int]:
        """Open errors per category (all categories, zeros included)."""
        return self._errors.counts(caller.firm_id)

    def detail(self, caller: Caller, error_id: str) -> ErrorDetail:
        """One error of the caller's firm with the record's status and deep link. Raises NotFound."""
        entry = self._errors.get(caller.firm_id, error_id)
        if entry is None:
            raise NotFound("no such error")
        record = None
        if entry.realm_id and entry.entity_type in vocab.SYNCABLE_TYPES:
            try:
                record = self._records.get(
                    RecordKey(caller.firm_id, entry.realm_id, entry.entity_type, entry.platform_id),
                    consistent=False,
                )
            except QbsyncError as err:  # the detail stays useful without the record
                logger.warning("record of an error not readable", extra={"error_code": err.code})
        if record is None:
            return ErrorDetail(entry)
        link = record.deep_link if record.status == SYNCED else None
        return ErrorDetail(entry, record_status=record.status, deep_link=link)

    def skip(self, caller: Caller, error_id: str, *, correlation_id: str | None = None) -> ErrorEntry:
        """Skip an open error (owner/admin). History: ``skipped`` by the caller.

        Raises:
            Forbidden: not owner/admin. NotFound: no such error. Conflict: not open.
        """
        require_role(caller, "owner", "admin")
        entry = self._errors.skip(caller.firm_id, error_id, now=self._clock(), by=caller.user_id)
        open_count = sum(self._errors.counts(caller.firm_id).values())
        category = entry.category if entry.category in vocab.ERROR_CATEGORIES else "Connection"
        self._publisher.publish(
            [
                SyncErrorResolved(
                    firm_id=caller.firm_id,
                    correlation_id=correlation_id or uuid.uuid4().hex,
                    error_id=entry.error_id,
                    category=category,  # type: ignore[arg-type]  # one of vocab.ERROR_CATEGORIES
                    entity_type=vocab.EVENT_ENTITY_OF.get(entry.entity_type),
                    platform_id=entry.platform_id,
                    resolution="skipped",
                    resolved_by=caller.user_id,
                    open_error_count=open_count,
                )
            ]
        )
        logger.info("error skipped", extra={"firm_id": caller.firm_id, "error_id": entry.error_id})
        return entry
