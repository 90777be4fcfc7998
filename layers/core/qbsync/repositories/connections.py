"""The firm's QuickBooks connection (item ``FIRM#{firm_id}`` / ``CONNECTION``) and its archive.

One connection per firm. The OAuth tokens (access + refresh) are stored as ONE KMS-encrypted blob whose
encryption context is ``{"firm_id", "realm_id"}``, so a blob copied to another firm or company does not
decrypt. Expiry timestamps are plain attributes (they are not secret and the keep-alive sweep queries
them through ``gsi2``). A repository decrypts a given blob once and remembers the plaintext for the
container (the blob changes whenever the tokens do), so reading a connection costs no KMS call after the
first (issue 12: the token was decrypted again on every read, ~2.5 KMS calls per synced record).

Races are settled by conditional writes:

* ``token_version`` grows by one on every token write; a token save succeeds only if the version is
  still the one the writer read (a stale refresh can never overwrite a newer refresh token).
* the refresh lease (``lease_owner``, ``lease_until``) is taken only when free or expired.
* status changes (needs reconnect, switch, disconnect) are checked against the version they were
  decided on.
* one realm, one live firm: the realm-owner item (``REALM#{realm_id}`` / ``OWNER``, ``firm_id``) names the
  firm whose connection holds the company (connected, needs reconnect or pending switch on it). Connecting,
  reconnecting and activating a switch claim it in the same transaction as the connection write, on
  condition that no other firm holds it (:class:`RealmTaken` otherwise), so of two firms completing at once
  exactly one wins; disconnecting and switching away release it.

Every write raises :class:`qbsync.errors.Conflict` when its condition fails.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict
from qbsync.repositories._ddb import as_bytes, as_float, as_int

CONNECTED = "connected"
NEEDS_RECONNECT = "needs_reconnect"
DISCONNECTED = "disconnected"
PENDING_SWITCH = "pending_switch"
STATUSES = (CONNECTED, NEEDS_RECONNECT, DISCONNECTED, PENDING_SWITCH)
#: Statuses in which the stored tokens of the current realm may be used (a pending switch keeps the
#: current company working until the owner types ACCEPT).
USABLE = (CONNECTED, PENDING_SWITCH)

SK_CONNECTION = "CONNECTION"
SK_ARCHIVED_PREFIX = "CONNECTION#ARCHIVED#"
SK_REALM_OWNER = "OWNER"
#: decrypted token blobs a repository remembers (a container serves few firms at a time)
_OPENED_MAX = 256


class RealmTaken(Conflict):
    """The QuickBooks company is held by another firm's connection (its realm-owner item names that firm).

    The message never names the other firm."""


class TokenCipher(Protocol):
    """``qbsync.adapters.kms.TokenCipher``: envelope encryption bound to an encryption context."""

    def encrypt(self, plaintext: bytes, context: Mapping[str, str]) -> bytes: ...

    def decrypt(self, blob: bytes, context: Mapping[str, str]) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Tokens:
    """An OAuth token pair with absolute expiries (epoch seconds). Never logged, never returned by an API."""

    access_token: str
    refresh_token: str
    access_expires_at: float
    refresh_expires_at: float | None = None
    refresh_hard_expires_at: float | None = None

    def __repr__(self) -> str:  # tokens must not reach logs through a repr
        return f"Tokens(access_expires_at={self.access_expires_at}, refresh={self.refresh_expires_at})"


@dataclass(frozen=True, slots=True)
class PendingSwitch:
    """A different company the owner authorized, held until they confirm the switch with ACCEPT."""

    realm_id: str
    company_name: str | None
    tokens: Tokens
    requested_at: float
    requested_by: str


@dataclass(frozen=True, slots=True)
class Connection:
    firm_id: str
    realm_id: str
    status: str
    tokens: Tokens | None
    token_version: int = 0
    company_name: str | None = None
    connected_at: float | None = None
    updated_at: float | None = None
    refreshed_at: float | None = None
    reason: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    connected_by: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    pending: PendingSwitch | None = None

    @property
    def usable(self) -> bool:
        return self.status in USABLE and self.tokens is not None


@dataclass(frozen=True, slots=True)
class ConnectionSummary:
    """A row of the keep-alive sweep (read from gsi2, eventually consistent, no tokens)."""

    firm_id: str
    realm_id: str
    status: str
    access_expires_at: float | None
    refresh_hard_expires_at: float | None


@dataclass(frozen=True, slots=True)
class ArchivedConnection:
    firm_id: str
    realm_id: str
    company_name: str | None
    archived_at: float
    archived_by: str | None
    connected_at: float | None


def iso(epoch: float) -> str:
    """Sortable UTC timestamp used in sort keys (second precision)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(firm_id: str) -> dict[str, str]:
    return {"pk": f"FIRM#{firm_id}", "sk": SK_CONNECTION}


def _owner_key(realm_id: str) -> dict[str, str]:
    return {"pk": f"REALM#{realm_id}", "sk": SK_REALM_OWNER}


def _context(firm_id: str, realm_id: str) -> dict[str, str]:
    return {"firm_id": firm_id, "realm_id": realm_id}


class ConnectionsRepository:
    """Connection items of the sync-state table.

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).
        cipher: encrypts/decrypts the token blob (KMS, encryption context firm + realm).
    """

    def __init__(self, table: DynamoTable, cipher: TokenCipher) -> None:
        self._table = table
        self._cipher = cipher
        # sealed blob -> plaintext, per container: a blob only changes when the tokens do, so the same
        # blob read again (every connection read of every record) is not sent to KMS again
        self._opened: OrderedDict[tuple[str, str, bytes], bytes] = OrderedDict()
        self._opened_lock = threading.Lock()

    # ------------------------------------------------------------------ encryption
    def _seal(self, firm_id: str, realm_id: str, tokens: Tokens) -> bytes:
        payload = json.dumps({"a": tokens.access_token, "r": tokens.refresh_token}).encode()
        return self._cipher.encrypt(payload, _context(firm_id, realm_id))

    def _open(
        self, firm_id: str, realm_id: str, blob: bytes, item: Mapping[str, Any], prefix: str = ""
    ) -> Tokens:
        data = json.loads(self._decrypt(firm_id, realm_id, blob))
        return Tokens(
            access_token=data["a"],
            refresh_token=data["r"],
            access_expires_at=as_float(item.get(f"{prefix}access_expires_at")) or 0.0,
            refresh_expires_at=as_float(item.get(f"{prefix}refresh_expires_at")),
            refresh_hard_expires_at=as_float(item.get(f"{prefix}refresh_hard_expires_at")),
        )

    def _decrypt(self, firm_id: str, realm_id: str, blob: bytes) -> bytes:
        """KMS Decrypt of ``blob`` (context firm + realm), remembered for the container's next reads of the
        same blob (at most ``_OPENED_MAX`` blobs, least recently used dropped first)."""
        key = (firm_id, realm_id, blob)
        with self._opened_lock:
            plain = self._opened.get(key)
            if plain is not None:
                self._opened.move_to_end(key)
                return plain
        plain = self._cipher.decrypt(blob, _context(firm_id, realm_id))
        with self._opened_lock:
            self._opened[key] = plain
            while len(self._opened) > _OPENED_MAX:
                self._opened.popitem(last=False)
        return plain

    def _token_fields(self, firm_id: str, realm_id: str, tokens: Tokens, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}token_blob": self._seal(firm_id, realm_id, tokens),
            f"{prefix}access_expires_at": tokens.access_expires_at,
            f"{prefix}refresh_expires_at": tokens.refresh_expires_at,
            f"{prefix}refresh_hard_expires_at": tokens.refresh_hard_expires_at,
        }

    # ------------------------------------------------------------------ mapping
    def _from_item(self, item: Mapping[str, Any]) -> Connection:
        firm_id, realm_id = str(item["firm_id"]), str(item["realm_id"])
        blob = as_bytes(item.get("token_blob"))
        tokens = self._open(firm_id, realm_id, blob, item) if blob else None
        pending = None
        pending_realm = item.get("pending_realm_id")
        pending_blob = as_bytes(item.get("pending_token_blob"))
        if pending_realm and pending_blob:
            pending = PendingSwitch(
                realm_id=str(pending_realm),
                company_name=item.get("pending_company_name"),
                tokens=self._open(firm_id, str(pending_realm), pending_blob, item, prefix="pending_"),
                requested_at=as_float(item.get("pending_requested_at")) or 0.0,
                requested_by=str(item.get("pending_requested_by") or ""),
            )
        return Connection(
            firm_id=firm_id,
            realm_id=realm_id,
            status=str(item["status"]),
            tokens=tokens,
            token_version=as_int(item.get("token_version")),
            company_name=item.get("company_name"),
            connected_at=as_float(item.get("connected_at")),
            updated_at=as_float(item.get("updated_at")),
            refreshed_at=as_float(item.get("refreshed_at")),
            reason=item.get("reason"),
            lease_owner=item.get("lease_owner"),
            lease_until=as_float(item.get("lease_until")),
            connected_by=item.get("connected_by"),
            settings=json.loads(str(item.get("settings") or "{}")),
            pending=pending,
        )

    @staticmethod
    def _index_fields(firm_id: str, realm_id: str, status: str, sort_at: float) -> dict[str, Any]:
        return {
            "gsi1pk": f"REALM#{realm_id}",
            "gsi1sk": f"FIRM#{firm_id}",
            "gsi2pk": f"CONNSTATUS#{status}",
            "gsi2sk": iso(sort_at),
        }

    @staticmethod
    def _update_parts(
        values: Mapping[str, Any],
        condition: str,
        condition_values: Mapping[str, Any],
        *,
        increment_version: bool = False,
    ) -> dict[str, Any]:
        """The UpdateExpression (SET the non-None values, REMOVE the None ones), names and values."""
        names: dict[str, str] = {}
        attr_values: dict[str, Any] = dict(condition_values)
        sets, removes = [], []
        for i, (name, value) in enumerate(values.items()):
            names[f"#a{i}"] = name
            if value is None:
                removes.append(f"#a{i}")
            else:
                attr_values[f":v{i}"] = value
                sets.append(f"#a{i} = :v{i}")
        if increment_version:
            names["#ver"] = "token_version"
            attr_values[":one"] = 1
            sets.append("#ver = #ver + :one")
        expression = ("SET " + ", ".join(sets)) if sets else ""
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        for placeholder, name in (("#status", "status"), ("#pk", "pk")):
            if placeholder in condition:
                names[placeholder] = name
        return {"update": expression.strip(), "condition": condition, "names": names, "values": attr_values}

    def _update(
        self,
        firm_id: str,
        values: Mapping[str, Any],
        condition: str,
        condition_values: Mapping[str, Any],
        what: str,
        *,
        increment_version: bool = False,
    ) -> dict[str, Any]:
        """SET the non-None values, REMOVE the None ones, under ``condition``; returns the new item."""
        parts = self._update_parts(values, condition, condition_values, increment_version=increment_version)
        return self._table.update(_key(firm_id), **parts)

    # ------------------------------------------------------------------ realm owner
    def _claim(self, firm_id: str, realm_id: str, now: float) -> dict[str, Any]:
        """Transaction action: ``firm_id`` holds ``realm_id`` (fails if another firm holds it)."""
        return self._table.tx_put(
            {**_owner_key(realm_id), "firm_id": firm_id, "realm_id": realm_id, "claimed_at": now},
            condition="attribute_not_exists(pk) OR firm_id = :owner",
            values={":owner": firm_id},
        )

    def _release(self, firm_id: str, realm_id: str) -> list[dict[str, Any]]:
        """Transaction actions that release ``realm_id`` if ``firm_id`` holds it (none otherwise: another
        firm's claim, or a connection from before realm owners, is never touched)."""
        owner = self._table.get(_owner_key(realm_id), consistent=True)
        if owner is None or owner.get("firm_id") != firm_id:
            return []
        return [
            self._table.tx_delete(
                _owner_key(realm_id), condition="firm_id = :owner", values={":owner": firm_id}
            )
        ]

    def _transact(
        self, actions: list[dict[str, Any]], *, claim_at: int | None, firm_id: str, realm_id: str
    ) -> None:
        """Run ``actions``; a failed condition on the claim (index ``claim_at``) is :class:`RealmTaken`."""
        try:
            self._table.transact_write(actions)
        except Conflict as err:
            reasons = list(err.extra.get("reasons") or [])
            if (
                claim_at is not None
                and claim_at < len(reasons)
                and reasons[claim_at] == "ConditionalCheckFailed"
            ):
                raise RealmTaken(
                    "this QuickBooks company is connected to another firm", firm_id=firm_id, realm_id=realm_id
                ) from None
            raise

    def _reread(self, firm_id: str) -> Connection:
        written = self.get(firm_id)
        if written is None:  # pragma: no cover - the transaction just wrote it
            raise Conflict("the connection vanished while it was written", firm_id=firm_id)
        return written

    # ------------------------------------------------------------------ reads
    def get(self, firm_id: str) -> Connection | None:
        """The firm's connection (strongly consistent read), tokens decrypted; None if never connected."""
        item = self._table.get(_key(firm_id), consistent=True)
        return self._from_item(item) if item else None

    def firm_of_realm(self, realm_id: str) -> str | None:
        """The one firm whose live connection holds ``realm_id`` (webhooks arrive by realm), or None.

        The realm-owner item (strongly consistent); a connection written before realm owners existed is
        found through gsi1 (a connection there that is not disconnected).
        """
        owner = self._table.get(_owner_key(realm_id), consistent=True)
        if owner is not None:
            return str(owner["firm_id"])
        for firm_id, status in self.indexed_firms(realm_id):
            if status != DISCONNECTED:
                return firm_id
        return None

    def firms_of_realms(self, realm_ids: Sequence[str]) -> dict[str, str | None]:
        """:meth:`firm_of_realm` of each realm, in one strongly consistent BatchGetItem of the realm-owner
        items (100 a call); only a realm without an owner item takes :meth:`firm_of_realm`'s gsi1 path
        (the webhook intake routes a POST of up to 100 realms within Intuit's 3 s)."""
        wanted = list(dict.fromkeys(realm_ids))
        owners = {
            str(item["pk"]).removeprefix("REALM#"): str(item["firm_id"])
            for item in self._table.batch_get([_owner_key(r) for r in wanted], consistent=True)
        }
        return {r: owners[r] if r in owners else self.firm_of_realm(r) for r in wanted}

    def indexed_firms(self, realm_id: str) -> list[tuple[str, str]]:
        """``(firm_id, status)`` of every connection item gsi1 lists under ``realm_id`` (the realm index;
        eventually consistent). A disconnected firm stays listed until it reconnects or switches."""
        return [
            (str(item["firm_id"]), str(item["status"]))
            for item in self._table.query(
                key_condition="gsi1pk = :pk", values={":pk": f"REALM#{realm_id}"}, index="gsi1"
            )
            if item.get("sk") == SK_CONNECTION
        ]

    def realm_held_elsewhere(self, realm_id: str, firm_id: str) -> bool:
        """True when a firm other than ``firm_id`` holds ``realm_id`` (see :meth:`firm_of_realm`)."""
        holder = self.firm_of_realm(realm_id)
        if holder is not None and holder != firm_id:
            return True
        # A legacy connection (no owner item) of another firm may share the index with firm_id's own.
        return any(f != firm_id and status != DISCONNECTED for f, status in self.indexed_firms(realm_id))

    def by_status(
        self, status: str, *, expiring_from: float | None = None, expiring_until: float | None = None
    ) -> Iterator[ConnectionSummary]:
        """Connections in ``status`` whose access expiry lies in [from, until] (gsi2; paginated)."""
        condition = "gsi2pk = :pk"
        values: dict[str, Any] = {":pk": f"CONNSTATUS#{status}"}
        if expiring_from is not None and expiring_until is not None:
            condition += " AND gsi2sk BETWEEN :lo AND :hi"
            values.update({":lo": iso(expiring_from), ":hi": iso(expiring_until)})
        elif expiring_until is not None:
            condition += " AND gsi2sk <= :hi"
            values[":hi"] = iso(expiring_until)
        elif expiring_from is not None:
            condition += " AND gsi2sk >= :lo"
            values[":lo"] = iso(expiring_from)
        for item in self._table.query(key_condition=condition, values=values, index="gsi2"):
            if item.get("sk") != SK_CONNECTION:
                continue
            yield ConnectionSummary(
                firm_id=str(item["firm_id"]),
                realm_id=str(item["realm_id"]),
                status=str(item["status"]),
                access_expires_at=as_float(item.get("access_expires_at")),
                refresh_hard_expires_at=as_float(item.get("refresh_hard_expires_at")),
            )

    def archived(self, firm_id: str) -> list[ArchivedConnection]:
        """The firm's archived connections (companies it switched away from), oldest first."""
        items = self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": f"FIRM#{firm_id}", ":prefix": SK_ARCHIVED_PREFIX},
            consistent=True,
        )
        return [
            ArchivedConnection(
                firm_id=firm_id,
                realm_id=str(item["realm_id"]),
                company_name=item.get("company_name"),
                archived_at=as_float(item.get("archived_at")) or 0.0,
                archived_by=item.get("archived_by"),
                connected_at=as_float(item.get("connected_at")),
            )
            for item in items
        ]

    # ------------------------------------------------------------------ writes
    def create(  # noqa: PLR0913
        self,
        *,
        firm_id: str,
        realm_id: str,
        tokens: Tokens,
        company_name: str | None,
        connected_by: str,
        settings: Mapping[str, Any],
        now: float,
    ) -> Connection:
        """First connection of a firm; claims the realm. Raises Conflict if the firm already has a connection
        item, RealmTaken if another firm holds the realm."""
        item: dict[str, Any] = {
            **_key(firm_id),
            **self._index_fields(firm_id, realm_id, CONNECTED, tokens.access_expires_at),
            "firm_id": firm_id,
            "realm_id": realm_id,
            "status": CONNECTED,
            "token_version": 1,
            "connected_at": now,
            "updated_at": now,
            "refreshed_at": now,
            "connected_by": connected_by,
            "settings": json.dumps(dict(settings), sort_keys=True),
            **{k: v for k, v in self._token_fields(firm_id, realm_id, tokens).items() if v is not None},
        }
        if company_name:
            item["company_name"] = company_name
        self._transact(
            [
                self._table.tx_put(item, condition="attribute_not_exists(pk)"),
                self._claim(firm_id, realm_id, now),
            ],
            claim_at=1,
            firm_id=firm_id,
            realm_id=realm_id,
        )
        return self._from_item(item)

    def reconnect(
        self,
        current: Connection,
        *,
        tokens: Tokens,
        company_name: str | None,
        connected_by: str,
        settings: Mapping[str, Any],
        now: float,
    ) -> Connection:
        """Same company authorized again: new tokens, status connected, any pending switch dropped; the realm
        is claimed again (it was released if the firm had disconnected).

        Conditional on the version and realm that ``current`` was read with (Conflict otherwise); RealmTaken
        if another firm holds the realm now.
        """
        values: dict[str, Any] = {
            **self._token_fields(current.firm_id, current.realm_id, tokens),
            **self._index_fields(current.firm_id, current.realm_id, CONNECTED, tokens.access_expires_at),
            "status": CONNECTED,
            "company_name": company_name or current.company_name,
            "connected_at": now,
            "updated_at": now,
            "refreshed_at": now,
            "connected_by": connected_by,
            "settings": json.dumps(dict(settings), sort_keys=True),
            "reason": None,
            "lease_owner": None,
            "lease_until": None,
            **_no_pending(),
        }
        parts = self._update_parts(
            values,
            "token_version = :ver AND realm_id = :realm",
            {":ver": current.token_version, ":realm": current.realm_id},
            increment_version=True,
        )
        self._transact(
            [
                self._table.tx_update(_key(current.firm_id), **parts),
                self._claim(current.firm_id, current.realm_id, now),
            ],
            claim_at=1,
            firm_id=current.firm_id,
            realm_id=current.realm_id,
        )
        return self._reread(current.firm_id)

    def hold_pending_switch(self, current: Connection, pending: PendingSwitch, *, now: float) -> Connection:
        """Keep a different company's tokens aside until the owner confirms; status pending_switch."""
        values: dict[str, Any] = {
            "status": PENDING_SWITCH,
            "gsi2pk": f"CONNSTATUS#{PENDING_SWITCH}",
            "updated_at": now,
            "pending_realm_id": pending.realm_id,
            "pending_company_name": pending.company_name,
            "pending_requested_at": pending.requested_at,
            "pending_requested_by": pending.requested_by,
            **self._token_fields(current.firm_id, pending.realm_id, pending.tokens, prefix="pending_"),
        }
        if current.status not in USABLE:
            # The current tokens are dead (needs reconnect) or gone (disconnected): erase them so that the
            # pending_switch status never makes them look usable again.
            values["token_blob"] = None
        item = self._update(
            current.firm_id,
            values,
            "token_version = :ver AND realm_id = :realm",
            {":ver": current.token_version, ":realm": current.realm_id},
            "hold pending company switch",
            increment_version=True,
        )
        return self._from_item(item)

    def activate_pending_switch(self, current: Connection, *, archived_by: str, now: float) -> Connection:
        """Archive the current company and make the pending one live, in one transaction.

        The archive item (``CONNECTION#ARCHIVED#{archived_at}#{realm_id}``) keeps the old realm, name and
        dates, never tokens (they are revoked). The new realm is claimed and the old one released in the same
        transaction. Raises Conflict if the connection changed meanwhile, RealmTaken if another firm holds the
        new realm.
        """
        pending = current.pending
        if pending is None:
            raise Conflict("no company switch is pending", firm_id=current.firm_id)
        archive = {
            "pk": f"FIRM#{current.firm_id}",
            "sk": f"{SK_ARCHIVED_PREFIX}{iso(now)}#{current.realm_id}",
            "firm_id": current.firm_id,
            "realm_id": current.realm_id,
            "status": "archived",
            "archived_at": now,
            "archived_by": archived_by,
        }
        if current.company_name:
            archive["company_name"] = current.company_name
        if current.connected_at is not None:
            archive["connected_at"] = current.connected_at
        values: dict[str, Any] = {
            **self._token_fields(current.firm_id, pending.realm_id, pending.tokens),
            **self._index_fields(
                current.firm_id, pending.realm_id, CONNECTED, pending.tokens.access_expires_at
            ),
            "realm_id": pending.realm_id,
            "company_name": pending.company_name,
            "status": CONNECTED,
            "connected_at": now,
            "updated_at": now,
            "refreshed_at": pending.requested_at,
            "connected_by": archived_by,
            "reason": None,
            "lease_owner": None,
            "lease_until": None,
            **_no_pending(),
        }
        names: dict[str, str] = {"#ver": "token_version"}
        attr_values: dict[str, Any] = {
            ":ver": current.token_version,
            ":realm": current.realm_id,
            ":pending": pending.realm_id,
            ":one": 1,
        }
        sets, removes = ["#ver = #ver + :one"], []
        for i, (name, value) in enumerate(values.items()):
            names[f"#a{i}"] = name
            if value is None:
                removes.append(f"#a{i}")
            else:
                attr_values[f":v{i}"] = value
                sets.append(f"#a{i} = :v{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self._transact(
            [
                self._claim(current.firm_id, pending.realm_id, now),
                self._table.tx_put(archive, condition="attribute_not_exists(pk)"),
                self._table.tx_update(
                    _key(current.firm_id),
                    update=expression,
                    condition=("#ver = :ver AND realm_id = :realm AND pending_realm_id = :pending"),
                    names=names,
                    values=attr_values,
                ),
                *self._release(current.firm_id, current.realm_id),
            ],
            claim_at=0,
            firm_id=current.firm_id,
            realm_id=pending.realm_id,
        )
        return self._reread(current.firm_id)

    def save_refreshed_tokens(self, current: Connection, tokens: Tokens, *, now: float) -> Connection:
        """Persist a refresh result. Succeeds only if nobody saved tokens since ``current`` was read
        (version check) and the connection is still usable for the same realm; otherwise Conflict.
        """
        values: dict[str, Any] = {
            **self._token_fields(current.firm_id, current.realm_id, tokens),
            "gsi2sk": iso(tokens.access_expires_at),
            "updated_at": now,
            "refreshed_at": now,
        }
        item = self._update(
            current.firm_id,
            values,
            "token_version = :ver AND realm_id = :realm AND #status IN (:s1, :s2)",
            {":ver": current.token_version, ":realm": current.realm_id, ":s1": USABLE[0], ":s2": USABLE[1]},
            "save refreshed tokens",
            increment_version=True,
        )
        return self._from_item(item)

    def mark_needs_reconnect(self, current: Connection, *, reason: str, now: float) -> Connection:
        """Status needs_reconnect (tokens kept for the record; they no longer work).

        Conditional on the version ``current`` was read with: a newer token saved meanwhile means the
        failure concerned a superseded token (Conflict; the caller re-reads).
        """
        values = {
            "status": NEEDS_RECONNECT,
            "gsi2pk": f"CONNSTATUS#{NEEDS_RECONNECT}",
            "reason": reason[:500],
            "updated_at": now,
        }
        item = self._update(
            current.firm_id,
            values,
            "token_version = :ver AND realm_id = :realm",
            {":ver": current.token_version, ":realm": current.realm_id},
            "mark needs reconnect",
        )
        return self._from_item(item)

    def mark_disconnected(self, current: Connection, *, reason: str, now: float) -> Connection:
        """Status disconnected; the (revoked) tokens and any pending switch are erased, the realm released
        (another firm may connect that company now)."""
        values: dict[str, Any] = {
            "status": DISCONNECTED,
            "gsi2pk": f"CONNSTATUS#{DISCONNECTED}",
            "gsi2sk": iso(now),
            "reason": reason,
            "updated_at": now,
            "token_blob": None,
            "lease_owner": None,
            "lease_until": None,
            **_no_pending(),
        }
        parts = self._update_parts(
            values, "token_version = :ver", {":ver": current.token_version}, increment_version=True
        )
        release = self._release(current.firm_id, current.realm_id)
        if not release:
            return self._from_item(self._table.update(_key(current.firm_id), **parts))
        self._transact(
            [self._table.tx_update(_key(current.firm_id), **parts), *release],
            claim_at=None,
            firm_id=current.firm_id,
            realm_id=current.realm_id,
        )
        return self._reread(current.firm_id)

    def set_company_name(self, current: Connection, company_name: str, *, now: float) -> Connection:
        item = self._update(
            current.firm_id,
            {"company_name": company_name, "updated_at": now},
            "realm_id = :realm",
            {":realm": current.realm_id},
            "update company name",
        )
        return self._from_item(item)

    # ------------------------------------------------------------------ refresh lease
    def acquire_lease(self, firm_id: str, owner: str, *, now: float, seconds: float) -> bool:
        """Take the refresh lease if it is free or expired. True if ``owner`` holds it now."""
        try:
            self._table.update(
                _key(firm_id),
                update="SET lease_owner = :owner, lease_until = :until",
                condition=(
                    "attribute_exists(pk) AND (attribute_not_exists(lease_until) OR lease_until < :now "
                    "OR lease_owner = :owner)"
                ),
                values={":owner": owner, ":until": now + seconds, ":now": now},
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    def release_lease(self, firm_id: str, owner: str) -> bool:
        """Release the lease if ``owner`` still holds it. False if it had expired and someone took it."""
        try:
            self._table.update(
                _key(firm_id),
                update="REMOVE lease_owner, lease_until",
                condition="lease_owner = :owner",
                values={":owner": owner},
                return_values="NONE",
            )
        except Conflict:
            return False
        return True


def _no_pending() -> dict[str, None]:
    return {
        name: None
        for name in (
            "pending_realm_id",
            "pending_company_name",
            "pending_requested_at",
            "pending_requested_by",
            "pending_token_blob",
            "pending_access_expires_at",
            "pending_refresh_expires_at",
            "pending_refresh_hard_expires_at",
        )
    }


__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "NEEDS_RECONNECT",
    "PENDING_SWITCH",
    "STATUSES",
    "USABLE",
    "ArchivedConnection",
    "Connection",
    "ConnectionSummary",
    "ConnectionsRepository",
    "PendingSwitch",
    "RealmTaken",
    "TokenCipher",
    "Tokens",
]
