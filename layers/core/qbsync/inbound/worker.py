"""The inbound worker: the ``InboundQueue`` notices of one realm → the current objects → the processor.

:meth:`InboundWorker.handle` takes every notice of one SQS batch that names ``realm_id``
(``functions/inbound_worker`` groups the batch by realm) and:

1. **proves realm → firm** through the verified connection: the realm's owner
   (:meth:`~qbsync.repositories.connections.ConnectionsRepository.firm_of_realm`) AND that firm's own
   connection is to that very realm and ``connected``. A realm no connection holds is logged and dropped
   (``realm_unknown``), never guessed; a firm that holds it but is not connected (needs reconnect) is
   dropped too (``not_connected``): nothing can be read, and the CDC catch-up reads what changed since its
   watermark once the firm is connected again.
2. **collapses** the notices' changes to one per ``(entity, id)``, the newest operation
   (:func:`~qbsync.inbound.changes.collapse`); entities qbsync neither writes nor receives
   (:data:`~qbsync.inbound.processor.SUPPORTED_ENTITIES`) are dropped here, unread.
3. **reads the current objects in batch**: one ``select * from <Entity> where Id in (...)`` per entity
   type (:func:`~qbsync.inbound.reads.read_by_ids`: 100 ids a query; name lists also ask for inactive
   rows), through the realm's paced client (:class:`~qbsync.connection.clients.RealmClients`), so every
   read takes a slot of the realm's shared request budget (:mod:`qbsync.qbo.ratelimit`) - never one read
   per object. An object the query does not return is deleted (``body`` ``None``).
4. hands the :class:`~qbsync.inbound.changes.ChangedObject` s to
   :meth:`~qbsync.inbound.processor.InboundProcessor.process`.

Errors: what the connection, the QBO client or the processor raise (``Throttled``, ``ServiceUnavailable``,
``ReconnectRequired`` ...) propagate; the handler reports the realm's messages as batch-item failures
and SQS delivers them again (every step is idempotent per object version).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qbsync.connection.clients import RealmClients
from qbsync.inbound.changes import DELETE, ChangedObject, collapse
from qbsync.inbound.processor import SUPPORTED_ENTITIES, InboundProcessor, ProcessReport
from qbsync.inbound.reads import read_by_ids
from qbsync.models.messages import EntityChange, InboundNotice
from qbsync.qbo.client import QboClient
from qbsync.repositories.connections import CONNECTED, Connection

__all__ = ["ConnectionReader", "InboundWorker", "RealmOutcome", "read_current"]

logger = logging.getLogger("qbsync.inbound.worker")


class ConnectionReader(Protocol):
    def firm_of_realm(self, realm_id: str) -> str | None: ...

    def get(self, firm_id: str) -> Connection | None: ...


@dataclass
class RealmOutcome:
    """What :meth:`InboundWorker.handle` did with one realm's notices."""

    realm_id: str
    firm_id: str | None
    #: ``processed``, or why nothing was read: ``realm_unknown``, ``not_connected``, ``nothing_supported``
    status: str
    changes: int = 0
    objects: int = 0
    reads: int = 0
    report: ProcessReport = field(default_factory=ProcessReport)


class InboundWorker:
    """See the module doc.

    Args:
        connections: the connection items (``ConnectionsRepository``).
        realm_clients: a paced QuickBooks client of a firm's realm.
        processor: routes the objects read.
    """

    def __init__(
        self, *, connections: ConnectionReader, realm_clients: RealmClients, processor: InboundProcessor
    ) -> None:
        self._connections = connections
        self._clients = realm_clients
        self.processor = processor

    def firm_of(self, realm_id: str) -> tuple[str | None, str]:
        """``(firm_id, "processed")`` when a connected firm's connection holds ``realm_id``; else
        ``(firm_id | None, reason)``."""
        firm_id = self._connections.firm_of_realm(realm_id)
        if firm_id is None:
            return None, "realm_unknown"
        connection = self._connections.get(firm_id)
        if connection is None or connection.realm_id != realm_id:
            return None, "realm_unknown"  # the owner item and the firm's connection disagree: never guess
        if connection.status != CONNECTED:
            return firm_id, "not_connected"
        return firm_id, "processed"

    def handle(self, realm_id: str, notices: Sequence[InboundNotice]) -> RealmOutcome:
        changes = [c for n in notices if n.realm_id == realm_id for c in n.changes]
        firm_id, status = self.firm_of(realm_id)
        outcome = RealmOutcome(realm_id, firm_id, status, changes=len(changes))
        if status != "processed" or firm_id is None:
            logger.warning(
                "inbound notices dropped",
                extra={"realm_id": realm_id, "firm_id": firm_id, "reason": status, "changes": len(changes)},
            )
            return outcome
        wanted = [c for c in collapse(changes).values() if c.entity in SUPPORTED_ENTITIES]
        if not wanted:
            outcome.status = "nothing_supported"
            return outcome
        qbo = self._clients.qbo_for(firm_id, realm_id)
        objects, outcome.reads = read_current(qbo, wanted)
        outcome.objects = len(objects)
        outcome.report = self.processor.process(firm_id, realm_id, objects)
        return outcome


def read_current(qbo: QboClient, changes: Sequence[EntityChange]) -> tuple[list[ChangedObject], int]:
    """The current object of every change (``body`` None when QuickBooks no longer has it), and the
    number of queries it took (:func:`~qbsync.inbound.reads.read_by_ids`: one per entity type)."""
    by_entity: dict[str, list[EntityChange]] = {}
    for change in changes:
        by_entity.setdefault(change.entity, []).append(change)
    out: list[ChangedObject] = []
    reads = 0
    for entity, group in by_entity.items():
        found, queries = read_by_ids(qbo, entity, (c.qbo_id for c in group))
        reads += queries
        for change in group:
            body = found.get(change.qbo_id)
            operation = change.operation if body is not None else DELETE
            out.append(ChangedObject(entity, change.qbo_id, operation, body))
    return out, reads
