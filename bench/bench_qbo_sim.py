"""Benchmark: simple reads per second against the QuickBooks simulator (limits off).

    .venv/bin/python -m bench.bench_qbo_sim [--reads 6000] [--processes 2] [--threads 2]
        [--client requests|http.client] [--max-seconds 60] [--no-write]

Starts ``python -m local.qbo_sim --port 0 --no-limits`` as a subprocess (its own interpreter), creates
an app, a company and one customer through the control API, then fires ``--reads`` requests from
``--processes`` client processes of ``--threads`` threads each; every thread has its own keep-alive
connection (a ``requests.Session`` by default). Reads alternate
``GET /v3/company/{realm}/customer/{id}`` and the small query ``SELECT * FROM Customer WHERE Id = '{id}'``.
Loopback only; bounded by count and by time (``--max-seconds``).

Prints reads/s, latency percentiles and the simulator's own CPU time per read (from /proc), and
updates the simulator section of ``docs/benchmarks.md`` (one table row per client setup).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from local.qbo_sim.client import SimControl

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_qbo_sim:start -->", "<!-- bench_qbo_sim:end -->"
TARGET_READS_PER_SECOND = 1000
CLIENTS = ("requests", "http.client")
HEADER = (
    "| client setup | reads | errors | seconds | reads/s | p50 ms | p95 ms | p99 ms "
    "| simulator CPU/read | client CPU/read | date | load avg |"
)


@dataclass
class Result:
    reads: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    client_cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.reads / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    """Start the simulator subprocess on a free port; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.qbo_sim", "--host", "127.0.0.1", "--port", "0", "--no-limits"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        proc.wait()
        raise RuntimeError("the simulator did not print its URL")
    control = SimControl(url)
    deadline = time.monotonic() + 15
    while True:
        try:
            control.health()
            return proc, url
        except requests.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                raise RuntimeError("the simulator did not become healthy") from None
            time.sleep(0.05)


def stop_simulator(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def prepare(url: str) -> tuple[str, str, str]:
    """Create an app, a company, tokens and one customer; returns (realm, access token, customer id)."""
    control = SimControl(url)
    control.create_app("bench-app", "bench-secret", ["http://127.0.0.1/callback"])
    realm = control.create_company(company_name="Bench Co")["realm_id"]
    token = control.issue_tokens("bench-app", realm)["access_token"]
    response = requests.post(
        f"{url}/v3/company/{realm}/customer",
        params={"minorversion": "75"},
        json={"DisplayName": "Bench Customer"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=10,
    )
    response.raise_for_status()
    return realm, token, response.json()["Customer"]["Id"]


class _HttpClientSession:
    """The same keep-alive GET with the standard library (to see the simulator without requests' cost)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        self.prefix = f"{parts.scheme}://{parts.netloc}"
        self.headers = headers

    def get(self, url: str) -> tuple[int, bytes]:
        self.conn.request("GET", url[len(self.prefix) :], headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


class _RequestsSession:
    def __init__(self, headers: dict[str, str]) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: skip per-request proxy/netrc lookups from the environment
        self.session.headers.update(headers)

    def get(self, url: str) -> tuple[int, bytes]:
        response = self.session.get(url, timeout=10)
        return response.status_code, response.content

    def close(self) -> None:
        self.session.close()


def _client_process(
    url: str,
    realm: str,
    token: str,
    customer_id: str,
    reads: int,
    threads: int,
    max_seconds: float,
    client: str,
    barrier: Any,
) -> tuple[list[float], int, float, float, float]:
    """One client process of ``threads`` threads, each with its own keep-alive session.

    Returns (latencies in ms, errors, start, end, CPU seconds used); start/end are CLOCK_MONOTONIC,
    which all processes share."""
    base = f"{url}/v3/company/{realm}"
    read_url = f"{base}/customer/{customer_id}?minorversion=75"
    query_url = f"{base}/query?" + urlencode(
        {"query": f"SELECT * FROM Customer WHERE Id = '{customer_id}'", "minorversion": "75"}
    )
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    sessions: list[_RequestsSession | _HttpClientSession] = [
        _RequestsSession(headers) if client == "requests" else _HttpClientSession(url, headers)
        for _ in range(threads)
    ]
    counter = iter(range(reads))
    counter_lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    barrier.wait()
    deadline = time.monotonic() + max_seconds

    def worker(slot: int) -> None:
        session, own = sessions[slot], latencies[slot]
        while time.monotonic() < deadline:
            with counter_lock:
                n = next(counter, None)
            if n is None:
                break
            began = time.perf_counter()
            status, body = session.get(query_url if n % 2 else read_url)
            elapsed = (time.perf_counter() - began) * 1000
            if status == 200 and body:
                own.append(elapsed)
            else:
                errors[slot] += 1
        session.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    cpu_started = time.process_time()
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ended = time.monotonic()
    cpu = time.process_time() - cpu_started
    return [x for lst in latencies for x in lst], sum(errors), started, ended, cpu


def run(
    url: str,
    realm: str,
    token: str,
    customer_id: str,
    *,
    reads: int,
    processes: int,
    threads: int,
    max_seconds: float,
    client: str,
) -> Result:
    """Spread ``reads`` over ``processes`` client processes of ``threads`` threads each."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        shares = [reads // processes + (1 if i < reads % processes else 0) for i in range(processes)]
        with ctx.Pool(processes) as pool:
            parts = pool.starmap(
                _client_process,
                [
                    (url, realm, token, customer_id, share, threads, max_seconds, client, barrier)
                    for share in shares
                ],
            )
    latencies = [x for part in parts for x in part[0]]
    seconds = max(p[3] for p in parts) - min(p[2] for p in parts)
    return Result(len(latencies), sum(p[1] for p in parts), seconds, latencies, sum(p[4] for p in parts))


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} CPUs, {system}, Python {platform.python_version()}"


def write_doc(row_key: str, row: str, command: str) -> None:
    """Replace this script's section of docs/benchmarks.md, keeping rows of other client setups."""
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nFigures measured on this machine by the scripts in `bench/`.\n"
    )
    rows: dict[str, str] = {}
    match = re.search(re.escape(START) + r"(.*?)" + re.escape(END), text, flags=re.DOTALL)
    if match:
        for line in match.group(1).splitlines():
            if line.startswith("| ") and not line.startswith("| client setup"):
                rows[line.split("|")[1].strip()] = line
    rows[row_key] = row
    section = "\n".join(
        [
            "## QuickBooks simulator: simple reads",
            "",
            f"- Machine: {machine()}",
            f"- Last command: `{command}` (`make bench` runs the default setup)",
            "- Setup: the simulator as a subprocess (`python -m local.qbo_sim --port 0 --no-limits`: uvicorn,"
            " one process, one event loop) on loopback HTTP/1.1 keep-alive; every client thread has its own"
            " connection; reads alternate `GET /v3/company/{realm}/customer/{id}` and"
            " `GET .../query?query=SELECT * FROM Customer WHERE Id = '{id}'`. Clients and simulator share"
            " the machine's CPUs, so reads/s is a floor for the simulator; *simulator CPU/read* is its own"
            " cost (1 / that = what one core of the simulator can serve); *client CPU/read* is the load"
            " generator's.",
            "",
            HEADER,
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows.values(),
            "",
            f"Target: at least {TARGET_READS_PER_SECOND} simple reads/s.",
        ]
    )
    block = f"{START}\n{section}\n{END}"
    if match:
        text = text[: match.start()] + block + text[match.end() :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_qbo_sim", description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=6000, help="number of measured reads (default 6000)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="client threads per process (default 2)")
    parser.add_argument(
        "--client", choices=CLIENTS, default="requests", help="HTTP client (default requests)"
    )
    parser.add_argument("--max-seconds", type=float, default=60, help="stop after this long (default 60)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured reads first (default 200)")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if min(args.reads, args.processes, args.threads) < 1 or args.max_seconds <= 0 or args.warmup < 0:
        parser.error("--reads, --processes, --threads and --max-seconds must be positive, --warmup >= 0")
    options = {"processes": args.processes, "threads": args.threads, "client": args.client}

    proc, url = start_simulator()
    try:
        realm, token, customer_id = prepare(url)
        if args.warmup:
            run(url, realm, token, customer_id, reads=args.warmup, max_seconds=args.max_seconds, **options)
        cpu_before = cpu_seconds(proc.pid)
        result = run(
            url, realm, token, customer_id, reads=args.reads, max_seconds=args.max_seconds, **options
        )
        cpu_after = cpu_seconds(proc.pid)
    finally:
        stop_simulator(proc)

    server_ms = (
        1000 * (cpu_after - cpu_before) / result.reads
        if result.reads and cpu_before is not None and cpu_after is not None
        else None
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    verdict = "meets" if result.per_second >= TARGET_READS_PER_SECOND else "is BELOW"
    p50, p95, p99 = result.percentile(50), result.percentile(95), result.percentile(99)
    mean = statistics.fmean(result.latencies_ms) if result.latencies_ms else 0.0
    processes = f"{args.processes} process" + ("es" if args.processes > 1 else "")
    threads = f"{args.threads} thread" + ("s" if args.threads > 1 else "")
    setup = f"{args.client}, {processes} x {threads}"
    server_text = f"{server_ms:.3f} ms" if server_ms is not None else "n/a"
    print(f"reads: {result.reads} ok, {result.errors} errors in {result.seconds:.2f} s ({setup})")
    print(f"throughput: {result.per_second:.0f} reads/s ({verdict} the {TARGET_READS_PER_SECOND}/s target)")
    print(f"latency ms: p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f}  mean {mean:.2f}")
    if server_ms:
        print(f"simulator CPU per read: {server_text} (one core serves ~{1000 / server_ms:.0f} reads/s)")
    client_ms = 1000 * result.client_cpu_seconds / result.reads if result.reads else 0.0
    print(f"client CPU per read: {client_ms:.3f} ms ({args.client})")
    print(f"load average (1 min) at the end: {load:.2f}")

    if not args.no_write:
        command = ".venv/bin/python -m bench.bench_qbo_sim" + "".join(
            " " + a for a in (sys.argv[1:] if argv is None else argv)
        )
        row = (
            f"| {setup} | {result.reads} | {result.errors} | {result.seconds:.2f} | {result.per_second:.0f} "
            f"| {p50:.2f} | {p95:.2f} | {p99:.2f} | {server_text} | {client_ms:.3f} ms "
            f"| {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} | {load:.2f} |"
        )
        write_doc(setup, row, command)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
