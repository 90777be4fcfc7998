"""SQS event-source mappings as Lambda runs them (moto's own delivers one record per call).

A poller long-polls its queue (short waits, never a busy loop), takes up to ``BatchSize`` messages
(gathering for ``MaximumBatchingWindowInSeconds`` when the first receive is short), invokes the
function with the real SQS event shape and then:

- success: deletes the batch, except the ``batchItemFailures`` it reported (ReportBatchItemFailures);
- function error (raised exception, timeout): deletes nothing;
- an invalid partial-batch response (unknown or missing itemIdentifier): deletes nothing, as Lambda.

What is not deleted becomes visible again after the queue's visibility timeout, and moto's redrive
moves a message to the dead-letter queue once its receive count passes ``maxReceiveCount``.
``poll_once()`` runs one cycle synchronously (tests drive it without waiting on a thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.stack.provision import Resources, SqsEventSource, clients
from local.stack.runtime import InvokeResult

log = logging.getLogger("local.stack.sqs")

Invoker = Callable[[str, Any], InvokeResult]


@dataclass
class PollOutcome:
    """What one poll cycle did (message ids)."""

    received: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


def sqs_record(message: dict[str, Any], source: SqsEventSource, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event from a ReceiveMessage message."""
    attributes = dict(message.get("Attributes") or {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class SqsPoller:
    """Feed one SQS event source to its function. ``start()``/``stop()`` run it in a thread."""

    def __init__(
        self,
        source: SqsEventSource,
        resources: Resources,
        invoke: Invoker,
        wait_seconds: int = 1,
    ) -> None:
        self.source = source
        self.resources = resources
        self.invoke = invoke
        self.wait_seconds = wait_seconds
        self._sqs = clients(resources.endpoint_url, resources.region)["sqs"]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _receive(self, max_messages: int, wait: int) -> list[dict[str, Any]]:
        return self._sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def poll_once(self, wait_seconds: int | None = None) -> PollOutcome:
        """Receive one batch, invoke the function, delete what succeeded. Returns what happened."""
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        messages = self._receive(self.source.batch_size, 0)
        if not messages and wait > 0:
            # Long-poll for ONE message (moto's long poll otherwise waits out the full wait to fill a
            # batch), then take what else is there at once.
            messages = self._receive(1, wait)
            if messages and self.source.batch_size > 1:
                more = self._receive(self.source.batch_size - 1, 0)
                messages.extend(m for m in more if m["MessageId"] != messages[0]["MessageId"])
        window = self.source.maximum_batching_window_seconds
        if messages and window > 0 and len(messages) < self.source.batch_size:
            # Batching window: keep receiving until the batch is full or the window closes.
            seen = {m["MessageId"] for m in messages}
            window_end = time.monotonic() + window
            while len(messages) < self.source.batch_size and not self._stop.is_set():
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                more = self._receive(self.source.batch_size - len(messages), min(1, int(remaining)))
                fresh = [m for m in more if m["MessageId"] not in seen]
                seen.update(m["MessageId"] for m in fresh)
                messages.extend(fresh)
        outcome = PollOutcome(received=[m["MessageId"] for m in messages])
        if not messages:
            return outcome
        event = {"Records": [sqs_record(m, self.source, self.resources.region) for m in messages]}
        result = self.invoke(self.source.function, event)
        if result.error is not None:
            outcome.error = result.error
            outcome.kept = list(outcome.received)
            return outcome
        failed = self._failed_ids(result.payload, set(outcome.received))
        if failed is None:  # invalid partial-batch response: Lambda treats it as a batch failure
            outcome.error = {
                "errorType": "InvalidBatchItemFailures",
                "errorMessage": "invalid batchItemFailures",
            }
            outcome.kept = list(outcome.received)
            return outcome
        to_delete = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(to_delete), 10):
            chunk = to_delete[start : start + 10]
            resp = self._sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in resp.get("Failed", []):
                log.warning("could not delete message of %s: %s", self.source.queue, failure.get("Code"))
        outcome.deleted = [m["MessageId"] for m in to_delete]
        outcome.kept = [i for i in outcome.received if i in failed]
        return outcome

    def _failed_ids(self, payload: Any, batch_ids: set[str]) -> set[str] | None:
        if not self.source.report_batch_item_failures:
            return set()
        if payload is None or payload == "" or payload == {}:
            return set()
        if not isinstance(payload, dict):
            return set()
        failures = payload.get("batchItemFailures")
        if failures is None:
            return set()
        if not isinstance(failures, list):
            return None
        ids = set()
        for item in failures:
            ident = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not ident or ident not in batch_ids:
                return None
            ids.add(ident)
        return ids

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("SQS poller %s failed; retrying", self.source.logical_id)
                self._stop.wait(1)

    def start(self, concurrency: int = 1) -> SqsPoller:
        """Poll in ``concurrency`` threads (Lambda runs several batches of one source at a time)."""
        if not self._threads and self.source.enabled:
            self._stop.clear()
            for i in range(max(1, concurrency)):
                thread = threading.Thread(
                    target=self._run, daemon=True, name=f"sqs-{self.source.logical_id}-{i}"
                )
                thread.start()
                self._threads.append(thread)
        return self

    def signal_stop(self) -> None:
        """Stop polling after the current cycle (does not wait)."""
        self._stop.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()
