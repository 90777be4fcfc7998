"""EventBridge deliveries moto does not make: schedules, and rules with Lambda/Step Functions targets.

- Schedules (rules with ``ScheduleExpression``, ``AWS::Scheduler::Schedule``): moto stores them and
  never fires them. ``Scheduler`` ticks ``rate(...)`` expressions on timers and ``fire(logical_id)``
  fires any schedule now (demo, tests). ``cron(...)`` expressions only fire through ``fire``.
- Pattern rules with Lambda or Step Functions targets: provisioning pointed them at an internal SQS
  queue (moto matches the pattern and delivers the event there); ``EventRouter`` drains those queues
  and delivers each event to the real targets like an asynchronous invoke (retried twice on error).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.stack.provision import EventRoute, Resources, RuleTarget, ScheduleSpec, clients
from local.stack.runtime import InvokeResult

log = logging.getLogger("local.stack.events")

Invoker = Callable[[str, Any], InvokeResult]

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleError(ValueError):
    """A schedule expression the local stack cannot interpret, or an unknown schedule id."""


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of ``rate(N unit)``; None for ``cron(...)``/``at(...)``.

    Raises ScheduleError for anything else (or a zero rate).
    """
    m = _RATE.match(expression.strip())
    if m:
        value = int(m.group(1))
        if value <= 0:
            raise ScheduleError(f"rate must be positive: {expression}")
        return value * _UNIT_SECONDS[m.group(2).rstrip("s")]
    if expression.startswith(("cron(", "at(")):
        return None
    raise ScheduleError(f"not a schedule expression: {expression!r}")


def _json_path(document: Any, path: str) -> Any:
    """The subset of JSONPath EventBridge's InputPath uses: ``$`` and ``$.a.b``."""
    if path == "$":
        return document
    if not path.startswith("$."):
        raise ScheduleError(f"unsupported InputPath {path!r}")
    value = document
    for part in path[2:].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _target_input(target: RuleTarget, event: Any) -> Any:
    if target.input is not None:
        return json.loads(target.input)
    if target.input_path is not None:
        return _json_path(event, target.input_path)
    return event


class _Deliverer:
    def __init__(
        self, resources: Resources, invoke: Invoker, invoke_async: Callable[[str, Any], Any]
    ) -> None:
        self.resources = resources
        self.invoke = invoke
        self.invoke_async = invoke_async

    def deliver(self, target: RuleTarget, event: Any, wait: bool) -> InvokeResult | str | None:
        payload = _target_input(target, event)
        if target.kind == "lambda":
            assert target.function is not None
            if wait:
                return self.invoke(target.function, payload)
            self.invoke_async(target.function, payload)
            return None
        sfn = clients(self.resources.endpoint_url, self.resources.region)["stepfunctions"]
        arn: str = sfn.start_execution(
            stateMachineArn=target.arn, name=f"events-{uuid.uuid4().hex}", input=json.dumps(payload)
        )["executionArn"]
        return arn


class Scheduler:
    """Ticks the stack's schedules. ``fire(logical_id)`` runs one now and returns each target's result
    (an InvokeResult for a function, the execution ARN for a state machine)."""

    def __init__(
        self,
        resources: Resources,
        invoke: Invoker,
        invoke_async: Callable[[str, Any], Any],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.resources = resources
        self._deliverer = _Deliverer(resources, invoke, invoke_async)
        self._now = now
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def scheduled_event(self, spec: ScheduleSpec) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.resources.account_id,
            "time": self._now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.resources.region,
            "resources": [spec.arn],
            "detail": {},
        }

    def fire(self, logical_id: str) -> list[InvokeResult | str | None]:
        """Fire a schedule now and wait for its Lambda targets. Raises ScheduleError if unknown."""
        spec = self.resources.schedules.get(logical_id)
        if spec is None:
            raise ScheduleError(f"no schedule {logical_id!r}; known: {sorted(self.resources.schedules)}")
        event = self.scheduled_event(spec)
        return [self._deliverer.deliver(t, event, wait=True) for t in spec.targets]

    def _tick(self, spec: ScheduleSpec, interval: int) -> None:
        while not self._stop.wait(interval):
            event = self.scheduled_event(spec)
            for target in spec.targets:
                try:
                    self._deliverer.deliver(target, event, wait=False)
                except Exception:
                    log.exception("schedule %s could not deliver to %s", spec.logical_id, target.id)

    def start(self) -> Scheduler:
        for spec in self.resources.schedules.values():
            interval = rate_seconds(spec.expression)
            if not spec.enabled:
                continue
            if interval is None:
                log.warning("schedule %s (%s) only fires on demand locally", spec.logical_id, spec.expression)
                continue
            thread = threading.Thread(
                target=self._tick, args=(spec, interval), daemon=True, name=f"schedule-{spec.logical_id}"
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()


def _route_body(body: str) -> Any:
    # An InputTransformer may render plain text; Lambda then receives it as a JSON string.
    try:
        return json.loads(body)
    except ValueError:
        return body


class EventRouter:
    """Delivers events that moto routed to internal queues (rules with Lambda/Step Functions targets)."""

    def __init__(
        self,
        resources: Resources,
        invoke: Invoker,
        invoke_async: Callable[[str, Any], Any],
        wait_seconds: int = 1,
    ) -> None:
        self.resources = resources
        self._deliverer = _Deliverer(resources, invoke, invoke_async)
        self.wait_seconds = wait_seconds
        self._sqs = clients(resources.endpoint_url, resources.region)["sqs"]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def drain_once(self, route: EventRoute, wait_seconds: int = 0) -> list[InvokeResult | str | None]:
        """Deliver what is waiting in one route's queue, synchronously (tests)."""
        results: list[InvokeResult | str | None] = []
        messages = self._sqs.receive_message(
            QueueUrl=route.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in messages:
            event = _route_body(message["Body"])
            for target in route.targets:
                results.append(self._deliverer.deliver(target, event, wait=True))
            # Delivered (async semantics: function errors were the function's to retry, not the bus's).
            self._sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return results

    def _run(self, route: EventRoute) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=route.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    # one message: moto's long poll waits out the full wait trying to fill a batch
                    messages = self._sqs.receive_message(
                        QueueUrl=route.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=self.wait_seconds
                    ).get("Messages", [])
                for message in messages:
                    event = _route_body(message["Body"])
                    for target in route.targets:
                        self._deliverer.deliver(target, event, wait=False)
                    self._sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"])
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("event route %s failed; retrying", route.logical_id)
                self._stop.wait(1)

    def start(self) -> EventRouter:
        for route in self.resources.event_routes:
            thread = threading.Thread(
                target=self._run, args=(route,), daemon=True, name=f"route-{route.logical_id}"
            )
            thread.start()
            self._threads.append(thread)
        return self

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
