"""Finding the QBO object an earlier, uncertain write may have created (``find_existing`` of the writer).

:func:`find_existing` returns a callable for :meth:`qbsync.outbound.writer.ExactlyOnceWriter.write`. It
queries QBO by the business keys QBO lets us filter on (QBO.md §2.8) and recognises our own object on the
client side by the qbsync marker the mapper put at the start of ``PrivateNote`` (``Notes`` for customers,
``Description`` for items; :func:`qbsync.outbound.mapping.parse_marker`):

==============================  ================================================================
QBO entity                      filter
==============================  ================================================================
Customer                        ``DisplayName``
Item                            ``Name`` (unique in QBO: an item of that name is adopted when it
                                carries our marker, or when it has no marker of anyone else)
Invoice                         ``DocNumber`` when the payload sends one, else ``CustomerRef`` +
                                ``TxnDate``
Payment, CreditMemo,            ``CustomerRef`` + ``TxnDate`` (+ ``TotalAmt`` when the payload has it)
RefundReceipt
Purchase                        ``TxnDate`` (+ ``EntityRef`` is not filterable: matched by marker)
==============================  ================================================================

Literals are escaped with :func:`qbsync.qbo.client.quote_literal`. Errors of the QBO client propagate
(RetryableError, ReconnectRequired, …): the writer then releases the record and the message is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from qbsync import vocab
from qbsync.outbound.mapping import parse_marker
from qbsync.qbo.client import QboClient, quote_literal

__all__ = ["SUPPORTED_ENTITIES", "find_existing", "lookup_statement"]

#: the markers' entity types (PascalCase, as the mapper writes them: qbsync.vocab)
_MARKERS = frozenset(info.marker for info in vocab.RECORD_TYPE_INFO.values())
SUPPORTED_ENTITIES = ("Customer", "Item", "Invoice", "Payment", "CreditMemo", "RefundReceipt", "Purchase")
_NOTE_FIELD = {"Customer": "Notes", "Item": "Description"}
_MAX_ROWS = 100


def _ref(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if isinstance(value, Mapping) and value.get("value") is not None:
        return str(value["value"])
    return None


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _amount(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        return str(Decimal(str(value)))
    except ArithmeticError:
        return None


def lookup_statement(qbo_entity: str, payload: Mapping[str, Any]) -> str:
    """The QBO query that narrows the candidates of ``payload`` (see the module table).

    Raises:
        ValueError: unsupported entity, or the payload lacks the business key the entity is looked up by.
    """
    where: list[str] = []
    if qbo_entity == "Customer":
        name = _text(payload, "DisplayName")
        if name is None:
            raise ValueError("a Customer payload needs DisplayName")
        where.append(f"DisplayName = {quote_literal(name)}")
    elif qbo_entity == "Item":
        name = _text(payload, "Name")
        if name is None:
            raise ValueError("an Item payload needs Name")
        where.append(f"Name = {quote_literal(name)}")
    elif qbo_entity in ("Invoice", "Payment", "CreditMemo", "RefundReceipt", "Purchase"):
        doc = _text(payload, "DocNumber") if qbo_entity == "Invoice" else None
        if doc is not None:
            where.append(f"DocNumber = {quote_literal(doc)}")
        else:
            customer = _ref(payload, "CustomerRef")
            if customer is not None:
                where.append(f"CustomerRef = {quote_literal(customer)}")
            txn_date = _text(payload, "TxnDate")
            if txn_date is None:
                raise ValueError(f"a {qbo_entity} payload needs TxnDate")
            where.append(f"TxnDate = {quote_literal(txn_date)}")
            total = _amount(payload.get("TotalAmt"))
            if total is not None and qbo_entity != "Purchase":
                where.append(f"TotalAmt = {total}")
    else:
        raise ValueError(
            f"no lookup for QBO entity {qbo_entity!r}; expected one of {list(SUPPORTED_ENTITIES)}"
        )
    # entity from a fixed list, literals quoted with quote_literal
    return f"SELECT * FROM {qbo_entity} WHERE {' AND '.join(where)} MAXRESULTS {_MAX_ROWS}"  # noqa: S608


#: the names one name-lookup query asks for (the query stays far below QBO's statement length)
NAMES_PER_QUERY = 20


def names_statement(qbo_entity: str, names: list[str]) -> str:
    """One QBO query for the active Customers (``DisplayName``) or Items (``Name``) of any of ``names``
    (at most :data:`NAMES_PER_QUERY`): the exact-name matches of a batch's new accounts or services."""
    if qbo_entity not in ("Customer", "Item"):
        raise ValueError("names are looked up for Customer and Item only")
    if not 1 <= len(names) <= NAMES_PER_QUERY:
        raise ValueError(f"1 to {NAMES_PER_QUERY} names a query")
    key = "DisplayName" if qbo_entity == "Customer" else "Name"
    listed = ", ".join(quote_literal(n) for n in names)
    return f"SELECT * FROM {qbo_entity} WHERE {key} IN ({listed})"  # noqa: S608 - literals quoted


def _note_of(qbo_entity: str, obj: Mapping[str, Any]) -> str | None:
    value = obj.get(_NOTE_FIELD.get(qbo_entity, "PrivateNote"))
    return value if isinstance(value, str) else None


def find_existing(
    qbo_entity: str, platform_entity_type: str, platform_id: str, payload: Mapping[str, Any]
) -> Callable[[QboClient], dict[str, Any] | None]:
    """A lookup of the object ``payload`` would create, for the writer's leftover-intent check.

    ``platform_entity_type`` is the record's entity type (``client_account`` …) or the marker's
    (``ClientAccount`` …). The callable returns the QBO object whose marker names this record (for items:
    also an item of the same Name without any qbsync marker), else None.

    Raises:
        ValueError (now, not when called): unsupported entity / entity type or a payload without the key.
    """
    known = vocab.RECORD_TYPE_INFO.get(platform_entity_type)
    marker_type = known.marker if known else platform_entity_type
    if marker_type not in _MARKERS:
        raise ValueError(f"unknown platform entity type {platform_entity_type!r}")
    if not platform_id:
        raise ValueError("platform_id is required")
    statement = lookup_statement(qbo_entity, payload)
    wanted = (marker_type, platform_id)

    def lookup(qbo: QboClient) -> dict[str, Any] | None:
        rows = qbo.query(statement)
        for row in rows:
            if parse_marker(_note_of(qbo_entity, row)) == wanted:
                return row
        if qbo_entity == "Item":
            # Item names are unique: an unmarked item of that name is the one a lost create made
            # (QBO may have dropped the Description) or the firm's own, which we link rather than
            # fail on "duplicate name".
            for row in rows:
                if row.get("Name") == payload.get("Name") and parse_marker(_note_of("Item", row)) is None:
                    return row
        return None

    return lookup
