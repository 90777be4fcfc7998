"""Benchmark: what one synced record costs - AWS requests, QuickBooks requests and worker CPU.

    .venv/bin/python -m bench.bench_costs [--scale 0.2] [--label now] [--timeout 900] [--no-write]

Runs the demo's sample firm (``local.sample_firm`` at ``--scale``; 0.2 = 140 records) through the whole
local stack (``local.demo.demo_environment``: the simulator with Intuit's limits on, moto, the real handlers
in local Lambda workers) after connecting the firm, and counts:

- **AWS requests** where they reach moto (``local.stack.moto.RequestCounter``), by the function that sent
  them (botocore's ``app/<LogicalId>`` User-Agent), service and operation. Counted: the functions that
  carry the sync (EntitySyncFunction, RetryFanoutFunction, TokenKeepAliveFunction). Left out: the local
  stack's own requests (its SQS pollers stand in for Lambda's event-source mappings, whose polling AWS
  does not bill per request; the EventBridge router; the bench reading its results) and the admin API
  reads the report makes at the end.
- **QuickBooks requests**: the simulator's request log for the company (OAuth calls excluded).
- **Worker CPU**: the CPU time the workers of each function spent inside invocations
  (``time.process_time`` around each, reported by ``local.stack._worker``): waits on the network, the
  limiter and the queue are excluded; the cold start's imports are not in it (``bench_cold_start``).

Per record = over the records the run ends with ``synced`` (the steady path's unit of work). Prints a
table and writes its own section of ``docs/benchmarks.md`` (rows kept by ``--label``, so the figures
before and after a change stay side by side).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from bench.bench_qbo_sim import machine
from local import sample_firm
from local.demo import demo_environment, sample_firm_for

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_costs:start -->", "<!-- bench_costs:end -->"
#: the functions whose requests are the sync's cost (see the module docstring for what is left out)
SYNC_FUNCTIONS = ("EntitySyncFunction", "RetryFanoutFunction", "TokenKeepAliveFunction")
GOALS = {"aws": 5.0, "qbo": 1.05, "cpu_ms": 2.0}
HEADER = (
    "| label | scale | synced | AWS req/record | QBO req/record | CPU ms/record | records/s "
    "| QBO req/min (of the limiter's budget) | by operation (per record) | result | date |"
)
#: the realm's request budget the limiter paces to (qbsync.qbo.ratelimit.RateLimits.per_minute)
QBO_BUDGET_PER_MINUTE = 450
#: item 3's goal: QuickBooks' budget used while there is backlog
BUDGET_GOAL = 0.90


def _per_record(counts: Counter[tuple[str, str, str]], records: int) -> list[tuple[str, float]]:
    by_op: Counter[str] = Counter()
    for (caller, service, operation), n in counts.items():
        if caller in SYNC_FUNCTIONS:
            by_op[f"{service} {operation}"] += n
    return [(op, n / records) for op, n in by_op.most_common()]


def write_doc(label: str, row: str, command: str) -> None:
    """Replace this script's section of docs/benchmarks.md, keeping the rows of other labels."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    rows: dict[str, str] = {}
    match = re.search(re.escape(START) + r"(.*?)" + re.escape(END), text, flags=re.DOTALL)
    if match:
        for line in match.group(1).splitlines():
            if line.startswith("| ") and not line.startswith("| label"):
                rows[line.split("|")[1].strip()] = line
    rows[label] = row
    section = "\n".join(
        [
            "## Cost per synced record (`make bench-costs`)",
            "",
            f"- Machine: {machine()}",
            f"- Last command: `{command}`",
            "- What is counted (bench/bench_costs.py): AWS requests the sync's functions"
            f" ({', '.join(SYNC_FUNCTIONS)}) sent to moto, by service and operation; the local stack's own"
            " polling (its stand-in for Lambda's SQS event-source mappings), the EventBridge router and"
            " the report's admin-API reads are left out. QuickBooks requests: the simulator's log for the"
            " company, OAuth excluded. CPU: the workers' process time inside invocations (waits and cold"
            " starts excluded). Per record = per record that ends `synced`.",
            f"- Goals (issue #12): at most {GOALS['aws']:g} AWS requests, {GOALS['qbo']:g} QuickBooks"
            f" requests and {GOALS['cpu_ms']:g} ms of CPU per record; while there is backlog, QuickBooks"
            f" requests per minute at least {BUDGET_GOAL:.0%} of the limiter's {QBO_BUDGET_PER_MINUTE}/min."
            " *records/s*: synced records over the run's wall time (sending included); *QBO req/min*: the"
            " company's API requests over the minutes from the first to the last of them.",
            "",
            HEADER,
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows.values(),
        ]
    )
    block = f"{START}\n{section}\n{END}"
    if match:
        text = text[: match.start()] + block + text[match.end() :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_costs", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.2, help="sample firm size (1 = 300 invoices)")
    parser.add_argument("--label", default="now", help="row label in docs/benchmarks.md (default: now)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up waiting after (s)")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.timeout <= 0:
        parser.error("--scale and --timeout must be positive")
    if not re.fullmatch(r"[A-Za-z0-9 _.:-]{1,40}", args.label):
        parser.error("--label: letters, digits, space, _ . : - (at most 40)")

    sample = sample_firm_for(args.scale)
    with demo_environment() as demo:
        demo.sim.set_consent(demo.realm_b)
        outcome = demo.browser_consent()
        if outcome.get("change") != "connected":
            print(f"could not connect the firm: {outcome}", file=sys.stderr)
            return 1
        runtime = demo.stack.runtime
        assert runtime is not None
        qbo_seen = len(_qbo_api(demo))
        aws_before = demo.stack.aws_requests()
        cpu_before = runtime.cpu_usage()
        report = sample_firm.run(demo, sample, realm_id=demo.realm_b, timeout=args.timeout)
        # the report's own admin-API reads are counted under AdminApiFunction, which is left out
        aws = demo.stack.aws_requests() - aws_before
        cpu_after = runtime.cpu_usage()
        qbo_requests = _qbo_api(demo)[qbo_seen:]
        qbo = len(qbo_requests)
    print(report.render())
    synced = sum(1 for status in report.final_status.values() if status == "synced")
    if synced == 0:
        print("no record synced: nothing to divide by", file=sys.stderr)
        return 1
    sync_aws = sum(n for (caller, _, _), n in aws.items() if caller in SYNC_FUNCTIONS)
    ran = [f for f in SYNC_FUNCTIONS if f in cpu_after]
    cpu_ms = sum(cpu_after[f][1] - cpu_before.get(f, (0, 0.0))[1] for f in ran)
    invocations = {f: cpu_after[f][0] - cpu_before.get(f, (0, 0.0))[0] for f in ran}
    per_op = _per_record(aws, synced)
    figures = {"aws": sync_aws / synced, "qbo": qbo / synced, "cpu_ms": cpu_ms / synced}
    result = "ok" if report.ok else ("TIMED OUT" if report.timed_out else "NOT ok")

    print(f"\n{synced} records synced; invocations {invocations}")
    print(f"AWS requests per record {figures['aws']:.2f} (goal <= {GOALS['aws']:g}):")
    for op, n in per_op:
        print(f"  {n:6.2f}  {op}")
    others = Counter({k: n for k, n in aws.items() if k[0] not in SYNC_FUNCTIONS})
    print(f"  (left out: {sum(others.values())} requests of {sorted({k[0] for k in others})})")
    print(f"QuickBooks requests per record {figures['qbo']:.3f} (goal <= {GOALS['qbo']:g}):")
    for kind, n in Counter(_qbo_kind(r) for r in qbo_requests).most_common():
        print(f"  {n:5d}  {kind}")
    print(f"worker CPU per record {figures['cpu_ms']:.2f} ms (goal <= {GOALS['cpu_ms']:g})")
    rate, per_minute = synced / report.seconds_total, _per_minute(qbo_requests)
    print(
        f"throughput {rate:.2f} records/s; QuickBooks {per_minute:.0f} requests/min ="
        f" {per_minute / QBO_BUDGET_PER_MINUTE:.0%} of the limiter's {QBO_BUDGET_PER_MINUTE}/min"
        f" (goal >= {BUDGET_GOAL:.0%})"
    )
    print(f"result {result}")
    if not args.no_write:
        command = ".venv/bin/python -m bench.bench_costs" + "".join(
            " " + a for a in (sys.argv[1:] if argv is None else argv)
        )
        ops = ", ".join(f"{op} {n:.2f}" for op, n in per_op if n >= 0.05)
        row = (
            f"| {args.label} | {args.scale:g} | {synced} | {figures['aws']:.2f} | {figures['qbo']:.3f} "
            f"| {figures['cpu_ms']:.2f} | {rate:.2f} "
            f"| {per_minute:.0f} ({per_minute / QBO_BUDGET_PER_MINUTE:.0%}) "
            f"| {ops} | {result} | {datetime.now(UTC):%Y-%m-%d %H:%M UTC} |"
        )
        write_doc(args.label, row, command)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0 if report.ok else 1


def _per_minute(requests: list[dict[str, object]]) -> float:
    """QuickBooks requests per minute between the first and the last of ``requests`` (wall clock)."""
    times = sorted(datetime.fromisoformat(str(r["time"])) for r in requests if r.get("time"))
    if len(times) < 2:
        return 0.0
    span = (times[-1] - times[0]).total_seconds()
    return 60.0 * (len(times) - 1) / span if span > 0 else 0.0


def _qbo_kind(request: dict[str, object]) -> str:
    """``GET query Customer``, ``POST invoice``, ``GET preferences``...: what a QBO request was for."""
    path = str(request.get("path", ""))
    rest = path.split("/v3/company/", 1)[-1].split("/", 1)[-1] if "/v3/company/" in path else path
    head = rest.split("/", 1)[0].split("?", 1)[0]
    if head == "query":
        statement = " ".join(parse_qs(str(request.get("query") or "")).get("query", [""]))
        words = statement.split()
        entity = next((words[i + 1] for i, w in enumerate(words[:-1]) if w.lower() == "from"), "")
        return f"{request.get('method')} query {entity}".strip()
    return f"{request.get('method')} {head}"


def _qbo_api(demo: sample_firm._DemoLike) -> list[dict[str, object]]:
    return [
        r
        for r in demo.sim.requests(realm_id=demo.realm_b, limit=100_000)
        if "/v3/company/" in str(r.get("path", ""))
    ]


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"bench done in {time.perf_counter() - started:.0f}s")
    sys.exit(code)
