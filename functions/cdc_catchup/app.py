"""The scheduled resync (issue 15 item 1; CDC catch-up, issue 14 item 5): the schedule's fan-out, and one
firm's run per ``CatchUpQueue`` message.

Two triggers, told apart by the event's shape:

* the ``CatchUpSchedule`` rule (an EventBridge scheduled event): one
  :class:`~qbsync.models.messages.CatchUpRequest` per connected firm goes to ``CatchUpQueue``, spread over
  ten minutes (:meth:`qbsync.inbound.catchup.CatchUpRequests.schedule_all`); then ``OutboundDLQ``'s
  infrastructure dead letters go back to ``OutboundQueue`` (:mod:`qbsync.reconcile.redrive`, at most 3 times
  each; what cannot be understood stays);
* ``CatchUpQueue`` (``ReportBatchItemFailures``; the schedule's requests, ``POST /sync/catch-up`` and a
  sweep's continuations): each message is parsed once (:func:`qbsync.models.messages.parse_catch_up_message`)
  and the firm's resync runs (:meth:`qbsync.reconcile.resync.Resync.run`: CDC catch-up, record sweep, daily
  pre-flight check; an on-demand request runs the catch-up only).

A malformed message is logged without its content and reported as a batch-item failure (retried, then
parked in ``CatchUpDLQ``: its alarm tells the operator). A retryable failure (QuickBooks throttled or down,
a record being written) is a batch-item failure too: the redelivery resumes from the cursors already
advanced.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from qbsync import wiring
from qbsync.adapters.sqs_batch import SqsRecord, process_partial_batch
from qbsync.errors import BadRequest, QbsyncError
from qbsync.models.messages import parse_catch_up_message
from qbsync.observability import context_keys, logger, metrics, tracer
from qbsync.reconcile.resync import ResyncReport


def record_handler(record: SqsRecord) -> ResyncReport:
    """Resync the firm of one CatchUpQueue message. Raises (→ batch-item failure) when malformed or
    retryable."""
    try:
        request = parse_catch_up_message(record.body)
        with context_keys(firm_id=request.firm_id):
            report = wiring.resync().run(request)
    except BadRequest as err:
        logger.error(
            "malformed catch-up message: parked for the DLQ after retries",
            extra={"message_id": record.message_id, "error": err.message},
        )
        metrics.add_metric(name="MalformedCatchUpMessages", unit=MetricUnit.Count, value=1)
        raise
    except QbsyncError as err:
        logger.warning("resync retried later", extra={"message_id": record.message_id, **err.context()})
        metrics.add_metric(name="CatchUpsRetried", unit=MetricUnit.Count, value=1)
        raise
    _step_metrics(report)
    logger.info(
        "resync run",
        extra={
            "message_id": record.message_id,
            "firm_id": report.firm_id,
            "status": report.status,
            "reason": request.reason,
            "request_id": request.request_id,
            "steps": report.steps,
            "failed": report.failed,
            "continued": report.continued,
        },
    )
    return report


def _step_metrics(report: ResyncReport) -> None:
    """Counts per step (``Resync_<step>_<count>``), the catch-up's under their old names, failed steps."""
    catch_up = report.steps.get("catch_up") or {}
    if catch_up:
        metrics.add_metric(name="CatchUpObjectsRead", unit=MetricUnit.Count, value=catch_up.get("objects", 0))
        metrics.add_metric(name="CatchUpFullComparisons", unit=MetricUnit.Count, value=len(catch_up["full"]))
    for step, counts in report.steps.items():
        if step == "catch_up":
            continue
        for name, value in counts.items():
            if isinstance(value, int):
                metrics.add_metric(name=f"Resync_{step}_{name}", unit=MetricUnit.Count, value=value)
    for step in report.failed:
        metrics.add_metric(name=f"ResyncStepFailed_{step}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and "Records" in event:
        wiring.start(wiring.resync)  # a missing or bad setting fails the invocation here, loudly
        return dict(process_partial_batch(event, record_handler))
    request_id = str(event.get("id") or "") if isinstance(event, dict) else ""
    if request_id:
        logger.set_correlation_id(request_id)  # the schedule event's id ties the fan-out's lines together
    wiring.start(wiring.catch_up_requests, wiring.dead_letter_redrive)
    sent = wiring.catch_up_requests().schedule_all(request_id or "scheduled")
    metrics.add_metric(name="CatchUpsScheduled", unit=MetricUnit.Count, value=sent)
    return {"scheduled": sent, "redriven": _redrive(request_id or "scheduled")}


def _redrive(request_id: str) -> int:
    """Move OutboundDLQ's infrastructure dead letters back (qbsync.reconcile.redrive). A failure is logged:
    the fan-out above is done, and the next tick redrives what this one did not."""
    try:
        report = wiring.dead_letter_redrive().run(request_id)
    except QbsyncError as err:
        logger.warning("dead-letter redrive failed: the next tick tries again", extra=err.context())
        metrics.add_metric(name="DeadLetterRedriveFailed", unit=MetricUnit.Count, value=1)
        return 0
    metrics.add_metric(name="DeadLettersRedriven", unit=MetricUnit.Count, value=report.moved)
    for reason, count in report.kept.items():
        metrics.add_metric(name=f"DeadLettersKept_{reason}", unit=MetricUnit.Count, value=count)
    return report.moved
