"""The error log (``ErrorLogTable``, ``ERROR_TABLE_NAME``): one entry per failing record, upserted.

Items (docs/data-model.md, ErrorLogTable):

* error entry - pk ``FIRM#{firm_id}``, sk ``ERR#{error_id}``; gsi1 ``FIRM#{firm_id}#CAT#{category}`` /
  ``{status}#{last_seen}``; gsi2 ``FIRM#{firm_id}#STATUS#{status}`` / ``{last_seen}`` (category in lower
  case in keys, ``last_seen`` as ISO UTC with milliseconds so keys sort by time); ``ttl`` 180 days after
  the entry is resolved or skipped, none while open.
* cause pointer - pk ``FIRM#{firm_id}``, sk ``CAUSE#{entity_type}#{platform_id}``, attributes
  ``open_error_id`` (absent when the record has no open error) and ``generation``. It has no gsi keys, so
  it never shows up in lists.

Why a pointer: at most one open error may exist per (firm, entity type, platform id), and two workers
failing on the same record at the same moment must not create two. The error id is deterministic:
``{hash(entity_type, platform_id)}-{generation}``. Creating an entry is ONE transaction: the pointer is
moved to the next generation only if it is still at the generation the writer read and holds no open
error, and the entry is put only if that id does not exist. The loser of a race gets a condition failure,
re-reads and adds an attempt to the winner's entry instead. Updates of an open entry are optimistic on
``attempts`` (the count read), so concurrent records never lose an attempt. Resolving removes
``open_error_id`` and closes the entry in one transaction; the next failure starts a new generation.

A skipped entry stays the record's current error: the same failure again only counts an attempt (no new
notification, ``is_new`` False); a failure with a different reason code opens a new entry (E.3: later
errors still notify).

History (``[{at, action, by?, code?, detail?}]``) is appended on every change of state: ``created``,
``code_changed``, ``skipped``, ``resolved``, and on every admin action
(:meth:`ErrorLogRepository.note_action`: ``resync requested``, ``customer mapped``, ...). Repeats of the
same failure only move ``attempts`` and ``last_seen``, so the item cannot grow without bound.

Errors: :class:`~qbsync.errors.BadRequest` for invalid arguments (bad category/status/limit/cursor,
empty ids); :class:`~qbsync.errors.RetryableError` when the upsert loses its race too many times in a
row; the table adapter's errors otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qbsync import vocab
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.catalog import explain
from qbsync.errors import BadRequest, Conflict, NotFound, QbsyncError, RetryableError
from qbsync.repositories._ddb import as_float, as_int

__all__ = ["ERROR_ID_PATTERN", "RETENTION_SECONDS", "STATUSES", "ErrorEntry", "ErrorLogRepository"]

OPEN = "open"
RESOLVED = "resolved"
SKIPPED = "skipped"
STATUSES: tuple[str, ...] = (OPEN, RESOLVED, SKIPPED)
#: Closed entries expire 180 days after they were resolved/skipped.
RETENTION_SECONDS = 180 * 24 * 3600
MAX_LIMIT = 200
#: what an error id looks like from outside (the ids minted here are ``{16 hex}-{generation}``)
ERROR_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,80}$"
_MAX_RACE = 8
_MESSAGE_MAX = 500
_ACTION_MAX = 64
_DETAIL_MAX = 200
#: an entity-type filtered list page: at most this many queries, each evaluating at least _FILTER_EVALUATE
_FILTER_ROUNDS = 10
_FILTER_EVALUATE = 100
_GSI1 = "gsi1"
_GSI2 = "gsi2"


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One entry of the error center. ``message`` is safe to show (no tokens, no client personal data)."""

    error_id: str
    firm_id: str
    realm_id: str
    entity_type: str
    platform_id: str
    category: str
    status: str
    code: str
    qbo_code: str | None
    message: str
    explanation: str
    fix: str
    attempts: int
    first_seen: float
    last_seen: float
    title: str = ""
    is_new: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def iso_ms(epoch: float) -> str:
    """Sortable ISO UTC timestamp with milliseconds (used in the gsi sort keys)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _need(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def _firm_pk(firm_id: str) -> str:
    return f"FIRM#{firm_id}"


def _cat_key(category: str) -> str:
    return category.lower()


def _cause_key(firm_id: str, entity_type: str, platform_id: str) -> dict[str, str]:
    return {"pk": _firm_pk(firm_id), "sk": f"CAUSE#{entity_type}#{platform_id}"}


def _entry_key(firm_id: str, error_id: str) -> dict[str, str]:
    return {"pk": _firm_pk(firm_id), "sk": f"ERR#{error_id}"}


def _error_id(entity_type: str, platform_id: str, generation: int) -> str:
    digest = hashlib.sha256(f"{entity_type}\x1f{platform_id}".encode()).hexdigest()[:16]
    return f"{digest}-{generation}"


def _index_keys(firm_id: str, category: str, status: str, last_seen: float) -> dict[str, str]:
    seen = iso_ms(last_seen)
    return {
        "gsi1pk": f"{_firm_pk(firm_id)}#CAT#{_cat_key(category)}",
        "gsi1sk": f"{status}#{seen}",
        "gsi2pk": f"{_firm_pk(firm_id)}#STATUS#{status}",
        "gsi2sk": seen,
    }


def safe_message(error: QbsyncError) -> str:
    """The error's own message, one line, bounded. qbsync errors keep QBO's ``Detail`` (which may name
    clients) out of ``str(err)`` and tokens out of every message, so this never copies ``qbo_detail``."""
    explanation = getattr(error, "explanation", None)
    text = explanation if isinstance(explanation, str) and explanation else str(error)
    one_line = " ".join(text.split())
    return one_line[:_MESSAGE_MAX]


def _history(at: float, action: str, by: str | None = None, code: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"at": at, "action": action}
    if by:
        event["by"] = by
    if code:
        event["code"] = code
    return event


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _entry(item: Mapping[str, Any], *, is_new: bool = False) -> ErrorEntry:
    return ErrorEntry(
        error_id=str(item["error_id"]),
        firm_id=str(item["firm_id"]),
        realm_id=str(item.get("realm_id") or ""),
        entity_type=str(item["entity_type"]),
        platform_id=str(item["platform_id"]),
        category=str(item["category"]),
        status=str(item["status"]),
        code=str(item["code"]),
        qbo_code=item.get("qbo_code"),
        message=str(item.get("message") or ""),
        explanation=str(item.get("explanation") or ""),
        fix=str(item.get("fix") or ""),
        title=str(item.get("title") or ""),
        attempts=as_int(item.get("attempts")),
        first_seen=as_float(item.get("first_seen")) or 0.0,
        last_seen=as_float(item.get("last_seen")) or 0.0,
        is_new=is_new,
        history=[_plain(h) for h in item.get("history") or []],
    )


def _encode_cursor(key: Mapping[str, Any]) -> str:
    raw = json.dumps({k: str(v) for k, v in key.items()}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, *, index_pk_name: str, index_pk: str) -> dict[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("invalid cursor") from None
    expected = {"pk", "sk", index_pk_name, index_pk_name.replace("pk", "sk")}
    if (
        not isinstance(key, dict)
        or set(key) != expected
        or not all(isinstance(v, str) for v in key.values())
        or key[index_pk_name] != index_pk  # a cursor of another firm / list is refused
    ):
        raise BadRequest("invalid cursor")
    return key


class ErrorLogRepository:
    """Error entries of the error-log table (see the module doc for items, keys and races).

    Args:
        table: the ``ERROR_TABLE_NAME`` table.
    """

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    # ------------------------------------------------------------------ writes
    def record(
        self,
        *,
        firm_id: str,
        realm_id: str,
        entity_type: str,
        platform_id: str,
        error: QbsyncError,
        now: float,
    ) -> ErrorEntry:
        """Upsert the open error of (firm, entity_type, platform_id) for ``error``.

        No open error → a new entry (attempts 1, first_seen = last_seen = now, ``is_new`` True; notify).
        An open (or skipped) one → attempts + 1, last_seen = now, code/message/explanation updated,
        ``is_new`` False. A skipped entry whose reason code changes is left skipped and a new entry opens.

        Raises:
            BadRequest: an empty id or an ``entity_type`` containing ``#``; ``error`` not a QbsyncError.
            RetryableError: the upsert lost a race ``_MAX_RACE`` times in a row (retry the message).
        """
        _need(firm_id, "firm_id")
        _need(entity_type, "entity_type")
        _need(platform_id, "platform_id")
        if "#" in entity_type:
            raise BadRequest("entity_type must not contain '#'")
        if not isinstance(error, QbsyncError):
            raise BadRequest("record needs a QbsyncError")
        exp = explain(error, entity_type=entity_type)
        fields = {
            "realm_id": realm_id or "",
            "category": exp.category,
            "code": exp.code,
            "qbo_code": error.qbo_code,
            "message": safe_message(error),
            "explanation": exp.explanation,
            "fix": exp.fix,
            "title": exp.title,
        }
        cause_key = _cause_key(firm_id, entity_type, platform_id)
        for _ in range(_MAX_RACE):
            cause = self._table.get(cause_key, consistent=True)
            generation = as_int(cause.get("generation")) if cause else 0
            open_id = cause.get("open_error_id") if cause else None
            current = self._table.get(_entry_key(firm_id, open_id), consistent=True) if open_id else None
            try:
                if (
                    current is None
                    or current["status"] not in (OPEN, SKIPPED)
                    or (current["status"] == SKIPPED and current["code"] != exp.code)
                ):
                    return self._create(
                        firm_id, entity_type, platform_id, generation, open_id, cause is not None, fields, now
                    )
                return self._bump(current, fields, now)
            except Conflict:
                continue  # another worker changed the pointer or the entry: read again
        raise RetryableError(
            "the error log entry changed concurrently too many times; retry later",
            firm_id=firm_id,
            entity=entity_type,
            entity_id=platform_id,
        )

    def _create(  # noqa: PLR0913
        self,
        firm_id: str,
        entity_type: str,
        platform_id: str,
        generation: int,
        previous_id: str | None,
        cause_exists: bool,
        fields: Mapping[str, Any],
        now: float,
    ) -> ErrorEntry:
        error_id = _error_id(entity_type, platform_id, generation + 1)
        item: dict[str, Any] = {
            **_entry_key(firm_id, error_id),
            **_index_keys(firm_id, fields["category"], OPEN, now),
            "error_id": error_id,
            "firm_id": firm_id,
            "entity_type": entity_type,
            "platform_id": platform_id,
            "status": OPEN,
            "attempts": 1,
            "first_seen": now,
            "last_seen": now,
            "history": [_history(now, "created", code=fields["code"])],
            **{k: v for k, v in fields.items() if v is not None},
        }
        if cause_exists:
            # Still at the generation we read, and either free or still holding the skipped entry we saw.
            pointer_condition = "#gen = :gen AND " + (
                "#open = :prev" if previous_id else "attribute_not_exists(#open)"
            )
            values: dict[str, Any] = {":gen": generation, ":next": generation + 1, ":id": error_id}
            if previous_id:
                values[":prev"] = previous_id
        else:
            pointer_condition = "attribute_not_exists(pk)"
            values = {":next": generation + 1, ":id": error_id}
        names = {"#gen": "generation", "#open": "open_error_id"}
        if not cause_exists:
            names.pop("#gen")
            names.pop("#open")
        pointer = self._table.tx_update(
            _cause_key(firm_id, entity_type, platform_id),
            update="SET generation = :next, open_error_id = :id",
            condition=pointer_condition,
            names=names or None,
            values=values,
        )
        put = self._table.tx_put(item, condition="attribute_not_exists(sk)")
        self._table.transact_write([pointer, put])
        return _entry(item, is_new=True)

    def _bump(self, current: Mapping[str, Any], fields: Mapping[str, Any], now: float) -> ErrorEntry:
        status = str(current["status"])
        last_seen = max(now, as_float(current.get("last_seen")) or now)
        sets = {**fields, "last_seen": last_seen}
        sets.update(_index_keys(str(current["firm_id"]), fields["category"], status, last_seen))
        names: dict[str, str] = {"#status": "status"}
        values: dict[str, Any] = {
            ":one": 1,
            ":attempts": as_int(current.get("attempts")),
            ":status": status,
        }
        clauses = ["attempts = attempts + :one"]
        removes = []
        for i, (name, value) in enumerate(sets.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")  # e.g. no QBO code any more
            else:
                clauses.append(f"#f{i} = :f{i}")
                values[f":f{i}"] = value
        if fields["code"] != current.get("code"):
            clauses.append("history = list_append(history, :h)")
            values[":h"] = [_history(now, "code_changed", code=fields["code"])]
        update = "SET " + ", ".join(clauses) + (" REMOVE " + ", ".join(removes) if removes else "")
        # Optimistic on the attempts we read: a concurrent record makes this fail and re-read.
        item = self._table.update(
            {"pk": current["pk"], "sk": current["sk"]},
            update=update,
            condition="attempts = :attempts AND #status = :status",
            names=names,
            values=values,
        )
        return _entry(item, is_new=False)

    def resolve(self, *, firm_id: str, entity_type: str, platform_id: str, now: float) -> None:
        """Close the open (or skipped) error of the record: status ``resolved``, history ``resolved``,
        ttl set. A no-op when the record has none (also when another worker resolved it first)."""
        _need(firm_id, "firm_id")
        _need(entity_type, "entity_type")
        _need(platform_id, "platform_id")
        cause_key = _cause_key(firm_id, entity_type, platform_id)
        for _ in range(_MAX_RACE):
            cause = self._table.get(cause_key, consistent=True)
            open_id = cause.get("open_error_id") if cause else None
            if not open_id:
                return
            current = self._table.get(_entry_key(firm_id, open_id), consistent=True)
            try:
                self._close(cause_key, open_id, current, RESOLVED, now, by=None)
                return
            except Conflict:
                continue
        raise RetryableError(
            "the error log entry changed concurrently too many times; retry later",
            firm_id=firm_id,
            entity=entity_type,
            entity_id=platform_id,
        )

    def skip(self, firm_id: str, error_id: str, *, now: float, by: str | None = None) -> ErrorEntry:
        """Mark an open error skipped (E.3: stop retrying and notifying about this cause).

        The entry stays the record's current error, so repeats of the same failure do not notify again.

        Raises:
            NotFound: no such error of this firm. Conflict: it is not open (resolved or skipped).
        """
        _need(firm_id, "firm_id")
        _need(error_id, "error_id")
        current = self._table.get(_entry_key(firm_id, error_id), consistent=True)
        if current is None:
            raise NotFound("no such error")
        if current["status"] != OPEN:
            raise Conflict(f"the error is {current['status']}, not open")
        sets = {
            "status": SKIPPED,
            "ttl": int(now) + RETENTION_SECONDS,
            **_index_keys(firm_id, str(current["category"]), SKIPPED, as_float(current["last_seen"]) or now),
        }
        return _entry(self._set_status(current, sets, _history(now, "skipped", by=by)))

    def note_action(
        self,
        firm_id: str,
        error_id: str,
        *,
        action: str,
        by: str | None,
        now: float,
        detail: str | None = None,
    ) -> ErrorEntry:
        """Append ``{at, action, by?, detail?}`` to the entry's history (an admin's action on the error:
        "resync requested", "mapped customer", ...). The status is not changed. ``detail`` is a short
        machine-readable note (ids only, never personal data); it is cut to 200 characters.

        Raises:
            BadRequest: an empty id or action. NotFound: no such error of this firm.
        """
        _need(firm_id, "firm_id")
        _need(error_id, "error_id")
        _need(action, "action")
        event = _history(now, action[:_ACTION_MAX], by=by)
        if detail:
            event["detail"] = " ".join(str(detail).split())[:_DETAIL_MAX]
        try:
            item = self._table.update(
                _entry_key(firm_id, error_id),
                update="SET history = list_append(if_not_exists(history, :empty), :h)",
                condition="attribute_exists(sk)",
                values={":h": [event], ":empty": []},
            )
        except Conflict:
            raise NotFound("no such error") from None
        return _entry(item)

    def _close(
        self,
        cause_key: Mapping[str, str],
        error_id: str,
        current: Mapping[str, Any] | None,
        status: str,
        now: float,
        *,
        by: str | None,
    ) -> None:
        pointer = self._table.tx_update(
            cause_key,
            update="REMOVE open_error_id",
            condition="open_error_id = :id",
            values={":id": error_id},
        )
        if current is None:  # dangling pointer (the entry expired): just free the cause
            self._table.transact_write([pointer])
            return
        last_seen = as_float(current.get("last_seen")) or now
        sets = {
            "status": status,
            "ttl": int(now) + RETENTION_SECONDS,
            "closed_at": now,
            **_index_keys(str(current["firm_id"]), str(current["category"]), status, last_seen),
        }
        names = {f"#f{i}": name for i, name in enumerate(sets)}
        names["#status"] = "status"
        values: dict[str, Any] = {f":f{i}": value for i, value in enumerate(sets.values())}
        values[":h"] = [_history(now, status, by=by)]
        values[":was"] = current["status"]
        update = "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(sets)))
        update += ", history = list_append(history, :h)"
        entry = self._table.tx_update(
            {"pk": current["pk"], "sk": current["sk"]},
            update=update,
            condition="#status = :was",
            names=names,
            values=values,
        )
        self._table.transact_write([pointer, entry])

    def _set_status(
        self, current: Mapping[str, Any], sets: Mapping[str, Any], event: dict[str, Any]
    ) -> dict[str, Any]:
        names = {f"#f{i}": name for i, name in enumerate(sets)}
        names["#status"] = "status"
        values: dict[str, Any] = {f":f{i}": value for i, value in enumerate(sets.values())}
        values[":h"] = [event]
        values[":was"] = current["status"]
        update = "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(sets)))
        update += ", history = list_append(history, :h)"
        return self._table.update(
            {"pk": current["pk"], "sk": current["sk"]},
            update=update,
            condition="#status = :was",
            names=names,
            values=values,
        )

    # ------------------------------------------------------------------ reads
    def current(self, firm_id: str, entity_type: str, platform_id: str) -> ErrorEntry | None:
        """The record's current (open or skipped) entry, through its cause pointer; None when it has none."""
        _need(firm_id, "firm_id")
        _need(entity_type, "entity_type")
        _need(platform_id, "platform_id")
        cause = self._table.get(_cause_key(firm_id, entity_type, platform_id), consistent=True)
        open_id = cause.get("open_error_id") if cause else None
        return self.get(firm_id, str(open_id)) if open_id else None

    def get(self, firm_id: str, error_id: str) -> ErrorEntry | None:
        """The entry ``error_id`` of the firm, or None (another firm's id is simply not found)."""
        _need(firm_id, "firm_id")
        _need(error_id, "error_id")
        item = self._table.get(_entry_key(firm_id, error_id), consistent=True)
        return _entry(item) if item else None

    def list(
        self,
        firm_id: str,
        *,
        category: str | None = None,
        status: str = OPEN,
        entity_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ErrorEntry], str | None]:
        """Entries of one status (optionally one category and/or one entity type), most recently seen
        first, one page.

        Returns ``(entries, next_cursor)``; ``next_cursor`` is None on the last page. Lists read the
        indexes, so they are eventually consistent. ``entity_type`` is a filter over the index (DynamoDB
        evaluates ``limit`` items before filtering), so a filtered page is filled by up to
        ``_FILTER_ROUNDS`` queries and may still come back short with a cursor: follow ``next_cursor``.

        Raises:
            BadRequest: unknown category or status, ``limit`` outside 1..200, a cursor that is malformed
                or belongs to another firm or list.
        """
        _need(firm_id, "firm_id")
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        if entity_type is not None and (not isinstance(entity_type, str) or not entity_type):
            raise BadRequest("entity_type must be a non-empty string")
        if category is not None:
            if category not in vocab.ERROR_CATEGORIES:
                raise BadRequest(f"category must be one of {', '.join(vocab.ERROR_CATEGORIES)}")
            index, pk_name = _GSI1, "gsi1pk"
            index_pk = f"{_firm_pk(firm_id)}#CAT#{_cat_key(category)}"
            condition = "gsi1pk = :pk AND begins_with(gsi1sk, :status)"
            values: dict[str, Any] = {":pk": index_pk, ":status": f"{status}#"}
        else:
            index, pk_name = _GSI2, "gsi2pk"
            index_pk = f"{_firm_pk(firm_id)}#STATUS#{status}"
            condition = "gsi2pk = :pk"
            values = {":pk": index_pk}
        start: dict[str, Any] | None = (
            _decode_cursor(cursor, index_pk_name=pk_name, index_pk=index_pk) if cursor is not None else None
        )
        if entity_type is None:
            page = self._table.query_page(
                key_condition=condition,
                values=values,
                index=index,
                limit=limit,
                forward=False,
                start_key=start,
            )
            entries = [_entry(item) for item in page.items]
            return entries, (_encode_cursor(page.last_key) if page.last_key else None)
        values = {**values, ":et": entity_type}
        sk_name = pk_name.replace("pk", "sk")
        found: list[dict[str, Any]] = []
        for _ in range(_FILTER_ROUNDS):
            page = self._table.query_page(
                key_condition=condition,
                values=values,
                index=index,
                filter_expression="entity_type = :et",
                limit=max(limit - len(found), _FILTER_EVALUATE),
                forward=False,
                start_key=start,
            )
            room = limit - len(found)
            if len(page.items) > room:
                # More matches than the page holds: continue right after the last one kept.
                found.extend(page.items[:room])
                last = found[-1]
                start = {k: last[k] for k in ("pk", "sk", pk_name, sk_name)}
                break
            found.extend(page.items)
            start = page.last_key
            if start is None or len(found) == limit:
                break
        return [_entry(item) for item in found], (_encode_cursor(start) if start else None)

    def counts(self, firm_id: str) -> dict[str, int]:
        """Open errors per category (every category present, zero included) - the banner count."""
        _need(firm_id, "firm_id")
        counts: dict[str, int] = dict.fromkeys(vocab.ERROR_CATEGORIES, 0)
        for item in self._table.query(
            key_condition="gsi2pk = :pk",
            values={":pk": f"{_firm_pk(firm_id)}#STATUS#{OPEN}"},
            index=_GSI2,
            page_size=500,
        ):
            category = str(item.get("category"))
            counts[category] = counts.get(category, 0) + 1
        return counts
