"""Retry fan-out: SQS (``RetryQueue``, ``ReportBatchItemFailures``) → :mod:`qbsync.errorcenter.retry`.

Each message is parsed once (:func:`qbsync.models.messages.parse_retry_message`) into one of:

* a :class:`~qbsync.models.commands.RetryRequest` (admin API "resync" / "retry category" / "retry all"): the
  matching errors become one ``SyncCommand`` per record on ``OutboundQueue``, idempotently per
  ``request_id`` (:class:`~qbsync.errorcenter.retry.RetryFanout`); a long fan-out continues in a new message;
* a "Connection Changed" event of qbsync's bus with ``status = connected`` (``ConnectionResumeRule``): the
  firm's paused work is resumed (:meth:`qbsync.outbound.resume.PausedWorkResumer.resume`).

and handed to :meth:`RetryWorker.handle <qbsync.errorcenter.retry.RetryWorker.handle>`.

A malformed message is logged WITHOUT its content and reported as a batch-item failure: retried a few times,
then parked in ``RetryDLQ`` (its alarm tells the operator), never dropped silently and never a crash of the
batch. Retryable failures (SQS, DynamoDB, a request another delivery is sending) are batch-item failures too.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from qbsync.adapters.sqs_batch import SqsRecord, process_partial_batch
from qbsync.errorcenter.retry import WorkOutcome
from qbsync.errors import BadRequest, QbsyncError
from qbsync.models.messages import parse_retry_message
from qbsync.observability import context_keys, logger, metrics, tracer
from qbsync.wiring import retry_worker, start


def record_handler(record: SqsRecord, lambda_context: Any = None) -> WorkOutcome:
    """Handle one RetryQueue message. Raises (→ batch-item failure) for malformed and retryable ones.

    ``lambda_context`` (the invocation's, passed by :func:`lambda_handler`) bounds a long fan-out: it
    continues in a new message when the invocation's time runs low.
    """
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    time_left_ms = (lambda: int(remaining())) if callable(remaining) else None
    try:
        message = parse_retry_message(record.body)
        with context_keys(firm_id=message.firm_id):
            outcome = retry_worker().handle(message, time_left_ms=time_left_ms)
    except BadRequest as err:
        # a MalformedMessage, or a request naming something that does not parse (e.g. a stored cursor)
        # err.message names field paths only, never values; no body content is logged
        logger.error(
            "malformed retry message: parked for the DLQ after retries",
            extra={"message_id": record.message_id, "error": err.message},
        )
        metrics.add_metric(name="MalformedRetryMessages", unit=MetricUnit.Count, value=1)
        raise
    except QbsyncError as err:
        logger.warning(
            "retry message retried later", extra={"message_id": record.message_id, **err.context()}
        )
        metrics.add_metric(name="RetryMessagesRetried", unit=MetricUnit.Count, value=1)
        raise
    _log(record.message_id, outcome)
    return outcome


def _log(message_id: str, outcome: WorkOutcome) -> None:
    if outcome.fanout is not None:
        f = outcome.fanout
        logger.info(
            "retry request fanned out",
            extra={
                "message_id": message_id,
                "firm_id": outcome.firm_id,
                "request_id": f.request_id,
                "scope": f.scope,
                "enqueued": f.enqueued,
                "already_enqueued": f.already,
                "unsupported": f.unsupported,
                "pages": f.pages,
                "complete": f.complete,
                "continued": f.continued,
                "was_done": f.skipped_done,
            },
        )
        metrics.add_metric(name="ResyncCommandsEnqueued", unit=MetricUnit.Count, value=f.enqueued)
        metrics.add_metric(name="ResyncDuplicatesAvoided", unit=MetricUnit.Count, value=f.already)
    elif outcome.kind == "resume":
        logger.info(
            "paused work resumed after reconnect",
            extra={"message_id": message_id, "firm_id": outcome.firm_id, "resumed": outcome.resumed},
        )
        metrics.add_metric(name="PausedRecordsResumed", unit=MetricUnit.Count, value=outcome.resumed)
    else:
        logger.info("connection event ignored (not connected)", extra={"firm_id": outcome.firm_id})
        metrics.add_metric(name="ConnectionEventsIgnored", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start(retry_worker)  # a missing or bad setting fails the invocation here, loudly
    return process_partial_batch(event, partial(record_handler, lambda_context=context))
