"""The resync's record sweep: records the event-driven path left behind run again (issue 15 item 1).

The outbound sync settles every record by itself - except in the release path's known gaps, where a
record is left waiting although nothing will wake it:

* **a missed release**: a record ``blocked`` (or ``skipped`` behind a prerequisite) whose prerequisites are
  all in QuickBooks now. Its releaser marked it (``requeued_by``) and then crashed before its send, and that
  releaser's redelivery never came (its message reached ``OutboundDLQ``); or the release message itself was
  dead-lettered; or the prerequisite reached QuickBooks by a path that releases nothing. Found by
  :func:`why_rerun` once the record has rested ``blocked_after_seconds`` (a release in flight is not a
  gap: it takes seconds) - counted from the later of its own last change and its last prerequisite's.
* **a transient failure whose retries ran out**: a record left ``not_synced`` (claimed, its write failed on
  QuickBooks' or AWS' side, its lease given back) or ``syncing`` under a dead lease, untouched for
  ``retry_after_seconds``. ``OutboundQueue`` gives a message 5 receives at its 720 s visibility: after
  90 minutes (the default) without a claim its message is in ``OutboundDLQ`` (or was lost), never still
  on its way. The record's own ``last_event`` is the dead letter's content: the record runs again from
  it, without a human and without the DLQ (a later redrive of the same message is ``already_synced``).

What runs again goes through the one outbound path: a :class:`~qbsync.models.commands.SyncCommand`
(``reason = scheduled``) on ``OutboundQueue``, which the entity-sync worker runs from the record's stored
event through the one exactly-once writer. So a swept record ends synced, skipped with a reason, failed with
an open error, or blocked on a named prerequisite on its way, and a command sent twice (a redelivered
sweep, a release that was only late) finds the version applied: ``already_synced``, never a duplicate.

Left alone: record types without platform events (a credit application runs with its payment), ``failed``
records (a DataError: the firm fixes the data and resyncs from the error center),
records unsynced by an admin (``not_synced`` with ``epoch > 0`` and no QuickBooks id), records without a
stored event (nothing to run; the ``ignored`` outcome would only log), and leases still live.

Bounded work (:meth:`RecordSweep.run`): the realm's ``STATUS#`` gsi2 partitions are read page by page
(:data:`PAGE_SIZE`), at most :data:`PAGES_PER_RUN` pages per run; a sweep that stops there returns a
:class:`SweepCursor` and the resync continues it in a new message, so a firm with 100,000 blocked records
never runs unbounded in one Lambda.

Both thresholds are settings (:class:`qbsync.settings.SweepSettings`: ``SWEEP_BLOCKED_AFTER_SECONDS``,
default 15 minutes; ``SWEEP_RETRY_AFTER_SECONDS``, default 90 minutes), read in that one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qbsync import vocab
from qbsync.adapters.sqs import SqsMessage
from qbsync.models.commands import SyncCommand
from qbsync.models.record_key import RecordKey
from qbsync.outbound.gate import WAITING_ON
from qbsync.repositories.records import BLOCKED, NOT_SYNCED, SKIPPED, SYNCING, RecordPage, SyncRecord
from qbsync.settings import SweepSettings

__all__ = [
    "PAGES_PER_RUN",
    "PAGE_SIZE",
    "SWEPT_STATUSES",
    "RecordSweep",
    "SweepCursor",
    "SweepReport",
    "why_rerun",
]

logger = logging.getLogger("qbsync.reconcile.sweep")

#: the gsi2 partitions swept, in this order
SWEPT_STATUSES = (BLOCKED, SKIPPED, NOT_SYNCED, SYNCING)
PAGE_SIZE = 100
PAGES_PER_RUN = 20

#: why_rerun's answers
READY = "prerequisites_synced"
STALE = "retries_ran_out"


class Records(Protocol):
    """``qbsync.repositories.records.RecordsRepository``."""

    def list_by_status(  # noqa: PLR0913
        self,
        firm_id: str,
        realm_id: str,
        status: str,
        *,
        entity_type: str | None = None,
        newest_first: bool = True,
        limit: int = 50,
        start_key: Mapping[str, Any] | None = None,
    ) -> RecordPage: ...

    def get(self, key: RecordKey, *, consistent: bool = True) -> SyncRecord | None: ...


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


def _in_qbo(record: SyncRecord | None) -> bool:
    return record is not None and bool(record.qbo_id) and record.status != SKIPPED


def why_rerun(
    record: SyncRecord,
    *,
    now: float,
    prerequisite: Callable[[RecordKey], SyncRecord | None],
    settings: SweepSettings,
) -> str | None:
    """Why the sweep runs ``record`` again (:data:`READY`, :data:`STALE`), or None to leave it.

    ``prerequisite`` reads a prerequisite's record (consistent); ``settings``: the thresholds. Pure apart
    from that read."""
    blocked_after, retry_after = settings.blocked_after_seconds, settings.retry_after_seconds
    age = now - (record.updated_at or 0.0)
    if record.last_event_version is None or record.entity_type not in vocab.SYNCABLE_TYPES:
        return None  # nothing stored to run again (a credit application runs with its payment)
    status = record.status
    if status in (BLOCKED, SKIPPED):
        if status == SKIPPED and not (record.skip_reason or "").startswith(WAITING_ON):
            return None  # skipped by the settings or the firm: where it belongs
        if not record.waiting_on or age < blocked_after:
            return None
        found = [prerequisite(record.key.sibling(t, i)) for t, i in record.waiting_on]
        if not all(_in_qbo(p) for p in found):
            return None
        # the last prerequisite synced blocked_after ago or more: its release is not just in flight
        synced_at = max((p.updated_at or 0.0) for p in found if p is not None)
        return READY if now - synced_at >= blocked_after else None
    if age < retry_after:
        return None
    if status == NOT_SYNCED:
        if record.epoch > 0 and not record.qbo_id:
            return None  # unsynced by an admin: where the firm put it
        return STALE
    if status == SYNCING and not record.lease_live(now):
        return STALE
    return None


@dataclass(frozen=True)
class SweepCursor:
    """Where a sweep cut short goes on: the status partition and the page's last key (None: its start)."""

    status: str
    after: Mapping[str, Any] | None = None


@dataclass
class SweepReport:
    """What one run did: records ``examined``, commands ``sent`` per reason, pages read, and ``cursor``
    when the run stopped at :data:`PAGES_PER_RUN` (None: the realm is swept)."""

    examined: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    cursor: SweepCursor | None = None


class RecordSweep:
    """Sweeps one realm's records (see the module doc).

    Args:
        records: the records repository (gsi2 pages, consistent reads of prerequisites).
        outbound: ``OutboundQueue`` (``SqsSender``); ``clock``: epoch seconds.
        settings: the thresholds (:func:`qbsync.settings.get_sweep_settings`).
    """

    def __init__(
        self, *, records: Records, outbound: Sender, clock: Callable[[], float], settings: SweepSettings
    ) -> None:
        self._records = records
        self._outbound = outbound
        self._clock = clock
        self._settings = settings

    def run(
        self, firm_id: str, realm_id: str, request_id: str, *, start: SweepCursor | None = None
    ) -> SweepReport:
        """Sweep from ``start`` (None: the first status's start) for at most :data:`PAGES_PER_RUN` pages.
        Raises what SQS and DynamoDB raise (the resync retries the run; a command sent twice is harmless)."""
        report = SweepReport()
        statuses = list(SWEPT_STATUSES)
        cursor = start or SweepCursor(statuses[0])
        index = statuses.index(cursor.status)
        after = cursor.after
        while index < len(statuses):
            if report.pages == PAGES_PER_RUN:
                report.cursor = SweepCursor(statuses[index], after)
                break
            status = statuses[index]
            page = self._records.list_by_status(
                firm_id, realm_id, status, newest_first=False, limit=PAGE_SIZE, start_key=after
            )
            report.pages += 1
            self._sweep_page(page.records, request_id, report)
            after = page.next_key
            if after is None:
                index += 1
        logger.info(
            "record sweep",
            extra={
                "firm_id": firm_id,
                "realm_id": realm_id,
                "examined": report.examined,
                "sent": report.sent,
                "pages": report.pages,
                "continued": report.cursor is not None,
            },
        )
        return report

    def _sweep_page(self, records: list[SyncRecord], request_id: str, report: SweepReport) -> None:
        now = self._clock()
        messages: list[SqsMessage] = []
        for record in records:
            report.examined += 1
            why = why_rerun(record, now=now, prerequisite=self._records.get, settings=self._settings)
            if why is None:
                continue
            report.sent[why] = report.sent.get(why, 0) + 1
            messages.append(
                SqsMessage(
                    body=SyncCommand(
                        firm_id=record.firm_id,
                        entity_type=record.entity_type,  # type: ignore[arg-type]  # in SYNCABLE_TYPES
                        platform_id=record.platform_id,
                        reason="scheduled",
                        request_id=request_id,
                        correlation_id=request_id,
                    ),
                    id=f"s{len(messages)}",
                    correlation_id=request_id,
                    attributes={"firm_id": record.firm_id},
                )
            )
        if messages:
            self._outbound.send_many(messages)
