"""Benchmark: a firm's history through the initial sync (issue 13 item 6) against a one-call-at-a-time
python-quickbooks script, on the same firm data and the same simulator limits, in the same run.

    .venv/bin/python -m bench.bench_initial_sync [--records 10000] [--timeout 3600] [--no-write]

qbsync side: ``local.demo.demo_environment`` (the simulator with Intuit's limits ON - 500 requests/min
per realm, 10/s, 10 in flight, 40 batch/min per realm+app, 120 batch/min per realm; time scale 1 - moto,
the real handlers in local Lambda workers, the ``InitialSync`` state machine on moto's Step Functions).
The platform is played from outside as in tests/e2e/test_initial_sync.py: subscribe to the firm's
"Snapshot Requested" / "Initial Sync Planned" / "Initial Sync Progress", connect the firm through the
OAuth endpoints, export + announce the snapshot (``local.platform_snapshot``), approve through
``POST /initial-sync/{run_id}/approve``, wait for Progress ``completed``.

Baseline: a fresh simulator company (same limits) and a plain python-quickbooks 0.9.12 script creating
the same records one ``POST`` at a time (customers, items, invoices, payments, purchases), sleeping 1 s and
retrying on a 429 (what such a script needs), skipping a record QuickBooks refuses with a 400.

The firm: ``local.sample_firm.generate`` scaled (``n_invoices`` ~ records / 2.6, up to 500 accounts),
the same deterministic mix of services, client accounts, invoices, payments, fees and deliberate errors.
Writes a section of docs/benchmarks.md. No figure here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.exceptions import QuickbooksException

from bench.bench_qbo_sim import machine
from local.demo import FIRM_ID, Demo, demo_environment
from local.platform_snapshot import announce_snapshot, export_snapshot
from local.qbo_sim.client import SimControl
from local.sample_firm import SampleFirm, generate
from local.stack.provision import clients
from tests.fixtures.events import EventCapture, subscribe

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_initial_sync:start -->", "<!-- bench_initial_sync:end -->"
#: runs kept in the table of docs/benchmarks.md
_KEEP_ROWS = 12
#: the realm's write ceiling through batch: 40 batch calls/min per realm+app x 30 items
WRITE_CEILING_PER_MINUTE = 40 * 30
#: QuickBooks entity of each platform record type the baseline writes, in dependency order
ENTITIES = {
    "Service": "Item",
    "ClientAccount": "Customer",
    "Invoice": "Invoice",
    "Payment": "Payment",
    "ProcessingFee": "Purchase",
}
BASELINE_APP = "bench-python-quickbooks"


def firm_of(records: int) -> SampleFirm:
    """The sample firm sized to about ``records`` platform records (deterministic)."""

    def sized(n_invoices: int) -> SampleFirm:
        n_accounts = max(5, min(500, n_invoices // 8, n_invoices - 2))
        return generate(FIRM_ID, n_accounts=n_accounts, n_invoices=n_invoices)

    # the mix is ~1.9 records per invoice (payments, fees, refunds, accounts, services): guess, then correct
    n_invoices = max(12, round(records / 1.9))
    n_invoices = max(12, round(n_invoices * records / record_count(sized(n_invoices))))
    return sized(n_invoices)


def record_count(sample: SampleFirm) -> int:
    return sum(len(v) for v in sample.records.values())


# --- qbsync -------------------------------------------------------------------------------------------


class PlatformInbox:
    """The platform consuming qbsync's events as they arrive (its subscription: the demo's inbox queue),
    tallied by detail type. Context manager: a thread long-polls and deletes until the block ends.

    A real platform reads its queue continuously; left unread, the queue grows by one message per status
    event, and moto's SendMessage reads every message of the queue it sends to (``Queue.attributes``), so
    each delivery would cost O(queue length) and the local stack, not QuickBooks, would bound the run.
    """

    def __init__(self, demo: Demo) -> None:
        self._sqs = clients(demo.stack.endpoint_url, demo.stack.region)["sqs"]
        self._url = demo.events_queue_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="platform-inbox", daemon=True)
        self.by_type: Counter[str] = Counter()
        #: the machine's 1-minute load average, read on each poll (about once a second) while the run lasts
        self.load: list[float] = []

    def __enter__(self) -> PlatformInbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _drain(self) -> None:
        while not self._stop.is_set():
            self.load.append(os.getloadavg()[0])
            got = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = got.get("Messages", [])
            for message in messages:
                self.by_type[str(json.loads(message["Body"]).get("detail-type"))] += 1
            if messages:
                self._sqs.delete_message_batch(
                    QueueUrl=self._url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
                    ],
                )


class Waiter:
    """The platform's subscription; keeps each event with the time it was received."""

    def __init__(self, capture: EventCapture) -> None:
        self.capture = capture
        self.seen: list[tuple[float, dict[str, Any]]] = []

    def wait_for(self, detail_type: str, deadline: float, **match: Any) -> dict[str, Any]:
        while True:
            for _, envelope in self.seen:
                detail = envelope["detail"]
                if envelope["detail-type"] == detail_type and all(
                    detail.get(k) == v for k, v in match.items()
                ):
                    return dict(detail)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {detail_type} {match}")
            got = self.capture.receive(wait_seconds=max(1, min(5, int(remaining))))
            now = time.monotonic()
            self.seen.extend((now, e) for e in got)


def run_qbsync(demo: Demo, sample: SampleFirm, timeout: float) -> dict[str, Any]:
    """Connect, answer the snapshot, approve, wait for completed; times of each step and phase."""
    resources = demo.stack.resources
    assert resources is not None
    waiter = Waiter(
        subscribe(
            resources,
            "Snapshot Requested",
            "Initial Sync Planned",
            "Initial Sync Progress",
            detail={"firm_id": [FIRM_ID]},
            name="bench-initsync",
        )
    )
    try:
        t0 = time.monotonic()
        deadline = t0 + timeout
        demo.sim.set_consent(demo.realm_b)
        outcome = demo.browser_consent()
        if outcome.get("change") != "connected":
            raise RuntimeError(f"could not connect the firm: {outcome}")
        request = waiter.wait_for("Snapshot Requested", deadline)
        run_id = request["run_id"]
        t_requested = time.monotonic()
        c = clients(demo.stack.endpoint_url, demo.stack.region)
        snapshot_id = f"snap-bench-{int(time.time())}"
        manifest = export_snapshot(
            c["s3"], request["bucket"], FIRM_ID, run_id, sample.events, snapshot_id=snapshot_id
        )
        announce_snapshot(c["events"], resources.ref("EventBus"), FIRM_ID, run_id, manifest, snapshot_id)
        t_exported = time.monotonic()
        planned = waiter.wait_for("Initial Sync Planned", deadline, run_id=run_id)
        t_planned = time.monotonic()
        approved = demo.api("POST", f"/initial-sync/{run_id}/approve")
        if approved.status_code != 200:
            raise RuntimeError(f"approve answered {approved.status_code}: {approved.text[:300]}")
        t_approved = time.monotonic()
        waiter.wait_for("Initial Sync Progress", deadline, run_id=run_id, status="completed")
        t_done = time.monotonic()
        view = demo.api("GET", "/initial-sync").json()
    finally:
        waiter.capture.close()
    phases: dict[str, list[float]] = {}
    for at, envelope in waiter.seen:
        if envelope["detail-type"] != "Initial Sync Progress":
            continue
        for phase in envelope["detail"].get("phases") or []:
            if phase.get("status") == "completed":
                phases.setdefault(phase["phase"], [at])
    order = sorted(phases.items(), key=lambda kv: kv[1][0])
    previous, phase_seconds = t_approved, {}
    for name, (at,) in order:
        phase_seconds[name] = max(at - previous, 0.0)
        previous = at
    return {
        "connect_to_request": t_requested - t0,
        "export": t_exported - t_requested,
        "plan": t_planned - t_exported,
        "execute": t_done - t_approved,
        "total": t_done - t0,
        "phases": phase_seconds,
        "view": view,
        "planned_totals": planned.get("totals", []),
    }


# --- baseline -----------------------------------------------------------------------------------------


class Baseline:
    """A plain python-quickbooks script: one create call per record, sleep-and-retry on 429."""

    def __init__(self, qb: QuickBooks) -> None:
        self.qb = qb
        self.ids: dict[tuple[str, str], str] = {}
        self.retries = 0
        self.refused = 0
        accounts = qb.query("select * from Account MAXRESULTS 1000")["QueryResponse"]["Account"]
        self.income = next(a["Id"] for a in accounts if a["AccountType"] == "Income")
        self.bank = next(a["Id"] for a in accounts if a["AccountType"] == "Bank")
        self.expense = next(a["Id"] for a in accounts if a["AccountType"] == "Expense")

    def create(self, entity: str, body: dict[str, Any]) -> str | None:
        while True:
            try:
                result = self.qb.create_object(entity, json.dumps(body))
                return str(result[entity]["Id"])
            except QuickbooksException as err:
                if "ThrottleExceeded" in str(err.message) or "429" in str(err.message):
                    self.retries += 1
                    time.sleep(1.0)
                    continue
                self.refused += 1
                return None

    def body(self, kind: str, r: dict[str, Any]) -> dict[str, Any] | None:
        ref = self.ids.get
        if kind == "Service":
            return {
                "Name": r["name"][:100],
                "Type": "Service",
                "UnitPrice": float(r["rate"]),
                "Description": r.get("description") or "",
                "IncomeAccountRef": {"value": self.income},
            }
        if kind == "ClientAccount":
            body: dict[str, Any] = {"DisplayName": r["name"]}
            if r.get("email"):
                body["PrimaryEmailAddr"] = {"Address": r["email"]}
            return body
        customer = ref(("ClientAccount", r.get("account_id", "")))
        if customer is None:
            return None
        if kind == "Invoice":
            lines = []
            for line in r["line_items"]:
                item = ref(("Service", line.get("service_id") or ""))
                detail: dict[str, Any] = {"Qty": float(line["quantity"]), "UnitPrice": float(line["rate"])}
                if item:
                    detail["ItemRef"] = {"value": item}
                lines.append(
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": float(line["amount"]),
                        "Description": line.get("description") or "",
                        "SalesItemLineDetail": detail,
                    }
                )
            return {
                "CustomerRef": {"value": customer},
                "TxnDate": r["issue_date"],
                "DocNumber": r["number"],
                "Line": lines,
            }
        if kind == "Payment":
            linked = [
                {"Amount": float(a["amount"]), "LinkedTxn": [{"TxnId": inv, "TxnType": "Invoice"}]}
                for a in r["allocations"]
                if (inv := ref(("Invoice", a["invoice_id"])))
            ]
            return {
                "CustomerRef": {"value": customer},
                "TotalAmt": float(r["amount"]),
                "TxnDate": r["payment_date"],
                "Line": linked,
            }
        return {
            "PaymentType": "Cash",
            "AccountRef": {"value": self.bank},
            "TxnDate": r["fee_date"],
            "Line": [
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": float(r["amount"]),
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": self.expense}},
                }
            ],
        }

    def run(self, sample: SampleFirm) -> int:
        written = 0
        for kind, entity in ENTITIES.items():
            for record in sample.records.get(kind, []):
                body = self.body(kind, record)
                if body is None:
                    self.refused += 1
                    continue
                qbo_id = self.create(entity, body)
                if qbo_id is not None:
                    self.ids[(kind, record["id"])] = qbo_id
                    written += 1
        return written


def run_baseline(sim: SimControl, sample: SampleFirm) -> dict[str, Any]:
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # oauthlib's switch for the HTTP simulator
    realm = sim.create_company(company_name="Baseline (python-quickbooks)")["realm_id"]
    sim.create_app(BASELINE_APP, "bench-secret", ["http://127.0.0.1/bench"])
    tokens = sim.issue_tokens(BASELINE_APP, realm)
    auth = AuthClient(
        BASELINE_APP,
        "bench-secret",
        "http://127.0.0.1/bench",
        f"{sim.base_url}/.well-known/openid_configuration",  # intuitlib reads its endpoints from it
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        realm_id=realm,
    )
    qb = QuickBooks(
        auth_client=auth, refresh_token=tokens["refresh_token"], company_id=realm, minorversion=75
    )
    qb.api_url_v3 = f"{sim.base_url}/v3"  # its hard-coded Intuit base URL, pointed at the simulator
    script = Baseline(qb)
    started = time.monotonic()
    written = script.run(sample)
    seconds = time.monotonic() - started
    return {
        "realm": realm,
        "seconds": seconds,
        "written": written,
        "retries": script.retries,
        "refused": script.refused,
    }


class Beside:
    """The baseline script on a thread, started with qbsync's run: both sides at once on the same simulator
    (separate companies and apps, so neither takes the other's QuickBooks limits; the baseline's requests
    do take CPU from the process that runs moto and the simulator, which can only slow qbsync's side)."""

    def __init__(self, sim: SimControl, sample: SampleFirm) -> None:
        self._sim, self._sample = sim, sample
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name="baseline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._out.update(run_baseline(self._sim, self._sample))
        except BaseException as err:  # reported by result(), in the main thread
            self._out["error"] = err

    def result(self) -> dict[str, Any]:
        self._thread.join()
        if "error" in self._out:
            raise RuntimeError(f"the baseline failed: {self._out['error']!r}") from self._out["error"]
        return self._out


# --- counting -----------------------------------------------------------------------------------------


def qbo_log(sim: SimControl, realm: str) -> list[dict[str, Any]]:
    return [
        r for r in sim.requests(realm_id=realm, limit=100_000) if "/v3/company/" in str(r.get("path", ""))
    ]


def created_objects(sim: SimControl, realm: str) -> int:
    return sum(len(sim.entities(realm, e)) for e in ("Item", "Customer", "Invoice", "Payment", "Purchase"))


def write_span(log: list[dict[str, Any]]) -> tuple[int, int, int, float]:
    """(POST creates, batch calls, 429s, seconds from the first to the last write request)."""
    writes = [r for r in log if r.get("method") == "POST" and "/query" not in str(r.get("path"))]
    batch = [r for r in writes if str(r.get("path", "")).endswith("/batch")]
    times = sorted(datetime.fromisoformat(str(r["time"])) for r in writes if r.get("time"))
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0
    throttled = sum(1 for r in log if r.get("status") == 429)
    return len(writes) - len(batch), len(batch), throttled, span


def task_ops(aws: Any) -> Counter[str]:
    """The initial-sync task Lambda's AWS requests by ``service.operation``."""
    ops: Counter[str] = Counter()
    for (caller, service, op), count in aws.items():
        if caller == "InitialSyncFunction":
            ops[f"{service}.{op}"] += count
    return ops


def throttle_reasons(log: list[dict[str, Any]]) -> dict[str, int]:
    """Which of the simulator's limits refused each 429 (its ``throttled`` reason)."""
    return dict(
        Counter(str(r.get("throttled") or r.get("fault") or "?") for r in log if r.get("status") == 429)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_initial_sync", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--records", type=int, default=10_000, help="firm size in platform records")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up on qbsync's run after (s)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the python-quickbooks script")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run the python-quickbooks script after qbsync (default: both at once, on separate companies)",
    )
    args = parser.parse_args(argv)
    if args.records < 30 or args.timeout <= 0:
        parser.error("--records must be at least 30 and --timeout positive")
    sample = firm_of(args.records)
    n = record_count(sample)
    print(f"firm: {n} records {dict(Counter({k: len(v) for k, v in sample.records.items()}))}", flush=True)
    with demo_environment() as demo:
        limits = demo.sim.set_limits()
        seed_b = created_objects(demo.sim, demo.realm_b)
        aws_before = demo.stack.aws_requests()
        baseline = None if args.no_baseline or args.sequential else Beside(demo.sim, sample)
        with PlatformInbox(demo) as inbox:
            if baseline is not None:
                baseline.start()
            ours = run_qbsync(demo, sample, args.timeout)
        print(f"platform inbox: {dict(inbox.by_type.most_common())}", flush=True)
        ours["load"] = (
            (min(inbox.load), sum(inbox.load) / len(inbox.load), max(inbox.load)) if inbox.load else None
        )
        aws = demo.stack.aws_requests() - aws_before
        ours_created = created_objects(demo.sim, demo.realm_b) - seed_b
        ours_log = qbo_log(demo.sim, demo.realm_b)
        print(f"qbsync: {ours['total']:.1f}s, phases {ours['phases']}", flush=True)
        base: dict[str, Any] | None
        if baseline is not None:
            base = baseline.result()
        else:
            base = None if args.no_baseline else run_baseline(demo.sim, sample)
        base_log = qbo_log(demo.sim, base["realm"]) if base else []
    creates, batches, throttled, span = write_span(ours_log)
    per_minute = 60.0 * ours_created / span if span else 0.0
    rate = n / ours["total"]
    by_caller: Counter[str] = Counter()
    for (caller, _service, _op), count in aws.items():
        by_caller[caller] += count
    lines = [
        f"records {n}; qbsync total {ours['total']:.1f}s ({rate:.2f} records/s): connect->request "
        f"{ours['connect_to_request']:.1f}s, export {ours['export']:.1f}s, plan {ours['plan']:.1f}s, "
        f"execute {ours['execute']:.1f}s",
        "phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in ours["phases"].items()),
        f"QBO: {len(ours_log)} API requests, {creates} single creates, {batches} batch calls,"
        f" {throttled} 429s {throttle_reasons(ours_log)};"
        f" {ours_created} objects created over {span:.1f}s of writes = {per_minute:.0f} writes/min ="
        f" {per_minute / WRITE_CEILING_PER_MINUTE:.0%} of {WRITE_CEILING_PER_MINUTE}/min",
        "AWS requests at moto by caller: " + ", ".join(f"{k} {v}" for k, v in by_caller.most_common(8)),
        "task Lambda's AWS requests per record by operation: "
        + ", ".join(f"{op} {v / n:.2f}" for op, v in task_ops(aws).most_common(10)),
        "busiest (caller, operation) pairs: "
        + ", ".join(f"{c}.{op} {v}" for (c, _s, op), v in aws.most_common(12)),
    ]
    ratio = None
    if base:
        b_creates, _, b_429, _ = write_span(base_log)
        ratio = base["seconds"] / ours["total"]
        lines.append(
            f"python-quickbooks: {base['seconds']:.1f}s, {base['written']} written,"
            f" {base['refused']} refused, {b_creates} POSTs, {b_429} 429s ({base['retries']} retries);"
            f" ratio baseline/qbsync {ratio:.2f}x"
        )
    print("\n".join(lines))
    print(f"simulator limits: {limits}")
    if not args.no_write:
        write_doc(args, n, ours, per_minute, base, ratio, rate, limits)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


def _load(load: tuple[float, float, float] | None) -> str:
    """The machine's 1-minute load average while qbsync's run lasted: other work on the machine takes CPU
    from the one process that runs moto and the simulator, so a figure is comparable only at a like load."""
    return "-" if load is None else " / ".join(f"{v:.1f}" for v in load)


def write_doc(
    args: argparse.Namespace,
    n: int,
    ours: dict[str, Any],
    per_minute: float,
    base: dict[str, Any] | None,
    ratio: float | None,
    rate: float,
    limits: Any,
) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    phases = ", ".join(f"{k} {v:.0f}" for k, v in ours["phases"].items())
    base_s = f"{base['seconds']:.0f}" if base else "-"
    ratio_s = f"{ratio:.2f}x" if ratio else "-"
    projection = 100_000 / rate
    row = (
        f"| {n} | {ours['connect_to_request']:.0f} / {ours['export']:.0f} / {ours['plan']:.0f} / "
        f"{ours['execute']:.0f} | {phases} | {ours['total']:.0f} | {rate:.2f} | {per_minute:.0f} "
        f"({per_minute / WRITE_CEILING_PER_MINUTE:.0%}) | {base_s} | {ratio_s} | {projection / 3600:.1f} h "
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M UTC} | {_load(ours.get('load'))} |"
    )
    # every run stays a row (the newest last, at most _KEEP_ROWS): a figure is read against the runs before
    rows: list[str] = []
    match = re.search(re.escape(START) + r"(.*?)" + re.escape(END), text, flags=re.DOTALL)
    if match:
        rows = [
            line
            for line in match.group(1).splitlines()
            if line.startswith("| ") and not line.startswith("| records")
        ]
    rows = [*rows, row][-_KEEP_ROWS:]
    command = ".venv/bin/python -m bench.bench_initial_sync" + "".join(" " + a for a in sys.argv[1:])
    section = "\n".join(
        [
            "## Initial sync of a firm's history (`make bench-initial-sync`)",
            "",
            f"- Machine: {machine()}",
            f"- Last command: `{command}`",
            f"- Simulator limits (both sides, same run; time_scale as shown): {limits}",
            "- qbsync: the firm connects, the sample platform exports and announces the snapshot, the owner"
            " approves through the API; *connect / export / plan / execute* s: connect to Snapshot Requested,"
            " writing the snapshot, snapshot announced to Initial Sync Planned, approval to Progress"
            " `completed`; *phases* s: from approval (or the previous phase) to the first Progress event"
            " showing the phase completed. *writes/min*: objects created in the company over the span from"
            f" the first to the last write request, against the batch ceiling {WRITE_CEILING_PER_MINUTE}/min"
            " (40 batch calls/min per realm+app x 30 items).",
            "- Baseline: python-quickbooks 0.9.12 on a fresh company with the same limits, one create call"
            " per record, 1 s sleep and retry on 429; *ratio* = baseline s / qbsync total s, same run;"
            + (
                " the baseline ran after qbsync (`--sequential`)."
                if args.sequential
                else " the baseline ran at the same time as qbsync, on its own company and app (its requests"
                " share the one process that runs moto and the simulator, which can only slow qbsync)."
            ),
            "- *100k projection*: 100,000 / the measured records/s (linear; the plan and snapshot read grow"
            " linearly, QuickBooks' per-realm ceiling does not change).",
            "",
            "| records | connect / export / plan / execute s | phases s | total s | records/s | writes/min "
            "(of ceiling) | python-quickbooks s | ratio | 100k projection | date "
            "| load avg (min / mean / max) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    block = f"{START}\n{section}\n{END}"
    text = (
        text[: match.start()] + block + text[match.end() :]
        if match
        else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.write_text(text)


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"bench done in {time.perf_counter() - started:.0f}s")
    sys.exit(code)
