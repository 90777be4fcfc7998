"""The actions of an error on a record edited or deleted in QuickBooks (issue 14 item 4).

:mod:`qbsync.inbound.drift` raises ``edited_in_quickbooks`` / ``deleted_in_quickbooks`` on the record. The
firm chooses one of:

* **Push the platform's version again** - the error center's Resync (``POST /errors/{id}/resync``,
  :mod:`qbsync.errorcenter.retry`): the record's stored platform event runs again through the exactly-once
  writer. Edited: a sparse update of the QuickBooks object with QuickBooks' current SyncToken (kept on the
  record when the change was found); deleted: a create of a new object. The drift bumped the record's
  ``epoch``, so these writes carry request ids QuickBooks has not seen (they are written, not replayed) and
  a repeat of the same push replays its own answer (exactly once). The error resolves when it syncs.
* **Accept QuickBooks' change** - :meth:`DriftActions.accept_quickbooks`, only where the platform can take
  it: a client account whose changed fields are all contact fields (email, phone numbers, billing
  address). QuickBooks' customer is read now; "Contact Updated" goes to the platform for the account's
  first contact; the record is ``synced`` again at QuickBooks' SyncToken, and its stored platform event
  takes QuickBooks' values of those fields in the same write (so the drift report does not find the
  accepted change again, and a later Resync pushes the accepted values, not the old ones); the error
  resolves (``accepted_quickbooks``). 409 for anything else, naming the fields the platform cannot take.
* **Unlink** - :meth:`DriftActions.unlink`: the record is detached from the QuickBooks object (which stays
  as QuickBooks has it, or stays deleted) and ``skipped`` as excluded by the firm; later platform versions
  stay skipped until a manual sync, which writes a new object. The records waiting on it run again (they
  settle as skipped behind it). The error resolves (``not_synced``).
* **Relink** - :meth:`DriftActions.relink`, for a record whose object is gone (``missing_in_quickbooks``
  from the drift report, ``deleted_in_quickbooks``): the record is linked to another object of the
  connected company that is the same record (the accountant re-entered it), given by its Id. Checked: the
  object exists in the connected company as the record's entity (one batch read), and no other record is
  linked to it (400 naming ``body.qbo_id`` otherwise). The record is ``synced`` at that object and its
  SyncToken, the error resolves (``mapped_existing``); the next drift report compares it like any other.

The drift report (:mod:`qbsync.reconcile.report`) raises ``missing_in_quickbooks`` and ``amount_mismatch``
too; they are drift codes (:data:`qbsync.inbound.drift.DRIFT_CODES`) with the same actions.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from qbsync import vocab
from qbsync.adapters.sqs import SqsMessage
from qbsync.auth import Caller, require_role
from qbsync.connection.clients import RealmClients
from qbsync.errors import BadRequest, Conflict, NotFound, QboObjectNotFound
from qbsync.inbound.differences import CONTACT_FIELDS, accepted_contact, differences
from qbsync.inbound.drift import DRIFT_CODES, EDITED, UNLINKED_CODES, event_data
from qbsync.inbound.reads import read_by_ids
from qbsync.models.commands import SyncCommand
from qbsync.models.qbsync_events import ContactData, ContactUpdated, SyncErrorResolved, SyncStatusChanged
from qbsync.models.record_key import RecordKey
from qbsync.qbo.client import deep_link
from qbsync.qbo.contact import customer_email, customer_phones, platform_address
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.error_log import ErrorEntry, ErrorLogRepository
from qbsync.repositories.record_admin import RecordAdmin
from qbsync.repositories.records import (
    BLOCKED,
    FAILED,
    SKIPPED,
    SYNCED,
    QboLink,
    RecordsRepository,
    SyncRecord,
)

__all__ = ["DriftActionResult", "DriftActions"]

logger = logging.getLogger("qbsync.errorcenter.drift_actions")

_WRITE_ROLES = ("owner", "admin")
#: a difference's field -> the Contact Updated ``changed_fields`` name
_CONTACT_CHANGE = {"email": "email", "phone numbers": "phones", "billing address": "mailing_address"}


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


@dataclass(frozen=True, slots=True)
class DriftActionResult:
    """``outcome`` ``accepted`` (contact fields sent to the platform), ``unlinked`` or ``relinked``; the
    record's status."""

    error_id: str
    entity_type: str
    platform_id: str
    outcome: str
    record_status: str
    changed_fields: tuple[str, ...] = ()
    released: int = 0


class DriftActions:
    """Accept / unlink on a drift error (see the module doc). The firm is always the caller's.

    Args:
        connections, realm_clients: the firm's connection and its realm's QBO client.
        records, admin: the sync records and their admin changes; ``errorlog``: the error center.
        publisher: qbsync events; ``outbound``: ``OutboundQueue`` (the dependents' SyncCommands).
        clock: epoch seconds; ``app_base_url``: QBO deep links of a relinked record.
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        connections: Connections,
        realm_clients: RealmClients,
        records: RecordsRepository,
        admin: RecordAdmin,
        errorlog: ErrorLogRepository,
        publisher: Publisher,
        outbound: Sender,
        clock: Callable[[], float],
        app_base_url: str | None = None,
    ) -> None:
        self._connections = connections
        self._realm_clients = realm_clients
        self._records = records
        self._admin = admin
        self._errorlog = errorlog
        self._publisher = publisher
        self._outbound = outbound
        self._clock = clock
        self._app_base_url = app_base_url

    def accept_quickbooks(self, caller: Caller, error_id: str) -> DriftActionResult:
        """Keep QuickBooks' contact fields of an edited client account (module doc).

        Raises Forbidden; NotFound (error); Conflict (not open, not an edited client account, other fields
        changed too, no contact on the platform, not connected, the record changed meanwhile).
        """
        require_role(caller, *_WRITE_ROLES)
        entry, record = self._drift_error(caller, error_id)
        if entry.code != EDITED or record.entity_type != "client_account" or not record.qbo_id:
            raise Conflict(
                "accepting QuickBooks' change is only possible for a client account edited in QuickBooks "
                "(its email, phone numbers or billing address); choose Resync or Unlink"
            )
        qbo = self._realm_clients.qbo_for(caller.firm_id, record.realm_id)
        try:
            customer = qbo.read("Customer", record.qbo_id)
        except QboObjectNotFound:
            raise Conflict("the customer no longer exists in QuickBooks; choose Resync or Unlink") from None
        stored = self._records.last_event(record.key)
        data = event_data(stored) or {}
        changed = [d.field for d in differences("client_account", data, customer)]
        other = [f for f in changed if f not in CONTACT_FIELDS]
        if other:
            raise Conflict(
                "the platform can take only the email, phone numbers and billing address from QuickBooks; "
                f"also changed: {', '.join(other)}. Choose Resync or Unlink"
            )
        contacts = data.get("contact_ids")
        contact_id = contacts[0] if isinstance(contacts, list) and contacts else None
        if changed and not isinstance(contact_id, str):
            raise Conflict("the client account has no contact on the platform to take QuickBooks' change")
        now = self._clock()
        correlation = uuid.uuid4().hex
        if changed and isinstance(contact_id, str):
            self._publisher.publish(
                [self._contact_updated(caller, record, customer, contact_id, changed, correlation)]
            )
        try:
            synced = self._admin.settle_in_qbo(
                record.key,
                sync_token=_token(customer),
                seen_revision=record.revision,
                now=now,
                last_event=_accepted_event(stored, data, customer, changed),
            )
        except Conflict:
            raise Conflict(
                "the client account is being synced or changed right now; reload the error"
            ) from None
        self._close(caller, entry, "accepted QuickBooks' change", "accepted_quickbooks", synced, correlation)
        logger.info(
            "QuickBooks' change accepted", extra={"firm_id": caller.firm_id, "error_id": entry.error_id}
        )
        return DriftActionResult(
            entry.error_id, record.entity_type, record.platform_id, "accepted", synced.status, tuple(changed)
        )

    def unlink(self, caller: Caller, error_id: str) -> DriftActionResult:
        """Detach the record of a drift error from its QuickBooks object and stop syncing it (module doc).

        Raises Forbidden; NotFound (error); Conflict (not open, not a drift error, not connected, the record
        is being synced or changed meanwhile).
        """
        require_role(caller, *_WRITE_ROLES)
        entry, record = self._drift_error(caller, error_id)
        now = self._clock()
        try:
            unlinked = self._admin.unlink_qbo(record.key, by=caller.user_id, now=now)
        except Conflict:
            raise Conflict("the record is being synced or changed right now; reload the error") from None
        released = self._release_dependents(caller, record)
        correlation = uuid.uuid4().hex
        self._close(
            caller,
            entry,
            "unlinked from QuickBooks",
            "not_synced",
            unlinked,
            correlation,
            detail=record.qbo_id,
        )
        logger.info(
            "record unlinked from QuickBooks", extra={"firm_id": caller.firm_id, "error_id": entry.error_id}
        )
        return DriftActionResult(
            entry.error_id,
            record.entity_type,
            record.platform_id,
            "unlinked",
            unlinked.status,
            released=released,
        )

    def relink(self, caller: Caller, error_id: str, qbo_id: str) -> DriftActionResult:
        """Link the record of a ``missing_in_quickbooks`` / ``deleted_in_quickbooks`` error to an object that
        exists in the connected company (module doc).

        Raises Forbidden; NotFound (error); BadRequest naming ``body.qbo_id`` (QuickBooks has no such object
        of the record's entity, or it is linked to another record); Conflict (not open, not a missing or
        deleted record, not connected, the record is being synced or changed meanwhile).
        """
        require_role(caller, *_WRITE_ROLES)
        entry, record = self._drift_error(caller, error_id)
        if entry.code not in UNLINKED_CODES or record.qbo_id is not None:
            raise Conflict(
                "relink is for a record missing or deleted in QuickBooks; this one is still linked (Resync "
                "or Unlink it)"
            )
        entity = _qbo_entity(record, event_data(self._records.last_event(record.key)) or {})
        qbo = self._realm_clients.qbo_for(caller.firm_id, record.realm_id)
        found, _ = read_by_ids(qbo, entity, [qbo_id])
        obj = found.get(qbo_id)
        if obj is None:
            raise BadRequest(f"body.qbo_id: the connected QuickBooks company has no {entity} {qbo_id}")
        other = self._records.find_by_qbo_id(record.realm_id, entity, qbo_id)
        if other is not None and other.key != record.key:
            raise BadRequest(
                f"body.qbo_id: QuickBooks {entity} {qbo_id} is linked to another record "
                f"({other.entity_type} {other.platform_id})"
            )
        now = self._clock()
        link = QboLink(
            entity, qbo_id, sync_token=_token(obj), deep_link=self._deep_link(entity, qbo_id, record)
        )
        try:
            linked = self._admin.link_qbo(
                record.key,
                link=link,
                version=record.platform_version or record.last_event_version or 1,
                now=now,
            )
        except Conflict:
            raise Conflict("the record is being synced or changed right now; reload the error") from None
        correlation = uuid.uuid4().hex
        self._close(
            caller,
            entry,
            f"relinked to QuickBooks {entity} {qbo_id}",
            "mapped_existing",
            linked,
            correlation,
            detail=qbo_id,
        )
        logger.info(
            "record relinked to a QuickBooks object",
            extra={"firm_id": caller.firm_id, "error_id": entry.error_id, "qbo_id": qbo_id},
        )
        return DriftActionResult(
            entry.error_id, record.entity_type, record.platform_id, "relinked", linked.status
        )

    def _deep_link(self, entity: str, qbo_id: str, record: SyncRecord) -> str | None:
        if not self._app_base_url:
            return None
        try:
            return deep_link(self._app_base_url, entity, qbo_id, realm_id=record.realm_id)
        except ValueError:
            return None

    # ------------------------------------------------------------------ steps

    def _drift_error(self, caller: Caller, error_id: str) -> tuple[ErrorEntry, SyncRecord]:
        if not isinstance(error_id, str) or not error_id or len(error_id) > 200:
            raise NotFound("no such error")
        entry = self._errorlog.get(caller.firm_id, error_id)
        if entry is None:
            raise NotFound("no such error")
        if entry.status != "open":
            raise Conflict(f"the error is {entry.status}, not open")
        if entry.code not in DRIFT_CODES:
            raise Conflict("this action is only available for records edited or deleted in QuickBooks")
        connection = self._connections.get(caller.firm_id)
        if connection is None or connection.status != CONNECTED:
            status = connection.status if connection is not None else "not connected"
            raise Conflict(f"QuickBooks is not connected ({status.replace('_', ' ')}); connect it first")
        try:
            record = self._records.get(
                RecordKey(caller.firm_id, connection.realm_id, entry.entity_type, entry.platform_id)
            )
        except ValueError:
            record = None
        if record is None:
            raise Conflict("the error belongs to another QuickBooks company than the connected one")
        if record.status != FAILED or record.error is None or record.error.code not in DRIFT_CODES:
            raise Conflict("the record was synced or changed meanwhile; reload the error")
        return entry, record

    def _contact_updated(
        self,
        caller: Caller,
        record: SyncRecord,
        customer: Mapping[str, Any],
        contact_id: str,
        changed: list[str],
        correlation: str,
    ) -> ContactUpdated:
        try:
            return ContactUpdated(
                firm_id=caller.firm_id,
                correlation_id=correlation,
                realm_id=record.realm_id,
                qbo_customer_id=str(record.qbo_id),
                platform_contact_id=contact_id,
                changed_fields=sorted({_CONTACT_CHANGE[f] for f in changed}),  # type: ignore[misc]
                contact=_contact(customer),
            )
        except ValidationError as err:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in err.errors(include_input=False)})
            raise Conflict(
                f"QuickBooks' customer has values the platform cannot take ({', '.join(fields)[:200]}); fix "
                "them in QuickBooks or choose Resync"
            ) from None

    def _close(  # noqa: PLR0913
        self,
        caller: Caller,
        entry: ErrorEntry,
        action: str,
        resolution: str,
        record: SyncRecord,
        correlation: str,
        *,
        detail: str | None = None,
    ) -> None:
        now = self._clock()
        self._errorlog.note_action(
            caller.firm_id, entry.error_id, action=action, by=caller.user_id, now=now, detail=detail
        )
        self._errorlog.resolve(
            firm_id=caller.firm_id, entity_type=entry.entity_type, platform_id=entry.platform_id, now=now
        )
        status = record.status
        self._publisher.publish(
            [
                SyncStatusChanged(
                    firm_id=caller.firm_id,
                    correlation_id=correlation,
                    realm_id=record.realm_id,
                    entity_type=vocab.EVENT_ENTITY_OF[record.entity_type],
                    platform_id=record.platform_id,
                    status=status,  # type: ignore[arg-type]
                    qbo_id=record.qbo_id if status == SYNCED else None,
                    qbo_url=record.deep_link if status == SYNCED else None,
                ),
                SyncErrorResolved(
                    firm_id=caller.firm_id,
                    correlation_id=correlation,
                    error_id=entry.error_id,
                    category=entry.category,  # type: ignore[arg-type]
                    entity_type=vocab.EVENT_ENTITY_OF.get(entry.entity_type),
                    platform_id=entry.platform_id,
                    resolution=resolution,  # type: ignore[arg-type]
                    resolved_by=caller.user_id,
                ),
            ]
        )

    def _release_dependents(self, caller: Caller, record: SyncRecord) -> int:
        """The records blocked on the unlinked one, or skipped behind it, run again (a SyncCommand each)."""
        request_id = uuid.uuid4().hex
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
            for r in self._records.blocked_on(record.key, statuses=(BLOCKED, SKIPPED))
            if r.entity_type in vocab.SYNCABLE_TYPES
        ]
        if commands:
            self._outbound.send_many(
                SqsMessage(body=c, id=f"cmd-{i}", correlation_id=request_id) for i, c in enumerate(commands)
            )
        return len(commands)


def _qbo_entity(record: SyncRecord, data: Mapping[str, Any]) -> str:
    """The QuickBooks entity the record's object is (a credit payment is a CreditMemo)."""
    info = vocab.RECORD_TYPE_INFO[record.entity_type]
    if record.entity_type == "payment" and data.get("method") in ("credit_balance", "promotional_credit"):
        return "CreditMemo"
    return record.qbo_entity or info.qbo_entity


def _token(obj: Mapping[str, Any]) -> str | None:
    token = obj.get("SyncToken")
    return str(token) if token is not None else None


def _accepted_event(
    stored: Mapping[str, Any] | None, data: Mapping[str, Any], customer: Mapping[str, Any], changed: list[str]
) -> dict[str, Any] | None:
    """The stored platform event with QuickBooks' accepted contact fields in its data (None: nothing to
    replace). The platform gets the same values as "Contact Updated"; without this the next drift report
    would find the accepted change again, and a later Resync would push the old values back."""
    detail = (stored or {}).get("detail")
    if not changed or stored is None or not isinstance(detail, Mapping):
        return None
    return {**stored, "detail": {**detail, "data": accepted_contact(data, customer, changed)}}


def _contact(customer: Mapping[str, Any]) -> ContactData:
    """The customer's contact fields as the platform's contact (never logged: personal data)."""
    return ContactData.model_validate(
        {
            "first_name": customer.get("GivenName"),
            "middle_name": customer.get("MiddleName"),
            "last_name": customer.get("FamilyName"),
            "display_name": str(customer.get("DisplayName") or ""),
            "company_name": customer.get("CompanyName"),
            "email": customer_email(customer),
            "phones": customer_phones(customer),
            "physical_address": platform_address(customer.get("ShipAddr")),
            "mailing_address": platform_address(customer.get("BillAddr")),
        }
    )
