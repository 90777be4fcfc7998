"""CDC watermarks: how far QuickBooks' change data capture of one realm has been processed (PRODUCT.md D.5).

One item per (firm, realm, stream) in the sync-state table (docs/data-model.md, contract):
``pk = FIRM#{firm_id}#REALM#{realm_id}``, ``sk = WATERMARK#{stream}`` (``stream`` = ``cdc``). It keeps one
cursor per QuickBooks entity, ``at_{Entity}`` (epoch seconds, a number): every change of that entity up
to the cursor has been processed. Plus ``full_at`` (the last full comparison), ``updated_at``.

Cursors only move forward: :meth:`WatermarkRepository.advance` is one conditional UpdateItem
(``attribute_not_exists(at_X) OR at_X < :new``), so two catch-up runs of one realm at once (the schedule
and an admin's "catch up now") can both process the same changes - harmless, processing is idempotent -
but never move a cursor backwards. A crash before the advance leaves the cursor where it was: the next run
reads the same changes again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict
from qbsync.repositories._ddb import as_float
from qbsync.repositories.records import _check_id

__all__ = ["CDC_STREAM", "Watermark", "WatermarkRepository"]

CDC_STREAM = "cdc"
_ENTITY_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_PREFIX = "at_"


@dataclass(frozen=True, slots=True)
class Watermark:
    """The cursors of one realm's stream: entity -> epoch seconds processed up to (absent: never)."""

    cursors: dict[str, float] = field(default_factory=dict)
    full_at: float | None = None

    def of(self, entity: str) -> float | None:
        return self.cursors.get(entity)


def _key(firm_id: str, realm_id: str, stream: str) -> dict[str, str]:
    _check_id(firm_id, "firm_id")
    _check_id(realm_id, "realm_id")
    return {"pk": f"FIRM#{firm_id}#REALM#{realm_id}", "sk": f"WATERMARK#{stream}"}


def _attr(entity: str) -> str:
    if not _ENTITY_RE.match(entity):
        raise ValueError("a QuickBooks entity name is required")
    return f"{_PREFIX}{entity}"


class WatermarkRepository:
    """``WATERMARK#{stream}`` items of the sync-state table (see the module doc)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def get(self, firm_id: str, realm_id: str, *, stream: str = CDC_STREAM) -> Watermark:
        item = self._table.get(_key(firm_id, realm_id, stream), consistent=True) or {}
        return _watermark(item)

    def advance(
        self, firm_id: str, realm_id: str, entity: str, at: float, *, now: float, stream: str = CDC_STREAM
    ) -> bool:
        """Move ``entity``'s cursor to ``at`` unless it is already there or further. True when moved."""
        name = _attr(entity)
        try:
            self._table.update(
                _key(firm_id, realm_id, stream),
                update="SET #a = :at, updated_at = :now, firm_id = :f, realm_id = :r",
                condition="attribute_not_exists(#a) OR #a < :at",
                names={"#a": name},
                values={":at": _num(at), ":now": _num(now), ":f": firm_id, ":r": realm_id},
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    def note_full(self, firm_id: str, realm_id: str, *, at: float, stream: str = CDC_STREAM) -> None:
        """Record when the last full comparison of the realm's synced records ran (``full_at``)."""
        self._table.update(
            _key(firm_id, realm_id, stream),
            update="SET full_at = :at, firm_id = :f, realm_id = :r",
            values={":at": _num(at), ":f": firm_id, ":r": realm_id},
            return_values="NONE",
        )


def _watermark(item: Mapping[str, Any]) -> Watermark:
    cursors = {
        k[len(_PREFIX) :]: float(v)
        for k, v in item.items()
        if k.startswith(_PREFIX) and isinstance(v, Decimal | int | float)
    }
    return Watermark(cursors=cursors, full_at=as_float(item.get("full_at")))


def _num(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))
