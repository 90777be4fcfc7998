"""Reads done ahead for a whole SQS batch of the outbound sync (issue 12): one BatchGetItem for every
record of the batch and its prerequisites, one QBO query per entity for the exact-name matches of
its new accounts and services.

:meth:`SyncService.prepare <qbsync.outbound.service.SyncService.prepare>` calls :meth:`BatchPrefetch.load`
inside the batch's :class:`~qbsync.outbound.batch.BatchScope`, before the batch's records run. Then:

- a record's run takes its own item and its prerequisites from the batch's read (:meth:`BatchPrefetch.seen`)
  when all of them are there; a record run earlier in the batch is dropped from it once it has run
  (:meth:`BatchPrefetch.ran`), so a later record that needs it reads it afresh. What another worker changed
  since the batch's read is caught as before: the claim's conditional write (the claim reads again and
  retries once), and a blocked record's re-check of its prerequisites.
- a new account's or service's exact-name match (C.1/C.2) takes the rows of one query for every new name
  of the batch (:meth:`BatchPrefetch.name_rows`), asked when the first of them is looked up, instead of
  querying QuickBooks for each name; a batch whose new names are all refused or skipped asks nothing.

It is only a cheaper way to read: when the batch's read fails (logged), every record reads for itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qbsync.models.record_key import RecordKey
from qbsync.outbound.batch import BatchScope, current_scope
from qbsync.outbound.lookups import NAMES_PER_QUERY, names_statement
from qbsync.qbo.client import QboClient
from qbsync.repositories.records import RecordsRepository, SyncRecord

__all__ = ["BatchPrefetch"]

logger = logging.getLogger("qbsync.outbound.service")

_SEEN = ("prefetch", "records")
_NAMES = ("prefetch", "names")
_PENDING = ("prefetch", "names pending")
#: the records one BatchGetItem call reads (DynamoDB's maximum)
_MAX_KEYS = 100


def _name_key(qbo_entity: str) -> str:
    return "DisplayName" if qbo_entity == "Customer" else "Name"


class BatchPrefetch:
    """The batch's reads ahead (see the module doc), kept in the open :class:`BatchScope`."""

    def __init__(self, records: RecordsRepository) -> None:
        self._records = records

    # ------------------------------------------------------------------ records

    def load(
        self, keys: Iterable[RecordKey], known: Mapping[RecordKey, SyncRecord | None] | None = None
    ) -> None:
        """Read ``keys`` (the batch's records and their prerequisites) in one consistent BatchGetItem (one
        per 100 keys). ``known``: records read ahead for several batches (the bulk path's threads,
        :meth:`SyncService.read_ahead <qbsync.outbound.service.SyncService.read_ahead>`), taken as they are
        instead of reading them again. Outside a batch: nothing."""
        scope = current_scope()
        unique = list(dict.fromkeys(keys))
        if scope is None or not unique:
            return
        seen = self._seen(scope)
        if known:
            seen.update({k: known[k] for k in unique if k in known})
            unique = [k for k in unique if k not in known]
        if unique:
            seen.update(self._records.get_many(unique[: _MAX_KEYS * 3]))

    def seen(self, keys: Sequence[RecordKey]) -> dict[RecordKey, SyncRecord | None] | None:
        """The batch's read of every one of ``keys``, or None when any of them is not in it."""
        scope = current_scope()
        if scope is None:
            return None
        seen = self._seen(scope)
        if any(k not in seen for k in keys):
            return None
        return {k: seen[k] for k in keys}

    def ran(self, key: RecordKey) -> None:
        """The record of ``key`` ran in this batch: later records read it afresh."""
        scope = current_scope()
        if scope is not None:
            self._seen(scope).pop(key, None)

    @staticmethod
    def _seen(scope: BatchScope) -> dict[RecordKey, SyncRecord | None]:
        seen: dict[RecordKey, SyncRecord | None] = scope.remember(_SEEN, dict)
        return seen

    # ------------------------------------------------------------------ exact-name matches

    def expect_names(self, realm_id: str, qbo_entity: str, names: Iterable[str]) -> None:
        """The batch's new ``qbo_entity`` objects (Customer, Item) of ``realm_id`` may look for these names.
        Nothing is asked yet: the first record that really looks one up (:meth:`name_rows`) asks for all of
        them, so a batch whose records are all refused or skipped never queries QuickBooks."""
        scope = current_scope()
        if scope is None:
            return
        pending: dict[tuple[str, str], set[str]] = scope.remember(_PENDING, dict)
        pending.setdefault((realm_id, qbo_entity), set()).update(n for n in names if n)

    def name_rows(self, qbo: QboClient, qbo_entity: str, name: str) -> list[dict[str, Any]] | None:
        """The active ``qbo_entity`` objects named exactly ``name`` (possibly none), from one query for every
        name the batch expects (20 names a query); None when ``name`` was not expected (outside a batch, or
        a record the batch did not read ahead): the caller queries for it alone."""
        scope = current_scope()
        if scope is None:
            return None
        asked: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = scope.remember(_NAMES, dict)
        table = asked.setdefault((qbo.realm_id, qbo_entity), {})
        if name in table:
            return table[name]
        pending: dict[tuple[str, str], set[str]] = scope.remember(_PENDING, dict)
        wanted = pending.pop((qbo.realm_id, qbo_entity), set())
        if name not in wanted:
            if wanted:
                pending[(qbo.realm_id, qbo_entity)] = wanted
            return None
        table.update(self.names_now(qbo, qbo_entity, (n for n in wanted if n not in table)))
        return table[name]

    @staticmethod
    def names_now(qbo: QboClient, qbo_entity: str, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The active ``qbo_entity`` objects named exactly each of ``names`` (possibly none), asked now: one
        query per 20 names."""
        key = _name_key(qbo_entity)
        ordered = sorted(set(names))
        table: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(ordered), NAMES_PER_QUERY):
            chunk = ordered[start : start + NAMES_PER_QUERY]
            rows = qbo.query(names_statement(qbo_entity, chunk))
            for each in chunk:
                table[each] = [r for r in rows if r.get(key) == each]
        return table

    def known_names(self, realm_id: str, qbo_entity: str, table: Mapping[str, list[dict[str, Any]]]) -> None:
        """Inside a batch: name rows read ahead for several batches (:meth:`names_now`) are this batch's
        answers for those names (nothing is asked for them again)."""
        scope = current_scope()
        if scope is None:
            return
        asked: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = scope.remember(_NAMES, dict)
        asked.setdefault((realm_id, qbo_entity), {}).update(table)
