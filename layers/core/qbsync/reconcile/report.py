"""The drift report of one firm (PRODUCT.md J.3, G): every synced record compared with QuickBooks.

:meth:`DriftReports.run` is the one entry point (the scheduled resync calls it per connected firm;
``POST /drift/run`` calls it for the caller's firm):

1. **Records.** One Query of the realm's records with their stored platform data
   (``RecordAdmin.with_data``): those ``synced`` with a QuickBooks link, and those carrying an open drift
   error (:data:`qbsync.inbound.drift.DRIFT_CODES`), of the types compared
   (:data:`qbsync.inbound.drift.COMPARED_TYPES`). A record being written (live lease, write intent) is
   left to its write; one the platform deleted or voided (``applied_op`` ``delete`` / ``void``: its
   object is deleted, voided or inactive in QuickBooks too) is not compared, nor counted in balances.
2. **QuickBooks, in batches.** The linked objects are read per entity with ``select * from <Entity> where
   Id in (...)`` of up to 100 ids (:func:`qbsync.inbound.reads.read_by_ids`), through the realm's paced
   client: every query takes a slot of the realm's budget; never one read per record. The queries are
   O(records / 100) (+ one per entity type present).
3. **Comparison** (:func:`qbsync.reconcile.compare.compare`, pure): missing, edited, amount and
   paid-status mismatches, per-client balance differences, was/now to the cent. The platform's side counts
   the payments recorded in QuickBooks that qbsync delivered to the platform (the realm's ``INPAY#`` items
   in ``announced``, one Query); one not delivered yet (``announcing``) or refused (``rejected``) is named in
   ``explained_by`` of the difference it makes (``qbo_payment#{realm_id}:{qbo_payment_id}``).
4. **Findings of a record's own data** (missing, edited, amount) are error-center entries, ONE per record:
   a synced record becomes ``failed`` with the finding's code through the same path as a change reported
   by a webhook (:meth:`qbsync.inbound.drift.SyncedRecordChanges.raise_drift`: missing = link removed,
   the push creates a new object; edited / amount = QuickBooks' SyncToken kept, ``epoch`` + 1), so the
   error center's Resync, Unlink, Accept and Relink fix it. A record that already carries its drift error
   is listed with that entry, never raised again (not new), unless its object is now missing: the entry
   becomes ``missing_in_quickbooks`` and the link goes (so its Resync creates the object). A record with a
   drift error whose object matches again (undone in QuickBooks) settles (``matched_again``).
5. **Derived findings** (paid status, client balance) are in the report only (marking an account failed
   would hold back its records); they name the findings that explain them. For the clients whose balance
   differs, what QuickBooks alone holds for them is read, one ``CustomerRef in (...)`` query per entity per
   100 such customers, and each is named in its client's ``explained_by``: payments applied to no invoice
   (customer credits: never announced, PRODUCT.md D.3; ``qbo_payment#{realm_id}:{qbo_payment_id}``), credit
   memos (``qbo_credit_memo#{realm_id}:{id}``) and open invoices (``qbo_invoice#{realm_id}:{id}``) entered
   in QuickBooks (without qbsync's marker, linked by no record).
6. **Stored and announced.** The report is stored (``DriftReportRepository``, read by ``GET /drift``);
   "Drift Detected" is published once when the report has a NEW difference: a record kind raised by this
   run, or a derived finding the previous report did not have. The same data twice: no event, no entry.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from qbsync import vocab
from qbsync.auth import Caller, require_role
from qbsync.connection.clients import RealmClients
from qbsync.errors import Conflict, RetryableError
from qbsync.inbound.differences import Difference, explain_edit, explain_missing, on_sales_item
from qbsync.inbound.drift import COMPARED_TYPES, DRIFT_CODES, QuickBooksChanged, SyncedRecordChanges
from qbsync.inbound.payments import allocations_of, error_platform_id
from qbsync.inbound.reads import IDS_PER_QUERY, read_by_ids
from qbsync.models.qbsync_events import DriftDetected, DriftDifference, DriftFinding, PaymentReceivedInQbo
from qbsync.models.record_key import note_of, parse_marker
from qbsync.qbo.client import quote_literal
from qbsync.reconcile.compare import (
    BALANCE_MISMATCH,
    DERIVED_KINDS,
    MISSING,
    QBO_CREDIT_MEMO,
    QBO_INVOICE,
    QBO_PAYMENT,
    Compared,
    Finding,
    FromQuickBooks,
    compare,
    money,
)
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.drift_reports import DriftReportRepository
from qbsync.repositories.error_log import ErrorLogRepository
from qbsync.repositories.inbound_payments import ANNOUNCED, ANNOUNCING, REJECTED, PaymentState
from qbsync.repositories.record_admin import RecordAdmin
from qbsync.repositories.records import FAILED, SYNCED, SyncRecord

__all__ = [
    "DriftReport",
    "DriftReportStep",
    "DriftReports",
    "finding_item",
    "from_quickbooks",
    "report_id_of",
]

logger = logging.getLogger("qbsync.reconcile.report")

_ROLES = ("owner", "admin")
_EVENT_FINDINGS = 50
_ZERO = Decimal("0.00")


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


class PaymentsFromQuickBooks(Protocol):
    """``qbsync.repositories.inbound_payments.InboundPayments``."""

    def of_realm(self, firm_id: str, realm_id: str) -> list[PaymentState]: ...


def report_id_of(ran_at: float) -> str:
    """The report's id: its UTC time, fixed width (``20261207T153000123456Z``), so ids sort by time."""
    return datetime.fromtimestamp(ran_at, UTC).strftime("%Y%m%dT%H%M%S%fZ")


@dataclass
class DriftReport:
    """One run: ``status`` ``done`` | ``not_connected``; the findings; what it read."""

    firm_id: str
    status: str = "done"
    realm_id: str | None = None
    report_id: str | None = None
    ran_at: float | None = None
    findings: list[Finding] = field(default_factory=list)
    records_compared: int = 0
    qbo_queries: int = 0

    @property
    def new(self) -> list[Finding]:
        return [f for f in self.findings if f.new]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for f in self.findings:
            out[f.kind] += 1
        return dict(out)


class DriftReports:
    """Runs and reads drift reports (see the module doc).

    Args:
        connections, realm_clients: the firm's connection and its realm's paced QBO client.
        admin: the records with their platform data; ``drift``: raises / settles a record's drift error.
        errorlog: the error center (a record's open entry); ``reports``: the stored reports.
        publisher: qbsync events; ``clock``: epoch seconds.
        inbound_payments: the payments recorded in QuickBooks qbsync forwards to the platform.
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        connections: Connections,
        realm_clients: RealmClients,
        admin: RecordAdmin,
        drift: SyncedRecordChanges,
        errorlog: ErrorLogRepository,
        reports: DriftReportRepository,
        publisher: Publisher,
        clock: Callable[[], float],
        inbound_payments: PaymentsFromQuickBooks,
    ) -> None:
        self._connections = connections
        self._realm_clients = realm_clients
        self._admin = admin
        self._drift = drift
        self._errorlog = errorlog
        self._reports = reports
        self._publisher = publisher
        self._clock = clock
        self._inbound_payments = inbound_payments

    # ------------------------------------------------------------------ API

    def run_for(self, caller: Caller) -> DriftReport:
        """``POST /drift/run``: the caller's firm, now (owner/admin). Raises Forbidden; Conflict when
        QuickBooks is not connected."""
        require_role(caller, *_ROLES)
        report = self.run(caller.firm_id)
        if report.status != "done":
            raise Conflict("QuickBooks is not connected; connect it first")
        return report

    def latest_for(self, caller: Caller) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """``GET /drift``: the newest stored report of the caller's firm's connected company (owner/admin),
        None when there is none. Raises Forbidden; Conflict when QuickBooks is not connected."""
        require_role(caller, *_ROLES)
        connection = self._connections.get(caller.firm_id)
        if connection is None or connection.status != CONNECTED:
            raise Conflict("QuickBooks is not connected; connect it first")
        return self._reports.latest(caller.firm_id, connection.realm_id)

    # ------------------------------------------------------------------ the run

    def run(self, firm_id: str) -> DriftReport:
        """Compare the firm's synced records with QuickBooks, raise the new record errors, store the report
        and announce what is new. Raises what QuickBooks raises (retryable: run it again; the run is
        idempotent)."""
        report = DriftReport(firm_id)
        connection = self._connections.get(firm_id)
        if connection is None or connection.status != CONNECTED:
            report.status = "not_connected"
            logger.info("drift report skipped: not connected", extra={"firm_id": firm_id})
            return report
        realm_id = connection.realm_id
        now = self._clock()
        report.realm_id, report.ran_at, report.report_id = realm_id, now, report_id_of(now)
        records = self._compared_records(firm_id, realm_id, now)
        objects = self._read(firm_id, realm_id, records, report)
        rows = [_row(record, data, objects) for record, data in records.values()]
        report.records_compared = len(rows)
        previous = self._previous(firm_id, realm_id)
        from_qbo = [p for p in map(from_quickbooks, self._inbound_payments.of_realm(firm_id, realm_id)) if p]
        findings = compare(rows, from_qbo)
        qbo_only = self._qbo_only(firm_id, realm_id, findings, records, from_qbo, report)
        if qbo_only:
            findings = compare(rows, [*from_qbo, *qbo_only])
        for finding in findings:
            record, data = records[(finding.entity_type, finding.platform_id)]
            report.findings.append(self._settle_finding(finding, record, data, objects, previous))
        flagged = {(f.entity_type, f.platform_id) for f in report.findings}
        for key, (record, _) in records.items():
            if key not in flagged and _drifted(record) and record.qbo_id is not None:
                self._matched_again(record, objects)
        self._store(report)
        self._announce(report)
        logger.info(
            "drift report done",
            extra={
                "firm_id": firm_id,
                "realm_id": realm_id,
                "records": report.records_compared,
                "qbo_queries": report.qbo_queries,
                "counts": report.counts(),
                "new": len(report.new),
            },
        )
        return report

    # ------------------------------------------------------------------ steps

    def _compared_records(
        self, firm_id: str, realm_id: str, now: float
    ) -> dict[tuple[str, str], tuple[SyncRecord, dict[str, Any]]]:
        out = {}
        for record, data in self._admin.with_data(firm_id, realm_id):
            if record.entity_type not in COMPARED_TYPES or not data:
                continue
            if record.lease_live(now) or record.intent is not None:
                continue  # being written: its write decides
            if record.applied_op in vocab.REMOVING_OPERATIONS:
                continue  # deleted / voided on the platform: QuickBooks has it removed (or inactive) too
            if (record.status == SYNCED and record.qbo_id) or _drifted(record):
                out[(record.entity_type, record.platform_id)] = (record, data)
        return out

    def _read(
        self,
        firm_id: str,
        realm_id: str,
        records: Mapping[tuple[str, str], tuple[SyncRecord, dict[str, Any]]],
        report: DriftReport,
    ) -> dict[tuple[str, str], dict[str, Any]]:
        ids: dict[str, set[str]] = defaultdict(set)
        for record, _ in records.values():
            if record.qbo_entity and record.qbo_id:
                ids[record.qbo_entity].add(record.qbo_id)
        if not ids:
            return {}
        qbo = self._realm_clients.qbo_for(firm_id, realm_id)
        objects: dict[tuple[str, str], dict[str, Any]] = {}
        for entity in sorted(ids):
            found, queries = read_by_ids(qbo, entity, ids[entity])
            report.qbo_queries += queries
            objects.update({(entity, qbo_id): obj for qbo_id, obj in found.items()})
        return objects

    def _qbo_only(
        self,
        firm_id: str,
        realm_id: str,
        findings: Iterable[Finding],
        records: Mapping[tuple[str, str], tuple[SyncRecord, dict[str, Any]]],
        known: Iterable[FromQuickBooks],
        report: DriftReport,
    ) -> list[FromQuickBooks]:
        """What QuickBooks alone holds for the clients whose balance differs, each named in its client's
        ``balance_mismatch.explained_by`` (nothing to fix there, so no error-center entry): customer credits
        (payments applied to no invoice: never announced, a credit is not a payment of an invoice, PRODUCT.md
        D.3), credit memos and invoices entered in QuickBooks (qbsync writes neither for these clients:
        they carry no qbsync marker and no record links them). One query per entity per 100 such customers
        (``CustomerRef in (...)``), none when no balance differs."""
        customers = {
            record.qbo_id: record.platform_id
            for f in findings
            if f.kind == BALANCE_MISMATCH
            for record, _ in [records[(f.entity_type, f.platform_id)]]
            if record.qbo_id
        }
        if not customers:
            return []
        ours: dict[str, set[str]] = defaultdict(set)
        for record, _ in records.values():
            if record.qbo_entity and record.qbo_id:
                ours[record.qbo_entity].add(record.qbo_id)
        ours["Payment"] |= {p.qbo_payment_id for p in known}
        qbo = self._realm_clients.qbo_for(firm_id, realm_id)
        wanted = sorted(customers)
        found: list[FromQuickBooks] = []
        for entity, kind in _QBO_ONLY:
            for start in range(0, len(wanted), IDS_PER_QUERY):
                chunk = ", ".join(quote_literal(i) for i in wanted[start : start + IDS_PER_QUERY])
                report.qbo_queries += 1
                statement = f"select * from {entity} where CustomerRef in ({chunk}) MAXRESULTS 1000"  # noqa: S608 - ids quoted, entity ours
                for obj in qbo.query(statement):
                    qbo_id = str(obj.get("Id"))
                    customer = (obj.get("CustomerRef") or {}).get("value")
                    if qbo_id in ours[entity] or customer not in customers or _marked(entity, obj):
                        continue
                    credit = _balance_moved(entity, obj)
                    if credit is None:
                        continue
                    found.append(
                        FromQuickBooks(
                            qbo_payment_id=qbo_id,
                            ref=error_platform_id(realm_id, qbo_id),
                            delivered=False,
                            account_id=customers[customer],
                            unapplied=credit,
                            kind=kind,
                        )
                    )
        return found

    def _previous(self, firm_id: str, realm_id: str) -> set[str]:
        """The fingerprints of the last report's derived findings."""
        stored = self._reports.latest(firm_id, realm_id)
        if stored is None:
            return set()
        return {str(f.get("fingerprint")) for f in stored[1] if f.get("kind") in DERIVED_KINDS}

    def _settle_finding(
        self,
        finding: Finding,
        record: SyncRecord,
        data: Mapping[str, Any],
        objects: Mapping[tuple[str, str], Mapping[str, Any]],
        previous: set[str],
    ) -> Finding:
        """The finding with its error entry (record kinds: raised when the record has none) and ``new``."""
        if finding.kind in DERIVED_KINDS:
            return _with(finding, new=finding.fingerprint not in previous)
        if _drifted(record) and not (finding.kind == MISSING and record.qbo_id is not None):
            entry = self._errorlog.current(record.firm_id, record.entity_type, record.platform_id)
            return _with(finding, error_id=entry.error_id if entry else None)
        # a synced record newly drifted, or a drifted one whose object is now gone (its open error is
        # updated to missing and the link removed, so its Resync creates the object instead of updating it)
        obj = objects.get((record.qbo_entity or "", record.qbo_id or ""))
        if finding.kind == MISSING:
            explanation = explain_missing(
                record.entity_type, data, record.qbo_entity or "", record.qbo_id or ""
            )
        else:
            explanation = explain_edit(record.entity_type, data, finding.differences)
        err = QuickBooksChanged(record, finding.kind, explanation, finding.differences)
        token = obj.get("SyncToken") if obj else None
        try:
            entry = self._drift.raise_drift(
                record,
                err,
                deleted=finding.kind == MISSING,
                sync_token=None if token is None else str(token),
            )
        except RetryableError:
            # the record changed between the read and the raise: the next report compares it again
            logger.info("record changed during the drift report; left for the next one", extra=_ctx(record))
            return finding
        return _with(finding, error_id=entry.error_id, new=entry.is_new and not _drifted(record))

    def _matched_again(
        self, record: SyncRecord, objects: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> None:
        obj = objects.get((record.qbo_entity or "", record.qbo_id or ""))
        if obj is None:
            return
        token = obj.get("SyncToken")
        try:
            self._drift.settle(record, None if token is None else str(token), drifted=True)
        except RetryableError:
            logger.info("record changed during the drift report; left for the next one", extra=_ctx(record))

    def _store(self, report: DriftReport) -> None:
        header = {
            "firm_id": report.firm_id,
            "realm_id": report.realm_id,
            "report_id": report.report_id,
            "ran_at": report.ran_at,
            "records_compared": report.records_compared,
            "qbo_queries": report.qbo_queries,
            "counts": report.counts(),
            "new_count": len(report.new),
            "finding_count": len(report.findings),
        }
        self._reports.save(header, [finding_item(f) for f in report.findings])

    def _announce(self, report: DriftReport) -> None:
        new = report.new
        if not new or report.realm_id is None or report.report_id is None:
            return
        self._publisher.publish(
            [
                DriftDetected(
                    firm_id=report.firm_id,
                    correlation_id=report.report_id,
                    realm_id=report.realm_id,
                    report_id=report.report_id,
                    new_count=len(new),
                    open_count=len(report.findings),
                    new_findings=[_event_finding(f) for f in new[:_EVENT_FINDINGS]],
                )
            ]
        )


class _Firm(Protocol):
    firm_id: str


class DriftReportStep:
    """The drift report as a step of the scheduled resync (h-resync's ``qbsync.reconcile.resync.Step``:
    ``name`` and ``run(firm) -> counts``; ``firm`` is its ``FirmRun``, only ``firm_id`` is read)."""

    name = "drift_report"

    def __init__(self, reports: DriftReports) -> None:
        self._reports = reports

    def run(self, firm: _Firm) -> dict[str, Any]:
        report = self._reports.run(firm.firm_id)
        return {
            "status": report.status,
            "records": report.records_compared,
            "qbo_queries": report.qbo_queries,
            "findings": len(report.findings),
            "new": len(report.new),
        }


#: what QuickBooks alone holds that moves a client's balance there: (entity, ``explained_by`` type)
_QBO_ONLY = (("Payment", QBO_PAYMENT), ("CreditMemo", QBO_CREDIT_MEMO), ("Invoice", QBO_INVOICE))


def _marked(entity: str, obj: dict[str, Any]) -> bool:
    """Whether the object carries qbsync's marker (one of ours, even when no compared record links it)."""
    return parse_marker(note_of(entity, obj)) is not None


def _balance_moved(entity: str, obj: Mapping[str, Any]) -> Decimal | None:
    """What the QuickBooks-only object leaves on the customer's balance, or None when it leaves nothing: a
    payment's credit applied to no invoice (``UnappliedAmt``; a payment of invoices is read by the inbound
    sync), a credit memo's total, an invoice's open balance."""
    if entity == "Payment":
        unapplied = money(obj.get("UnappliedAmt")) or _ZERO
        return unapplied if unapplied > 0 and not allocations_of(obj) else None
    amount = money(obj.get("TotalAmt" if entity == "CreditMemo" else "Balance")) or _ZERO
    return amount if amount > 0 else None


def _drifted(record: SyncRecord) -> bool:
    return record.status == FAILED and record.error is not None and record.error.code in DRIFT_CODES


def _row(
    record: SyncRecord, data: dict[str, Any], objects: Mapping[tuple[str, str], Mapping[str, Any]]
) -> Compared:
    obj = objects.get((record.qbo_entity, record.qbo_id)) if record.qbo_entity and record.qbo_id else None
    return Compared(
        entity_type=record.entity_type,
        platform_id=record.platform_id,
        data=data,
        obj=obj,
        qbo_entity=record.qbo_entity if record.qbo_id else None,
        qbo_id=record.qbo_id,
        drift_code=record.error.code if _drifted(record) and record.error else None,
        sales_item=on_sales_item(record.entity_type, record.note),
    )


def from_quickbooks(state: PaymentState) -> FromQuickBooks | None:
    """A payment recorded in QuickBooks as the comparison counts it: ``announced`` is delivered (its
    allocations and unapplied amount as announced); ``announcing`` (events not confirmed published) and
    ``rejected`` (an error-center entry) only explain; withdrawn / ignored ones hold nothing."""
    if state.state not in (ANNOUNCED, ANNOUNCING, REJECTED):
        return None
    received = next(
        (
            e.get("detail")
            for e in state.events
            if e.get("detail_type") == PaymentReceivedInQbo.DETAIL_TYPE and isinstance(e.get("detail"), dict)
        ),
        None,
    )
    allocations: dict[str, Decimal] = defaultdict(lambda: _ZERO)
    for alloc in (received or {}).get("allocations") or ():
        if isinstance(alloc, Mapping) and isinstance(alloc.get("invoice_id"), str):
            allocations[alloc["invoice_id"]] += money(alloc.get("amount")) or _ZERO
    account = (received or {}).get("account_id")
    return FromQuickBooks(
        qbo_payment_id=state.qbo_payment_id,
        ref=error_platform_id(state.realm_id, state.qbo_payment_id),
        delivered=state.state == ANNOUNCED and received is not None,
        account_id=account if isinstance(account, str) and account != "unknown" else None,
        allocations=dict(allocations),
        unapplied=money((received or {}).get("unapplied_amount")) or _ZERO,
    )


def _with(finding: Finding, **changes: Any) -> Finding:
    return replace(finding, **changes)


def _difference_item(d: Difference) -> dict[str, Any]:
    return {"field": d.field, "was": d.was, "now": d.now}


def finding_item(f: Finding) -> dict[str, Any]:
    """A finding as stored and shown (``GET /drift``)."""
    return {
        "kind": f.kind,
        "entity_type": f.entity_type,
        "platform_id": f.platform_id,
        "qbo_entity": f.qbo_entity,
        "qbo_id": f.qbo_id,
        "differences": [_difference_item(d) for d in f.differences],
        "explained_by": [f"{t}#{p}" for t, p in f.explained_by],
        "error_id": f.error_id,
        "new": f.new,
        "actions": list(f.actions),
        "fingerprint": f.fingerprint,
    }


def _event_finding(f: Finding) -> DriftFinding:
    return DriftFinding(
        kind=f.kind,  # type: ignore[arg-type]
        entity_type=vocab.EVENT_ENTITY_OF[f.entity_type],
        platform_id=f.platform_id,
        qbo_id=f.qbo_id,
        differences=[DriftDifference(field=d.field, was=d.was, now=d.now) for d in f.differences[:50]],
        error_id=f.error_id,
        actions=list(f.actions),  # type: ignore[arg-type]
    )


def _ctx(record: SyncRecord) -> dict[str, Any]:
    return {
        "firm_id": record.firm_id,
        "entity_type": record.entity_type,
        "platform_id": record.platform_id,
        "qbo_id": record.qbo_id,
    }
