"""Per-realm pacing of QuickBooks API calls, shared by every worker and container (QBO.md §3).

Intuit limits each company (realm): 500 requests/min (all apps together, batch calls included),
10 requests/s and 10 in flight per realm+app, 40 batch calls/min per realm+app. Lambda runs many
containers, so the counters live in DynamoDB, on the sync-state table, one item per realm and minute:

* ``pk = RATE#{realm_id}``, ``sk = M#{epoch_minute}``; attributes ``count`` (requests this minute),
  ``s{n}`` (requests in the n-th short window of the minute, 250 ms by default: ``s0`` … ``s239``),
  ``batch`` (batch calls this minute) and ``ttl`` (an hour after the minute).
* A slot is ONE ``UpdateItem`` that adds 1 to ``count``, the current ``s{n}`` (and ``batch``) on the
  condition that each is below its limit: all windows count the request, or none does. A failed
  condition means a window is full; one consistent read of the item tells which, and so how long to
  wait (the short window's end, or the minute's).

Counters are *fixed* windows while Intuit's (and the simulator's) are *sliding*, and a sliding window
can overlap several fixed ones. The defaults account for that:

* short windows of 250 ms with 2 requests each (8/s): any sliding second overlaps at most 5 of them,
  so at most 10 requests reach QBO in any second;
* 450 per minute: the per-second pacing already caps any sliding minute at about 480 (< 500), the
  minute counter leaves room for the firm's other apps when bursts meet a minute boundary;
* 20 batch calls per minute: two adjacent fixed minutes give at most 40 in a sliding one.

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
from collections.abc import Callable
from dataclasses import dataclass

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict, Throttled

__all__ = ["RateLimits", "RealmRateLimiter", "rate_key"]

logger = logging.getLogger("qbsync.qbo.ratelimit")


@dataclass(frozen=True)
class RateLimits:
    """Limit values, below Intuit's (see the module doc for why these numbers)."""

    #: requests per short window, and its length (it must divide the minute): 2 per 250 ms = 8/s
    per_window: int = 2
    window_seconds: float = 0.25
    per_minute: int = 450
    batch_per_minute: int = 20
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


_UPDATE = "ADD #c :one, #s :one SET #ttl = if_not_exists(#ttl, :ttl)"
_BATCH_UPDATE = "ADD #c :one, #s :one, #b :one SET #ttl = if_not_exists(#ttl, :ttl)"


def rate_key(realm_id: str, epoch_minute: int) -> dict[str, str]:
    """The key of a realm's counter item for one minute (``epoch_minute = floor(epoch_seconds / 60)``)."""
    return {"pk": f"RATE#{realm_id}", "sk": f"M#{epoch_minute}"}


class RealmRateLimiter:
    """Takes a slot in the realm's shared windows before each QuickBooks API request.

    Args:
        table: the sync-state table.
        limits: the limit values.
        clock: epoch seconds (windows are wall-clock windows shared by every container).
        sleep: waits for the next window (tests pass a fake that advances their clock).
        jitter: [0, 1) - spreads the wake-ups of waiting workers over the first 10 % of a short window.
    """

    def __init__(
        self,
        table: DynamoTable,
        limits: RateLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._table = table
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
            if self._take(realm_id, minute, window, is_batch=is_batch):
                waited = now - started
                if waited > 0:
                    logger.debug("rate limiter waited", extra={"realm_id": realm_id, "waited": waited})
                return waited
            free_at = self._free_at(realm_id, minute, window, is_batch=is_batch)
            if free_at is None:  # the window moved on between the update and the read: try again
                if self._clock() > deadline:
                    raise Throttled(
                        "QuickBooks request budget of this company is contended (qbsync's own limit)",
                        realm_id=realm_id,
                        retry_after=self.limits.window_seconds,
                    )
                continue
            wake = free_at + self._jitter() * self.limits.window_seconds * 0.1
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

    def _take(self, realm_id: str, minute: int, window: int, *, is_batch: bool) -> bool:
        lim = self.limits
        names = {"#c": "count", "#s": f"s{window}", "#ttl": "ttl"}
        values: dict[str, int] = {
            ":one": 1,
            ":cl": lim.per_minute,
            ":sl": lim.per_window,
            ":ttl": (minute + 1) * 60 + lim.ttl_seconds,
        }
        condition = "(attribute_not_exists(#c) OR #c < :cl) AND (attribute_not_exists(#s) OR #s < :sl)"
        if is_batch:
            names["#b"] = "batch"
            values[":bl"] = lim.batch_per_minute
            condition += " AND (attribute_not_exists(#b) OR #b < :bl)"
        try:
            self._table.update(
                rate_key(realm_id, minute),
                update=_BATCH_UPDATE if is_batch else _UPDATE,
                condition=condition,
                names=names,
                values=values,
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    def _free_at(self, realm_id: str, minute: int, window: int, *, is_batch: bool) -> float | None:
        """When the full window of ``minute`` ends: the minute's end when the minute (or its batch
        budget) is used up, else the short window's end; None when nothing is full any more."""
        lim = self.limits
        item = self._table.get(rate_key(realm_id, minute), consistent=True) or {}
        minute_full = int(item.get("count", 0)) >= lim.per_minute
        batch_full = is_batch and int(item.get("batch", 0)) >= lim.batch_per_minute
        if minute_full or batch_full:
            return (minute + 1) * 60.0
        if int(item.get(f"s{window}", 0)) >= lim.per_window:
            return minute * 60 + (window + 1) * lim.window_seconds
        return None
