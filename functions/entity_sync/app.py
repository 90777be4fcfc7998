"""Outbound sync worker: SQS (``OutboundQueue``, ``ReportBatchItemFailures``) → :mod:`qbsync.outbound`.

Per record: the body is parsed once (:func:`qbsync.models.messages.parse_outbound_message`: a platform
event - the EventBridge event the ``PlatformEventsRule`` delivered, or one the service re-enqueued - or a
:class:`~qbsync.models.commands.SyncCommand`), handed to :meth:`SyncService.handle_message`, and what
happened goes through the redelivery policy (:mod:`qbsync.outbound.redelivery`), which this handler
applies: consume the message, or report it as a batch-item failure (after changing its visibility when a
throttled record should come back early). A body that cannot be understood goes to ``OutboundDLQ`` at once
(:mod:`qbsync.outbound.dead_letters`: sent there first, then consumed; metric ``MalformedEvents``), logged
WITHOUT its content (client personal data): detail type, firm id, event id and the problem's field paths.

The batch runs inside :meth:`SyncService.batch` (:mod:`qbsync.outbound.batch`): reads shared by its
records, its status events sent in one PutEvents at the end.

Only the failed records are retried (:func:`qbsync.adapters.sqs_batch.process_partial_batch`, the
semantics of Powertools' ``BatchProcessor`` without its import cost); a batch in which every record fails
is reported the same way, never as an exception, so the Lambda's own error metrics mean "the worker is
broken", not "QuickBooks said no".
"""

from __future__ import annotations

import random
import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from qbsync.adapters.sqs_batch import SqsRecord, process_partial_batch
from qbsync.errors import MalformedMessage, QbsyncError
from qbsync.models.commands import SyncCommand
from qbsync.models.messages import OutboundMessage, parse_outbound_message
from qbsync.observability import context_keys, logger, metrics, tracer
from qbsync.outbound.redelivery import DeadLetter, decide, receive_count_of
from qbsync.outbound.service import Outcome
from qbsync.wiring import dead_letters, outbound_queue, start, sync_service

#: the batch's bodies, parsed once before it runs (message id → message, or why it cannot be read)
_parsed: dict[str, OutboundMessage | MalformedMessage] = {}


def _parse_batch(event: dict[str, Any]) -> list[OutboundMessage]:
    """Parse every body of the batch once (kept in ``_parsed`` for ``record_handler``); the readable ones."""
    _parsed.clear()
    readable: list[OutboundMessage] = []
    for raw in event.get("Records") or ():
        if not isinstance(raw, dict) or not isinstance(raw.get("messageId"), str):
            continue  # the batch loop hands it to record_handler, which cannot read it: a failure
        try:
            message = parse_outbound_message(raw.get("body"))
        except MalformedMessage as err:
            _parsed[raw["messageId"]] = err
            continue
        _parsed[raw["messageId"]] = message
        readable.append(message)
    return readable


def record_handler(record: SqsRecord) -> Outcome | None:
    """Sync one message. Raises (→ batch-item failure) when the redelivery policy redelivers it."""
    parsed = _parsed.pop(record.message_id, None)
    try:
        if isinstance(parsed, MalformedMessage):
            raise parsed
        message = parsed if parsed is not None else parse_outbound_message(record.body)
    except MalformedMessage as err:
        _dead_letter(record, err)
        return None  # in the DLQ now: consumed
    ids = _ids(message)
    with context_keys(firm_id=message.firm_id, correlation_id=_correlation_id(message)):
        try:
            outcome = sync_service().handle_message(message)
        except Exception as err:
            _redeliver(record, err, ids)
            raise
        _log_outcome(_log_id(message), outcome)
        _lag_metric(message, outcome)
    return outcome


def _lag_metric(message: OutboundMessage, outcome: Outcome) -> None:
    """The fleet's event-to-QuickBooks lag (EventToQuickBooksLagAlarm): seconds from the platform change to
    its write landing, one value of the invocation's metric line per record written (no AWS call). A
    SyncCommand re-runs a stored event and carries no ``occurred_at``: not measured here (GET /health is)."""
    if isinstance(message, SyncCommand) or outcome.status not in ("synced", "adopted"):
        return
    lag = max(time.time() - message.occurred_at.timestamp(), 0.0)
    metrics.add_metric(name="EventToQuickBooksLag", unit=MetricUnit.Seconds, value=round(lag, 3))


def _ids(message: OutboundMessage) -> dict[str, str]:
    if isinstance(message, SyncCommand):
        return {"request_id": message.request_id}
    return {"event_id": message.event_id}


def _correlation_id(message: OutboundMessage) -> str | None:
    if isinstance(message, SyncCommand):
        return message.correlation_id or message.request_id
    return message.correlation_id


def _log_id(message: OutboundMessage) -> str:
    return f"command:{message.request_id}" if isinstance(message, SyncCommand) else message.event_id


def _dead_letter(record: SqsRecord, err: MalformedMessage) -> None:
    """Send a message that cannot be understood to the DLQ, then let it be consumed (policy: DeadLetter).

    If the DLQ does not take it, raises: a batch-item failure, so it comes back (nothing is lost).
    """
    receive_count = _receive_count(record)
    decision = decide(err, receive_count=receive_count, jitter=0.0)
    assert isinstance(decision, DeadLetter)
    metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
    try:
        parked = dead_letters().park(
            record.body, err, message_id=record.message_id, receive_count=receive_count
        )
    except QbsyncError as send_err:
        logger.error(
            f"malformed {err.what}: the DLQ did not take it, left on the queue",
            extra={"message_id": record.message_id, "error": err.message, **send_err.context()},
        )
        raise
    # err.message names field paths only, never values; no body content is logged
    logger.error(
        f"malformed {err.what}: sent to the DLQ at once",
        extra={
            "message_id": record.message_id,
            "detail_type": parked.detail_type,
            "firm_id": parked.firm_id,
            "event_id": parked.event_id,
            "error": err.message,
            "receive_count": receive_count,
        },
    )
    metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)


def _redeliver(record: SqsRecord, err: Exception, ids: dict[str, str]) -> None:
    """Apply the redelivery policy to a failed message (the caller re-raises: a batch-item failure)."""
    decision = decide(err, receive_count=_receive_count(record), jitter=random.random())
    if not isinstance(decision, DeadLetter) and decision.why == "retry" and isinstance(err, QbsyncError):
        logger.warning("sync retried later", extra={"message_id": record.message_id, **ids, **err.context()})
        metrics.add_metric(name="SyncRetried", unit=MetricUnit.Count, value=1)
    if not isinstance(decision, DeadLetter) and decision.visibility_seconds is not None:
        _redeliver_after(record, decision.visibility_seconds)


def _receive_count(record: SqsRecord) -> int:
    attributes = record.get("attributes")
    return receive_count_of(
        attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    )


def _redeliver_after(record: SqsRecord, seconds: int) -> None:
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
    start(sync_service, dead_letters)  # a missing or bad setting fails the invocation here, loudly
    # one batch: the connection and settings read once; the release of waiting records and the status
    # events done together at the end
    try:
        with sync_service().batch():
            sync_service().prepare(_parse_batch(event))  # the batch's reads, done ahead and together
            response = process_partial_batch(event, record_handler)
    except QbsyncError as err:
        return _batch_not_finished(event, err)
    return dict(response)


def _batch_not_finished(event: dict[str, Any], err: QbsyncError) -> dict[str, Any]:
    """The batch's closing work (releasing the records waiting on its synced records, sending its status
    events) failed: every message comes back. Their records are ``already_synced`` then, so the release
    and the announcements happen on the redelivery; nothing is lost or written twice."""
    records = event.get("Records") if isinstance(event, dict) else None
    ids = [r["messageId"] for r in records or () if isinstance(r, dict) and "messageId" in r]
    logger.warning(
        "the batch's release and announcements failed: every message is redelivered",
        extra={"messages": len(ids), **err.context()},
    )
    metrics.add_metric(name="BatchCloseFailed", unit=MetricUnit.Count, value=1)
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
