"""The last health level announced per firm (issue 15 item 3): "Firm Health Changed" fires once per crossing.

One item per firm in the sync-state table (docs/data-model.md, "health level"):
``pk = FIRM#{firm_id}``, ``sk = HEALTH``; ``level`` (``ok`` | ``degraded`` | ``failing``), ``changed_at``
(epoch seconds).

:meth:`HealthLevels.swap` is ONE conditional ``UpdateItem`` that stores the new level only when it differs
from the stored one (a missing item counts as ``ok``): of two evaluations racing to the same new level, one
wins and only the winner announces it.
"""

from __future__ import annotations

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict

__all__ = ["HealthLevels", "health_key"]

SK_HEALTH = "HEALTH"
#: the level of a firm never evaluated (no item): a healthy start is no crossing
DEFAULT_LEVEL = "ok"


def health_key(firm_id: str) -> dict[str, str]:
    return {"pk": f"FIRM#{firm_id}", "sk": SK_HEALTH}


class HealthLevels:
    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def swap(self, firm_id: str, level: str, *, now: float) -> str | None:
        """Store ``level`` if it differs from the stored one; returns the previous level when it changed (this
        caller announces the crossing), ``None`` when it was already ``level``."""
        condition = "attribute_not_exists(#l) OR #l <> :level"
        if level == DEFAULT_LEVEL:
            condition = "attribute_exists(#l) AND #l <> :level"  # no item = ok: no crossing to ok
        try:
            old = self._table.update(
                health_key(firm_id),
                update="SET #l = :level, changed_at = :now",
                condition=condition,
                names={"#l": "level"},
                values={":level": level, ":now": int(now)},
                return_values="ALL_OLD",
            )
        except Conflict:
            return None
        return str(old.get("level") or DEFAULT_LEVEL)
