"""The dry-run plan of an initial sync (PRODUCT.md J.1): what will happen to each record of the snapshot.

For every line of the platform's snapshot, in phase order, the plan decides one action:

- ``create``: the record will be written to QuickBooks;
- ``link``: a client account or service whose name matches an object already in QuickBooks (one without
  another record's qbsync marker) is linked to it instead of creating a duplicate ("match before create");
  and, when the pre-flight check found ``services_use_sales_item`` (no service income account chosen, no
  "Uncategorized Income" in the company), every new service is linked to QuickBooks' own "Sales" item, as the
  outbound sync does, with the line's ``note`` :data:`qbsync.vocab.SALES_ITEM_NOTE` kept on the record (the
  drift comparisons then check only that the item is active);
- ``skip``: nothing will be written, with the reason: already in QuickBooks at this version, a draft or
  void invoice never synced, dated before the firm's sync start date, a payment recorded by hand the settings
  do not sync, a client account without activity the settings sync only with some;
- ``block``: it will not sync as it is, with the reason: the line does not parse (``invalid_in_snapshot``;
  ``duplicate_in_snapshot`` for a second line of a record the file has already), QuickBooks refuses it in any
  company (:func:`qbsync.outbound.mapping.check_record`), or it is dated in the company's closed books.

The executor runs the plan's lines, not a fresh diff: each chunk file holds the planned version of each
record and its event. A ``block`` line still runs through the outbound sync, so the record ends failed with
its explained error in the error center, as the plan said (nothing is left without a status).

Objects in the snapshot bucket (the run's prefix ``plans/{firm_id}/{run_id}/``):
``{phase}.json`` — the chunk index of a phase, a JSON array of ``{"phase", "index", "key", "count"}`` that the
state machine's Distributed Map reads; ``{phase}/{index:05d}.json`` — one chunk, ``{"phase", "index",
"lines": [...]}`` with at most :data:`CHUNK_SIZE` lines.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from qbsync import vocab
from qbsync.errors import DataError
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.platform_events import ClientAccount, Invoice, Payment, PlatformEvent, Service
from qbsync.models.preflight import PreflightResult
from qbsync.models.record_key import RecordKey
from qbsync.outbound import mapping
from qbsync.outbound.job import event_envelope, record_date
from qbsync.qbo.client import QboClient
from qbsync.qbo.reference import find_sales_item
from qbsync.repositories.records import EXCLUDED_BY_FIRM, SKIPPED, SYNCED, SyncRecord

__all__ = ["CHUNK_SIZE", "PlanLine", "PlanResult", "Planner", "chunk_key", "index_key"]

logger = logging.getLogger("qbsync.initial_sync")

#: records per chunk: three QuickBooks batch calls of 30
CHUNK_SIZE = 90
#: record ids per blocking finding kept in the plan (the count is exact)
_EXAMPLES = 5

ALREADY_SYNCED = "already in QuickBooks at this version"
#: the reason of a service linked to QuickBooks' "Sales" item
_ON_SALES_ITEM = (
    "services_use_sales_item: billed on QuickBooks' 'Sales' item (no service income account is chosen and "
    "QuickBooks has no 'Uncategorized Income' account)"
)


class Snapshots(Protocol):
    def manifest(self, firm_id: str, run_id: str, manifest_key: str) -> Any: ...
    def lines(self, manifest: Any, record_type: str) -> Iterator[Any]: ...


class Objects(Protocol):
    def put_json(self, key: str, obj: Any) -> None: ...
    def get_text(self, key: str) -> str: ...


class Records(Protocol):
    def get_many(self, keys: Sequence[RecordKey]) -> Mapping[RecordKey, SyncRecord | None]: ...


def plan_prefix(firm_id: str, run_id: str) -> str:
    return f"plans/{firm_id}/{run_id}/"


def index_key(firm_id: str, run_id: str, phase: str) -> str:
    return f"{plan_prefix(firm_id, run_id)}{phase}.json"


def chunk_key(firm_id: str, run_id: str, phase: str, index: int) -> str:
    return f"{plan_prefix(firm_id, run_id)}{phase}/{index:05d}.json"


def normalized(name: str) -> str:
    """Names compared the way QuickBooks keeps them unique: case and repeated spaces do not count."""
    return re.sub(r"\s+", " ", name).strip().casefold()


@dataclass(frozen=True)
class PlanLine:
    """One record's planned action (a line of a chunk file)."""

    record_type: str
    platform_id: str | None
    version: int
    action: str
    reason: str | None = None
    amount: str | None = None
    target_qbo_id: str | None = None
    event: dict[str, Any] | None = None
    #: a link's note, kept on the record when it is linked (a service on the "Sales" item)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "record_type": self.record_type,
            "platform_id": self.platform_id,
            "version": self.version,
            "action": self.action,
            "reason": self.reason,
            "amount": self.amount,
            "target_qbo_id": self.target_qbo_id,
            "event": self.event,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PlanLine:
        return cls(
            record_type=str(value["record_type"]),
            platform_id=value.get("platform_id"),
            version=int(value["version"]),
            action=str(value["action"]),
            reason=value.get("reason"),
            amount=value.get("amount"),
            target_qbo_id=value.get("target_qbo_id"),
            event=value.get("event"),
            note=value.get("note"),
        )


@dataclass
class _Totals:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(vocab.PLAN_ACTIONS, 0))
    amounts: dict[str, Decimal] = field(default_factory=dict)

    def add(self, line: PlanLine) -> None:
        self.counts[line.action] += 1
        if line.amount is not None:
            self.amounts[line.action] = self.amounts.get(line.action, Decimal("0.00")) + Decimal(line.amount)

    def as_dict(self, record_type: str) -> dict[str, Any]:
        out: dict[str, Any] = {"record_type": record_type, **self.counts}
        for action, amount in self.amounts.items():
            out[f"{action}_amount"] = f"{amount:.2f}"
        return out


@dataclass(frozen=True)
class PlanResult:
    """The plan: its summary (``totals`` per record type, ``findings``), each phase's chunk index key and
    planned record count."""

    summary: dict[str, Any]
    keys: dict[str, str]
    planned: dict[str, int]


@dataclass
class _Context:
    settings: FirmSyncSettings
    books_closed_on: date | None
    active_accounts: set[str]
    names: dict[str, dict[str, dict[str, Any]]]  # qbo entity -> normalized name -> object
    #: QuickBooks' "Sales" item when new services are billed on it (pre-flight ``services_use_sales_item``)
    sales_item_id: str | None = None


def _amount(record: Any) -> str | None:
    value = getattr(record, "total", None) if isinstance(record, Invoice) else getattr(record, "amount", None)
    return None if value is None else f"{Decimal(value):.2f}"


class Planner:
    """Builds and stores the plan of a run (module doc).

    Args:
        snapshots: reads the platform's snapshot (``qbsync.repositories.snapshots.SnapshotStore``).
        objects: the snapshot bucket (``qbsync.adapters.s3.S3Objects``), where the plan's chunks go.
        records: the records repository (what is in QuickBooks already).
    """

    def __init__(self, *, snapshots: Snapshots, objects: Objects, records: Records) -> None:
        self._snapshots = snapshots
        self._objects = objects
        self._records = records

    def plan(  # noqa: PLR0913
        self,
        *,
        firm_id: str,
        realm_id: str,
        run_id: str,
        manifest_key: str,
        settings: FirmSyncSettings,
        qbo: QboClient,
        preflight: PreflightResult | None,
    ) -> PlanResult:
        """``preflight``: the run's pre-flight check (its books-closed date; ``services_use_sales_item``)."""
        manifest = self._snapshots.manifest(firm_id, run_id, manifest_key)
        items = list(qbo.query_all("select * from Item"))
        # the pre-flight found it, and the settings read now still choose no service income account
        on_sales = (
            preflight is not None
            and preflight.finding("services_use_sales_item") is not None
            and settings.service_income_account_id is None
        )
        ctx = _Context(
            settings=settings,
            books_closed_on=preflight.books_closed_on if preflight is not None else None,
            active_accounts=self._active_accounts(manifest, settings),
            names={
                "Customer": _names(qbo.query_all("select * from Customer"), "DisplayName"),
                "Item": _names(items, "Name"),
                "Vendor": _names(qbo.query_all("select * from Vendor"), "DisplayName"),
            },
            sales_item_id=find_sales_item(items) if on_sales else None,
        )
        totals: dict[str, _Totals] = {}
        keys: dict[str, str] = {}
        planned: dict[str, int] = {}
        blocking: dict[str, dict[str, Any]] = {}
        for phase in vocab.INITIAL_SYNC_PHASES:
            record_type = vocab.PHASE_RECORD_TYPE[phase]
            phase_totals = totals.setdefault(record_type, _Totals())
            chunks: list[dict[str, Any]] = []
            seen: set[str] = set()  # the ids of the file's lines that parsed so far
            for index, batch in enumerate(_batched(self._snapshots.lines(manifest, record_type), CHUNK_SIZE)):
                lines = self._decide_chunk(firm_id, realm_id, record_type, batch, ctx, seen)
                key = chunk_key(firm_id, run_id, phase, index)
                self._objects.put_json(
                    key, {"phase": phase, "index": index, "lines": [ln.as_dict() for ln in lines]}
                )
                chunks.append({"phase": phase, "index": index, "key": key, "count": len(lines)})
                for line in lines:
                    phase_totals.add(line)
                    if line.action == "block":
                        _note_block(blocking, record_type, line)
            keys[phase] = index_key(firm_id, run_id, phase)
            self._objects.put_json(keys[phase], chunks)
            planned[phase] = sum(c["count"] for c in chunks)
        summary = {
            "snapshot_id": getattr(manifest, "snapshot_id", None),
            "totals": [t.as_dict(rt) for rt, t in totals.items()],
            "findings": list(blocking.values()),
        }
        logger.info(
            "initial sync planned",
            extra={"firm_id": firm_id, "realm_id": realm_id, "run_id": run_id, "planned": planned},
        )
        return PlanResult(summary=summary, keys=keys, planned=planned)

    # ------------------------------------------------------------------ decisions

    def _active_accounts(self, manifest: Any, settings: FirmSyncSettings) -> set[str]:
        """Client accounts with an invoice or payment that will sync (B.1: accounts "with activity")."""
        active: set[str] = set()
        if settings.sync_accounts == "all":
            return active
        for record_type in ("invoice", "payment"):
            for line in self._snapshots.lines(manifest, record_type):
                record = line.event.data if line.event is not None else None
                if record is None or _settings_skip(record, settings) is not None:
                    continue
                active.add(record.account_id)
        return active

    def _decide_chunk(
        self,
        firm_id: str,
        realm_id: str,
        record_type: str,
        batch: Sequence[Any],
        ctx: _Context,
        seen: set[str],
    ) -> list[PlanLine]:
        keys = [
            RecordKey(firm_id, realm_id, record_type, line.platform_id)
            for line in batch
            if line.platform_id and line.event is not None
        ]
        current = self._records.get_many(keys) if keys else {}
        out: list[PlanLine] = []
        for line in batch:
            if line.event is None or not line.platform_id:
                out.append(_unreadable(record_type, line, seen))
                continue
            seen.add(line.platform_id)
            key = RecordKey(firm_id, realm_id, record_type, line.platform_id)
            out.append(_decide(record_type, line.event, current.get(key), ctx))
        return out


def _unreadable(record_type: str, line: Any, seen: set[str]) -> PlanLine:
    """A line that does not parse: blocked with ``invalid_in_snapshot`` (the executor gives the record it
    names an error-center entry), or ``duplicate_in_snapshot`` when an earlier line of the file is that record
    (the record syncs from that line; this one is a finding of the plan only). A line without a readable id
    keeps ``platform_id`` None: a finding of the plan, nothing to put on a record."""
    code = vocab.INVALID_IN_SNAPSHOT
    if line.platform_id and line.platform_id in seen:
        code = vocab.DUPLICATE_IN_SNAPSHOT
    return PlanLine(record_type, line.platform_id, int(line.version or 0), "block", f"{code}: {line.problem}")


def _names(objects: Iterable[dict[str, Any]], field_name: str) -> dict[str, dict[str, Any]]:
    """The company's objects of one entity (one paged query, 1000 a page) by normalized name."""
    out: dict[str, dict[str, Any]] = {}
    for obj in objects:
        name = obj.get(field_name)
        if isinstance(name, str) and name:
            out.setdefault(normalized(name), obj)
    return out


def _settings_skip(record: Any, settings: FirmSyncSettings) -> str | None:
    if isinstance(record, Payment) and not mapping.payment_should_sync(record, settings):
        return "manually recorded payments are not synced by the firm's settings"
    if isinstance(record, Invoice) and record.status == "draft":
        return "draft invoices are not synced"
    day = record_date(record)
    start = settings.sync_start_date
    if start is not None and day is not None and day < start:
        return f"dated {day.isoformat()}, before the sync start date {start.isoformat()}"
    return None


def _decide(record_type: str, event: PlatformEvent, current: SyncRecord | None, ctx: _Context) -> PlanLine:
    record = event.data
    envelope = event_envelope(event)

    def line(
        action: str,
        reason: str | None = None,
        target: str | None = None,
        *,
        run: bool = True,
        note: str | None = None,
    ) -> PlanLine:
        return PlanLine(
            record_type,
            event.record_id,
            event.version,
            action,
            reason,
            _amount(record),
            target,
            envelope if run else None,
            note,
        )

    unsynced = current is None or not current.qbo_id
    if current is not None and current.status == SYNCED and (current.platform_version or 0) >= event.version:
        return line("skip", ALREADY_SYNCED, current.qbo_id, run=False)
    if current is not None and current.status == SKIPPED and current.skip_reason == EXCLUDED_BY_FIRM:
        return line("skip", EXCLUDED_BY_FIRM)
    if isinstance(record, Invoice) and record.status == "void" and unsynced:
        return line("skip", "void on the platform and never synced")
    skip = _settings_skip(record, ctx.settings)
    if (
        skip is None
        and isinstance(record, ClientAccount)
        and ctx.settings.sync_accounts == "with_activity"
        and record.id not in ctx.active_accounts
        and unsynced
    ):
        skip = "no_activity: the client account has no invoices or payments that sync"
    if skip is not None:
        return line("skip", skip)
    try:
        mapping.check_record(record)
    except DataError as err:
        code = getattr(err, "reason_code", None) or err.code
        return line("block", f"{code}: {err.message}"[:500])
    day = record_date(record)
    if ctx.books_closed_on is not None and day is not None and day <= ctx.books_closed_on:
        closed = ctx.books_closed_on.isoformat()
        return line("block", f"books_closed: dated {day.isoformat()}, in the books closed through {closed}")
    if isinstance(record, ClientAccount | Service) and unsynced:
        return _by_name(record_type, record, ctx, line)
    return line("create")


def _by_name(
    record_type: str, record: ClientAccount | Service, ctx: _Context, line: Callable[..., PlanLine]
) -> PlanLine:
    """A client account or service not in QuickBooks yet: linked to the object of its name, blocked by a
    vendor of its name (QuickBooks names are unique across customers and vendors: 6240), or created. A service
    is linked to the "Sales" item instead when services are billed on it (the outbound sync decides so before
    it looks for a name)."""
    if isinstance(record, Service) and ctx.sales_item_id is not None:
        return line("link", _ON_SALES_ITEM, ctx.sales_item_id, note=vocab.SALES_ITEM_NOTE)
    name = normalized(record.name)
    entity = "Customer" if isinstance(record, ClientAccount) else "Item"
    if entity == "Customer" and name in ctx.names["Vendor"] and name not in ctx.names["Customer"]:
        return line(
            "block",
            "duplicate_name: a vendor in QuickBooks has this name; rename one of them, or map the account",
        )
    found = ctx.names[entity].get(name)
    if found is not None and _linkable(found, entity, record_type, record.id):
        return line("link", f"matches the {entity} named alike", str(found["Id"]))
    return line("create")


def _linkable(obj: Mapping[str, Any], entity: str, record_type: str, platform_id: str) -> bool:
    """An object named like the record may be linked unless it carries another record's marker."""
    note = obj.get("Notes" if entity == "Customer" else "Description")
    marker = mapping.parse_marker(note if isinstance(note, str) else None)
    if marker is None:
        return True
    return marker == (vocab.RECORD_TYPE_INFO[record_type].marker, platform_id)


#: what the firm does about the snapshot's own findings (the plan's other findings explain themselves)
_FIXES = {
    vocab.INVALID_IN_SNAPSHOT: (
        "Fix each record on the platform (its error in the error center names the fields): the platform's "
        "next event for it syncs it normally."
    ),
    vocab.DUPLICATE_IN_SNAPSHOT: (
        "Nothing to do for the record (it syncs from its first line); the platform's export should hold one "
        "line per record."
    ),
    vocab.INVALID_WITHOUT_ID: (
        "These lines name no record qbsync can show the problem on: the platform corrects its export (a "
        "record's next event syncs it normally)."
    ),
}


def _note_block(blocking: dict[str, dict[str, Any]], record_type: str, line: PlanLine) -> None:
    code = (line.reason or "blocked").split(":", 1)[0]
    if code == vocab.INVALID_IN_SNAPSHOT and not line.platform_id:
        code = vocab.INVALID_WITHOUT_ID
    key = f"{record_type}:{code}"
    entry = blocking.setdefault(
        key,
        {
            "code": code[:64] if re.fullmatch(r"[a-z0-9_]+", code[:64]) else "blocked",
            "severity": "blocking",
            "message": (line.reason or "blocked")[:1000],
            "record_types": [record_type],
            "count": 0,
            "examples": [],
        },
    )
    if code in _FIXES:
        entry["fix"] = _FIXES[code]
    entry["count"] += 1
    if line.platform_id and len(entry["examples"]) < _EXAMPLES:
        entry["examples"].append(line.platform_id)


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def by_action(lines: Iterable[PlanLine]) -> dict[str, list[PlanLine]]:
    out: dict[str, list[PlanLine]] = defaultdict(list)
    for line in lines:
        out[line.action].append(line)
    return out
