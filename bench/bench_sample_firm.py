"""Benchmark: the issue-4 sample firm synced through the whole local stack, with Intuit's real limits.

    .venv/bin/python -m bench.bench_sample_firm [--scale 1.0] [--pollers 3] [--timeout 900] [--no-write]

Starts what ``make demo`` starts (``local.demo.demo_environment``: the simulator with its default limits -
500 requests/min/realm, 10/s, 10 in flight, 40 batch/min - and the local stack with ``--pollers``
OutboundQueue pollers), connects the firm through the real OAuth endpoints, sends the sample firm's
platform events (``local.sample_firm``: 55 accounts, 20 services, 300 invoices, payments, refunds, fees,
3 deliberate errors at scale 1) and waits until every expected record has its final status.

Prints and writes to ``docs/benchmarks.md`` (its own section): wall time from the first event sent to
the last status, QBO API requests of the company, how many the simulator answered 429, events/s, and
whether the result was right (every record once, totals to the cent, exactly the deliberate errors).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.bench_qbo_sim import machine
from local import sample_firm
from local.demo import POLLERS, demo_environment, sample_firm_for

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_sample_firm:start -->", "<!-- bench_sample_firm:end -->"
HEADER = (
    "| scale, pollers | events | result | wall s | events/s | QBO requests | 429s | requests/min "
    "| date | load avg |"
)


def write_doc(row_key: str, row: str, command: str) -> None:
    """Replace this script's section of docs/benchmarks.md, keeping rows of other setups."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    rows: dict[str, str] = {}
    match = re.search(re.escape(START) + r"(.*?)" + re.escape(END), text, flags=re.DOTALL)
    if match:
        for line in match.group(1).splitlines():
            if line.startswith("| ") and not line.startswith("| scale"):
                rows[line.split("|")[1].strip()] = line
    rows[row_key] = row
    section = "\n".join(
        [
            "## Sample firm through the local stack (`make demo`'s last step)",
            "",
            f"- Machine: {machine()}",
            f"- Last command: `{command}`",
            "- Setup: `local.demo.demo_environment` - the simulator with Intuit's limits ON (500/min/realm,"
            " 10/s, 10 in flight, 40 batch/min), moto, the real handlers in local Lambda workers, the given"
            " number of OutboundQueue pollers (batches of 10); the firm connected through the OAuth"
            " endpoints; the sample firm's events sent with PutEvents. *wall s*: first event sent to the"
            " last expected status; *QBO requests*: API calls the simulator logged for the company (OAuth"
            " calls excluded); *429s*: of those, answered 429; *requests/min* = QBO requests / wall time.",
            "- Pacing: every QBO call first takes a slot of the realm's shared budget"
            " (`qbsync.qbo.ratelimit`: 2 per 250 ms, 450/min, 20 batch/min, DynamoDB counters), so the"
            " simulator's limits are not hit; a record that finds no slot within 10 s is handed back to"
            " the queue for the limiter's retry-after (1-120 s), not the queue's 720 s visibility timeout.",
            "",
            HEADER,
            "|---|---|---|---|---|---|---|---|---|---|",
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
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_sample_firm", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scale", type=float, default=1.0, help="sample firm size (1 = 300 invoices)")
    parser.add_argument("--pollers", type=int, default=POLLERS, help=f"OutboundQueue pollers ({POLLERS})")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up waiting after (s)")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.pollers < 1 or args.timeout <= 0:
        parser.error("--scale, --pollers and --timeout must be positive")

    sample = sample_firm_for(args.scale)
    with demo_environment(pollers=args.pollers) as demo:
        demo.sim.set_consent(demo.realm_b)
        outcome = demo.browser_consent()
        if outcome.get("change") != "connected":
            print(f"could not connect the firm: {outcome}", file=sys.stderr)
            return 1
        report = sample_firm.run(demo, sample, realm_id=demo.realm_b, timeout=args.timeout)
        api = [
            r
            for r in demo.sim.requests(realm_id=demo.realm_b, limit=100_000)
            if "/v3/company/" in r.get("path", "")
        ]
    print(report.render())
    n_requests = len(api)
    n_429 = sum(1 for r in api if r.get("status") == 429)
    wall = report.seconds_total
    per_second = len(sample.events) / wall if wall else 0.0
    per_minute = 60 * n_requests / wall if wall else 0.0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = "ok" if report.ok else ("TIMED OUT" if report.timed_out else "NOT ok")
    print(
        f"{len(sample.events)} events in {wall:.1f}s ({per_second:.2f} events/s); QBO requests {n_requests} "
        f"({per_minute:.0f}/min), 429s {n_429}; result {result}; load avg {load:.2f}"
    )
    if not args.no_write:
        command = ".venv/bin/python -m bench.bench_sample_firm" + "".join(
            " " + a for a in (sys.argv[1:] if argv is None else argv)
        )
        key = f"{args.scale:g}, {args.pollers}"
        row = (
            f"| {key} | {len(sample.events)} | {result} | {wall:.1f} | {per_second:.2f} | {n_requests} "
            f"| {n_429} | {per_minute:.0f} | {datetime.now(UTC):%Y-%m-%d %H:%M UTC} | {load:.2f} |"
        )
        write_doc(key, row, command)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"bench done in {time.perf_counter() - started:.0f}s")
    sys.exit(code)
