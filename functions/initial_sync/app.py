"""The initial sync's task steps (Step Functions) and the platform's "Snapshot Ready" (EventBridge).

Two triggers, told apart by the event's shape:

* the ``InitialSync`` state machine's tasks, ``{"step": ..., "run": {...}}``
  (:meth:`qbsync.initial_sync.steps.InitialSyncSteps.handle`). What a step raises becomes the error name the
  state machine's Retry and Catch match: :class:`InitialSyncRetry` for anything worth another try
  (QuickBooks or AWS faults, records held by a worker: retried with back-off), :class:`InitialSyncFailed`
  for what no retry fixes (the run is marked failed with the reason and can be resumed);
* the ``SnapshotReadyRule`` (``source: platform``, ``Snapshot Ready``): the platform exported the records the
  run asked for (:meth:`qbsync.initial_sync.intake.SnapshotIntake.accept`). A malformed announcement is
  logged without its content and answered with an "Initial Sync Progress" naming the problem; the run keeps
  waiting for a good one.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from qbsync import wiring
from qbsync.errors import QbsyncError, RetryableError
from qbsync.observability import context_keys, logger, metrics, tracer


class InitialSyncRetry(Exception):
    """Worth another try (the state machine retries the step with back-off)."""


class InitialSyncFailed(Exception):
    """No retry fixes it: the run fails with this reason."""


def _step(event: dict[str, Any]) -> dict[str, Any]:
    wiring.start(wiring.initial_sync_steps)
    found = event.get("run")
    run: dict[str, Any] = found if isinstance(found, dict) else {}
    with context_keys(
        firm_id=run.get("firm_id"), realm_id=run.get("realm_id"), correlation_id=run.get("run_id")
    ):
        try:
            result = wiring.initial_sync_steps().handle(event)
        except RetryableError as err:
            logger.warning("initial sync step retried", extra=err.context())
            metrics.add_metric(name="InitialSyncStepRetried", unit=MetricUnit.Count, value=1)
            raise InitialSyncRetry(err.message) from err
        except QbsyncError as err:
            logger.error("initial sync step failed", extra=err.context())
            metrics.add_metric(name="InitialSyncStepFailed", unit=MetricUnit.Count, value=1)
            raise InitialSyncFailed(err.message) from err
    logger.info("initial sync step done", extra={"step": event.get("step"), "result": _brief(result)})
    return result


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k in ("action", "resume_at", "counts", "skipped", "status")}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and "step" in event:
        return _step(event)
    wiring.start(wiring.snapshot_intake)
    detail = event.get("detail") if isinstance(event, dict) else None
    accepted = wiring.snapshot_intake().accept(detail)
    metrics.add_metric(
        name="SnapshotsAccepted" if accepted.accepted else "SnapshotsRefused", unit=MetricUnit.Count, value=1
    )
    return accepted.as_dict()
