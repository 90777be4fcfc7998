"""Fault injection on the real entity-sync handler: zero duplicates, every record synced (issue 4, C.7).

A workload built from the ``events/platform`` samples (client accounts, services, invoices — some with a
second line on the "Sales" item — and payments, some split across two invoices, some partial) goes through
``lambda_handler`` in several concurrent "workers" (threads, each with its own handler module and its own
wired :class:`SyncService`, as separate Lambda containers have), with:

* every message delivered at least twice (SQS at-least-once / redelivery), both copies in the same round
  so two workers race on the same record;
* the first round fully shuffled (invoices and payments arrive before their accounts, services and
  invoices: they block and are released onto the real ``OutboundQueue``, which the loop drains too);
* simulator faults while the first rounds run: responses dropped after the write committed (some for
  every attempt of a create, so the outcome stays unknown and the next delivery must look the object up),
  HTTP 500 / 503 and throttling (429);
* batch-item failures re-delivered by the loop, as SQS would, until nothing is left (bounded rounds; no
  sleeps in the test — the client's own short backoff is the only waiting).

Then, faults cleared: exactly one QBO object per platform record (matched by the qbsync marker), invoice
balances in QBO equal the platform's to the cent, and every record is ``synced``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import random
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from qbsync import wiring
from qbsync.models.platform_events import parse_platform_event
from qbsync.models.record_key import RecordKey
from qbsync.outbound.mapping import parse_marker

from local.stack.provision import clients
from tests.integration.entity_sync.conftest import (
    ROOT,
    LambdaContext,
    SyncStack,
    new_firm,
    platform_event,
    sqs_record,
)

logger = logging.getLogger(__name__)

SEED = 20261123
WORKERS = 3
BATCH_SIZE = 10
FAULT_ROUNDS = 3  # rounds run with faults active; the rest run clean until everything settles
MAX_ROUNDS = 40

N_ACCOUNTS = 15
N_SERVICES = 5
N_INVOICES = 30
CENT = Decimal("0.01")


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- workload ------------------------------------------------------------------------------------------


@dataclass
class Workload:
    events: list[dict[str, Any]] = field(default_factory=list)
    account_names: dict[str, str] = field(default_factory=dict)
    service_names: dict[str, str] = field(default_factory=dict)
    invoice_totals: dict[str, Decimal] = field(default_factory=dict)
    payment_amounts: dict[str, Decimal] = field(default_factory=dict)
    expected_balances: dict[str, Decimal] = field(default_factory=dict)

    def record_ids(self) -> list[tuple[str, str]]:
        return (
            [("client_account", a) for a in self.account_names]
            + [("service", s) for s in self.service_names]
            + [("invoice", i) for i in self.invoice_totals]
            + [("payment", p) for p in self.payment_amounts]
        )


def _event(sample: str, firm: str, n: int, **data: Any) -> dict[str, Any]:
    event = platform_event(sample, firm)
    event["detail"]["data"].update(copy.deepcopy(data))
    event["id"] = str(uuid.uuid4())
    event["detail"]["event_id"] = f"evt-fi-{n:04d}"
    event["detail"]["correlation_id"] = f"corr-fi-{n:04d}"
    return event


def build_workload(firm: str, rng: random.Random) -> Workload:
    w = Workload()
    n = 0
    for a in range(N_ACCOUNTS):
        n += 1
        account_id, name = f"acct-f{a:02d}", f"Fault Client {a:02d} LLC"
        w.account_names[account_id] = name
        w.events.append(
            _event(
                "client_account_created",
                firm,
                n,
                id=account_id,
                name=name,
                email=f"billing{a}@client.example",
                contact_ids=[],
            )
        )
    rates: dict[str, Decimal] = {}
    for s in range(N_SERVICES):
        n += 1
        service_id, name = f"svc-f{s}", f"Fault Service {s}"
        rates[service_id] = Decimal(rng.choice(["95.00", "120.00", "150.00", "210.50", "62.25"]))
        w.service_names[service_id] = name
        w.events.append(
            _event("service_created", firm, n, id=service_id, name=name, rate=str(rates[service_id]))
        )

    sample_line = json.loads((ROOT / "events" / "platform" / "invoice_sent.json").read_text())["detail"][
        "data"
    ]["line_items"][0]
    account_of: dict[str, str] = {}
    for i in range(N_INVOICES):
        n += 1
        invoice_id, account_id = f"inv-f{i:02d}", f"acct-f{i % N_ACCOUNTS:02d}"
        service_id = f"svc-f{rng.randrange(N_SERVICES)}"
        qty = Decimal(rng.choice(["1", "2", "3.5", "0.75", "10"]))
        line = copy.deepcopy(sample_line)
        line.update(
            id=f"ln-{i}-1",
            service_id=service_id,
            work_type_id=None,
            description=f"Work for invoice {i}",
            quantity=str(qty),
            rate=str(rates[service_id]),
            amount=str(_money(qty * rates[service_id])),
            tax_rate_id=None,
            tax_amount=None,
        )
        lines = [line]
        if i % 3 == 0:  # a line without a service: the "Sales" item
            extra = _money(Decimal(rng.randrange(1000, 50000)) / 100)
            lines.append(
                {
                    **line,
                    "id": f"ln-{i}-2",
                    "service_id": None,
                    "description": "Filing fee",
                    "quantity": "1",
                    "rate": str(extra),
                    "amount": str(extra),
                }
            )
        total = sum((Decimal(x["amount"]) for x in lines), Decimal("0"))
        w.invoice_totals[invoice_id] = total
        w.expected_balances[invoice_id] = total
        account_of[invoice_id] = account_id
        w.events.append(
            _event(
                "invoice_sent",
                firm,
                n,
                id=invoice_id,
                number=f"FI-{1000 + i}",
                account_id=account_id,
                line_items=lines,
                subtotal=str(total),
                tax_total="0.00",
                total=str(total),
                balance_due=str(total),
            )
        )

    # 20 payments: 8 split across the two invoices of one account (odd ones partial on the second),
    # 12 on one invoice (every other one partial); inv-f28 and inv-f29 stay unpaid.
    plans: list[list[tuple[str, Decimal]]] = []
    for k in range(8):
        first, second = f"inv-f{k:02d}", f"inv-f{k + N_ACCOUNTS:02d}"
        second_amount = w.invoice_totals[second]
        if k % 2:
            second_amount = _money(second_amount * Decimal("0.4"))
        plans.append([(first, w.invoice_totals[first]), (second, second_amount)])
    singles = [f"inv-f{i:02d}" for i in (*range(8, 15), *range(23, 28))]
    for j, invoice_id in enumerate(singles):
        amount = w.invoice_totals[invoice_id]
        if j % 2:
            amount = _money(amount * Decimal("0.55"))
        plans.append([(invoice_id, amount)])
    for p, plan in enumerate(plans):
        n += 1
        payment_id = f"pay-f{p:02d}"
        amount = sum((a for _, a in plan), Decimal("0"))
        w.payment_amounts[payment_id] = amount
        for invoice_id, applied in plan:
            w.expected_balances[invoice_id] -= applied
        w.events.append(
            _event(
                "payment_created",
                firm,
                n,
                id=payment_id,
                account_id=account_of[plan[0][0]],
                amount=str(amount),
                allocations=[{"invoice_id": i, "amount": str(a)} for i, a in plan],
                reference=f"ch_fi_{p:04d}",
                deposit={"payout_id": f"po_fi_{p:04d}", "deposited_on": "2026-03-07"},
            )
        )
    return w


# --- workers -------------------------------------------------------------------------------------------


class Worker:
    """One "Lambda container": its own handler module (its own BatchProcessor) and its own SyncService."""

    def __init__(self, index: int) -> None:
        name = f"es_fault_worker_{index}_{uuid.uuid4().hex[:6]}"
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "entity_sync" / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        service = wiring.build_sync_service()  # the real wiring, its own lease owner id
        module.sync_service = lambda: service
        self.module, self.name = module, name

    def run(self, records: list[dict[str, Any]]) -> list[str]:
        """Invoke the handler with one batch; returns the ids of its failed items."""
        response = self.module.lambda_handler({"Records": records}, LambdaContext())
        return [f["itemIdentifier"] for f in response["batchItemFailures"]]

    def close(self) -> None:
        sys.modules.pop(self.name, None)


def _drain_outbound(stack: SyncStack) -> list[dict[str, Any]]:
    """Messages the service put on the real OutboundQueue (released / woken records), as SQS records."""
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    url = stack.env["OUTBOUND_QUEUE_URL"]
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for message in got:
            out.append(sqs_record(message["Body"], message_id=message["MessageId"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _marked(objs: list[dict[str, Any]], field_name: str) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for obj in objs:
        marker = parse_marker(obj.get(field_name))
        if marker is not None:
            found[marker] += 1
    return found


def test_faults_redelivery_and_concurrency_end_with_every_record_synced_once(stack: SyncStack) -> None:
    logger.warning("fault-injection seed=%s", SEED)
    rng = random.Random(SEED)
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    workload = build_workload(firm, rng)
    for event in workload.events:  # the workload itself is valid: every failure below is the sync's
        parse_platform_event(event)
    realm = stack.realm_id
    started = time.monotonic()

    sim = stack.sim.control
    faults = [
        # the first invoice/payment creates commit but every attempt loses its response (outcome
        # unknown: the next delivery must look the object up), then drops and 5xx/429 at random
        {"kind": "drop_after_commit", "count": 4, "method": "POST", "path_regex": r"/invoice$"},
        {"kind": "drop_after_commit", "count": 4, "method": "POST", "path_regex": r"/payment$"},
        {"kind": "drop_after_commit", "ratio": 0.1, "method": "POST", "seed": SEED},
        {
            "kind": "drop_after_commit",
            "ratio": 0.1,
            "method": "POST",
            "response": "http_503",
            "seed": SEED + 1,
        },
        {"kind": "http_503", "ratio": 0.06, "seed": SEED + 2},
        {"kind": "http_500", "ratio": 0.05, "seed": SEED + 3},
        {"kind": "throttle", "ratio": 0.06, "seed": SEED + 4},
    ]
    for rule in faults:
        sim.inject_fault(realm_id=realm, **rule)

    # each platform event twice, with distinct SQS message ids (EventBridge/SQS at-least-once delivery)
    pending = [sqs_record(e) for e in workload.events] + [sqs_record(e) for e in workload.events]
    delivered = len(pending)
    rounds = 0
    failures = 0
    round_log: list[tuple[int, int, float]] = []  # (delivered, failed, seconds) per round
    workers = [Worker(i) for i in range(WORKERS)]
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            while True:
                if rounds == FAULT_ROUNDS:
                    sim.clear_faults()
                requeued = _drain_outbound(stack)
                delivered += len(requeued)
                pending += requeued
                if not pending:
                    break
                rounds += 1
                assert rounds <= MAX_ROUNDS, f"not settled after {MAX_ROUNDS} rounds (seed={SEED})"
                if rounds == 1 or rng.random() < 0.5:
                    rng.shuffle(pending)  # dependencies arrive out of order
                batches = [pending[i : i + BATCH_SIZE] for i in range(0, len(pending), BATCH_SIZE)]
                by_id = {r["messageId"]: r for r in pending}
                pending = []

                # worker k takes batches k, k+WORKERS, ... one after the other: a "container" handles
                # one invocation at a time (its BatchProcessor is not shared between threads)
                def run(job: tuple[Worker, list[list[dict[str, Any]]]]) -> list[str]:
                    worker, own = job
                    return [m for batch in own for m in worker.run(batch)]

                shares = [(workers[k], batches[k::WORKERS]) for k in range(WORKERS)]
                round_started = time.monotonic()
                for failed in pool.map(run, shares):
                    failures += len(failed)
                    pending += [by_id[m] for m in failed]  # SQS redelivers failed items
                round_log.append((len(by_id), len(pending), round(time.monotonic() - round_started, 1)))
    finally:
        sim.clear_faults()
        for worker in workers:
            worker.close()
    elapsed = time.monotonic() - started
    fired = Counter(r["fault"] for r in sim.requests(realm, limit=5000) if r.get("fault"))
    logger.warning(
        "fault-injection seed=%s messages=%s rounds=%s %s item_failures=%s faults=%s elapsed=%.1fs",
        SEED,
        delivered,
        rounds,
        round_log,
        failures,
        dict(fired),
        elapsed,
    )
    assert fired["drop_after_commit"] >= 8 and fired["http_503"] and fired["http_500"] and fired["throttle"]

    # every record settled as synced, no write left in flight
    records = {k: stack.records.get(RecordKey(firm, realm, *k)) for k in workload.record_ids()}
    unsettled = {
        k: (r.status, r.intent, r.error, r.skip_reason, r.waiting_on) if r else None
        for k, r in records.items()
        if r is None or r.status != "synced" or r.intent is not None
    }
    assert unsettled == {}, f"seed={SEED}"

    # exactly one QBO object per platform record (by marker and by name), and the record points at it
    customers = sim.entities(realm, "Customer")
    assert _marked(customers, "Notes") == Counter({("ClientAccount", a): 1 for a in workload.account_names})
    names = Counter(c["DisplayName"] for c in customers)
    assert {n: names[n] for n in workload.account_names.values()} == dict.fromkeys(
        workload.account_names.values(), 1
    )
    items = sim.entities(realm, "Item")
    item_names = Counter(i["Name"] for i in items)
    assert {n: item_names[n] for n in workload.service_names.values()} == dict.fromkeys(
        workload.service_names.values(), 1
    )
    item_name_of = {i["Id"]: i["Name"] for i in items}
    assert {
        s: item_name_of.get(records[("service", s)].qbo_id)  # type: ignore[union-attr, arg-type]
        for s in workload.service_names
    } == workload.service_names
    invoices = [i for i in sim.entities(realm, "Invoice") if parse_marker(i.get("PrivateNote"))]
    assert _marked(invoices, "PrivateNote") == Counter({("Invoice", i): 1 for i in workload.invoice_totals})
    payments = [p for p in sim.entities(realm, "Payment") if parse_marker(p.get("PrivateNote"))]
    assert _marked(payments, "PrivateNote") == Counter({("Payment", p): 1 for p in workload.payment_amounts})

    # totals and balances to the cent
    invoice_by_id = {parse_marker(i["PrivateNote"])[1]: i for i in invoices}  # type: ignore[index]
    assert {k: Decimal(str(v["TotalAmt"])) for k, v in invoice_by_id.items()} == workload.invoice_totals
    assert {k: Decimal(str(v["Balance"])) for k, v in invoice_by_id.items()} == workload.expected_balances
    payment_by_id = {parse_marker(p["PrivateNote"])[1]: p for p in payments}  # type: ignore[index]
    assert {k: Decimal(str(v["TotalAmt"])) for k, v in payment_by_id.items()} == workload.payment_amounts

    # each record points at its one QBO object
    qbo_ids = {("client_account", m[1]): c["Id"] for c in customers if (m := parse_marker(c.get("Notes")))}
    qbo_ids.update({("invoice", k): v["Id"] for k, v in invoice_by_id.items()})
    qbo_ids.update({("payment", k): v["Id"] for k, v in payment_by_id.items()})
    assert {k: records[k].qbo_id for k in qbo_ids} == qbo_ids  # type: ignore[union-attr]
