"""The admin side of the sync records: the sync-status browse and counts, and the firm admin's changes to a
record (unsync detach, link to an existing QuickBooks object, "don't sync").

:class:`RecordAdmin` reads and writes the same record items as :class:`~qbsync.repositories.records.
RecordsRepository` (docs/data-model.md), but never through the lease: its updates are conditional on the
record's status instead (an admin action on a record being synced answers Conflict). The lease state machine
the sync workers use stays in :mod:`qbsync.repositories.records`; this module is for
:mod:`qbsync.api.records_routes`, :mod:`qbsync.errorcenter.actions` and :mod:`qbsync.inbound.services_import`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict
from qbsync.models.record_key import RecordKey
from qbsync.repositories.connections import iso
from qbsync.repositories.records import (
    _ERROR_ATTRS,
    _INTENT_ATTRS,
    _MAX_PAGE,
    EXCLUDED_BY_FIRM,
    FAILED,
    LAST_EVENT_ATTR,
    NOT_SYNCED,
    SKIPPED,
    STATUSES,
    SYNCED,
    SYNCED_VIA_ATTR,
    SYNCING,
    QboLink,
    RecordError,
    RecordPage,
    SyncRecord,
    _check_entity_type,
    _check_id,
    _check_qbo_entity,
    _check_version,
    _num,
    _qbo_pk,
    _status_pk,
)

__all__ = ["RecordAdmin"]


class RecordAdmin:
    """Admin reads and changes of sync records (see the module doc)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    # ------------------------------------------------------------------ admin reads (sync status API)

    def browse(  # noqa: C901, PLR0913
        self,
        firm_id: str,
        realm_id: str,
        *,
        entity_type: str | None = None,
        status: str | None = None,
        client_id: str | None = None,
        limit: int = 50,
        start_key: Mapping[str, Any] | None = None,
        max_evaluated: int = 1000,
    ) -> RecordPage:
        """One page of the realm's records for the admin API, optionally narrowed.

        * no ``status``: the base table, ``begins_with(sk, "REC#[{entity_type}#]")``, by type then id;
        * ``status``: the gsi2 status partition (newest first), like :meth:`list_by_status`;
        * ``client_id``: records whose ``last_event`` names that client account (``account_id`` of an
          invoice, payment, refund or fee) plus the client account record itself. A FilterExpression
          (``contains(last_event, '"account_id":"<id>"')``) drops the others server-side, then the JSON is
          checked exactly; DynamoDB still reads every record of the scope, so one call evaluates at most
          ``max_evaluated`` items and may return fewer than ``limit`` rows with a ``next_key``.
          Events without an ``account_id`` (voids, deletions) match only through older versions.

        ``start_key`` is a page's ``next_key`` (checked to belong to this firm, realm and scope).

        Raises:
            ValueError: bad ids, entity type, status, limit, or a start key of another scope.
        """
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        if entity_type is not None:
            _check_entity_type(entity_type)
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if not 1 <= limit <= _MAX_PAGE:
            raise ValueError(f"limit must be 1 to {_MAX_PAGE}")
        if client_id is not None:
            _check_id(client_id, "client_id")
        type_prefix = f"{entity_type}#" if entity_type else ""
        values: dict[str, Any]
        if status is None:
            index = None
            condition = "pk = :pk AND begins_with(sk, :prefix)"
            values = {":pk": f"FIRM#{firm_id}#REALM#{realm_id}", ":prefix": f"REC#{type_prefix}"}
            key_attrs: tuple[str, ...] = ("pk", "sk")
        else:
            index = "gsi2"
            condition = "gsi2pk = :pk"
            values = {":pk": _status_pk(firm_id, realm_id, status)}
            if type_prefix:
                condition += " AND begins_with(gsi2sk, :prefix)"
                values[":prefix"] = type_prefix
            key_attrs = ("pk", "sk", "gsi2pk", "gsi2sk")
        if start_key is not None:
            scope = values[":prefix"] if status is None else f"{values[':pk']}|{values.get(':prefix', '')}"
            self._check_start_key(start_key, key_attrs, f"FIRM#{firm_id}#REALM#{realm_id}", scope)
        names: dict[str, str] | None = None
        filter_expression = None
        if client_id is not None:
            names = {"#e": LAST_EVENT_ATTR, "#t": "entity_type", "#p": "platform_id"}
            values[":needle"] = json.dumps({"account_id": client_id}, separators=(",", ":"))[1:-1]
            values[":acct"] = "client_account"
            values[":cid"] = client_id
            filter_expression = "contains(#e, :needle) OR (#t = :acct AND #p = :cid)"
        found: list[SyncRecord] = []
        evaluated = 0
        cursor: dict[str, Any] | None = dict(start_key) if start_key else None
        while True:
            page_limit = limit - len(found) if client_id is None else min(100, max_evaluated - evaluated)
            page = self._table.query_page(
                index=index,
                key_condition=condition,
                names=names,
                values=values,
                filter_expression=filter_expression,
                forward=status is None,
                limit=page_limit,
                start_key=cursor,
            )
            evaluated += page_limit
            cursor = page.last_key
            for position, item in enumerate(page.items):
                if client_id is not None and not self._names_client(item, client_id):
                    continue
                found.append(SyncRecord.from_item(item))
                if len(found) == limit:
                    more = position < len(page.items) - 1 or page.last_key is not None
                    return RecordPage(found, {a: item[a] for a in key_attrs} if more else None)
            if cursor is None or evaluated >= max_evaluated:
                return RecordPage(found, cursor)

    @staticmethod
    def _check_start_key(
        start_key: Mapping[str, Any], key_attrs: tuple[str, ...], base_pk: str, scope: str
    ) -> None:
        """A cursor must be a key of this listing: this firm and realm, this status and type prefix."""
        if set(start_key) != set(key_attrs) or not all(isinstance(start_key[a], str) for a in key_attrs):
            raise ValueError("the cursor does not belong to this listing")
        ok = start_key["pk"] == base_pk and start_key["sk"].startswith("REC#")
        if "gsi2pk" in start_key:
            ok = ok and f"{start_key['gsi2pk']}|{start_key['gsi2sk']}".startswith(scope)
        else:
            ok = ok and start_key["sk"].startswith(scope)
        if not ok:
            raise ValueError("the cursor does not belong to this listing")

    @staticmethod
    def _names_client(item: Mapping[str, Any], client_id: str) -> bool:
        if item.get("entity_type") == "client_account" and item.get("platform_id") == client_id:
            return True
        raw = item.get(LAST_EVENT_ATTR)
        try:
            envelope = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            return False
        detail = envelope.get("detail") if isinstance(envelope, dict) else None
        data = detail.get("data") if isinstance(detail, dict) else None
        return isinstance(data, dict) and data.get("account_id") == client_id

    def count_by_status(self, firm_id: str, realm_id: str) -> dict[str, dict[str, int]]:
        """Record counts of the realm: ``{entity_type: {status: n}}`` (only non-zero counts).

        Reads every record item of the realm (one paginated Query of the firm's partition): the cost
        grows with the firm's record count, which is fine for an admin page but not for a hot path.
        """
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        counts: dict[str, dict[str, int]] = {}
        for item in self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": f"FIRM#{firm_id}#REALM#{realm_id}", ":prefix": "REC#"},
        ):
            entity_type = str(item.get("entity_type") or "")
            status = str(item.get("status") or NOT_SYNCED)
            per_type = counts.setdefault(entity_type, {})
            per_type[status] = per_type.get(status, 0) + 1
        return counts

    # ------------------------------------------------------ admin actions (qbsync.errorcenter.actions)

    def refunds_of_payment(self, payment: RecordKey) -> list[SyncRecord]:
        """The refund records of ``payment_id`` that are linked to a QBO object (unsync of a payment).

        One consistent Query of the realm's ``REC#refund#`` items, filtered server-side to those with a
        ``qbo_id`` whose ``last_event`` mentions the payment id, then checked exactly on the parsed event
        (``detail.data.payment_id``). The read cost grows with the realm's refund records (a rare manual
        action; no child pointer needed).
        """
        firm_id, realm_id, payment_id = payment.firm_id, payment.realm_id, payment.platform_id
        found = []
        for item in self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            filter_expression="attribute_exists(qbo_id) AND contains(#e, :pid)",
            names={"#e": LAST_EVENT_ATTR},
            values={
                ":pk": f"FIRM#{firm_id}#REALM#{realm_id}",
                ":prefix": "REC#refund#",
                ":pid": payment_id,
            },
            consistent=True,
        ):
            if _event_data(item).get("payment_id") == payment_id:
                found.append(SyncRecord.from_item(item))
        return found

    def names_and_links(
        self, firm_id: str, realm_id: str, entity_type: str
    ) -> list[tuple[str | None, str | None]]:
        """``(last_event data.name, qbo_id)`` of each of the realm's records of ``entity_type`` (None when
        absent). One paginated Query of the realm's ``REC#{entity_type}#`` items."""
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        _check_entity_type(entity_type)
        out: list[tuple[str | None, str | None]] = []
        for item in self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": f"FIRM#{firm_id}#REALM#{realm_id}", ":prefix": f"REC#{entity_type}#"},
        ):
            name = _event_data(item).get("name")
            qbo_id = item.get("qbo_id")
            out.append((name if isinstance(name, str) else None, str(qbo_id) if qbo_id else None))
        return out

    def linked(self, firm_id: str, realm_id: str) -> Iterator[SyncRecord]:
        """Every record of the realm linked to a QBO object (``qbo_id`` set), any status: the records a
        full comparison with QuickBooks reads back (issue 14). One consistent Query of the realm's
        partition, ``begins_with(sk, REC#)``, filtered on ``attribute_exists(qbo_id)``, paged lazily."""
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        for item in self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :rec)",
            filter_expression="attribute_exists(qbo_id)",
            values={":pk": f"FIRM#{firm_id}#REALM#{realm_id}", ":rec": "REC#"},
            consistent=True,
        ):
            yield SyncRecord.from_item(item)

    def with_data(self, firm_id: str, realm_id: str) -> Iterator[tuple[SyncRecord, dict[str, Any]]]:
        """Every record of the realm with its stored platform data (``last_event``'s ``detail.data``, {} when
        none): what the drift report compares (J.3). One consistent Query of the realm's ``REC#`` items,
        paged lazily."""
        _check_id(firm_id, "firm_id")
        _check_id(realm_id, "realm_id")
        for item in self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :rec)",
            values={":pk": f"FIRM#{firm_id}#REALM#{realm_id}", ":rec": "REC#"},
            consistent=True,
        ):
            yield SyncRecord.from_item(item), _event_data(item)

    def was_unsynced(self, key: RecordKey) -> bool:
        """True when an admin unsynced the record (:meth:`detach_qbo`) and it was not synced again since."""
        item = self._table.get(
            key.item_key(),
            consistent=True,
            attributes=["unsynced_at", "qbo_id"],
        )
        return item is not None and "unsynced_at" in item and "qbo_id" not in item

    def _admin_update(  # noqa: PLR0913
        self,
        key: RecordKey,
        *,
        status: str,
        sets: Mapping[str, Any],
        removes: Sequence[str],
        now: float,
        condition: str = "",
        values: Mapping[str, Any] | None = None,
        new_epoch: bool = False,
    ) -> SyncRecord:
        """An admin's change of a record outside any lease: refused (Conflict) while a worker holds a live
        lease, and only on an existing record; ``condition`` adds to that. ``new_epoch``: ``epoch`` + 1."""
        names: dict[str, str] = {"#status": "status", "#lease": "lease_until"}
        vals: dict[str, Any] = {":syncing": SYNCING, ":now": _num(now), ":one": 1, ":zero": 0}
        vals.update(values or {})
        parts = ["revision = if_not_exists(revision, :zero) + :one", "updated_at = :now"]
        if new_epoch:
            parts.append("epoch = if_not_exists(epoch, :zero) + :one")
        all_sets = {
            "status": status,
            "gsi2pk": _status_pk(key.firm_id, key.realm_id, status),
            "gsi2sk": f"{key.record_type}#{iso(now)}",
            **sets,
        }
        for i, (attr, value) in enumerate(all_sets.items()):
            names[f"#s{i}"] = attr
            vals[f":s{i}"] = value
            parts.append(f"#s{i} = :s{i}")
        remove_attrs = dict.fromkeys([*removes, "owner", "lease_until", "prev_status"])
        for i, attr in enumerate(remove_attrs):
            names[f"#r{i}"] = attr
        removed = ", ".join(f"#r{i}" for i in range(len(remove_attrs)))
        update = "SET " + ", ".join(parts) + " REMOVE " + removed
        guard = "attribute_exists(pk) AND (#status <> :syncing OR #lease <= :now)"
        try:
            item = self._table.update(
                key.item_key(),
                update=update,
                condition=f"{guard} AND ({condition})" if condition else guard,
                names=names,
                values=vals,
            )
        except Conflict:
            raise Conflict(
                "the sync record is being synced or changed meanwhile",
                firm_id=key.firm_id,
                realm_id=key.realm_id,
                entity=key.record_type,
                entity_id=key.platform_id,
            ) from None
        return SyncRecord.from_item(item)

    def detach_qbo(self, key: RecordKey, *, by: str | None, now: float) -> SyncRecord:
        """After an unsync deleted its QBO object: ``not_synced``, mapping and reverse lookup removed (the
        platform version, ``last_event`` and the rest kept). Raises Conflict under a live lease.

        ``epoch`` + 1: the record's QBO object of the next sync is a new one, so its writes need request ids
        QBO has not seen (the writer salts ``requestid`` with a non-zero ``epoch``); without it a re-sync of
        the same platform version would get the deleted object's create answer replayed."""
        sets: dict[str, Any] = {"unsynced_at": _num(now)}
        if by:
            sets["unsynced_by"] = by
        return self._admin_update(
            key,
            status=NOT_SYNCED,
            sets=sets,
            removes=[
                "qbo_entity",
                "qbo_id",
                "sync_token",
                "deep_link",
                "gsi1pk",
                "gsi1sk",
                "applied_op",
                "waiting_on",
                "skip_reason",
                "released_version",
                "note",
                *_INTENT_ATTRS,
                *_ERROR_ATTRS,
            ],
            now=now,
            new_epoch=True,
        )

    def link_qbo(
        self,
        key: RecordKey,
        *,
        link: QboLink,
        version: int,
        now: float,
    ) -> SyncRecord:
        """An admin mapped the record to an existing QBO object (``link``): ``synced`` at ``version`` (so a
        redelivery of that version is a no-op), reverse lookup set. Refused (Conflict) under a live lease,
        when the record is linked to another object, or when a newer version was applied meanwhile."""
        _check_version(version)
        qbo_entity, qbo_id = _check_qbo_entity(link.qbo_entity), _check_id(link.qbo_id, "qbo_id")
        sets: dict[str, Any] = {
            "qbo_entity": qbo_entity,
            "qbo_id": qbo_id,
            "gsi1pk": _qbo_pk(key.realm_id, qbo_entity, qbo_id),
            "gsi1sk": "REC",
            "platform_version": version,
            "applied_op": "create",
            "attempts": 0,
            SYNCED_VIA_ATTR: "link",  # not a write of the platform event: no lag sample
        }
        removes = [
            *_INTENT_ATTRS,
            *_ERROR_ATTRS,
            "waiting_on",
            "skip_reason",
            "unsynced_at",
            "unsynced_by",
            "released_version",
            "note",
        ]
        for attr, value in (("sync_token", link.sync_token), ("deep_link", link.deep_link)):
            if value is None:
                removes.append(attr)
            else:
                sets[attr] = value
        return self._admin_update(
            key,
            status=SYNCED,
            sets=sets,
            removes=removes,
            now=now,
            condition="(attribute_not_exists(qbo_id) OR qbo_id = :qid) AND "
            "(attribute_not_exists(platform_version) OR platform_version <= :ver)",
            values={":qid": qbo_id, ":ver": version},
        )

    def let_qbo_number(self, key: RecordKey, *, by: str | None, now: float) -> SyncRecord:
        """The firm chose "let QuickBooks number it" for a failed invoice whose number QuickBooks refuses:
        ``qbo_numbers`` is set (kept from then on: every later version of the invoice is sent without its
        platform number), the record stays ``failed`` until the resync the caller queues. Raises Conflict
        under a live lease or when the record is no longer failed (a newer version synced meanwhile)."""
        if key.record_type != "invoice":
            raise ValueError("only invoices have a number QuickBooks can assign")
        sets: dict[str, Any] = {"qbo_numbers": True, "qbo_numbers_at": _num(now)}
        if by:
            sets["qbo_numbers_by"] = by
        return self._admin_update(
            key,
            status=FAILED,
            sets=sets,
            removes=[],
            now=now,
            condition="#status = :failed",
            values={":failed": FAILED},
        )

    # ------------------------------------------------------------------ changed in QuickBooks (issue 14)

    def mark_changed_in_qbo(
        self,
        key: RecordKey,
        *,
        error: RecordError,
        sync_token: str | None,
        deleted: bool,
        seen_revision: int,
        now: float,
    ) -> SyncRecord:
        """Someone edited (``deleted`` False) or deleted the record's QBO object in QuickBooks: ``failed``
        with ``error``, ``epoch`` + 1 (the next push gets request ids QBO has not seen, so it is written
        rather than replayed). Edited: ``sync_token`` becomes QBO's (the push goes out with it, and a
        repeat of the same change is recognised). Deleted: mapping and reverse lookup removed (the push
        creates a new object). Only on the record as it was read (``seen_revision``), with no write in
        flight and outside a live lease; Conflict otherwise (read it again)."""
        sets: dict[str, Any] = {
            "error_code": error.code,
            "error_category": error.category,
            "error_message": error.message[:1000],
            "error_open": True,  # the push that syncs it again resolves the error center entry
        }
        removes = ["error_qbo_code", "waiting_on", "skip_reason"]
        if deleted:
            removes += ["qbo_entity", "qbo_id", "sync_token", "deep_link", "gsi1pk", "gsi1sk", "note"]
        elif sync_token is not None:
            sets["sync_token"] = str(sync_token)
        return self._admin_update(
            key,
            status=FAILED,
            sets=sets,
            removes=removes,
            now=now,
            condition="revision = :rev AND attribute_not_exists(intent_request_id)",
            values={":rev": seen_revision},
            new_epoch=True,
        )

    def settle_in_qbo(
        self,
        key: RecordKey,
        *,
        sync_token: str | None,
        seen_revision: int,
        now: float,
        last_event: Mapping[str, Any] | None = None,
    ) -> SyncRecord:
        """QuickBooks' object matches the platform in every field that matters (a change elsewhere, or an
        edit that was undone), or the firm accepted QuickBooks' change: ``synced`` with QBO's
        ``sync_token``, error removed. Only on the record as read (``seen_revision``), nothing in flight.
        ``synced_via`` ``settle``: no write of the platform event, so no lag sample. ``last_event``: the
        stored platform event replaced in the same write (an accepted change: the platform's data takes
        QuickBooks' values, so the drift report and a later Resync start from them)."""
        sets: dict[str, Any] = {SYNCED_VIA_ATTR: "settle"}
        removes = [*_ERROR_ATTRS]
        if sync_token is not None:
            sets["sync_token"] = str(sync_token)
        if last_event is not None:
            sets[LAST_EVENT_ATTR] = json.dumps(dict(last_event), separators=(",", ":"))
        return self._admin_update(
            key,
            status=SYNCED,
            sets=sets,
            removes=removes,
            now=now,
            condition="revision = :rev AND attribute_not_exists(intent_request_id) "
            "AND attribute_exists(qbo_id)",
            values={":rev": seen_revision},
        )

    def unlink_qbo(self, key: RecordKey, *, by: str | None, now: float) -> SyncRecord:
        """The firm keeps QuickBooks' version of a record changed there and stops syncing it: the mapping
        and reverse lookup are removed (QuickBooks' object stays as it is), the record is ``skipped``
        (:data:`EXCLUDED_BY_FIRM`: later platform versions stay skipped until a manual sync, which writes a
        new object), ``epoch`` + 1. Only on a ``failed`` record outside a live lease (Conflict otherwise)."""
        sets: dict[str, Any] = {"skip_reason": EXCLUDED_BY_FIRM, "unlinked_at": _num(now)}
        if by:
            sets["unlinked_by"] = by
        return self._admin_update(
            key,
            status=SKIPPED,
            sets=sets,
            removes=[
                "qbo_entity",
                "qbo_id",
                "sync_token",
                "deep_link",
                "gsi1pk",
                "gsi1sk",
                "waiting_on",
                "released_version",
                "note",
                *_ERROR_ATTRS,
            ],
            now=now,
            condition="#status = :failed AND attribute_not_exists(intent_request_id)",
            values={":failed": FAILED},
            new_epoch=True,
        )

    def exclude(
        self,
        key: RecordKey,
        *,
        reason: str,
        by: str | None,
        now: float,
    ) -> SyncRecord:
        """The firm chose not to sync the record: ``skipped`` with ``reason`` (``excluded_by``/``excluded_at``
        kept). A pending write intent stays for the next attempt. Raises Conflict under a live lease."""
        if not reason:
            raise ValueError("an exclusion needs a reason")
        sets: dict[str, Any] = {"skip_reason": reason[:500], "excluded_at": _num(now)}
        if by:
            sets["excluded_by"] = by
        return self._admin_update(
            key,
            status=SKIPPED,
            sets=sets,
            removes=[*_ERROR_ATTRS, "waiting_on"],
            now=now,
        )


def _event_data(item: Mapping[str, Any]) -> dict[str, Any]:
    """``detail.data`` of an item's stored ``last_event`` ({} when absent or not JSON)."""
    raw = item.get(LAST_EVENT_ATTR)
    try:
        envelope = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {}
    detail = envelope.get("detail") if isinstance(envelope, dict) else None
    data = detail.get("data") if isinstance(detail, dict) else None
    return data if isinstance(data, dict) else {}
