"""Issue 11 item 5, property-based: after the queues drain, no record is in limbo.

Random firms (settings, accounts - one sometimes named like the company's vendor "Stripe", so QuickBooks
refuses it -, services, invoices - some drafts, some dated before the start date -, payments - some
recorded by hand -, refunds, deleted invoices), every event delivered once or twice in a shuffled order,
through the real entity-sync handler on moto and the simulator, re-enqueued work delivered until the
queue is empty. Then every record qbsync knows is synced, skipped with a reason, failed with an error in
the error center, or blocked on a named prerequisite that will still come
(:func:`qbsync.outbound.limbo.records_in_limbo`), and nothing is in QuickBooks twice.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qbsync.outbound.limbo import records_in_limbo
from qbsync.outbound.mapping import parse_marker
from qbsync.repositories.records import STATUSES

from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event

START = date(2026, 3, 1)


class _Firm:
    """The events of one random firm, in the platform's contract."""

    def __init__(self, firm: str, rng: random.Random) -> None:
        self.firm, self.rng, self.events = firm, rng, []
        self.n = 0

    def _event(self, sample: str, version: int = 1, **data: Any) -> dict[str, Any]:
        event = platform_event(sample, self.firm)
        event["detail"]["data"] = {**event["detail"]["data"], **copy.deepcopy(data)}
        self.n += 1
        event["detail"]["event_id"] = f"evt-{self.n}"
        event["detail"]["version"] = version
        self.events.append(event)
        return event

    def build(self) -> None:
        rng, firm = self.rng, self.firm
        services = []
        for i in range(2):
            sid = f"svc-{i}"
            self._event("service_created", id=sid, name=f"{firm} service {i}", rate="100.00")
            services.append(sid)
        accounts = []
        for i in range(rng.randint(2, 4)):
            aid = f"acct-{i}"
            name = "Stripe" if i == 0 and rng.random() < 0.5 else f"{firm} client {i}"
            self._event("client_account_created", id=aid, name=name, contact_ids=[], email=None)
            accounts.append(aid)
        invoices: list[tuple[str, str, Decimal]] = []
        for i in range(rng.randint(2, 6)):
            iid, account = f"inv-{i}", rng.choice(accounts)
            qty = rng.randint(1, 5)
            amount = Decimal(qty * 100).quantize(Decimal("0.01"))
            line = {
                "id": "ln-1", "service_id": rng.choice(services), "work_type_id": None,
                "description": "Work", "quantity": str(qty), "rate": "100.00", "amount": str(amount),
                "tax_rate_id": None, "tax_amount": None,
            }  # fmt: skip
            day = START + timedelta(days=rng.randint(0, 8))
            self._event(
                "invoice_sent", id=iid, number=f"P-{i}", account_id=account,
                status="draft" if rng.random() < 0.15 else "sent",
                issue_date=day.isoformat(), due_date=(day + timedelta(days=30)).isoformat(),
                line_items=[line], subtotal=str(amount), tax_total="0.00", total=str(amount),
                balance_due=str(amount),
            )  # fmt: skip
            invoices.append((iid, account, amount))
        payments = []
        for i in range(rng.randint(0, 4)):
            iid, account, total = rng.choice(invoices)
            pid, offline = f"pay-{i}", rng.random() < 0.3
            amount = (total / rng.choice((1, 2))).quantize(Decimal("0.01"))
            self._event(
                "payment_created", id=pid, account_id=account, amount=str(amount),
                payment_date=(START + timedelta(days=rng.randint(0, 9))).isoformat(),
                allocations=[{"invoice_id": iid, "amount": str(amount)}], offline=offline,
                method="check" if offline else "card", processor=None if offline else "stripe",
                reference=None if offline else f"ch_{firm}_{i}", deposit=None,
            )  # fmt: skip
            payments.append((pid, account, iid, amount))
        for i, (pid, account, iid, amount) in enumerate(payments[: rng.randint(0, 2)]):
            self._event(
                "refund_created", id=f"ref-{i}", payment_id=pid, account_id=account, invoice_id=iid,
                amount=str((amount / 2).quantize(Decimal("0.01"))),
                refund_date=(START + timedelta(days=10)).isoformat(),
            )  # fmt: skip
        for iid, _, _ in invoices:
            if rng.random() < 0.15:
                deleted = platform_event("invoice_deleted", firm)
                self.n += 1
                deleted["detail"].update(event_id=f"evt-{self.n}", version=5, data={"id": iid})
                self.events.append(deleted)


def _deliveries(events: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    """Every event once or twice (a redelivery), shuffled, in SQS batches of up to 10."""
    sent = [e for e in events for _ in range(rng.choice((1, 2)))]
    rng.shuffle(sent)
    batches, i = [], 0
    while i < len(sent):
        size = rng.randint(1, 10)
        batches.append(sent[i : i + size])
        i += size
    return batches


def _records(stack: SyncStack, firm: str, realm: str) -> list[Any]:
    out = []
    for status in STATUSES:
        start = None
        while True:
            page = stack.records.list_by_status(firm, realm, status, limit=100, start_key=start)
            out += page.records
            start = page.next_key
            if not start:
                break
    return out


def _explained(stack: SyncStack, firm: str) -> set[tuple[str, str]]:
    out = set()
    for status in ("open", "skipped"):
        cursor = None
        while True:
            entries, cursor = stack.errors.list(firm, status=status, limit=50, cursor=cursor)
            out |= {(e.entity_type, e.platform_id) for e in entries}
            if not cursor:
                break
    return out


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,  # the same firms on every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    sync_accounts=st.sampled_from(("all", "with_activity")),
    start_date=st.sampled_from((None, START + timedelta(days=4))),
    offline=st.booleans(),
)
def test_after_the_queues_drain_no_record_is_in_limbo(
    stack: SyncStack, seed: int, sync_accounts: str, start_date: date | None, offline: bool
) -> None:
    rng = random.Random(seed)
    firm = new_firm()
    stack.connect(firm)
    connection = stack.connections().get(firm)
    assert connection is not None
    realm = connection.realm_id
    stack.set_settings(
        firm, sync_accounts=sync_accounts, sync_start_date=start_date, sync_offline_payments=offline
    )
    sample = _Firm(firm, rng)
    sample.build()

    for batch in _deliveries(sample.events, rng):
        assert stack.deliver(*batch) == {"batchItemFailures": []}
    stack.deliver_until_drained()  # what the service re-enqueued; a release loop fails here

    records = _records(stack, firm, realm)
    assert records, "nothing was recorded"
    limbo = records_in_limbo(records, explained=_explained(stack, firm), lookup=stack.records.get)

    assert limbo == [], "\n".join(f"{x.key.ref} {x.status}: {x.why}" for x in limbo)
    # and nothing reached QuickBooks twice: at most one object per record marker
    for entity in ("Customer", "Item", "Invoice", "Payment", "RefundReceipt"):
        field = {"Customer": "Notes", "Item": "Description"}.get(entity, "PrivateNote")
        marks = Counter(
            parse_marker(str(row.get(field) or "")) for row in stack.sim.control.entities(realm, entity)
        )
        assert not [m for m, n in marks.items() if m is not None and n > 1], entity
