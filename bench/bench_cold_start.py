"""Benchmark: the import time of each Lambda handler on a cold start, against boto3 + Powertools alone.

    .venv/bin/python -m bench.bench_cold_start [--runs 7] [--no-write]

Lambda's code directories are read-only, so a cold start imports the layer from whatever bytecode the
artefact ships and can write none. This bench reproduces that with Python 3.13 (Lambda's python3.13
runtime; found under pyenv or on PATH): the layer's packages installed for this machine exactly as
``sam build`` installs them for Lambda (layers/core/requirements.txt, the same pins, ``--no-compile``;
the arm64 artefacts themselves cannot be imported on an x86 machine), qbsync copied beside them, boto3 in
a separate "runtime" folder with its bytecode (Lambda's runtime ships compiled), and then two layer
variants:

* ``source`` - no bytecode in the layer (what the build shipped before issue 12);
* ``bytecode`` - the layer compiled as ``sam build`` now compiles it (layers/core/Makefile:
  ``compileall --invalidation-mode unchecked-hash`` with Python 3.13).

Each handler (``functions/<name>/app.py``) is imported ``--runs`` times, each in a fresh process with
``PYTHONDONTWRITEBYTECODE=1`` (no cache survives a run), and so is the baseline - ``import boto3`` plus
Powertools' Logger, Tracer and Metrics - in the same layout. The figure is the median wall time of the
import, and its ratio to the baseline's median measured in the same run.

Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.bench_qbo_sim import machine

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
WORK = ROOT / ".bench" / "cold_start"
START, END = "<!-- bench_cold_start:start -->", "<!-- bench_cold_start:end -->"
HANDLERS = (
    "authorizer",
    "admin_api",
    "oauth",
    "entity_sync",
    "retry_fanout",
    "token_keepalive",
    "webhook_intake",
    "inbound_worker",
    "cdc_catchup",
)
BASELINE = "import boto3\nfrom aws_lambda_powertools import Logger, Metrics, Tracer\n"
#: what the handlers read at import time in Lambda (the template's Globals; no AWS call is made)
ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "qbsync",
    "POWERTOOLS_METRICS_NAMESPACE": "qbsync",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "PYTHONDONTWRITEBYTECODE": "1",
}
_TIMER = (
    "import sys, time\n"
    "sys.path[:0] = {paths!r}\n"
    "t0 = time.perf_counter()\n"
    "{body}"
    "print(time.perf_counter() - t0)\n"
)


def python313() -> str:
    """A Python 3.13 interpreter (Lambda's runtime version): pyenv's, else ``python3.13`` on PATH."""
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")))
    candidate = found[-1] if found else shutil.which("python3.13")
    if not candidate:
        raise SystemExit("bench_cold_start needs Python 3.13 (pyenv or PATH): Lambda's python3.13 runtime")
    return candidate


def _pin(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.strip()
    raise SystemExit(f"constraints.txt pins no {name}")


def _copy_qbsync(layer: Path) -> None:
    """The layer's own package, as the layer Makefile copies it (no bytecode of this machine)."""
    shutil.copytree(
        ROOT / "layers" / "core" / "qbsync", layer / "qbsync", ignore=shutil.ignore_patterns("__pycache__")
    )


def prepare(py: str) -> dict[str, Path]:
    """The runtime folder (boto3, compiled) and the two layer variants, built once and reused."""
    runtime, source, compiled = WORK / "runtime", WORK / "source" / "python", WORK / "bytecode" / "python"
    stamp = WORK / ".stamp"
    wanted = (ROOT / "layers" / "core" / "requirements.txt").read_text() + _pin("boto3") + _pin("botocore")
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(WORK, ignore_errors=True)
        pip = [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        subprocess.run([*pip, "--target", str(runtime), _pin("boto3"), _pin("botocore")], check=True)
        subprocess.run([py, "-m", "compileall", "-q", "-j", "0", str(runtime)], check=True)
        subprocess.run(
            [*pip, "--only-binary=:all:", "--target", str(source), "-r",
             str(ROOT / "layers" / "core" / "requirements.txt"), "-c", str(ROOT / "constraints.txt")],
            check=True,
        )  # fmt: skip
        for name in ("boto3", "botocore", "s3transfer", "bin"):  # as the layer Makefile: the runtime's
            for path in source.glob(f"{name}*"):
                shutil.rmtree(path, ignore_errors=True)
        _copy_qbsync(source)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(wanted)
    else:  # the layer's own code may have changed since: copy it again
        shutil.rmtree(source / "qbsync")
        _copy_qbsync(source)
    # the functions' folders are staged again too: a copy left from an earlier run is the code of then
    shutil.rmtree(WORK / "functions", ignore_errors=True)
    shutil.rmtree(compiled.parent, ignore_errors=True)
    shutil.copytree(source, compiled)
    subprocess.run(
        [py, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(compiled)],
        check=True,
    )
    return {"runtime": runtime, "source": source, "bytecode": compiled}


def timed_import(py: str, paths: list[str], body: str, cwd: Path) -> float:
    """Seconds one fresh process spends on ``body`` (an import), bytecode writing off."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}, **ENV}
    code = _TIMER.format(paths=paths, body=body)
    out = subprocess.run([py, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=cwd)
    return float(out.stdout.strip().splitlines()[-1])


def measure(py: str, dirs: dict[str, Path], runs: int) -> dict[str, dict[str, float]]:
    """Median import seconds per variant: the baseline and every handler, interleaved run by run."""
    results: dict[str, dict[str, list[float]]] = {}
    for variant in ("source", "bytecode"):
        layer = [str(dirs[variant]), str(dirs["runtime"])]
        times: dict[str, list[float]] = {"baseline": []}
        for _ in range(runs):
            times["baseline"].append(timed_import(py, layer, BASELINE, WORK))
            for handler in HANDLERS:
                folder = ROOT / "functions" / handler
                # the function's own folder has no bytecode in Lambda either (a copy keeps the repo clean)
                staged = WORK / "functions" / handler
                if not staged.exists():
                    shutil.copytree(folder, staged, ignore=shutil.ignore_patterns("__pycache__"))
                times.setdefault(handler, []).append(
                    timed_import(py, [str(staged), *layer], "import app\n", staged)
                )
        results[variant] = times
    return {v: {k: statistics.median(t) for k, t in times.items()} for v, times in results.items()}


def write_doc(medians: dict[str, dict[str, float]], runs: int, py: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        "## Cold start: handler import time against boto3 + Powertools",
        "",
        f"- Machine: {machine()}; {py.split('/versions/')[-1].split('/')[0] if '/versions/' in py else py}",
        f"- Date: {stamp}; command: `.venv/bin/python -m bench.bench_cold_start --runs {runs}`",
        "- Each figure: the median of "
        f"{runs} fresh processes importing `functions/<name>/app.py` with the layer on `sys.path` and no "
        "writable bytecode cache (Lambda's read-only code directories), in ms, and its ratio to the "
        "baseline (`import boto3` + Powertools Logger/Tracer/Metrics) measured in the same run. *source*: "
        "the layer without bytecode (the build before issue 12); *bytecode*: compiled by `sam build` "
        "(layers/core/Makefile). Goal (issue 12): every handler within 1.2x the baseline, the authorizer "
        "within 1.1x.",
        "",
        "| handler | source ms | source ratio | bytecode ms | bytecode ratio |",
        "|---|---|---|---|---|",
    ]
    for name in ("baseline", *HANDLERS):
        s, b = medians["source"][name], medians["bytecode"][name]
        rs, rb = s / medians["source"]["baseline"], b / medians["bytecode"]["baseline"]
        lines.append(f"| {name} | {s * 1000:.0f} | {rs:.2f}x | {b * 1000:.0f} | {rb:.2f}x |")
    section = "\n".join(lines)
    block = f"{START}\n{section}\n{END}"
    if START in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.DOTALL)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args(argv)
    py = python313()
    print(f"Python 3.13: {py}; preparing {WORK.relative_to(ROOT)} ...", flush=True)
    dirs = prepare(py)
    medians = measure(py, dirs, args.runs)
    print(f"{'handler':<16}{'source ms':>10}{'ratio':>8}{'bytecode ms':>13}{'ratio':>8}")
    for name in ("baseline", *HANDLERS):
        s, b = medians["source"][name], medians["bytecode"][name]
        print(
            f"{name:<16}{s * 1000:>10.0f}{s / medians['source']['baseline']:>7.2f}x"
            f"{b * 1000:>13.0f}{b / medians['bytecode']['baseline']:>7.2f}x"
        )
    if not args.no_write:
        write_doc(medians, args.runs, py)
        print(f"written: {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
