"""Lambda's SQS batches with partial failures (``ReportBatchItemFailures``): the loop of the SQS workers.

:func:`process_partial_batch` is what Powertools' ``BatchProcessor(EventType.SQS,
raise_on_entire_batch_failure=False)`` with ``process_partial_response`` did for ``functions/entity_sync``,
``functions/retry_fanout`` and ``functions/cdc_catchup``, without importing Powertools' batch utility
(asyncio and every event source's data classes: about 60 ms of each cold start, issue 12). Powertools
stays for Logger, Tracer and Metrics. The same semantics (tests/unit/core/test_sqs_batch.py runs the same
batches through both):

* every record of ``event["Records"]`` is handed to the record handler, once, in order, as an
  :class:`SqsRecord`;
* a record whose handler raises an ``Exception`` is a batch-item failure (``{"itemIdentifier":
  <messageId>}``, in the order of the records); the others are consumed; a batch in which every record
  fails is reported the same way, never raised (the Lambda's error metrics mean "the worker is broken");
* a ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``) is not a
  record's failure: it ends the invocation;
* an event without a non-empty ``Records`` list is not an SQS batch (Lambda never sends one):
  :class:`NotAnSqsBatch` is raised before any record is handled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["NotAnSqsBatch", "SqsRecord", "process_partial_batch"]


class NotAnSqsBatch(ValueError):
    """The event has no non-empty ``Records`` list: the function was invoked with something else."""


class SqsRecord(Mapping[str, Any]):
    """One record of an SQS event, read as it came (the Lambda record's own keys; ``get`` works too)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def raw_event(self) -> dict[str, Any]:
        return self._data

    @property
    def message_id(self) -> str:
        return self["messageId"]  # type: ignore[no-any-return]

    @property
    def receipt_handle(self) -> str:
        return self["receiptHandle"]  # type: ignore[no-any-return]

    @property
    def body(self) -> str:
        return self["body"]  # type: ignore[no-any-return]


def process_partial_batch(
    event: dict[str, Any], record_handler: Callable[[SqsRecord], object]
) -> dict[str, list[dict[str, str]]]:
    """``{"batchItemFailures": [...]}``: the message ids of the records whose handler raised."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not records or not isinstance(records, list):
        raise NotAnSqsBatch("the event is not an SQS batch: no Records list")
    failed: list[SqsRecord] = []
    for raw in records:
        record = SqsRecord(raw)
        try:
            record_handler(record)
        except Exception:  # a record's failure: SQS delivers it again (then its DLQ); the others are done
            failed.append(record)
    return {"batchItemFailures": [{"itemIdentifier": record.message_id} for record in failed]}
