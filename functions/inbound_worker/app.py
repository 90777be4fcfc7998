"""Inbound worker: SQS (``InboundQueue``, ``ReportBatchItemFailures``) → :mod:`qbsync.inbound.worker`.

Each record's body is parsed once (:func:`qbsync.models.messages.parse_inbound_message`: an
:class:`~qbsync.models.messages.InboundNotice`, the changes of one realm from one verified webhook POST).
The batch's notices are grouped by realm and each realm is handled once
(:meth:`InboundWorker.handle <qbsync.inbound.worker.InboundWorker.handle>`): notices of the same realm
collapse, and the changed objects are read in one query per entity type.

* A body that cannot be understood goes to ``InboundDLQ`` at once (:class:`qbsync.outbound.dead_letters.
  DeadLetters`, the same parking as the outbound worker's: sent first, then consumed; metric
  ``MalformedEvents``), logged WITHOUT its content: the problem's field paths only.
* A realm whose handling raises (throttled, QuickBooks unavailable, reconnect required, a DynamoDB race,
  a bug) reports every one of its messages as a batch-item failure; SQS delivers them again (after 5
  receives ``InboundDLQ``). A throttled realm's messages come back after the retry-after
  (:func:`qbsync.outbound.redelivery.visibility_for`), not after the queue's 180 s. Other realms of the
  batch are not affected.
* A batch in which everything fails is reported the same way, never as an exception, so the Lambda's own
  error metrics mean "the worker is broken".
"""

from __future__ import annotations

import random
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from qbsync.errors import MalformedMessage, QbsyncError
from qbsync.inbound.worker import RealmOutcome
from qbsync.models.messages import InboundNotice, parse_inbound_message
from qbsync.observability import context_keys, logger, metrics, tracer
from qbsync.outbound.redelivery import DeadLetter, decide, receive_count_of
from qbsync.wiring import inbound_dead_letters, inbound_queue, inbound_worker, start


def _receive_count(record: dict[str, Any]) -> int:
    attributes = record.get("attributes")
    return receive_count_of(
        attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    )


def _dead_letter(record: dict[str, Any], err: MalformedMessage) -> bool:
    """Park a notice that cannot be understood in InboundDLQ; False when the DLQ did not take it."""
    receive_count = _receive_count(record)
    assert isinstance(decide(err, receive_count=receive_count, jitter=0.0), DeadLetter)
    metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
    try:
        inbound_dead_letters().park(
            str(record.get("body") or ""),
            err,
            message_id=str(record.get("messageId") or ""),
            receive_count=receive_count,
        )
    except QbsyncError as send_err:
        logger.error(
            "malformed inbound notice: the DLQ did not take it, left on the queue",
            extra={"message_id": record.get("messageId"), "error": err.message, **send_err.context()},
        )
        return False
    # err.message names field paths only, never values
    logger.error(
        "malformed inbound notice: sent to the DLQ at once",
        extra={"message_id": record.get("messageId"), "error": err.message, "receive_count": receive_count},
    )
    metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)
    return True


def _redeliver_early(records: list[dict[str, Any]], err: Exception) -> None:
    for record in records:
        decision = decide(err, receive_count=_receive_count(record), jitter=random.random())
        if isinstance(decision, DeadLetter) or decision.visibility_seconds is None:
            continue
        try:
            inbound_queue().change_visibility(str(record.get("receiptHandle")), decision.visibility_seconds)
        except QbsyncError as change_err:
            # the queue's own visibility timeout applies instead: later, but nothing is lost
            logger.warning(
                "could not shorten the redelivery of a throttled notice",
                extra={"message_id": record.get("messageId"), **change_err.context()},
            )


def _log_outcome(outcome: RealmOutcome) -> None:
    report = outcome.report
    logger.info(
        "inbound notices processed",
        extra={
            "realm_id": outcome.realm_id,
            "firm_id": outcome.firm_id,
            "status": outcome.status,
            "changes": outcome.changes,
            "objects": outcome.objects,
            "reads": outcome.reads,
            "echo": report.echo,
            "synced_changes": report.synced_changes,
            "payments": report.payments,
            "ignored": report.ignored_reasons,
        },
    )
    metrics.add_metric(name=f"Inbound_{outcome.status}", unit=MetricUnit.Count, value=1)
    for name, value in (
        ("InboundEcho", report.echo),
        ("InboundSyncedChange", report.synced_changes),
        ("InboundPayment", report.payments),
        ("InboundIgnored", report.ignored),
    ):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _handle_realm(realm_id: str, items: list[tuple[dict[str, Any], InboundNotice]]) -> list[str]:
    """Handle one realm's notices; the message ids to report as failures ([] when done)."""
    records = [record for record, _ in items]
    with context_keys(realm_id=realm_id, correlation_id=items[0][1].notification_id):
        try:
            outcome = inbound_worker().handle(realm_id, [notice for _, notice in items])
        except Exception as err:
            if isinstance(err, QbsyncError):
                logger.warning(
                    "inbound notices retried later",
                    extra={"realm_id": realm_id, "messages": len(records), **err.context()},
                )
                metrics.add_metric(name="InboundRetried", unit=MetricUnit.Count, value=1)
                _redeliver_early(records, err)
            else:
                logger.exception("inbound notices failed unexpectedly", extra={"realm_id": realm_id})
                metrics.add_metric(name="InboundUnexpected", unit=MetricUnit.Count, value=1)
            return [str(record.get("messageId")) for record in records]
        _log_outcome(outcome)
    return []


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start(inbound_worker, inbound_dead_letters)  # a missing or bad setting fails the invocation here
    failures: list[str] = []
    by_realm: dict[str, list[tuple[dict[str, Any], InboundNotice]]] = {}
    for record in event.get("Records") or []:
        try:
            notice = parse_inbound_message(record.get("body"))
        except MalformedMessage as err:
            if not _dead_letter(record, err):
                failures.append(str(record.get("messageId")))
            continue
        by_realm.setdefault(notice.realm_id, []).append((record, notice))
    for realm_id, items in by_realm.items():
        failures.extend(_handle_realm(realm_id, items))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
