"""Per-realm pacing of QuickBooks API calls, shared by every worker and container (QBO.md §3).

Intuit limits each company (realm): 500 requests/min (all apps together, batch calls included),
10 requests/s and 10 in flight per realm+app, 40 batch calls/min per realm+app. Lambda runs many
containers, so the counters live in DynamoDB, on the sync-state table, one item per realm and minute
(:class:`~qbsync.repositories.rate_windows.RateWindows`, injected as a :class:`RateWindowStore`):

* a minute counter, one counter per short window of the minute (250 ms by default), a batch counter and
  one flag per batch window (a 39th of the minute by default: one batch call each);
* a slot is ONE conditional update that counts the request in every window it needs, or in none. A
  failed condition means a window is full; one consistent read of the counters tells which, and so how
  long to wait (the short window's end, or the minute's).

Counters are *fixed* windows while Intuit's (and the simulator's) are *sliding*, and a sliding window
can overlap several fixed ones. The defaults account for that:

* short windows of 250 ms with 2 requests each (8/s): any sliding second overlaps at most 5 of them,
  so at most 10 requests reach QBO in any second;
* 450 per minute: the per-second pacing already caps any sliding minute at about 480 (< 500), the
  minute counter leaves room for the firm's other apps when bursts meet a minute boundary;
* 39 batch windows a minute (1.54 s each), one batch call in each: a sliding minute overlaps at most 40 of
  them, and the 40th's call comes later than 60 s after the first's, so Intuit (and the simulator) never
  see more than 40 batch calls in a sliding minute, while qbsync may send 39 a minute (97.5 % of the
  ceiling, 1,170 batched writes a minute). Spacing them also keeps batch calls from bunching at a minute's
  start. (A per-minute counter alone needs half the ceiling: two adjacent fixed minutes meet in a sliding
  one.)

The 10-in-flight limit is not counted here: each entity-sync invocation sends its QBO requests one at
a time and the event source's ``ScalingConfig.MaximumConcurrency`` is 5, so the outbound sync never has
more than 5 requests in flight for a realm (template.yaml, ``EntitySyncFunction``).

Windows follow the workers' wall clocks (Lambda's are NTP-synchronised to a few ms).

:meth:`RealmRateLimiter.acquire` waits (``sleep``, bounded by ``max_wait``) until every window it needs
has a free slot. When the wait would go past ``max_wait`` it raises :class:`~qbsync.errors.Throttled`
with ``retry_after`` = the seconds until a slot frees up, so the caller can hand the work back to its
queue for that long instead of holding a Lambda. DynamoDB failures propagate as the adapter raises them
(Throttled / ServiceUnavailable / ConfigurationError).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from qbsync.errors import Throttled

__all__ = ["RateLimits", "RateWindowStore", "RealmRateLimiter"]

logger = logging.getLogger("qbsync.qbo.ratelimit")


@dataclass(frozen=True)
class RateLimits:
    """Limit values, below Intuit's (see the module doc for why these numbers)."""

    #: requests per short window, and its length (it must divide the minute): 2 per 250 ms = 8/s
    per_window: int = 2
    window_seconds: float = 0.25
    per_minute: int = 450
    #: batch windows per minute, one batch call each (and so at most this many batch calls a fixed minute)
    batch_per_minute: int = 39
    #: longest an ``acquire`` waits before it raises Throttled
    max_wait: float = 10.0
    #: how long a minute's counter item outlives its minute
    ttl_seconds: int = 3600

    def __post_init__(self) -> None:
        for name in ("per_window", "per_minute", "batch_per_minute", "ttl_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        windows = 60 / self.window_seconds if self.window_seconds > 0 else 0.0
        if not 1 <= windows <= 6000 or abs(windows - round(windows)) > 1e-9:
            raise ValueError("window_seconds must divide the minute (e.g. 0.25, 0.5, 1, 2)")
        if not self.max_wait >= 0 or not math.isfinite(self.max_wait):
            raise ValueError("max_wait must be a finite number >= 0")


class RateWindowStore(Protocol):
    """Where the realm's counters live (``qbsync.repositories.rate_windows.RateWindows``)."""

    def take(
        self, realm_id: str, minute: int, window: int, caps: RateLimits, *, batch_window: int | None
    ) -> bool: ...

    def read(self, realm_id: str, minute: int) -> Mapping[str, int]: ...


class RealmRateLimiter:
    """Takes a slot in the realm's shared windows before each QuickBooks API request.

    Args:
        windows: the shared counters (``RateWindows`` over the sync-state table).
        limits: the limit values.
        clock: epoch seconds (windows are wall-clock windows shared by every container).
        sleep: waits for the next window (tests pass a fake that advances their clock).
        jitter: [0, 1) - spreads the wake-ups of waiting workers over the first 10 % of a short window.
    """

    def __init__(
        self,
        windows: RateWindowStore,
        limits: RateLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._windows = windows
        self.limits = limits or RateLimits()
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter

    def acquire(self, realm_id: str, *, is_batch: bool = False) -> float:
        """Take a slot for one request (a batch call also takes a batch slot); returns the seconds waited.

        Raises:
            Throttled: no slot within ``max_wait``; ``retry_after`` says when one frees up.
            RetryableError / ConfigurationError: DynamoDB failed (from the table adapter).
        """
        if not realm_id:
            raise ValueError("realm_id is required")
        started = self._clock()
        deadline = started + self.limits.max_wait
        while True:
            now = self._clock()
            minute, window = self._position(now)
            batch_window = self._batch_window(now, minute) if is_batch else None
            if self._take(realm_id, minute, window, batch_window=batch_window):
                waited = now - started
                if waited > 0:
                    logger.debug("rate limiter waited", extra={"realm_id": realm_id, "waited": waited})
                return waited
            free_at = self._free_at(realm_id, minute, window, batch_window=batch_window)
            if free_at is None:  # the window moved on between the update and the read: try again
                if self._clock() > deadline:
                    raise Throttled(
                        "QuickBooks request budget of this company is contended (qbsync's own limit)",
                        realm_id=realm_id,
                        retry_after=self.limits.window_seconds,
                    )
                continue
            # never a zero wait: a window that ends "now" by rounding must not spin the loop
            wake = max(free_at, now + 0.001) + self._jitter() * self.limits.window_seconds * 0.1
            if wake > deadline:
                retry_after = max(0.0, free_at - now)
                logger.info(
                    "rate limiter: no slot within the wait bound",
                    extra={"realm_id": realm_id, "retry_after": round(retry_after, 3)},
                )
                raise Throttled(
                    "QuickBooks request budget of this company is used up for now (qbsync's own limit)",
                    realm_id=realm_id,
                    retry_after=retry_after,
                )
            self._sleep(max(0.0, wake - now))

    # --- internals ----------------------------------------------------------------------------------

    def _position(self, now: float) -> tuple[int, int]:
        """(epoch minute, index of the short window within it)."""
        minute = math.floor(now / 60)
        window = math.floor((now - minute * 60) / self.limits.window_seconds)
        return minute, window

    def _batch_window(self, now: float, minute: int) -> int:
        """Index of the batch window of ``now`` within ``minute``."""
        per = self.limits.batch_per_minute
        # + 1e-4 (0.15 ms): a wake-up at a window's computed end lands in the next window despite the
        # rounding of epoch seconds as floats (~2e-7 s at today's epoch)
        return min(per - 1, math.floor((now - minute * 60) * per / 60 + 1e-4))

    def _take(self, realm_id: str, minute: int, window: int, *, batch_window: int | None) -> bool:
        return self._windows.take(realm_id, minute, window, self.limits, batch_window=batch_window)

    def _free_at(self, realm_id: str, minute: int, window: int, *, batch_window: int | None) -> float | None:
        """When the full window of ``minute`` ends: the minute's end when the minute (or its batch
        budget) is used up, the batch window's end when a batch call took it, else the short window's end;
        None when nothing is full any more."""
        lim = self.limits
        item = self._windows.read(realm_id, minute)
        minute_full = int(item.get("count", 0)) >= lim.per_minute
        batch_full = batch_window is not None and int(item.get("batch", 0)) >= lim.batch_per_minute
        if minute_full or batch_full:
            return (minute + 1) * 60.0
        ends = []
        if batch_window is not None and int(item.get(f"b{batch_window}", 0)) >= 1:
            ends.append(minute * 60 + (batch_window + 1) * 60 / lim.batch_per_minute)
        if int(item.get(f"s{window}", 0)) >= lim.per_window:
            ends.append(minute * 60 + (window + 1) * lim.window_seconds)
        return max(ends) if ends else None
