"""Outbound sync worker: SQS (``OutboundQueue``, ``ReportBatchItemFailures``) → :mod:`qbsync.sync.service`.

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

Only the failed records are retried (``BatchProcessor`` + ``process_partial_response``); a batch in which
every record fails is reported the same way (``raise_on_entire_batch_failure=False``), never as an
exception, so the Lambda's own error metrics mean "the worker is broken", not "QuickBooks said no".
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from qbsync.errors import BadRequest, QbsyncError
from qbsync.models.platform_events import parse_platform_event
from qbsync.observability import context_keys, logger, metrics, tracer
from qbsync.sync.service import Outcome, sync_service

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


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
    try:
        event = parse_platform_event(_event_of(record))
    except BadRequest as err:
        # err.message names field paths only, never values; no body content is logged
        logger.error(
            "malformed platform event: parked for the DLQ after retries",
            extra={"message_id": record.message_id, "error": err.message, **err.context()},
        )
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
        raise
    with context_keys(firm_id=event.firm_id, correlation_id=event.correlation_id):
        try:
            outcome = sync_service().handle(event)
        except QbsyncError as err:
            logger.warning(
                "sync retried later",
                extra={"message_id": record.message_id, "event_id": event.event_id, **err.context()},
            )
            metrics.add_metric(name="SyncRetried", unit=MetricUnit.Count, value=1)
            raise
        _log_outcome(event.event_id, outcome)
    return outcome


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
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
