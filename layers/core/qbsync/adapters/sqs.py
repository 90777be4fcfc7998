"""SQS send adapter: batches of at most 10 entries and 256 KiB, per-entry receipts, no silent loss;
and :meth:`SqsSender.change_visibility` for consumers that hand a message back for a set time.

``SqsSender.send_many`` splits messages into ``SendMessageBatch`` calls, collects a receipt for each
entry, retries only the entries SQS reports as failed (and only those it does not blame on the
sender) a bounded number of times, then raises if any entry is still unsent.

Errors:

* :class:`~qbsync.errors.InfrastructureError` - a message cannot ever be sent (too large, bad attributes,
  duplicate ids, or SQS rejected it as a sender fault). Nothing of that call was retried.
* :class:`~qbsync.errors.ServiceUnavailable` / :class:`~qbsync.errors.Throttled` - entries still failed
  after the retries, or the whole call failed.
* :class:`~qbsync.errors.ConfigurationError` - the queue does not exist / access denied / no queue URL.
* ``ValueError`` - bad arguments of the sender or of :meth:`SqsSender.change_visibility` (no ids).

Every raised error carries ``err.extra["failed_ids"]`` (entry ids not sent) and
``err.extra["sent_ids"]`` (entry ids that were sent before the failure), so a caller can report
partial batch failures precisely.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from qbsync.adapters._aws import default_client, error_code, translate
from qbsync.errors import ConfigurationError, InfrastructureError, QbsyncError, ServiceUnavailable

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "QueueDepth",
    "ReceivedMessage",
    "SendReceipt",
    "SqsMessage",
    "SqsSender",
]

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024  # payload + attributes, per message and per batch
MAX_VISIBILITY_SECONDS = 12 * 3600
_BAD_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)
CORRELATION_ATTRIBUTE = "correlation_id"
_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True)
class SqsMessage:
    """One message to send.

    ``body`` may be a str, a JSON-able dict/list or a pydantic model (serialized as JSON).
    ``id`` is the batch entry id (letters, digits, ``-``, ``_``; ≤ 80): give your business key so a
    failure names it; default: the message's position in ``send_many``.
    """

    body: str | Mapping[str, Any] | Sequence[Any] | BaseModel
    id: str | None = None
    correlation_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: int | None = None
    group_id: str | None = None  # FIFO queues only
    deduplication_id: str | None = None  # FIFO queues only

    def body_text(self) -> str:
        if isinstance(self.body, str):
            return self.body
        if isinstance(self.body, BaseModel):
            return self.body.model_dump_json()
        return json.dumps(self.body, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class ReceivedMessage:
    """A message :meth:`SqsSender.receive` returned: its body, receipt handle, id and string attributes."""

    body: str
    receipt_handle: str
    message_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendReceipt:
    """Where one entry ended up."""

    id: str
    message_id: str
    sequence_number: str | None = None


_DEPTH = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True)
class QueueDepth:
    """A queue's approximate counts: ``visible`` (waiting), ``in_flight`` (received, not yet deleted),
    ``delayed`` (sent with a delay not yet over)."""

    visible: int
    in_flight: int
    delayed: int


def _sleep_backoff(attempt: int) -> float:
    # Short in-process backoff between entry retries (capped, jittered); long waits belong to SQS.
    return min(0.05 * (2**attempt), 0.5) * random.uniform(0.5, 1.0)


class SqsSender:
    """Sends to one queue.

    Args:
        queue_url: the queue URL (from :func:`qbsync.settings.get_core_settings`).
        client: a boto3 SQS client; default: the container-wide lazy client.
        max_attempts: sends per entry (1 + retries of entries SQS reports as failed).
        sleep: waits between entry retries (tests pass a no-op).
    """

    def __init__(
        self,
        queue_url: str,
        client: Any = None,
        *,
        max_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not queue_url:
            raise ConfigurationError("SqsSender needs a queue URL")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.queue_url = queue_url
        self._client = client
        self.max_attempts = max_attempts
        self._sleep = sleep

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client("sqs")
        return self._client

    def change_visibility(self, receipt_handle: str, timeout_seconds: int) -> None:
        """Make a received message visible again ``timeout_seconds`` (0..43200) from now
        (``ChangeMessageVisibility``): a consumer that must retry a message later sets when it comes back.

        Raises:
            ValueError: bad arguments. InfrastructureError: SQS rejected the receipt handle (expired, not of
                this queue).
            ConfigurationError / Throttled / ServiceUnavailable: as translated from botocore.
        """
        if not receipt_handle:
            raise ValueError("change_visibility needs a receipt handle")
        if not 0 <= timeout_seconds <= MAX_VISIBILITY_SECONDS:
            raise ValueError(f"visibility timeout must be 0 to {MAX_VISIBILITY_SECONDS} seconds")
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(timeout_seconds)
            )
        except (ClientError, BotoCoreError) as exc:
            err = translate(exc, service="SQS", operation="ChangeMessageVisibility", resource=self.queue_url)
            if isinstance(exc, ClientError) and error_code(exc) in _BAD_RECEIPT_CODES:
                err = InfrastructureError(
                    f"SQS ChangeMessageVisibility on {self.queue_url}: {error_code(exc)}",
                    aws_error_code=error_code(exc),
                )
            raise err from exc

    def depth(self) -> QueueDepth:
        """The queue's approximate message counts (one ``GetQueueAttributes``; SQS says "approximate").

        Raises ConfigurationError / Throttled / ServiceUnavailable / InfrastructureError (as translated)."""
        try:
            resp = self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=list(_DEPTH))
        except (ClientError, BotoCoreError) as exc:
            raise translate(
                exc, service="SQS", operation="GetQueueAttributes", resource=self.queue_url
            ) from exc
        attrs = resp.get("Attributes") or {}
        visible, in_flight, delayed = (int(attrs.get(name, 0)) for name in _DEPTH)
        return QueueDepth(visible=visible, in_flight=in_flight, delayed=delayed)

    def receive(self, max_messages: int, *, visibility_seconds: int) -> list[ReceivedMessage]:
        """Up to ``max_messages`` (1..10) visible messages, hidden ``visibility_seconds`` (no long poll), with
        their string message attributes and ``ApproximateReceiveCount``.

        Raises ConfigurationError / Throttled / ServiceUnavailable / InfrastructureError (as translated)."""
        if not 1 <= max_messages <= MAX_BATCH_ENTRIES:
            raise ValueError(f"receive takes 1 to {MAX_BATCH_ENTRIES} messages")
        if not 0 <= visibility_seconds <= MAX_VISIBILITY_SECONDS:
            raise ValueError(f"visibility timeout must be 0 to {MAX_VISIBILITY_SECONDS} seconds")
        try:
            answer = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                VisibilityTimeout=int(visibility_seconds),
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                AttributeNames=["ApproximateReceiveCount"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="SQS", operation="ReceiveMessage", resource=self.queue_url) from exc
        return [
            ReceivedMessage(
                body=str(m.get("Body") or ""),
                receipt_handle=str(m["ReceiptHandle"]),
                message_id=str(m.get("MessageId") or ""),
                attributes={
                    k: str(v["StringValue"])
                    for k, v in (m.get("MessageAttributes") or {}).items()
                    if isinstance(v, Mapping) and "StringValue" in v
                },
            )
            for m in answer.get("Messages") or ()
            if m.get("ReceiptHandle")
        ]

    def delete(self, receipt_handle: str) -> None:
        """Delete a received message. Raises as :meth:`receive`."""
        if not receipt_handle:
            raise ValueError("delete needs a receipt handle")
        try:
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="SQS", operation="DeleteMessage", resource=self.queue_url) from exc

    def send(self, message: SqsMessage) -> SendReceipt:
        """Send one message (same rules as :meth:`send_many`)."""
        return self.send_many([message])[0]

    def send_many(self, messages: Iterable[SqsMessage]) -> list[SendReceipt]:
        """Send every message; returns receipts in input order. Raises (see module doc) if any is unsent."""
        entries = [self._entry(m, i) for i, m in enumerate(messages)]
        ids = [e["Id"] for e in entries]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise InfrastructureError(f"duplicate SQS entry ids: {dupes}", failed_ids=dupes, sent_ids=[])
        receipts: dict[str, SendReceipt] = {}
        for batch in _chunks(entries):
            self._send_batch(batch, receipts, all_ids=ids)
        return [receipts[i] for i in ids]

    # --- internals ----------------------------------------------------------------------------------

    def _entry(self, message: SqsMessage, index: int) -> dict[str, Any]:
        entry_id = message.id if message.id is not None else str(index)
        if not _ENTRY_ID.match(entry_id):
            raise InfrastructureError(
                "SQS entry ids must be 1-80 letters, digits, '-' or '_'", failed_ids=[entry_id], sent_ids=[]
            )
        attributes = dict(message.attributes)
        if message.correlation_id:
            attributes[CORRELATION_ATTRIBUTE] = message.correlation_id
        if len(attributes) > 10:
            raise InfrastructureError(
                "SQS allows at most 10 message attributes", failed_ids=[entry_id], sent_ids=[]
            )
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message.body_text()}
        if attributes:
            entry["MessageAttributes"] = {
                name: {"DataType": "String", "StringValue": str(value)} for name, value in attributes.items()
            }
        if message.delay_seconds is not None:
            entry["DelaySeconds"] = message.delay_seconds
        if message.group_id:
            entry["MessageGroupId"] = message.group_id
        if message.deduplication_id:
            entry["MessageDeduplicationId"] = message.deduplication_id
        if _entry_size(entry) > MAX_BATCH_BYTES:
            raise InfrastructureError(
                f"SQS message {entry_id} is larger than 256 KiB ({_entry_size(entry)} bytes)",
                failed_ids=[entry_id],
                sent_ids=[],
            )
        return entry

    def _send_batch(
        self, batch: list[dict[str, Any]], receipts: dict[str, SendReceipt], *, all_ids: list[str]
    ) -> None:
        pending = batch
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(_sleep_backoff(attempt))
            try:
                resp = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=pending)
            except (ClientError, BotoCoreError) as exc:
                err = translate(exc, service="SQS", operation="SendMessageBatch", resource=self.queue_url)
                raise _with_ids(err, receipts, all_ids) from exc
            for ok in resp.get("Successful", []):
                receipts[ok["Id"]] = SendReceipt(
                    id=ok["Id"], message_id=ok["MessageId"], sequence_number=ok.get("SequenceNumber")
                )
            failed = resp.get("Failed", [])
            sender_faults = [f for f in failed if f.get("SenderFault")]
            if sender_faults:
                codes = sorted({str(f.get("Code")) for f in sender_faults})
                err = InfrastructureError(
                    f"SQS rejected {len(sender_faults)} message(s) on {self.queue_url} ({', '.join(codes)})",
                    aws_error_codes=codes,
                )
                raise _with_ids(err, receipts, all_ids)
            failed_ids = {f["Id"] for f in failed}
            # An entry neither successful nor failed would be a silent loss: treat it as failed.
            failed_ids |= {e["Id"] for e in pending if e["Id"] not in receipts}
            if not failed_ids:
                return
            pending = [e for e in pending if e["Id"] in failed_ids]
        codes = sorted({str(f.get("Code")) for f in failed})
        err = ServiceUnavailable(
            f"SQS did not accept {len(pending)} message(s) on {self.queue_url} after "
            f"{self.max_attempts} attempts ({', '.join(codes)})",
            aws_error_codes=codes,
        )
        raise _with_ids(err, receipts, all_ids)


def _with_ids(err: QbsyncError, receipts: Mapping[str, SendReceipt], all_ids: list[str]) -> QbsyncError:
    err.extra["sent_ids"] = [i for i in all_ids if i in receipts]
    err.extra["failed_ids"] = [i for i in all_ids if i not in receipts]
    return err


def _entry_size(entry: Mapping[str, Any]) -> int:
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, attr in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(attr["DataType"].encode()) + len(attr["StringValue"].encode())
    return size


def _chunks(entries: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = _entry_size(entry)
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + entry_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch
