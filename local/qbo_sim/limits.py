"""Intuit's API rate limits (QBO.md §3.1), enforced per request by the simulator's gateway.

Limits (defaults are Intuit's published values):

| limit | default | scope |
|---|---|---|
| ``requests_per_minute`` | 500 | per realm (all apps together; batch calls count too) |
| ``requests_per_second`` | 10 | per realm + app |
| ``concurrent`` | 10 requests in flight | per realm + app |
| ``batch_per_minute`` | 40 batch calls | per realm + app |
| ``batch_per_minute_realm`` | 120 batch calls | per realm |

Windows are *sliding*: a request counts against a limit for exactly one window length after it was
admitted. A throttled request is not counted (it did no work), so a client that keeps retrying gets
in again as soon as the oldest admitted request leaves the window. ``time_scale`` > 1 shortens every
window (a 60 s window lasts ``60 / time_scale`` s) so that benchmarks can compress time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

# Reasons carried by Throttled.reason (the name of the LimitConfig field that was hit).
CONCURRENT = "concurrent"
PER_SECOND = "requests_per_second"
PER_MINUTE = "requests_per_minute"
BATCH_PER_MINUTE = "batch_per_minute"
BATCH_PER_MINUTE_REALM = "batch_per_minute_realm"


@dataclass
class LimitConfig:
    """Limit values; ``enabled=False`` turns every limit off."""

    enabled: bool = True
    requests_per_minute: int = 500
    requests_per_second: int = 10
    concurrent: int = 10
    batch_per_minute: int = 40
    batch_per_minute_realm: int = 120
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in (PER_MINUTE, PER_SECOND, CONCURRENT, BATCH_PER_MINUTE, BATCH_PER_MINUTE_REALM):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer")
        if (
            not isinstance(self.time_scale, int | float)
            or isinstance(self.time_scale, bool)
            or not self.time_scale > 0
            or self.time_scale == float("inf")
        ):
            raise ValueError("time_scale must be a positive finite number")


class Throttled(Exception):
    """A limit was hit. ``reason`` names the LimitConfig field; ``retry_after`` is the number of
    (real, scaled) seconds until the oldest counted request leaves the window (0 for concurrency)."""

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(f"rate limit exceeded: {reason}")
        self.reason = reason
        self.retry_after = retry_after


class Permit:
    """An admitted request. ``release()`` frees its concurrency slot; calling it again is a no-op.

    Use it as a context manager so the slot is freed even when the request raises.
    """

    __slots__ = ("_key", "_limiter", "_released")

    def __init__(self, limiter: RateLimiter | None, key: tuple[str, str] | None) -> None:
        self._limiter = limiter
        self._key = key
        self._released = limiter is None

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        assert self._limiter is not None and self._key is not None
        self._limiter._release(self._key)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _trim(window: deque[float], horizon: float) -> None:
    """Drop timestamps at or before ``horizon`` (they left the sliding window)."""
    while window and window[0] <= horizon:
        window.popleft()


class RateLimiter:
    """Thread-safe sliding-window limiter over an injectable monotonic ``clock`` (seconds)."""

    def __init__(self, config: LimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._per_second: dict[tuple[str, str], deque[float]] = {}
        self._per_minute: dict[str, deque[float]] = {}
        self._batch_app: dict[tuple[str, str], deque[float]] = {}
        self._batch_realm: dict[str, deque[float]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}

    @property
    def config(self) -> LimitConfig:
        return self._config

    def configure(self, config: LimitConfig) -> None:
        """Swap the limit values. Counted requests and requests in flight are kept."""
        with self._lock:
            self._config = config

    def in_flight(self, realm_id: str, client_id: str) -> int:
        """Requests of this realm+app currently holding a concurrency slot."""
        with self._lock:
            return self._in_flight.get((realm_id, client_id), 0)

    def acquire(self, realm_id: str, client_id: str, *, is_batch: bool = False) -> Permit:
        """Admit one request of ``client_id`` against ``realm_id`` or raise ``Throttled``.

        All limits are checked before anything is counted, so a throttled request leaves no trace.
        With ``enabled=False`` nothing is counted and the returned permit holds no slot.
        """
        config = self._config
        if not config.enabled:
            return Permit(None, None)
        key = (realm_id, client_id)
        now = self._clock()
        second = 1.0 / config.time_scale
        minute = 60.0 / config.time_scale
        with self._lock:
            in_flight = self._in_flight.get(key, 0)
            if in_flight >= config.concurrent:
                raise Throttled(CONCURRENT)
            per_second = self._per_second.get(key)
            if per_second is None:
                per_second = self._per_second[key] = deque()
            _trim(per_second, now - second)
            if len(per_second) >= config.requests_per_second:
                raise Throttled(PER_SECOND, per_second[0] + second - now)
            per_minute = self._per_minute.get(realm_id)
            if per_minute is None:
                per_minute = self._per_minute[realm_id] = deque()
            _trim(per_minute, now - minute)
            if len(per_minute) >= config.requests_per_minute:
                raise Throttled(PER_MINUTE, per_minute[0] + minute - now)
            if is_batch:
                batch_app = self._batch_app.get(key)
                if batch_app is None:
                    batch_app = self._batch_app[key] = deque()
                _trim(batch_app, now - minute)
                if len(batch_app) >= config.batch_per_minute:
                    raise Throttled(BATCH_PER_MINUTE, batch_app[0] + minute - now)
                batch_realm = self._batch_realm.get(realm_id)
                if batch_realm is None:
                    batch_realm = self._batch_realm[realm_id] = deque()
                _trim(batch_realm, now - minute)
                if len(batch_realm) >= config.batch_per_minute_realm:
                    raise Throttled(BATCH_PER_MINUTE_REALM, batch_realm[0] + minute - now)
                batch_app.append(now)
                batch_realm.append(now)
            per_second.append(now)
            per_minute.append(now)
            self._in_flight[key] = in_flight + 1
        return Permit(self, key)

    def _release(self, key: tuple[str, str]) -> None:
        with self._lock:
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)
