"""Pre-flight results (PRODUCT.md J.2): every check of a firm's QuickBooks company, kept 90 days.

One item per check in the sync-state table (docs/data-model.md "pre-flight result", contract):
``pk = FIRM#{firm_id}#REALM#{realm_id}``, ``sk = PREFLIGHT#{checked_at}`` (UTC, fixed width
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so the keys sort by time), attributes ``firm_id``, ``realm_id``,
``checked_at``, ``company_name``, ``books_closed_on``, ``multicurrency``, ``home_currency``, ``findings``
(a list of maps: ``code``, ``severity``, ``message``, ``fix``, ``record_types``, ``detail``), ``codes`` and
``blocking_codes`` (the finding codes, for a glance in the console), ``format`` and ``ttl``
(``checked_at`` + 90 days, epoch seconds).

:meth:`PreflightRepository.latest` is one Query ``begins_with(sk, PREFLIGHT#)``, newest first, ``Limit 1``;
an expired item (DynamoDB deletes up to ~48 h late, moto never) is not returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.preflight import PreflightResult, iso_utc
from qbsync.models.record_key import check_id as _check_id
from qbsync.repositories._ddb import as_float

__all__ = ["PREFLIGHT_TTL_SECONDS", "PreflightRepository"]

#: how long a pre-flight result is kept
PREFLIGHT_TTL_SECONDS = 90 * 24 * 3600
_SK_PREFIX = "PREFLIGHT#"
_KEYS = ("pk", "sk", "firm_id", "ttl", "codes", "blocking_codes")


def _pk(firm_id: str, realm_id: str) -> str:
    _check_id(firm_id, "firm_id")
    _check_id(realm_id, "realm_id")
    return f"FIRM#{firm_id}#REALM#{realm_id}"


class PreflightRepository:
    """``PREFLIGHT#`` items of the sync-state table (see the module doc)."""

    def __init__(self, table: DynamoTable, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def save(self, firm_id: str, result: PreflightResult) -> None:
        """Store ``result`` (one PutItem; a second save of the same check overwrites it)."""
        body = {k: v for k, v in result.to_json().items() if v is not None}
        checked_at = iso_utc(result.checked_at)
        self._table.put(
            {
                **body,
                "pk": _pk(firm_id, result.realm_id),
                "sk": f"{_SK_PREFIX}{checked_at}",
                "firm_id": firm_id,
                "codes": list(result.codes),
                "blocking_codes": [f.code for f in result.blocking],
                "ttl": int(result.checked_at.timestamp()) + PREFLIGHT_TTL_SECONDS,
            }
        )

    def latest(self, firm_id: str, realm_id: str) -> PreflightResult | None:
        """The newest stored check of the firm's company, or None (never checked, or expired).

        Raises PreflightResultInvalid when the stored item is not in the shape :meth:`save` writes."""
        page = self._table.query_page(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": _pk(firm_id, realm_id), ":prefix": _SK_PREFIX},
            forward=False,
            limit=1,
            consistent=True,
        )
        if not page.items:
            return None
        item = page.items[0]
        ttl = as_float(item.get("ttl"))
        if ttl is not None and ttl <= self._clock():
            return None
        return PreflightResult.from_json(_body(item))


def _body(item: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in item.items() if k not in _KEYS}
    body.setdefault("company_name", None)
    body.setdefault("books_closed_on", None)
    body.setdefault("home_currency", None)
    return body
