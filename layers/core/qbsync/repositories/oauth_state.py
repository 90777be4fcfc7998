"""OAuth ``state`` nonce records: single use, expiring (item ``OAUTHSTATE#{nonce}`` / ``STATE``).

The signed state token (see :mod:`qbsync.connection.state`) carries the nonce; this record makes it
single-use and binds it to the firm and user that asked for the connect URL. DynamoDB TTL removes
old records eventually, but moto never enforces TTL and real TTL deletion lags by hours, so
:meth:`OAuthStateRepository.consume` rejects an expired record itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import BadRequest, Conflict, NotFound
from qbsync.repositories._ddb import as_float


@dataclass(frozen=True, slots=True)
class OAuthState:
    nonce: str
    firm_id: str
    user_id: str
    expires_at: float
    settings: dict[str, Any] = field(default_factory=dict)


def _key(nonce: str) -> dict[str, str]:
    return {"pk": f"OAUTHSTATE#{nonce}", "sk": "STATE"}


class OAuthStateRepository:
    """Create and consume state records in the sync-state table."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def create(self, state: OAuthState) -> None:
        """Store a new nonce record. Raises Conflict if the nonce already exists (never reused)."""
        item = {
            **_key(state.nonce),
            "firm_id": state.firm_id,
            "user_id": state.user_id,
            "expires_at": state.expires_at,
            "settings": json.dumps(state.settings, sort_keys=True),
            "ttl": math.ceil(state.expires_at) + 86400,
        }
        self._table.put_new(item)

    def consume(self, nonce: str, *, firm_id: str, user_id: str, now: float) -> OAuthState:
        """Delete the record for good and return it, if it belongs to ``firm_id``/``user_id``.

        The delete is conditional, so of two concurrent callbacks with the same state exactly one wins.

        Raises:
            BadRequest: no such record (already used, or never issued), or it has expired.
            NotFound: the record exists but was issued to another firm or user (it is left untouched,
                so a forged binding cannot burn someone else's state).
        """
        try:
            item = self._table.delete(
                _key(nonce),
                condition="attribute_exists(pk) AND firm_id = :f AND user_id = :u",
                values={":f": firm_id, ":u": user_id},
            )
        except Conflict:
            other = self._table.get(_key(nonce), consistent=True)
            if other is not None:
                raise NotFound("this QuickBooks connect link is not known", firm_id=firm_id) from None
            raise BadRequest(
                "this QuickBooks connect link was already used or is unknown; start the connection again"
            ) from None
        item = item or {}
        expires_at = as_float(item.get("expires_at")) or 0.0
        if expires_at <= now:
            raise BadRequest("this QuickBooks connect link has expired; start the connection again")
        return OAuthState(
            nonce=nonce,
            firm_id=str(item["firm_id"]),
            user_id=str(item["user_id"]),
            expires_at=expires_at,
            settings=json.loads(str(item.get("settings") or "{}")),
        )
