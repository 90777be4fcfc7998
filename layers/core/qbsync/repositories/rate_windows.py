"""The per-realm request counters of :mod:`qbsync.qbo.ratelimit`: one item per realm and minute on the
sync-state table (docs/data-model.md, "rate windows").

* ``pk = RATE#{realm_id}``, ``sk = M#{epoch_minute}``; attributes ``count`` (requests this minute),
  ``s{n}`` (requests in the n-th short window of the minute: ``s0`` … ``s239`` for 250 ms windows),
  ``batch`` (batch calls this minute), ``b{n}`` (1 when the n-th batch window of the minute had its batch
  call: ``b0`` … ``b38``) and ``ttl`` (``ttl_seconds`` after the minute).
* :meth:`RateWindows.take` is ONE ``UpdateItem`` that adds 1 to ``count``, the current ``s{n}`` (and
  ``batch`` and ``b{n}``) on the condition that each is below its cap: all windows count the request, or
  none does.
* :meth:`RateWindows.read` is one consistent read of the minute's counters (which window is full).
* :meth:`RateWindows.used` is one Query of a range of minutes' ``count`` (the firm's health: requests used
  against the realm's budget; the items live ``ttl_seconds`` past their minute, an hour by default).

The limiter decides what the numbers mean (how long to wait); this module only keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict

__all__ = ["RateWindows", "WindowCaps", "rate_key"]

_UPDATE = "ADD #c :one, #s :one SET #ttl = if_not_exists(#ttl, :ttl)"
_BATCH_UPDATE = "ADD #c :one, #s :one, #b :one, #bw :one SET #ttl = if_not_exists(#ttl, :ttl)"


class WindowCaps(Protocol):
    """The caps a slot must stay under (``qbsync.qbo.ratelimit.RateLimits``)."""

    @property
    def per_window(self) -> int: ...
    @property
    def per_minute(self) -> int: ...
    @property
    def batch_per_minute(self) -> int: ...
    @property
    def ttl_seconds(self) -> int: ...


def rate_key(realm_id: str, epoch_minute: int) -> dict[str, str]:
    """The key of a realm's counter item for one minute (``epoch_minute = floor(epoch_seconds / 60)``)."""
    return {"pk": f"RATE#{realm_id}", "sk": f"M#{epoch_minute}"}


class RateWindows:
    """The counter items of every realm (see the module doc)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def take(
        self, realm_id: str, minute: int, window: int, caps: WindowCaps, *, batch_window: int | None
    ) -> bool:
        """Count one request in ``minute`` and its short ``window`` (a batch call also in the minute's batch
        budget and its ``batch_window``, which holds one); False when a window is at its cap (nothing
        counted)."""
        names = {"#c": "count", "#s": f"s{window}", "#ttl": "ttl"}
        values: dict[str, int] = {
            ":one": 1,
            ":cl": caps.per_minute,
            ":sl": caps.per_window,
            ":ttl": (minute + 1) * 60 + caps.ttl_seconds,
        }
        condition = "(attribute_not_exists(#c) OR #c < :cl) AND (attribute_not_exists(#s) OR #s < :sl)"
        if batch_window is not None:
            names["#b"], names["#bw"] = "batch", f"b{batch_window}"
            values[":bl"] = caps.batch_per_minute
            condition += " AND (attribute_not_exists(#b) OR #b < :bl) AND attribute_not_exists(#bw)"
        try:
            self._table.update(
                rate_key(realm_id, minute),
                update=_BATCH_UPDATE if batch_window is not None else _UPDATE,
                condition=condition,
                names=names,
                values=values,
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    def read(self, realm_id: str, minute: int) -> Mapping[str, int]:
        """The minute's counters (``count``, ``batch``, ``s{n}``, ``b{n}``; absent ones are 0 to callers)."""
        item = self._table.get(rate_key(realm_id, minute), consistent=True) or {}
        counters = {
            k: v for k, v in item.items() if k in ("count", "batch") or (k[:1] in "sb" and k[1:].isdigit())
        }
        return {k: int(v) for k, v in counters.items()}

    def used(self, realm_id: str, first_minute: int, last_minute: int) -> dict[int, int]:
        """Requests counted per minute from ``first_minute`` to ``last_minute`` (epoch minutes, inclusive):
        ``{minute: count}``, minutes without requests absent. One Query (60 small items for an hour)."""
        if last_minute < first_minute:
            return {}
        items = self._table.query(
            key_condition="pk = :pk AND sk BETWEEN :lo AND :hi",
            values={
                ":pk": f"RATE#{realm_id}",
                ":lo": f"M#{first_minute}",
                ":hi": f"M#{last_minute}",
            },
            names=None,
        )
        used: dict[int, int] = {}
        for item in items:
            minute = str(item.get("sk", ""))[2:]
            if minute.isdigit() and first_minute <= int(minute) <= last_minute:
                used[int(minute)] = int(item.get("count", 0))
        return used
