"""A realistic sample firm for ``make demo`` (issue 4, item 8): generated platform events, sent through
the local stack, and a report of what landed in QuickBooks.

:func:`generate` builds, deterministically from a seed, the EventBridge events the platform would send
for a small accounting practice: 55 client accounts, 21 services, 301 invoices (1-4 lines each), and
payments of every kind qbsync handles - full, partial, split across 2-3 invoices, paid from client
credit balance (a QBO CreditMemo), refunds of card payments and card processing fees. Four records are
wrong on purpose, so that the error log has something true to show:

* an invoice whose line carries a platform tax rate the firm never mapped (``tax_rate_unmapped``,
  Taxes; the firm's tax map is empty by default);
* a client account whose name contains a colon, which QuickBooks refuses in a name
  (``name_invalid_characters``, Accounts);
* a client account named exactly like a vendor the firm's bookkeeper entered in QuickBooks by hand
  before connecting (:attr:`SampleFirm.qbo_vendors_before`, created by :func:`run` first). QuickBooks
  names are unique across customers, vendors and employees, so it answers fault 6240
  (``duplicate_name``, Accounts). (Not a customer: qbsync links an active customer of exactly that name
  instead of creating one, PRODUCT.md C.1. Not two platform accounts with one name: the error would land
  on whichever syncs second - with several workers, not a fixed one.)
* a service whose rate the platform holds as negative (a sign typo on its price list): data QuickBooks
  would refuse, an explained error on its record before any QuickBooks call (``service_rate_negative``,
  Services; issue 11 item 1); one invoice of a good account bills it.

And one event the platform sends that qbsync cannot understand (a payment whose amount is a JSON number,
not a decimal string): :attr:`SampleFirm.malformed_events`, sent after the others; it goes to OutboundDLQ on
its first receive and the firm sees it in ``GET /dead-letters`` (issue 11 item 3). It is not a record.

The invoices of the two bad accounts and the one billing the failed service are ``skipped`` naming the
failed record (they will not sync until the firm acts, and come back by themselves when it does), and so
is the payment of the vendor-named account's invoice (behind the invoice): :attr:`SampleFirm.expected_held`
(issue 11 item 2: a ``skip_reason`` starting ``waiting_on_prerequisite:``). Nothing stays ``blocked``: that
means "waiting for something on its way". :attr:`SampleFirm.cases` names the record of
each issue-11 case, and the report's "Where each case ended" shows its status and reason. QuickBooks also
holds, before the sync, the customer the bookkeeper uses for that client
(:attr:`SampleFirm.qbo_customers_before`, "<name> (client)"): the demo maps the account to it through
the admin API. :meth:`SampleFirm.after_fixes` says what should land once errors are fixed or skipped.

:func:`run` sends the events through the demo's real bus, shows progress, waits (bounded) for qbsync's
"Sync Status Changed" events, then reads the simulator and the error log and returns a
:class:`SampleReport` (``render()`` for the tables, ``ok`` for the verdict).

This module imports nothing from ``qbsync`` (``python -m local.demo`` runs without ``layers/core`` on the
path); the unit test checks every event against ``qbsync.models.platform_events``.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

__all__ = [
    "API_TYPE",
    "CASE_TITLES",
    "HAND_ENTERED_CUSTOMER",
    "QBO_ENTITY_OF",
    "UNMAPPED_TAX_RATE",
    "Case",
    "DeliberateError",
    "SampleFirm",
    "SampleFirmError",
    "SampleReport",
    "generate",
    "read_report",
    "run",
]

_CENT = Decimal("0.01")
#: The QBO entity each platform record becomes (a credit-balance payment becomes a CreditMemo).
QBO_ENTITY_OF = {
    "ClientAccount": "Customer",
    "Service": "Item",
    "Invoice": "Invoice",
    "Payment": "Payment",
    "Refund": "RefundReceipt",
    "ProcessingFee": "Purchase",
}
#: Which note field carries qbsync's ``qbsync:<Entity>:<id>`` marker, per QBO entity.
_NOTE_FIELD = {"Customer": "Notes", "Item": "Description"}
_MARKER = re.compile(r"qbsync:([A-Za-z]+):([A-Za-z0-9_.:\-]+?)(?=$|[\s;,)])")
_TERMINAL = ("synced", "failed", "skipped", "blocked")

N_ACCOUNTS = 55
N_SERVICES = 20
N_INVOICES = 300
#: Invoices are dated within this many days before the reference day.
HISTORY_DAYS = 150
#: A vendor the firm entered in QuickBooks by hand before connecting (not a generated name).
HAND_ENTERED_VENDOR = "Marsh & Reed Consulting LLC"
#: The customer the bookkeeper entered by hand for that same client (what the account gets mapped to).
HAND_ENTERED_CUSTOMER = f"{HAND_ENTERED_VENDOR} (client)"
#: The platform tax rate of the deliberate ``tax_rate_unmapped`` invoice (5.5 %, not in the tax map).
UNMAPPED_TAX_RATE = "tax-me-sales"


#: The issue-11 cases the sample firm carries one of (the report's "Where each case ended").
CASE_TITLES = {
    1: "data QuickBooks would refuse -> failed, an explained error on its record",
    2: "behind a prerequisite that will not sync -> skipped naming it; back by itself once it syncs",
    3: "an event qbsync cannot understand -> OutboundDLQ at once (1 receive), in GET /dead-letters",
    4: "lands differently from what the firm sees -> says why (an account whose only invoice is a draft)",
}


class SampleFirmError(Exception):
    """The sample firm could not be generated or sent (bad arguments, PutEvents refused entries)."""


@dataclass(frozen=True)
class DeliberateError:
    """A record that is wrong on purpose: ``entity_type`` as in the events ("Invoice", ...)."""

    entity_type: str
    platform_id: str
    reason_code: str
    category: str
    what: str


@dataclass(frozen=True)
class Case:
    """The record of one issue-11 case: ``item`` 1-3 (:data:`CASE_TITLES`); ``event_id`` for item 3;
    ``behind`` for item 2: the prerequisites that fail as the firm is generated."""

    item: int
    entity_type: str
    platform_id: str
    event_id: str | None = None
    behind: tuple[tuple[str, str], ...] = ()


@dataclass
class SampleFirm:
    """Generated events (in send order) and what should come of them.

    ``expected_qbo`` - how many objects of each QBO entity should be created (our own, marked ones);
    ``expected_synced`` / ``expected_held`` - (entity_type, platform_id) sets; held records are skipped
    behind a deliberate error (named in their skip reason) until it is fixed;
    ``platform_invoice_total`` - the sum of every generated invoice total; ``expected_invoice_total``
    - of those that should land in QBO; ``payment_total`` - sum of every platform payment.
    ``deliberate_errors`` - the errors that should be open in the error log; ``skipped_errors`` - those
    the firm skipped (their records stay failed, the error log no longer shows them open).
    """

    firm_id: str
    seed: int
    events: list[dict[str, Any]]
    records: dict[str, list[dict[str, Any]]]
    deliberate_errors: tuple[DeliberateError, ...]
    expected_synced: frozenset[tuple[str, str]]
    expected_held: frozenset[tuple[str, str]]
    expected_qbo: dict[str, int]
    platform_invoice_total: Decimal
    expected_invoice_total: Decimal
    expected_invoice_balance: Decimal
    payment_total: Decimal
    kinds: Counter[str] = field(default_factory=Counter)
    #: vendors that exist in QuickBooks before the sync (entered there by hand)
    qbo_vendors_before: tuple[str, ...] = ()
    #: customers that exist in QuickBooks before the sync (entered there by hand, no qbsync marker)
    qbo_customers_before: tuple[str, ...] = ()
    #: the platform's open balance of every invoice after its payments, by invoice id
    open_balances: dict[str, Decimal] = field(default_factory=dict)
    skipped_errors: tuple[DeliberateError, ...] = ()
    #: client accounts linked to a customer the firm already had (qbsync creates no customer for them)
    mapped_accounts: frozenset[str] = frozenset()
    #: events the platform sends that break the event contract (sent after ``events``; no record)
    malformed_events: tuple[dict[str, Any], ...] = ()
    #: the record of each issue-11 case (unchanged by :meth:`after_fixes`)
    cases: tuple[Case, ...] = ()

    @property
    def expected_dead_letters(self) -> frozenset[str]:
        """Event ids that should be in the firm's dead letters (``GET /dead-letters``)."""
        return frozenset(str(e["detail"]["event_id"]) for e in self.malformed_events)

    @property
    def expected_failed(self) -> frozenset[tuple[str, str]]:
        errors = (*self.deliberate_errors, *self.skipped_errors)
        return frozenset((e.entity_type, e.platform_id) for e in errors)

    def error(self, reason_code: str) -> DeliberateError:
        """The deliberate error with that reason code (KeyError when the sample has none)."""
        for e in (*self.deliberate_errors, *self.skipped_errors):
            if e.reason_code == reason_code:
                return e
        raise KeyError(reason_code)

    def record(self, entity_type: str, platform_id: str) -> dict[str, Any]:
        """One generated record (KeyError when the sample has none)."""
        for r in self.records[entity_type]:
            if r["id"] == platform_id:
                return r
        raise KeyError((entity_type, platform_id))

    def waiting_on(self, entity_type: str, platform_id: str) -> list[tuple[str, str]]:
        """The records that must be in QuickBooks before this one can sync (its account and the services
        of its lines, the invoices a payment pays, the payment of a refund or fee)."""
        r = self.record(entity_type, platform_id)
        if entity_type == "Invoice":
            services = sorted({str(line["service_id"]) for line in r["line_items"] if line["service_id"]})
            return [("ClientAccount", r["account_id"])] + [("Service", s) for s in services]
        if entity_type == "Payment":
            return [("ClientAccount", r["account_id"])] + [
                ("Invoice", a["invoice_id"]) for a in r["allocations"]
            ]
        if entity_type in ("Refund", "ProcessingFee"):
            return [("ClientAccount", r["account_id"]), ("Payment", r["payment_id"])]
        return []

    def after_fixes(
        self, *, mapped: Iterable[str] = (), fixed: Iterable[str] = (), skipped: Iterable[str] = ()
    ) -> SampleFirm:
        """What should be true once the firm has dealt with deliberate errors (by platform id):
        ``mapped`` - client accounts linked to an existing QuickBooks customer; ``fixed`` - records that
        sync after a fix (e.g. a tax mapping); ``skipped`` - errors the firm skipped. Fixed and mapped
        records land, and so does every held record whose prerequisites all landed by then; skipped
        ones stay failed with their dependents held (skipped naming them). Raises
        :class:`SampleFirmError` for an id that is not an open deliberate error, or one named twice.
        """
        mapped, fixed, skipped = set(mapped), set(fixed), set(skipped)
        by_id = {e.platform_id: e for e in self.deliberate_errors}
        named = [*mapped, *fixed, *skipped]
        if len(set(named)) != len(named) or not set(named) <= set(by_id):
            raise SampleFirmError("each id must be an open deliberate error, named once")
        if any(by_id[p].entity_type != "ClientAccount" for p in mapped):
            raise SampleFirmError("only client accounts can be mapped to a customer")
        synced = set(self.expected_synced) | {(by_id[p].entity_type, p) for p in mapped | fixed}
        held = set(self.expected_held)
        released = True
        while released:  # a released invoice releases its payment, and so on
            now = {k for k in held if all(w in synced for w in self.waiting_on(*k))}
            released = bool(now)
            synced |= now
            held -= now
        all_mapped = self.mapped_accounts | mapped
        landed = [i for i in self.records["Invoice"] if ("Invoice", i["id"]) in synced]
        return replace(
            self,
            deliberate_errors=tuple(e for e in self.deliberate_errors if e.platform_id not in named),
            skipped_errors=(*self.skipped_errors, *(by_id[p] for p in sorted(skipped))),
            expected_synced=frozenset(synced),
            expected_held=frozenset(held),
            expected_qbo=_expected_qbo(synced, self.records, all_mapped),
            expected_invoice_total=sum((Decimal(i["total"]) for i in landed), Decimal("0.00")),
            expected_invoice_balance=sum((self.open_balances[i["id"]] for i in landed), Decimal("0.00")),
            mapped_accounts=frozenset(all_mapped),
        )

    @property
    def record_keys(self) -> frozenset[tuple[str, str]]:
        """(entity_type, platform_id) of every record of the sample."""
        return frozenset((t, str(r["id"])) for t, recs in self.records.items() for r in recs)

    def expected_totals(self) -> dict[str, Decimal]:
        """The money each QBO entity should add up to (TotalAmt), from the records that should land:
        invoices, payments (card/check/...), credit-balance payments (CreditMemo), refunds and fees."""

        def landing(entity_type: str) -> list[dict[str, Any]]:
            return [r for r in self.records[entity_type] if (entity_type, r["id"]) in self.expected_synced]

        def total(rows: Iterable[dict[str, Any]], key: str) -> Decimal:
            return _money(sum((Decimal(str(r[key])) for r in rows), Decimal("0.00")))

        pays = landing("Payment")
        return {
            "Invoice": total(landing("Invoice"), "total"),
            "Payment": total((p for p in pays if p["method"] != "credit_balance"), "amount"),
            "CreditMemo": total((p for p in pays if p["method"] == "credit_balance"), "amount"),
            "RefundReceipt": total(landing("Refund"), "amount"),
            "Purchase": total(landing("ProcessingFee"), "amount"),
        }

    @property
    def expected_terminal(self) -> int:
        """How many records should announce a final status: synced, failed, or skipped behind a failed
        prerequisite (held)."""
        return len(self.expected_synced) + len(self.expected_failed) + len(self.expected_held)


# --- generation ----------------------------------------------------------------------------------------

_FIRST = [
    "Harborview", "Granite", "Maple", "Cedar", "Bayview", "Summit", "Riverside", "Northwind", "Lighthouse",
    "Pinecrest", "Oakridge", "Blue Heron", "Willow", "Copper Kettle", "Foxglove", "Seaside", "Ironwood",
    "Meadowlark", "Silver Birch", "Tidewater", "Brightwater", "Old Mill", "Kestrel", "Juniper", "Sandpiper",
]  # fmt: skip
_SECOND = [
    "Bakery", "Dental", "Landscaping", "Plumbing", "Realty", "Veterinary Clinic", "Coffee Roasters",
    "Architects", "Yoga Studio", "Auto Repair", "Books", "Brewing", "Florist", "Physiotherapy",
    "Design Studio", "Marine Supply", "Hardware", "Catering", "Electric", "Law Office",
]  # fmt: skip
_SUFFIX = ["LLC", "Inc.", "& Co.", "Ltd", "Partners", "Group", ""]
_PEOPLE = ["Maria Alvarez", "Tom Becker", "Priya Natarajan", "Sam O'Neill", "Grace Liu", "Omar Haddad"]
_CITIES = [("Portland", "ME", "041"), ("Bangor", "ME", "044"), ("Burlington", "VT", "054")]
_SERVICES: list[tuple[str, str, str]] = [
    ("Bookkeeping (monthly)", "hour", "95.00"),
    ("Bank reconciliation", "hour", "85.00"),
    ("Payroll run", "item", "65.00"),
    ("Payroll setup", "item", "250.00"),
    ("Individual tax return (1040)", "item", "425.00"),
    ("Business tax return (1120-S)", "item", "1150.00"),
    ("Partnership return (1065)", "item", "975.00"),
    ("Sales tax filing", "item", "120.00"),
    ("Quarterly estimates", "item", "150.00"),
    ("1099 preparation", "item", "18.50"),
    ("Advisory meeting", "hour", "175.00"),
    ("CFO services", "hour", "210.00"),
    ("Cleanup bookkeeping", "hour", "110.00"),
    ("Financial statements", "item", "600.00"),
    ("Budget and forecast", "hour", "160.00"),
    ("IRS notice response", "hour", "195.00"),
    ("Entity formation", "item", "800.00"),
    ("QuickBooks training", "hour", "90.00"),
    ("Audit support", "hour", "185.00"),
    ("Year-end close", "item", "700.00"),
]


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _s(value: Decimal) -> str:
    return str(_money(value))


class _Events:
    """Builds EventBridge events shaped like events/platform/*.json, numbered in creation order."""

    def __init__(self, firm_id: str, seed: int, start: datetime) -> None:
        self.firm_id = firm_id
        self.seed = seed
        self.start = start
        self.out: list[dict[str, Any]] = []

    def add(self, detail_type: str, data: dict[str, Any], when: date) -> None:
        n = len(self.out) + 1
        # occurred_at: the record's own day, made unique and increasing by the event number
        at = datetime(when.year, when.month, when.day, 9, tzinfo=UTC) + timedelta(seconds=n)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.out.append(
            {
                "version": "0",
                "id": f"sample-{self.seed}-{n:05d}",
                "detail-type": detail_type,
                "source": "platform",
                "account": "123456789012",
                "time": stamp,
                "region": "us-east-1",
                "resources": [],
                "detail": {
                    "firm_id": self.firm_id,
                    "event_id": f"evt-sample-{self.seed}-{n:05d}",
                    "occurred_at": stamp,
                    "correlation_id": f"corr-sample-{self.seed}-{n:05d}",
                    "version": 1,
                    "data": data,
                },
            }
        )


def _account_names(rng: random.Random, count: int) -> list[str]:
    combos = [f"{a} {b}" for a in _FIRST for b in _SECOND]
    rng.shuffle(combos)
    names: list[str] = []
    for base in combos[:count]:
        suffix = rng.choice(_SUFFIX)
        names.append(f"{base} {suffix}".strip())
    return names


def generate(
    firm_id: str,
    seed: int = 7,
    *,
    today: date | None = None,
    n_accounts: int = N_ACCOUNTS,
    n_invoices: int = N_INVOICES,
) -> SampleFirm:
    """Deterministic sample firm for ``firm_id`` (same seed and ``today`` -> same events).

    ``today`` is the reference day (default: the current UTC day); every record is dated within the
    :data:`HISTORY_DAYS` before it. ``n_accounts`` / ``n_invoices`` scale the firm down for a quick run
    (the issue's demo uses the defaults: 55 accounts, 300 invoices).

    Raises :class:`SampleFirmError` for an empty firm id, fewer than 5 accounts, more accounts than
    there are distinct names, or fewer invoices than accounts + 2.
    """
    if not firm_id or not isinstance(firm_id, str):
        raise SampleFirmError("firm_id must be a non-empty string")
    if not 5 <= n_accounts <= len(_FIRST) * len(_SECOND):
        raise SampleFirmError(f"n_accounts must be between 5 and {len(_FIRST) * len(_SECOND)}")
    if n_invoices < n_accounts + 2:
        raise SampleFirmError("n_invoices must be at least n_accounts + 2 (every account bills)")
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    first_day = today - timedelta(days=HISTORY_DAYS)
    ev = _Events(firm_id, seed, datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC))
    kinds: Counter[str] = Counter()

    # --- client accounts -----------------------------------------------------------------------------
    names = _account_names(rng, n_accounts)
    accounts: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        city, region, zip3 = rng.choice(_CITIES)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
        accounts.append(
            {
                "id": f"acct-{1000 + i}",
                "name": name,
                "account_type": "company",
                "active": True,
                "contact_ids": [],
                "email": f"billing@{slug}.example",
                "phones": [{"type": "work", "number": f"+1 207 555 {rng.randint(100, 9999):04d}"}],
                "billing_address": {
                    "line1": f"{rng.randint(2, 980)} {rng.choice(['Main', 'Water', 'Elm', 'Congress'])} St",
                    "line2": None,
                    "city": city,
                    "region": region,
                    "postal_code": f"{zip3}{rng.randint(1, 99):02d}",
                    "country": "US",
                },
                "currency": "USD",
            }
        )
    # Deliberate errors on accounts: a colon in the name, and the name of a vendor that the firm
    # entered in QuickBooks by hand (no platform account has it twice).
    colon_account = accounts[-2]
    colon_account["name"] = f"{_PEOPLE[0]}: Household"
    colon_account["account_type"] = "individual"
    duplicate_account = accounts[-1]
    duplicate_account["name"] = HAND_ENTERED_VENDOR
    good_accounts = accounts[:-2]

    # --- services ------------------------------------------------------------------------------------
    services: list[dict[str, Any]] = [
        {
            "id": f"svc-{300 + i}",
            "name": name,
            "description": f"{name} for the client",
            "rate": rate,
            "rate_type": rate_type,
            "active": True,
            "taxable": False,
            "tax_rate_id": None,
        }
        for i, (name, rate_type, rate) in enumerate(_SERVICES)
    ]

    # --- invoices ------------------------------------------------------------------------------------
    # Every good account gets at least one invoice (accounts sync only with activity); the rest are
    # spread at random. The two bad accounts get one invoice each, dated last, which is held (skipped
    # naming its failed account).
    owners = [a["id"] for a in good_accounts]
    owners += [rng.choice(good_accounts)["id"] for _ in range(n_invoices - 2 - len(owners))]
    rng.shuffle(owners)
    days = sorted(first_day + timedelta(days=rng.randint(0, HISTORY_DAYS - 31)) for _ in owners)
    owners += [colon_account["id"], duplicate_account["id"]]
    days += [today - timedelta(days=20), today - timedelta(days=20)]
    invoices: list[dict[str, Any]] = []
    for i, (owner, issued) in enumerate(zip(owners, days, strict=True)):
        lines = []
        for n in range(1, rng.randint(1, 4) + 1):
            svc = rng.choice(services)
            rate = Decimal(svc["rate"])
            if svc["rate_type"] == "hour":
                qty = Decimal(rng.choice(["0.5", "1", "1.25", "2", "3.5", "4", "6", "7.75", "10"]))
            else:
                qty = Decimal(rng.choice(["1", "1", "1", "2", "3", "12"]))
            lines.append(
                {
                    "id": f"ln-{n}",
                    "service_id": svc["id"],
                    "work_type_id": None,
                    "description": svc["name"] if n % 2 else f"{svc['name']} - {issued.strftime('%B')}",
                    "quantity": str(qty),
                    "rate": svc["rate"],
                    "amount": _s(qty * rate),
                    "tax_rate_id": None,
                    "tax_amount": None,
                }
            )
        subtotal = sum((Decimal(line["amount"]) for line in lines), Decimal("0.00"))
        invoices.append(
            {
                "id": f"inv-{5000 + i}",
                "number": f"INV-{2401 + i}",
                "account_id": owner,
                "status": "sent",
                "issue_date": issued.isoformat(),
                "due_date": (issued + timedelta(days=30)).isoformat(),
                "currency": "USD",
                "line_items": lines,
                "subtotal": _s(subtotal),
                "tax_total": "0.00",
                "total": _s(subtotal),
                "balance_due": _s(subtotal),
                "memo": "Thank you for your business",
                "sent_at": f"{issued.isoformat()}T15:00:00Z",
            }
        )
    # Deliberate error: one invoice of a good account charges a tax rate the firm never mapped.
    taxed = invoices[n_invoices // 2]
    first_line = taxed["line_items"][0]
    tax = _money(Decimal(first_line["amount"]) * Decimal("0.055"))
    first_line.update(tax_rate_id=UNMAPPED_TAX_RATE, tax_amount=_s(tax))
    taxed["tax_total"] = _s(tax)
    taxed["total"] = taxed["balance_due"] = _s(Decimal(taxed["subtotal"]) + tax)
    bad_invoices = {taxed["id"], invoices[-2]["id"], invoices[-1]["id"]}

    # --- payments, refunds, fees ---------------------------------------------------------------------
    balance = {inv["id"]: Decimal(inv["total"]) for inv in invoices}
    by_account: dict[str, list[dict[str, Any]]] = {}
    for inv in invoices:
        if inv["id"] not in bad_invoices:
            by_account.setdefault(inv["account_id"], []).append(inv)
    payments: list[dict[str, Any]] = []
    refunds: list[dict[str, Any]] = []
    fees: list[dict[str, Any]] = []

    def pay(account_id: str, allocs: list[tuple[dict[str, Any], Decimal]], method: str, kind: str) -> None:
        when = max(date.fromisoformat(inv["issue_date"]) for inv, _ in allocs) + timedelta(
            days=rng.randint(3, 25)
        )
        amount = sum((a for _, a in allocs), Decimal("0.00"))
        pid = f"pay-{7000 + len(payments)}"
        card = method == "card"
        reference = f"ch_{seed}{len(payments):05d}" if card else None
        if method == "check":
            reference = str(rng.randint(1000, 9999))
        payout = {"payout_id": f"po_{seed}{len(payments):05d}", "deposited_on": str(when + timedelta(days=2))}
        deposit = payout if card else None
        payments.append(
            {
                "id": pid,
                "account_id": account_id,
                "payment_date": when.isoformat(),
                "currency": "USD",
                "amount": _s(amount),
                "method": method,
                "offline": False,
                "sync_override": None,
                "allocations": [{"invoice_id": inv["id"], "amount": _s(a)} for inv, a in allocs],
                "processor": "stripe" if card else None,
                "reference": reference,
                "description": "Paid through the client portal" if card else None,
                "deposit": deposit,
            }
        )
        for inv, a in allocs:
            balance[inv["id"]] -= a
        kinds[kind] += 1
        if card:
            # Stripe-like fee: 2.9% + 30c, on every card payment.
            fee = _money(amount * Decimal("0.029") + Decimal("0.30"))
            fees.append(
                {
                    "id": f"fee-{9000 + len(fees)}",
                    "payment_id": pid,
                    "account_id": account_id,
                    "fee_date": when.isoformat(),
                    "currency": "USD",
                    "amount": _s(fee),
                    "processor": "stripe",
                    "description": "Card processing fee",
                }
            )
            if len(payments) % 7 == 0:
                part = _money(amount * Decimal(rng.choice(["0.1", "0.25", "0.5", "1"])))
                refunds.append(
                    {
                        "id": f"ref-{8000 + len(refunds)}",
                        "payment_id": pid,
                        "account_id": account_id,
                        "refund_date": (when + timedelta(days=rng.randint(1, 10))).isoformat(),
                        "currency": "USD",
                        "amount": _s(part),
                        "invoice_id": allocs[0][0]["id"],
                        "reason": "Billed in error" if part == amount else "Goodwill adjustment",
                    }
                )

    methods = ["card", "card", "check", "check", "bank_transfer", "cash"]
    for account_id in sorted(by_account):
        open_invoices = by_account[account_id]
        i = 0
        while i < len(open_invoices):
            roll = rng.random()
            inv = open_invoices[i]
            if roll < 0.08 and i + 1 < len(open_invoices):  # split across 2-3 invoices
                group = open_invoices[i : i + rng.choice([2, 3])]
                pay(account_id, [(g, balance[g["id"]]) for g in group], rng.choice(methods), "split")
                i += len(group)
            elif roll < 0.18:  # partial now, sometimes the rest later
                part = _money(balance[inv["id"]] * Decimal(rng.choice(["0.25", "0.4", "0.5", "0.6"])))
                pay(account_id, [(inv, part)], rng.choice(methods), "partial")
                if rng.random() < 0.5:
                    pay(account_id, [(inv, balance[inv["id"]])], rng.choice(methods), "full")
                i += 1
            elif roll < 0.23:  # paid from the client's credit balance (a QBO CreditMemo)
                part = _money(min(balance[inv["id"]], Decimal(rng.choice(["50", "100", "150", "250"]))))
                pay(account_id, [(inv, part)], "credit_balance", "credit_balance")
                i += 1
            elif roll < 0.60:
                pay(account_id, [(inv, balance[inv["id"]])], rng.choice(methods), "full")
                i += 1
            else:  # still open
                kinds["unpaid"] += 1
                i += 1
    # The vendor-named account's client pays its (held) invoice by check: the payment waits on the
    # invoice, and both land once the account is mapped. Built here, after every random draw, so that
    # the rest of the firm is what it was for the same seed.
    colon_invoice, dup_invoice = invoices[-2], invoices[-1]
    waiting_payment = {
        "id": f"pay-{7000 + len(payments)}",
        "account_id": duplicate_account["id"],
        "payment_date": (date.fromisoformat(dup_invoice["issue_date"]) + timedelta(days=10)).isoformat(),
        "currency": "USD",
        "amount": dup_invoice["total"],
        "method": "check",
        "offline": False,
        "sync_override": None,
        "allocations": [{"invoice_id": dup_invoice["id"], "amount": dup_invoice["total"]}],
        "processor": None,
        "reference": "4711",
        "description": None,
        "deposit": None,
    }
    payments.append(waiting_payment)
    balance[dup_invoice["id"]] -= Decimal(dup_invoice["total"])
    kinds["full"] += 1
    # Issue 11, also built after every random draw: a service whose rate the platform holds as negative (a
    # sign typo on its price list; QuickBooks would refuse it), and one invoice of a good account that
    # bills it at the right rate (held: skipped naming the failed service until it is corrected).
    negative_service: dict[str, Any] = {
        "id": f"svc-{300 + len(services)}",
        "name": "Tax planning session",
        "description": "Tax planning session for the client",
        "rate": "-175.00",
        "rate_type": "hour",
        "active": True,
        "taxable": False,
        "tax_rate_id": None,
    }
    services.append(negative_service)
    billed_on = today - timedelta(days=18)
    behind_service: dict[str, Any] = {
        "id": f"inv-{5000 + len(invoices)}",
        "number": f"INV-{2401 + len(invoices)}",
        "account_id": good_accounts[0]["id"],
        "status": "sent",
        "issue_date": billed_on.isoformat(),
        "due_date": (billed_on + timedelta(days=30)).isoformat(),
        "currency": "USD",
        "line_items": [
            {
                "id": "ln-1",
                "service_id": negative_service["id"],
                "work_type_id": None,
                "description": "Tax planning session",
                "quantity": "2",
                "rate": "175.00",
                "amount": "350.00",
                "tax_rate_id": None,
                "tax_amount": None,
            }
        ],
        "subtotal": "350.00",
        "tax_total": "0.00",
        "total": "350.00",
        "balance_due": "350.00",
        "memo": "Thank you for your business",
        "sent_at": f"{billed_on.isoformat()}T15:00:00Z",
    }
    invoices.append(behind_service)
    balance[behind_service["id"]] = Decimal(behind_service["total"])
    bad_invoices.add(behind_service["id"])
    # Issue 11 item 4, after every random draw too: a client whose only invoice is a draft started on the
    # first day and never sent. Under "accounts with activity" neither syncs, and both say why (the account
    # names its draft). Both go first in their lists (the draft sorts first in the send order too), so
    # the held records stay the last ones.
    quiet_account: dict[str, Any] = {
        **good_accounts[0],
        "id": f"acct-{1000 + len(accounts)}",
        "name": "Quiet Harbor Studio LLC",
        "email": "billing@quiet-harbor.example",
    }
    accounts.insert(0, quiet_account)
    drafted_on = first_day
    draft_invoice: dict[str, Any] = {
        **behind_service,
        "id": f"inv-{5000 + len(invoices)}",
        "number": f"INV-{2401 + len(invoices)}",
        "account_id": quiet_account["id"],
        "status": "draft",
        "issue_date": drafted_on.isoformat(),
        "due_date": (drafted_on + timedelta(days=30)).isoformat(),
        "line_items": [{**behind_service["line_items"][0], "service_id": services[0]["id"]}],
        "sent_at": None,
    }
    invoices.insert(0, draft_invoice)
    balance[draft_invoice["id"]] = Decimal(draft_invoice["total"])
    bad_invoices.add(draft_invoice["id"])

    # --- send order: natural (records in date order, each account right after its first invoice,
    # so that it syncs at once instead of being skipped as "no activity" and re-enqueued) -------------
    def day_of(data: dict[str, Any], key: str) -> date:
        return date.fromisoformat(data[key])

    timeline: list[tuple[date, int, str, dict[str, Any]]] = []
    for s in services:
        timeline.append((first_day, 0, "Service Created", s))
    for inv in invoices:
        kind = "Invoice Created" if inv["status"] == "draft" else "Invoice Sent"
        timeline.append((day_of(inv, "issue_date"), 1, kind, inv))
    for p in payments:
        timeline.append((day_of(p, "payment_date"), 2, "Payment Created", p))
    for f in fees:
        timeline.append((day_of(f, "fee_date"), 3, "ProcessingFee Created", f))
    for r in refunds:
        timeline.append((day_of(r, "refund_date"), 4, "Refund Created", r))
    timeline.sort(key=lambda t: (t[0], t[1]))
    account_by_id = {a["id"]: a for a in accounts}
    sent_accounts: set[str] = set()
    for when, _, detail_type, data in timeline:
        ev.add(detail_type, data, when)
        if detail_type.startswith("Invoice ") and data["account_id"] not in sent_accounts:
            sent_accounts.add(data["account_id"])
            ev.add("ClientAccount Created", account_by_id[data["account_id"]], when)
    # The malformed event (numbered after the others, not one of ``events``): the platform's bank-feed
    # import sends a payment of an open invoice with its amount as a JSON number, not a decimal string.
    unpaid = next(inv for inv in invoices if inv["id"] not in bad_invoices and balance[inv["id"]] > 0)
    ev.add(
        "Payment Created",
        {
            "id": f"pay-{7000 + len(payments)}",
            "account_id": unpaid["account_id"],
            "payment_date": (today - timedelta(days=5)).isoformat(),
            "currency": "USD",
            "amount": float(balance[unpaid["id"]]),
            "method": "bank_transfer",
            "offline": False,
            "sync_override": None,
            "allocations": [{"invoice_id": unpaid["id"], "amount": _s(balance[unpaid["id"]])}],
            "processor": None,
            "reference": None,
            "description": "Imported from the bank feed",
            "deposit": None,
        },
        today - timedelta(days=5),
    )
    malformed = ev.out.pop()

    # --- expectations --------------------------------------------------------------------------------
    deliberate = (
        DeliberateError(
            "Invoice", taxed["id"], "tax_rate_unmapped", "Taxes",
            "invoice line taxed with platform tax rate tax-me-sales, which the firm has not mapped",
        ),
        DeliberateError(
            "ClientAccount", colon_account["id"], "name_invalid_characters", "Accounts",
            "client account name contains a colon",
        ),
        DeliberateError(
            "ClientAccount", duplicate_account["id"], "duplicate_name", "Accounts",
            "client account named like a vendor entered in QuickBooks by hand (QuickBooks fault 6240)",
        ),
        DeliberateError(
            "Service", negative_service["id"], "service_rate_negative", "Services",
            "service rate held as -175.00 on the platform (a sign typo); QuickBooks refuses a negative rate",
        ),
    )  # fmt: skip
    held_invoices = [colon_invoice, dup_invoice, behind_service]
    held = frozenset({("Invoice", inv["id"]) for inv in held_invoices} | {("Payment", waiting_payment["id"])})
    synced: set[tuple[str, str]] = {("ClientAccount", a["id"]) for a in good_accounts}
    synced |= {("Service", s["id"]) for s in services if s is not negative_service}
    synced |= {("Invoice", inv["id"]) for inv in invoices if inv["id"] not in bad_invoices}
    synced |= {("Payment", p["id"]) for p in payments if p is not waiting_payment}
    synced |= {("Refund", r["id"]) for r in refunds}
    synced |= {("ProcessingFee", f["id"]) for f in fees}
    failing = {(e.entity_type, e.platform_id) for e in deliberate} | set(held)
    cases = (
        Case(1, "Service", negative_service["id"]),
        *(Case(2, "Invoice", inv["id"], behind=_behind(inv, failing)) for inv in held_invoices),
        Case(2, "Payment", waiting_payment["id"], behind=_behind(waiting_payment, failing)),
        Case(3, "Payment", malformed["detail"]["data"]["id"], malformed["detail"]["event_id"]),
        Case(4, "ClientAccount", quiet_account["id"], behind=(("Invoice", draft_invoice["id"]),)),
        Case(4, "Invoice", draft_invoice["id"]),
    )
    records = {
        "ClientAccount": accounts,
        "Service": services,
        "Invoice": invoices,
        "Payment": payments,
        "Refund": refunds,
        "ProcessingFee": fees,
    }

    landed = [inv for inv in invoices if inv["id"] not in bad_invoices]
    # QBO balance = the platform's open balance: payments pay their invoices and qbsync applies each
    # credit-balance CreditMemo to the invoices the platform payment names.
    open_balance = sum((balance[inv["id"]] for inv in landed), Decimal("0.00"))
    paid = sum((Decimal(p["amount"]) for p in payments), Decimal("0.00"))
    return SampleFirm(
        firm_id=firm_id,
        seed=seed,
        events=ev.out,
        records=records,
        deliberate_errors=deliberate,
        expected_synced=frozenset(synced),
        expected_held=held,
        expected_qbo=_expected_qbo(synced, records, frozenset()),
        platform_invoice_total=sum((Decimal(inv["total"]) for inv in invoices), Decimal("0.00")),
        expected_invoice_total=sum((Decimal(inv["total"]) for inv in landed), Decimal("0.00")),
        expected_invoice_balance=open_balance,
        payment_total=paid,
        kinds=kinds,
        qbo_vendors_before=(HAND_ENTERED_VENDOR,),
        qbo_customers_before=(HAND_ENTERED_CUSTOMER,),
        open_balances=dict(balance),
        malformed_events=(malformed,),
        cases=cases,
    )


def _behind(record: dict[str, Any], failing: set[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The prerequisites of a held invoice or payment that are themselves failing or held."""
    wants = [("ClientAccount", str(record["account_id"]))]
    wants += [("Service", str(x["service_id"])) for x in record.get("line_items", []) if x["service_id"]]
    wants += [("Invoice", str(a["invoice_id"])) for a in record.get("allocations", [])]
    return tuple(w for w in dict.fromkeys(wants) if w in failing)


def _expected_qbo(
    synced: Iterable[tuple[str, str]], records: dict[str, list[dict[str, Any]]], mapped: Iterable[str]
) -> dict[str, int]:
    """How many objects qbsync should create per QBO entity for the ``synced`` records: a credit-balance
    payment is a CreditMemo; a client account ``mapped`` to an existing customer creates none."""
    credit = {p["id"] for p in records["Payment"] if p["method"] == "credit_balance"}
    skip = {("ClientAccount", a) for a in mapped}
    out: Counter[str] = Counter()
    for entity_type, pid in synced:
        if (entity_type, pid) in skip:
            continue
        entity = QBO_ENTITY_OF[entity_type]
        out["CreditMemo" if entity == "Payment" and pid in credit else entity] += 1
    out.setdefault("Payment", 0)
    out.setdefault("CreditMemo", 0)
    return dict(out)


# --- running it through the local stack ----------------------------------------------------------------


class _DemoLike(Protocol):
    """What :func:`run` uses of ``local.demo.Demo``."""

    statuses: Counter[tuple[Any, Any, Any]]

    @property
    def stack(self) -> Any: ...

    @property
    def sim(self) -> Any: ...

    @property
    def realm_b(self) -> str: ...

    def settle(self, quiet_seconds: int = 3, timeout: float = 60) -> None: ...

    def api(self, method: str, path: str, *, firm_id: str = ...) -> Any:
        """The admin API over HTTP with the firm owner's JWT (a ``requests.Response``)."""


@dataclass
class SampleReport:
    """What landed in QuickBooks, the final statuses and the open errors, against the expectations."""

    sample: SampleFirm
    realm_id: str
    in_qbo: dict[str, int]
    duplicates: dict[str, int]
    qbo_invoice_total: Decimal
    qbo_invoice_balance: Decimal
    final_status: dict[tuple[str, str], str]
    open_errors: list[dict[str, Any]]
    seconds_sending: float
    seconds_total: float
    timed_out: bool
    #: TotalAmt per QBO entity of the sample's objects (missing: the check is left out)
    qbo_totals: dict[str, Decimal] = field(default_factory=dict)
    #: the issue-11 case records and the held ones as ``GET /sync/records/{type}/{id}`` answered (None:
    #: not read, the checks on them are left out)
    records_seen: dict[tuple[str, str], dict[str, Any]] | None = None
    #: the firm's ``GET /dead-letters`` rows (None: not read)
    dead_letters: list[dict[str, Any]] | None = None
    #: ``source_receive_count`` of each message in OutboundDLQ, by event id (the worker's attribute)
    dlq_receive_counts: dict[str, str] = field(default_factory=dict)

    @property
    def status_counts(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for (entity_type, _), status in self.final_status.items():
            out.setdefault(entity_type, Counter())[status] += 1
        return out

    @property
    def unexpected_errors(self) -> list[dict[str, Any]]:
        wanted = {(e.platform_id, e.reason_code) for e in self.sample.deliberate_errors}
        return [e for e in self.open_errors if (e.get("platform_id"), e.get("code")) not in wanted]

    @property
    def missing_errors(self) -> list[DeliberateError]:
        seen = {(e.get("platform_id"), e.get("code")) for e in self.open_errors}
        return [d for d in self.sample.deliberate_errors if (d.platform_id, d.reason_code) not in seen]

    @property
    def ok(self) -> bool:
        """Every expected record in QBO exactly once, totals to the cent, exactly the deliberate errors."""
        counts_ok = all(self.in_qbo.get(k, 0) == v for k, v in self.sample.expected_qbo.items())
        return (
            counts_ok
            and not any(self.duplicates.values())
            and self.qbo_invoice_total == self.sample.expected_invoice_total
            and self.qbo_invoice_balance == self.sample.expected_invoice_balance
            and not self.total_mismatches
            and not self.unexpected_errors
            and not self.missing_errors
            and len(self.open_errors) == len(self.sample.deliberate_errors)
            and not self.case_problems
        )

    @property
    def case_problems(self) -> list[str]:
        """Where an issue-11 case did not end as it should: a held record that is not skipped with a
        ``waiting_on_prerequisite:`` reason naming what it waits on, a malformed event that is not in the
        firm's dead letters after exactly one receive, a dead letter nobody sent."""
        s, out = self.sample, []
        if self.records_seen is not None:
            for key in sorted(s.expected_held):
                row = self.records_seen.get(key) or {}
                reason = str(row.get("skip_reason") or "")
                named = any(
                    f"{API_TYPE[t].replace('_', ' ')} {p} " in reason
                    for t, p in s.waiting_on(*key)
                    if (t, p) not in s.expected_synced
                )
                if (
                    row.get("status") != "skipped"
                    or not reason.startswith("waiting_on_prerequisite:")
                    or not named
                ):
                    out.append(f"{key[0]} {key[1]} should be skipped naming what it waits on: {row}")
        for c in (c for c in s.cases if c.item == 4 and self.records_seen is not None):
            row = (self.records_seen or {}).get((c.entity_type, c.platform_id)) or {}
            reason = str(row.get("skip_reason") or "")
            says = "draft" in reason and (
                c.entity_type != "ClientAccount" or reason.startswith("no_activity:")
            )
            if row.get("status") != "skipped" or not says:
                out.append(
                    f"{c.entity_type} {c.platform_id} should be skipped saying it is (or has) a draft: {row}"
                )
        if self.dead_letters is not None:
            seen = {str(d.get("event_id")) for d in self.dead_letters}
            if seen != s.expected_dead_letters:
                out.append(f"dead letters {sorted(seen)}, expected {sorted(s.expected_dead_letters)}")
            for event_id in sorted(s.expected_dead_letters):
                if self.dlq_receive_counts.get(event_id) != "1":
                    out.append(
                        f"{event_id} in OutboundDLQ after {self.dlq_receive_counts.get(event_id)} receives"
                    )
        return out

    def _render_cases(self) -> list[str]:
        """ "Where each case ended": one line per issue-11 case record, its status and reason or error."""
        s = self.sample
        if not s.cases:
            return []
        out = ["Where each case ended (issue 11)"]
        errors = {e.get("platform_id"): e for e in self.open_errors}
        letters = {str(d.get("event_id")): d for d in self.dead_letters or []}
        for item in sorted({c.item for c in s.cases}):
            out.append(f"  {item}. {CASE_TITLES[item]}")
            for c in (c for c in s.cases if c.item == item):
                key = (c.entity_type, c.platform_id)
                row = (self.records_seen or {}).get(key) or {}
                status = row.get("status") or self.final_status.get(key) or "no status"
                if c.item == 3:
                    letter = letters.get(str(c.event_id))
                    receives = self.dlq_receive_counts.get(str(c.event_id), "?")
                    where = (
                        f"in OutboundDLQ after {receives} receive(s), not a record; "
                        f"GET /dead-letters: {letter.get('problem')}"
                        if letter
                        else "NOT in GET /dead-letters"
                    )
                    out.append(f"     {c.entity_type} {c.platform_id} (event {c.event_id}): {where}")
                    continue
                error = errors.get(c.platform_id)
                if error is not None:
                    why = f"[{error.get('category')}] {error.get('title')} ({error.get('code')})"
                elif row.get("skip_reason"):
                    why = str(row["skip_reason"])
                elif status == "synced" and c.item == 1:
                    why = "the platform corrected it; its error resolved"
                elif status == "synced":
                    waits = " and ".join(f"{t} {p}" for t, p in c.behind)
                    why = f"came back by itself once {waits} synced"
                else:
                    why = ""
                out.append(f"     {c.entity_type} {c.platform_id}: {status}" + (f" - {why}" if why else ""))
        out.append("")
        return out

    @property
    def total_mismatches(self) -> list[str]:
        expected = self.sample.expected_totals()
        return [e for e, amount in self.qbo_totals.items() if e in expected and amount != expected[e]]

    def render(self, heading: str | None = None) -> str:
        """The report as text; ``heading`` replaces the line about sending (for a later check)."""
        s = self.sample
        out: list[str] = []
        out.append(f"Sample firm {s.firm_id} (seed {s.seed}) -> QuickBooks company {self.realm_id}")
        out.append(
            heading
            or f"sent {len(s.events)} platform events in {self.seconds_sending:.1f}s; "
            f"all done in {self.seconds_total:.1f}s"
            + ("  (TIMED OUT waiting)" if self.timed_out else "")
        )
        out.append("")
        out.append("What landed in QuickBooks (per platform record type)")
        out.append(
            f"  {'platform':<15}{'records':>8}  {'QBO entity':<14}{'expected':>9}{'in QBO':>8}{'dupl.':>6}"
            f"{'platform total':>16}{'QBO total':>14}"
        )
        expected_totals = s.expected_totals()
        platform_of = {"CreditMemo": "Payment (credit)"}
        for entity in _QBO_ENTITIES:
            platform = platform_of.get(entity) or next(k for k, v in QBO_ENTITY_OF.items() if v == entity)
            n_platform = (
                len(s.records[platform])
                if platform in s.records
                else sum(1 for p in s.records["Payment"] if p["method"] == "credit_balance")
            )
            if entity == "Payment":
                n_platform -= sum(1 for p in s.records["Payment"] if p["method"] == "credit_balance")
            exp = s.expected_qbo.get(entity, 0)
            got = self.in_qbo.get(entity, 0)
            dup = self.duplicates.get(entity, 0)
            want = expected_totals.get(entity)
            have = self.qbo_totals.get(entity)
            money = f"{want if want is not None else '':>16}{have if have is not None else '':>14}"
            bad = exp != got or dup or (want is not None and have is not None and want != have)
            out.append(
                f"  {platform:<15}{n_platform:>8}  {entity:<14}{exp:>9}{got:>8}{dup:>6}{money}"
                + ("   <-- MISMATCH" if bad else "")
            )
        out.append("")
        out.append("Totals")
        n_inv = len(s.records["Invoice"])
        out.append(f"  platform invoices, all {n_inv}:        {s.platform_invoice_total:>12}")
        out.append(f"  platform invoices expected in QuickBooks: {s.expected_invoice_total:>12}")
        mark = "match" if self.qbo_invoice_total == s.expected_invoice_total else "MISMATCH"
        out.append(f"  QuickBooks invoices TotalAmt:             {self.qbo_invoice_total:>12}   {mark}")
        mark = "match" if self.qbo_invoice_balance == s.expected_invoice_balance else "MISMATCH"
        out.append(f"  platform open balance of those invoices:  {s.expected_invoice_balance:>12}")
        out.append(
            f"  QuickBooks open balance:                  {self.qbo_invoice_balance:>12}   {mark}"
            " (credit-balance payments applied as credit memos)"
        )
        out.append(f"  payments received on the platform:        {s.payment_total:>12}")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.kinds.items()))
        n_ref, n_fee = len(s.records["Refund"]), len(s.records["ProcessingFee"])
        out.append(f"  payment mix: {kinds}; refunds {n_ref}, fees {n_fee}")
        out.append("")
        out.append("Sync statuses (final, per platform record)")
        out.append(
            "  (skipped: by the settings, or held behind a record that failed, naming it; blocked: waiting"
            " for a prerequisite on its way; waiting: no status announced yet)"
        )
        out.append(f"  {'entity':<15}" + "".join(f"{st:>9}" for st in (*_TERMINAL, "waiting")))
        counts = self.status_counts
        for entity in QBO_ENTITY_OF:
            c = counts.get(entity, Counter())
            total = len(s.records[entity])
            none = total - sum(c.values())
            out.append(f"  {entity:<15}" + "".join(f"{c.get(st, 0):>9}" for st in _TERMINAL) + f"{none:>9}")
        out.append("")
        out.extend(self._render_cases())
        out.append(f"Error log: {len(self.open_errors)} open (deliberate: {len(s.deliberate_errors)})")
        by_key = {(e.get("platform_id"), e.get("code")): e for e in self.open_errors}
        for d in s.deliberate_errors:
            entry = by_key.get((d.platform_id, d.reason_code))
            out.append(f"  * {d.entity_type} {d.platform_id}: {d.what}")
            if entry is None:
                out.append(f"    NOT in the error log (expected {d.category} / {d.reason_code})")
                continue
            out.append(f"    [{entry.get('category')}] {entry.get('title')} ({entry.get('code')})")
            out.append(f"    what happened: {entry.get('explanation')}")
            out.append(f"    fix: {entry.get('fix')}")
        for d in s.skipped_errors:
            out.append(f"  * skipped by the firm: {d.entity_type} {d.platform_id}: {d.what}")
            out.append("    its record stays failed and what waits on it stays unsynced; no notifications")
        for e in self.unexpected_errors:
            out.append(
                f"  ! unexpected: {e.get('entity_type')} {e.get('platform_id')} [{e.get('category')}] "
                f"{e.get('code')}: {e.get('title')}"
            )
        out.append("")
        out.append("RESULT: " + ("ok" if self.ok else "NOT ok"))
        return "\n".join(out)


#: entity types of the event contract -> of the admin API and the error log
API_TYPE = {
    "ClientAccount": "client_account",
    "Service": "service",
    "Invoice": "invoice",
    "Payment": "payment",
    "Refund": "refund",
    "ProcessingFee": "fee",
}


def _chunks(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _final_status(statuses: Counter[tuple[Any, Any, Any]]) -> dict[tuple[str, str], str]:
    """One status per record from the counter of announcements: synced wins, then failed, blocked,
    skipped (an account is first skipped for lack of activity and synced afterwards)."""
    rank = {"synced": 4, "failed": 3, "blocked": 2, "skipped": 1}
    out: dict[tuple[str, str], str] = {}
    for (entity_type, platform_id, status), n in statuses.items():
        if not n or status not in rank:
            continue
        key = (str(entity_type), str(platform_id))
        if key not in out or rank[status] > rank[out[key]]:
            out[key] = status
    return out


def _progress_line(sample: SampleFirm, demo: _DemoLike, started: float, realm: str | None = None) -> str:
    """Records settled so far by status and, with ``realm``, the sample's objects in QuickBooks so far."""
    final = _final_status(demo.statuses)
    mine = {k: v for k, v in final.items() if k in sample.record_keys}
    c = Counter(mine.values())
    done = c["synced"] + c["failed"] + sum(1 for k in sample.expected_held if mine.get(k) == "skipped")
    line = (
        f"  {time.monotonic() - started:6.1f}s  {done:4d}/{sample.expected_terminal} settled: "
        f"synced {c['synced']}, failed {c['failed']}, skipped {c['skipped']}, blocked {c['blocked']}"
    )
    if realm is not None:
        counts = _qbo_counts(sample, demo, realm)
        line += " | in QuickBooks: " + ", ".join(
            f"{counts[e]} {_SHORT[e]}" for e in _QBO_ENTITIES if counts.get(e)
        )
    return line


_QBO_ENTITIES = ("Customer", "Item", "Invoice", "Payment", "CreditMemo", "RefundReceipt", "Purchase")
_SHORT = {
    "Customer": "customers",
    "Item": "items",
    "Invoice": "invoices",
    "Payment": "payments",
    "CreditMemo": "credit memos",
    "RefundReceipt": "refunds",
    "Purchase": "fees",
}


def _qbo_counts(sample: SampleFirm, demo: _DemoLike, realm: str) -> dict[str, int]:
    """How many of the sample's records have their object in QuickBooks (per QBO entity)."""
    ids = sample.record_keys
    names = {str(r["name"]) for r in sample.records["Service"]}
    out: dict[str, int] = {}
    for entity in _QBO_ENTITIES:
        rows = demo.sim.entities(realm, entity)
        if entity == "Item":
            out[entity] = len({r.get("Name") for r in rows if r.get("Name") in names})
        else:
            out[entity] = len({m for m in (_marked(entity, r) for r in rows) if m in ids})
    return out


def _settled(sample: SampleFirm, final: dict[tuple[str, str], str]) -> bool:
    synced = all(final.get(k) == "synced" for k in sample.expected_synced)
    failed = all(final.get(k) == "failed" for k in sample.expected_failed)
    held = all(final.get(k) == "skipped" for k in sample.expected_held)
    return synced and failed and held


def _marked(entity: str, row: dict[str, Any]) -> tuple[str, str] | None:
    note = row.get(_NOTE_FIELD.get(entity, "PrivateNote")) or ""
    found = _MARKER.search(str(note))
    return (found.group(1), found.group(2)) if found else None


def _enter_by_hand(demo: _DemoLike, realm: str, entity: str, names: Iterable[str]) -> None:
    """The bookkeeper's vendors or customers in QuickBooks before the sync (through QBO's own API with a
    token the simulator issues to the app, as QuickBooks' UI would create them). Skips names already
    there."""
    import requests

    existing = {v.get("DisplayName") for v in demo.sim.entities(realm, entity)}
    wanted = [n for n in names if n not in existing]
    if not wanted:
        return
    client_id = demo.stack.intuit_app["client_id"]
    token = demo.sim.issue_tokens(client_id, realm)["access_token"]
    for name in wanted:
        response = requests.post(
            f"{demo.sim.base_url}/v3/company/{realm}/{entity.lower()}",
            params={"minorversion": "75"},
            json={"DisplayName": name},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=30,
        )
        if response.status_code != 200:
            raise SampleFirmError(
                f"could not create the hand-entered {entity.lower()}: HTTP {response.status_code}"
            )


def _read_error_log(demo: _DemoLike, firm_id: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    from local.stack.provision import clients

    ddb = clients(demo.stack.endpoint_url, demo.stack.region)["dynamodb"]
    table = demo.stack.resources.ref("ErrorLogTable")
    des = TypeDeserializer()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :err)",
        "ExpressionAttributeValues": {":pk": {"S": f"FIRM#{firm_id}"}, ":err": {"S": "ERR#"}},
    }
    while True:
        page = ddb.query(**kwargs)
        items += [{k: des.deserialize(v) for k, v in item.items()} for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [i for i in items if i.get("status") == "open"]


def run(
    demo: _DemoLike,
    sample: SampleFirm,
    *,
    realm_id: str | None = None,
    progress: Callable[[str], Any] = print,
    timeout: float = 600.0,
    progress_every: float = 5.0,
) -> SampleReport:
    """Send the sample firm's events through the demo's bus, wait for qbsync, and report.

    ``realm_id``: the connected QuickBooks company (default ``demo.realm_b``, the company connected at
    the end of the demo). Sends with PutEvents, 10 entries per call (a progress line about every 10 % of
    the sending); then, about every ``progress_every`` seconds, a line with the records settled so far by
    status and the sample's objects in QuickBooks so far; waits until every expected record has its final
    status or ``timeout`` seconds have passed (then the report says so, and ``ok`` is usually False).
    Timings: docs/benchmarks.md ("Sample firm through the local stack").
    Raises :class:`SampleFirmError` when PutEvents refuses entries.
    """
    from local.stack.provision import clients

    realm = realm_id or demo.realm_b
    _enter_by_hand(demo, realm, "Vendor", sample.qbo_vendors_before)
    _enter_by_hand(demo, realm, "Customer", sample.qbo_customers_before)
    events = clients(demo.stack.endpoint_url, demo.stack.region)["events"]
    bus = demo.stack.resources.ref("EventBus")
    started = time.monotonic()
    total = len(sample.events)
    progress(f"  sending {total} platform events for {sample.firm_id} ...")
    step = max(1, total // 10)
    next_mark = step
    sent = 0
    for chunk in _chunks(sample.events, 10):
        _put(events, bus, chunk)
        sent += len(chunk)
        if sent >= next_mark or sent == total:
            demo.settle(quiet_seconds=0, timeout=1)  # drain the inbox so that progress is current
            progress(f"  sent {sent:4d}/{total} events" + _progress_line(sample, demo, started)[1:])
            next_mark += step
    for event in sample.malformed_events:  # the platform's broken event, after the others
        _put(events, bus, [event])
    if sample.malformed_events:
        progress(
            f"  sent {len(sample.malformed_events)} malformed event(s) (a payment amount as a JSON number)"
        )
    seconds_sending = time.monotonic() - started

    deadline = started + timeout
    timed_out = False
    while True:
        # drain qbsync's status events for a few seconds, then one progress line
        demo.settle(quiet_seconds=2, timeout=min(progress_every, max(0.5, deadline - time.monotonic())))
        if _settled(sample, _final_status(demo.statuses)) and _dead_lettered(demo, sample):
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        progress(_progress_line(sample, demo, started, realm))
    # late announcements (e.g. the held invoices' last status) are collected by one short settle
    demo.settle(quiet_seconds=2, timeout=10)
    return read_report(
        demo,
        sample,
        realm,
        seconds_sending=seconds_sending,
        seconds_total=time.monotonic() - started,
        timed_out=timed_out,
    )


def _put(events: Any, bus: str, chunk: list[dict[str, Any]]) -> None:
    answer = events.put_events(
        Entries=[
            {
                "EventBusName": bus,
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
            }
            for e in chunk
        ]
    )
    if answer.get("FailedEntryCount"):
        failed = [x for x in answer["Entries"] if x.get("ErrorCode")]
        raise SampleFirmError(f"PutEvents refused {len(failed)} entries: {failed[:3]}")


def _read_dead_letters(demo: _DemoLike, firm_id: str) -> list[dict[str, Any]]:
    """The firm's dead letters as its owner sees them (``GET /dead-letters``)."""
    answer = demo.api("GET", "/dead-letters", firm_id=firm_id)
    if answer.status_code != 200:
        raise SampleFirmError(f"GET /dead-letters answered {answer.status_code}")
    return list(answer.json()["dead_letters"])


def _dead_lettered(demo: _DemoLike, sample: SampleFirm) -> bool:
    if not sample.malformed_events:
        return True
    seen = {str(d["event_id"]) for d in _read_dead_letters(demo, sample.firm_id)}
    return sample.expected_dead_letters <= seen


def _dlq_receive_counts(demo: _DemoLike) -> dict[str, str]:
    """``source_receive_count`` of the messages in OutboundDLQ, by event id: read without consuming them
    (visibility timeout 0), so that the engineer can still list and redrive them."""
    from local.stack.provision import clients

    sqs = clients(demo.stack.endpoint_url, demo.stack.region)["sqs"]
    url = demo.stack.resources.ref("OutboundDLQ")
    out: dict[str, str] = {}
    for message in sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
    ).get("Messages", []):
        attrs = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
        if attrs.get("event_id"):
            out[str(attrs["event_id"])] = str(attrs.get("source_receive_count"))
    return out


def _read_case_records(demo: _DemoLike, sample: SampleFirm) -> dict[tuple[str, str], dict[str, Any]]:
    """The issue-11 case records and the held ones, as ``GET /sync/records/{type}/{id}`` answers them."""
    keys = {(c.entity_type, c.platform_id) for c in sample.cases if c.item != 3} | set(sample.expected_held)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for entity_type, platform_id in sorted(keys):
        answer = demo.api(
            "GET", f"/sync/records/{API_TYPE[entity_type]}/{platform_id}", firm_id=sample.firm_id
        )
        out[(entity_type, platform_id)] = dict(answer.json()) if answer.status_code == 200 else {}
    return out


def read_report(
    demo: _DemoLike,
    sample: SampleFirm,
    realm: str,
    *,
    seconds_sending: float = 0.0,
    seconds_total: float = 0.0,
    timed_out: bool = False,
) -> SampleReport:
    """Read what is in QuickBooks (the simulator), the statuses qbsync announced so far and the open
    errors of the error log, against ``sample``'s expectations (e.g. :meth:`SampleFirm.after_fixes`)."""
    in_qbo: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    qbo_totals: dict[str, Decimal] = {}
    balance = Decimal("0.00")
    ids = sample.record_keys
    service_names = {str(r["name"]): str(r["id"]) for r in sample.records["Service"]}
    for entity in _QBO_ENTITIES:
        rows = demo.sim.entities(realm, entity)
        # only this sample's records (the demo's earlier steps wrote a few of their own), and not
        # zero-total credit applications, which carry their payment's marker too
        mine = [
            r
            for r in rows
            if _marked(entity, r) in ids and "credit application" not in str(r.get("PrivateNote"))
        ]
        if entity == "Item":  # items carry no marker (item_payload): match the services by name
            mine = [r for r in rows if r.get("Name") in service_names]
            marks = Counter[tuple[str, str]](("Service", service_names[str(r["Name"])]) for r in mine)
        else:
            marks = Counter(m for m in (_marked(entity, r) for r in mine) if m is not None)
        in_qbo[entity] = len(marks)
        duplicates[entity] = sum(n - 1 for n in marks.values() if n > 1)
        if entity not in ("Customer", "Item"):
            qbo_totals[entity] = _money(sum((Decimal(str(r.get("TotalAmt", 0))) for r in mine), Decimal(0)))
        if entity == "Invoice":
            balance = sum((Decimal(str(r.get("Balance", 0))) for r in mine), Decimal("0.00"))
    return SampleReport(
        sample=sample,
        realm_id=realm,
        in_qbo=in_qbo,
        duplicates=duplicates,
        qbo_invoice_total=qbo_totals["Invoice"],
        qbo_invoice_balance=_money(balance),
        qbo_totals=qbo_totals,
        final_status={k: v for k, v in _final_status(demo.statuses).items() if k in sample.record_keys},
        open_errors=_read_error_log(demo, sample.firm_id),
        records_seen=_read_case_records(demo, sample),
        dead_letters=_read_dead_letters(demo, sample.firm_id),
        dlq_receive_counts=_dlq_receive_counts(demo),
        seconds_sending=seconds_sending,
        seconds_total=seconds_total,
        timed_out=timed_out,
    )
