"""DynamoDB table adapter: typed get/put/update/delete/query/transactions over a low-level client.

Items go in and come out as plain Python values (numbers come back as :class:`~decimal.Decimal`).
Floats are converted to ``Decimal`` through their shortest ``repr`` (``0.1`` stays ``0.1``); NaN and
infinities are rejected. Expressions are strings with ``#name`` / ``:value`` placeholders; ``values``
holds plain Python values, serialized here.

Errors (translated once, re-raised ``from`` the botocore exception):

* :class:`~qbsync.errors.Conflict` - a condition expression failed (single write, or a transaction
  cancelled because of ``ConditionalCheckFailed``). ``err.extra["reasons"]`` lists the per-item codes
  of a cancelled transaction.
* :class:`~qbsync.errors.Throttled` / :class:`~qbsync.errors.ServiceUnavailable` /
  :class:`~qbsync.errors.RetryableError` - throttling, 5xx, network, transaction conflicts: retry later.
* :class:`~qbsync.errors.ConfigurationError` - the table does not exist or access is denied.
* :class:`~qbsync.errors.InfrastructureError` - DynamoDB rejected the request as invalid
  (ValidationException, an item collection over its size limit).
* ``ValueError`` / ``TypeError`` - bad arguments: NaN or infinite numbers, a value of a type DynamoDB cannot
  store, an empty or over-sized transaction, a query limit below 1.
* :class:`~qbsync.errors.ConfigurationError` - no table name.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from qbsync.adapters._aws import default_client, error_code, translate
from qbsync.errors import (
    ConfigurationError,
    Conflict,
    InfrastructureError,
    QbsyncError,
    RetryableError,
    ServiceUnavailable,
    Throttled,
)

__all__ = ["DynamoTable", "Page", "to_dynamo", "transact_write"]

MAX_TRANSACT_ITEMS = 100
BATCH_ATTEMPTS = 4


def _backoff(attempt: int) -> float:
    # Short, capped, jittered: unprocessed items mean the table is busy right now.
    return min(0.05 * (2**attempt), 0.5) * random.uniform(0.5, 1.0)


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamo(value: Any, _path: str = "$") -> Any:
    """Make ``value`` storable: floats → Decimal (via repr), tuples → lists, NaN/inf rejected.

    Raises:
        ValueError: NaN or infinite numbers (DynamoDB cannot store them).
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"DynamoDB cannot store NaN or infinity (at {_path})")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"DynamoDB cannot store NaN or infinity (at {_path})")
        return value
    if isinstance(value, Mapping):
        return {k: to_dynamo(v, f"{_path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v, f"{_path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        return {to_dynamo(v, _path) for v in value}
    return value


def _serialize_map(item: Mapping[str, Any], what: str) -> dict[str, Any]:
    out = {}
    for name, value in to_dynamo(item).items():
        try:
            out[name] = _serializer.serialize(value)
        except (TypeError, ValueError, ArithmeticError) as exc:
            # The message names the attribute and its Python type, never its value.
            raise TypeError(
                f"DynamoDB cannot store {what} attribute {name!r} of type {type(value).__name__}"
            ) from exc
    return out


def _deserialize_map(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _expression_args(
    *,
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if condition:
        args["ConditionExpression"] = condition
    if names:
        args["ExpressionAttributeNames"] = dict(names)
    if values:
        args["ExpressionAttributeValues"] = _serialize_map(values, "expression")
    return args


@dataclass(frozen=True)
class Page:
    """One page of a query: the items and the key to continue from (``None`` at the end)."""

    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None


def _transaction_error(exc: ClientError, where: str) -> QbsyncError:
    reasons = [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons", []) or []]
    extra = {
        "aws_error_code": "TransactionCanceledException",
        "aws_request_id": exc.response.get("ResponseMetadata", {}).get("RequestId"),
        "reasons": reasons,
    }
    if "ConditionalCheckFailed" in reasons:
        failed = [i for i, r in enumerate(reasons) if r == "ConditionalCheckFailed"]
        return Conflict(f"{where}: condition check failed on item(s) {failed}", **extra)
    if any(
        r in {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"} for r in reasons
    ):
        return Throttled(f"{where}: throttled", **extra)
    if "TransactionConflict" in reasons:
        return RetryableError(f"{where}: conflicting concurrent transaction", **extra)
    if "ValidationError" in reasons or "ItemCollectionSizeLimitExceeded" in reasons:
        return InfrastructureError(f"{where}: transaction rejected ({', '.join(reasons)})", **extra)
    return ServiceUnavailable(f"{where}: transaction cancelled ({', '.join(reasons)})", **extra)


def transact_write(
    actions: Sequence[Mapping[str, Any]], *, client: Any = None, token: str | None = None
) -> None:
    """Run a write transaction built from :meth:`DynamoTable.tx_put` / ``tx_update`` / ``tx_delete`` /
    ``tx_condition`` (they may target different tables).

    ``token`` is the ClientRequestToken: the same token within 10 minutes is applied once.

    Raises:
        Conflict: a condition failed (``err.extra["reasons"]`` lists the code per action, in order).
        ValueError: empty or more than 100 actions. InfrastructureError: DynamoDB rejected an item.
        Throttled / RetryableError / ServiceUnavailable: retry later.
    """
    if not actions:
        raise ValueError("a transaction needs at least one action")
    if len(actions) > MAX_TRANSACT_ITEMS:
        raise ValueError(f"a transaction holds at most {MAX_TRANSACT_ITEMS} actions, got {len(actions)}")
    ddb = client or default_client("dynamodb")
    args: dict[str, Any] = {"TransactItems": list(actions)}
    if token:
        args["ClientRequestToken"] = token
    where = f"DynamoDB TransactWriteItems ({len(actions)} actions)"
    try:
        ddb.transact_write_items(**args)
    except ClientError as exc:
        if error_code(exc) == "TransactionCanceledException":
            raise _transaction_error(exc, where) from exc
        raise translate(
            exc, service="DynamoDB", operation="TransactWriteItems", resource="transaction"
        ) from exc
    except BotoCoreError as exc:
        raise translate(
            exc, service="DynamoDB", operation="TransactWriteItems", resource="transaction"
        ) from exc


class DynamoTable:
    """One DynamoDB table.

    Args:
        table_name: the physical table name (from :func:`qbsync.settings.get_core_settings`).
        client: a boto3 DynamoDB *client*; default: the container-wide lazy client.
        sleep: waits between retries of unprocessed batch items.
    """

    def __init__(
        self, table_name: str, client: Any = None, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if not table_name:
            raise ConfigurationError("DynamoTable needs a table name")
        self.table_name = table_name
        self._client = client
        self._sleep = sleep  # between retries of unprocessed batch items (tests pass a no-op)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client("dynamodb")
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client, _SNAKE[operation])
        try:
            return method(TableName=self.table_name, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="DynamoDB", operation=operation, resource=self.table_name) from exc

    # --- single items -------------------------------------------------------------------------------

    def get(
        self, key: Mapping[str, Any], *, consistent: bool = False, attributes: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """The item with ``key``, or ``None``."""
        kwargs: dict[str, Any] = {"Key": _serialize_map(key, "key"), "ConsistentRead": consistent}
        if attributes:
            names = {f"#p{i}": a for i, a in enumerate(attributes)}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = names
        item = self._call("GetItem", **kwargs).get("Item")
        return _deserialize_map(item) if item else None

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Write ``item`` whole. Raises Conflict when ``condition`` fails."""
        self._call(
            "PutItem",
            Item=_serialize_map(item, "item"),
            **_expression_args(condition=condition, names=names, values=values),
        )

    def put_new(self, item: Mapping[str, Any], *, key_attr: str = "pk") -> None:
        """Write ``item`` only if no item with its key exists. Raises Conflict otherwise."""
        self.put(item, condition="attribute_not_exists(#k)", names={"#k": key_attr})

    def update(
        self,
        key: Mapping[str, Any],
        *,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        return_values: str = "ALL_NEW",
    ) -> dict[str, Any]:
        """Apply ``update`` (an UpdateExpression); returns the attributes named by ``return_values``.

        Raises Conflict when ``condition`` fails.
        """
        resp = self._call(
            "UpdateItem",
            Key=_serialize_map(key, "key"),
            UpdateExpression=update,
            ReturnValues=return_values,
            **_expression_args(condition=condition, names=names, values=values),
        )
        return _deserialize_map(resp.get("Attributes") or {})

    def delete(
        self,
        key: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Delete the item; returns its old attributes (``None`` if there was none).

        Raises Conflict when ``condition`` fails.
        """
        resp = self._call(
            "DeleteItem",
            Key=_serialize_map(key, "key"),
            ReturnValues="ALL_OLD",
            **_expression_args(condition=condition, names=names, values=values),
        )
        old = resp.get("Attributes")
        return _deserialize_map(old) if old else None

    # --- queries ------------------------------------------------------------------------------------

    def query_page(  # noqa: PLR0913
        self,
        *,
        key_condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        index: str | None = None,
        filter_expression: str | None = None,
        limit: int | None = None,
        forward: bool = True,
        consistent: bool = False,
        start_key: Mapping[str, Any] | None = None,
    ) -> Page:
        """One page of a Query (``limit`` bounds the items *evaluated*, as in DynamoDB)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": key_condition,
            "ScanIndexForward": forward,
            **_expression_args(names=names, values=values),
        }
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = consistent
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
        if limit is not None:
            if limit < 1:
                raise ValueError("query limit must be at least 1")
            kwargs["Limit"] = limit
        if start_key:
            kwargs["ExclusiveStartKey"] = _serialize_map(start_key, "start key")
        resp = self._call("Query", **kwargs)
        last = resp.get("LastEvaluatedKey")
        return Page(
            items=[_deserialize_map(i) for i in resp.get("Items", [])],
            last_key=_deserialize_map(last) if last else None,
        )

    def query(  # noqa: PLR0913
        self,
        *,
        key_condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        index: str | None = None,
        filter_expression: str | None = None,
        forward: bool = True,
        consistent: bool = False,
        page_size: int | None = None,
        max_items: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching item, following ``LastEvaluatedKey`` page by page (lazily).

        ``max_items`` stops after that many items have been yielded.
        """
        start: dict[str, Any] | None = None
        yielded = 0
        while True:
            page = self.query_page(
                key_condition=key_condition,
                names=names,
                values=values,
                index=index,
                filter_expression=filter_expression,
                limit=page_size,
                forward=forward,
                consistent=consistent,
                start_key=start,
            )
            for item in page.items:
                if max_items is not None and yielded >= max_items:
                    return
                yielded += 1
                yield item
            if page.last_key is None or (max_items is not None and yielded >= max_items):
                return
            start = page.last_key

    def count(
        self,
        *,
        key_condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        index: str | None = None,
        filter_expression: str | None = None,
        max_pages: int = 10,
    ) -> tuple[int, bool]:
        """The number of matching items (``Select=COUNT``: no item is returned), following at most
        ``max_pages`` pages of up to 1 MB read each; returns ``(count, complete)``: ``complete`` is False
        when the pages ran out first (the count is then a lower bound)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": key_condition,
            "Select": "COUNT",
            **_expression_args(names=names, values=values),
        }
        if index:
            kwargs["IndexName"] = index
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression  # counts the items that pass it
        total = 0
        for _ in range(max_pages):
            resp = self._call("Query", **kwargs)
            total += int(resp.get("Count", 0))
            last = resp.get("LastEvaluatedKey")
            if not last:
                return total, True
            kwargs["ExclusiveStartKey"] = last
        return total, False

    # --- batches ------------------------------------------------------------------------------------

    def batch_get(
        self, keys: Sequence[Mapping[str, Any]], *, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """The items that exist among ``keys`` (any order), 100 keys per call.

        Keys DynamoDB returns as unprocessed are asked again, at most ``BATCH_ATTEMPTS`` times.

        Raises:
            ServiceUnavailable: some keys were still unprocessed after the retries.
        """
        found: list[dict[str, Any]] = []
        serialized = [_serialize_map(k, "key") for k in keys]
        for start in range(0, len(serialized), 100):
            pending: list[dict[str, Any]] = serialized[start : start + 100]
            for attempt in range(BATCH_ATTEMPTS):
                if attempt:
                    self._sleep(_backoff(attempt))
                resp = self._batch(
                    "BatchGetItem",
                    RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": consistent}},
                )
                found.extend(_deserialize_map(i) for i in resp.get("Responses", {}).get(self.table_name, []))
                pending = resp.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if not pending:
                    break
            if pending:
                raise ServiceUnavailable(
                    f"DynamoDB BatchGetItem on {self.table_name}: {len(pending)} key(s) still unprocessed",
                    unprocessed=len(pending),
                )
        return found

    def batch_write(
        self, *, puts: Sequence[Mapping[str, Any]] = (), deletes: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        """Unconditional puts and deletes, 25 per call; unprocessed items are retried (bounded).

        Not atomic: use :meth:`transact_write` when the writes must succeed or fail together.

        Raises:
            ServiceUnavailable: items were still unprocessed after the retries (``err.extra["unprocessed"]``
                counts them, later chunks included; the writes are idempotent, so re-running is safe).
        """
        requests = [{"PutRequest": {"Item": _serialize_map(i, "item")}} for i in puts]
        requests += [{"DeleteRequest": {"Key": _serialize_map(k, "key")}} for k in deletes]
        for start in range(0, len(requests), 25):
            pending = requests[start : start + 25]
            for attempt in range(BATCH_ATTEMPTS):
                if attempt:
                    self._sleep(_backoff(attempt))
                resp = self._batch("BatchWriteItem", RequestItems={self.table_name: pending})
                pending = resp.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
            if pending:
                raise ServiceUnavailable(
                    f"DynamoDB BatchWriteItem on {self.table_name}: {len(pending)} item(s) still unprocessed",
                    # this chunk's leftovers plus every later chunk, never attempted
                    unprocessed=len(pending) + len(requests[start + 25 :]),
                )

    def _batch(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client, _SNAKE[operation])
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="DynamoDB", operation=operation, resource=self.table_name) from exc

    # --- transactions -------------------------------------------------------------------------------

    def tx_put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": _serialize_map(item, "item"),
                **_expression_args(condition=condition, names=names, values=values),
            }
        }

    def tx_update(
        self,
        key: Mapping[str, Any],
        *,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _serialize_map(key, "key"),
                "UpdateExpression": update,
                **_expression_args(condition=condition, names=names, values=values),
            }
        }

    def tx_delete(
        self,
        key: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table_name,
                "Key": _serialize_map(key, "key"),
                **_expression_args(condition=condition, names=names, values=values),
            }
        }

    def tx_condition(
        self,
        key: Mapping[str, Any],
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": _serialize_map(key, "key"),
                **_expression_args(condition=condition, names=names, values=values),
            }
        }

    def transact_write(self, actions: Sequence[Mapping[str, Any]], *, token: str | None = None) -> None:
        """:func:`transact_write` with this table's client (actions may name other tables)."""
        transact_write(actions, client=self.client, token=token)


_SNAKE = {
    "GetItem": "get_item",
    "PutItem": "put_item",
    "UpdateItem": "update_item",
    "DeleteItem": "delete_item",
    "Query": "query",
    "BatchGetItem": "batch_get_item",
    "BatchWriteItem": "batch_write_item",
}
