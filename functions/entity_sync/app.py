"""Outbound sync worker: SQS (``OutboundQueue``, ``ReportBatchItemFailures``) → :mod:`qbsync.outbound`.

Each SQS record's body is the whole EventBridge event the ``PlatformEventsRule`` delivered (or one the
service re-enqueued for a released record). Per record:

* parsed with :func:`qbsync.models.platform_events.parse_platform_event` and handed to
  :meth:`SyncService.handle`; DataErrors are handled by the service (record failed + error log), so a
  record the platform must fix is consumed, not retried.
* Retryable outcomes (connection not ``connected`` → ``SyncPaused``, ReconnectRequired, throttling, an
  uncertain write, a lease race) raise → reported as a batch-item failure → SQS redelivers the message
  after its visibility timeout; after ``maxReceiveCount`` it lands in ``OutboundDLQ`` (nothing is lost).
* A malformed event (not JSON, not a platform event, a detail that fails its schema) raises BadRequest.
  It is logged WITHOUT its content (client personal data) and reported as a batch-item failure too, not
  silently dropped: it is retried a few times and then parked in the DLQ, whose alarm is the operator's
  signal that the platform sent something qbsync cannot read (a schema drift is fixed by deploying, then
  redriving the DLQ). Dropping it would lose a record change without a trace.

Throttle-aware redelivery: a retryable failure that says when to come back (``retry_after``: QBO's 429,
qbsync's own per-realm limiter, a lease held by another worker - for a lease, at most 10 s x 2^(receive-1)
since its expiry is only an upper bound) sets that message's visibility to about ``retry_after``
(1..120 s, plus up to 25 % jitter so that throttled records do not all return at once),
so it is retried in seconds instead of after the queue's visibility timeout (720 s). It is still reported
as a batch-item failure (and still counts a receive). If SQS refuses the change, the queue's timeout
applies; nothing else changes.

Bodies of kind ``qbsync.sync_record.v1`` are :class:`~qbsync.models.commands.SyncCommand` (manual sync,
retries, resume): "sync this record again from its stored platform event" →
:meth:`SyncService.handle_command`. A malformed command is handled like a malformed event.

Only the failed records are retried (``BatchProcessor`` + ``process_partial_response``); a batch in which
every record fails is reported the same way (``raise_on_entire_batch_failure=False``), never as an
exception, so the Lambda's own error metrics mean "the worker is broken", not "QuickBooks said no".
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from qbsync.errors import BadRequest, LeaseHeld, QbsyncError, RetryableError
from qbsync.models.commands import SyncCommand, is_sync_command, parse_sync_command
from qbsync.models.platform_events import parse_platform_event
from qbsync.observability import context_keys, logger, metrics, tracer
from qbsync.outbound.service import Outcome
from qbsync.wiring import outbound_queue, start, sync_service

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

#: bounds of a throttled message's early return (seconds)
REDELIVERY_MIN_SECONDS = 1
REDELIVERY_MAX_SECONDS = 120
REDELIVERY_JITTER = 0.25
LEASE_RETRY_BASE_SECONDS = 10


def _event_of(record: SQSRecord) -> dict[str, Any]:
    try:
        body = json.loads(record.body)
    except (TypeError, ValueError):
        raise BadRequest("the SQS message body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the SQS message body is not a JSON object")
    return body


def record_handler(record: SQSRecord) -> Outcome:
    """Sync one message. Raises (→ batch-item failure) for malformed and retryable messages."""
    body = _body_of(record)
    if is_sync_command(body):
        return _handle_command(record, body)
    try:
        event = parse_platform_event(body)
    except BadRequest as err:
        _malformed(record, err, "platform event")
        raise
    with context_keys(firm_id=event.firm_id, correlation_id=event.correlation_id):
        try:
            outcome = sync_service().handle(event)
        except QbsyncError as err:
            _retry_later(record, err, event_id=event.event_id)
            raise
        _log_outcome(event.event_id, outcome)
    return outcome


def _body_of(record: SQSRecord) -> dict[str, Any]:
    try:
        return _event_of(record)
    except BadRequest as err:
        _malformed(record, err, "platform event")
        raise


def _handle_command(record: SQSRecord, body: dict[str, Any]) -> Outcome:
    try:
        command: SyncCommand = parse_sync_command(body)
    except BadRequest as err:
        _malformed(record, err, "sync command")
        raise
    with context_keys(firm_id=command.firm_id, correlation_id=command.correlation_id or command.request_id):
        try:
            outcome: Outcome = sync_service().handle_command(command)
        except QbsyncError as err:
            _retry_later(record, err, request_id=command.request_id)
            raise
        _log_outcome(f"command:{command.request_id}", outcome)
    return outcome


def _malformed(record: SQSRecord, err: BadRequest, what: str) -> None:
    # err.message names field paths only, never values; no body content is logged
    logger.error(
        f"malformed {what}: parked for the DLQ after retries",
        extra={"message_id": record.message_id, "error": err.message, **err.context()},
    )
    metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)


def _retry_later(record: SQSRecord, err: QbsyncError, **ids: Any) -> None:
    logger.warning("sync retried later", extra={"message_id": record.message_id, **ids, **err.context()})
    metrics.add_metric(name="SyncRetried", unit=MetricUnit.Count, value=1)
    seconds = visibility_for(err, receive_count=_receive_count(record), jitter=random.random())
    if seconds is not None:
        _redeliver_after(record, seconds)


def _receive_count(record: SQSRecord) -> int:
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (KeyError, TypeError, ValueError):
        return 1


def visibility_for(err: QbsyncError, *, receive_count: int, jitter: float) -> int | None:
    """Seconds until a failed message should come back, or None to leave the queue's visibility timeout.

    ``retry_after`` of a RetryableError, bounded to 1..120 s, plus up to 25 % (``jitter`` in [0, 1)).
    A lease's expiry is only an upper bound (its holder usually finishes within seconds): back off by
    receive, 10, 20, 40, 80 s, so the 5th receive (the last before the DLQ) comes after the lease of a
    crashed holder (120 s) has expired.
    """
    retry_after = err.retry_after if isinstance(err, RetryableError) else None
    if retry_after is None:
        return None
    if isinstance(err, LeaseHeld):
        backoff = LEASE_RETRY_BASE_SECONDS * 2 ** (min(receive_count, 8) - 1)
        retry_after = min(retry_after, backoff)
    bounded = min(float(REDELIVERY_MAX_SECONDS), max(float(REDELIVERY_MIN_SECONDS), retry_after))
    with_jitter = bounded * (1 + REDELIVERY_JITTER * min(1.0, max(0.0, jitter)))
    return min(REDELIVERY_MAX_SECONDS, math.ceil(with_jitter))


def _redeliver_after(record: SQSRecord, seconds: int) -> None:
    try:
        outbound_queue().change_visibility(record.receipt_handle, seconds)
    except QbsyncError as err:
        # the queue's own visibility timeout applies instead: later, but nothing is lost
        logger.warning(
            "could not shorten the redelivery of a throttled message",
            extra={"message_id": record.message_id, **err.context()},
        )
        return
    metrics.add_metric(name="ThrottledRedelivery", unit=MetricUnit.Count, value=1)
    logger.info(
        "message comes back early", extra={"message_id": record.message_id, "visibility_seconds": seconds}
    )


def _log_outcome(event_id: str, outcome: Outcome) -> None:
    logger.info(
        "platform event processed",
        extra={
            "event_id": event_id,
            "status": outcome.status,
            "entity_type": outcome.entity_type,
            "platform_id": outcome.platform_id,
            "error_code": outcome.error_code,
            "released": outcome.released,
        },
    )
    metrics.add_metric(name=f"Sync_{outcome.status}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start(sync_service)  # a missing or bad setting fails the invocation here, loudly
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
