"""The sample platform's snapshot exporter (local/platform_snapshot.py): which version of each record it
exports, that it names what qbsync's contract names, and that it runs without qbsync (``make demo``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qbsync.models import snapshot as contract
from qbsync.models.snapshot import parse_snapshot_ready
from qbsync.vocab import RECORD_TYPE_OF

from local import platform_snapshot as exporter
from local.platform_snapshot import SnapshotExportError, announce_snapshot, snapshot_records

ROOT = Path(__file__).resolve().parents[2]


def _event(detail_type: str, version: int, data: dict) -> dict:
    return {
        "source": "platform",
        "detail-type": detail_type,
        "detail": {"firm_id": "f", "event_id": f"e{version}", "occurred_at": "2026-01-01T00:00:00Z"}
        | {"correlation_id": "c", "version": version, "data": data},
    }


def test_it_copies_qbsyncs_names_and_limits():
    assert exporter.SNAPSHOT_FORMAT == contract.SNAPSHOT_FORMAT
    assert exporter.RECORD_TYPE_OF == RECORD_TYPE_OF
    assert exporter.MONEY_FIELD == contract.MONEY_FIELD
    assert (exporter.MAX_FILE_BYTES, exporter.MAX_LINES_PER_FILE) == (
        contract.MAX_FILE_BYTES,
        contract.MAX_LINES_PER_FILE,
    )
    assert tuple(exporter.RECORD_TYPE_OF.values()) == contract.SNAPSHOT_RECORD_TYPES


def test_it_imports_without_qbsync():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import sys, local.platform_snapshot; assert 'qbsync' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_newest_version_of_each_record_whatever_the_delivery_order():
    inv = {"id": "inv-1", "status": "sent", "memo": "v1"}
    events = [
        _event("Invoice Updated", 3, {**inv, "memo": "v3"}),
        _event("Invoice Sent", 1, inv),
        _event("Invoice Updated", 2, {**inv, "memo": "v2"}),
        _event("Invoice Created", 1, {"id": "inv-2", "status": "sent"}),
        _event("Invoice Voided", 2, {"id": "inv-2", "voided_on": "2026-01-02"}),
        _event("Service Created", 1, {"id": "svc-1"}),
        _event("Service Deleted", 2, {"id": "svc-1"}),
        _event("Payment Deleted", 1, {"id": "pay-0"}),  # never had data: nothing to export
        _event("Payment Created", 1, {"id": "pay-1", "amount": "5.00"}),
        _event("Contact Created", 1, {"id": "ct-1"}),
    ]
    out = snapshot_records(events)
    assert out["invoice"] == [(3, {**inv, "memo": "v3"}), (2, {"id": "inv-2", "status": "void"})]
    assert out["service"] == []
    assert out["payment"] == [(1, {"id": "pay-1", "amount": "5.00"})]
    assert "contact" not in out


def test_an_update_after_a_void_is_the_newest_state():
    events = [
        _event("Invoice Sent", 1, {"id": "inv-1", "status": "sent"}),
        _event("Invoice Voided", 2, {"id": "inv-1", "voided_on": "2026-01-02"}),
        _event("Invoice Updated", 3, {"id": "inv-1", "status": "void", "memo": "after"}),
    ]
    assert snapshot_records(events)["invoice"] == [(3, {"id": "inv-1", "status": "void", "memo": "after"})]


@pytest.mark.parametrize(
    "event",
    [
        {"source": "qbsync", "detail-type": "Invoice Sent", "detail": {}},
        {"source": "platform", "detail-type": "Invoice Sent"},
        _event("Invoice Sent", "1", {"id": "inv-1"}),  # type: ignore[arg-type]
        _event("Invoice Sent", 1, {"number": "x"}),
    ],
)
def test_what_is_not_a_platform_record_event_is_refused(event):
    with pytest.raises(SnapshotExportError):
        snapshot_records([event])


class _Events:
    def __init__(self, failed: int = 0) -> None:
        self.entries: list[dict] = []
        self.failed = failed

    def put_events(self, Entries):
        self.entries += Entries
        if self.failed:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


def test_announce_publishes_a_snapshot_ready_qbsync_accepts():
    client = _Events()
    key = "snapshots/firm-1/run-1/manifest.json"
    event_id = announce_snapshot(client, "bus", "firm-1", "run-1", key, "snap-1", correlation_id="corr-1")
    (entry,) = client.entries
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "platform",
        "Snapshot Ready",
        "bus",
    )
    event = {
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "detail": json.loads(entry["Detail"]),
    }
    ready = parse_snapshot_ready(event)
    assert (ready.event_id, ready.manifest_key, ready.snapshot_id, ready.correlation_id) == (
        event_id,
        key,
        "snap-1",
        "corr-1",
    )
    with pytest.raises(SnapshotExportError, match="InternalFailure"):
        announce_snapshot(_Events(failed=1), "bus", "firm-1", "run-1", key, "snap-1")
