"""``make demo`` runs ``python -m local.demo`` without ``layers/core`` on the path (the Lambda layer is the
handlers', not the demo's): the demo's modules must import without ``qbsync``, and what they copy from it
must stay equal to it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qbsync.inbound.drift import DRIFT_CODES

import local.demo_drift

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_imports_as_make_demo_runs_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import sys, local.demo; assert 'qbsync' not in sys.modules, 'local.demo imported qbsync'"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_demo_names_the_drift_codes_qbsync_raises() -> None:
    assert local.demo_drift.DRIFT_CODES == DRIFT_CODES
