"""Admin actions on single records and on account / service errors (PRODUCT.md C.1, C.4, C.6, E.3).

:class:`RecordActions` is what the admin API's action routes (:mod:`qbsync.api.actions_routes`) call. Every
method takes the verified :class:`~qbsync.auth.Caller` (firm and role come only from there), checks the role
(owner or admin; the customer search is a read but calls QuickBooks, so it is owner/admin too), and raises
typed errors the API maps once: :class:`~qbsync.errors.NotFound` (unknown id, or another firm's),
:class:`~qbsync.errors.Conflict` (the state forbids the action; the message says what to do first),
:class:`~qbsync.errors.BadRequest` (bad input), :class:`~qbsync.errors.Forbidden` (role),
:class:`~qbsync.errors.RetryableError` / :class:`~qbsync.errors.UncertainOutcome` (QuickBooks did not
answer; repeating the same request is safe).

Manual sync (C.6) - :meth:`RecordActions.manual_sync`
    Allowed for ``not_synced``, ``failed``, ``skipped`` and ``blocked`` records. It does not sync inline: it
    sends a :class:`~qbsync.models.commands.SyncCommand` (``reason="manual_sync"``, ``force`` for a skipped
    record) to ``OutboundQueue``; the entity-sync worker re-runs the record's stored ``last_event`` through
    the normal path (dependencies, errors, exactly-once writer). Refused with 409 when it is synced or being
    synced, when qbsync holds no platform event for it, and - for invoices, payments and refunds - when the
    client account is not in QuickBooks ("sync the client account first").

Unsync of a payment (C.4) - :meth:`RecordActions.unsync_payment`
    Deletes in QuickBooks, in this order: the RefundReceipts of the payment's refunds, the credit
    application of a credit-balance payment (record ``credit_application``), then the Payment / CreditMemo.
    Each delete goes through :class:`~qbsync.outbound.writer.ExactlyOnceWriter` (lease, durable intent,
    deterministic ``requestid``): a repeated or concurrent unsync never deletes twice, a crash between the
    QuickBooks delete and our write is replayed by QBO's ``requestid`` memory, and an object already gone
    (610) counts as deleted. Each record is then detached (:meth:`RecordsRepository.detach_qbo`: status
    ``not_synced``, QBO id and reverse lookup removed, its platform version and history kept) and a
    "Sync Status Changed" (``not_synced``) event is published for the payment and each refund.
    Finding the refunds of a payment (:meth:`RecordsRepository.refunds_of_payment`) reads the realm's refund
    records (one gsi2 Query per status, filtered server-side on the payment id in ``last_event``): its
    cost grows with the number of refund records, which is fine for a rare manual action.

Account errors (C.1 / E.3), on an open error of a ``client_account`` record
    * :meth:`RecordActions.search_customers` - active QBO customers whose DisplayName contains the text.
    * :meth:`RecordActions.map_customer` - link the account to an existing, active customer that no other
      account of the firm is linked to (gsi1 reverse lookup).
    * :meth:`RecordActions.create_customer` - create a new customer from the account's last event, with an
      optional new DisplayName, exactly once: the ``requestid`` is derived from the error id (and the
      name), a durable intent is written on the record before the call, and a leftover intent is resent
      with its own ``requestid``.
    * :meth:`RecordActions.dont_sync` - the record becomes ``skipped`` with :data:`EXCLUDED_BY_FIRM`.
    Map and create then resolve the error (history says what was done and by whom), announce "Sync Status
    Changed" (synced) and "Sync Error Resolved", and release the records blocked on the account: each gets a
    SyncCommand (``reason="resync_error"``), so the sync service re-runs its stored event on the normal path
    (nothing of the service's release logic is duplicated here).

Service errors (E.3) - :meth:`RecordActions.delete_service`
    Publishes "Service Delete Requested" so the platform removes the failing service, and resolves the
    error with history "service deleted".

Invoice number too long (issue 11) - :meth:`RecordActions.let_qbo_number`
    On an open ``doc_number_too_long`` error: the invoice record gets the option ``qbo_numbers`` (every
    version from then on is sent without DocNumber: QuickBooks numbers it, or leaves it blank in a company
    with custom transaction numbers) and a SyncCommand (``reason="resync_error"``) re-runs its stored event
    on the normal path. The error stays open until that sync succeeds, which resolves it like any sync
    (history "let QuickBooks number it"). The firm's other choice - fixing the number on the platform -
    needs no action: the corrected "Invoice Updated" syncs and resolves the error by itself.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qbsync import vocab
from qbsync.auth import Caller, require_role
from qbsync.connection.clients import RealmClients
from qbsync.errors import (
    BadRequest,
    Conflict,
    DataError,
    LeaseHeld,
    NotFound,
    QboObjectNotFound,
    QboValidationError,
)
from qbsync.models.commands import SyncCommand
from qbsync.models.platform_events import ClientAccount, PlatformEvent, parse_platform_event
from qbsync.models.qbsync_events import (
    ServiceDeleteRequested,
    SyncErrorResolved,
    SyncStatusChanged,
)
from qbsync.models.record_key import RecordKey
from qbsync.outbound import mapping
from qbsync.outbound.lookups import find_existing
from qbsync.outbound.writer import DEFAULT_LEASE_SECONDS, ExactlyOnceWriter, WriteRequest
from qbsync.qbo.client import QboClient, deep_link, quote_literal
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.error_log import ErrorEntry, ErrorLogRepository
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.repositories.record_admin import RecordAdmin
from qbsync.repositories.records import (
    BLOCKED,
    EXCLUDED_BY_FIRM,
    FAILED,
    NOT_SYNCED,
    SKIPPED,
    SYNCED,
    SYNCING,
    ClaimOptions,
    ClaimOutcome,
    QboLink,
    RecordsRepository,
    SyncRecord,
)

__all__ = [
    "CLIENT_ACCOUNT_FIRST",
    "EXCLUDED_BY_FIRM",
    "NOT_RECEIVED",
    "AccountActionResult",
    "ManualSyncResult",
    "NumberingResult",
    "QboCustomer",
    "RecordActions",
    "ServiceActionResult",
    "UnsyncResult",
    "UnsyncedObject",
    "valid_display_name",
]

logger = logging.getLogger("qbsync.errorcenter.actions")

#: the exact refusal of a manual sync whose client account is not in QuickBooks (C.3)
CLIENT_ACCOUNT_FIRST = "sync the client account first"
#: refusal of a manual sync of a record qbsync holds no platform event for
NOT_RECEIVED = "qbsync has not received this record from the platform yet"
#: skip reason of an account the firm chose not to sync; later events keep it skipped until a manual sync

#: the reason code of an invoice number QuickBooks refuses (qbsync.outbound.mapping.invoice_payload)
DOC_NUMBER_TOO_LONG = "doc_number_too_long"
#: statuses a manual sync may start from (C.6)
MANUAL_SYNC_FROM = (NOT_SYNCED, FAILED, SKIPPED, BLOCKED)
_NEEDS_ACCOUNT = ("invoice", "payment", "refund")
_DISPLAY_NAME_MAX = 100
_DISPLAY_NAME_FORBIDDEN = re.compile(r"[:\t\n\r]")
_SEARCH_MAX_ROWS = 50
_QBO_ID = re.compile(r"^[0-9]{1,20}$")
_WRITE_ROLES = ("owner", "admin")


# --- ports -------------------------------------------------------------------------------------------


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


class Sender(Protocol):
    def send_many(self, messages: Iterable[Any]) -> Any: ...


class References(Protocol):
    def get(self, qbo: QboClient) -> Any: ...


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManualSyncResult:
    request_id: str
    status: str
    entity_type: str
    platform_id: str
    force: bool


@dataclass(frozen=True)
class UnsyncedObject:
    """One QuickBooks object an unsync removed: ``outcome`` ``deleted`` or ``already_deleted`` (610)."""

    entity_type: str
    platform_id: str
    qbo_entity: str
    qbo_id: str
    outcome: str


@dataclass(frozen=True)
class UnsyncResult:
    """``status``: ``unsynced`` (deleted now) or ``already_unsynced`` (a repeat: nothing to do)."""

    payment_id: str
    status: str
    deleted: list[UnsyncedObject] = field(default_factory=list)


@dataclass(frozen=True)
class QboCustomer:
    id: str
    display_name: str
    company_name: str | None
    balance: str
    active: bool


@dataclass(frozen=True)
class AccountActionResult:
    """``outcome``: ``mapped``, ``created``, ``excluded`` or ``already_done`` (a repeat of a finished one)."""

    error_id: str
    account_id: str
    outcome: str
    record_status: str
    qbo_customer_id: str | None = None
    deep_link: str | None = None
    released: int = 0


@dataclass(frozen=True)
class NumberingResult:
    """``let_qbo_number``: the invoice's resync is queued (``request_id``); the error resolves when it
    syncs."""

    error_id: str
    invoice_id: str
    request_id: str
    status: str = "queued"


@dataclass(frozen=True)
class ServiceActionResult:
    error_id: str
    service_id: str
    outcome: str


def valid_display_name(name: str) -> str:
    """A new customer DisplayName as QBO accepts it (trimmed). Raises BadRequest naming the rule broken."""
    if not isinstance(name, str):
        raise BadRequest("display_name must be a string")
    text = name.strip()
    if not text:
        raise BadRequest("display_name must not be empty")
    if len(text) > _DISPLAY_NAME_MAX:
        raise BadRequest(f"display_name must be at most {_DISPLAY_NAME_MAX} characters")
    if _DISPLAY_NAME_FORBIDDEN.search(text):
        raise BadRequest("display_name must not contain a colon, a tab or a line break")
    return text


# --- the actions -------------------------------------------------------------------------------------


class RecordActions:
    """Admin actions on records and errors (see the module doc).

    Args:
        connections: ``ConnectionsRepository`` (``get(firm_id)``).
        realm_clients: a QBO client per firm and realm (:class:`~qbsync.connection.clients.RealmClients`).
        records: the records repository (lease, intents); ``admin``: the records' admin changes (link,
            detach, don't sync); ``settings``: firm settings (customer payloads).
        errorlog: the error center's repository.
        publisher: qbsync events (``EventPublisher``); ``outbound``: ``OutboundQueue`` sender (commands).
        references: per-realm reference data (``qbsync.qbo.reference.ReferenceCache``).
        clock: epoch seconds; ``app_base_url``: QBO deep links; ``owner_prefix``: lease owner ids.
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        connections: Connections,
        realm_clients: RealmClients,
        records: RecordsRepository,
        admin: RecordAdmin,
        settings: FirmSettingsRepository,
        errorlog: ErrorLogRepository,
        publisher: Publisher,
        outbound: Sender,
        references: References,
        clock: Callable[[], float],
        app_base_url: str,
        owner_prefix: str = "admin-api",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self._connections = connections
        self._realm_clients = realm_clients
        self._records = records
        self._admin = admin
        self._settings = settings
        self._errorlog = errorlog
        self._publisher = publisher
        self._outbound = outbound
        self._references = references
        self._clock = clock
        self._app_base_url = app_base_url
        self._owner_prefix = owner_prefix
        self._lease_seconds = lease_seconds

    # ------------------------------------------------------------------ manual sync (C.6)

    def manual_sync(self, caller: Caller, entity_type: str, platform_id: str) -> ManualSyncResult:
        """Queue a sync of one record from its stored platform event.

        Raises:
            Forbidden: not owner/admin. BadRequest: unknown entity type. NotFound: no such record.
            Conflict: not connected; synced ("already synced"); being synced; no stored event
                (:data:`NOT_RECEIVED`); client account not in QuickBooks (:data:`CLIENT_ACCOUNT_FIRST`,
                ``err.extra["account_id"]``).
        """
        require_role(caller, *_WRITE_ROLES)
        if entity_type not in vocab.SYNCABLE_TYPES:
            raise BadRequest(f"entity_type must be one of {', '.join(vocab.SYNCABLE_TYPES)}")
        connection = self._connection(caller)
        realm_id = connection.realm_id
        record = self._record(caller.firm_id, realm_id, entity_type, platform_id)
        now = self._clock()
        if record.status == SYNCED:
            raise Conflict("already synced", entity=entity_type, entity_id=platform_id)
        if record.lease_live(now):
            raise Conflict("the record is being synced right now", entity=entity_type, entity_id=platform_id)
        event = self._last_event(caller.firm_id, realm_id, entity_type, platform_id)
        if event is None:
            raise Conflict(NOT_RECEIVED, entity=entity_type, entity_id=platform_id)
        if entity_type in _NEEDS_ACCOUNT:
            self._require_account(caller.firm_id, realm_id, event)
        force = record.status == SKIPPED or (
            record.status == SYNCING and record.prev_status == SKIPPED  # a dead lease of a skipped record
        )
        request_id = _new_request_id()
        command = SyncCommand(
            firm_id=caller.firm_id,
            entity_type=entity_type,  # type: ignore[arg-type]
            platform_id=platform_id,
            reason="manual_sync",
            force=force,
            request_id=request_id,
            requested_by=caller.user_id,
            correlation_id=request_id,
        )
        self._send_commands([command])
        logger.info(
            "manual sync queued",
            extra={"firm_id": caller.firm_id, "entity_type": entity_type, "request_id": request_id},
        )
        return ManualSyncResult(request_id, "queued", entity_type, platform_id, force)

    def _require_account(self, firm_id: str, realm_id: str, event: PlatformEvent) -> None:
        account_id = getattr(event.data, "account_id", None)
        if not account_id:
            return
        account = self._records.get(RecordKey(firm_id, realm_id, "client_account", str(account_id)))
        if account is None or not account.qbo_id or account.status == SKIPPED:
            raise Conflict(
                f"{CLIENT_ACCOUNT_FIRST} (client account {account_id})", account_id=str(account_id)
            )

    # ------------------------------------------------------------------ unsync of a payment (C.4)

    def unsync_payment(self, caller: Caller, payment_id: str) -> UnsyncResult:
        """Delete the payment and its refunds in QuickBooks, exactly once each (see the module doc).

        Raises:
            Forbidden, NotFound (no such payment record), Conflict (not connected; never synced; a record
            being synced; QuickBooks refused a delete - e.g. closed books - with what to do),
            RetryableError / UncertainOutcome / ReconnectRequired (repeat the request later).
        """
        require_role(caller, *_WRITE_ROLES)
        connection = self._connection(caller)
        firm_id, realm_id = caller.firm_id, connection.realm_id
        payment = self._record(firm_id, realm_id, "payment", payment_id)
        application = self._records.get(RecordKey(firm_id, realm_id, "credit_application", payment_id))
        refunds = self._admin.refunds_of_payment(RecordKey(firm_id, realm_id, "payment", payment_id))
        targets = [*refunds]
        if application is not None and application.qbo_id:
            targets.append(application)
        if payment.qbo_id:
            targets.append(payment)
        if not targets:
            if payment.status == NOT_SYNCED and self._admin.was_unsynced(
                RecordKey(firm_id, realm_id, "payment", payment_id)
            ):
                return UnsyncResult(payment_id, "already_unsynced")
            raise Conflict("the payment is not synced to QuickBooks", entity="payment", entity_id=payment_id)
        qbo = self._qbo(firm_id, realm_id)
        writer = self._writer(qbo, self._owner())
        done: list[UnsyncedObject] = []
        for record in targets:
            done.append(self._delete(writer, record, caller.user_id))
        events = [
            self._status_event(
                firm_id, realm_id, r.entity_type, r.platform_id, NOT_SYNCED, correlation_id=None
            )
            for r in targets
            if r.entity_type in vocab.EVENT_ENTITY_OF
        ]
        self._publisher.publish(events)
        logger.info(
            "payment unsynced",
            extra={"firm_id": firm_id, "realm_id": realm_id, "deleted": len(done), "refunds": len(refunds)},
        )
        return UnsyncResult(payment_id, "unsynced", done)

    def _delete(self, writer: ExactlyOnceWriter, record: SyncRecord, user_id: str) -> UnsyncedObject:
        assert record.qbo_id is not None and record.qbo_entity is not None
        version = (
            record.platform_version if record.platform_version is not None else (record.claimed_version or 0)
        )
        outcome = "deleted"
        try:
            writer.write(
                record.key,
                version,
                "delete",
                record.qbo_entity,
                {},
            )
        except QboObjectNotFound:
            outcome = "already_deleted"  # gone from QuickBooks already (deleted there, or by a lost attempt)
        except LeaseHeld:
            raise Conflict(
                f"the {record.entity_type} is being synced right now; try again shortly",
                entity=record.entity_type,
                entity_id=record.platform_id,
            ) from None
        except DataError as err:
            raise Conflict(
                f"QuickBooks refused to delete the {record.entity_type} {record.platform_id}: "
                f"{err.message}. Fix it in QuickBooks, then unsync again.",
                entity=record.entity_type,
                entity_id=record.platform_id,
                qbo_code=err.qbo_code,
            ) from None
        self._admin.detach_qbo(
            record.key,
            by=user_id,
            now=self._clock(),
        )
        return UnsyncedObject(
            record.entity_type, record.platform_id, record.qbo_entity, record.qbo_id, outcome
        )

    # ------------------------------------------------------------------ account errors (C.1 / E.3)

    def search_customers(self, caller: Caller, search: str | None) -> list[QboCustomer]:
        """Active QBO customers whose DisplayName contains ``search`` (all when empty), by name, at most 50.

        Raises Forbidden, Conflict (not connected), BadRequest (search over 100 characters).
        """
        require_role(caller, *_WRITE_ROLES)
        text = (search or "").strip()
        if len(text) > 100 or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            raise BadRequest("search must be at most 100 printable characters")
        connection = self._connection(caller)
        qbo = self._qbo(caller.firm_id, connection.realm_id)
        where = "Active = true"
        if text:
            where += f" AND DisplayName LIKE {quote_literal('%' + text + '%')}"
        try:
            rows = qbo.query(
                f"SELECT * FROM Customer WHERE {where} ORDERBY DisplayName MAXRESULTS {_SEARCH_MAX_ROWS}"  # noqa: S608
            )
        except DataError:  # QuickBooks' query parser refused the text (4000/4001)
            raise BadRequest("QuickBooks cannot search for this text") from None
        return [_customer(row) for row in rows]

    def map_customer(self, caller: Caller, error_id: str, qbo_customer_id: str) -> AccountActionResult:
        """Link the account of an open Accounts error to an existing QBO customer.

        Raises:
            Forbidden; NotFound (error); Conflict (error not open / not an account error; not connected;
            customer already linked to another account of the firm; record being synced);
            BadRequest (no such customer in QuickBooks, or inactive).
        """
        require_role(caller, *_WRITE_ROLES)
        if not isinstance(qbo_customer_id, str) or not _QBO_ID.match(qbo_customer_id):
            raise BadRequest("qbo_customer_id must be a QuickBooks id (digits)")
        entry, connection, record = self._account_error(caller, error_id)
        firm_id, realm_id = caller.firm_id, connection.realm_id
        if record.qbo_id and record.qbo_entity == "Customer":
            if record.qbo_id == qbo_customer_id and record.status == SYNCED:
                return self._finish_link(caller, entry, record, "mapped", "mapped_existing")
            if record.qbo_id != qbo_customer_id:
                raise Conflict(_linked_already(record.qbo_id))
        qbo = self._qbo(firm_id, realm_id)
        try:
            customer = qbo.read("Customer", qbo_customer_id)
        except DataError:  # 610, or an id QuickBooks cannot even look up
            raise BadRequest(f"QuickBooks has no customer {qbo_customer_id}") from None
        if customer.get("Active") is False:
            raise BadRequest(f"the QuickBooks customer {qbo_customer_id} is inactive; reactivate it first")
        owner = self._records.find_by_qbo_id(realm_id, "Customer", qbo_customer_id)
        if owner is not None and owner.firm_id == firm_id and owner.platform_id != record.platform_id:
            raise Conflict(
                f"the QuickBooks customer {qbo_customer_id} is already linked to the client account "
                f"{owner.platform_id}",
                account_id=owner.platform_id,
            )
        event = self._last_event(firm_id, realm_id, "client_account", record.platform_id)
        version = event.version if event is not None else None
        try:
            linked = self._admin.link_qbo(
                RecordKey(firm_id, realm_id, "client_account", record.platform_id),
                link=QboLink(
                    qbo_entity="Customer",
                    qbo_id=qbo_customer_id,
                    sync_token=_text(customer.get("SyncToken")),
                    deep_link=self._link("Customer", qbo_customer_id, realm_id),
                ),
                version=version if version is not None else (record.claimed_version or 0),
                now=self._clock(),
            )
        except Conflict:
            raise Conflict("the client account is being synced right now; try again shortly") from None
        return self._finish_link(caller, entry, linked, "mapped", "mapped_existing")

    def create_customer(
        self, caller: Caller, error_id: str, display_name: str | None = None
    ) -> AccountActionResult:
        """Create a new QBO customer for the account of an open Accounts error, exactly once, and link it.

        Raises:
            Forbidden; NotFound; BadRequest (display name rules); Conflict (error not open / not an account
            error; not connected; no stored event; the name is taken in QuickBooks; other data the customer
            needs is wrong - the message says what); RetryableError / UncertainOutcome (repeat the request:
            the same ``requestid`` is sent again and QuickBooks answers with the customer it created).
        """
        require_role(caller, *_WRITE_ROLES)
        name = valid_display_name(display_name) if display_name is not None else None
        try:
            entry, connection, record = self._account_error(caller, error_id)
        except Conflict:
            done = self._already_created(caller, error_id)
            if done is not None:
                return done
            raise
        firm_id, realm_id = caller.firm_id, connection.realm_id
        event = self._last_event(firm_id, realm_id, "client_account", record.platform_id)
        if event is None or not isinstance(event.data, ClientAccount):
            raise Conflict(NOT_RECEIVED, entity="client_account", entity_id=record.platform_id)
        if record.qbo_id and record.qbo_entity == "Customer":
            if record.status == SYNCED:  # linked before the error was closed (a crash in between)
                return self._finish_link(caller, entry, record, "created", "created_new")
            raise Conflict(_linked_already(record.qbo_id))
        account: ClientAccount = event.data
        qbo = self._qbo(firm_id, realm_id)
        payload = self._customer_payload(caller, connection, qbo, account, name)
        ours = self._check_name_free(qbo, str(payload["DisplayName"]), record.platform_id)
        request = WriteRequest(
            event.version,
            "create",
            "Customer",
            payload,
            find_existing=find_existing("Customer", "client_account", record.platform_id, payload),
            # not the sync's requestid: QuickBooks would replay its refused create (see WriteRequest)
            salt=("create_customer", error_id, name or ""),
            keep_error=True,
        )
        created = self._create_once(qbo, record, request, adopt=ours)
        return self._finish_link(caller, entry, created, "created", "created_new")

    def _customer_payload(
        self, caller: Caller, connection: Connection, qbo: QboClient, account: ClientAccount, name: str | None
    ) -> dict[str, Any]:
        settings = self._settings.get(caller.firm_id, seed=connection.settings)
        ref = self._references.get(qbo)
        source = account.model_copy(update={"name": name}) if name is not None else account
        try:
            payload = mapping.customer_payload(source, ref, settings)
        except mapping.MappingError as err:
            raise Conflict(str(err), entity="client_account", entity_id=account.id) from None
        if name is not None and account.account_type == "company":
            payload["CompanyName"] = account.name[:100]
        return payload

    def _check_name_free(self, qbo: QboClient, name: str, account_id: str) -> dict[str, Any] | None:
        """DisplayName is unique across customers, vendors and employees, inactive ones included.

        Returns the customer of that name when it carries this account's qbsync marker: the object an
        earlier create whose answer was lost made (it is adopted, never created twice). Raises Conflict
        when anyone else has the name.
        """
        for entity in ("Customer", "Vendor", "Employee"):
            rows = qbo.query(
                f"SELECT * FROM {entity} WHERE DisplayName = {quote_literal(name)} "  # noqa: S608
                "AND Active IN (true, false) MAXRESULTS 1"
            )
            if not rows:
                continue
            if entity == "Customer" and mapping.parse_marker(_text(rows[0].get("Notes"))) == (
                "ClientAccount",
                account_id,
            ):
                return rows[0]
            raise Conflict(_name_taken(entity))
        return None

    def _create_once(
        self, qbo: QboClient, record: SyncRecord, request: WriteRequest, *, adopt: dict[str, Any] | None
    ) -> SyncRecord:
        """Create the customer exactly once through the writer, under this action's lease of the record.

        ``adopt``: an object of ours already in QuickBooks (a lost earlier create) is linked instead of
        creating. A refusal keeps the record's original error (the one the firm is fixing) and becomes a
        Conflict saying what QuickBooks refused.
        """
        owner = self._owner()
        try:
            claim = self._records.claim(
                record.key,
                version=request.version,
                owner=owner,
                lease_seconds=self._lease_seconds,
                now=self._clock(),
                options=ClaimOptions("create"),
            )
        except LeaseHeld:
            raise Conflict("the client account is being synced right now; try again shortly") from None
        current = claim.record
        if claim.outcome is not ClaimOutcome.CLAIMED:
            if current.qbo_id and current.qbo_entity == "Customer":
                return current  # a sync linked it meanwhile
            raise Conflict("a newer version of the client account was synced meanwhile; reload the error")
        if current.qbo_id and current.qbo_entity == "Customer":
            # linked meanwhile at an older version: nothing to create (the writer would update it)
            self._records.release(
                current.key, owner=owner, status=current.prev_status or NOT_SYNCED, now=self._clock()
            )
            return current
        writer = self._writer(qbo, owner)
        if adopt is not None:
            return writer.adopt_claimed(current, request, adopt).record
        try:
            return writer.write_claimed(current, request).record
        except DataError as err:
            # the writer marked the record failed with its original error; retryable, uncertain and
            # reconnect errors propagate with the intent kept, so a repeat resends the same requestid
            if isinstance(err, QboValidationError) and err.qbo_code == "6240":
                raise Conflict(_name_taken("Customer")) from None
            raise Conflict(
                f"QuickBooks refused the new customer: {err.message}", qbo_code=err.qbo_code
            ) from None

    def _writer(self, qbo: QboClient, owner: str) -> ExactlyOnceWriter:
        return ExactlyOnceWriter(
            self._records,
            qbo,
            self._clock,
            owner,
            app_base_url=self._app_base_url,
            lease_seconds=self._lease_seconds,
        )

    def _already_created(self, caller: Caller, error_id: str) -> AccountActionResult | None:
        """A repeat of a create-customer that already finished: the same answer, nothing written."""
        entry = self._errorlog.get(caller.firm_id, error_id)
        if entry is None or entry.entity_type != "client_account" or entry.status == "open":
            return None
        if not any(str(h.get("action")) == "created customer" for h in entry.history):
            return None
        connection = self._connection(caller)
        record = self._records.get(
            RecordKey(caller.firm_id, connection.realm_id, "client_account", entry.platform_id)
        )
        if record is None or not record.qbo_id or record.qbo_entity != "Customer":
            return None
        return AccountActionResult(
            error_id, entry.platform_id, "already_done", record.status, record.qbo_id, record.deep_link
        )

    def dont_sync(self, caller: Caller, error_id: str) -> AccountActionResult:
        """Stop syncing the account of an open Accounts error: record ``skipped`` (:data:`EXCLUDED_BY_FIRM`),
        error resolved. Later events of the account stay skipped until a manual sync.

        Raises Forbidden, NotFound, Conflict (error not open / not an account error; being synced).
        """
        require_role(caller, *_WRITE_ROLES)
        entry, connection, record = self._account_error(caller, error_id)
        firm_id, realm_id = caller.firm_id, connection.realm_id
        now = self._clock()
        try:
            skipped = self._admin.exclude(
                RecordKey(firm_id, realm_id, "client_account", record.platform_id),
                reason=EXCLUDED_BY_FIRM,
                by=caller.user_id,
                now=now,
            )
        except Conflict:
            raise Conflict("the client account is being synced right now; try again shortly") from None
        # the records blocked on the account run again and are skipped naming it (back when it syncs)
        self._release_dependents(caller, realm_id, record.platform_id)
        self._close_error(caller, entry, "not synced (excluded by the firm)", None, "not_synced")
        self._publisher.publish(
            [
                self._status_event(
                    firm_id, realm_id, "client_account", record.platform_id, SKIPPED, correlation_id=None
                )
            ]
        )
        return AccountActionResult(error_id, record.platform_id, "excluded", skipped.status)

    # ------------------------------------------------------------------ service errors (E.3)

    def delete_service(self, caller: Caller, error_id: str) -> ServiceActionResult:
        """Ask the platform to delete the service of an open Services error; resolve the error.

        Raises Forbidden, NotFound, Conflict (not open; not a service error).
        """
        require_role(caller, *_WRITE_ROLES)
        entry = self._open_error(caller, error_id)
        if entry.entity_type != "service":
            raise Conflict("delete is only available for errors of services")
        realm_id = entry.realm_id or None
        request_id = _new_request_id()
        self._publisher.publish(
            [
                ServiceDeleteRequested(
                    firm_id=caller.firm_id,
                    correlation_id=request_id,
                    realm_id=realm_id,
                    service_id=entry.platform_id,
                    error_id=entry.error_id,
                    requested_by=caller.user_id,
                )
            ]
        )
        self._close_error(caller, entry, "service deleted", None, "deleted")
        return ServiceActionResult(error_id, entry.platform_id, "delete_requested")

    # ------------------------------------------------------------------ invoice number too long (issue 11)

    def let_qbo_number(self, caller: Caller, error_id: str) -> NumberingResult:
        """Sync the invoice of an open ``doc_number_too_long`` error without its platform number (module doc).

        Raises Forbidden; NotFound (error); Conflict (not open; not that error; not connected; the record is
        being synced or is no longer failed - a newer version synced meanwhile).
        """
        require_role(caller, *_WRITE_ROLES)
        entry = self._open_error(caller, error_id)
        if entry.entity_type != "invoice" or entry.code != DOC_NUMBER_TOO_LONG:
            raise Conflict(
                "this action is only available for errors of invoice numbers too long for QuickBooks"
            )
        connection = self._connection(caller)
        key = RecordKey(caller.firm_id, connection.realm_id, "invoice", entry.platform_id)
        if self._records.get(key) is None:
            raise Conflict("the error belongs to another QuickBooks company than the connected one")
        now = self._clock()
        try:
            self._admin.let_qbo_number(key, by=caller.user_id, now=now)
        except Conflict:
            raise Conflict("the invoice is being synced or changed right now; reload the error") from None
        request_id = _new_request_id()
        self._errorlog.note_action(
            caller.firm_id,
            entry.error_id,
            action="let QuickBooks number it",
            by=caller.user_id,
            now=now,
            detail=request_id,
        )
        self._send_commands(
            [
                SyncCommand(
                    firm_id=caller.firm_id,
                    entity_type="invoice",
                    platform_id=entry.platform_id,
                    reason="resync_error",
                    request_id=request_id,
                    requested_by=caller.user_id,
                    correlation_id=request_id,
                )
            ]
        )
        logger.info(
            "invoice numbering left to QuickBooks",
            extra={"firm_id": caller.firm_id, "error_id": entry.error_id, "request_id": request_id},
        )
        return NumberingResult(entry.error_id, entry.platform_id, request_id)

    # ------------------------------------------------------------------ shared steps

    def _finish_link(
        self, caller: Caller, entry: ErrorEntry, record: SyncRecord, outcome: str, resolution: str
    ) -> AccountActionResult:
        """After a link: announce it, release the records waiting on the account, resolve the error."""
        firm_id, realm_id, pid = caller.firm_id, record.realm_id, record.platform_id
        self._publisher.publish(
            [
                self._status_event(
                    firm_id, realm_id, "client_account", pid, SYNCED, correlation_id=None, record=record
                )
            ]
        )
        released = self._release_dependents(caller, realm_id, pid)
        action = "mapped to customer" if outcome == "mapped" else "created customer"
        self._close_error(caller, entry, action, record.qbo_id, resolution)
        return AccountActionResult(
            entry.error_id, pid, outcome, record.status, record.qbo_id, record.deep_link, released
        )

    def _release_dependents(self, caller: Caller, realm_id: str, account_id: str) -> int:
        """Re-run, through the sync service, every record blocked on the account or skipped behind it
        (a SyncCommand each): they sync once it is linked, or settle when it is excluded."""
        request_id = _new_request_id()
        commands = [
            SyncCommand(
                firm_id=caller.firm_id,
                entity_type=r.entity_type,  # type: ignore[arg-type]
                platform_id=r.platform_id,
                reason="resync_error",
                request_id=request_id,
                requested_by=caller.user_id,
                correlation_id=request_id,
            )
            for r in self._records.blocked_on(
                RecordKey(caller.firm_id, realm_id, "client_account", account_id), statuses=(BLOCKED, SKIPPED)
            )
            if r.entity_type in vocab.SYNCABLE_TYPES
        ]
        self._send_commands(commands)
        return len(commands)

    def _close_error(
        self, caller: Caller, entry: ErrorEntry, action: str, detail: str | None, resolution: str
    ) -> None:
        now = self._clock()
        self._errorlog.note_action(
            caller.firm_id, entry.error_id, action=action, by=caller.user_id, now=now, detail=detail
        )
        self._errorlog.resolve(
            firm_id=caller.firm_id, entity_type=entry.entity_type, platform_id=entry.platform_id, now=now
        )
        self._publisher.publish(
            [
                SyncErrorResolved(
                    firm_id=caller.firm_id,
                    correlation_id=_new_request_id(),
                    error_id=entry.error_id,
                    category=entry.category,  # type: ignore[arg-type]
                    entity_type=vocab.EVENT_ENTITY_OF.get(entry.entity_type),
                    platform_id=entry.platform_id,
                    resolution=resolution,  # type: ignore[arg-type]
                    resolved_by=caller.user_id,
                )
            ]
        )

    def _open_error(self, caller: Caller, error_id: str) -> ErrorEntry:
        if not isinstance(error_id, str) or not error_id or len(error_id) > 200:
            raise NotFound("no such error")
        entry = self._errorlog.get(caller.firm_id, error_id)
        if entry is None:
            raise NotFound("no such error")
        if entry.status != "open":
            raise Conflict(f"the error is {entry.status}, not open")
        return entry

    def _account_error(self, caller: Caller, error_id: str) -> tuple[ErrorEntry, Connection, SyncRecord]:
        entry = self._open_error(caller, error_id)
        if entry.entity_type != "client_account":
            raise Conflict("this action is only available for errors of client accounts")
        connection = self._connection(caller)
        record = self._records.get(
            RecordKey(caller.firm_id, connection.realm_id, "client_account", entry.platform_id)
        )
        if record is None:
            raise Conflict("the error belongs to another QuickBooks company than the connected one")
        return entry, connection, record

    def _connection(self, caller: Caller) -> Connection:
        connection = self._connections.get(caller.firm_id)
        if connection is None or connection.status != CONNECTED:
            status = connection.status if connection is not None else "not connected"
            raise Conflict(f"QuickBooks is not connected ({status.replace('_', ' ')}); connect it first")
        return connection

    def _record(self, firm_id: str, realm_id: str, entity_type: str, platform_id: str) -> SyncRecord:
        try:
            record = self._records.get(RecordKey(firm_id, realm_id, entity_type, platform_id))
        except ValueError:
            record = None  # an id qbsync can never have stored
        if record is None:
            raise NotFound(f"no such {entity_type.replace('_', ' ')}")
        return record

    def _last_event(
        self, firm_id: str, realm_id: str, entity_type: str, platform_id: str
    ) -> PlatformEvent | None:
        envelope = self._records.last_event(RecordKey(firm_id, realm_id, entity_type, platform_id))
        if envelope is None:
            return None
        try:
            return parse_platform_event(envelope)
        except BadRequest:
            logger.warning(
                "stored platform event does not parse", extra={"firm_id": firm_id, "entity_type": entity_type}
            )
            return None

    def _qbo(self, firm_id: str, realm_id: str) -> QboClient:
        return self._realm_clients.qbo_for(firm_id, realm_id)

    def _send_commands(self, commands: list[SyncCommand]) -> None:
        if not commands:
            return
        from qbsync.adapters.sqs import SqsMessage

        self._outbound.send_many(
            SqsMessage(body=c, id=f"cmd-{i}", correlation_id=c.correlation_id) for i, c in enumerate(commands)
        )

    def _status_event(  # noqa: PLR0913
        self,
        firm_id: str,
        realm_id: str,
        entity_type: str,
        platform_id: str,
        status: str,
        *,
        correlation_id: str | None,
        record: SyncRecord | None = None,
    ) -> SyncStatusChanged:
        return SyncStatusChanged(
            firm_id=firm_id,
            correlation_id=correlation_id or _new_request_id(),
            realm_id=realm_id,
            entity_type=vocab.EVENT_ENTITY_OF[entity_type],
            platform_id=platform_id,
            status=status,  # type: ignore[arg-type]
            qbo_id=record.qbo_id if record is not None else None,
            qbo_url=record.deep_link if record is not None else None,
        )

    def _link(self, qbo_entity: str, qbo_id: str, realm_id: str) -> str | None:
        try:
            return deep_link(self._app_base_url, qbo_entity, qbo_id, realm_id=realm_id)
        except ValueError:
            return None

    def _owner(self) -> str:
        return f"{self._owner_prefix}-{uuid.uuid4().hex[:12]}"


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _linked_already(qbo_id: str) -> str:
    return (
        f"the client account is already linked to the QuickBooks customer {qbo_id}; resync the error instead"
    )


def _name_taken(entity: str) -> str:
    what = {"Customer": "a customer", "Vendor": "a vendor", "Employee": "an employee"}[entity]
    return (
        f"QuickBooks already has {what} with this display name (inactive ones count too); "
        "choose another display name"
    )


def _customer(row: Mapping[str, Any]) -> QboCustomer:
    balance = row.get("Balance", 0)
    return QboCustomer(
        id=str(row.get("Id")),
        display_name=str(row.get("DisplayName") or ""),
        company_name=_text(row.get("CompanyName")),
        balance=f"{float(balance or 0):.2f}",
        active=row.get("Active") is not False,
    )
