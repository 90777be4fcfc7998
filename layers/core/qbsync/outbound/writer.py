"""Exactly-once writes of one platform record to QuickBooks (PRODUCT.md C.7, QBO.md §2.4 and §9.3).

:class:`ExactlyOnceWriter` turns "apply version V of record X with operation O" into at most one effect in
QBO, whatever happens around it (SQS redelivery, a second worker, a crash, a lost response):

1. **Lease.** One claim per run of a record: :meth:`ExactlyOnceWriter.write` takes the record's lease
   (:meth:`RecordsRepository.claim`) for a record nobody holds (a credit application, an unsync delete);
   the outbound orchestrator, which claims its record itself before it maps it, hands the held record to
   :meth:`ExactlyOnceWriter.write_claimed`, which only renews the lease before the call (the error center's
   "create a new customer" does the same, with its own :class:`WriteRequest` salt; an object of ours found in
   QBO beforehand is linked with :meth:`ExactlyOnceWriter.adopt_claimed`). Another live lease →
   :class:`~qbsync.errors.LeaseHeld`; an older version than the applied one → outcome ``stale`` (skip);
   the same version already synced with nothing in flight → outcome ``already_synced`` (redelivery).
2. **Deterministic requestid.** ``write_request_id(key, operation, version)`` (``request_id_for`` of the
   record key's parts, the operation and the version): every retry, redelivery or second worker of the
   same logical write sends the same id, so QBO replays the original answer instead of writing twice.
3. **Durable intent before the call.** ``intent_*`` (op, version, requestid, SyncToken sent) is written on
   the record before QBO is called and cleared in the same UpdateItem that records the outcome. The
   orchestrator's claim of a create notes it with the lease (:func:`create_intent`, one write less per
   record); the writer then sends under that intent (:attr:`~qbsync.repositories.records.Intent.fresh`)
   without writing it again, and an outcome reached without sending removes it.
4. **Resolve a leftover intent first.** A record that still shows an intent had a write whose outcome was
   never recorded (crash between the QBO write and our state write, or :class:`UncertainOutcome`). For a
   create, ``find_existing(qbo)`` (a QBO lookup by business key + the ``qbsync:{entity_type}:{platform_id}``
   marker) is asked first and a found object is adopted instead of creating; otherwise the write is resent
   with the intent's requestid (and SyncToken) when it is the same logical write.
5. **Outcomes.** success → ``synced`` (Id, SyncToken, deep link); :class:`UncertainOutcome` → the intent
   stays, the lease is released, re-raised (SQS redelivers); :class:`StaleObject` (5010) on
   update/delete/void → the object is re-read and the write resent once with its SyncToken; any other
   :class:`DataError` → ``failed`` with QBO's code and message, re-raised; :class:`ReconnectRequired` /
   :class:`RetryableError` → released (not failed), re-raised.

Updates are sparse and carry the record's ``Id`` and stored ``SyncToken`` (overriding the payload's). A
``create`` of a record that already has a QBO object becomes a sparse update of that object (a duplicate
create is never sent).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qbsync import vocab
from qbsync.errors import (
    DataError,
    QbsyncError,
    ReconnectRequired,
    RetryableError,
    ServiceUnavailable,
    StaleObject,
    UncertainOutcome,
)
from qbsync.models.record_key import RecordKey
from qbsync.qbo.client import QboClient, deep_link, request_id_for
from qbsync.repositories.records import (
    NOT_SYNCED,
    OPERATIONS,
    SYNCING,
    ClaimOptions,
    ClaimOutcome,
    Intent,
    QboLink,
    RecordError,
    RecordsRepository,
    SyncRecord,
)

__all__ = [
    "ExactlyOnceWriter",
    "FindExisting",
    "WriteOutcome",
    "WriteRequest",
    "create_intent",
    "marker",
    "write_request_id",
]

logger = logging.getLogger("qbsync.outbound.writer")

#: Looks the record's object up in QBO (business key + marker); returns the QBO object or None.
FindExisting = Callable[[QboClient], dict[str, Any] | None]

DEFAULT_LEASE_SECONDS = 120.0


def marker(entity_type: str, platform_id: str) -> str:
    """The qbsync marker written into ``PrivateNote`` (``Notes`` on name lists) of every object we create."""
    return f"qbsync:{entity_type}:{platform_id}"


def write_request_id(key: RecordKey, operation: str, version: int, *parts: object, epoch: int = 0) -> str:
    """The deterministic QBO ``requestid`` of one logical write.

    ``epoch`` (the record's unsync count) salts the id once the record was detached from an earlier QBO
    object: QBO remembers request ids and would replay the deleted object's answer to a re-sync at the
    same platform version. Records never unsynced (epoch 0) keep their original ids.
    """
    salt = ("epoch", epoch) if epoch else ()
    return request_id_for(
        key.firm_id, key.realm_id, key.record_type, key.platform_id, operation, version, *parts, *salt
    )


def create_intent(key: RecordKey, version: int, now: float) -> Callable[[SyncRecord | None], Intent | None]:
    """The intent the claim of a create notes with the lease (``ClaimOptions.intent``): for a record with no
    QBO object, the create this writer sends for it - the same requestid
    :meth:`ExactlyOnceWriter.write_claimed` computes (no salt, the record's epoch) - so the writer does not
    write it again before the call."""

    def intent(current: SyncRecord | None) -> Intent | None:
        if current is not None and current.qbo_id is not None:
            return None  # the writer turns the create into an update of the object
        epoch = current.epoch if current is not None else 0
        return Intent("create", version, write_request_id(key, "create", version, epoch=epoch), None, at=now)

    return intent


@dataclass(frozen=True)
class WriteRequest:
    """One logical write of a held record: apply ``version`` with ``operation`` to its ``qbo_entity``.

    ``payload`` is the QBO body (create/update; the mapper's output, including the marker);
    ``find_existing`` looks up an object an earlier attempt may have created. Two fields are for writes
    that are not the outbound sync's own (the error center's "create a new customer"):

    * ``salt``: extra parts of the deterministic requestid. QBO remembers request ids and replays their
      answer, so a write the firm asked for after the sync's create was refused must not reuse the sync's
      id (it would get the refusal back); the same salt on a repeat of the request replays its own answer.
    * ``keep_error``: a refusal leaves the record's existing error (the one the firm is fixing) in place
      instead of replacing it with QBO's answer to this write.

    ``note_of``: given the QBO object the record is linked to (the write's answer, or the object adopted),
    how it landed differently from the platform record (kept as the record's ``note``), or None.
    ``observe``: told the effective operation and requestid before each call (a 5010 resend is a second).
    """

    version: int
    operation: str
    qbo_entity: str
    payload: dict[str, Any]
    find_existing: FindExisting | None = None
    salt: tuple[str, ...] = ()
    keep_error: bool = False
    note_of: Callable[[dict[str, Any]], str | None] | None = None
    #: told ``(operation, requestid)`` just before each call to QuickBooks (the run's timeline)
    observe: Callable[[str, str], None] | None = None


@dataclass(frozen=True)
class _Send:
    """What one call to QBO sends: the effective operation, the object, its SyncToken, the requestid."""

    op: str
    qbo_id: str | None
    sync_token: str | None
    request_id: str


@dataclass
class _Attempt:
    """Per-call bookkeeping: whether this call has its own intent durable yet, and whether it called QBO."""

    noted: bool = False
    sent: bool = False


@dataclass(frozen=True)
class WriteOutcome:
    """What :meth:`ExactlyOnceWriter.write` did.

    ``status``: ``synced`` (written now, or QBO replayed the earlier answer), ``adopted`` (an object left
    by an earlier attempt was found and linked instead of writing), ``already_synced`` (this version was
    already applied: redelivery), ``stale`` (an older version than the applied one: skipped).
    """

    status: str
    record: SyncRecord
    operation: str
    request_id: str | None
    qbo_object: dict[str, Any] | None = field(default=None, repr=False)


class ExactlyOnceWriter:
    """Writes records to one realm's QBO company exactly once.

    Args:
        records: the records repository.
        qbo: the realm's QBO client.
        clock: epoch seconds now (injected; tests pass a fake).
        owner_id: this worker's lease owner id (unique per invocation/worker).
        app_base_url: ``QBO_APP_BASE_URL`` for deep links.
        lease_seconds: how long a claim protects the record (longer than one write incl. retries).
    """

    def __init__(
        self,
        records: RecordsRepository,
        qbo: QboClient,
        clock: Callable[[], float],
        owner_id: str,
        *,
        app_base_url: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if not owner_id:
            raise ValueError("owner_id is required")
        if not app_base_url:
            raise ValueError("app_base_url is required (deep links)")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._records = records
        self._qbo = qbo
        self._clock = clock
        self._owner = owner_id
        self._app_base_url = app_base_url
        self._lease_seconds = lease_seconds

    def write(
        self,
        key: RecordKey,
        version: int,
        operation: str,
        qbo_entity: str,
        payload: dict[str, Any],
        find_existing: FindExisting | None = None,
    ) -> WriteOutcome:
        """Apply ``version`` of the record with ``operation`` (create/update/delete/void) exactly once.

        ``payload`` is the QBO body (for create/update; the mapper's output, including the marker);
        ``find_existing`` looks up an object an earlier attempt may have created.

        Raises:
            LeaseHeld: another worker is syncing the record (retry later).
            Conflict: the record changed under us or our lease was lost (retry later).
            UncertainOutcome: QBO's answer was lost; the intent is kept, retry (the same requestid is reused).
            DataError (incl. QboValidationError, StaleObject after one resend, QboObjectNotFound): the record
                is marked failed with QBO's code and message.
            ReconnectRequired / RetryableError: lease released, record not failed.
            ValueError: invalid arguments (nothing written).
        """
        request = WriteRequest(version, operation, qbo_entity, payload, find_existing)
        self._check_write(key.realm_id, request)

        claim = self._records.claim(
            key,
            version=version,
            owner=self._owner,
            lease_seconds=self._lease_seconds,
            now=self._clock(),
            options=ClaimOptions(operation),
        )
        if claim.outcome is ClaimOutcome.STALE:
            logger.info("stale version skipped", extra=_log_ctx(claim.record, version))
            return WriteOutcome("stale", claim.record, operation, None)
        if claim.outcome is ClaimOutcome.ALREADY_APPLIED:
            return WriteOutcome("already_synced", claim.record, operation, None)

        return self._write_held(claim.record, request)

    def write_claimed(self, record: SyncRecord, request: WriteRequest) -> WriteOutcome:
        """:meth:`write` for a record whose lease the caller already holds under this writer's owner (the
        orchestrator claimed it to run the record, an error action claimed it to create its customer): the
        lease is renewed, not taken again, so one run of a record is one claim (``attempts`` counts runs).
        Same outcomes and errors as :meth:`write`.
        """
        self._check_write(record.realm_id, request)
        renewed = self._renew(record)
        return self._write_held(renewed, request)

    def adopt_claimed(self, record: SyncRecord, request: WriteRequest, found: dict[str, Any]) -> WriteOutcome:
        """Link a held record to ``found``, an object of this record already in QBO (its marker names the
        record: a lost earlier create), instead of writing: outcome ``adopted``, nothing sent to QBO.
        """
        self._check_write(record.realm_id, request)
        renewed = self._renew(record)
        qbo_id, sync_token = _id_and_token(found)
        logger.info("adopted object of an earlier attempt", extra=_log_ctx(record, request.version))
        synced = self._synced(renewed, request, qbo_id, sync_token, obj=found)
        return WriteOutcome("adopted", synced, request.operation, None, found)

    def _renew(self, record: SyncRecord) -> SyncRecord:
        """Extend the held lease before the call, unless more than half of it is left (a run that claimed a
        moment ago): the intent write that follows is conditional on the lease anyway, so a lease lost
        meanwhile still stops the write before QuickBooks is called."""
        if record.owner != self._owner or record.status != SYNCING:
            raise ValueError("the record's lease must be held by this writer's owner")
        if record.lease_until is not None and record.lease_until - self._clock() > self._lease_seconds / 2:
            return record
        renewed = self._records.renew(
            record.key, owner=self._owner, lease_seconds=self._lease_seconds, now=self._clock()
        )
        if record.fresh_intent and renewed.intent is not None:
            # the claim's own intent, still unsent: renewing the lease does not make it a leftover
            renewed = dataclasses.replace(renewed, intent=record.intent)
        return renewed

    def _check_write(self, realm_id: str, request: WriteRequest) -> None:
        """ValueError before anything is written: unknown operation, empty payload, another realm."""
        operation, payload = request.operation, request.payload
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {list(OPERATIONS)}")
        if operation in ("create", "update") and (not isinstance(payload, dict) or not payload):
            raise ValueError(f"a {operation} needs a non-empty payload")
        if realm_id != self._qbo.realm_id:
            raise ValueError("realm_id does not match the QBO client's realm")

    def _write_held(self, record: SyncRecord, request: WriteRequest) -> WriteOutcome:
        """The write under a held lease: steps 2-5 of the module doc."""
        rest_status = record.prev_status or NOT_SYNCED
        attempt = _Attempt()
        try:
            return self._apply(attempt, record, request)
        except UncertainOutcome:
            self._release(record, rest_status, attempt)
            raise
        except DataError as err:
            # keep an earlier, unresolved intent (this attempt failed before replacing it), and keep ours
            # when an earlier try of it may have been applied
            keep = err.maybe_applied or (record.leftover_intent is not None and not attempt.noted)
            self._fail(record, err, keep_intent=keep, keep_error=request.keep_error)
            raise
        except (ReconnectRequired, RetryableError):
            self._release(record, rest_status, attempt)
            raise
        except BaseException:
            self._release(record, rest_status, attempt)
            raise

    # ------------------------------------------------------------------ steps

    def _apply(self, attempt: _Attempt, record: SyncRecord, request: WriteRequest) -> WriteOutcome:
        operation, version, qbo_entity = request.operation, request.version, request.qbo_entity
        qbo_id, sync_token = (
            (record.qbo_id, record.sync_token) if record.qbo_entity == qbo_entity else (None, None)
        )
        intent = record.intent
        leftover = record.leftover_intent

        finder = request.find_existing
        if leftover is not None and qbo_id is None and leftover.operation == "create" and finder is not None:
            found = finder(self._qbo)
            if found is not None:
                qbo_id, sync_token = _id_and_token(found)
                logger.info("adopted object of an earlier attempt", extra=_log_ctx(record, version))
                if operation == "create" and version <= leftover.version:
                    adopted = WriteRequest(
                        leftover.version, operation, qbo_entity, request.payload, note_of=request.note_of
                    )
                    synced = self._synced(record, adopted, qbo_id, sync_token, obj=found)
                    return WriteOutcome("adopted", synced, operation, leftover.request_id, found)

        op = operation
        if op == "create" and qbo_id is not None:
            op = "update"  # the object exists: never create a duplicate
        if op != "create" and qbo_id is None:
            raise DataError(
                f"cannot {op} {record.entity_type}: it has no QuickBooks object yet",
                firm_id=record.firm_id,
                realm_id=record.realm_id,
                entity=record.entity_type,
                entity_id=record.platform_id,
                reason="no_qbo_object",
            )
        request_id = write_request_id(record.key, op, version, *request.salt, epoch=record.epoch)
        sent_token = sync_token
        if intent is not None and intent.operation == op and intent.version == version:
            # the same logical write was sent before: resend it exactly (same requestid, same SyncToken)
            # so QBO replays the original answer if it was applied
            request_id = intent.request_id
            if op != "create" and intent.sync_token is not None:
                sent_token = intent.sync_token

        return self._send_with_intent(attempt, record, request, _Send(op, qbo_id, sent_token, request_id))

    def _send_with_intent(
        self, attempt: _Attempt, record: SyncRecord, request: WriteRequest, send: _Send
    ) -> WriteOutcome:
        version, qbo_entity = request.version, request.qbo_entity
        op, qbo_id = send.op, send.qbo_id
        self._note_intent(attempt, record, send, version)
        try:
            attempt.sent = True
            obj = self._send(qbo_entity, request, send)
        except StaleObject as err:
            if op == "create" or qbo_id is None or err.maybe_applied:
                raise
            # 5010: someone changed the object in QBO. Re-read, take its SyncToken, resend once. The resend
            # gets its own deterministic requestid (QBO may remember the failed one's answer).
            fresh = self._qbo.read(qbo_entity, qbo_id)
            _, fresh_token = _id_and_token(fresh)
            request_id = write_request_id(
                record.key, op, version, *request.salt, "synctoken", fresh_token, epoch=record.epoch
            )
            send = _Send(op, qbo_id, fresh_token, request_id)
            self._note_intent(attempt, record, send, version)
            obj = self._send(qbo_entity, request, send)
        new_id, new_token = _id_and_token(obj) if obj.get("Id") else (qbo_id, None)
        if new_id is None:
            raise UncertainOutcome(
                "QuickBooks answered a write without the object's Id",
                realm_id=record.realm_id,
                entity=qbo_entity,
            )
        if op == "delete":
            new_token = None
        synced = self._synced(record, request, new_id, new_token, obj=obj, link=op != "delete")
        return WriteOutcome("synced", synced, op, send.request_id, obj)

    def _send(self, qbo_entity: str, request: WriteRequest, send: _Send) -> dict[str, Any]:
        op, qbo_id, sync_token, request_id = send.op, send.qbo_id, send.sync_token, send.request_id
        payload = request.payload
        if request.observe is not None:
            request.observe(op, request_id)
        if op == "create":
            return self._qbo.create(qbo_entity, payload, request_id=request_id)
        assert qbo_id is not None
        if sync_token is None:
            # no token known (adopted without one): read it rather than guess
            sync_token = _id_and_token(self._qbo.read(qbo_entity, qbo_id))[1]
        if sync_token is None:
            raise ServiceUnavailable(f"QuickBooks returned {qbo_entity} {qbo_id} without a SyncToken")
        if op == "update":
            body = {**payload, "Id": qbo_id, "SyncToken": sync_token}
            body.pop("sparse", None)
            return self._qbo.update(qbo_entity, body, request_id=request_id, sparse=True)
        if op == "delete":
            return self._qbo.delete(qbo_entity, qbo_id, sync_token, request_id=request_id)
        return self._qbo.void(qbo_entity, qbo_id, sync_token, request_id=request_id)

    def _note_intent(self, attempt: _Attempt, record: SyncRecord, send: _Send, version: int) -> None:
        claimed = record.intent
        if (
            not attempt.noted
            and claimed is not None
            and claimed.fresh
            and (claimed.operation, claimed.version, claimed.request_id, claimed.sync_token)
            == (send.op, version, send.request_id, send.sync_token)
        ):
            attempt.noted = True  # the claim noted exactly this write with the lease: it is durable
            return
        self._records.record_intent(
            record.key,
            owner=self._owner,
            intent=Intent(send.op, version, send.request_id, send.sync_token, at=self._clock()),
        )
        attempt.noted = True

    def _synced(
        self,
        record: SyncRecord,
        request: WriteRequest,
        qbo_id: str,
        sync_token: str | None,
        *,
        obj: dict[str, Any] | None = None,
        link: bool = True,
    ) -> SyncRecord:
        """Mark the record synced at the request's version (the operation the caller asked for), with the
        request's note on ``obj`` (the QBO object) when it has one."""
        url: str | None = None
        if link:
            try:
                url = deep_link(self._app_base_url, request.qbo_entity, qbo_id, realm_id=record.realm_id)
            except ValueError:
                url = None  # entities without a web-app page (Item)
        return self._records.mark_synced(
            record.key,
            owner=self._owner,
            version=request.version,
            link=QboLink(
                request.qbo_entity,
                qbo_id,
                sync_token,
                url,
                note=request.note_of(obj) if request.note_of is not None and obj is not None else None,
            ),
            now=self._clock(),
            operation=request.operation,
        )

    def _fail(self, record: SyncRecord, err: DataError, *, keep_intent: bool, keep_error: bool) -> None:
        error = (
            record.error
            if keep_error and record.error is not None
            else RecordError(
                code=err.code,
                category=vocab.record_error_category(record.entity_type),
                message=(err.qbo_detail or err.message)[:1000],
                qbo_code=err.qbo_code,
            )
        )
        try:
            self._records.mark_failed(
                record.key,
                owner=self._owner,
                error=error,
                now=self._clock(),
                keep_intent=keep_intent,
            )
        except QbsyncError:
            logger.warning("could not mark the record failed", extra=_log_ctx(record, None))

    def _release(self, record: SyncRecord, status: str, attempt: _Attempt) -> None:
        try:
            self._records.release(
                record.key,
                owner=self._owner,
                status=status,
                now=self._clock(),
                # the claim's own intent, and QBO was never called: nothing is left to resolve
                drop_intent=record.fresh_intent and not attempt.sent,
            )
        except QbsyncError:
            # the lease expires by itself; the original error is what the caller must see
            logger.warning("could not release the record lease", extra=_log_ctx(record, None))


def _id_and_token(obj: dict[str, Any]) -> tuple[str, str | None]:
    qbo_id = obj.get("Id")
    if not qbo_id:
        raise UncertainOutcome("QuickBooks returned an object without an Id")
    token = obj.get("SyncToken")
    return str(qbo_id), None if token is None else str(token)


def _log_ctx(record: SyncRecord, version: int | None) -> dict[str, Any]:
    return {
        "firm_id": record.firm_id,
        "realm_id": record.realm_id,
        "entity_type": record.entity_type,
        "platform_id": record.platform_id,
        "version": version,
    }
