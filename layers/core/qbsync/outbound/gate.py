"""The dependency gate of the outbound sync: a record syncs only once its prerequisites are in QuickBooks.

:class:`DependencyGate` (used by :class:`~qbsync.outbound.service.SyncService`):

- **Prerequisites** (:func:`~qbsync.outbound.mapping.dependencies`): any not in QBO yet → the event is stored
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
- **Skipped accounts.** A skipped account (no activity under "with_activity") keeps its event: when an
  invoice or payment later waits on it, the account event is re-enqueued and then syncs (it has activity
  now). Its reason says what it has instead of activity (issue 11 item 4): its invoices skipped as drafts
  or dated before the sync start date are noted beside its record
  (:meth:`~qbsync.repositories.records.RecordsRepository.note_unsynced_activity`), and the account's
  reason is rewritten when one is noted (:meth:`DependencyGate.note_unsynced_invoice`) - "no invoices or
  payments that sync: 2 draft invoices and 1 dated before the sync start date 2026-03-05". Both sides write
  first and read after (the invoice notes, then reads the account; the account is skipped, then reads the
  notes), so one of them sees the other.
- **Nothing waits on what will not come** (issue 11). "Blocked" means only "waiting for something on its
  way": a prerequisite whose event has not arrived, or that is being synced, blocked itself, or waiting for
  activity. A prerequisite that will not reach QuickBooks as things stand (:func:`will_not_sync`: skipped by
  the settings or the firm, deleted or voided before it synced, failed with an open error, unsynced by an
  admin) makes the record **skipped** with a reason that names the prerequisite and why
  (:meth:`DependencyGate.held_back`), its prerequisites kept (``waiting_on``) and its event stored: when
  that prerequisite later syncs, :meth:`DependencyGate.after_sync` releases skipped dependents like blocked
  ones and the record syncs by itself. The other direction: when a record becomes skipped or failed, the
  records blocked on it run again (:meth:`DependencyGate.after_skip`, :meth:`DependencyGate.after_failure`)
  and settle the same way, so a chain (payment → invoice → account) settles link by link.

Log lines keep the logger ``qbsync.outbound.service``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, Protocol

from qbsync import vocab
from qbsync.adapters.sqs import SqsMessage
from qbsync.errors import QbsyncError
from qbsync.models.platform_events import PlatformEvent, Refund
from qbsync.models.record_key import RecordKey
from qbsync.outbound import mapping
from qbsync.outbound.batch import current_scope
from qbsync.outbound.job import NO_ACTIVITY, Job, Outcome, event_envelope, log_context
from qbsync.outbound.mapping import Resolved
from qbsync.outbound.status import StatusReporter
from qbsync.qbo.client import QboClient
from qbsync.repositories.records import (
    ACTIVITY_CAP,
    BLOCKED,
    FAILED,
    NOT_SYNCED,
    SKIPPED,
    SYNCED,
    RecordsRepository,
    SyncRecord,
    UnsyncedActivity,
)

__all__ = ["DependencyGate", "Sender", "no_activity_reason", "will_not_sync"]

#: the statuses in which a record waits on a prerequisite (and is released when it syncs)
WAITING = (BLOCKED, SKIPPED)

logger = logging.getLogger("qbsync.outbound.service")


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


class DependencyGate:
    """Blocks records on their prerequisites and releases them when these sync (see the module doc).

    Args:
        records: the records repository (state and the stored events of blocked records).
        requeue: sends re-enqueued events to the outbound queue (``SqsSender``).
        status: announces a synced record (:class:`~qbsync.outbound.status.StatusReporter`).
        clock: epoch seconds; ``owner_id``: this worker's lease owner.
    """

    def __init__(
        self,
        *,
        records: RecordsRepository,
        requeue: Sender,
        status: StatusReporter,
        clock: Callable[[], float],
        owner_id: str,
    ) -> None:
        self._records = records
        self._requeue = requeue
        self._status = status
        self._clock = clock
        self._owner = owner_id

    # ------------------------------------------------------------------ prerequisites

    def prerequisite_keys(self, job: Job) -> list[RecordKey]:
        """The records :meth:`prerequisites` reads for the job (none for a delete or void)."""
        record = job.record
        if record is None:
            return []
        keys = [
            job.key.sibling(vocab.RECORD_TYPE_OF[entity], dep_id)
            for entity, dep_id in mapping.dependencies(record)
        ]
        if isinstance(record, Refund) and record.account_id:
            keys.append(job.key.sibling("client_account", record.account_id))
        return keys

    def _seen(self, job: Job, key: RecordKey) -> SyncRecord | None:
        """The record as the job's read before the claim saw it, else a consistent read now."""
        return job.seen[key] if key in job.seen else self._records.get(key)

    def prerequisites(self, job: Job, record: Any, qbo: QboClient) -> tuple[list[tuple[str, str]], Resolved]:
        """The prerequisites not in QuickBooks yet (``waiting``) and the QBO ids of the others (from the
        job's read before its claim, :meth:`prerequisite_keys`; a blocked record re-checks them afresh)."""
        resolved = Resolved()
        waiting: list[tuple[str, str]] = []
        for dep_entity, dep_id in mapping.dependencies(record):
            dep_type = vocab.RECORD_TYPE_OF[dep_entity]
            found = self._seen(job, job.key.sibling(dep_type, dep_id))
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
                account = self._seen(job, job.key.sibling("client_account", account_id))
                if account is None or not account.qbo_id:
                    waiting.append(("client_account", account_id))
                else:
                    resolved.customer_id = account.qbo_id
        return waiting, resolved

    def held_back(self, job: Job, waiting: list[tuple[str, str]]) -> str | None:
        """Why the job's record cannot sync as things stand: the skip reason naming each prerequisite of
        ``waiting`` that will not reach QuickBooks (:func:`will_not_sync`), or None when all are on their way.
        """
        reasons = []
        for dep_type, dep_id in waiting:
            why = will_not_sync(self._records.get(job.key.sibling(dep_type, dep_id)))
            if why is not None:
                reasons.append(f"{_label(dep_type)} {dep_id} {why}")
        if not reasons:
            return None
        return (
            f"{WAITING_ON}: waiting on {'; and on '.join(reasons)}. This {_label(job.entity_type)} syncs by "
            "itself once that syncs"
        )

    def has_activity(self, job: Job) -> bool:
        """Some record is blocked on the job's client account."""
        return any(True for _ in self._records.blocked_on(job.key.sibling("client_account", job.platform_id)))

    # ------------------------------------------------------------------ accounts without activity

    def account_reason(self, job: Job, start: date | None) -> str:
        """The skip reason of the job's account, which has no activity: what it has instead, if anything."""
        return no_activity_reason(self._records.unsynced_activity(job.key), start)

    def recheck_account_reason(self, job: Job, start: date | None, written: str) -> None:
        """After the account was skipped with ``written``: an invoice noted in between (it read the account
        before the skip) is counted now."""
        activity = self._records.unsynced_activity(job.key)
        reason = no_activity_reason(activity, start)
        if reason != written:
            self._records.set_skip_reason(
                job.key, reason, prefix=NO_ACTIVITY, activity_revision=activity.revision
            )

    def note_unsynced_invoice(self, job: Job, account_id: str, kind: str, start: date | None) -> None:
        """The job's invoice was skipped as ``kind`` (``draft``, ``before_start``): note it beside its
        account, whose no-activity reason then says so. An account already in QuickBooks needs no note."""
        account = job.key.sibling("client_account", account_id)
        found = self._records.get(account)
        if found is not None and found.qbo_id and found.status != SKIPPED:
            return
        activity = self._records.note_unsynced_activity(account, job.platform_id, kind, now=self._clock())
        found = self._records.get(account)  # after the note: an account skipped before it is re-explained
        if found is None or found.status != SKIPPED or not (found.skip_reason or "").startswith(NO_ACTIVITY):
            return
        self._records.set_skip_reason(
            account,
            no_activity_reason(activity, start),
            prefix=NO_ACTIVITY,
            activity_revision=activity.revision,
        )

    def block(self, job: Job, waiting: list[tuple[str, str]]) -> Outcome:
        """Store the event, mark the record ``blocked`` on ``waiting``, re-check, wake skipped accounts."""
        self.store_event(job)
        self._records.mark_blocked(
            job.key,
            owner=self._owner,
            waiting_on=waiting,
            now=self._clock(),
            drop_intent=job.unsent_intent,
        )
        logger.info("record blocked on prerequisites", extra=log_context(job, waiting_on=len(waiting)))
        still = []
        wake: list[tuple[str, str]] = []
        settled = False  # a prerequisite synced, or became one that will not sync, in between
        for dep_type, dep_id in waiting:
            found = self._records.get(job.key.sibling(dep_type, dep_id))
            if found is not None and found.qbo_id and found.status != SKIPPED:
                continue
            still.append((dep_type, dep_id))
            settled = settled or will_not_sync(found) is not None
            if (
                found is not None
                and found.status == SKIPPED
                and (found.skip_reason or "").startswith(NO_ACTIVITY)
            ):
                wake.append((dep_type, dep_id))  # an account waiting for activity: it has some now
        # one wake per skipped account (the first dependent that blocks on it sends it; the others see the
        # mark); everything synced in between, or a prerequisite settled (its own release of dependents
        # may have read gsi2 before this block): run again, unless another worker sent it already
        released = self.requeue_stored(job, wake, statuses=(SKIPPED,))
        if not still or settled:
            released += self.requeue_stored(job, [(job.entity_type, job.platform_id)], statuses=(BLOCKED,))
        return Outcome(
            "blocked", job.entity_type, job.platform_id, waiting_on=tuple(still), released=released
        )

    def after_skip(self, job: Job, reason: str, waiting_on: Iterable[tuple[str, str]] = ()) -> int:
        """A skipped record. An account skipped for no activity that has dependents now runs again; any
        other skip lets the records blocked on it settle (they run again and are skipped naming it). A
        record skipped behind prerequisites (``waiting_on``) re-checks them: one that synced in between
        (its release may have read gsi2 before this skip) makes it run again.
        """
        me = [(job.entity_type, job.platform_id)]
        if reason.startswith(NO_ACTIVITY):
            if self.has_activity(job):
                # an invoice or payment blocked on this account while we decided (its re-check saw the
                # account mid-claim, not skipped, so it did not wake it): run again, now with activity
                return self.requeue_stored(job, me, statuses=(SKIPPED,))
            return 0
        released = self._settle_dependents(job)
        waiting = list(waiting_on)
        if waiting and self.prerequisites_synced(job, waiting, but=None):
            released += self.requeue_stored(job, me, statuses=(SKIPPED,))
        return released

    def after_failure(self, job: Job) -> int:
        """A record failed with an open error: the records blocked on it run again and are skipped naming
        it (they come back when it syncs)."""
        return self._settle_dependents(job)

    def _settle_dependents(self, job: Job) -> int:
        dependents = [(r.entity_type, r.platform_id) for r in self._records.blocked_on(job.key)]
        return self.requeue_stored(job, dependents, statuses=(BLOCKED,))

    # ------------------------------------------------------------------ release

    def after_sync(self, job: Job, synced: SyncRecord, event: PlatformEvent) -> int:
        """Close the error, announce the status, release the records blocked on this one.

        Dependents blocked on it, and those skipped behind it (it would not sync before), are released: only
        one whose every prerequisite is in QuickBooks now (the others are released by their last
        prerequisite), and only by one worker (:meth:`RecordsRepository.mark_requeued`). Once
        all are sent the record notes ``released_version``: a redelivery of the same version (an
        ``already_synced`` run) releases nothing again. A crash before that note leaves the release to the
        redelivered message, which sends again what it had marked and releases what it had not reached.
        """
        if synced.status != SYNCED:
            return 0
        self._status.synced(job, synced)
        version = synced.platform_version
        if synced.error_open and version is not None:
            self._records.clear_error_open(job.key, version=version)  # after the resolve: redone if lost
        if version is not None and synced.released_version == version:
            return 0
        scope = current_scope()
        if scope is not None:
            # one release pass for the batch's synced records when it closes (qbsync.outbound.batch)
            scope.defer("release", (job, version), self._release_batch)
            return 0
        return self._release([(job, version)])

    def _release_batch(self, synced: list[tuple[Job, int | None]]) -> None:
        by_realm: dict[tuple[str, str], list[tuple[Job, int | None]]] = {}
        for job, version in synced:
            by_realm.setdefault((job.firm_id, job.realm_id), []).append((job, version))
        for group in by_realm.values():
            self._release(group)

    def _release(self, synced: list[tuple[Job, int | None]]) -> int:
        """Release the records waiting on any of ``synced`` (records of one realm just synced, with their
        versions): one query per waiting status for them all. Each ready dependent is sent by the first
        synced record it names; a synced record that released any notes ``released_version``."""
        jobs = {job.key.local: job for job, _ in synced}
        ready: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for dependent in self._records.waiting_on_any([job.key for job, _ in synced], statuses=WAITING):
            names = [p for p in dependent.waiting_on if p in jobs]
            if names and self.prerequisites_synced(jobs[names[0]], dependent.waiting_on, but=jobs.keys()):
                ready.setdefault(names[0], []).append(dependent.key.local)
        released = 0
        for job, version in synced:
            targets = ready.get(job.key.local, [])
            if not targets:
                continue
            released += self.requeue_stored(job, targets, statuses=WAITING)
            if version is not None:
                self._records.mark_released(job.key, version=version)
        return released

    def prerequisites_synced(
        self, job: Job, waiting_on: Iterable[tuple[str, str]], *, but: Iterable[tuple[str, str]] | None
    ) -> bool:
        """Every prerequisite (but those of ``but``, synced by this worker) is in QuickBooks (consistent
        reads)."""
        synced_here = set(but or ())
        for dep_type, dep_id in waiting_on:
            if (dep_type, dep_id) in synced_here:
                continue
            found = self._records.get(job.key.sibling(dep_type, dep_id))
            if found is None or not found.qbo_id or found.status == SKIPPED:
                return False
        return True

    # ------------------------------------------------------------------ stored events

    def store_event(self, job: Job) -> None:
        """Keep the event on the record item so it can be re-enqueued when the record may proceed."""
        self._records.store_pending_event(job.key, event_envelope(job.event))

    def requeue_stored(self, job: Job, targets: list[tuple[str, str]], *, statuses: tuple[str, ...]) -> int:
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
            logger.info("stored events re-enqueued", extra=log_context(job, released=len(messages)))
        return len(messages)

    def release_quietly(self, job: Job, status: str) -> None:
        """Give up the job's lease back to ``status``; a lease that is not ours any more is fine."""
        # not ours any more (the writer released or finished it), or the lease expires by itself
        with contextlib.suppress(QbsyncError):
            self._records.release(
                job.key,
                owner=self._owner,
                status=status if status != "syncing" else "not_synced",
                now=self._clock(),
                drop_intent=job.unsent_intent,
            )


#: the start of the skip reason of a record skipped behind a prerequisite that will not sync
WAITING_ON = "waiting_on_prerequisite"


def will_not_sync(prerequisite: SyncRecord | None) -> str | None:
    """Why a prerequisite will not reach QuickBooks as things stand (to finish "<type> <id> …"), or None
    when it is in QuickBooks or on its way: its event has not arrived yet, it is being synced, blocked
    itself (it settles and its dependents with it), or an account waiting for activity (woken by its
    dependents)."""
    if prerequisite is None:
        return None
    status, reason = prerequisite.status, prerequisite.skip_reason or ""
    if status == SKIPPED:
        if reason.startswith(NO_ACTIVITY):
            return None
        if reason.startswith(WAITING_ON):
            return "is skipped: it waits on a record that will not sync"
        return f"is skipped ({reason[:200]})"
    if prerequisite.qbo_id:
        return None
    if status == FAILED:
        category = prerequisite.error.category if prerequisite.error else ""
        where = f" ({category.capitalize()})" if category else ""
        return f"failed: its error is in the error center{where}"
    if status == NOT_SYNCED and prerequisite.epoch > 0:
        # detached from its QuickBooks object by an admin's unsync and not synced again since
        return "was unsynced from QuickBooks: sync it again"
    return None


def _count(n: int, one: str, many: str) -> str:
    shown = f"at least {n}" if n >= ACTIVITY_CAP else str(n)
    return f"{shown} {one if n == 1 else many}"


def no_activity_reason(activity: UnsyncedActivity, start: date | None) -> str:
    """The skip reason of an account without activity: what it has instead (invoices skipped as drafts or
    dated before the sync start date), or that it has nothing yet."""
    if not activity.any:
        return f"{NO_ACTIVITY}: the client account has no invoices or payments yet"
    parts = []
    if activity.drafts:
        parts.append(_count(activity.drafts, "draft invoice", "draft invoices"))
    if activity.before_start:
        after = f" {start.isoformat()}" if start is not None else ""
        what = "dated before the sync start date" + after
        if activity.drafts:
            parts.append(_count(activity.before_start, what, what))
        else:
            parts.append(_count(activity.before_start, f"invoice {what}", f"invoices {what}"))
    return (
        f"{NO_ACTIVITY}: no invoices or payments that sync: {' and '.join(parts)}. The client account syncs "
        "by itself once one of its invoices or payments does"
    )


def _label(record_type: str) -> str:
    return record_type.replace("_", " ")


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("value") is not None:
        return str(value["value"])
    return None
