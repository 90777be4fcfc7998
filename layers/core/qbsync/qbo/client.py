"""``QboClient``: the QuickBooks Online Accounting API v3 for one company (realm), QBO.md §2-§4.

What every call does:

* ``minorversion`` on every request; ``requestid`` on every write (create, update, delete, void, batch),
  the SAME id on every retry of that write, so QBO replays the original response instead of applying it
  twice (QBO.md §2.4). Build ids with :func:`request_id_for`.
* JSON ``Accept``/``Content-Type``, ``User-Agent: qbsync/…``, ``Authorization: Bearer`` from the
  :class:`TokenSource`.
* Retries (bounded by ``max_attempts``, capped jittered exponential backoff; QBO.md §4.3):

  - throttling (429 / 3001): sleep ``Retry-After`` (60 s when absent) only if it is within
    ``max_throttle_wait``; otherwise raise :class:`~qbsync.errors.Throttled` at once so the queue
    redelivers later (long waits do not belong in a Lambda);
  - 5xx, SystemFault, connection errors and timeouts: retried on reads; retried on writes too, with the
    same ``requestid``; a write whose attempts are exhausted after the request may have reached QBO
    raises :class:`~qbsync.errors.UncertainOutcome` (look the object up before any new write);
  - 401: ``tokens.refresh_after_unauthorized(rejected)`` once, then one more try (not counted as an
    attempt); a second 401 raises :class:`~qbsync.errors.ReconnectRequired`;
  - everything else (400 validation/business faults, 610, 5010, 403 …) is raised at once, typed by
    :func:`qbsync.qbo.faults.error_from_response`.
  - any error raised for a write after an earlier attempt may have reached QBO carries
    ``err.maybe_applied = True`` (:class:`~qbsync.errors.QbsyncError`): resend only with the same
    ``requestid``.
* Pacing: with a ``limiter`` (:class:`RequestLimiter`, production: ``qbsync.qbo.ratelimit``) every HTTP
  attempt, retries included, first takes a slot of the realm's shared request budget; a limiter that
  finds no slot soon raises :class:`~qbsync.errors.Throttled` (with ``retry_after``), which propagates.

Logs (logger ``qbsync.qbo``) carry operation, entity, realm_id, status, intuit_tid, attempt and elapsed_ms;
never URLs with queries, headers, tokens or bodies.

Invalid arguments (bad entity name, oversized batch, naive datetime, …) raise ``ValueError``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlencode

import requests

from qbsync.errors import (
    ConfigurationError,
    QbsyncError,
    ServiceUnavailable,
    Throttled,
    UncertainOutcome,
)
from qbsync.qbo.faults import error_from_fault, error_from_response, intuit_tid_of, parse_fault_json
from qbsync.qbo.http import (
    USER_AGENT,
    backoff_delay,
    build_session,
    is_configuration_problem,
    request_id_for,
    was_sent,
)

__all__ = [
    "BATCH_MAX_ITEMS",
    "BatchItemResult",
    "BatchOperation",
    "CdcResult",
    "QboClient",
    "RequestLimiter",
    "TokenSource",
    "deep_link",
    "quote_literal",
    "request_id_for",
]

logger = logging.getLogger("qbsync.qbo")

BATCH_MAX_ITEMS = 30
BATCH_REQUEST_ID_MAX = 36
BATCH_BID_MAX = 10
REQUEST_ID_MAX = 50
QUERY_PAGE_MAX = 1000
CDC_MAX_OBJECTS = 1000

#: Entities voided with ``operation=update&include=void`` instead of ``operation=void`` (QBO.md §2.7).
_VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt", "BillPayment"})
_ENTITY_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
_PAGING_RE = re.compile(r"\b(STARTPOSITION|MAXRESULTS)\b", re.IGNORECASE)
_LITERAL_RE = re.compile(r"'(?:\\.|[^'\\])*'")
_QUERY_META_KEYS = frozenset({"startPosition", "maxResults", "totalCount"})


class RequestLimiter(Protocol):
    """Paces requests per realm (implemented by ``qbsync.qbo.ratelimit.RealmRateLimiter``)."""

    def acquire(self, realm_id: str, *, is_batch: bool = False) -> float:
        """Wait for a request slot; raises :class:`~qbsync.errors.Throttled` when none is near."""
        ...


class TokenSource(Protocol):
    """Where :class:`QboClient` gets access tokens (``qbsync.connection.tokens.TokenProvider``)."""

    def access_token(self) -> str:
        """A valid access token (refreshing first if it is about to expire)."""
        ...

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        """Called once after a 401 with the token QBO rejected; returns a fresh token or raises
        :class:`~qbsync.errors.ReconnectRequired`."""
        ...


# ---------------------------------------------------------------------------- helpers


def quote_literal(value: str) -> str:
    """A QBO query string literal: ``O'Brien`` → ``'O\\'Brien'`` (backslash escapes, QBO.md §2.8)."""
    if not isinstance(value, str):
        raise ValueError("quote_literal takes a string")
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


_DEEP_LINKS = {
    "Invoice": ("invoice", "txnId"),
    "Payment": ("recvpayment", "txnId"),
    "CreditMemo": ("creditmemo", "txnId"),
    "RefundReceipt": ("refundreceipt", "txnId"),
    "SalesReceipt": ("salesreceipt", "txnId"),
    "Purchase": ("expense", "txnId"),
    "Deposit": ("deposit", "txnId"),
    "JournalEntry": ("journal", "txnId"),
    "Customer": ("customerdetail", "nameId"),
    "Vendor": ("vendordetail", "nameId"),
    "Account": ("register", "accountId"),
}


def deep_link(app_base_url: str, entity: str, qbo_id: str, *, realm_id: str | None = None) -> str:
    """Link into the QBO web app for an object (QBO.md §2.11), e.g.
    ``https://app.qbo.intuit.com/app/invoice?txnId=130``; ``realm_id`` adds ``companyId``.

    Raises ``ValueError`` for an entity without a known page.
    """
    if entity not in _DEEP_LINKS:
        raise ValueError(f"No QuickBooks deep link is known for {entity}")
    if not qbo_id:
        raise ValueError("qbo_id is required")
    page, param = _DEEP_LINKS[entity]
    query = {param: qbo_id}
    if realm_id:
        query["companyId"] = realm_id
    return f"{app_base_url.rstrip('/')}/app/{page}?{urlencode(query)}"


def _check_entity(entity: str) -> str:
    if not isinstance(entity, str) or not _ENTITY_RE.match(entity):
        raise ValueError(f"Invalid QBO entity name {entity!r} (expected e.g. 'Invoice')")
    return entity


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"Invalid {what} {value!r}")
    return value


def _check_request_id(request_id: str, limit: int) -> str:
    if not isinstance(request_id, str) or not request_id or len(request_id) > limit:
        raise ValueError(f"requestid must be 1 to {limit} characters")
    if not _REQUEST_ID_RE.match(request_id):
        raise ValueError("requestid may only contain letters, digits and - _ . :")
    return request_id


# ---------------------------------------------------------------------------- batch / CDC shapes

BatchKind = Literal["create", "update", "delete", "void", "query"]


@dataclass(frozen=True)
class BatchOperation:
    """One item of a batch. Use the constructors; ``bid`` (≤ 10 chars) maps the result back."""

    bid: str
    operation: BatchKind
    entity: str | None = None
    # bodies and rows hold client data: kept out of repr so a logged result never leaks them
    body: dict[str, Any] | None = field(default=None, repr=False)
    query: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.bid, str) or not 1 <= len(self.bid) <= BATCH_BID_MAX:
            raise ValueError(f"bId must be 1 to {BATCH_BID_MAX} characters")
        if self.operation == "query":
            if not self.query:
                raise ValueError("a query batch item needs a query")
            return
        if self.operation not in ("create", "update", "delete", "void"):
            raise ValueError(f"Unknown batch operation {self.operation!r}")
        _check_entity(self.entity or "")
        if not isinstance(self.body, dict) or not self.body:
            raise ValueError(f"a {self.operation} batch item needs an entity body")

    @classmethod
    def create(cls, bid: str, entity: str, body: dict[str, Any]) -> BatchOperation:
        return cls(bid, "create", entity, dict(body))

    @classmethod
    def update(cls, bid: str, entity: str, body: dict[str, Any], *, sparse: bool = True) -> BatchOperation:
        _require_id_and_sync_token(body)
        return cls(bid, "update", entity, {**body, "sparse": sparse})

    @classmethod
    def delete(cls, bid: str, entity: str, entity_id: str, sync_token: str) -> BatchOperation:
        return cls(bid, "delete", entity, {"Id": entity_id, "SyncToken": sync_token})

    @classmethod
    def void(cls, bid: str, entity: str, entity_id: str, sync_token: str) -> BatchOperation:
        return cls(bid, "void", entity, {"Id": entity_id, "SyncToken": sync_token, "sparse": True})

    @classmethod
    def select(cls, bid: str, statement: str) -> BatchOperation:
        return cls(bid, "query", query=statement)

    def wire(self) -> dict[str, Any]:
        if self.operation == "query":
            return {"bId": self.bid, "Query": self.query}
        assert self.entity is not None
        item: dict[str, Any] = {"bId": self.bid, self.entity: self.body}
        if self.operation == "void":
            item["operation"] = "update"
            item["optionsData"] = "void"
        else:
            item["operation"] = self.operation
        return item


@dataclass(frozen=True)
class BatchItemResult:
    """The outcome of one batch item: ``data`` (the entity), ``rows`` (a query) or ``error`` (typed)."""

    bid: str
    operation: BatchOperation
    data: dict[str, Any] | None = field(default=None, repr=False)
    rows: list[dict[str, Any]] | None = field(default=None, repr=False)
    error: QbsyncError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CdcResult:
    """A CDC answer: current objects and deleted stubs per entity, and QBO's response ``time``.

    Use ``time`` (server clock) minus a small overlap as the next ``changedSince``. When ``capped`` is
    true QBO may have left objects out (1000-object cap): split the entities or the window.
    """

    changed: dict[str, list[dict[str, Any]]] = field(repr=False)
    deleted: dict[str, list[dict[str, Any]]] = field(repr=False)
    time: datetime
    object_count: int

    @property
    def capped(self) -> bool:
        return self.object_count >= CDC_MAX_OBJECTS


def _require_id_and_sync_token(body: dict[str, Any]) -> None:
    if not isinstance(body, dict) or not body.get("Id") or body.get("SyncToken") in (None, ""):
        raise ValueError("an update needs the object's Id and SyncToken")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- the client


class QboClient:
    """The Accounting API of one realm. Cheap to build; share the ``session`` across clients."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        base_url: str,
        realm_id: str,
        tokens: TokenSource,
        minor_version: int = 75,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (3.05, 25.0),
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        max_throttle_wait: float = 5.0,
        limiter: RequestLimiter | None = None,
    ) -> None:
        if not base_url:
            raise ConfigurationError("The QuickBooks API base URL is not configured")
        if not realm_id or not _ID_RE.match(realm_id):
            raise ValueError("realm_id must be a QBO company id")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.realm_id = realm_id
        self._tokens = tokens
        self._minor_version = minor_version
        self._session = session if session is not None else build_session()
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._jitter = jitter
        self._max_throttle_wait = max_throttle_wait
        self._limiter = limiter

    def __repr__(self) -> str:
        return f"QboClient(base_url={self.base_url!r}, realm_id={self.realm_id!r})"

    # ------------------------------------------------------------------ entities

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        """GET one object. 610 / deleted → :class:`~qbsync.errors.QboObjectNotFound`."""
        _check_entity(entity)
        _check_id(entity_id, "entity id")
        body = self._call("GET", f"{entity.lower()}/{quote(entity_id)}", operation="read", entity=entity)
        return self._unwrap(body, entity, is_write=False)

    def create(self, entity: str, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        """Create an object; returns the created object (with ``Id``, ``SyncToken``, ``MetaData``)."""
        _check_entity(entity)
        if not isinstance(body, dict) or not body:
            raise ValueError("create needs a non-empty body")
        response = self._call(
            "POST", entity.lower(), operation="create", entity=entity, json_body=body, request_id=request_id
        )
        return self._unwrap(response, entity, is_write=True)

    def update(
        self, entity: str, body: dict[str, Any], *, request_id: str, sparse: bool = True
    ) -> dict[str, Any]:
        """Update (sparse by default: only the fields sent change). ``body`` needs ``Id`` and ``SyncToken``;
        a stale SyncToken raises :class:`~qbsync.errors.StaleObject`."""
        _check_entity(entity)
        _require_id_and_sync_token(body)
        payload = {**body, "sparse": sparse}
        response = self._call(
            "POST",
            entity.lower(),
            operation="update",
            entity=entity,
            json_body=payload,
            request_id=request_id,
        )
        return self._unwrap(response, entity, is_write=True)

    def delete(self, entity: str, entity_id: str, sync_token: str, *, request_id: str) -> dict[str, Any]:
        """Delete a transaction (``operation=delete``); returns the ``{"Id", "status": "Deleted"}`` stub."""
        _check_entity(entity)
        _check_id(entity_id, "entity id")
        response = self._call(
            "POST",
            entity.lower(),
            operation="delete",
            entity=entity,
            params={"operation": "delete"},
            json_body={"Id": entity_id, "SyncToken": str(sync_token)},
            request_id=request_id,
        )
        return self._unwrap(response, entity, is_write=True)

    def void(self, entity: str, entity_id: str, sync_token: str, *, request_id: str) -> dict[str, Any]:
        """Void a transaction in place; returns the voided object.

        Payment/SalesReceipt/BillPayment use ``operation=update&include=void``, others ``operation=void``.
        """
        _check_entity(entity)
        _check_id(entity_id, "entity id")
        if entity in _VOID_BY_UPDATE:
            params = {"operation": "update", "include": "void"}
            payload: dict[str, Any] = {"Id": entity_id, "SyncToken": str(sync_token), "sparse": True}
        else:
            params = {"operation": "void"}
            payload = {"Id": entity_id, "SyncToken": str(sync_token)}
        response = self._call(
            "POST",
            entity.lower(),
            operation="void",
            entity=entity,
            params=params,
            json_body=payload,
            request_id=request_id,
        )
        return self._unwrap(response, entity, is_write=True)

    def company_info(self) -> dict[str, Any]:
        body = self._call(
            "GET", f"companyinfo/{quote(self.realm_id)}", operation="read", entity="CompanyInfo"
        )
        return self._unwrap(body, "CompanyInfo", is_write=False)

    def preferences(self) -> dict[str, Any]:
        body = self._call("GET", "preferences", operation="read", entity="Preferences")
        return self._unwrap(body, "Preferences", is_write=False)

    # ------------------------------------------------------------------ queries

    def query(self, statement: str) -> list[dict[str, Any]]:
        """Run one query statement and return one page of rows ([] when nothing matches).

        Quote literals with :func:`quote_literal`. Without ``MAXRESULTS`` QBO returns at most 100 rows.
        """
        return self._query_rows(self._query_response(statement))

    def query_timed(self, statement: str) -> tuple[list[dict[str, Any]], datetime | None]:
        """:meth:`query` with the response's top-level ``time`` (the server clock; None when absent): a
        reader that must later ask CDC for "changes since this read" takes its watermark from here, never
        from its own clock (QBO.md §2.10)."""
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError("query statement is empty")
        body = self._call("POST", "query", operation="query", entity=None, text_body=statement)
        response = body.get("QueryResponse")
        if not isinstance(response, dict):
            raise ServiceUnavailable(
                "QuickBooks answered a query without a QueryResponse", realm_id=self.realm_id
            )
        return self._query_rows(response), _parse_time(body.get("time"))

    def query_all(self, statement_without_paging: str, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Yield every row, page by page (``STARTPOSITION``/``MAXRESULTS`` appended; 1-based).

        Give the statement an ``ORDERBY`` for stable pages; offset paging over changing data can skip or
        repeat rows (QBO.md §2.8) - prefer CDC for sync.
        """
        if not 1 <= page_size <= QUERY_PAGE_MAX:
            raise ValueError(f"page_size must be 1 to {QUERY_PAGE_MAX}")
        if _PAGING_RE.search(_LITERAL_RE.sub("''", statement_without_paging)):
            raise ValueError("query_all adds STARTPOSITION/MAXRESULTS itself")
        start = 1
        while True:
            rows = self.query(f"{statement_without_paging} STARTPOSITION {start} MAXRESULTS {page_size}")
            yield from rows
            if len(rows) < page_size:
                return
            start += page_size

    def count(self, entity: str, where: str | None = None) -> int:
        """``SELECT count(*) FROM entity [WHERE …]`` (the where clause's literals quoted by the caller)."""
        _check_entity(entity)
        statement = f"SELECT count(*) FROM {entity}"  # noqa: S608 - entity validated, not SQL
        if where:
            statement += f" WHERE {where}"
        response = self._query_response(statement)
        total = response.get("totalCount", 0)
        if not isinstance(total, int):
            raise ServiceUnavailable(
                "QuickBooks answered a count query without a totalCount", realm_id=self.realm_id
            )
        return total

    def _query_response(self, statement: str) -> dict[str, Any]:
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError("query statement is empty")
        body = self._call("POST", "query", operation="query", entity=None, text_body=statement)
        response = body.get("QueryResponse")
        if not isinstance(response, dict):
            raise ServiceUnavailable(
                "QuickBooks answered a query without a QueryResponse", realm_id=self.realm_id
            )
        return response

    @staticmethod
    def _query_rows(response: dict[str, Any]) -> list[dict[str, Any]]:
        for key, value in response.items():
            if key not in _QUERY_META_KEYS and isinstance(value, list):
                return value
        return []

    # ------------------------------------------------------------------ batch

    def batch(self, operations: list[BatchOperation], *, request_id: str) -> list[BatchItemResult]:
        """Send up to 30 independent operations in one call; results in the order of ``operations``.

        Items are matched by ``bId`` (never by position). A per-item Fault becomes a typed error on that
        item (e.g. 6240 → :class:`~qbsync.errors.QboValidationError`, 5010 → StaleObject). An item QBO did
        not answer gets :class:`~qbsync.errors.UncertainOutcome` (write) or ServiceUnavailable (query).
        Whole-call failures raise like any write. ``request_id`` ≤ 36 chars; items never see each other's
        results, so never put dependent creates in one batch.
        """
        if not operations:
            raise ValueError("a batch needs at least one operation")
        if len(operations) > BATCH_MAX_ITEMS:
            raise ValueError(f"a batch holds at most {BATCH_MAX_ITEMS} operations")
        bids = [op.bid for op in operations]
        if len(set(bids)) != len(bids):
            raise ValueError("bIds must be unique within a batch")
        _check_request_id(request_id, BATCH_REQUEST_ID_MAX)
        body = self._call(
            "POST",
            "batch",
            operation="batch",
            entity=None,
            json_body={"BatchItemRequest": [op.wire() for op in operations]},
            request_id=request_id,
        )
        items = body.get("BatchItemResponse")
        if not isinstance(items, list):
            raise UncertainOutcome(
                "QuickBooks answered a batch without BatchItemResponse", realm_id=self.realm_id
            )
        by_bid = {item.get("bId"): item for item in items if isinstance(item, dict)}
        return [self._batch_result(op, by_bid.get(op.bid)) for op in operations]

    def _batch_result(self, op: BatchOperation, item: dict[str, Any] | None) -> BatchItemResult:
        is_write = op.operation != "query"
        if item is None:
            missing_cls = UncertainOutcome if is_write else ServiceUnavailable
            return BatchItemResult(
                op.bid,
                op,
                error=missing_cls(
                    f"QuickBooks did not answer batch item {op.bid}", realm_id=self.realm_id, entity=op.entity
                ),
            )
        fault_raw = item.get("Fault")
        if fault_raw is None:
            fault_raw = item.get("fault")
        if fault_raw is not None:
            fault = parse_fault_json({"Fault": fault_raw})
            error = error_from_fault(
                fault, status=None, realm_id=self.realm_id, entity=op.entity, is_write=is_write
            )
            return BatchItemResult(op.bid, op, error=error)
        if op.operation == "query":
            response = item.get("QueryResponse")
            rows = self._query_rows(response) if isinstance(response, dict) else []
            return BatchItemResult(op.bid, op, rows=rows)
        data = item.get(op.entity or "")
        if not isinstance(data, dict):
            return BatchItemResult(
                op.bid,
                op,
                error=UncertainOutcome(
                    f"QuickBooks answered batch item {op.bid} without the {op.entity}",
                    realm_id=self.realm_id,
                    entity=op.entity,
                ),
            )
        return BatchItemResult(op.bid, op, data=data)

    # ------------------------------------------------------------------ CDC

    def cdc(self, entities: Sequence[str], changed_since: datetime) -> CdcResult:
        """Objects of ``entities`` changed since ``changed_since`` (timezone-aware, ≤ 30 days back).

        Returns current objects and deleted stubs (``status == "Deleted"``) per entity, and the server's
        response time as the watermark (QBO.md §2.10).
        """
        if isinstance(entities, str) or not entities:
            raise ValueError("cdc needs a non-empty list of entity names")
        names = [_check_entity(e) for e in entities]
        if changed_since.tzinfo is None:
            raise ValueError("changed_since must be timezone-aware")
        since = changed_since.astimezone(UTC).isoformat(timespec="seconds")
        body = self._call(
            "GET",
            "cdc",
            operation="cdc",
            entity=None,
            params={"entities": ",".join(names), "changedSince": since},
        )
        server_time = _parse_time(body.get("time"))
        if server_time is None:
            raise ServiceUnavailable(
                "QuickBooks answered CDC without a response time", realm_id=self.realm_id
            )
        changed: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        deleted: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        count = 0
        for block in body.get("CDCResponse") or []:
            for response in (block or {}).get("QueryResponse") or []:
                for key, rows in (response or {}).items():
                    if key in _QUERY_META_KEYS or not isinstance(rows, list):
                        continue
                    for row in rows:
                        count += 1
                        target = deleted if row.get("status") == "Deleted" else changed
                        target.setdefault(key, []).append(row)
        return CdcResult(changed=changed, deleted=deleted, time=server_time, object_count=count)

    # ------------------------------------------------------------------ transport

    def _unwrap(self, body: dict[str, Any], entity: str, *, is_write: bool) -> dict[str, Any]:
        data = body.get(entity)
        if isinstance(data, dict):
            return data
        error_cls = UncertainOutcome if is_write else ServiceUnavailable
        raise error_cls(
            f"QuickBooks answered without the {entity} object", realm_id=self.realm_id, entity=entity
        )

    def _call(  # noqa: C901, PLR0913
        self,
        method: str,
        path: str,
        *,
        operation: str,
        entity: str | None,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        text_body: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Send one logical request with the retry rules of the module doc; return the JSON body."""
        is_write = operation in ("create", "update", "delete", "void", "batch")
        query: dict[str, str] = {"minorversion": str(self._minor_version), **(params or {})}
        if is_write:
            if request_id is None:
                raise ValueError("every write needs a request_id")
            query["requestid"] = _check_request_id(request_id, REQUEST_ID_MAX)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}  # also on injected sessions
        data: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        elif text_body is not None:
            headers["Content-Type"] = "application/text"
            data = text_body.encode("utf-8")
        url = f"{self.base_url}/v3/company/{quote(self.realm_id)}/{path}"

        token = self._tokens.access_token()
        refreshed = False
        maybe_applied = False
        attempt = 0
        while True:
            attempt += 1
            if self._limiter is not None:
                self._acquire(operation, maybe_applied)
            started = time.monotonic()
            headers["Authorization"] = f"Bearer {token}"
            try:
                response = self._session.request(
                    method, url, params=query, data=data, headers=headers, timeout=self._timeout
                )
            except requests.RequestException as exc:
                self._log(operation, entity, None, None, attempt, started, error=type(exc).__name__)
                if is_configuration_problem(exc):
                    raise ConfigurationError(
                        "The QuickBooks API base URL is invalid", realm_id=self.realm_id, entity=entity
                    ) from exc
                maybe_applied = maybe_applied or (is_write and was_sent(exc))
                error = self._transient(
                    operation, entity, maybe_applied, None, f"network error ({type(exc).__name__})"
                )
                if attempt >= self._max_attempts:
                    raise error from exc
                self._sleep(self._backoff(attempt))
                continue

            tid = intuit_tid_of(response)
            status = response.status_code
            self._log(operation, entity, status, tid, attempt, started)
            if status == 401 and not refreshed:
                refreshed = True
                token = self._tokens.refresh_after_unauthorized(token)
                attempt -= 1  # the retry with a fresh token does not use up an attempt
                continue

            failure = self._error_of(response, entity, is_write)
            if failure is None:
                body = response.json()
                return body if isinstance(body, dict) else {}
            error = failure
            if maybe_applied:
                # an earlier attempt of this write may have been applied: whoever handles this error
                # must resend with the same requestid (or look the object up), never a new one
                error.maybe_applied = True
            if isinstance(error, Throttled):
                wait = error.retry_after if error.retry_after is not None else self._backoff(attempt)
                if attempt >= self._max_attempts or wait > self._max_throttle_wait:
                    raise error
                self._sleep(wait)
                continue
            retryable = isinstance(error, ServiceUnavailable) or (
                isinstance(error, UncertainOutcome) and error.qbo_code != "600"
            )
            if not retryable:
                raise error
            if isinstance(error, UncertainOutcome):
                maybe_applied = True
            if attempt >= self._max_attempts:
                if is_write and maybe_applied and not isinstance(error, UncertainOutcome):
                    raise self._transient(operation, entity, True, tid, f"HTTP {status}") from error
                raise error
            retry_after = getattr(error, "retry_after", None)
            self._sleep(max(self._backoff(attempt), min(retry_after or 0.0, self._backoff_cap)))

    def _acquire(self, operation: str, maybe_applied: bool) -> None:
        assert self._limiter is not None
        try:
            self._limiter.acquire(self.realm_id, is_batch=operation == "batch")
        except QbsyncError as err:
            if maybe_applied:
                err.maybe_applied = True
            raise

    def _error_of(
        self, response: requests.Response, entity: str | None, is_write: bool
    ) -> QbsyncError | None:
        """None for a usable 2xx JSON body; else the typed error (a Fault inside a 200 counts too)."""
        if 200 <= response.status_code < 300:
            try:
                body = response.json()
            except ValueError:
                return self._transient(
                    "response", entity, is_write, intuit_tid_of(response), "unreadable 2xx body"
                )
            fault = parse_fault_json(body)
            if fault is None:
                return None
            return error_from_fault(
                fault,
                status=response.status_code,
                realm_id=self.realm_id,
                entity=entity,
                is_write=is_write,
                intuit_tid=intuit_tid_of(response),
            )
        return error_from_response(response, realm_id=self.realm_id, entity=entity, is_write=is_write)

    def _transient(
        self, operation: str, entity: str | None, maybe_applied: bool, tid: str | None, why: str
    ) -> QbsyncError:
        if maybe_applied:
            return UncertainOutcome(
                f"QuickBooks {operation} outcome unknown after {why}; look the object up first",
                realm_id=self.realm_id,
                entity=entity,
                intuit_tid=tid,
            )
        return ServiceUnavailable(
            f"QuickBooks {operation} failed: {why}", realm_id=self.realm_id, entity=entity, intuit_tid=tid
        )

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self._backoff_base, cap=self._backoff_cap, jitter=self._jitter)

    def _log(
        self,
        operation: str,
        entity: str | None,
        status: int | None,
        tid: str | None,
        attempt: int,
        started: float,
        **fields: Any,
    ) -> None:
        logger.info(
            "qbo request",
            extra={
                "operation": operation,
                "entity": entity,
                "realm_id": self.realm_id,
                "status": status,
                "intuit_tid": tid,
                "attempt": attempt,
                "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
                **fields,
            },
        )
