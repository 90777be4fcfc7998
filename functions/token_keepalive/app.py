"""Scheduled token keep-alive (every 15 minutes): see :mod:`qbsync.connection.keepalive`."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from qbsync import wiring
from qbsync.connection.keepalive import keep_alive
from qbsync.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("id"):
        logger.set_correlation_id(str(event["id"]))  # the schedule event's id ties the sweep's lines together
    wiring.start(wiring.connection_service)  # a missing or bad setting fails the invocation here, loudly
    report = keep_alive(wiring.connection_service(), now=time.time)
    counts = report.as_dict()
    for name, value in counts.items():
        metrics.add_metric(name=f"KeepAlive_{name}", unit=MetricUnit.Count, value=value)
    logger.info("token keep-alive sweep done", extra=counts)
    return counts
