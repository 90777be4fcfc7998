"""What becomes of an ``OutboundQueue`` message once the entity-sync worker is done with it: a pure policy.

``functions/entity_sync`` asks :func:`decide` with what happened (``None``: the service returned an
outcome; otherwise the exception) and applies the answer; nothing here calls AWS.

* The service returned an outcome (synced, failed, skipped, blocked, paused, stale, ...) → :class:`Consume`:
  the message is done. DataErrors are handled by the service (record failed + error log), so a record
  the platform must fix is consumed, not retried.
* A body that cannot be understood (:class:`~qbsync.errors.MalformedMessage`: not JSON, an unknown detail
  type, a missing id, a wrong type - issue 11: what QuickBooks would refuse is NOT malformed, it becomes an
  error on its record) → :class:`DeadLetter`: it can never succeed on a retry, so it goes to ``OutboundDLQ``
  at once (:mod:`qbsync.outbound.dead_letters`: sent there, then consumed), not after 5 receives at the
  720 s visibility timeout. The DLQ's alarm is the operator's signal that the platform sent something
  qbsync cannot read (a schema drift is fixed by deploying, then redriving the DLQ). Dropping it would lose
  a record change without a trace; if the send to the DLQ fails the handler reports a batch-item failure
  instead (SQS's own redrive still parks it after 5 receives).
* Any other qbsync error (connection not ``connected`` mid-run, ReconnectRequired, throttling, an
  uncertain write, a lease race, a deployment error) → :class:`Redeliver` ``retry``: a batch-item failure;
  SQS redelivers the message, after ``maxReceiveCount`` it lands in ``OutboundDLQ`` (nothing is lost).
* Anything else (a bug) → :class:`Redeliver` ``unexpected``: a batch-item failure, nothing else.

Throttle-aware redelivery (:func:`visibility_for`): a retryable failure that says when to come back
(``retry_after``: QBO's 429, qbsync's own per-realm limiter, a lease held by another worker - for a lease,
at most 10 s x 2^(receive-1) since its expiry is only an upper bound) sets that message's visibility to
about ``retry_after`` (1..120 s, plus up to 25 % jitter so that throttled records do not all return at
once), so it is retried in seconds instead of after the queue's visibility timeout (720 s). It is still a
batch-item failure (and still counts a receive). If SQS refuses the change, the queue's timeout applies;
nothing else changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeAlias, overload

from qbsync.errors import LeaseHeld, MalformedMessage, QbsyncError, RetryableError

__all__ = [
    "LEASE_RETRY_BASE_SECONDS",
    "REDELIVERY_JITTER",
    "REDELIVERY_MAX_SECONDS",
    "REDELIVERY_MIN_SECONDS",
    "Consume",
    "DeadLetter",
    "Decision",
    "Redeliver",
    "decide",
    "receive_count_of",
    "visibility_for",
]

#: bounds of a throttled message's early return (seconds)
REDELIVERY_MIN_SECONDS = 1
REDELIVERY_MAX_SECONDS = 120
REDELIVERY_JITTER = 0.25
LEASE_RETRY_BASE_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Consume:
    """The message is done: it leaves the queue."""


@dataclass(frozen=True, slots=True)
class Redeliver:
    """Report the message as a batch-item failure: SQS delivers it again (the DLQ after the last receive).

    ``why``: ``retry`` (a qbsync error: try again later), ``unexpected`` (not a qbsync error).
    ``visibility_seconds``: bring it back after that many seconds (change its visibility); None keeps the
    queue's visibility timeout.
    """

    why: Literal["retry", "unexpected"]
    visibility_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Send the message to the DLQ now, then consume it (it can never succeed on a retry)."""


Decision: TypeAlias = Consume | Redeliver | DeadLetter


@overload
def decide(failure: None, *, receive_count: int, jitter: float) -> Consume: ...
@overload
def decide(failure: BaseException, *, receive_count: int, jitter: float) -> Redeliver | DeadLetter: ...
def decide(failure: BaseException | None, *, receive_count: int, jitter: float) -> Decision:
    """The decision for one message (see the module doc).

    Args:
        failure: None when the service returned an outcome, else what it (or the parse) raised.
        receive_count: the message's ``ApproximateReceiveCount`` (1 on its first delivery).
        jitter: a number in [0, 1) (the handler draws it); spreads throttled returns.
    """
    if failure is None:
        return Consume()
    if isinstance(failure, MalformedMessage):
        return DeadLetter()
    if isinstance(failure, QbsyncError):
        return Redeliver("retry", visibility_for(failure, receive_count=receive_count, jitter=jitter))
    return Redeliver("unexpected")


def visibility_for(err: QbsyncError, *, receive_count: int, jitter: float) -> int | None:
    """Seconds until a failed message should come back, or None to leave the queue's visibility timeout.

    ``retry_after`` of a RetryableError, bounded to 1..120 s, plus up to 25 % (``jitter`` in [0, 1)).
    A lease's expiry is only an upper bound (its holder usually finishes within seconds): back off by
    receive, 10, 20, 40, 80 s, so the 5th receive (the last before the DLQ) comes after the lease of a
    crashed holder (120 s) has expired.
    """
    retry_after = err.retry_after if isinstance(err, RetryableError) else None
    if retry_after is None:
        return None
    if isinstance(err, LeaseHeld):
        backoff = LEASE_RETRY_BASE_SECONDS * 2 ** (min(receive_count, 8) - 1)
        retry_after = min(retry_after, backoff)
    bounded = min(float(REDELIVERY_MAX_SECONDS), max(float(REDELIVERY_MIN_SECONDS), retry_after))
    with_jitter = bounded * (1 + REDELIVERY_JITTER * min(1.0, max(0.0, jitter)))
    return min(REDELIVERY_MAX_SECONDS, math.ceil(with_jitter))


def receive_count_of(value: object) -> int:
    """``ApproximateReceiveCount`` (SQS sends it as text) as a number ≥ 1; 1 when absent or unreadable."""
    try:
        return max(1, int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1
