"""CDC catch-up of one connected firm from its stored watermark (PRODUCT.md D.5, issue 14 item 5).

:meth:`CdcCatchUp.run` reads what changed in the firm's QuickBooks company since the realm's watermark
(:class:`~qbsync.repositories.watermarks.WatermarkRepository`, one cursor per entity) and hands it to the
same :class:`~qbsync.inbound.processor.InboundProcessor` the webhook worker uses, so a webhook that never
arrived is caught here, and a change both report is processed once (the processor drops what is already
handled: echoes by SyncToken; the drift handler updates the same error).

Per entity of :data:`CDC_ENTITIES`, through the realm's paced QBO client (the realm's shared budget):

1. ``changedSince`` = the entity's cursor minus :data:`OVERLAP_SECONDS` (QBO.md §2.10: the server's
   response time, minus a small overlap). CDC is asked one entity at a time, so the 1,000-object cap of a
   response is the cap of that entity.
2. **Paging past 1,000.** A capped response (1,000 objects) is processed, the cursor moves to the last
   object's ``LastUpdatedTime`` and the entity is asked again from exactly that second: objects of that
   second come again (harmless), none is skipped. Deleted stubs come after the current objects; a
   response cut inside the current objects may leave out deletions dated before the cut, so once the
   entity's paging ends such an entity is also compared in full (step 4) - only then is a deletion never
   missed. More than 1,000 changes within one second (a bulk import) cannot be paged by time: that
   second's current objects are read with a query on ``MetaData.LastUpdatedTime`` (paged by position),
   its deletions by the full comparison, and CDC goes on from the next second.
3. **Watermark after processing.** A cursor advances only after the page it covers went through the
   processor (conditional write: never backwards, so two runs at once are safe). A crash or an error
   mid-page (a record being written: ``LeaseHeld``) leaves the cursor where it was; the next run - the
   message's redelivery - reads the same changes again.
4. **Full comparison** when an entity has no cursor yet (a new connection, before any catch-up) or CDC
   refuses its cursor as older than 30 days (fault 4001): every record of the realm linked to an object
   of that entity (``RecordAdmin.linked``, one Query) is read back from QuickBooks in batch queries of at
   most :data:`IDS_PER_QUERY` ids (``select * from Invoice where Id in (...)``; name lists with
   ``Active IN (true, false)``), never one read per record; an object a query does not return is a
   deletion. The cursor then starts at the server time of the comparison's first answer.

Runs on the schedule (``CdcCatchUpFunction``'s fan-out, one message per connected firm) and on demand
(``POST /sync/catch-up``); both send a :class:`~qbsync.models.messages.CatchUpRequest`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from qbsync.adapters.sqs import SqsMessage
from qbsync.auth import Caller, require_role
from qbsync.connection.clients import RealmClients
from qbsync.errors import Conflict, DataError, ServiceUnavailable
from qbsync.inbound.changes import DELETE, ChangedObject
from qbsync.models.messages import CatchUpRequest
from qbsync.qbo.client import CDC_MAX_OBJECTS, QboClient, quote_literal
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.record_admin import RecordAdmin
from qbsync.repositories.watermarks import WatermarkRepository

__all__ = [
    "CDC_ENTITIES",
    "IDS_PER_QUERY",
    "MAX_DELAY_SECONDS",
    "OVERLAP_SECONDS",
    "SECONDS_PER_FIRM",
    "CatchUpReport",
    "CatchUpRequests",
    "CdcCatchUp",
]

logger = logging.getLogger("qbsync.inbound.catchup")

#: the QuickBooks entities qbsync writes (the processor's supported entities), in CDC order
CDC_ENTITIES = ("Customer", "Item", "Invoice", "Payment", "CreditMemo", "RefundReceipt", "Purchase")
#: subtracted from a cursor when asking CDC (clock skew, objects stamped while the answer was built)
OVERLAP_SECONDS = 60.0
#: ids per batch query of a full comparison
IDS_PER_QUERY = 30
_NAME_LISTS = ("Customer", "Item")
#: the scheduled fan-out starts one firm's run every this many seconds (SQS DelaySeconds, at most 900)
SECONDS_PER_FIRM = 0.5
MAX_DELAY_SECONDS = 900
#: QBO fault: changedSince more than 30 days in the past
_TOO_OLD = "4001"


class Processor(Protocol):
    """``qbsync.inbound.processor.InboundProcessor``."""

    def process(self, firm_id: str, realm_id: str, objects: Sequence[ChangedObject]) -> Any: ...


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


@dataclass
class CatchUpReport:
    """What one run did: ``status`` ``done`` | ``not_connected``; objects read per entity; CDC pages;
    the entities compared in full."""

    firm_id: str
    status: str = "done"
    realm_id: str | None = None
    objects: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    full: list[str] = field(default_factory=list)


class CdcCatchUp:
    """One firm's CDC catch-up (see the module doc).

    Args:
        connections: the firm's connection (realm; only ``connected`` firms are read).
        realm_clients: the realm's paced QBO client.
        watermarks: the realm's cursors; ``linked``: the realm's linked records (full comparison).
        processor: the inbound processor; ``clock``: epoch seconds (``updated_at`` only).
    """

    def __init__(
        self,
        *,
        connections: Connections,
        realm_clients: RealmClients,
        watermarks: WatermarkRepository,
        linked: RecordAdmin,
        processor: Processor,
        clock: Callable[[], float],
    ) -> None:
        self._connections = connections
        self._realm_clients = realm_clients
        self._watermarks = watermarks
        self._linked = linked
        self._processor = processor
        self._clock = clock

    def run(self, firm_id: str) -> CatchUpReport:
        """Catch the firm up. Raises what QuickBooks or the processor raise (retryable ones: the message
        is redelivered and the run resumes from the cursors already advanced)."""
        report = CatchUpReport(firm_id)
        connection = self._connections.get(firm_id)
        if connection is None or connection.status != CONNECTED:
            report.status = "not_connected"
            logger.info("catch-up skipped: not connected", extra={"firm_id": firm_id})
            return report
        realm_id = connection.realm_id
        report.realm_id = realm_id
        qbo = self._realm_clients.qbo_for(firm_id, realm_id)
        watermark = self._watermarks.get(firm_id, realm_id)
        for entity in CDC_ENTITIES:
            cursor = watermark.of(entity)
            if cursor is None or not self._cdc(qbo, firm_id, entity, cursor, report):
                self._compare(qbo, firm_id, entity, report)
        logger.info(
            "catch-up done",
            extra={"firm_id": firm_id, "realm_id": realm_id, "pages": report.pages, "full": report.full},
        )
        return report

    # ------------------------------------------------------------------ CDC

    def _cdc(self, qbo: QboClient, firm_id: str, entity: str, cursor: float, report: CatchUpReport) -> bool:
        """Page through the entity's changes since ``cursor``. False: CDC refused the cursor as older than
        30 days, or a page was cut before its deletions (compare in full)."""
        since = _at(cursor - OVERLAP_SECONDS)
        cut_before_deletions = False
        while True:
            try:
                result = qbo.cdc([entity], since)
            except DataError as err:
                if err.qbo_code == _TOO_OLD:
                    logger.info("watermark older than 30 days: full comparison", extra={"entity": entity})
                    return False
                raise
            rows = result.changed.get(entity, [])
            gone = result.deleted.get(entity, [])
            self._process(firm_id, qbo.realm_id, entity, rows, gone, report)
            report.pages += 1
            if not result.capped:
                self._advance(firm_id, qbo.realm_id, entity, result.time)
                return not cut_before_deletions
            last = _last_updated(gone or rows)
            if last is None:
                raise ServiceUnavailable(
                    "QuickBooks answered CDC without LastUpdatedTime", realm_id=qbo.realm_id
                )
            cut_before_deletions = cut_before_deletions or not gone
            if last <= since:
                # more than 1,000 changes within one second: CDC cannot page inside it; that second's
                # current objects are read with a query (paged by position), its deletions by the full
                # comparison that follows, and CDC goes on from the next second
                self._one_second(qbo, firm_id, entity, since, report)
                cut_before_deletions = True
                last = since + timedelta(seconds=1)
            self._advance(firm_id, qbo.realm_id, entity, last)
            since = last

    def _one_second(
        self, qbo: QboClient, firm_id: str, entity: str, second: datetime, report: CatchUpReport
    ) -> None:
        start = second.replace(microsecond=0)
        until = start + timedelta(seconds=1)
        active = " AND Active IN (true, false)" if entity in _NAME_LISTS else ""
        statement = (
            f"select * from {entity} where MetaData.LastUpdatedTime >= {quote_literal(start.isoformat())} "  # noqa: S608
            f"AND MetaData.LastUpdatedTime < {quote_literal(until.isoformat())}{active} ORDERBY Id"
        )
        page: list[dict[str, Any]] = []
        for row in qbo.query_all(statement):
            page.append(row)
            if len(page) == CDC_MAX_OBJECTS:
                self._process(firm_id, qbo.realm_id, entity, page, [], report)
                page = []
        self._process(firm_id, qbo.realm_id, entity, page, [], report)

    def _process(
        self,
        firm_id: str,
        realm_id: str,
        entity: str,
        rows: Sequence[dict[str, Any]],
        gone: Sequence[dict[str, Any]],
        report: CatchUpReport,
    ) -> None:
        objects = [ChangedObject(entity, str(r["Id"]), "Update", r) for r in rows if r.get("Id")]
        objects += [ChangedObject(entity, str(r["Id"]), DELETE, None) for r in gone if r.get("Id")]
        if objects:
            self._processor.process(firm_id, realm_id, objects)
        report.objects[entity] = report.objects.get(entity, 0) + len(objects)

    def _advance(self, firm_id: str, realm_id: str, entity: str, at: datetime) -> None:
        self._watermarks.advance(firm_id, realm_id, entity, at.timestamp(), now=self._clock())

    # ------------------------------------------------------------------ full comparison

    def _compare(self, qbo: QboClient, firm_id: str, entity: str, report: CatchUpReport) -> None:
        """Read every linked record's object of ``entity`` back in batch queries and process them; the
        cursor then starts at the server time of the first answer (read before any object)."""
        realm_id = qbo.realm_id
        ids = sorted(
            {r.qbo_id for r in self._linked.linked(firm_id, realm_id) if r.qbo_entity == entity and r.qbo_id}
        )
        started: datetime | None = None
        for chunk in _chunks(ids, IDS_PER_QUERY):
            rows, at = qbo.query_timed(_by_ids(entity, chunk))
            started = started or at
            found = {str(r.get("Id")): r for r in rows if r.get("Id")}
            missing = [{"Id": i} for i in chunk if i not in found]
            self._process(firm_id, realm_id, entity, list(found.values()), missing, report)
        if started is None:
            _, started = qbo.query_timed(f"select * from {entity} MAXRESULTS 1")  # noqa: S608 - a known entity
        if started is None:
            raise ServiceUnavailable("QuickBooks answered without its time", realm_id=realm_id)
        self._advance(firm_id, realm_id, entity, started)
        self._watermarks.note_full(firm_id, realm_id, at=started.timestamp())
        report.full.append(entity)
        logger.info("full comparison", extra={"firm_id": firm_id, "entity": entity, "records": len(ids)})


def _by_ids(entity: str, ids: Sequence[str]) -> str:
    listed = ", ".join(quote_literal(i) for i in ids)
    active = " AND Active IN (true, false)" if entity in _NAME_LISTS else ""
    return f"select * from {entity} where Id in ({listed}){active} MAXRESULTS {len(ids)}"  # noqa: S608 - quoted


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _last_updated(rows: Sequence[dict[str, Any]]) -> datetime | None:
    latest: datetime | None = None
    for row in rows:
        meta = row.get("MetaData")
        text = meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
        try:
            when = datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None and (latest is None or when > latest):
            latest = when
    return latest


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


class ConnectedFirms(Protocol):
    def by_status(self, status: str) -> Iterator[Any]: ...


class CatchUpRequests:
    """Queues catch-up runs (``CatchUpQueue``): one per connected firm on the schedule, one for the
    caller's firm on demand.

    The schedule's fan-out starts one firm every :data:`SECONDS_PER_FIRM` (``DelaySeconds``; from the
    1,800th firm on, every run waits the longest delay SQS allows, :data:`MAX_DELAY_SECONDS`) so the runs,
    each paced by its realm's own budget, do not all start at once; ``CatchUpQueueEvent``'s concurrency
    (2) paces them further.

    Args:
        connections: ``ConnectionsRepository`` (``by_status``, ``get``); ``sender``: the CatchUpQueue.
    """

    def __init__(self, *, connections: Any, sender: Sender) -> None:
        self._connections = connections
        self._sender = sender

    def schedule_all(self, request_id: str) -> int:
        """One request per connected firm (gsi2 ``CONNSTATUS#connected``); returns how many were sent."""
        firms = sorted({c.firm_id for c in self._connections.by_status(CONNECTED)})
        messages = [
            SqsMessage(
                body=CatchUpRequest(firm_id=f, reason="scheduled", request_id=request_id).body(),
                id=f"f{i}",
                correlation_id=request_id,
                attributes={"firm_id": f},
                delay_seconds=min(MAX_DELAY_SECONDS, int(i * SECONDS_PER_FIRM)),
            )
            for i, f in enumerate(firms)
        ]
        if messages:
            self._sender.send_many(messages)
        logger.info("catch-up scheduled", extra={"firms": len(messages), "request_id": request_id})
        return len(messages)

    def request(self, caller: Caller, request_id: str) -> CatchUpRequest:
        """On demand, for the caller's firm (owner/admin). Raises Forbidden; Conflict when not connected."""
        require_role(caller, "owner", "admin")
        connection = self._connections.get(caller.firm_id)
        if connection is None or connection.status != CONNECTED:
            status = connection.status if connection is not None else "not connected"
            raise Conflict(f"QuickBooks is not connected ({status.replace('_', ' ')}); connect it first")
        request = CatchUpRequest(
            firm_id=caller.firm_id, reason="on_demand", request_id=request_id, requested_by=caller.user_id
        )
        self._sender.send_many(
            [
                SqsMessage(
                    body=request.body(),
                    id="catchup",
                    correlation_id=request_id,
                    attributes={"firm_id": caller.firm_id},
                )
            ]
        )
        logger.info("catch-up requested", extra={"firm_id": caller.firm_id, "request_id": request_id})
        return request
