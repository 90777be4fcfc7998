"""Generate the event contract files from the pydantic models (the models are the source of truth).

Writes
  docs/events/platform/<name>.schema.json   JSON Schema of each platform event's detail
  docs/events/qbsync/<name>.schema.json     JSON Schema of each qbsync event's detail
  events/platform/<name>.json               a sample EventBridge event per platform detail type
  events/qbsync/<name>.json                 a sample EventBridge event per qbsync detail type
  docs/events/snapshot/manifest.schema.json the initial sync's snapshot manifest (docs/events/snapshot.md)
  docs/events/snapshot/line.schema.json     one line of a snapshot file
  events/snapshot/manifest.json             a sample manifest; events/snapshot/<record type>.jsonl a line each
  events/snapshot/snapshot_ready.json, snapshot_requested.json   the snapshot contract's two events

"Snapshot Ready" (platform) and "Snapshot Requested" (qbsync) are the snapshot contract's events
(qbsync.models.snapshot): their schemas sit with the other events of their source (docs/events/<source>/),
their samples under events/snapshot/ (events/<source>/ holds record events only, and tests replay every one
of those through the outbound parser). They are not in PLATFORM_EVENT_TYPES / QBSYNC_EVENT_TYPES.

<name> is the detail type in snake case ("ClientAccount Created" -> client_account_created).

Usage:
  python scripts/gen_event_schemas.py            # (re)write every file
  python scripts/gen_event_schemas.py --check    # exit 1 and list the files that differ (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))

from qbsync.models.platform_events import PLATFORM_EVENT_TYPES, PLATFORM_SOURCE  # noqa: E402
from qbsync.models.qbsync_events import QBSYNC_EVENT_TYPES, QBSYNC_SOURCE  # noqa: E402
from qbsync.models.snapshot import (  # noqa: E402
    MONEY_FIELD,
    SNAPSHOT_FORMAT,
    SNAPSHOT_RECORD_TYPES,
    SnapshotLineBody,
    SnapshotManifest,
    SnapshotReady,
    SnapshotRequested,
    created_event_type,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
FIRM = "firm-0001"
REALM = "9341453050298755"
ACCOUNT = "123456789012"
REGION = "us-east-1"


def file_name(detail_type: str) -> str:
    """Detail type in snake case: 'ClientAccount Created' -> client_account_created."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", detail_type)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


#: the snapshot contract's events, by source and detail type (not record events: see the module doc)
SNAPSHOT_EVENT_TYPES: dict[str, dict[str, type[BaseModel]]] = {
    PLATFORM_SOURCE: {SnapshotReady.DETAIL_TYPE: SnapshotReady},
    QBSYNC_SOURCE: {SnapshotRequested.DETAIL_TYPE: SnapshotRequested},
}


def schema_for(detail_type: str, source: str) -> dict[str, Any]:
    model: type[BaseModel]
    if detail_type in SNAPSHOT_EVENT_TYPES[source]:
        model = SNAPSHOT_EVENT_TYPES[source][detail_type]
    elif source == PLATFORM_SOURCE:
        model = PLATFORM_EVENT_TYPES[detail_type]
    else:
        model = QBSYNC_EVENT_TYPES[detail_type]
    body = model.model_json_schema(mode="validation" if source == PLATFORM_SOURCE else "serialization")
    body.pop("title", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://qbsync.local/events/{source}/{file_name(detail_type)}.schema.json",
        "title": detail_type,
        "x-eventbridge": {"source": source, "detail-type": detail_type},
        **body,
    }


# --- samples -----------------------------------------------------------------------------------------


def _envelope(n: int, version: int = 1) -> dict[str, Any]:
    return {
        "firm_id": FIRM,
        "event_id": f"evt-{n:04d}",
        "occurred_at": f"2026-03-02T10:{n % 60:02d}:00Z",
        "correlation_id": f"corr-{n:04d}",
        "version": version,
    }


_ADDRESS = {
    "line1": "12 Harbour St",
    "line2": None,
    "city": "Portland",
    "region": "ME",
    "postal_code": "04101",
    "country": "US",
}

PLATFORM_DATA: dict[str, dict[str, Any]] = {
    "ClientAccount": {
        "id": "acct-100",
        "name": "Harbour Bakery LLC",
        "account_type": "company",
        "active": True,
        "contact_ids": ["ct-200"],
        "email": "billing@harbour-bakery.example",
        "phones": [{"type": "work", "number": "+1 207 555 0100"}],
        "billing_address": _ADDRESS,
        "currency": "USD",
    },
    "Contact": {
        "id": "ct-200",
        "first_name": "Dana",
        "middle_name": None,
        "last_name": "Reyes",
        "display_name": "Dana Reyes",
        "email": "dana@harbour-bakery.example",
        "phones": [{"type": "mobile", "number": "+1 207 555 0101"}],
        "physical_address": _ADDRESS,
        "mailing_address": {**_ADDRESS, "line1": "PO Box 44"},
        "contact_type": "Client",
        "account_ids": ["acct-100"],
    },
    "Service": {
        "id": "svc-300",
        "name": "Bookkeeping (monthly)",
        "description": "Monthly bookkeeping and reconciliation",
        "rate": "150.00",
        "rate_type": "hour",
        "active": True,
        "taxable": False,
        "tax_rate_id": None,
    },
    "Invoice": {
        "id": "inv-400",
        "number": "INV-1042",
        "account_id": "acct-100",
        "status": "sent",
        "issue_date": "2026-03-01",
        "due_date": "2026-03-31",
        "currency": "USD",
        "line_items": [
            {
                "id": "ln-1",
                "service_id": "svc-300",
                "work_type_id": None,
                "description": "Bookkeeping, February",
                "quantity": "3.5",
                "rate": "150.00",
                "amount": "525.00",
                "tax_rate_id": "tax-me",
                "tax_amount": "28.88",
            },
            {
                "id": "ln-2",
                "service_id": None,
                "work_type_id": "wt-payroll",
                "description": "Payroll run",
                "quantity": "1",
                "rate": "80.00",
                "amount": "80.00",
                "tax_rate_id": None,
                "tax_amount": None,
            },
        ],
        "subtotal": "605.00",
        "tax_total": "28.88",
        "total": "633.88",
        "balance_due": "633.88",
        "memo": "Thank you for your business",
        "sent_at": "2026-03-01T15:00:00Z",
    },
    "Payment": {
        "id": "pay-500",
        "account_id": "acct-100",
        "payment_date": "2026-03-05",
        "currency": "USD",
        "amount": "700.00",
        "method": "card",
        "offline": False,
        "sync_override": None,
        "allocations": [
            {"invoice_id": "inv-400", "amount": "633.88"},
            {"invoice_id": "inv-401", "amount": "66.12"},
        ],
        "processor": "stripe",
        "reference": "ch_3PqZ0001",
        "description": "Paid through the client portal",
        "deposit": {"payout_id": "po_1Pq0001", "deposited_on": "2026-03-07"},
    },
    "Refund": {
        "id": "ref-600",
        "payment_id": "pay-500",
        "account_id": "acct-100",
        "refund_date": "2026-03-09",
        "currency": "USD",
        "amount": "66.12",
        "invoice_id": "inv-401",
        "reason": "Invoice issued twice",
    },
    "ProcessingFee": {
        "id": "fee-700",
        "payment_id": "pay-500",
        "account_id": "acct-100",
        "fee_date": "2026-03-05",
        "currency": "USD",
        "amount": "20.60",
        "processor": "stripe",
        "description": "Card processing fee",
    },
}


def platform_detail(detail_type: str, n: int) -> dict[str, Any]:
    cls = PLATFORM_EVENT_TYPES[detail_type]
    data = PLATFORM_DATA[cls.ENTITY]
    version = {"Created": 1, "Sent": 2, "Updated": 3, "Voided": 4, "Deleted": 5}[cls.ACTION]
    if cls.ACTION == "Deleted":
        payload: dict[str, Any] = {"id": data["id"]}
    elif cls.ACTION == "Voided":
        payload = {"id": data["id"], "voided_on": "2026-03-10"}
    elif cls.ACTION == "Updated" and cls.ENTITY == "Payment":
        payload = {
            **data,
            "method": "check",
            "offline": True,
            "sync_override": True,
            "processor": None,
            "reference": "1187",
            "deposit": None,
        }
    else:
        payload = data
    return {**_envelope(n, version), "data": payload}


_CONTACT = {
    "first_name": "Dana",
    "middle_name": None,
    "last_name": "Reyes",
    "display_name": "Dana Reyes",
    "company_name": "Harbour Bakery LLC",
    "email": "dana@harbour-bakery.example",
    "phones": [{"type": "mobile", "number": "+1 207 555 0101"}],
    "physical_address": _ADDRESS,
    "mailing_address": None,
}


def qbsync_detail(detail_type: str, n: int) -> dict[str, Any]:
    base = {
        "firm_id": FIRM,
        "event_id": f"qevt-{n:04d}",
        "occurred_at": f"2026-03-02T11:{n % 60:02d}:00Z",
        "correlation_id": f"corr-{n:04d}",
    }
    fields: dict[str, dict[str, Any]] = {
        "Connection Changed": {
            "change": "needs_reconnect",
            "status": "needs_reconnect",
            "realm_id": REALM,
            "company_name": "Reyes & Co CPA",
            "previous_realm_id": None,
            "reason": "QuickBooks rejected the authorization (AuthenticationFailed 003200): reconnect",
            "warnings": [],
        },
        "Firm Health Changed": {
            "realm_id": REALM,
            "level": "degraded",
            "previous_level": "ok",
            "reasons": ["failed_records", "token_expiry_soon"],
        },
        "Sync Status Changed": {
            "realm_id": REALM,
            "entity_type": "Invoice",
            "platform_id": "inv-400",
            "status": "synced",
            "qbo_id": "145",
            "qbo_url": f"https://app.qbo.intuit.com/app/invoice?txnId=145&companyId={REALM}",
            "error_id": None,
            "error_message": None,
            "note": "QuickBooks numbered it 1042: custom transaction numbers are off in the company, so the "
            "platform's number INV-1042 was not sent",
        },
        "Sync Error Raised": {
            "error_id": "err-01",
            "realm_id": REALM,
            "category": "Invoices",
            "entity_type": "Invoice",
            "platform_id": "inv-400",
            "qbo_code": "6140",
            "qbo_message": "Duplicate Document Number Error",
            "explanation": "QuickBooks already has an invoice numbered INV-1042. Change the number in "
            "QuickBooks, then resync.",
            "attempts": 1,
            "first_seen": "2026-03-02T11:00:00Z",
            "last_seen": "2026-03-02T11:00:00Z",
            "open_error_count": 3,
            "notify_roles": ["owner", "admin"],
        },
        "Sync Error Resolved": {
            "error_id": "err-01",
            "category": "Invoices",
            "entity_type": "Invoice",
            "platform_id": "inv-400",
            "resolution": "resynced",
            "resolved_by": None,
            "open_error_count": 2,
        },
        "Contact Imported": {
            "realm_id": REALM,
            "qbo_customer_id": "58",
            "match": "duplicate",
            "platform_contact_id": None,
            "candidate_contact_ids": ["ct-200"],
            "contact_type": "Client",
            "contact": _CONTACT,
        },
        "Contact Updated": {
            "realm_id": REALM,
            "qbo_customer_id": "58",
            "platform_contact_id": "ct-200",
            "changed_fields": ["email", "phones"],
            "contact": _CONTACT,
        },
        "Payment Received In QBO": {
            "realm_id": REALM,
            "qbo_payment_id": "311",
            "qbo_version": "0",
            "operation": "created",
            "account_id": "acct-100",
            "payment_date": "2026-03-04",
            "currency": "USD",
            "amount": "700.00",
            "unapplied_amount": "0.00",
            "method": "Check",
            "reference": "1187",
            "allocations": [
                {
                    "invoice_id": "inv-400",
                    "qbo_invoice_id": "145",
                    "amount": "633.88",
                    "invoice_balance": "0.00",
                },
                {
                    "invoice_id": "inv-401",
                    "qbo_invoice_id": "146",
                    "amount": "66.12",
                    "invoice_balance": "13.88",
                },
            ],
        },
        "Service Delete Requested": {
            "realm_id": REALM,
            "service_id": "svc-300",
            "error_id": "3f9a0c1d2b4e5f60-1",
            "requested_by": "user-7",
        },
        "Service Imported": {
            "realm_id": REALM,
            "qbo_item_id": "21",
            "name": "Payroll (monthly)",
            "rate": "95.00",
            "rate_type": "hour",
            "description": "Monthly payroll run",
            "requested_by": "user-7",
        },
        "Invoice Paid": {
            "realm_id": REALM,
            "invoice_id": "inv-400",
            "qbo_invoice_id": "145",
            "paid_on": "2026-03-04",
            "total": "633.88",
            "qbo_payment_id": "311",
            "qbo_version": "0",
            "qbo_payment_ids": ["311"],
        },
        "Payment Withdrawn In QBO": {
            "realm_id": REALM,
            "qbo_payment_id": "311",
            "qbo_version": "deleted",
            "reason": "deleted",
            "error_id": None,
            "allocations": [
                {"invoice_id": "inv-400", "qbo_invoice_id": "145", "amount": "633.88"},
                {"invoice_id": "inv-401", "qbo_invoice_id": "146", "amount": "66.12"},
            ],
        },
        "Initial Sync Progress": {
            "realm_id": REALM,
            "run_id": "is-0f3c2a9b",
            "status": "running",
            "current_phase": "invoices",
            "phase_status": "running",
            "phases": [
                _phase("services", "completed", 40, done=38, skipped=2),
                _phase("customers", "completed", 900, done=897, failed=1, skipped=2),
                _phase("invoices", "running", 5400, done=1800, failed=3, changed=1, rate=1150.0, eta=188),
                _phase("payments", "pending", 4100),
                _phase("refunds", "pending", 35),
                _phase("fees", "pending", 3900),
            ],
            "error": None,
        },
        "Initial Sync Planned": {
            "realm_id": REALM,
            "run_id": "is-0f3c2a9b",
            "needs_approval": True,
            "totals": [
                _totals("service", create=38, link=2),
                _totals("client_account", create=880, link=17, skip=3),
                _totals(
                    "invoice",
                    create=5390,
                    skip=6,
                    block=4,
                    create_amount="1283440.50",
                    skip_amount="1200.00",
                    block_amount="980.00",
                ),
            ],
            "findings": [
                {
                    "code": "books_closed",
                    "severity": "warning",
                    "message": "The books are closed through 2025-12-31: QuickBooks refuses records dated "
                    "on or before it.",
                    "fix": "Reopen the period in QuickBooks, or leave those records out.",
                    "record_types": ["invoice", "payment"],
                    "count": 4,
                },
            ],
        },
        "Drift Detected": {
            "realm_id": REALM,
            "report_id": "20261207T060000000000Z",
            "new_count": 2,
            "open_count": 3,
            "new_findings": [
                {
                    "kind": "amount_mismatch",
                    "entity_type": "Invoice",
                    "platform_id": "inv-1042",
                    "qbo_id": "145",
                    "differences": [
                        {"field": "total", "was": "605.00 USD", "now": "650.00 USD"},
                        {"field": "line 2 amount", "was": "80.00 USD", "now": "125.00 USD"},
                    ],
                    "error_id": "3f9a0c1d2e4b5a69-1",
                    "actions": ["resync", "unlink"],
                },
                {
                    "kind": "missing_in_quickbooks",
                    "entity_type": "Payment",
                    "platform_id": "pay-2001",
                    "qbo_id": "212",
                    "differences": [],
                    "error_id": "8b1e22c0d94f7a13-1",
                    "actions": ["resync", "relink", "unlink"],
                },
            ],
        },
    }
    return {**base, **fields[detail_type]}


def _phase(
    phase: str,
    status: str,
    planned: int,
    *,
    done: int = 0,
    failed: int = 0,
    skipped: int = 0,
    changed: int = 0,
    rate: float | None = None,
    eta: int | None = None,
) -> dict[str, Any]:
    """One phase of the "Initial Sync Progress" sample, every field written out."""
    finished = done + failed + skipped + changed
    return {
        "phase": phase,
        "status": status,
        "planned": planned,
        "done": done,
        "failed": failed,
        "skipped": skipped,
        "blocked": 0,
        "changed": changed,
        "remaining": planned - finished,
        "rate_per_minute": rate,
        "eta_seconds": eta,
    }


def _totals(record_type: str, **figures: Any) -> dict[str, Any]:
    """One record type of the "Initial Sync Planned" sample, every field written out."""
    out: dict[str, Any] = {"record_type": record_type, "create": 0, "link": 0, "skip": 0, "block": 0}
    out.update({f"{a}_amount": None for a in ("create", "link", "skip", "block")})
    out.update(figures)
    return out


def eventbridge_event(source: str, detail_type: str, detail: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"6a7e8feb-b491-4cf7-a9f1-bf3703{n:06d}",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": detail["occurred_at"],
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


# --- the snapshot contract ---------------------------------------------------------------------------

SNAPSHOT_RUN = "run-01"
SNAPSHOT_ID = "snap-0001"
SNAPSHOT_PREFIX = f"snapshots/{FIRM}/{SNAPSHOT_RUN}/"
#: a sample file per record type: its one line is the Created sample's data at version 3
_SNAPSHOT_ENTITY = {"client_account": "ClientAccount", "service": "Service", "invoice": "Invoice"}
_SNAPSHOT_ENTITY |= {"payment": "Payment", "refund": "Refund", "fee": "ProcessingFee"}


def snapshot_line(record_type: str) -> str:
    """The sample line of ``record_type`` (JSON, no newline)."""
    body = {"version": 3, "data": PLATFORM_DATA[_SNAPSHOT_ENTITY[record_type]]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def snapshot_manifest() -> dict[str, Any]:
    files = []
    for record_type in SNAPSHOT_RECORD_TYPES:
        line = snapshot_line(record_type) + "\n"
        entry: dict[str, Any] = {
            "record_type": record_type,
            "key": f"{SNAPSHOT_PREFIX}{record_type}.jsonl",
            "count": 1,
            "sha256": hashlib.sha256(line.encode()).hexdigest(),
        }
        if record_type in MONEY_FIELD:
            entry["total"] = PLATFORM_DATA[_SNAPSHOT_ENTITY[record_type]][MONEY_FIELD[record_type]]
        files.append(entry)
    return {
        "format": SNAPSHOT_FORMAT,
        "firm_id": FIRM,
        "run_id": SNAPSHOT_RUN,
        "snapshot_id": SNAPSHOT_ID,
        "exported_at": "2026-03-02T12:00:00Z",
        "files": files,
    }


def snapshot_detail(source: str) -> dict[str, Any]:
    if source == PLATFORM_SOURCE:
        return {
            "firm_id": FIRM,
            "event_id": "evt-snap-0001",
            "occurred_at": "2026-03-02T12:00:05Z",
            "correlation_id": "corr-snap-0001",
            "run_id": SNAPSHOT_RUN,
            "snapshot_id": SNAPSHOT_ID,
            "manifest_key": f"{SNAPSHOT_PREFIX}manifest.json",
        }
    return {
        "firm_id": FIRM,
        "event_id": "qevt-snap-0001",
        "occurred_at": "2026-03-02T11:59:00Z",
        "correlation_id": "corr-snap-0001",
        "realm_id": REALM,
        "run_id": SNAPSHOT_RUN,
        "bucket": "qbsync-prod-snapshotbucket-1a2b3c4d5e6f",
        "prefix": SNAPSHOT_PREFIX,
        "record_types": list(SNAPSHOT_RECORD_TYPES),
        "respond_by": "2026-03-03T11:59:00Z",
    }


def _snapshot_schema(name: str, title: str, model: type[BaseModel]) -> dict[str, Any]:
    body = model.model_json_schema(mode="validation")
    body.pop("title", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://qbsync.local/events/snapshot/{name}.schema.json",
        "title": title,
        **body,
    }


def _line_model() -> type[BaseModel]:
    """The line's model for its schema: ``data`` is one of the record types' Created data."""
    datas = tuple(created_event_type(t).model_fields["data"].annotation for t in SNAPSHOT_RECORD_TYPES)
    union: Any = datas[0]
    for d in datas[1:]:
        union = union | d
    version = SnapshotLineBody.model_fields["version"]
    return create_model(
        "SnapshotLine",
        __base__=SnapshotLineBody,
        version=(int, Field(ge=1, description=version.description)),
        data=(
            union,
            Field(description="the data of the file's record type's Created event (that event's schema)"),
        ),
    )


def snapshot_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for n, (source, types) in enumerate(SNAPSHOT_EVENT_TYPES.items(), start=900):
        for detail_type in types:
            name = file_name(detail_type)
            files[ROOT / "docs" / "events" / source / f"{name}.schema.json"] = _dump(
                schema_for(detail_type, source)
            )
            sample = eventbridge_event(source, detail_type, snapshot_detail(source), n)
            # with the snapshot's samples, not in events/<source>/: those are the record events
            files[ROOT / "events" / "snapshot" / f"{name}.json"] = _dump(sample)
    docs = ROOT / "docs" / "events" / "snapshot"
    files[docs / "manifest.schema.json"] = _dump(
        _snapshot_schema("manifest", "Snapshot manifest", SnapshotManifest)
    )
    files[docs / "line.schema.json"] = _dump(_snapshot_schema("line", "Snapshot line", _line_model()))
    samples = ROOT / "events" / "snapshot"
    files[samples / "manifest.json"] = _dump(snapshot_manifest())
    for record_type in SNAPSHOT_RECORD_TYPES:
        files[samples / f"{record_type}.jsonl"] = snapshot_line(record_type) + "\n"
    return files


def expected_files() -> dict[Path, str]:
    """Every generated file and its exact content."""
    files: dict[Path, str] = snapshot_files()
    for source, types, make in (
        (PLATFORM_SOURCE, PLATFORM_EVENT_TYPES, platform_detail),
        (QBSYNC_SOURCE, QBSYNC_EVENT_TYPES, qbsync_detail),
    ):
        for n, detail_type in enumerate(sorted(types), start=1):
            name = file_name(detail_type)
            files[ROOT / "docs" / "events" / source / f"{name}.schema.json"] = _dump(
                schema_for(detail_type, source)
            )
            sample = eventbridge_event(source, detail_type, make(detail_type, n), n)
            files[ROOT / "events" / source / f"{name}.json"] = _dump(sample)
    return files


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    files = expected_files()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    for directory in {p.parent for p in files}:
        for extra in (*directory.glob("*.json"), *directory.glob("*.jsonl")):
            if extra not in files:
                stale.append(extra)
    if args.check:
        for path in sorted(stale):
            print(f"out of date: {path.relative_to(ROOT)}")
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        if path not in files:
            path.unlink()
    print(f"wrote {len(files)} files under docs/events and events/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
