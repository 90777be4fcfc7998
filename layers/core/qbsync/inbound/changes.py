"""What the inbound side hands around: a QuickBooks object that changed, as read back from QuickBooks.

:class:`ChangedObject` is the one value every inbound source produces (the webhook path in
:mod:`qbsync.inbound.worker`, the CDC catch-up) and :class:`~qbsync.inbound.processor.InboundProcessor`
consumes, so the processor never knows where an object came from.

:func:`collapse` turns the changes of several notices for one realm into one change per ``(entity, id)``:
Intuit sends one notification per save (and retries deliveries), a payment also announces the invoices
it touched, and a classic ``Merge`` names the surviving object and the merged-away one. Only the newest
operation of each object is kept: the worker reads the object's current state anyway, so older
operations add nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qbsync.models.messages import EntityChange

__all__ = ["DELETE", "ChangedObject", "collapse"]

#: the operation of an object QuickBooks no longer has (webhook ``Delete``, CDC ``status: Deleted``, or
#: an object a batch read did not find)
DELETE = "Delete"


@dataclass(frozen=True, slots=True)
class ChangedObject:
    """One QuickBooks object that changed: ``entity`` (``Payment``), its ``Id``, the newest operation
    announced (``Create`` | ``Update`` | ``Delete`` | ``Void`` | ``Merge`` | ``Emailed``), and its current
    ``body`` as QuickBooks returns it (``None``: QuickBooks no longer has it - deleted)."""

    entity: str
    qbo_id: str
    operation: str
    body: dict[str, Any] | None

    @property
    def deleted(self) -> bool:
        return self.body is None

    @property
    def sync_token(self) -> str | None:
        """The object's ``SyncToken`` (its version in QuickBooks); None for a deletion."""
        token = (self.body or {}).get("SyncToken")
        return str(token) if token is not None else None


def _order(change: EntityChange, arrival: int) -> tuple[str, int]:
    # ISO 8601 texts of one sender sort by time; changes without one keep their arrival order after them
    return (change.last_updated or "", arrival)


def collapse(changes: Iterable[EntityChange]) -> dict[tuple[str, str], EntityChange]:
    """One change per ``(entity, qbo_id)``: the newest by ``last_updated`` (then by arrival).

    A ``Merge`` names two objects: the survivor (``qbo_id``, kept as a ``Merge``) and the merged-away
    ``deleted_id``, which becomes a ``Delete`` of that id.
    """
    newest: dict[tuple[str, str], tuple[tuple[str, int], EntityChange]] = {}
    for arrival, change in enumerate(_expanded(changes)):
        key = (change.entity, change.qbo_id)
        rank = _order(change, arrival)
        seen = newest.get(key)
        if seen is None or rank >= seen[0]:
            newest[key] = (rank, change)
    return {key: change for key, (_, change) in newest.items()}


def _expanded(changes: Iterable[EntityChange]) -> Iterable[EntityChange]:
    for change in changes:
        yield change
        if change.operation == "Merge" and change.deleted_id and change.deleted_id != change.qbo_id:
            yield EntityChange(
                entity=change.entity,
                qbo_id=change.deleted_id,
                operation=DELETE,
                last_updated=change.last_updated,
            )
