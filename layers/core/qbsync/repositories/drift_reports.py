"""Drift reports (PRODUCT.md J.3): each run of the report of a firm's QuickBooks company, kept 90 days.

Items of the sync-state table (docs/data-model.md "drift report", contract): ``pk = FIRM#{firm_id}#REALM#
{realm_id}``; the header ``sk = DRIFT#{report_id}`` (``report_id`` = the run's UTC time, fixed width
``YYYYMMDDTHHMMSSffffffZ``, so the keys sort by time: ``firm_id``, ``realm_id``, ``report_id``, ``ran_at``,
``records_compared``, ``qbo_queries``, ``counts`` per kind, ``new_count``, ``finding_count``) and one item per
finding, ``sk = DRIFT#{report_id}#ITEM#{entity_type}#{platform_id}`` (``kind``, ``entity_type``,
``platform_id``, ``qbo_entity``, ``qbo_id``, ``differences`` - a list of maps ``field``/``was``/``now`` -,
``explained_by`` - ``entity_type#platform_id`` strings -, ``error_id``, ``new``, ``actions``). Every item
has ``ttl`` = ``ran_at`` + 90 days. Written with BatchWriteItem (the header last: a report whose header
is missing is not read).

:meth:`DriftReportRepository.latest` is one Query ``begins_with(sk, DRIFT#)``, newest first, ``Limit 1``
(the newest report's last item, or its header), then one Query of that report's items; an expired
report (DynamoDB deletes up to ~48 h late, moto never) is not returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.record_key import check_id as _check_id
from qbsync.repositories._ddb import as_float

__all__ = ["DRIFT_TTL_SECONDS", "DriftReportRepository", "StoredReport"]

#: how long a drift report is kept
DRIFT_TTL_SECONDS = 90 * 24 * 3600
_PREFIX = "DRIFT#"
_ITEM = "#ITEM#"
_KEYS = ("pk", "sk", "ttl")


def _pk(firm_id: str, realm_id: str) -> str:
    _check_id(firm_id, "firm_id")
    _check_id(realm_id, "realm_id")
    return f"FIRM#{firm_id}#REALM#{realm_id}"


StoredReport = tuple[dict[str, Any], list[dict[str, Any]]]


class DriftReportRepository:
    """``DRIFT#`` items of the sync-state table (see the module doc)."""

    def __init__(self, table: DynamoTable, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def save(self, header: Mapping[str, Any], findings: Sequence[Mapping[str, Any]]) -> None:
        """Store one report: ``header`` (``firm_id``, ``realm_id``, ``report_id``, ``ran_at``, ...) and its
        findings (``entity_type``, ``platform_id``, ...). Idempotent (the same report overwrites itself)."""
        pk = _pk(str(header["firm_id"]), str(header["realm_id"]))
        report_id = str(header["report_id"])
        _check_id(report_id, "report_id")
        ttl = int(float(header["ran_at"])) + DRIFT_TTL_SECONDS
        items = [
            {
                **_clean(f),
                "pk": pk,
                "sk": f"{_PREFIX}{report_id}{_ITEM}{f['entity_type']}#{f['platform_id']}",
                "ttl": ttl,
            }
            for f in findings
        ]
        self._table.batch_write(puts=items)
        self._table.put({**_clean(header), "pk": pk, "sk": f"{_PREFIX}{report_id}", "ttl": ttl})

    def latest(self, firm_id: str, realm_id: str) -> StoredReport | None:
        """The newest stored report of the firm's company as (header, findings), or None (never run, or
        expired)."""
        pk = _pk(firm_id, realm_id)
        page = self._table.query_page(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": pk, ":prefix": _PREFIX},
            forward=False,
            limit=1,
            consistent=True,
        )
        if not page.items:
            return None
        report_id = str(page.items[0]["sk"])[len(_PREFIX) :].split("#", 1)[0]
        header: dict[str, Any] | None = None
        findings: list[dict[str, Any]] = []
        for item in self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": pk, ":prefix": f"{_PREFIX}{report_id}"},
            consistent=True,
        ):
            body = {k: v for k, v in item.items() if k not in _KEYS}
            if _ITEM in str(item["sk"]):
                findings.append(body)
            else:
                header = body
                ttl = as_float(item.get("ttl"))
                if ttl is not None and ttl <= self._clock():
                    return None
        if header is None:
            return None
        return header, findings


def _clean(value: Any) -> Any:
    """Drop None values (DynamoDB keeps no nulls we need); nested maps and lists too."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
