"""Events the platform sends to qbsync (PRODUCT.md I), as pydantic models.

Every event arrives on the qbsync bus with ``Source = "platform"`` and ``DetailType =
"<Entity> <Action>"`` (e.g. ``"Invoice Created"``). Its ``detail`` is an envelope:

* ``firm_id`` - the tenant; ``event_id`` - unique per event (idempotency key);
* ``occurred_at`` - when the change happened on the platform (ISO 8601 with offset);
* ``correlation_id`` - carried into every log line and every event qbsync emits in response;
* ``version`` - the record's version on the platform, strictly increasing per record. qbsync applies
  an event only if its version is newer than the last one it applied to that record, so duplicates
  and late, out-of-order deliveries are harmless;
* ``data`` - the record: its full current state for Created / Updated / Sent, ``{"id"}`` for
  Deleted, ``{"id", "voided_on"}`` for Invoice Voided.

:func:`parse_platform_event` turns a raw EventBridge event into the model of its detail type, or
raises :class:`qbsync.errors.BadRequest` naming what is wrong (field paths, never values: details
hold client personal data).

The contract refuses only what cannot be understood (issue 11): not from the platform, an unknown detail
type, a missing or invalid envelope field or record id, a wrong type (a money value that is not a
two-decimal string, a date that is not a date, a value outside its enumeration), an unknown field. A
well-typed value that QuickBooks would refuse or qbsync cannot map - an invoice number over 21 characters,
a negative rate, an amount QuickBooks cannot hold, a date it cannot take, totals that do not add up - is
accepted here and becomes an explained error on its record
(:func:`qbsync.outbound.mapping.check_record`), so it reaches the error center instead of the DLQ.

JSON Schemas of these models are committed in ``docs/events/platform``
(``scripts/gen_event_schemas.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, ValidationError

from qbsync.errors import BadRequest
from qbsync.models.common import (
    Address,
    Currency,
    Email,
    EventModel,
    Id,
    Money,
    Phone,
    Quantity,
)

__all__ = [
    "PLATFORM_EVENT_TYPES",
    "PLATFORM_SOURCE",
    "ClientAccount",
    "ClientAccountCreated",
    "ClientAccountDeleted",
    "ClientAccountUpdated",
    "Contact",
    "ContactCreated",
    "ContactDeleted",
    "ContactUpdated",
    "DeletedRecord",
    "Invoice",
    "InvoiceCreated",
    "InvoiceDeleted",
    "InvoiceLine",
    "InvoiceSent",
    "InvoiceUpdated",
    "InvoiceVoid",
    "InvoiceVoided",
    "Payment",
    "PaymentAllocation",
    "PaymentCreated",
    "PaymentDeleted",
    "PaymentUpdated",
    "PlatformEvent",
    "ProcessingFee",
    "ProcessingFeeCreated",
    "ProcessingFeeDeleted",
    "ProcessingFeeUpdated",
    "Refund",
    "RefundCreated",
    "RefundDeleted",
    "RefundUpdated",
    "Service",
    "ServiceCreated",
    "ServiceDeleted",
    "ServiceUpdated",
    "parse_platform_event",
]

PLATFORM_SOURCE = "platform"

# --- entity payloads ---------------------------------------------------------------------------------


class ClientAccount(EventModel):
    """A client account (QBO Customer; ``name`` becomes ``DisplayName``)."""

    id: Id
    name: str = Field(
        min_length=1, description="Account name; QBO DisplayName (QBO takes up to 500 characters)"
    )
    account_type: Literal["individual", "company"] = "individual"
    active: bool = True
    contact_ids: list[Id] = Field(default_factory=list, description="Contacts linked to the account")
    email: Email | None = None
    phones: list[Phone] = Field(default_factory=list)
    billing_address: Address | None = None
    currency: Currency | None = Field(None, description="Account currency when the firm bills in several")


class Contact(EventModel):
    """A person (QBO Customer, synced both ways: name, email, phones, physical and mailing address)."""

    id: Id
    first_name: str | None = Field(None, max_length=100)
    middle_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    display_name: str = Field(min_length=1, max_length=500)
    email: Email | None = None
    phones: list[Phone] = Field(default_factory=list, max_length=5)
    physical_address: Address | None = None
    mailing_address: Address | None = None
    contact_type: str = Field("Client", min_length=1, max_length=100, description="Platform contact type")
    account_ids: list[Id] = Field(default_factory=list, description="Client accounts the contact belongs to")


class Service(EventModel):
    """A billable service (QBO Item of type Service)."""

    id: Id
    name: str = Field(min_length=1, description="QBO Item Name (QBO takes up to 100 characters)")
    description: str | None = Field(None, max_length=4000)
    rate: Money = Field(description="QBO UnitPrice (QBO refuses a negative rate: an error on the record)")
    rate_type: Literal["hour", "item", "flat"] = Field(description="QBO Sku")
    active: bool = True
    taxable: bool = False
    tax_rate_id: Id | None = None


class InvoiceLine(EventModel):
    id: Id
    service_id: Id | None = Field(None, description="Platform service; absent = mapped by work type")
    work_type_id: Id | None = Field(None, description="Mapped to a QBO item by the firm's work-type map")
    description: str | None = Field(None, max_length=4000)
    quantity: Quantity
    rate: Money
    amount: Money = Field(
        description="quantity x rate, rounded half-up to cents (else an error on the record)"
    )
    tax_rate_id: Id | None = Field(None, description="Platform tax rate; mapped by the firm's tax map")
    tax_amount: Money | None = Field(None, description="US automated sales tax amount, sent as such")


class Invoice(EventModel):
    """An invoice (QBO Invoice: same total and lines; ``number`` becomes ``DocNumber``)."""

    id: Id
    number: str = Field(
        min_length=1,
        description="QBO DocNumber. QBO takes up to 21 characters: a longer number is an error on the record "
        "(fix the number, or let QuickBooks number the invoice)",
    )
    account_id: Id
    status: Literal["draft", "sent", "posted", "partially_paid", "paid", "void"]
    issue_date: date
    due_date: date | None = None
    currency: Currency
    line_items: list[InvoiceLine] = Field(
        description="at least one line, ids unique, amounts adding up to subtotal "
        "(else an error on the record)"
    )
    subtotal: Money
    tax_total: Money = Decimal("0.00")
    total: Money = Field(description="subtotal + tax_total (else an error on the record)")
    balance_due: Money
    memo: str | None = Field(None, max_length=1000)
    sent_at: AwareDatetime | None = None


class InvoiceVoid(EventModel):
    id: Id
    voided_on: date


class PaymentAllocation(EventModel):
    invoice_id: Id
    amount: Money = Field(description="> 0 (else an error on the record)")


class DepositInfo(EventModel):
    """Where the money landed on the platform side (card processor payout), when known."""

    payout_id: Id | None = None
    deposited_on: date | None = None


class Payment(EventModel):
    """A payment, applied to one or several invoices (QBO Payment, or CreditMemo for credits).

    ``amount`` excludes processing fees (those come as ProcessingFee events). ``offline`` marks a
    payment recorded by hand on the platform: it syncs when the firm's "sync offline payments"
    setting is on, unless ``sync_override`` says otherwise for this payment.
    """

    id: Id
    account_id: Id
    payment_date: date
    currency: Currency
    amount: Money = Field(description="> 0, fees excluded (else an error on the record)")
    method: Literal["cash", "check", "card", "bank_transfer", "credit_balance", "promotional_credit", "other"]
    offline: bool = False
    sync_override: bool | None = Field(None, description="Per-payment choice; null = follow the firm setting")
    allocations: list[PaymentAllocation] = Field(
        description="at least one; each invoice once; not more than the amount (else an error on the record)"
    )
    processor: str | None = Field(None, max_length=50, description="e.g. stripe; null for offline payments")
    reference: str | None = Field(None, max_length=100, description="Processor transaction / check number")
    description: str | None = Field(None, max_length=4000)
    deposit: DepositInfo | None = None

    @property
    def credit_source(self) -> Literal["credit_balance", "promotional_credit"] | None:
        """Paid from client credit or promotional credit (synced as a QBO CreditMemo)."""
        if self.method in ("credit_balance", "promotional_credit"):
            return self.method  # type: ignore[return-value]
        return None


class Refund(EventModel):
    """A refund of (part of) a payment (QBO RefundReceipt, from the payment's deposit account)."""

    id: Id
    payment_id: Id
    account_id: Id
    refund_date: date
    currency: Currency
    amount: Money = Field(description="> 0 (else an error on the record)")
    invoice_id: Id | None = None
    reason: str | None = Field(None, max_length=1000)


class ProcessingFee(EventModel):
    """A payment processing fee (QBO Purchase in the firm's fee expense account)."""

    id: Id
    payment_id: Id
    account_id: Id | None = None
    fee_date: date
    currency: Currency
    amount: Money = Field(description="> 0 (else an error on the record)")
    processor: str = Field(min_length=1, max_length=50)
    description: str | None = Field(None, max_length=4000)


class DeletedRecord(EventModel):
    id: Id


# --- events ------------------------------------------------------------------------------------------


class PlatformEvent(EventModel):
    """Envelope of every platform event (the EventBridge ``detail``)."""

    ENTITY: ClassVar[str]
    ACTION: ClassVar[str]
    DETAIL_TYPE: ClassVar[str]

    firm_id: Id
    event_id: Id
    occurred_at: AwareDatetime
    correlation_id: Id
    version: int = Field(ge=1, description="Record version on the platform; strictly increasing per record")
    data: Any

    @property
    def record_id(self) -> str:
        """The platform id of the record this event is about."""
        return str(self.data.id)

    @property
    def record_version_key(self) -> str:
        """``<Entity>#<record id>#<version>``: one effect per record version, whatever the redeliveries."""
        return f"{self.ENTITY}#{self.record_id}#{self.version}"


class ClientAccountCreated(PlatformEvent):
    """A client account was created; ``data`` is its full state."""

    ENTITY: ClassVar[str] = "ClientAccount"
    ACTION: ClassVar[str] = "Created"
    DETAIL_TYPE: ClassVar[str] = "ClientAccount Created"
    data: ClientAccount


class ClientAccountUpdated(PlatformEvent):
    """A client account changed; ``data`` is its full new state (not a patch)."""

    ENTITY: ClassVar[str] = "ClientAccount"
    ACTION: ClassVar[str] = "Updated"
    DETAIL_TYPE: ClassVar[str] = "ClientAccount Updated"
    data: ClientAccount


class ClientAccountDeleted(PlatformEvent):
    """A client account was deleted; ``data`` holds its id."""

    ENTITY: ClassVar[str] = "ClientAccount"
    ACTION: ClassVar[str] = "Deleted"
    DETAIL_TYPE: ClassVar[str] = "ClientAccount Deleted"
    data: DeletedRecord


class ContactCreated(PlatformEvent):
    """A contact was created; ``data`` is its full state."""

    ENTITY: ClassVar[str] = "Contact"
    ACTION: ClassVar[str] = "Created"
    DETAIL_TYPE: ClassVar[str] = "Contact Created"
    data: Contact


class ContactUpdated(PlatformEvent):
    """A contact changed; ``data`` is its full new state (not a patch)."""

    ENTITY: ClassVar[str] = "Contact"
    ACTION: ClassVar[str] = "Updated"
    DETAIL_TYPE: ClassVar[str] = "Contact Updated"
    data: Contact


class ContactDeleted(PlatformEvent):
    """A contact was deleted; ``data`` holds its id."""

    ENTITY: ClassVar[str] = "Contact"
    ACTION: ClassVar[str] = "Deleted"
    DETAIL_TYPE: ClassVar[str] = "Contact Deleted"
    data: DeletedRecord


class ServiceCreated(PlatformEvent):
    """A service was created; ``data`` is its full state."""

    ENTITY: ClassVar[str] = "Service"
    ACTION: ClassVar[str] = "Created"
    DETAIL_TYPE: ClassVar[str] = "Service Created"
    data: Service


class ServiceUpdated(PlatformEvent):
    """A service changed; ``data`` is its full new state (not a patch)."""

    ENTITY: ClassVar[str] = "Service"
    ACTION: ClassVar[str] = "Updated"
    DETAIL_TYPE: ClassVar[str] = "Service Updated"
    data: Service


class ServiceDeleted(PlatformEvent):
    """A service was deleted; ``data`` holds its id."""

    ENTITY: ClassVar[str] = "Service"
    ACTION: ClassVar[str] = "Deleted"
    DETAIL_TYPE: ClassVar[str] = "Service Deleted"
    data: DeletedRecord


class InvoiceCreated(PlatformEvent):
    """A invoice was created; ``data`` is its full state."""

    ENTITY: ClassVar[str] = "Invoice"
    ACTION: ClassVar[str] = "Created"
    DETAIL_TYPE: ClassVar[str] = "Invoice Created"
    data: Invoice


class InvoiceUpdated(PlatformEvent):
    """A invoice changed; ``data`` is its full new state (not a patch)."""

    ENTITY: ClassVar[str] = "Invoice"
    ACTION: ClassVar[str] = "Updated"
    DETAIL_TYPE: ClassVar[str] = "Invoice Updated"
    data: Invoice


class InvoiceSent(PlatformEvent):
    """An invoice was sent or posted (invoices sync from then on); ``data`` is its full state."""

    ENTITY: ClassVar[str] = "Invoice"
    ACTION: ClassVar[str] = "Sent"
    DETAIL_TYPE: ClassVar[str] = "Invoice Sent"
    data: Invoice


class InvoiceVoided(PlatformEvent):
    """An invoice was voided; ``data`` holds its id and void date."""

    ENTITY: ClassVar[str] = "Invoice"
    ACTION: ClassVar[str] = "Voided"
    DETAIL_TYPE: ClassVar[str] = "Invoice Voided"
    data: InvoiceVoid


class InvoiceDeleted(PlatformEvent):
    """A invoice was deleted; ``data`` holds its id."""

    ENTITY: ClassVar[str] = "Invoice"
    ACTION: ClassVar[str] = "Deleted"
    DETAIL_TYPE: ClassVar[str] = "Invoice Deleted"
    data: DeletedRecord


class PaymentCreated(PlatformEvent):
    """A payment was created; ``data`` is its full state."""

    ENTITY: ClassVar[str] = "Payment"
    ACTION: ClassVar[str] = "Created"
    DETAIL_TYPE: ClassVar[str] = "Payment Created"
    data: Payment


class PaymentUpdated(PlatformEvent):
    """A payment changed; ``data`` is its full new state (not a patch)."""

    ENTITY: ClassVar[str] = "Payment"
    ACTION: ClassVar[str] = "Updated"
    DETAIL_TYPE: ClassVar[str] = "Payment Updated"
    data: Payment


class PaymentDeleted(PlatformEvent):
    """A payment was deleted; ``data`` holds its id."""

    ENTITY: ClassVar[str] = "Payment"
    ACTION: ClassVar[str] = "Deleted"
    DETAIL_TYPE: ClassVar[str] = "Payment Deleted"
    data: DeletedRecord


class RefundCreated(PlatformEvent):
    """A refund was created; ``data`` is its full state."""

    ENTITY: ClassVar[str] = "Refund"
    ACTION: ClassVar[str] = "Created"
    DETAIL_TYPE: ClassVar[str] = "Refund Created"
    data: Refund


class RefundUpdated(PlatformEvent):
    """A refund changed; ``data`` is its full new state (not a patch)."""

    ENTITY: ClassVar[str] = "Refund"
    ACTION: ClassVar[str] = "Updated"
    DETAIL_TYPE: ClassVar[str] = "Refund Updated"
    data: Refund


class RefundDeleted(PlatformEvent):
    """A refund was deleted; ``data`` holds its id."""

    ENTITY: ClassVar[str] = "Refund"
    ACTION: ClassVar[str] = "Deleted"
    DETAIL_TYPE: ClassVar[str] = "Refund Deleted"
    data: DeletedRecord


class ProcessingFeeCreated(PlatformEvent):
    """A processing fee was created; ``data`` is its full state."""

    ENTITY: ClassVar[str] = "ProcessingFee"
    ACTION: ClassVar[str] = "Created"
    DETAIL_TYPE: ClassVar[str] = "ProcessingFee Created"
    data: ProcessingFee


class ProcessingFeeUpdated(PlatformEvent):
    """A processing fee changed; ``data`` is its full new state (not a patch)."""

    ENTITY: ClassVar[str] = "ProcessingFee"
    ACTION: ClassVar[str] = "Updated"
    DETAIL_TYPE: ClassVar[str] = "ProcessingFee Updated"
    data: ProcessingFee


class ProcessingFeeDeleted(PlatformEvent):
    """A processing fee was deleted; ``data`` holds its id."""

    ENTITY: ClassVar[str] = "ProcessingFee"
    ACTION: ClassVar[str] = "Deleted"
    DETAIL_TYPE: ClassVar[str] = "ProcessingFee Deleted"
    data: DeletedRecord


#: Every platform event class by its EventBridge DetailType.
PLATFORM_EVENT_TYPES: dict[str, type[PlatformEvent]] = {
    cls.DETAIL_TYPE: cls
    for cls in (
        ClientAccountCreated,
        ClientAccountUpdated,
        ClientAccountDeleted,
        ContactCreated,
        ContactUpdated,
        ContactDeleted,
        ServiceCreated,
        ServiceUpdated,
        ServiceDeleted,
        InvoiceCreated,
        InvoiceUpdated,
        InvoiceSent,
        InvoiceVoided,
        InvoiceDeleted,
        PaymentCreated,
        PaymentUpdated,
        PaymentDeleted,
        RefundCreated,
        RefundUpdated,
        RefundDeleted,
        ProcessingFeeCreated,
        ProcessingFeeUpdated,
        ProcessingFeeDeleted,
    )
}


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False)[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "detail"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 10
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse_platform_event(event: Mapping[str, Any]) -> PlatformEvent:
    """Validate a raw EventBridge event from the platform and return its typed detail.

    Raises:
        BadRequest: not an EventBridge event, source is not ``platform``, unknown detail type, or a
            detail that does not match its schema. The message lists the field paths and what is
            wrong, never field values. ``err.extra`` has ``detail_type`` and ``event_id`` when known.
    """
    if not isinstance(event, Mapping):
        raise BadRequest("platform event must be a JSON object (an EventBridge event)")
    source = event.get("source")
    detail_type = event.get("detail-type")
    detail = event.get("detail")
    # the ids that say whose event it is (strings only, never other values): on every refusal below
    ids: dict[str, str] = {}
    if isinstance(detail, Mapping):
        ids = {k: v for k in ("event_id", "firm_id") if isinstance(v := detail.get(k), str)}
    if source != PLATFORM_SOURCE:
        raise BadRequest(f"event source must be {PLATFORM_SOURCE!r}, got {source!r}", **_ids(ids))
    if not isinstance(detail_type, str):
        raise BadRequest("event has no detail-type", **_ids(ids))
    cls = PLATFORM_EVENT_TYPES.get(detail_type)
    if cls is None:
        raise BadRequest(
            f"unknown platform event detail-type {detail_type[:100]!r}",
            detail_type=detail_type[:100],
            **_ids(ids),
        )
    if not isinstance(detail, Mapping):
        raise BadRequest(f"{detail_type}: detail must be a JSON object", detail_type=detail_type)
    try:
        return cls.model_validate(detail)
    except ValidationError as exc:
        # `from None`: the pydantic error repr embeds input values (client personal data).
        raise BadRequest(
            f"{detail_type}: invalid detail: {_describe(exc)}", detail_type=detail_type, **_ids(ids)
        ) from None


def _ids(ids: Mapping[str, str]) -> dict[str, Any]:
    return {"event_id": ids.get("event_id"), "firm_id": ids.get("firm_id")}
