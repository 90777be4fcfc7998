"""The steps of one run of a record, collected while it runs, written once at its end (PRODUCT.md J.5).

:class:`RunTrail` is carried by the run's :class:`~qbsync.outbound.job.Job` (``job.trail``): the service
notes each step on it in memory - ``event`` (event id, version, occurred_at, or the command that asked for
the run), ``mapped`` (the QBO payload, summarized and redacted), ``request`` (each QBO write sent: method,
entity, operation, requestid, ``batch`` or ``single``, the body's field names), ``response`` (QBO Id and
SyncToken, or the fault code), ``final`` (the run's outcome and reason). :meth:`RunTrail.save` writes the
run as ONE item (:class:`~qbsync.repositories.timeline.TimelineRepository`): deferred to the end of the
open batch (:mod:`qbsync.outbound.batch`, one BatchWriteItem per 25 runs: the SQS batch's, or the bulk
chunk's that every thread joined), else one PutItem. A failed timeline write is logged and never fails the
run (the timeline explains a sync; it is not part of it).

**Redaction** (:func:`summarize`): the timeline is read by any role of the firm and kept 30 days, so it
holds no tokens and no client personal data. Summaries keep the structure (field names, list lengths),
numbers, booleans, dates, ids and codes - string values under keys ending in ``Id``, ``Date`` or ``Type``,
``value`` (QBO references' ids), ``DocNumber``, ``SyncToken``, currency and status codes - and replace
every other string (names, emails, phones, addresses, descriptions, notes, a Ref's ``name``) with
:data:`REDACTED`. It is an allowlist: a field added to a payload later is redacted until named here.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qbsync.errors import QbsyncError
from qbsync.models.record_key import RecordKey
from qbsync.observability import redact
from qbsync.outbound.batch import current_scope
from qbsync.repositories.timeline import MAX_STEPS_BYTES, RunItem, TimelineRepository

__all__ = ["REDACTED", "RunTrail", "TimelineRecorder", "summarize"]

logger = logging.getLogger("qbsync.outbound.timeline")

REDACTED = "[redacted]"
_KEEP_KEYS = frozenset(
    {"value", "DocNumber", "SyncToken", "domain", "status", "Status", "currency", "code", "PaymentType"}
)
_KEEP_SUFFIXES = ("Id", "Date", "Type", "_id", "_date", "_type", "_code")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$")
_MAX_DEPTH = 8
_MAX_LIST = 20
_MAX_STRING = 100


def _keep(key: str) -> bool:
    return key in _KEEP_KEYS or key.endswith(_KEEP_SUFFIXES)


def summarize(value: Any, key: str = "", _depth: int = 0) -> Any:
    """A redacted copy of ``value`` (see the module doc). Lists keep their first 20 items and note how
    many there were; deeper than 8 levels is dropped."""
    if _depth > _MAX_DEPTH:
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if _keep(key) or _DATE.match(value):
            return value[:_MAX_STRING]
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): summarize(v, str(k), _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [summarize(v, key, _depth + 1) for v in value[:_MAX_LIST]]
        if len(value) > _MAX_LIST:
            items.append({"more_items": len(value) - _MAX_LIST})
        return items
    # Decimals and other scalars: their text when it is a number, else redacted
    text = str(value)
    return text if re.fullmatch(r"-?\d+(\.\d+)?", text) else REDACTED


def _size(steps: list[dict[str, Any]]) -> int:
    return len(json.dumps(steps, separators=(",", ":"), sort_keys=True, default=str).encode())


@dataclass
class RunTrail:
    """The steps of one run (see the module doc). Not thread-safe: one run is one thread."""

    key: RecordKey
    started_at: float
    clock: Callable[[], float]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    steps: list[dict[str, Any]] = field(default_factory=list)
    status: str | None = None

    @property
    def awaiting_response(self) -> bool:
        """A request was noted and no response after it yet."""
        return bool(self.steps) and self.steps[-1]["step"] == "request"

    def _note(self, step: str, **facts: Any) -> None:
        self.steps.append({"step": step, "at": round(self.clock(), 6), **facts})

    def event(self, *, event_id: str, version: int, occurred_at: str, detail_type: str) -> None:
        self._note(
            "event", event_id=event_id, version=version, occurred_at=occurred_at, detail_type=detail_type
        )

    def command(self, *, reason: str, request_id: str, force: bool) -> None:
        self._note("command", reason=reason, request_id=request_id, force=force)

    def mapped(self, qbo_entity: str, payload: Mapping[str, Any]) -> None:
        self._note("mapped", qbo_entity=qbo_entity, payload=summarize(payload))

    def request(self, *, qbo_entity: str, operation: str, request_id: str, mode: str, body: Any) -> None:
        method = "POST"  # every QBO write is a POST (create, sparse update, ?operation=delete|void, batch)
        fields = sorted(body) if isinstance(body, Mapping) else []
        self._note(
            "request",
            method=method,
            qbo_entity=qbo_entity,
            operation=operation,
            request_id=request_id,
            mode=mode,
            body_fields=fields,
        )

    def response(
        self,
        *,
        ok: bool,
        qbo_id: str | None = None,
        sync_token: str | None = None,
        code: str | None = None,
        qbo_code: str | None = None,
    ) -> None:
        facts = {"qbo_id": qbo_id, "sync_token": sync_token} if ok else {"code": code, "qbo_code": qbo_code}
        self._note("response", ok=ok, **facts)

    def final(self, status: str, *, reason: str | None = None, error_code: str | None = None) -> None:
        self.status = status
        # a reason's head only (as the log line keeps it): the text after a ":" may quote the record
        head = redact(reason.split(":")[0][:120]) if reason else None
        self._note("final", status=status, reason=head, error_code=error_code)

    def run_item(self) -> RunItem:
        """The run as one item, its steps fitted into the item cap: payload summaries are cut to their
        field names first, then the oldest middle steps are dropped (the event and final steps stay)."""
        steps = [dict(s) for s in self.steps]
        if _size(steps) > MAX_STEPS_BYTES:
            for s in steps:
                if isinstance(s.get("payload"), dict):
                    s["payload"] = {"fields": sorted(s["payload"]), "truncated": True}
        while _size(steps) > MAX_STEPS_BYTES and len(steps) > 2:
            del steps[1]
        return RunItem(
            key=self.key,
            run_id=self.run_id,
            started_at=self.started_at,
            finished_at=self.clock(),
            status=self.status or "unknown",
            steps=steps,
        )


class TimelineRecorder:
    """Starts trails and writes them (see the module doc).

    Args:
        timeline: the timeline items (``TimelineRepository``).
        clock: epoch seconds.
    """

    def __init__(self, timeline: TimelineRepository, clock: Callable[[], float]) -> None:
        self._timeline = timeline
        self._clock = clock

    def start(self, key: RecordKey) -> RunTrail:
        return RunTrail(key=key, started_at=self._clock(), clock=self._clock)

    def save(self, trail: RunTrail) -> None:
        """Write the run: at the end of the open batch (one BatchWriteItem per 25), else at once. Never
        raises a QbsyncError (logged): the run's outcome stands without its timeline."""
        try:
            run = trail.run_item()
        except ValueError:
            logger.warning("a run's timeline did not fit its item", extra={"record": trail.key.ref})
            return
        scope = current_scope()
        if scope is not None:
            scope.defer("timeline", run, self._write_many)
            return
        self._write_many([run])

    def _write_many(self, runs: list[RunItem]) -> None:
        try:
            if len(runs) == 1:
                self._timeline.put(runs[0])
            else:
                self._timeline.put_many(runs)
        except QbsyncError as err:
            logger.warning("the timeline of %d run(s) could not be written", len(runs), extra=err.context())
