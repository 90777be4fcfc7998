"""No record left in limbo (issue 11): the invariant every settled realm must satisfy.

Once the queues are drained, every record qbsync knows is in one of four states, each of which says where it
is and why:

* **synced**;
* **skipped** with a reason (the settings, the firm's choice, or - ``waiting_on`` kept - a prerequisite that
  will not sync as things stand, named in the reason);
* **failed** with an error the firm can see in the error center (open, or skipped there by the firm);
* **blocked** on named prerequisites, none of which will fail to come (:func:`~qbsync.outbound.gate.
  will_not_sync` is None for each) and not all already in QuickBooks (else it should have been released).

A record unsynced by an admin (``not_synced`` after a detach) is where the firm put it. Anything else - a
record left ``syncing`` or ``not_synced``, a skip without a reason, a failure nobody can see, a record
blocked on nothing, on a failed or skipped prerequisite, or on prerequisites that all synced - is in limbo.
:func:`records_in_limbo` lists them with why; the property test of the outbound worker asserts there are
none, and an engineer can run the same check on a realm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass

from qbsync.models.record_key import RecordKey
from qbsync.outbound.gate import WAITING_ON, will_not_sync
from qbsync.repositories.records import BLOCKED, FAILED, NOT_SYNCED, SKIPPED, SYNCED, SyncRecord

__all__ = ["Limbo", "records_in_limbo"]


@dataclass(frozen=True)
class Limbo:
    """A record that is nowhere a firm admin can see why: its key, status and what is wrong."""

    key: RecordKey
    status: str
    why: str


def records_in_limbo(
    records: Iterable[SyncRecord],
    *,
    explained: Set[tuple[str, str]],
    lookup: Callable[[RecordKey], SyncRecord | None],
) -> list[Limbo]:
    """The records of ``records`` that break the invariant of the module doc.

    ``explained``: ``(entity_type, platform_id)`` of every error-center entry that is open or skipped by
    the firm; ``lookup``: reads a prerequisite's record (None when qbsync has none).
    """
    out = []
    for record in records:
        why = _why_in_limbo(record, explained, lookup)
        if why is not None:
            out.append(Limbo(record.key, record.status, why))
    return out


def _why_in_limbo(
    record: SyncRecord,
    explained: Set[tuple[str, str]],
    lookup: Callable[[RecordKey], SyncRecord | None],
) -> str | None:
    status = record.status
    if status == SYNCED:
        return None
    if status == SKIPPED:
        if not record.skip_reason:
            return "skipped without a reason"
        if record.skip_reason.startswith(WAITING_ON) and not record.waiting_on:
            return "skipped behind a prerequisite it does not name"
        return None
    if status == FAILED:
        if (record.entity_type, record.platform_id) not in explained:
            return "failed with no error in the error center"
        return None
    if status == BLOCKED:
        return _why_blocked(record, lookup)
    if status == NOT_SYNCED and record.epoch > 0 and not record.qbo_id:
        return None  # unsynced by an admin: where the firm put it
    return f"left {status} after the queues drained"


def _why_blocked(record: SyncRecord, lookup: Callable[[RecordKey], SyncRecord | None]) -> str | None:
    if not record.waiting_on:
        return "blocked on nothing"
    in_qbo = 0
    for dep_type, dep_id in record.waiting_on:
        prerequisite = lookup(record.key.sibling(dep_type, dep_id))
        why = will_not_sync(prerequisite)
        if why is not None:
            return f"blocked on {dep_type} {dep_id}, which {why}"
        if prerequisite is not None and prerequisite.qbo_id and prerequisite.status != SKIPPED:
            in_qbo += 1
    if in_qbo == len(record.waiting_on):
        return "blocked although every prerequisite is in QuickBooks"
    return None
