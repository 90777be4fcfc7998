"""The drift report's comparison: what differs between the platform's synced records and QuickBooks (J.3).

Pure: no I/O, no clock. The report (:mod:`qbsync.reconcile.report`) reads the firm's records and their
QuickBooks objects (batch queries) and hands them here as :class:`Compared` rows; :func:`compare` returns the
findings, at most one per record:

=========================  ===============================================================================
kind                       when
=========================  ===============================================================================
``missing_in_quickbooks``  the record's linked QuickBooks object is not in QuickBooks (a query does not
                           return it: deleted there, or a link to an object the company never had)
``deleted_in_quickbooks``  the record already carries the open error a webhook / the CDC catch-up raised
                           for a deletion (its link is gone; listed, never read; the same for a record
                           an earlier report found missing)
``amount_mismatch``        an amount differs (invoice total or a line amount; a payment's, refund's or
                           fee's amount), other fields may too
``edited_in_quickbooks``   another field that matters differs (:func:`qbsync.inbound.differences.
                           differences`: dates, customer, contact fields, a service's rate...)
``paid_status_mismatch``   an invoice that otherwise matches has another open balance in QuickBooks
                           (``Balance``) than the platform's: its total minus the synced payments'
                           allocations to it and minus what the payments recorded in QuickBooks that
                           qbsync delivered to the platform apply to it; named with the paid status (open
                           / partially paid / paid)
``balance_mismatch``       a client account's QuickBooks customer ``Balance`` differs from the platform's:
                           the open balances of its synced invoices minus its synced payments' and its
                           delivered QuickBooks payments' unapplied amounts
=========================  ===============================================================================

The last two are derived: they follow from other differences (a payment deleted in QuickBooks leaves its
invoice open there), named in ``explained_by``; fixing those fixes them. Money is :class:`~decimal.Decimal`,
compared and shown to the cent (``605.00 USD``). Client data is named, never shown (house rule).

Payments recorded in QuickBooks (:class:`FromQuickBooks`, the ``INPAY#`` items of
:mod:`qbsync.inbound.payments`) have no record of their own: the platform holds them as "Payment Received In
QBO". One the platform was delivered (``announced``) counts on the platform's side like a synced payment, so a
firm whose accountant takes payments in QuickBooks has a clean report. One not delivered yet (``announcing``:
its events not confirmed published) or refused (``rejected``: an error-center entry explains why) is not
counted, and the difference it makes is explained by it: ``qbo_payment#{realm_id}:{qbo_payment_id}``, the
id of its error-center entry. It is found through what it applies to (its announced allocations, else the
QuickBooks invoice's ``LinkedTxn`` payments) and its customer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from qbsync.inbound.differences import CONTACT_FIELDS, Difference, differences, written_by_qbsync
from qbsync.inbound.drift import AMOUNT_MISMATCH, DELETED, EDITED, MISSING

__all__ = [
    "AMOUNT_MISMATCH",
    "BALANCE_MISMATCH",
    "DELETED",
    "DERIVED_KINDS",
    "EDITED",
    "MISSING",
    "PAID_STATUS_MISMATCH",
    "QBO_CREDIT_MEMO",
    "QBO_INVOICE",
    "QBO_PAYMENT",
    "RECORD_KINDS",
    "Compared",
    "Finding",
    "FromQuickBooks",
    "compare",
    "money",
]

PAID_STATUS_MISMATCH = "paid_status_mismatch"
BALANCE_MISMATCH = "balance_mismatch"
#: kinds of one record's own data: an error-center entry on the record
RECORD_KINDS = (MISSING, DELETED, AMOUNT_MISMATCH, EDITED)
#: kinds that follow from other findings: in the report only
DERIVED_KINDS = (PAID_STATUS_MISMATCH, BALANCE_MISMATCH)
#: the ``explained_by`` type of a payment recorded in QuickBooks (its error-center entity,
#: :data:`qbsync.inbound.payments.ERROR_ENTITY_TYPE`)
QBO_PAYMENT = "qbo_payment"
#: the ``explained_by`` types of a credit memo and an invoice entered in QuickBooks only (no platform record:
#: they move the customer's balance there and nowhere else; nothing to fix, so no error-center entry)
QBO_CREDIT_MEMO = "qbo_credit_memo"
QBO_INVOICE = "qbo_invoice"
_CENT = Decimal("0.01")


def money(value: Any) -> Decimal | None:
    """``value`` as a Decimal to the cent (None when absent or not a number; never a float on the way)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)).quantize(_CENT)
    except (InvalidOperation, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Compared:
    """One record the report compares: its platform data (the stored ``last_event``'s ``detail.data``) and
    QuickBooks' object (None: not found). ``drift_code``: the code of the drift error open on the record
    (None when it has none); ``qbo_entity`` / ``qbo_id``: its link (None when a deletion removed it)."""

    entity_type: str
    platform_id: str
    data: Mapping[str, Any]
    obj: Mapping[str, Any] | None
    qbo_entity: str | None = None
    qbo_id: str | None = None
    drift_code: str | None = None
    #: a service billed on QuickBooks' "Sales" item: only whether that item is still active is compared
    sales_item: bool = False


@dataclass(frozen=True, slots=True)
class FromQuickBooks:
    """A payment recorded in QuickBooks that qbsync forwards to the platform (see the module doc).

    ``ref``: its error-center id ``{realm_id}:{qbo_payment_id}``; ``delivered``: the platform was given its
    current version (counted); otherwise it only explains. ``allocations``: platform invoice id → amount
    applied (as announced); ``unapplied``: what QuickBooks keeps as the customer's credit. ``kind``: the
    ``explained_by`` type (:data:`QBO_PAYMENT`; a QuickBooks-only credit memo or invoice, never delivered,
    only explains: :data:`QBO_CREDIT_MEMO`, :data:`QBO_INVOICE`)."""

    qbo_payment_id: str
    ref: str
    delivered: bool
    account_id: str | None = None
    allocations: Mapping[str, Decimal] = field(default_factory=dict)
    unapplied: Decimal = Decimal("0.00")
    kind: str = QBO_PAYMENT


@dataclass(frozen=True, slots=True)
class Finding:
    """What differs for one record (see the module table). ``error_id``: its error-center entry (record
    kinds); ``new``: the difference was not known before this report (no open entry, not in the last
    report)."""

    entity_type: str
    platform_id: str
    kind: str
    differences: tuple[Difference, ...] = ()
    qbo_entity: str | None = None
    qbo_id: str | None = None
    explained_by: tuple[tuple[str, str], ...] = ()
    error_id: str | None = None
    new: bool = False

    @property
    def actions(self) -> tuple[str, ...]:
        """The one-click fixes: ``resync`` (push the platform's version: the error center's Resync),
        ``relink`` (link to an existing QuickBooks object), ``accept`` (take QuickBooks' change: client
        accounts' contact fields), ``unlink`` (keep QuickBooks' version, stop syncing). Derived findings
        have none of their own: the records in ``explained_by`` are fixed."""
        if self.kind in (MISSING, DELETED):
            return ("resync", "relink", "unlink")
        if self.kind == AMOUNT_MISMATCH:
            return ("resync", "unlink")
        if self.kind == EDITED:
            contact_only = self.entity_type == "client_account" and all(
                d.field in CONTACT_FIELDS for d in self.differences
            )
            return ("resync", "accept", "unlink") if contact_only else ("resync", "unlink")
        return ()

    @property
    def fingerprint(self) -> str:
        """Same record, kind and differences → same fingerprint (a derived finding is new when the last
        report had no finding with its fingerprint)."""
        diffs = ";".join(f"{d.field}={d.was}>{d.now}" for d in self.differences)
        return f"{self.entity_type}#{self.platform_id}#{self.kind}#{diffs}"


def _is_amount(d: Difference) -> bool:
    return d.field in ("total", "amount") or (d.field.startswith("line ") and d.field.endswith(" amount"))


def _own(row: Compared, customers: Mapping[str, str]) -> Finding | None:
    """The record's own finding: missing, deleted, amount or edited; None when QuickBooks matches."""
    if row.drift_code in (DELETED, MISSING) and row.qbo_id is None:
        return Finding(row.entity_type, row.platform_id, row.drift_code)
    if row.qbo_id is None:
        return None
    if row.obj is None:
        return Finding(row.entity_type, row.platform_id, MISSING, (), row.qbo_entity, row.qbo_id)
    if not written_by_qbsync(row.entity_type, row.platform_id, row.qbo_entity or "", row.obj):
        return None  # linked to an object that was there before: its fields are QuickBooks' own
    account = row.data.get("account_id")
    customer_id = customers.get(account) if isinstance(account, str) else None
    found = tuple(
        differences(row.entity_type, row.data, row.obj, customer_id=customer_id, sales_item=row.sales_item)
    )
    if not found:
        return None
    kind = AMOUNT_MISMATCH if any(_is_amount(d) for d in found) else EDITED
    return Finding(row.entity_type, row.platform_id, kind, found, row.qbo_entity, row.qbo_id)


def _text(amount: Decimal, currency: str) -> str:
    return f"{amount}{currency}"


def _paid_status(balance: Decimal, total: Decimal) -> str:
    if balance == 0:
        return "paid"
    if balance < 0:
        return "overpaid"
    return "open" if balance >= total else "partially paid"


@dataclass
class _Ledger:
    """The platform's side of the balances: per invoice what the synced payments applied, per client the
    unapplied amounts and the payments naming each invoice."""

    applied: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    paid_by: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    unapplied: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    records_of: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    #: payments from QuickBooks not delivered: by the invoice they apply to, by QuickBooks id, by client
    pending_on: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)
    pending_of: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))

    def add_from_quickbooks(self, payment: FromQuickBooks) -> None:
        ref = (payment.kind, payment.ref)
        if not payment.delivered:
            if payment.kind == QBO_PAYMENT:  # found again through an invoice's LinkedTxn of type Payment
                self.pending[payment.qbo_payment_id] = ref
            for invoice_id in payment.allocations:
                self.pending_on[invoice_id].append(ref)
            if payment.account_id:
                self.pending_of[payment.account_id].append(ref)
            return
        for invoice_id, amount in payment.allocations.items():
            self.applied[invoice_id] += amount
        if payment.account_id:
            self.unapplied[payment.account_id] += payment.unapplied

    def explain_invoice(
        self, row: Compared, own: Mapping[tuple[str, str], Finding]
    ) -> tuple[tuple[str, str], ...]:
        """What explains a difference of the invoice's balance: its payments with findings of their own,
        then the undelivered QuickBooks payments on it (noted for its client's balance too)."""
        pending = self.pending_for(row.platform_id, row.obj)
        account = row.data.get("account_id")
        if isinstance(account, str):
            self.pending_of[account] += [p for p in pending if p not in self.pending_of[account]]
        return tuple(p for p in self.paid_by[row.platform_id] if p in own) + tuple(pending)

    def pending_for(self, invoice_id: str, obj: Mapping[str, Any] | None) -> list[tuple[str, str]]:
        """The undelivered QuickBooks payments on an invoice: announced on it, or linked to it there."""
        found = list(self.pending_on.get(invoice_id, ()))
        for linked in (obj or {}).get("LinkedTxn") or ():
            if isinstance(linked, Mapping) and linked.get("TxnType") == "Payment":
                ref = self.pending.get(str(linked.get("TxnId")))
                if ref is not None and ref not in found:
                    found.append(ref)
        return found

    def add_payment(self, row: Compared) -> None:
        amount = money(row.data.get("amount")) or Decimal("0.00")
        allocated = Decimal("0.00")
        for alloc in row.data.get("allocations") or ():
            if not isinstance(alloc, Mapping) or not isinstance(alloc.get("invoice_id"), str):
                continue
            share = money(alloc.get("amount")) or Decimal("0.00")
            self.applied[alloc["invoice_id"]] += share
            self.paid_by[alloc["invoice_id"]].append(("payment", row.platform_id))
            allocated += share
        account = row.data.get("account_id")
        if isinstance(account, str):
            self.unapplied[account] += amount - allocated
            self.records_of[account].append(("payment", row.platform_id))


def _currency(data: Mapping[str, Any]) -> str:
    value = data.get("currency")
    return f" {value}" if isinstance(value, str) and value else ""


def _paid_finding(
    row: Compared, expected: Decimal, total: Decimal, explained: tuple[tuple[str, str], ...]
) -> Finding | None:
    now = money((row.obj or {}).get("Balance"))
    if now is None or now == expected:
        return None
    cur = _currency(row.data)
    found = [Difference("balance", _text(expected, cur), _text(now, cur))]
    was_status, now_status = _paid_status(expected, total), _paid_status(now, total)
    if was_status != now_status:
        found.append(Difference("paid status", was_status, now_status))
    return Finding(
        row.entity_type,
        row.platform_id,
        PAID_STATUS_MISMATCH,
        tuple(found),
        row.qbo_entity,
        row.qbo_id,
        explained_by=explained,
    )


def compare(rows: Iterable[Compared], from_quickbooks: Iterable[FromQuickBooks] = ()) -> list[Finding]:
    """Every finding of the rows (see the module table), in the order of the rows, a record's derived
    finding only when it has no finding of its own. ``from_quickbooks``: the payments recorded in
    QuickBooks that qbsync forwards to the platform (see the module doc)."""
    rows = list(rows)
    customers = {
        r.platform_id: r.qbo_id for r in rows if r.entity_type == "client_account" and r.qbo_id is not None
    }
    own: dict[tuple[str, str], Finding] = {}
    for row in rows:
        finding = _own(row, customers)
        if finding is not None:
            own[(row.entity_type, row.platform_id)] = finding
    ledger = _Ledger()
    for row in rows:
        if row.entity_type == "payment":
            ledger.add_payment(row)
    for payment in from_quickbooks:
        ledger.add_from_quickbooks(payment)
    findings: list[Finding] = []
    invoice_balance: dict[str, Decimal] = defaultdict(Decimal)
    currency_of: dict[str, str] = {}
    for row in rows:
        key = (row.entity_type, row.platform_id)
        if key in own:
            findings.append(own[key])
        if row.entity_type != "invoice":
            continue
        total = money(row.data.get("total")) or Decimal("0.00")
        expected = total - ledger.applied[row.platform_id]
        account = row.data.get("account_id")
        if isinstance(account, str):
            invoice_balance[account] += expected
            ledger.records_of[account].append(key)
            currency_of.setdefault(account, _currency(row.data))
        if key in own or row.obj is None:
            continue
        paid = _paid_finding(row, expected, total, ledger.explain_invoice(row, own))
        if paid is not None:
            findings.append(paid)
    findings += _balances(rows, own, ledger, invoice_balance, currency_of, findings)
    return findings


def _balances(
    rows: Sequence[Compared],
    own: Mapping[tuple[str, str], Finding],
    ledger: _Ledger,
    invoice_balance: Mapping[str, Decimal],
    currency_of: Mapping[str, str],
    findings: Sequence[Finding],
) -> list[Finding]:
    flagged = {(f.entity_type, f.platform_id) for f in findings}
    out = []
    for row in rows:
        key = (row.entity_type, row.platform_id)
        if row.entity_type != "client_account" or key in own or row.obj is None:
            continue
        now = money(row.obj.get("Balance"))
        expected = invoice_balance.get(row.platform_id, Decimal("0.00")) - ledger.unapplied.get(
            row.platform_id, Decimal("0.00")
        )
        expected = expected.quantize(_CENT)
        if now is None or now == expected:
            continue
        cur = currency_of.get(row.platform_id, "")
        explained = tuple(k for k in ledger.records_of.get(row.platform_id, ()) if k in flagged)
        explained += tuple(ledger.pending_of.get(row.platform_id, ()))
        out.append(
            Finding(
                row.entity_type,
                row.platform_id,
                BALANCE_MISMATCH,
                (Difference("balance", _text(expected, cur), _text(now, cur)),),
                row.qbo_entity,
                row.qbo_id,
                explained_by=explained,
            )
        )
    return out
