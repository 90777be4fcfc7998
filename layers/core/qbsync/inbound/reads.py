"""Batched reads of QuickBooks objects by id: one query per entity type and :data:`IDS_PER_QUERY` ids.

Every inbound read goes through the realm's paced client (``RealmClients.qbo_for``), so each query takes
a slot of the realm's shared request budget (:mod:`qbsync.qbo.ratelimit`); objects are never read one by
one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from qbsync.qbo.client import QboClient, quote_literal

__all__ = ["IDS_PER_QUERY", "NAME_LISTS", "read_by_ids"]

#: ids in one ``Id in (...)`` query (QBO returns up to 1000 rows a query; the statement stays short)
IDS_PER_QUERY = 100
#: QBO name lists: a deactivated object still exists (``Active`` false); the query asks for it too
NAME_LISTS = ("Customer", "Item")
_ENTITY = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def read_by_ids(qbo: QboClient, entity: str, ids: Iterable[str]) -> tuple[dict[str, dict[str, Any]], int]:
    """The current objects of ``entity`` with these ``ids`` (by ``Id``; an id QuickBooks does not have is
    missing from the answer) and the number of queries it took."""
    if not _ENTITY.match(entity):
        raise ValueError(f"invalid QBO entity name {entity!r}")
    wanted = sorted(set(ids))
    found: dict[str, dict[str, Any]] = {}
    queries = 0
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = ", ".join(quote_literal(i) for i in wanted[start : start + IDS_PER_QUERY])
        statement = f"select * from {entity} where Id in ({chunk})"  # noqa: S608 - entity checked, ids quoted
        if entity in NAME_LISTS:
            statement += " and Active in (true, false)"
        queries += 1
        for row in qbo.query(f"{statement} MAXRESULTS 1000"):
            if isinstance(row, dict) and row.get("Id") is not None:
                found[str(row["Id"])] = row
    return found, queries
