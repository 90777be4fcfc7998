"""``python -m local.stack`` (``make up``): starts everything, prints the endpoints, stops on Ctrl-C."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading

import pytest
import requests

from tests.fixtures.aws import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_local_stack_command_serves_and_stops_cleanly(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.stack"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    try:
        while True:
            line = lines.get(timeout=120)
            assert line is not None, "".join(output)
            output.append(line)
            if "function logs" in line:
                break
        text = "".join(output)
        api_url = next(line.split()[-1] for line in output if line.strip().startswith("API AdminApi"))
        assert "moto (AWS_ENDPOINT_URL)" in text and "QuickBooks simulator" in text
        resp = requests.get(f"{api_url}/connection", timeout=60)
        assert resp.status_code == 401  # the real authorizer behind the local API Gateway
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
