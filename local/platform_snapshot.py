"""The sample platform's side of the initial sync's snapshot contract (docs/events/snapshot.md).

:func:`export_snapshot` writes a firm's snapshot into the snapshot bucket - one JSON Lines file per record
type and ``manifest.json`` under ``snapshots/{firm_id}/{run_id}/`` - from the platform events the firm's
records went through (EventBridge events as :func:`local.sample_firm.generate` makes them, in any order, with
any number of versions per record). :func:`announce_snapshot` publishes "Snapshot Ready" on the bus.

What the snapshot holds, per record (contacts are not in it: they sync inbound):

* the newest version of the record, once: ``{"version": <its newest version>, "data": <the data of its newest
  Created / Updated / Sent event>}``;
* a record whose newest event is a Deleted is not in it;
* a voided invoice (its newest event is Invoice Voided) keeps the data of its newest Created / Updated /
  Sent event with ``status`` ``void``, at the Voided event's version.

This module imports nothing from ``qbsync`` (``make demo`` runs without ``layers/core`` on the path): the
names and limits it copies from :mod:`qbsync.models.snapshot` are checked equal to them by
``tests/unit/test_platform_snapshot.py``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_LINES_PER_FILE",
    "MONEY_FIELD",
    "RECORD_TYPE_OF",
    "SNAPSHOT_FORMAT",
    "SnapshotExportError",
    "announce_snapshot",
    "export_snapshot",
    "snapshot_records",
]

SNAPSHOT_FORMAT = "qbsync.snapshot/1"
#: platform entity -> snapshot record type (qbsync.vocab.RECORD_TYPE_OF)
RECORD_TYPE_OF = {
    "ClientAccount": "client_account",
    "Service": "service",
    "Invoice": "invoice",
    "Payment": "payment",
    "Refund": "refund",
    "ProcessingFee": "fee",
}
#: the field each record type's ``total`` sums (qbsync.models.snapshot.MONEY_FIELD)
MONEY_FIELD = {"invoice": "total", "payment": "amount", "refund": "amount", "fee": "amount"}
#: qbsync.models.snapshot's limits
MAX_FILE_BYTES = 1024 * 1024 * 1024
MAX_LINES_PER_FILE = 500_000
_DATA_ACTIONS = ("Created", "Updated", "Sent")


class SnapshotExportError(Exception):
    """The events cannot be exported (not platform events, a file over the contract's limits) or the bus
    refused "Snapshot Ready"."""


@dataclass
class _Record:
    version: int = 0
    data: dict[str, Any] | None = None
    data_version: int = 0
    gone: bool = False  # newest event so far is a Deleted
    void: bool = False  # newest event so far is an Invoice Voided


def snapshot_records(events: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """``record_type -> [(version, data), ...]``: what the snapshot of these events holds (see the module
    doc), each record once, in the order records first appear."""
    records: dict[tuple[str, str], _Record] = {}
    for event in events:
        detail_type = event.get("detail-type")
        detail = event.get("detail")
        if (
            event.get("source") != "platform"
            or not isinstance(detail_type, str)
            or not isinstance(detail, dict)
        ):
            raise SnapshotExportError("every event must be a platform EventBridge event with a detail")
        entity, _, action = detail_type.partition(" ")
        if entity not in RECORD_TYPE_OF:
            continue  # contacts sync inbound: not in the snapshot
        version, data = detail.get("version"), detail.get("data")
        if not isinstance(version, int) or not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise SnapshotExportError(f"{detail_type}: the detail needs an integer version and data.id")
        rec = records.setdefault((entity, data["id"]), _Record())
        if action in _DATA_ACTIONS and version > rec.data_version:
            rec.data, rec.data_version = dict(data), version
        if version > rec.version:
            rec.version = version
            rec.gone = action == "Deleted"
            rec.void = action == "Voided"
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {t: [] for t in RECORD_TYPE_OF.values()}
    for (entity, _), rec in records.items():
        if rec.gone or rec.data is None:
            continue
        data = {**rec.data, "status": "void"} if rec.void else rec.data
        out[RECORD_TYPE_OF[entity]].append((rec.version, data))
    return out


def export_snapshot(
    s3_client: Any,
    bucket: str,
    firm_id: str,
    run_id: str,
    events: Iterable[Mapping[str, Any]],
    *,
    snapshot_id: str | None = None,
    exported_at: datetime | None = None,
    record_types: Sequence[str] = tuple(RECORD_TYPE_OF.values()),
) -> str:
    """Write the snapshot of ``events`` and return its manifest's key.

    ``snapshot_id`` (default: a fresh ``snap-<hex>``; pass it to announce the snapshot) and ``exported_at``
    (default: now, UTC) go into the manifest. Every type of ``record_types`` gets a file, an empty one when
    the firm has no such record. Raises :class:`SnapshotExportError` (bad events, a file over the limits).
    """
    prefix = f"snapshots/{firm_id}/{run_id}/"
    snapshot_id = snapshot_id or f"snap-{uuid.uuid4().hex[:20]}"
    when = (exported_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    records = snapshot_records(events)
    files = []
    for record_type in record_types:
        if record_type not in records:
            raise SnapshotExportError(f"not a snapshot record type: {record_type!r}")
        rows = records[record_type]
        if len(rows) > MAX_LINES_PER_FILE:
            raise SnapshotExportError(f"{record_type}: more than {MAX_LINES_PER_FILE} records")
        body = "".join(
            json.dumps({"version": v, "data": d}, separators=(",", ":"), ensure_ascii=False) + "\n"
            for v, d in rows
        ).encode("utf-8")
        if len(body) > MAX_FILE_BYTES:
            raise SnapshotExportError(f"{record_type}: the file is larger than {MAX_FILE_BYTES} bytes")
        key = f"{prefix}{record_type}.jsonl"
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        entry: dict[str, Any] = {
            "record_type": record_type,
            "key": key,
            "count": len(rows),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        if record_type in MONEY_FIELD:
            total = sum((Decimal(str(d[MONEY_FIELD[record_type]])) for _, d in rows), Decimal("0.00"))
            entry["total"] = f"{total:.2f}"
        files.append(entry)
    manifest = {
        "format": SNAPSHOT_FORMAT,
        "firm_id": firm_id,
        "run_id": run_id,
        "snapshot_id": snapshot_id,
        "exported_at": when,
        "files": files,
    }
    manifest_key = f"{prefix}manifest.json"
    # the manifest last: a reader that finds it finds every file it names
    s3_client.put_object(
        Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest, indent=2), ContentType="application/json"
    )
    return manifest_key


def announce_snapshot(
    events_client: Any,
    bus_name: str,
    firm_id: str,
    run_id: str,
    manifest_key: str,
    snapshot_id: str,
    *,
    correlation_id: str | None = None,
) -> str:
    """Publish "Snapshot Ready" (source ``platform``) for the snapshot; returns the detail's ``event_id``."""
    event_id = f"evt-snapshot-{snapshot_id}"
    detail = {
        "firm_id": firm_id,
        "event_id": event_id,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "correlation_id": correlation_id,
        "run_id": run_id,
        "snapshot_id": snapshot_id,
        "manifest_key": manifest_key,
    }
    answer = events_client.put_events(
        Entries=[
            {
                "EventBusName": bus_name,
                "Source": "platform",
                "DetailType": "Snapshot Ready",
                "Detail": json.dumps(detail),
            }
        ]
    )
    if answer.get("FailedEntryCount"):
        codes = sorted({str(e.get("ErrorCode")) for e in answer.get("Entries", []) if e.get("ErrorCode")})
        raise SnapshotExportError(f"PutEvents refused Snapshot Ready ({', '.join(codes)})")
    return event_id
