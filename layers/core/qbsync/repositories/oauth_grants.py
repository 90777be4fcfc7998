"""Parked OAuth grants: a proven authorization waiting for its user to complete it (item
``OAUTHGRANT#{sha256(handle)}`` / ``GRANT``).

The OAuth callback does not connect anything: it proves the company and parks the grant here under a
one-time handle, and the platform completes the connection with the JWT of the user who started it
(:meth:`qbsync.connection.service.ConnectionService.complete_connection`). The item holds the firm and the
user the state was issued to, the proven company, the owner's settings and the tokens as ONE KMS ciphertext
(encryption context ``{"firm_id", "realm_id"}``, as the connection's). The key is a SHA-256 of the handle:
the table never holds the handle itself.

Single use: :meth:`ParkedGrants.take` deletes the item and returns what it held; of two takes at once only
one gets it. DynamoDB TTL removes forgotten items eventually, but TTL deletion lags (moto never enforces
it), so the caller checks ``expires_at`` itself.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.repositories._ddb import as_bytes, as_float
from qbsync.repositories.connections import TokenCipher, Tokens

__all__ = ["ParkedGrant", "ParkedGrants"]


@dataclass(frozen=True, slots=True)
class ParkedGrant:
    """A grant whose company was proven, bound to the firm and user that asked for the connect URL."""

    firm_id: str
    user_id: str
    realm_id: str
    tokens: Tokens
    expires_at: float
    company_name: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _key(handle: str) -> dict[str, str]:
    digest = hashlib.sha256(handle.encode("utf-8")).hexdigest()
    return {"pk": f"OAUTHGRANT#{digest}", "sk": "GRANT"}


def _context(firm_id: str, realm_id: str) -> dict[str, str]:
    return {"firm_id": firm_id, "realm_id": realm_id}


class ParkedGrants:
    """Park and take grants in the sync-state table.

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).
        cipher: encrypts the tokens (KMS, encryption context firm + realm).
    """

    def __init__(self, table: DynamoTable, cipher: TokenCipher) -> None:
        self._table = table
        self._cipher = cipher

    def park(self, handle: str, grant: ParkedGrant) -> None:
        """Store ``grant`` under ``handle``. Raises Conflict if the handle was ever used (never reused)."""
        tokens = grant.tokens
        blob = self._cipher.encrypt(
            json.dumps({"a": tokens.access_token, "r": tokens.refresh_token}).encode(),
            _context(grant.firm_id, grant.realm_id),
        )
        item: dict[str, Any] = {
            **_key(handle),
            "firm_id": grant.firm_id,
            "user_id": grant.user_id,
            "realm_id": grant.realm_id,
            "token_blob": blob,
            "access_expires_at": tokens.access_expires_at,
            "expires_at": grant.expires_at,
            "settings": json.dumps(grant.settings, sort_keys=True),
            "ttl": math.ceil(grant.expires_at) + 86400,
        }
        optional = {
            "company_name": grant.company_name,
            "refresh_expires_at": tokens.refresh_expires_at,
            "refresh_hard_expires_at": tokens.refresh_hard_expires_at,
        }
        item.update({k: v for k, v in optional.items() if v is not None})
        self._table.put_new(item)

    def take(self, handle: str) -> ParkedGrant | None:
        """Delete the grant for good and return it (expired or not: the caller decides); None when there is
        none (never parked, already taken). Atomic: of two takes of one handle exactly one gets the grant."""
        item = self._table.delete(_key(handle))
        return self._grant(item) if item else None

    def _grant(self, item: Mapping[str, Any]) -> ParkedGrant:
        firm_id, realm_id = str(item["firm_id"]), str(item["realm_id"])
        blob = as_bytes(item.get("token_blob")) or b""
        data = json.loads(self._cipher.decrypt(blob, _context(firm_id, realm_id)))
        return ParkedGrant(
            firm_id=firm_id,
            user_id=str(item["user_id"]),
            realm_id=realm_id,
            tokens=Tokens(
                access_token=data["a"],
                refresh_token=data["r"],
                access_expires_at=as_float(item.get("access_expires_at")) or 0.0,
                refresh_expires_at=as_float(item.get("refresh_expires_at")),
                refresh_hard_expires_at=as_float(item.get("refresh_hard_expires_at")),
            ),
            expires_at=as_float(item.get("expires_at")) or 0.0,
            company_name=item.get("company_name"),
            settings=json.loads(str(item.get("settings") or "{}")),
        )
