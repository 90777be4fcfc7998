"""Copy services from QuickBooks to the platform (PRODUCT.md C.2, "copy services from QBO on request").

:meth:`ServicesImport.candidates` lists the company's active Items of type ``Service`` and ``NonInventory``
(the ones a firm bills as services) and its ``Category`` items, each with ``copyable`` and, when it is not,
a ``skip_reason``:

==========================  ==============================================================================
``category``                a Category item (a folder of items) is never copied
``name_exists``             the platform already has a service of that name (case-insensitive): known from
                            the ``last_event`` names of the realm's service records, or a service record is
                            linked to that very item
``negative_rate``           ``UnitPrice`` below zero (platform rates are never negative)
``unsupported_rate_type``   the ``Sku`` does not say ``hour`` or ``item`` - qbsync writes a service's rate
                            type into ``Sku`` (:func:`qbsync.outbound.mapping.item_payload`), so the reverse
                            rule reads it back; anything else (``flat``, empty, a real SKU) is not copied
==========================  ==============================================================================

:meth:`ServicesImport.copy` publishes one "Service Imported" event (``qbo_item_id``, name, rate, rate type,
description) per copyable id; the platform creates the service. A repeated copy of the same id is harmless:
the event carries ``qbo_item_id``, which the platform uses as its dedupe key, and when the platform then sends
"Service Created" with that name, the item sync links the service to the existing item by its exact name
(an Item name is unique in QBO) instead of creating a second one. Once that service record exists the item is
``name_exists`` and is no longer offered.

Reading: one paginated QBO query of the items, one DynamoDB Query of the realm's service records.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from qbsync.auth import Caller, require_role
from qbsync.connection.clients import RealmClients
from qbsync.errors import BadRequest, Conflict
from qbsync.models.qbsync_events import ServiceImported
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.record_admin import RecordAdmin

__all__ = [
    "COPYABLE_TYPES",
    "MAX_COPY",
    "Candidate",
    "CopyResult",
    "ServicesImport",
    "rate_type_of",
]

logger = logging.getLogger("qbsync.inbound.services_import")

#: QBO item types offered (Category is listed only to say why it is not copied)
COPYABLE_TYPES = ("Service", "NonInventory")
_LISTED_TYPES = (*COPYABLE_TYPES, "Category")
RATE_TYPES = ("hour", "item")
MAX_COPY = 100
_QBO_ID = re.compile(r"^[0-9]{1,20}$")
_NAME_MAX = 100
_DESCRIPTION_MAX = 4000


class Connections(Protocol):
    def get(self, firm_id: str) -> Connection | None: ...


class Publisher(Protocol):
    def publish(self, events: Iterable[Any]) -> Any: ...


@dataclass(frozen=True)
class Candidate:
    """One QBO item and whether it can be copied to the platform."""

    qbo_item_id: str
    name: str
    type: str
    rate: Decimal | None
    rate_type: str | None
    description: str | None
    copyable: bool
    skip_reason: str | None


@dataclass(frozen=True)
class CopyResult:
    """``outcome``: ``copied`` (event published), ``skipped`` (``skip_reason``) or ``not_found``."""

    qbo_item_id: str
    outcome: str
    skip_reason: str | None = None
    name: str | None = None


def rate_type_of(sku: Any) -> str | None:
    """The platform rate type a QBO ``Sku`` says (``hour`` / ``item``, case and spaces ignored), else None."""
    if not isinstance(sku, str):
        return None
    text = sku.strip().lower()
    return text if text in RATE_TYPES else None


def _rate(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return Decimal("0.00")
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


class ServicesImport:
    """Lists QBO items that can become platform services and publishes the copies (see the module doc).

    Args:
        connections: ``ConnectionsRepository``; ``realm_clients``: QBO clients (``RealmClients``).
        records: the records' admin reads (service names the platform has).
        publisher: qbsync events (``EventPublisher``).
    """

    def __init__(
        self,
        *,
        connections: Connections,
        realm_clients: RealmClients,
        records: RecordAdmin,
        publisher: Publisher,
    ) -> None:
        self._connections = connections
        self._realm_clients = realm_clients
        self._records = records
        self._publisher = publisher

    def candidates(self, caller: Caller) -> list[Candidate]:
        """Every active Service / NonInventory / Category item of the company, by name, with its verdict.

        Raises Conflict when QuickBooks is not connected; QBO errors propagate (retryable, reconnect).
        """
        connection = self._connection(caller)
        return self._candidates(caller.firm_id, connection.realm_id)

    def copy(self, caller: Caller, qbo_item_ids: list[str]) -> list[CopyResult]:
        """Publish "Service Imported" for each copyable id (owner/admin); one result per id, in order.

        Raises Forbidden, BadRequest (no ids, more than :data:`MAX_COPY`, an id that is not a QBO id,
        duplicates), Conflict (not connected).
        """
        require_role(caller, "owner", "admin")
        if not qbo_item_ids:
            raise BadRequest("qbo_item_ids must name at least one item")
        if len(qbo_item_ids) > MAX_COPY:
            raise BadRequest(f"qbo_item_ids may name at most {MAX_COPY} items")
        if any(not isinstance(i, str) or not _QBO_ID.match(i) for i in qbo_item_ids):
            raise BadRequest("qbo_item_ids must be QuickBooks ids (digits)")
        if len(set(qbo_item_ids)) != len(qbo_item_ids):
            raise BadRequest("qbo_item_ids must not repeat an id")
        connection = self._connection(caller)
        realm_id = connection.realm_id
        by_id = {c.qbo_item_id: c for c in self._candidates(caller.firm_id, realm_id)}
        request_id = uuid.uuid4().hex
        results: list[CopyResult] = []
        events: list[ServiceImported] = []
        for item_id in qbo_item_ids:
            candidate = by_id.get(item_id)
            if candidate is None:
                results.append(CopyResult(item_id, "not_found"))
                continue
            if not candidate.copyable:
                results.append(CopyResult(item_id, "skipped", candidate.skip_reason, candidate.name))
                continue
            assert candidate.rate is not None and candidate.rate_type is not None
            events.append(
                ServiceImported(
                    firm_id=caller.firm_id,
                    correlation_id=request_id,
                    realm_id=realm_id,
                    qbo_item_id=item_id,
                    name=candidate.name,
                    rate=candidate.rate,
                    rate_type=candidate.rate_type,  # type: ignore[arg-type]
                    description=candidate.description,
                    requested_by=caller.user_id,
                )
            )
            results.append(CopyResult(item_id, "copied", None, candidate.name))
        if events:
            self._publisher.publish(events)
        logger.info(
            "services copied from QuickBooks",
            extra={
                "firm_id": caller.firm_id,
                "requested": len(qbo_item_ids),
                "copied": len(events),
                "request_id": request_id,
            },
        )
        return results

    # ------------------------------------------------------------------ steps

    def _candidates(self, firm_id: str, realm_id: str) -> list[Candidate]:
        qbo = self._realm_clients.qbo_for(firm_id, realm_id)
        types = ", ".join(f"'{t}'" for t in _LISTED_TYPES)
        rows = qbo.query_all(
            f"SELECT * FROM Item WHERE Active = true AND Type IN ({types}) ORDERBY Name"  # noqa: S608
        )
        known = self._records.names_and_links(firm_id, realm_id, "service")
        platform_names = {name.casefold() for name, _ in known if name}
        linked_items = {qbo_id for _, qbo_id in known if qbo_id}
        out = []
        for row in rows:
            candidate = self._judge(row, platform_names, linked_items)
            if candidate is not None:
                out.append(candidate)
        return out

    @staticmethod
    def _judge(row: Mapping[str, Any], platform_names: set[str], linked_items: set[str]) -> Candidate | None:
        item_type = str(row.get("Type") or "")
        if item_type not in _LISTED_TYPES or not row.get("Id"):
            return None
        item_id = str(row["Id"])
        name = str(row.get("Name") or "")[:_NAME_MAX]
        rate = _rate(row.get("UnitPrice"))
        rate_type = rate_type_of(row.get("Sku"))
        description = row.get("Description")
        description = description[:_DESCRIPTION_MAX] if isinstance(description, str) and description else None
        reason: str | None = None
        if item_type == "Category":
            reason = "category"
        elif not name or name.casefold() in platform_names or item_id in linked_items:
            reason = "name_exists"
        elif rate is None or rate < 0:
            reason = "negative_rate"
        elif rate_type is None:
            reason = "unsupported_rate_type"
        return Candidate(
            qbo_item_id=item_id,
            name=name,
            type=item_type,
            rate=rate,
            rate_type=rate_type,
            description=description,
            copyable=reason is None,
            skip_reason=reason,
        )

    def _connection(self, caller: Caller) -> Connection:
        connection = self._connections.get(caller.firm_id)
        if connection is None or connection.status != CONNECTED:
            status = connection.status if connection is not None else "not connected"
            raise Conflict(f"QuickBooks is not connected ({status.replace('_', ' ')}); connect it first")
        return connection
