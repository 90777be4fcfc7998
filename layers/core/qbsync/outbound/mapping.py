"""Pure mapping of platform records to QuickBooks Online request payloads (PRODUCT.md C, QBO.md §5, §9).

No I/O: every function takes the platform record, the QBO ids of its already-synced prerequisites
(:class:`Resolved`), the realm's reference data (:class:`~qbsync.qbo.reference.QboReference`) and the
firm's settings (:class:`~qbsync.models.firm_settings.FirmSyncSettings`), and returns a JSON-ready dict to
send as a create body (add ``Id``/``SyncToken``/``sparse`` for an update; the ``Line`` array is always
complete, as QBO requires on line updates).

Money is computed in :class:`~decimal.Decimal`, quantised to cents with ROUND_HALF_UP (:func:`money`),
never in floats. In the returned payload money and quantities are JSON numbers made from those exact
decimals (``Decimal(str(value))`` gives them back exactly), so ``json.dumps`` works as is.

Every payload carries a marker (:func:`marker`, ``qbsync:<EntityType>:<platform id>``) at the start
of ``PrivateNote`` (``Notes`` for customers, ``Description`` for items) so that a lookup after an
uncertain write recognises our own object (:func:`parse_marker`).

Every rule the data breaks raises :class:`MappingError` (a :class:`~qbsync.errors.DataError`) with an
error-center ``category``, a stable ``reason_code`` and a plain-language ``explanation`` with the fix.

What QuickBooks would refuse whatever the company (:func:`check_record`, issue 11): a name longer than
QuickBooks takes, a negative rate or line, an amount that is not positive where it must be, an amount
beyond QuickBooks' 10 integer digits, a date outside the range qbsync sends (1900-01-01 .. 2099-12-31),
invoice lines or totals that do not add up, a payment allocated beyond its amount. The event contract
accepts those well-typed values (only what cannot be understood is refused there), so each becomes an
explained error on its record before any QuickBooks call. An invoice number over 21 characters is refused
only where it would be sent (a company with custom transaction numbers, :func:`invoice_payload`): the
firm fixes the number, or lets QuickBooks number the invoice (``qbo_numbers``).
Messages name platform/QBO ids only, never client personal data. ``before_sync_start`` means "mark the
record Skipped"; a missing prerequisite (``*_not_synced``) means "wait", which
:func:`dependencies` lets the caller avoid up front.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from qbsync import vocab
from qbsync.errors import DataError
from qbsync.models.firm_settings import FirmSyncSettings, TaxMapping
from qbsync.models.platform_events import (
    ClientAccount,
    Invoice,
    InvoiceLine,
    Payment,
    ProcessingFee,
    Refund,
    Service,
)
from qbsync.models.record_key import marker, parse_marker
from qbsync.qbo.reference import (
    DEPOSIT_ACCOUNT_TYPES,
    EXPENSE_ACCOUNT_TYPES,
    INCOME_ACCOUNT_TYPES,
    PAYMENT_METHOD_NAMES,
    REQUIRED_PAYMENT_METHODS,
    QboAccount,
    QboReference,
)
from qbsync.vocab import MappingCategory

__all__ = [
    "AMOUNT_LIMIT",
    "DOC_NUMBER_MAX",
    "EARLIEST_DATE",
    "LATEST_DATE",
    "PAYMENT_REF_MAX",
    "MappingError",
    "Resolved",
    "account_should_sync",
    "check_record",
    "credit_application_payload",
    "credit_memo_payload",
    "customer_payload",
    "dependencies",
    "fee_expense_account",
    "invoice_number_note",
    "invoice_payload",
    "item_payload",
    "line_amount",
    "marker",
    "money",
    "parse_marker",
    "payment_deposit_account",
    "payment_method_for",
    "payment_payload",
    "payment_should_sync",
    "purchase_payload",
    "qbo_entity_for",
    "refund_receipt_payload",
    "round_half_up",
    "service_income_account",
]

Category = MappingCategory

DOC_NUMBER_MAX = 21
PAYMENT_REF_MAX = 21
PRIVATE_NOTE_MAX = 4000
#: QBO's name limits: Customer DisplayName, Item Name
DISPLAY_NAME_MAX = 500
ITEM_NAME_MAX = 100
#: QBO money fields are 10.5 decimals (QBO.md §5): an amount must stay below 10^10
AMOUNT_LIMIT = Decimal("10000000000")
#: the dates qbsync sends to QuickBooks. QBO does not document its range; a date outside this window is
#: a typo on the platform (0226 for 2026) that would land in a closed or absurd period
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2099, 12, 31)
#: QBO's limit of lines on a (taxable) invoice
INVOICE_LINES_MAX = 750
_CENT = Decimal("0.01")
_UNIT_PRICE_STEP = Decimal("0.00001")  # QBO money fields: 10.5 format
_NAME_FORBIDDEN = re.compile(r"[:\t\n\r]")

#: Methods whose QBO PaymentMethod must exist (the others are sent without one when missing).
_REQUIRED_METHODS = frozenset(REQUIRED_PAYMENT_METHODS)


class MappingError(DataError):
    """A platform record cannot be mapped to QBO until something is fixed (or it must be skipped).

    Attributes: ``category`` (error-center category, one of :data:`qbsync.vocab.MAPPING_CATEGORIES`),
    ``reason_code`` (stable, e.g. ``tax_rate_unmapped``), ``explanation`` (plain language, says the fix; no
    client personal data). ``str(err)`` is ``explanation``.
    """

    code = "mapping_error"

    def __init__(
        self,
        category: Category,
        reason_code: str,
        explanation: str,
        *,
        entity: str | None = None,
        entity_id: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(
            explanation,
            entity=entity,
            entity_id=entity_id,
            category=category,
            reason_code=reason_code,
            **extra,
        )
        self.category = category
        self.reason_code = reason_code
        self.explanation = explanation


@dataclass
class Resolved:
    """QBO ids of the prerequisites the caller has already synced (see :func:`dependencies`).

    * ``customer_id`` - the Customer of the record's client account;
    * ``item_ids`` - QBO Item id by platform service id (invoice lines with a ``service_id``);
    * ``invoice_ids`` - QBO Invoice id by platform invoice id (payment allocations);
    * ``payment_id`` / ``payment_deposit_account_id`` / ``payment_method_id`` - the QBO Payment a
      refund or fee belongs to, the account it was deposited to, and its PaymentMethod;
    * ``credit_memo_id`` - the CreditMemo of a credit payment (to apply it to the invoices);
    * ``fallback_item_id`` - item for credit memo / refund lines (default: settings.default_service_id,
      then the "Sales" item);
    * ``vendor_id`` - the processor's Vendor (payee of fee purchases), when the caller has one;
    * ``service_names`` - platform service name by id: a line whose service goes to the "Sales" item
      (no service income account) and has no description gets the service name as its description.
    """

    customer_id: str | None = None
    item_ids: dict[str, str] = field(default_factory=dict)
    invoice_ids: dict[str, str] = field(default_factory=dict)
    payment_id: str | None = None
    payment_deposit_account_id: str | None = None
    payment_method_id: str | None = None
    credit_memo_id: str | None = None
    fallback_item_id: str | None = None
    vendor_id: str | None = None
    service_names: dict[str, str] = field(default_factory=dict)


# --- money -------------------------------------------------------------------------------------------


def money(value: Decimal | int | str) -> Decimal:
    """``value`` as a Decimal quantised to cents, ROUND_HALF_UP.

    Raises:
        TypeError: ``value`` is a float or a bool (floats have already lost cents).
        ValueError: ``value`` is not a finite number.
    """
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise TypeError("money needs a Decimal, int or str, never a float")
    try:
        dec = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("money value is not a number") from None
    if not dec.is_finite():
        raise ValueError("money value must be finite")
    return dec.quantize(_CENT, rounding=ROUND_HALF_UP)


def round_half_up(value: Decimal, places: int = 2) -> Decimal:
    """``value`` rounded half-up to ``places`` decimals (QBO's own rounding of Qty x UnitPrice)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def line_amount(quantity: Decimal, rate: Decimal) -> Decimal:
    """``round_half_up(quantity * rate, 2)``: the only line Amount QBO accepts (else fault 6070)."""
    return round_half_up(quantity * rate, 2)


def _num(value: Decimal) -> int | float:
    """A JSON number from an exact decimal (integral values as int)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


# --- markers -----------------------------------------------------------------------------------------
# ``marker`` / ``parse_marker`` live in qbsync.models.record_key (the inbound side reads them too); they
# are imported above and stay importable from here.


def _note(entity_type: str, platform_id: str, *parts: str | None) -> str:
    text = "; ".join([marker(entity_type, platform_id), *(p for p in parts if p)])
    return text[:PRIVATE_NOTE_MAX]


# --- dependencies ------------------------------------------------------------------------------------

Record = ClientAccount | Service | Invoice | Payment | Refund | ProcessingFee


def qbo_entity_for(record: Record) -> str:
    """The QBO entity a record becomes (qbsync.vocab; a credit-balance payment becomes a CreditMemo)."""
    if not isinstance(record, Record):
        raise TypeError(f"not a platform record: {type(record).__name__}")
    if isinstance(record, Payment) and record.credit_source:
        return "CreditMemo"
    # the platform record models are named for their platform entity (ClientAccount, …)
    return vocab.RECORD_TYPE_INFO[vocab.RECORD_TYPE_OF[type(record).__name__]].qbo_entity


def dependencies(record: Record) -> list[tuple[str, str]]:
    """The ``(entity_type, platform_id)`` records that must be synced before ``record``, in order.

    invoice -> its client account, then each distinct service of its lines; payment -> its client
    account, then each invoice it is applied to; refund -> its payment; fee -> its payment. Client
    accounts and services have none. Lines mapped by work type need no synced record (the firm's
    work-type map names QBO items). Raises TypeError for anything that is not a platform record.
    """
    if isinstance(record, ClientAccount | Service):
        return []
    if isinstance(record, Invoice):
        deps = [("ClientAccount", record.account_id)]
        seen: set[str] = set()
        for line in record.line_items:
            if line.service_id and line.service_id not in seen:
                seen.add(line.service_id)
                deps.append(("Service", line.service_id))
        return deps
    if isinstance(record, Payment):
        return [("ClientAccount", record.account_id)] + [
            ("Invoice", a.invoice_id) for a in record.allocations
        ]
    if isinstance(record, Refund | ProcessingFee):
        return [("Payment", record.payment_id)]
    raise TypeError(f"not a platform record: {type(record).__name__}")


# --- what QuickBooks would refuse (issue 11) ----------------------------------------------------------


def check_record(record: Record) -> None:
    """Refuse, before any QuickBooks call, what QuickBooks would refuse whatever the company (module doc).

    Pure: needs neither reference data nor settings. The payload functions call it too, so no payload
    QuickBooks refuses is ever built.

    Raises MappingError in the record's category: (Services) ``service_rate_negative``; (Invoices)
    ``invoice_without_lines``, ``too_many_lines``, ``duplicate_line_ids``, ``negative_line_amount``,
    ``line_amount_mismatch``, ``invoice_totals_mismatch``, ``negative_tax``, ``due_date_before_issue_date``;
    (Payments) ``payment_without_allocations``, ``duplicate_allocation``, ``allocations_exceed_amount``;
    (any) ``amount_not_positive``, ``amount_too_large``, ``date_out_of_range``.
    """
    if isinstance(record, Service):
        _check_service(record)
    elif isinstance(record, Invoice):
        _check_invoice(record)
    elif isinstance(record, Payment):
        _check_payment_values(record)
    elif isinstance(record, Refund):
        _check_amounts("Refunds", "refund", record.id, amount=record.amount)
        _check_date("Refunds", "refund", record.id, "refund date", record.refund_date)
    elif isinstance(record, ProcessingFee):
        _check_amounts("Expenses", "processing fee", record.id, amount=record.amount)
        _check_date("Expenses", "processing fee", record.id, "fee date", record.fee_date)


def _refused(category: Category, code: str, entity: str, entity_id: str, text: str) -> MappingError:
    return MappingError(category, code, text, entity=entity, entity_id=entity_id)


def _check_size(category: Category, entity: str, entity_id: str, field_name: str, value: Decimal) -> None:
    if abs(value) >= AMOUNT_LIMIT:
        raise _refused(
            category,
            "amount_too_large",
            entity,
            entity_id,
            f"The {field_name} of this {entity} is larger than QuickBooks can record (amounts must stay "
            f"below 10,000,000,000.00). Correct the {field_name} on the platform; the corrected {entity} "
            "syncs by itself.",
        )


def _check_amounts(category: Category, entity: str, entity_id: str, *, amount: Decimal) -> None:
    if amount <= 0:
        raise _refused(
            category,
            "amount_not_positive",
            entity,
            entity_id,
            f"The amount of this {entity} is zero or negative, which QuickBooks does not record as a "
            f"{entity}. Correct the amount on the platform (or delete the {entity}); the corrected {entity} "
            "syncs by itself.",
        )
    _check_size(category, entity, entity_id, "amount", amount)


def _check_date(category: Category, entity: str, entity_id: str, field_name: str, day: date) -> None:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise _refused(
            category,
            "date_out_of_range",
            entity,
            entity_id,
            f"The {field_name} of this {entity} ({day.isoformat()}) is outside the dates qbsync sends to "
            f"QuickBooks ({EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}); it is most likely a "
            f"typo. Correct the {field_name} on the platform; the corrected {entity} syncs by itself.",
        )


def _check_service(service: Service) -> None:
    if service.rate < 0:
        raise _refused(
            "Services",
            "service_rate_negative",
            "service",
            service.id,
            "This service has a negative rate, which QuickBooks does not accept for a product or service. "
            "Set a rate of zero or more on the platform (bill discounts as a discount or a credit); the "
            "corrected service syncs by itself.",
        )
    _check_size("Services", "service", service.id, "rate", service.rate)


def _check_invoice_lines(invoice: Invoice) -> None:
    eid = invoice.id
    if not invoice.line_items:
        raise _refused(
            "Invoices",
            "invoice_without_lines",
            "invoice",
            eid,
            "This invoice has no line items; QuickBooks needs at least one. Add a line on the platform; the "
            "corrected invoice syncs by itself.",
        )
    if len(invoice.line_items) > INVOICE_LINES_MAX:
        raise _refused(
            "Invoices",
            "too_many_lines",
            "invoice",
            eid,
            f"This invoice has {len(invoice.line_items)} lines; QuickBooks accepts up to "
            f"{INVOICE_LINES_MAX}. "
            "Split it into several invoices on the platform.",
        )
    if len({line.id for line in invoice.line_items}) != len(invoice.line_items):
        raise _refused(
            "Invoices",
            "duplicate_line_ids",
            "invoice",
            eid,
            "Two lines of this invoice carry the same line id, so qbsync cannot tell them apart. Save the "
            "invoice again on the platform (if it persists, contact support with the invoice id).",
        )
    for line in invoice.line_items:
        if line.amount < 0 or line.rate < 0:
            raise _refused(
                "Invoices",
                "negative_line_amount",
                "invoice",
                eid,
                f"Invoice line {line.id} has a negative rate or amount, which QuickBooks does not accept. "
                "Use a discount or a credit on the platform instead.",
            )
        if line.tax_amount is not None and line.tax_amount < 0:
            raise _refused(
                "Invoices",
                "negative_tax",
                "invoice",
                eid,
                f"Invoice line {line.id} has a negative tax amount, which QuickBooks does not accept. "
                "Correct the line's tax on the platform.",
            )
        _check_size("Invoices", "invoice", eid, f"rate of line {line.id}", line.rate)
        _check_size("Invoices", "invoice", eid, f"amount of line {line.id}", line.amount)
        if abs(line_amount(line.quantity, line.rate) - line.amount) > _CENT:
            raise _refused(
                "Invoices",
                "line_amount_mismatch",
                "invoice",
                eid,
                f"The amount of invoice line {line.id} is not its quantity times its rate, and QuickBooks "
                "refuses a line whose amount differs. Correct the line on the platform; the corrected "
                "invoice syncs by itself.",
            )


def _check_invoice(invoice: Invoice) -> None:
    eid = invoice.id
    _check_invoice_lines(invoice)
    if invoice.tax_total < 0:
        raise _refused(
            "Invoices",
            "negative_tax",
            "invoice",
            eid,
            "This invoice has a negative tax total, which QuickBooks does not accept. Correct its tax on "
            "the platform.",
        )
    for name, value in (("total", invoice.total), ("balance due", invoice.balance_due)):
        _check_size("Invoices", "invoice", eid, name, value)
    lines_sum = sum((line.amount for line in invoice.line_items), Decimal("0.00"))
    if lines_sum != invoice.subtotal or invoice.subtotal + invoice.tax_total != invoice.total:
        raise _refused(
            "Invoices",
            "invoice_totals_mismatch",
            "invoice",
            eid,
            "The totals of this invoice do not add up (the subtotal must be the sum of the lines and the "
            "total the subtotal plus tax), so QuickBooks would show another total than the platform. "
            "Save the invoice again on the platform (if it persists, contact support with the invoice id).",
        )
    _check_date("Invoices", "invoice", eid, "issue date", invoice.issue_date)
    if invoice.due_date is not None:
        _check_date("Invoices", "invoice", eid, "due date", invoice.due_date)
        if invoice.due_date < invoice.issue_date:
            raise _refused(
                "Invoices",
                "due_date_before_issue_date",
                "invoice",
                eid,
                "This invoice is due before it is issued, which QuickBooks does not accept. Correct the "
                "due date on the platform; the corrected invoice syncs by itself.",
            )


def _check_payment_values(payment: Payment) -> None:
    eid = payment.id
    _check_amounts("Payments", "payment", eid, amount=payment.amount)
    _check_date("Payments", "payment", eid, "payment date", payment.payment_date)
    if not payment.allocations:
        raise _refused(
            "Payments",
            "payment_without_allocations",
            "payment",
            eid,
            "This payment is not applied to any invoice, so qbsync cannot tell QuickBooks what it pays. "
            "Apply it to its invoice(s) on the platform; the corrected payment syncs by itself.",
        )
    if len({a.invoice_id for a in payment.allocations}) != len(payment.allocations):
        raise _refused(
            "Payments",
            "duplicate_allocation",
            "payment",
            eid,
            "This payment is applied twice to the same invoice. Correct its allocations on the platform; "
            "the corrected payment syncs by itself.",
        )
    for alloc in payment.allocations:
        if alloc.amount <= 0:
            raise _refused(
                "Payments",
                "amount_not_positive",
                "payment",
                eid,
                f"The amount this payment applies to invoice {alloc.invoice_id} is zero or negative. Correct "
                "its allocations on the platform; the corrected payment syncs by itself.",
            )
    if sum((a.amount for a in payment.allocations), Decimal("0.00")) > payment.amount:
        raise _refused(
            "Payments",
            "allocations_exceed_amount",
            "payment",
            eid,
            "This payment is applied to its invoices for more than its own amount, which QuickBooks refuses. "
            "Correct the allocations (or the amount) on the platform; the corrected payment syncs by itself.",
        )


# --- shared checks -----------------------------------------------------------------------------------


def _check_dates(
    txn_date: date,
    ref: QboReference,
    settings: FirmSyncSettings,
    category: Category,
    entity: str,
    entity_id: str,
) -> None:
    start = settings.sync_start_date
    if start is not None and txn_date < start:
        raise MappingError(
            category,
            "before_sync_start",
            f"This {entity} is dated {txn_date.isoformat()}, before the sync start date "
            f"{start.isoformat()}, so it is not synced. Move the sync start date earlier to include it.",
            entity=entity,
            entity_id=entity_id,
        )
    closed = ref.book_close_date
    if closed is not None and txn_date <= closed:
        raise MappingError(
            category,
            "books_closed",
            f"The books are closed in QuickBooks through {closed.isoformat()} and this {entity} is dated "
            f"{txn_date.isoformat()}. Reopen the period in QuickBooks (or move its closing date), "
            "then resync.",
            entity=entity,
            entity_id=entity_id,
        )


def _currency(
    currency: str | None, ref: QboReference, category: Category, entity: str, entity_id: str
) -> dict[str, str] | None:
    """CurrencyRef to send (multicurrency companies only); a foreign currency without it is an error."""
    if currency is None:
        return None
    if ref.multicurrency:
        return {"value": currency}
    if currency != ref.home_currency:
        raise MappingError(
            category,
            "currency_unsupported",
            f"This {entity} is in {currency} but the QuickBooks company works only in "
            f"{ref.home_currency}. Turn on multicurrency in QuickBooks, or record it in {ref.home_currency}.",
            entity=entity,
            entity_id=entity_id,
        )
    return None


def _require_customer(resolved: Resolved, category: Category, entity: str, entity_id: str) -> str:
    if not resolved.customer_id:
        raise MappingError(
            category,
            "customer_not_synced",
            f"Sync the client account first: this {entity} waits until its client account is synced "
            "to QuickBooks.",
            entity=entity,
            entity_id=entity_id,
        )
    return resolved.customer_id


def _deposit_account(
    account_id: str | None,
    ref: QboReference,
    category: Category,
    entity: str,
    entity_id: str,
) -> QboAccount:
    if account_id is None:
        ufunds = ref.undeposited_funds()
        if ufunds is None:
            raise MappingError(
                category,
                "undeposited_funds_missing",
                "QuickBooks has no active Undeposited Funds account. Choose a deposit account (Bank or "
                "Other Current Asset) in the sync settings.",
                entity=entity,
                entity_id=entity_id,
            )
        return ufunds
    acct = ref.account(account_id)
    if acct is None or not acct.active:
        raise MappingError(
            category,
            "deposit_account_missing",
            f"The deposit account (QuickBooks account {account_id}) no longer exists or is inactive. "
            "Choose another deposit account in the sync settings.",
            entity=entity,
            entity_id=entity_id,
        )
    if acct.account_type not in DEPOSIT_ACCOUNT_TYPES:
        raise MappingError(
            category,
            "deposit_account_type",
            f"The deposit account '{acct.name}' is of type {acct.account_type}; QuickBooks only accepts "
            "Bank or Other Current Asset accounts. Choose one of those in the sync settings.",
            entity=entity,
            entity_id=entity_id,
        )
    return acct


def _fallback_item(
    resolved: Resolved,
    ref: QboReference,
    settings: FirmSyncSettings,
    category: Category,
    entity: str,
    eid: str,
) -> str:
    item = resolved.fallback_item_id or settings.default_service_id or ref.sales_item_id
    if not item:
        raise MappingError(
            category,
            "default_service_missing",
            "No service to put this on: choose a default service in the sync settings (QuickBooks has "
            "no 'Sales' item).",
            entity=entity,
            entity_id=eid,
        )
    return item


# --- customers and items -----------------------------------------------------------------------------


def _qbo_name(name: str, category: Category, entity: str, entity_id: str, *, limit: int) -> str:
    if len(name) > limit:
        raise MappingError(
            category,
            "name_too_long",
            f"QuickBooks accepts {entity} names of up to {limit} characters and this one has {len(name)}. "
            f"Shorten the {entity}'s name on the platform; the corrected record syncs by itself.",
            entity=entity,
            entity_id=entity_id,
        )
    if _NAME_FORBIDDEN.search(name):
        raise MappingError(
            category,
            "name_invalid_characters",
            f"QuickBooks does not accept a colon, tab or line break in a {entity} name. Rename the "
            f"{entity} on the platform without them, then resync.",
            entity=entity,
            entity_id=entity_id,
        )
    return name


def customer_payload(account: ClientAccount, ref: QboReference, settings: FirmSyncSettings) -> dict[str, Any]:
    """Customer create body for a client account (``name`` -> ``DisplayName``).

    Customer type: ``settings.customer_type_id`` (must exist and be active), else "Individual" when
    the company has it, else none. Raises MappingError (Accounts): ``name_invalid_characters``,
    ``email_too_long``, ``customer_type_missing``, ``currency_unsupported``.
    """
    eid = account.id
    body: dict[str, Any] = {
        "DisplayName": _qbo_name(account.name, "Accounts", "client account", eid, limit=DISPLAY_NAME_MAX),
        "Active": account.active,
        "Notes": marker("ClientAccount", account.id),
    }
    if account.account_type == "company":
        body["CompanyName"] = account.name[:100]  # QBO limit; DisplayName keeps the full name
    if account.email:
        if len(account.email) > 100:
            raise MappingError(
                "Accounts",
                "email_too_long",
                "QuickBooks accepts email addresses of up to 100 characters. Shorten the client account's "
                "email on the platform, then resync.",
                entity="client account",
                entity_id=eid,
            )
        body["PrimaryEmailAddr"] = {"Address": account.email}
    # QBO has four phone slots: the first mobile / fax go to theirs, other numbers fill Primary, then
    # Alternate; further numbers have no place in QBO.
    slots = {"mobile": "Mobile", "fax": "Fax"}
    for phone in account.phones:
        key = slots.get(phone.type)
        if key is None:
            key = "PrimaryPhone" if "PrimaryPhone" not in body else "AlternatePhone"
        body.setdefault(key, {"FreeFormNumber": phone.number})
    if account.billing_address is not None:
        addr = account.billing_address
        bill = {
            "Line1": addr.line1,
            "Line2": addr.line2,
            "City": addr.city,
            "CountrySubDivisionCode": addr.region,
            "PostalCode": addr.postal_code,
            "Country": addr.country,
        }
        bill = {k: v for k, v in bill.items() if v}
        if bill:
            body["BillAddr"] = bill
    if settings.customer_type_id is not None:
        ctype = ref.customer_type(settings.customer_type_id)
        if ctype is None or not ctype.active:
            raise MappingError(
                "Accounts",
                "customer_type_missing",
                f"The customer type chosen in the sync settings (QuickBooks id {settings.customer_type_id}) "
                "no longer exists or is inactive. Choose another customer type in the sync settings.",
                entity="client account",
                entity_id=eid,
            )
        body["CustomerTypeRef"] = {"value": ctype.id}
    else:
        individual = ref.customer_type_named("Individual")
        if individual is not None:
            body["CustomerTypeRef"] = {"value": individual.id}
    currency = _currency(account.currency, ref, "Accounts", "client account", eid)
    if currency:
        body["CurrencyRef"] = currency
    return body


def service_income_account(ref: QboReference, settings: FirmSyncSettings) -> QboAccount | None:
    """The income account of synced services, or None when lines go to the "Sales" item instead.

    Raises MappingError (Services): ``income_account_missing`` / ``income_account_type`` when the
    account chosen in the settings is gone, inactive or not an Income account.
    """
    if settings.service_income_account_id is None:
        return ref.uncategorized_income()
    acct = ref.account(settings.service_income_account_id)
    if acct is None or not acct.active:
        raise MappingError(
            "Services",
            "income_account_missing",
            f"The service income account (QuickBooks account {settings.service_income_account_id}) no "
            "longer exists or is inactive. Choose another income account in the sync settings.",
            entity="service",
        )
    if acct.account_type not in INCOME_ACCOUNT_TYPES:
        raise MappingError(
            "Services",
            "income_account_type",
            f"The service income account '{acct.name}' is of type {acct.account_type}; services need an "
            "Income account. Choose one in the sync settings.",
            entity="service",
        )
    return acct


def item_payload(service: Service, ref: QboReference, settings: FirmSyncSettings) -> dict[str, Any]:
    """Item (Type Service) create body: name -> Name, rate -> UnitPrice, rate type -> Sku.

    Raises MappingError (Services): ``name_invalid_characters``; ``income_account_missing`` /
    ``income_account_type`` (see :func:`service_income_account`); ``services_use_sales_item`` when no
    service income account is set and QBO has no "Uncategorized Income": then services are not created
    and invoice lines go to the "Sales" item (the caller records the service as mapped to
    ``ref.sales_item_id``); what :func:`check_record` refuses (``service_rate_negative``,
    ``amount_too_large``).
    """
    eid = service.id
    check_record(service)
    name = _qbo_name(service.name, "Services", "service", eid, limit=ITEM_NAME_MAX)
    income = service_income_account(ref, settings)
    if income is None:
        raise MappingError(
            "Services",
            "services_use_sales_item",
            "No service income account is set and QuickBooks has no 'Uncategorized Income' account, so "
            "services are billed on QuickBooks' 'Sales' item. Choose a service income account in the "
            "sync settings to sync services as their own items.",
            entity="service",
            entity_id=eid,
        )
    body: dict[str, Any] = {
        "Name": name,
        "Type": "Service",
        "UnitPrice": _num(money(service.rate)),
        "Sku": service.rate_type,
        "IncomeAccountRef": {"value": income.id},
        "Taxable": service.taxable,
        "Active": service.active,
    }
    if service.description:
        body["Description"] = service.description
    return body


# --- invoices ----------------------------------------------------------------------------------------


def _line_item(
    line: InvoiceLine, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings, invoice_id: str
) -> str:
    if line.service_id:
        item = resolved.item_ids.get(line.service_id)
        if item:
            return item
        # No service income account: services are not created, their lines go to the "Sales" item.
        if (
            settings.service_income_account_id is None
            and ref.uncategorized_income() is None
            and ref.sales_item_id
        ):
            return ref.sales_item_id
        raise MappingError(
            "Invoices",
            "service_not_synced",
            f"Sync the service first: invoice line {line.id} uses service {line.service_id}, which is not "
            "synced to QuickBooks yet.",
            entity="invoice",
            entity_id=invoice_id,
        )
    if line.work_type_id and line.work_type_id in settings.work_type_map:
        return settings.work_type_map[line.work_type_id]
    item = settings.default_service_id or ref.sales_item_id
    if not item:
        raise MappingError(
            "Services",
            "work_type_unmapped",
            f"Invoice line {line.id} has no service and its work type is not mapped. Map the work type "
            "or choose a default service in the sync settings.",
            entity="invoice",
            entity_id=invoice_id,
        )
    return item


def _qty_price(line: InvoiceLine) -> tuple[Decimal, Decimal]:
    """Qty and UnitPrice whose half-up product is exactly the platform line amount (no 6070).

    The platform allows its amount to differ from quantity x rate by a cent; then the unit price is
    re-derived (up to 5 decimals) from the amount, or the line is sent as 1 x amount.
    """
    qty, rate, amount = line.quantity, line.rate, line.amount
    if line_amount(qty, rate) == amount:
        return qty, rate
    if qty > 0:
        price = (amount / qty).quantize(_UNIT_PRICE_STEP, rounding=ROUND_HALF_UP)
        if line_amount(qty, price) == amount:
            return qty, price
    return Decimal(1), amount


def _tax_mapping(
    tax_rate_id: str, ref: QboReference, settings: FirmSyncSettings, invoice_id: str
) -> TaxMapping:
    mapping = settings.tax_map.get(tax_rate_id)
    if mapping is None:
        raise MappingError(
            "Taxes",
            "tax_rate_unmapped",
            f"The platform tax rate {tax_rate_id} is not mapped to a QuickBooks tax rate. Map it in the "
            "sync settings (tax rates), then resync.",
            entity="invoice",
            entity_id=invoice_id,
        )
    code = ref.tax_code(mapping.tax_code_id)
    if code is None or not code.active:
        raise MappingError(
            "Taxes",
            "tax_code_invalid",
            f"The platform tax rate {tax_rate_id} is mapped to QuickBooks tax code {mapping.tax_code_id}, "
            "which no longer exists or is inactive. Map it to an active QuickBooks tax rate.",
            entity="invoice",
            entity_id=invoice_id,
        )
    for rate_id in mapping.rate_ids:
        rate = ref.tax_rate(rate_id)
        if rate is None or not rate.active or (code.sales_rate_ids and rate_id not in code.sales_rate_ids):
            raise MappingError(
                "Taxes",
                "tax_rate_invalid",
                f"The platform tax rate {tax_rate_id} is mapped to QuickBooks tax rate {rate_id}, which is "
                f"missing, inactive or not part of tax code {code.id}. Fix the tax rate mapping.",
                entity="invoice",
                entity_id=invoice_id,
            )
    return mapping


def invoice_number_note(
    invoice: Invoice, ref: QboReference, landed: Mapping[str, Any], *, qbo_numbers: bool = False
) -> str | None:
    """How the invoice's number landed in QuickBooks when the platform's number was not sent (it is sent only
    when the company uses custom transaction numbers and the firm did not choose "let QuickBooks number
    it": :func:`invoice_payload`), from ``landed``, the QBO Invoice; None when the platform's number was sent.
    """
    if ref.custom_txn_numbers and not qbo_numbers:
        return None
    why = (
        "the firm chose 'Let QuickBooks number it' for this invoice"
        if qbo_numbers
        else "custom transaction numbers are off in the company"
    )
    doc = landed.get("DocNumber")
    if isinstance(doc, str | int) and not isinstance(doc, bool) and str(doc):
        if str(doc) == invoice.number:
            return None  # QuickBooks' own number happens to be the platform's
        return f"QuickBooks numbered it {doc}: {why}, so the platform's number {invoice.number} was not sent"
    return (
        f"QuickBooks left it without a number: {why}, so the platform's number {invoice.number} was not sent"
    )


def invoice_payload(  # noqa: C901
    invoice: Invoice,
    resolved: Resolved,
    ref: QboReference,
    settings: FirmSyncSettings,
    *,
    qbo_numbers: bool = False,
) -> dict[str, Any]:
    """Invoice create/full-update body: same lines and total as the platform invoice.

    Lines: ``Qty``/``UnitPrice``/``Amount`` with ``Amount = round_half_up(Qty x UnitPrice, 2)``;
    items from ``resolved.item_ids`` (service lines), else the work-type map, the default service, the
    "Sales" item. ``DocNumber`` only when the company uses custom transaction numbers and the firm has not
    chosen to let QuickBooks number this invoice (``qbo_numbers``, the error action "let QuickBooks number
    it": no DocNumber is sent, so QuickBooks numbers it - or, with custom numbers, leaves it blank).
    Tax: in AST
    companies lines carry ``TAX``/``NON`` and the platform's tax total is sent as ``TotalTax``; in other
    US companies lines carry ``TAX``/``NON`` and the mapped tax code goes to ``TxnTaxCodeRef`` (one
    tax rate per invoice); elsewhere each line carries its mapped tax code.

    Raises MappingError: what :func:`check_record` refuses; ``invoice_not_sent`` / ``invoice_void``
    (Invoices; drafts do not sync, voids are a void operation), ``doc_number_too_long`` (the number would
    be sent and is over 21 characters), ``before_sync_start``, ``books_closed``, ``customer_not_synced``,
    ``service_not_synced``, ``currency_unsupported``; (Services)
    ``work_type_unmapped``; (Taxes) ``tax_rate_unmapped``, ``tax_code_invalid``, ``tax_rate_invalid``,
    ``several_tax_rates_us``, ``tax_without_rate``.
    """
    eid = invoice.id
    if invoice.status == "draft":
        raise MappingError(
            "Invoices",
            "invoice_not_sent",
            "Draft invoices are not synced; this invoice syncs once it is sent or posted.",
            entity="invoice",
            entity_id=eid,
        )
    if invoice.status == "void":
        raise MappingError(
            "Invoices",
            "invoice_void",
            "This invoice is void on the platform: it is voided in QuickBooks, not created or updated.",
            entity="invoice",
            entity_id=eid,
        )
    check_record(invoice)
    send_number = ref.custom_txn_numbers and not qbo_numbers
    if send_number and len(invoice.number) > DOC_NUMBER_MAX:
        raise MappingError(
            "Invoices",
            "doc_number_too_long",
            f"The invoice number has {len(invoice.number)} characters; QuickBooks accepts at most "
            f"{DOC_NUMBER_MAX}. Either fix the number on the platform (the corrected invoice syncs by "
            "itself), or choose 'Let QuickBooks number it' on this error to sync the invoice without it.",
            entity="invoice",
            entity_id=eid,
        )
    _check_dates(invoice.issue_date, ref, settings, "Invoices", "invoice", eid)
    customer = _require_customer(resolved, "Invoices", "invoice", eid)
    currency = _currency(invoice.currency, ref, "Invoices", "invoice", eid)

    ast = ref.partner_tax_enabled
    tax_ids = sorted({line.tax_rate_id for line in invoice.line_items if line.tax_rate_id})
    mappings: dict[str, TaxMapping] = {}
    if not ast:
        mappings = {tid: _tax_mapping(tid, ref, settings, eid) for tid in tax_ids}
        if ref.is_us and len({m.tax_code_id for m in mappings.values()}) > 1:
            raise MappingError(
                "Taxes",
                "several_tax_rates_us",
                "QuickBooks (US) allows one sales tax rate per invoice, and this invoice uses several. Use "
                "a single tax rate (or a combined rate mapped to one QuickBooks tax code) on the invoice.",
                entity="invoice",
                entity_id=eid,
            )
        if invoice.tax_total > 0 and not mappings:
            raise MappingError(
                "Taxes",
                "tax_without_rate",
                "This invoice has tax but none of its lines has a tax rate. Set the tax rate on the "
                "taxed lines, then resync.",
                entity="invoice",
                entity_id=eid,
            )

    lines: list[dict[str, Any]] = []
    for number, line in enumerate(invoice.line_items, start=1):
        qty, price = _qty_price(line)
        detail: dict[str, Any] = {
            "ItemRef": {"value": _line_item(line, resolved, ref, settings, eid)},
            "Qty": _num(qty),
            "UnitPrice": _num(price),
        }
        if ast or ref.is_us:
            detail["TaxCodeRef"] = {"value": "TAX" if line.tax_rate_id else "NON"}
        elif line.tax_rate_id:
            detail["TaxCodeRef"] = {"value": mappings[line.tax_rate_id].tax_code_id}
        qbo_line: dict[str, Any] = {
            "DetailType": "SalesItemLineDetail",
            "LineNum": number,
            "Amount": _num(line.amount),
            "SalesItemLineDetail": detail,
        }
        description = line.description
        if not description and line.service_id and detail["ItemRef"]["value"] == ref.sales_item_id:
            # billed on the "Sales" item (no service income account): say which service it was
            description = resolved.service_names.get(line.service_id)
        if description:
            qbo_line["Description"] = description
        lines.append(qbo_line)

    body: dict[str, Any] = {
        "CustomerRef": {"value": customer},
        "TxnDate": invoice.issue_date.isoformat(),
        "Line": lines,
        "PrivateNote": _note("Invoice", eid),
    }
    if invoice.due_date:
        body["DueDate"] = invoice.due_date.isoformat()
    if send_number:
        body["DocNumber"] = invoice.number
    if invoice.memo:
        body["CustomerMemo"] = {"value": invoice.memo}
    if currency:
        body["CurrencyRef"] = currency
    if ast:
        if invoice.tax_total > 0:
            # US automated sales tax: the platform's amount is sent as an override (QBO.md §5.10).
            body["TxnTaxDetail"] = {"TotalTax": _num(invoice.tax_total)}
    elif mappings:
        code_id = next(iter(mappings.values())).tax_code_id
        body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": code_id}, "TotalTax": _num(invoice.tax_total)}
    return body


# --- payments ----------------------------------------------------------------------------------------


def account_should_sync(has_activity: bool, settings: FirmSyncSettings) -> bool:
    """Whether a client account syncs: all of them, or (default) only those with invoices or payments."""
    return settings.sync_accounts == "all" or has_activity


def payment_should_sync(payment: Payment, settings: FirmSyncSettings) -> bool:
    """Whether a payment syncs: its ``sync_override`` if set, else offline payments follow the setting."""
    if payment.sync_override is not None:
        return payment.sync_override
    return settings.sync_offline_payments if payment.offline else True


def payment_deposit_account(ref: QboReference, settings: FirmSyncSettings) -> QboAccount:
    """The account payments are deposited to (setting, else Undeposited Funds).

    Raises MappingError (Payments): ``deposit_account_missing``, ``deposit_account_type``,
    ``undeposited_funds_missing``.
    """
    return _deposit_account(settings.deposit_account_id, ref, "Payments", "payment", "")


def payment_method_for(payment: Payment, ref: QboReference) -> str | None:
    """QBO PaymentMethod id of a payment's method, or None when the method needs none.

    Raises MappingError (Payments) ``payment_method_missing`` when QBO lacks the method a cash, check
    or card payment needs (e.g. "Credit Card").
    """
    names = PAYMENT_METHOD_NAMES.get(payment.method, ())
    for name in names:
        found = ref.payment_method_named(name)
        if found is not None:
            return found.id
    if payment.method in _REQUIRED_METHODS:
        raise MappingError(
            "Payments",
            "payment_method_missing",
            f"QuickBooks has no active payment method named '{names[0]}'. Add it in QuickBooks (Lists > "
            "Payment methods), then resync.",
            entity="payment",
            entity_id=payment.id,
        )
    return None


def _check_payment(payment: Payment, ref: QboReference, settings: FirmSyncSettings) -> None:
    check_record(payment)
    if not payment_should_sync(payment, settings):
        raise MappingError(
            "Payments",
            "offline_payment_not_synced",
            "Manually recorded payments are not synced by the firm's settings. Turn on 'sync offline "
            "payments' or sync this payment manually.",
            entity="payment",
            entity_id=payment.id,
        )
    _check_dates(payment.payment_date, ref, settings, "Payments", "payment", payment.id)


def _invoice_links(payment: Payment, resolved: Resolved) -> list[dict[str, Any]]:
    lines = []
    for alloc in payment.allocations:
        qbo_invoice = resolved.invoice_ids.get(alloc.invoice_id)
        if not qbo_invoice:
            raise MappingError(
                "Payments",
                "invoice_not_synced",
                f"Sync the invoice first: this payment is applied to invoice {alloc.invoice_id}, which is "
                "not synced to QuickBooks yet.",
                entity="payment",
                entity_id=payment.id,
            )
        lines.append(
            {"Amount": _num(alloc.amount), "LinkedTxn": [{"TxnId": qbo_invoice, "TxnType": "Invoice"}]}
        )
    return lines


def payment_payload(
    payment: Payment, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings
) -> dict[str, Any]:
    """Payment body: one line per invoice allocation; ``TotalAmt`` = the payment amount (fees excluded).

    Any amount not allocated stays unapplied (a credit on the customer). ``PaymentRefNum`` is the
    processor / check reference when it fits 21 characters; longer ones go to ``PrivateNote``.

    Raises MappingError (Payments): ``use_credit_memo`` (credit payments map with
    :func:`credit_memo_payload`), ``offline_payment_not_synced``, ``before_sync_start``,
    ``books_closed``, ``customer_not_synced``, ``invoice_not_synced``, ``deposit_account_missing``,
    ``deposit_account_type``, ``undeposited_funds_missing``, ``payment_method_missing``,
    ``currency_unsupported``.
    """
    eid = payment.id
    if payment.credit_source:
        raise MappingError(
            "Payments",
            "use_credit_memo",
            "Payments from client credit or promotional credit are synced as credit memos.",
            entity="payment",
            entity_id=eid,
        )
    _check_payment(payment, ref, settings)
    customer = _require_customer(resolved, "Payments", "payment", eid)
    currency = _currency(payment.currency, ref, "Payments", "payment", eid)
    lines = _invoice_links(payment, resolved)
    deposit = _deposit_account(settings.deposit_account_id, ref, "Payments", "payment", eid)
    method = payment_method_for(payment, ref)
    extra: list[str | None] = []
    if payment.processor:
        extra.append(f"processor {payment.processor}")
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer},
        "TotalAmt": _num(payment.amount),
        "TxnDate": payment.payment_date.isoformat(),
        "DepositToAccountRef": {"value": deposit.id},
        "Line": lines,
    }
    if payment.reference:
        if len(payment.reference) <= PAYMENT_REF_MAX:
            body["PaymentRefNum"] = payment.reference
        else:
            extra.append(f"processor id {payment.reference}")
    if method:
        body["PaymentMethodRef"] = {"value": method}
    if currency:
        body["CurrencyRef"] = currency
    body["PrivateNote"] = _note("Payment", eid, *extra)
    return body


def credit_memo_payload(
    payment: Payment, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings
) -> dict[str, Any]:
    """CreditMemo body for a payment from client credit balance or promotional credit.

    One line of the payment amount on ``resolved.fallback_item_id`` / the default service / "Sales".
    Apply it to the invoices afterwards with :func:`credit_application_payload` (QBO only applies
    credits by itself when AutoApplyCredit is on, and then not to a chosen invoice).

    Raises MappingError (Payments): ``not_a_credit_payment``, ``offline_payment_not_synced``,
    ``before_sync_start``, ``books_closed``, ``customer_not_synced``, ``default_service_missing``,
    ``currency_unsupported``.
    """
    eid = payment.id
    source = payment.credit_source
    if source is None:
        raise MappingError(
            "Payments",
            "not_a_credit_payment",
            "Only payments from client credit or promotional credit are synced as credit memos.",
            entity="payment",
            entity_id=eid,
        )
    _check_payment(payment, ref, settings)
    customer = _require_customer(resolved, "Payments", "payment", eid)
    currency = _currency(payment.currency, ref, "Payments", "payment", eid)
    item = _fallback_item(resolved, ref, settings, "Payments", "payment", eid)
    label = "Promotional credit" if source == "promotional_credit" else "Client credit balance"
    amount = money(payment.amount)
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer},
        "TxnDate": payment.payment_date.isoformat(),
        "PrivateNote": _note("Payment", eid, source),
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "LineNum": 1,
                "Amount": _num(amount),
                "Description": label,
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item},
                    "Qty": 1,
                    "UnitPrice": _num(amount),
                    **({"TaxCodeRef": {"value": "NON"}} if ref.is_us else {}),
                },
            }
        ],
    }
    if currency:
        body["CurrencyRef"] = currency
    return body


def credit_application_payload(
    payment: Payment, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings
) -> dict[str, Any]:
    """A zero-total Payment applying the credit memo (``resolved.credit_memo_id``) to the invoices.

    Its marker is ``qbsync:CreditApplication:{payment id}`` (the CreditMemo carries ``qbsync:Payment:…``),
    so the two QBO objects of one credit payment are told apart. The sync service writes it as its own
    record (entity type ``credit_application``) once the credit memo is in QBO.

    Raises MappingError (Payments): as :func:`credit_memo_payload`, plus ``credit_memo_not_synced`` and
    ``invoice_not_synced``.
    """
    eid = payment.id
    if payment.credit_source is None:
        raise MappingError(
            "Payments",
            "not_a_credit_payment",
            "Only payments from client credit or promotional credit are applied as credit memos.",
            entity="payment",
            entity_id=eid,
        )
    _check_payment(payment, ref, settings)
    customer = _require_customer(resolved, "Payments", "payment", eid)
    if not resolved.credit_memo_id:
        raise MappingError(
            "Payments",
            "credit_memo_not_synced",
            "The credit memo of this payment is not in QuickBooks yet; it is created first, then applied.",
            entity="payment",
            entity_id=eid,
        )
    currency = _currency(payment.currency, ref, "Payments", "payment", eid)
    lines = _invoice_links(payment, resolved)
    applied = sum((a.amount for a in payment.allocations), Decimal("0.00"))
    lines.append(
        {"Amount": _num(applied), "LinkedTxn": [{"TxnId": resolved.credit_memo_id, "TxnType": "CreditMemo"}]}
    )
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer},
        "TotalAmt": 0,
        "TxnDate": payment.payment_date.isoformat(),
        "Line": lines,
        "PrivateNote": _note("CreditApplication", eid, "credit application"),
    }
    if currency:
        body["CurrencyRef"] = currency
    return body


# --- fees and refunds --------------------------------------------------------------------------------


def fee_expense_account(ref: QboReference, settings: FirmSyncSettings) -> QboAccount:
    """The expense account of processing fees (setting, else the first BankCharges expense account).

    Raises MappingError (Expenses): ``fee_expense_account_missing``, ``fee_expense_account_type``.
    """
    if settings.fee_expense_account_id is None:
        acct = ref.default_fee_expense_account()
        if acct is None:
            raise MappingError(
                "Expenses",
                "fee_expense_account_missing",
                "No expense account for processing fees: choose one in the sync settings.",
                entity="processing fee",
            )
        return acct
    acct = ref.account(settings.fee_expense_account_id)
    if acct is None or not acct.active:
        raise MappingError(
            "Expenses",
            "fee_expense_account_missing",
            f"The processing-fee expense account (QuickBooks account {settings.fee_expense_account_id}) no "
            "longer exists or is inactive. Choose another expense account in the sync settings.",
            entity="processing fee",
        )
    if acct.account_type not in EXPENSE_ACCOUNT_TYPES:
        raise MappingError(
            "Expenses",
            "fee_expense_account_type",
            f"The processing-fee account '{acct.name}' is of type {acct.account_type}; fees need an "
            "Expense account. Choose one in the sync settings.",
            entity="processing fee",
        )
    return acct


def purchase_payload(
    fee: ProcessingFee, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings
) -> dict[str, Any]:
    """Purchase (expense) body: one AccountBasedExpenseLine in the fee expense account, paid (``Cash``)
    from the account the payment was deposited to (``resolved.payment_deposit_account_id``, else the
    deposit setting / Undeposited Funds).

    Raises MappingError (Expenses): ``payment_not_synced``, ``before_sync_start``, ``books_closed``,
    ``fee_expense_account_missing``, ``fee_expense_account_type``, ``deposit_account_missing``,
    ``deposit_account_type``, ``undeposited_funds_missing``, ``currency_unsupported``.
    """
    eid = fee.id
    if not resolved.payment_id:
        raise MappingError(
            "Expenses",
            "payment_not_synced",
            f"Sync the payment first: this processing fee belongs to payment {fee.payment_id}, which is "
            "not synced to QuickBooks yet.",
            entity="processing fee",
            entity_id=eid,
        )
    check_record(fee)
    _check_dates(fee.fee_date, ref, settings, "Expenses", "processing fee", eid)
    currency = _currency(fee.currency, ref, "Expenses", "processing fee", eid)
    expense = fee_expense_account(ref, settings)
    source_id = resolved.payment_deposit_account_id or settings.deposit_account_id
    source = _deposit_account(source_id, ref, "Expenses", "processing fee", eid)
    body: dict[str, Any] = {
        "PaymentType": "Cash",
        "AccountRef": {"value": source.id},
        "TxnDate": fee.fee_date.isoformat(),
        "PrivateNote": _note("ProcessingFee", eid, f"fee for payment {fee.payment_id}"),
        "Line": [
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": _num(money(fee.amount)),
                "Description": fee.description or f"{fee.processor} processing fee",
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense.id}},
            }
        ],
    }
    if resolved.vendor_id:
        body["EntityRef"] = {"value": resolved.vendor_id, "type": "Vendor"}
    if currency:
        body["CurrencyRef"] = currency
    return body


def refund_receipt_payload(
    refund: Refund, resolved: Resolved, ref: QboReference, settings: FirmSyncSettings
) -> dict[str, Any]:
    """RefundReceipt body: the refund amount, paid from the account its payment was deposited to.

    Raises MappingError (Refunds): ``payment_not_synced`` (no ``resolved.payment_id`` or deposit
    account), ``before_sync_start``, ``books_closed``, ``customer_not_synced``,
    ``deposit_account_missing``, ``deposit_account_type``, ``default_service_missing``,
    ``currency_unsupported``.
    """
    eid = refund.id
    if not resolved.payment_id or not resolved.payment_deposit_account_id:
        raise MappingError(
            "Refunds",
            "payment_not_synced",
            f"Sync the payment first: this refund belongs to payment {refund.payment_id}, which is not "
            "synced to QuickBooks yet.",
            entity="refund",
            entity_id=eid,
        )
    check_record(refund)
    _check_dates(refund.refund_date, ref, settings, "Refunds", "refund", eid)
    customer = _require_customer(resolved, "Refunds", "refund", eid)
    currency = _currency(refund.currency, ref, "Refunds", "refund", eid)
    source = _deposit_account(resolved.payment_deposit_account_id, ref, "Refunds", "refund", eid)
    item = _fallback_item(resolved, ref, settings, "Refunds", "refund", eid)
    amount = money(refund.amount)
    detail: dict[str, Any] = {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": _num(amount)}
    if ref.is_us:
        detail["TaxCodeRef"] = {"value": "NON"}
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer},
        "TxnDate": refund.refund_date.isoformat(),
        "DepositToAccountRef": {"value": source.id},
        "PrivateNote": _note("Refund", eid, f"refund of payment {refund.payment_id}"),
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "LineNum": 1,
                "Amount": _num(amount),
                "Description": "Refund",
                "SalesItemLineDetail": detail,
            }
        ],
    }
    if resolved.payment_method_id:
        body["PaymentMethodRef"] = {"value": resolved.payment_method_id}
    if currency:
        body["CurrencyRef"] = currency
    return body
