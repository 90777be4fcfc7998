"""EventBridge publish adapter: PutEvents in chunks of 10 entries / 256 KB, raise on partial failure.

``EventPublisher.publish`` accepts pydantic event models that declare their detail type as a class
attribute ``DETAIL_TYPE`` (every model of :mod:`qbsync.models.qbsync_events` does) or explicit
:class:`EventEntry` objects. Entries EventBridge reports as failed with a transient code
(``InternalFailure``, ``ThrottlingException``) are retried a bounded number of times; any entry still
unpublished raises.

Errors:

* :class:`~qbsync.errors.InfrastructureError` - an event can never be published (too large, rejected as
  malformed by EventBridge).
* ``TypeError`` / ``ValueError`` - not an event (no ``DETAIL_TYPE``, not a model), bad arguments; and
  :class:`~qbsync.errors.ConfigurationError` - no bus name. These carry no indexes.
* :class:`~qbsync.errors.ServiceUnavailable` / :class:`~qbsync.errors.Throttled` - still failing after
  the retries, or the whole call failed.
* :class:`~qbsync.errors.ConfigurationError` - the bus does not exist / access denied.

Every raised error carries ``err.extra["failed_indexes"]`` (positions in the input not published)
and ``err.extra["published_indexes"]``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from qbsync.adapters._aws import default_client, translate
from qbsync.errors import ConfigurationError, InfrastructureError, QbsyncError, ServiceUnavailable

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "EventEntry", "EventPublisher", "PublishReceipt"]

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024
_RETRYABLE_CODES = frozenset({"InternalFailure", "ThrottlingException", "InternalException"})


@dataclass(frozen=True)
class EventEntry:
    """An event given explicitly (for events without a model class)."""

    detail_type: str
    detail: Mapping[str, Any] | BaseModel
    resources: Sequence[str] = field(default_factory=tuple)
    source: str | None = None  # default: the publisher's source


@dataclass(frozen=True)
class PublishReceipt:
    index: int
    event_id: str


def _sleep_backoff(attempt: int) -> float:
    return min(0.05 * (2**attempt), 0.5) * random.uniform(0.5, 1.0)


class EventPublisher:
    """Publishes to one bus.

    Args:
        bus_name: the bus name or ARN (from :func:`qbsync.settings.get_core_settings`).
        source: the ``Source`` of every entry (``"qbsync"``; tests of consumers use ``"platform"``).
        client: a boto3 EventBridge (``events``) client; default: the container-wide lazy client.
        max_attempts: sends per entry (1 + retries of entries reported as transiently failed).
        sleep: waits between entry retries (tests pass a no-op).
    """

    def __init__(
        self,
        bus_name: str,
        source: str = "qbsync",
        client: Any = None,
        *,
        max_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not bus_name:
            raise ConfigurationError("EventPublisher needs a bus name")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.bus_name = bus_name
        self.source = source
        self._client = client
        self.max_attempts = max_attempts
        self._sleep = sleep

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client("events")
        return self._client

    def publish_one(self, event: BaseModel | EventEntry) -> PublishReceipt:
        return self.publish([event])[0]

    def publish(self, events: Iterable[BaseModel | EventEntry]) -> list[PublishReceipt]:
        """Publish every event; returns one receipt per event, in input order (see module doc)."""
        entries = [self._entry(e) for e in events]
        done: dict[int, str] = {}
        indexed = list(enumerate(entries))
        for batch in _chunks(indexed):
            self._put_batch(batch, done, total=len(entries))
        return [PublishReceipt(index=i, event_id=done[i]) for i in range(len(entries))]

    # --- internals ----------------------------------------------------------------------------------

    def _entry(self, event: BaseModel | EventEntry) -> dict[str, Any]:
        if isinstance(event, EventEntry):
            detail_type, resources, source = event.detail_type, list(event.resources), event.source
            detail = (
                event.detail.model_dump_json()
                if isinstance(event.detail, BaseModel)
                else json.dumps(event.detail, separators=(",", ":"), default=str)
            )
        elif isinstance(event, BaseModel):
            declared = getattr(type(event), "DETAIL_TYPE", None)
            if not isinstance(declared, str):
                raise TypeError(f"{type(event).__name__} has no DETAIL_TYPE: cannot publish it")
            detail_type = declared
            detail, resources, source = event.model_dump_json(), [], None
        else:
            raise TypeError(f"cannot publish a {type(event).__name__}: pass a model or an EventEntry")
        if not detail_type:
            raise ValueError("an event needs a detail type")
        entry: dict[str, Any] = {
            "EventBusName": self.bus_name,
            "Source": source or self.source,
            "DetailType": detail_type,
            "Detail": detail,
        }
        if resources:
            entry["Resources"] = resources
        size = _entry_size(entry)
        if size > MAX_BATCH_BYTES:
            raise InfrastructureError(f"event {detail_type!r} is larger than 256 KB ({size} bytes)")
        return entry

    def _put_batch(
        self, batch: list[tuple[int, dict[str, Any]]], done: dict[int, str], *, total: int
    ) -> None:
        pending = batch
        last_codes: list[str] = []
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(_sleep_backoff(attempt))
            try:
                resp = self.client.put_events(Entries=[e for _, e in pending])
            except (ClientError, BotoCoreError) as exc:
                err = translate(exc, service="EventBridge", operation="PutEvents", resource=self.bus_name)
                raise _with_indexes(err, done, total) from exc
            results = resp.get("Entries", [])
            if len(results) != len(pending):
                err = ServiceUnavailable(
                    f"EventBridge PutEvents on {self.bus_name}: "
                    f"{len(results)} results for {len(pending)} entries"
                )
                raise _with_indexes(err, done, total)
            retry: list[tuple[int, dict[str, Any]]] = []
            permanent: list[str] = []
            last_codes = []
            for (index, entry), result in zip(pending, results, strict=True):
                if result.get("EventId") and not result.get("ErrorCode"):
                    done[index] = result["EventId"]
                    continue
                code = str(result.get("ErrorCode") or "Unknown")
                last_codes.append(code)
                if code in _RETRYABLE_CODES:
                    retry.append((index, entry))
                else:
                    permanent.append(code)
            if permanent:
                codes = sorted(set(permanent))
                err = InfrastructureError(
                    f"EventBridge rejected {len(permanent)} event(s) on {self.bus_name} ({', '.join(codes)})",
                    aws_error_codes=codes,
                )
                raise _with_indexes(err, done, total)
            if not retry:
                return
            pending = retry
        codes = sorted(set(last_codes))
        err = ServiceUnavailable(
            f"EventBridge did not accept {len(pending)} event(s) on {self.bus_name} after "
            f"{self.max_attempts} attempts ({', '.join(codes)})",
            aws_error_codes=codes,
        )
        raise _with_indexes(err, done, total)


def _with_indexes(err: QbsyncError, done: Mapping[int, str], total: int) -> QbsyncError:
    err.extra["published_indexes"] = [i for i in range(total) if i in done]
    err.extra["failed_indexes"] = [i for i in range(total) if i not in done]
    return err


def _entry_size(entry: Mapping[str, Any]) -> int:
    # AWS's documented PutEvents entry size: Source + DetailType + Detail + Resources (+ 14 for Time).
    size = len(entry["Source"].encode()) + len(entry["DetailType"].encode()) + len(entry["Detail"].encode())
    size += sum(len(r.encode()) for r in entry.get("Resources", []))
    return size


def _chunks(indexed: list[tuple[int, dict[str, Any]]]) -> Iterable[list[tuple[int, dict[str, Any]]]]:
    batch: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for item in indexed:
        entry_size = _entry_size(item[1])
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + entry_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += entry_size
    if batch:
        yield batch
