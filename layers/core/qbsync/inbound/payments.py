"""Payments recorded in QuickBooks reach the platform (PRODUCT.md D.3, issue 14 item 3).

:meth:`PaymentsReceived.handle` takes the QuickBooks ``Payment`` objects of one realm that no qbsync record
is linked to (payments the accountant recorded in QuickBooks: manual, partial, split across invoices) and
announces each **version** (``SyncToken``) exactly once:

* **valid** → "Payment Received In QBO" (``operation`` ``created``, or ``updated`` when an earlier version
  was announced: its allocations replace the earlier ones) and, for each invoice whose QuickBooks
  ``Balance`` is 0 after it, "Invoice Paid" (once per invoice and payment: not again for a later version
  of the same payment that still pays it). An open error of the payment is resolved.
* **refused** → an explained Payments error in the error center (entity ``qbo_payment``, id
  ``{realm_id}:{qbo_payment_id}``; "Sync Error Raised" when the entry is new) and nothing is announced; if
  an earlier version was announced, "Payment Withdrawn In QBO" (``reason`` ``rejected``) undoes it.
* **deleted** in QuickBooks → "Payment Withdrawn In QBO" (``deleted``) when something was announced;
  **voided**, or edited so that it applies to no invoice any more → ``voided`` / ``unapplied``.
* a payment applied to no invoice that was never announced → nothing (a customer credit, not D.3).

The checks, in this order, each with its reason code (:mod:`qbsync.catalog`, the Karbon table's wording):

==============================  ==========================================================================
``payment_invoice_not_synced``  a line's linked invoice (``Line.LinkedTxn`` ``TxnType`` ``Invoice``) has
                                no qbsync record (an invoice made in QuickBooks, or one qbsync never
                                synced), or QuickBooks no longer has it
``payment_customer_mismatch``   the payment's ``CustomerRef`` differs from a linked invoice's
``payment_date_future``         ``TxnDate`` more than 2 days after today (UTC)
``payment_period_closed``       ``TxnDate`` on or before the company's closing date (Preferences
                                ``AccountingInfoPrefs.BookCloseDate``): not in an open accounting period
``payment_overpays_invoice``    for a linked invoice, what QuickBooks payments and credits have applied
                                to it in total (its ``TotalAmt`` - ``Balance``, this payment included) is
                                more than the platform invoice's total (the ``total`` of the newest
                                platform event qbsync synced for it) - i.e. the payment covers more than
                                the platform invoice had open -, or QuickBooks shows a negative balance.
                                A payment's unapplied amount (``UnappliedAmt``, kept as the customer's
                                credit) is not an overpayment: it is announced as ``unapplied_amount``
==============================  ==========================================================================

Exactly once: the payment's ``INPAY#`` item (:class:`~qbsync.repositories.inbound_payments.InboundPayments`)
is claimed for the version BEFORE anything is published, with the events to publish (their ids derived
from realm, payment, version and kind: :func:`event_id_for`); a redelivery that finds the claim
``announcing`` (a crash before the publish was confirmed) publishes the same events again; one that finds
it finished publishes nothing. An older version than the claimed one is stale and ignored.

Reading (one batch of payments): the linked invoices in one query per 100 ids and the company's
Preferences once, both through the realm's paced client; the invoice records by their QBO id (gsi1).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from pydantic import BaseModel

from qbsync.connection.clients import RealmClients
from qbsync.errors import DataError
from qbsync.inbound.changes import ChangedObject
from qbsync.inbound.reads import read_by_ids
from qbsync.models.qbsync_events import (
    QBSYNC_EVENT_TYPES,
    InvoicePaid,
    PaymentReceivedInQbo,
    PaymentWithdrawnInQbo,
    ReceivedAllocation,
    SyncErrorRaised,
    WithdrawnAllocation,
)
from qbsync.qbo.client import QboClient
from qbsync.repositories.error_log import ErrorEntry
from qbsync.repositories.inbound_payments import (
    ANNOUNCED,
    ANNOUNCING,
    DELETED,
    IGNORED,
    REJECTED,
    WITHDRAWN,
    InboundPayments,
    PaymentState,
    version_number,
)
from qbsync.repositories.records import SyncRecord

__all__ = [
    "ERROR_ENTITY_TYPE",
    "FUTURE_DAYS",
    "Accepted",
    "InvoiceLink",
    "NotApplied",
    "PaymentsReceived",
    "Rejected",
    "allocations_of",
    "error_platform_id",
    "evaluate",
    "event_id_for",
]

logger = logging.getLogger("qbsync.inbound.payments")

#: the error-center entity of a payment recorded in QuickBooks (no platform record exists for it)
ERROR_ENTITY_TYPE = "qbo_payment"
#: a payment may be dated at most this many days after today (UTC)
FUTURE_DAYS = 2
_CENT = Decimal("0.01")
_EVENT_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4f7b-9a43-0b6a2f4e9c11")
_MAX_CLAIMS = 3


class RecordReader(Protocol):
    def find_by_qbo_id(self, realm_id: str, qbo_entity: str, qbo_id: str) -> SyncRecord | None: ...

    def last_event(self, key: Any) -> dict[str, Any] | None: ...


class ErrorLog(Protocol):
    def record(
        self, *, firm_id: str, realm_id: str, entity_type: str, platform_id: str, error: Any, now: float
    ) -> ErrorEntry: ...

    def resolve(self, *, firm_id: str, entity_type: str, platform_id: str, now: float) -> None: ...


class Publisher(Protocol):
    def publish(self, events: Any) -> Any: ...


# --- the pure part ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceLink:
    """The qbsync record of a QuickBooks invoice: platform invoice id, the platform's invoice total (None
    when no platform event is kept), and the platform client account."""

    platform_id: str
    platform_total: Decimal | None
    account_id: str | None


@dataclass(frozen=True, slots=True)
class AcceptedAllocation:
    invoice_id: str
    qbo_invoice_id: str
    amount: Decimal
    balance: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class Accepted:
    allocations: tuple[AcceptedAllocation, ...]
    account_id: str | None
    amount: Decimal
    unapplied: Decimal
    payment_date: date
    currency: str
    method: str | None
    reference: str | None
    #: the invoices this payment applies to, by QuickBooks id → LinkedTxn payments (for "Invoice Paid")
    invoice_payments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class NotApplied:
    reason: str  # voided | unapplied


Verdict = Accepted | Rejected | NotApplied


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value is not None else 0)).quantize(_CENT)
    except InvalidOperation:
        raise ValueError("not an amount") from None


def _ref(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    ref = (obj or {}).get(key)
    return ref if isinstance(ref, Mapping) else {}


def allocations_of(payment: Mapping[str, Any]) -> dict[str, Decimal]:
    """Amount applied per QuickBooks invoice id (lines whose ``LinkedTxn`` is an ``Invoice``; several lines
    on one invoice add up). Lines linked to credit memos are not allocations."""
    out: dict[str, Decimal] = {}
    for line in payment.get("Line") or []:
        if not isinstance(line, Mapping):
            continue
        for linked in line.get("LinkedTxn") or []:
            if isinstance(linked, Mapping) and linked.get("TxnType") == "Invoice" and linked.get("TxnId"):
                qbo_invoice_id = str(linked["TxnId"])
                out[qbo_invoice_id] = out.get(qbo_invoice_id, Decimal("0.00")) + _money(line.get("Amount"))
    return out


def _date(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def _invoice_payments(invoice: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(t["TxnId"])
        for t in invoice.get("LinkedTxn") or []
        if isinstance(t, Mapping) and t.get("TxnType") == "Payment" and t.get("TxnId")
    )


def evaluate(
    payment: Mapping[str, Any],
    *,
    invoices: Mapping[str, Mapping[str, Any]],
    links: Mapping[str, InvoiceLink | None],
    today: date,
    book_close: date | None,
) -> Verdict:
    """The verdict on one version of a QuickBooks payment (see the module table; first failing check)."""
    qbo_id = str(payment.get("Id"))
    applied = allocations_of(payment)
    if not applied:
        voided = _money(payment.get("TotalAmt")) == 0
        return NotApplied("voided" if voided else "unapplied")
    for qbo_invoice_id in applied:
        if links.get(qbo_invoice_id) is None or qbo_invoice_id not in invoices:
            return Rejected(
                "payment_invoice_not_synced",
                f"QuickBooks payment {qbo_id} is applied to QuickBooks invoice {qbo_invoice_id}, which is "
                "not an invoice qbsync synced from the platform",
            )
    customer = _ref(payment, "CustomerRef").get("value")
    for qbo_invoice_id in applied:
        if _ref(invoices[qbo_invoice_id], "CustomerRef").get("value") != customer:
            return Rejected(
                "payment_customer_mismatch",
                f"QuickBooks payment {qbo_id} and invoice {qbo_invoice_id} belong to different customers",
            )
    payment_date = _date(payment.get("TxnDate"))
    if payment_date is None:
        return Rejected("payment_date_future", f"QuickBooks payment {qbo_id} has no readable date")
    if payment_date > today + timedelta(days=FUTURE_DAYS):
        return Rejected(
            "payment_date_future",
            f"QuickBooks payment {qbo_id} is dated {payment_date.isoformat()}, more than {FUTURE_DAYS} days "
            f"after today ({today.isoformat()}, UTC)",
        )
    if book_close is not None and payment_date <= book_close:
        return Rejected(
            "payment_period_closed",
            f"QuickBooks payment {qbo_id} is dated {payment_date.isoformat()}, on or before the closing date "
            f"of the books in QuickBooks ({book_close.isoformat()})",
        )
    allocations: list[AcceptedAllocation] = []
    for qbo_invoice_id, amount in applied.items():
        invoice, link = invoices[qbo_invoice_id], links[qbo_invoice_id]
        assert link is not None
        total, balance = _money(invoice.get("TotalAmt")), _money(invoice.get("Balance"))
        limit = link.platform_total if link.platform_total is not None else total
        if balance < 0 or total - balance > limit:
            return Rejected(
                "payment_overpays_invoice",
                f"QuickBooks payment {qbo_id} applies {amount} to invoice {qbo_invoice_id}: payments in "
                f"QuickBooks would then cover {total - balance}, more than the platform invoice's total "
                f"{limit}",
            )
        allocations.append(AcceptedAllocation(link.platform_id, qbo_invoice_id, amount, balance, limit))
    first_link = links[next(iter(applied))]
    return Accepted(
        allocations=tuple(allocations),
        account_id=first_link.account_id if first_link else None,
        amount=_money(payment.get("TotalAmt")),
        unapplied=max(Decimal("0.00"), _money(payment.get("UnappliedAmt"))),
        payment_date=payment_date,
        currency=str(_ref(payment, "CurrencyRef").get("value") or "USD"),
        method=(str(_ref(payment, "PaymentMethodRef").get("name") or "") or None),
        reference=(str(payment.get("PaymentRefNum") or "")[:100] or None),
        invoice_payments={i: _invoice_payments(invoices[i]) for i in applied},
    )


def event_id_for(realm_id: str, qbo_payment_id: str, version: str, kind: str, invoice: str = "") -> str:
    """The event id of one announcement: the same for every delivery of one payment version (the
    platform's dedupe key). ``kind``: ``received`` | ``withdrawn`` | ``paid`` (with the QBO invoice id) |
    ``error``."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{realm_id}/{qbo_payment_id}/{version}/{kind}/{invoice}"))


def error_platform_id(realm_id: str, qbo_payment_id: str) -> str:
    """The error-center id of a QuickBooks payment (unique across the firm's companies)."""
    return f"{realm_id}:{qbo_payment_id}"


# --- the service ------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What one payment version leads to: the events, the state it ends in, what the platform then holds,
    and the error to record (None: resolve any open one)."""

    events: list[BaseModel]
    final_state: str
    holds: list[dict[str, Any]]
    error: Rejected | None = None


@dataclass(frozen=True)
class _Version:
    """One QuickBooks payment version being handled."""

    firm_id: str
    realm_id: str
    qbo_id: str
    version: str

    def event_id(self, kind: str, invoice: str = "") -> str:
        return event_id_for(self.realm_id, self.qbo_id, self.version, kind, invoice)

    @property
    def correlation_id(self) -> str:
        return f"qbo-payment-{self.qbo_id}-v{self.version}"


@dataclass
class _Batch:
    """What the checks of one batch of payments read once."""

    invoices: dict[str, dict[str, Any]]
    links: dict[str, InvoiceLink | None]
    book_close: date | None
    today: date


class PaymentsReceived:
    """See the module doc.

    Args:
        records: the realm's records (invoice and customer links, the invoice's last platform event).
        states: the ``INPAY#`` items.
        errorlog: the error center's log (``ErrorLogRepository``).
        publisher: qbsync events to the platform (``EventPublisher``).
        realm_clients: a paced QuickBooks client of the realm (invoices, Preferences).
        clock: epoch seconds.
    """

    def __init__(
        self,
        *,
        records: RecordReader,
        states: InboundPayments,
        errorlog: ErrorLog,
        publisher: Publisher,
        realm_clients: RealmClients,
        clock: Callable[[], float],
    ) -> None:
        self._records = records
        self._states = states
        self._errorlog = errorlog
        self._publisher = publisher
        self._clients = realm_clients
        self._clock = clock

    def handle(self, firm_id: str, realm_id: str, payments: Sequence[ChangedObject]) -> dict[str, int]:
        """Announce (or refuse) every payment version; returns counts by outcome. Raises what QuickBooks,
        DynamoDB or EventBridge raise (the caller retries; every step is idempotent per version)."""
        batch = self._read(firm_id, realm_id, payments)
        outcomes: dict[str, int] = {}
        for payment in payments:
            outcome = self._one(firm_id, realm_id, payment, batch)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            logger.info(
                "payment from QuickBooks",
                extra={
                    "firm_id": firm_id,
                    "realm_id": realm_id,
                    "qbo_payment_id": payment.qbo_id,
                    "qbo_version": payment.sync_token or DELETED,
                    "outcome": outcome,
                },
            )
        return outcomes

    # --- reads ---------------------------------------------------------------------------------------

    def _read(self, firm_id: str, realm_id: str, payments: Sequence[ChangedObject]) -> _Batch:
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        invoice_ids = sorted({i for p in payments if p.body for i in allocations_of(p.body)})
        if not invoice_ids:
            return _Batch({}, {}, None, today)
        qbo: QboClient = self._clients.qbo_for(firm_id, realm_id)
        invoices, _ = read_by_ids(qbo, "Invoice", invoice_ids)
        links = {i: self._link(firm_id, realm_id, i) for i in invoice_ids}
        prefs = qbo.preferences()
        raw_close = _ref(prefs, "AccountingInfoPrefs").get("BookCloseDate")
        return _Batch(invoices, links, _date(raw_close) if raw_close else None, today)

    def _link(self, firm_id: str, realm_id: str, qbo_invoice_id: str) -> InvoiceLink | None:
        record = self._records.find_by_qbo_id(realm_id, "Invoice", qbo_invoice_id)
        if record is None or record.firm_id != firm_id or record.entity_type != "invoice":
            return None
        envelope = self._records.last_event(record.key) or {}
        data = _ref(_ref(envelope, "detail"), "data")
        total: Decimal | None
        try:
            total = _money(data["total"]) if data.get("total") is not None else None
        except ValueError:
            total = None
        account = data.get("account_id")
        return InvoiceLink(record.platform_id, total, str(account) if account else None)

    # --- one payment version -------------------------------------------------------------------------

    def _one(self, firm_id: str, realm_id: str, payment: ChangedObject, batch: _Batch) -> str:
        version = payment.sync_token if payment.body is not None and payment.sync_token else DELETED
        number = version_number(version)
        for _ in range(_MAX_CLAIMS):
            current = self._states.get(firm_id, realm_id, payment.qbo_id)
            if current is not None and current.version_n > number:
                return "stale"
            if current is not None and current.version_n == number:
                if current.state == ANNOUNCING:
                    self._publish_stored(current)
                    return "replayed"
                return "duplicate"
            at = _Version(firm_id, realm_id, payment.qbo_id, version)
            plan = self._plan(at, payment, current, batch)
            if plan.error is not None:
                self._record_error(at, plan)
            claimed = self._states.claim(
                firm_id,
                realm_id,
                payment.qbo_id,
                version=version,
                final_state=plan.final_state,
                events=[_stored(e) for e in plan.events],
                holds=plan.holds,
                now=self._clock(),
            )
            if claimed is None:
                continue  # another delivery claimed this or a newer version: look again
            if plan.events:
                self._publisher.publish(plan.events)
                self._states.finish(claimed, now=self._clock())
            if plan.error is None:
                self._errorlog.resolve(
                    firm_id=firm_id,
                    entity_type=ERROR_ENTITY_TYPE,
                    platform_id=error_platform_id(realm_id, payment.qbo_id),
                    now=self._clock(),
                )
            return plan.final_state
        return "contended"

    def _publish_stored(self, state: PaymentState) -> None:
        events = [QBSYNC_EVENT_TYPES[e["detail_type"]].model_validate(e["detail"]) for e in state.events]
        self._publisher.publish(events)
        self._states.finish(state, now=self._clock())

    def _plan(
        self, at: _Version, payment: ChangedObject, current: PaymentState | None, batch: _Batch
    ) -> _Plan:
        holds = list(current.holds) if current is not None else []
        if payment.body is None:
            return self._withdraw(at, holds, "deleted")
        verdict = evaluate(
            payment.body,
            invoices=batch.invoices,
            links=batch.links,
            today=batch.today,
            book_close=batch.book_close,
        )
        if isinstance(verdict, NotApplied):
            return self._withdraw(at, holds, verdict.reason)
        if isinstance(verdict, Rejected):
            plan = self._withdraw(at, holds, "rejected")
            plan.final_state, plan.error = REJECTED, verdict
            return plan
        return self._accept(at, payment.body, verdict, holds)

    @staticmethod
    def _withdraw(at: _Version, holds: list[dict[str, Any]], reason: str) -> _Plan:
        if not holds:
            return _Plan([], IGNORED if reason != "deleted" else WITHDRAWN, [])
        event = PaymentWithdrawnInQbo(
            event_id=at.event_id("withdrawn"),
            firm_id=at.firm_id,
            correlation_id=at.correlation_id,
            realm_id=at.realm_id,
            qbo_payment_id=at.qbo_id,
            qbo_version=at.version,
            reason=reason,  # type: ignore[arg-type]
            allocations=[
                WithdrawnAllocation(
                    invoice_id=h["invoice_id"],
                    qbo_invoice_id=h["qbo_invoice_id"],
                    amount=Decimal(h["amount"]),
                )
                for h in holds
            ],
        )
        return _Plan([event], WITHDRAWN, [])

    def _accept(
        self, at: _Version, body: Mapping[str, Any], verdict: Accepted, holds: list[dict[str, Any]]
    ) -> _Plan:
        account_id = self._account_of(at.realm_id, body) or verdict.account_id or "unknown"
        received = PaymentReceivedInQbo(
            event_id=at.event_id("received"),
            firm_id=at.firm_id,
            correlation_id=at.correlation_id,
            realm_id=at.realm_id,
            qbo_payment_id=at.qbo_id,
            qbo_version=at.version,
            operation="updated" if holds else "created",
            account_id=account_id,
            payment_date=verdict.payment_date,
            currency=verdict.currency,
            amount=verdict.amount,
            unapplied_amount=verdict.unapplied,
            method=verdict.method,
            reference=verdict.reference,
            allocations=[
                ReceivedAllocation(
                    invoice_id=a.invoice_id,
                    qbo_invoice_id=a.qbo_invoice_id,
                    amount=a.amount,
                    invoice_balance=a.balance,
                )
                for a in verdict.allocations
            ],
        )
        already_paid = {h["qbo_invoice_id"] for h in holds if h.get("paid")}
        events: list[BaseModel] = [received]
        for a in verdict.allocations:
            if a.balance == 0 and a.qbo_invoice_id not in already_paid:
                events.append(
                    InvoicePaid(
                        event_id=at.event_id("paid", a.qbo_invoice_id),
                        firm_id=at.firm_id,
                        correlation_id=at.correlation_id,
                        realm_id=at.realm_id,
                        invoice_id=a.invoice_id,
                        qbo_invoice_id=a.qbo_invoice_id,
                        paid_on=verdict.payment_date,
                        total=a.total,
                        qbo_payment_id=at.qbo_id,
                        qbo_version=at.version,
                        qbo_payment_ids=list(verdict.invoice_payments.get(a.qbo_invoice_id) or (at.qbo_id,)),
                    )
                )
        new_holds = [
            {
                "invoice_id": a.invoice_id,
                "qbo_invoice_id": a.qbo_invoice_id,
                "amount": str(a.amount),
                "paid": a.balance == 0,
            }
            for a in verdict.allocations
        ]
        return _Plan(events, ANNOUNCED, new_holds)

    def _account_of(self, realm_id: str, body: Mapping[str, Any]) -> str | None:
        customer = _ref(body, "CustomerRef").get("value")
        if not customer:
            return None
        record = self._records.find_by_qbo_id(realm_id, "Customer", str(customer))
        return record.platform_id if record is not None and record.entity_type == "client_account" else None

    def _record_error(self, at: _Version, plan: _Plan) -> None:
        """Record the refusal in the error center (before the claim: a crash after it records the same
        entry again, which only counts an attempt) and add "Sync Error Raised" when the entry is new."""
        assert plan.error is not None
        err = DataError(
            plan.error.message,
            firm_id=at.firm_id,
            realm_id=at.realm_id,
            entity="Payment",
            entity_id=at.qbo_id,
            reason_code=plan.error.code,
        )
        entry = self._errorlog.record(
            firm_id=at.firm_id,
            realm_id=at.realm_id,
            entity_type=ERROR_ENTITY_TYPE,
            platform_id=error_platform_id(at.realm_id, at.qbo_id),
            error=err,
            now=self._clock(),
        )
        logger.warning(
            "payment from QuickBooks refused",
            extra={
                "firm_id": at.firm_id,
                "realm_id": at.realm_id,
                "qbo_payment_id": at.qbo_id,
                "qbo_version": at.version,
                "code": plan.error.code,
            },
        )
        plan.events = [
            e.model_copy(update={"error_id": entry.error_id}) if isinstance(e, PaymentWithdrawnInQbo) else e
            for e in plan.events
        ]
        if entry.is_new:
            plan.events.append(
                SyncErrorRaised(
                    event_id=at.event_id("error"),
                    firm_id=at.firm_id,
                    correlation_id=at.correlation_id,
                    error_id=entry.error_id,
                    realm_id=at.realm_id,
                    category="Payments",
                    entity_type="Payment",
                    platform_id=None,
                    explanation=(entry.explanation or plan.error.message)[:2000],
                    attempts=max(1, entry.attempts),
                    first_seen=datetime.fromtimestamp(entry.first_seen, UTC),
                    last_seen=datetime.fromtimestamp(entry.last_seen, UTC),
                )
            )


def _stored(event: BaseModel) -> dict[str, Any]:
    return {"detail_type": type(event).DETAIL_TYPE, "detail": event.model_dump(mode="json")}  # type: ignore[attr-defined]
