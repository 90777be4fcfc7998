"""The redelivery policy of OutboundQueue messages (qbsync.outbound.redelivery): pure, every branch."""

from __future__ import annotations

import pytest
from qbsync.errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    DataError,
    LeaseHeld,
    MalformedMessage,
    QbsyncError,
    ReconnectRequired,
    RetryableError,
    ServiceUnavailable,
    Throttled,
    UncertainOutcome,
)
from qbsync.outbound.redelivery import (
    REDELIVERY_MAX_SECONDS,
    Consume,
    DeadLetter,
    Redeliver,
    decide,
    receive_count_of,
    visibility_for,
)


@pytest.mark.parametrize(
    ("retry_after", "jitter", "seconds"),
    [(0.2, 0.0, 1), (3.4, 0.0, 4), (3.4, 0.99, 5), (60.0, 0.0, 60), (60.0, 1.0, 75), (600.0, 0.5, 120)],
)
def test_throttled_messages_come_back_after_about_retry_after(retry_after, jitter, seconds) -> None:
    err = Throttled("slow down", retry_after=retry_after)
    assert visibility_for(err, receive_count=1, jitter=jitter) == seconds


def test_errors_without_retry_after_keep_the_queue_timeout() -> None:
    assert visibility_for(ServiceUnavailable("5xx"), receive_count=1, jitter=0.0) is None
    assert visibility_for(DataError("bad"), receive_count=1, jitter=0.0) is None


def test_a_held_lease_backs_off_by_receive_and_outlasts_a_crashed_holder() -> None:
    lease = LeaseHeld("busy", retry_after=119.0)
    waits = [visibility_for(lease, receive_count=n, jitter=0.0) for n in (1, 2, 3, 4)]
    assert waits == [10, 20, 40, 80]
    # the 5th receive, the last before the DLQ, comes after a 120 s lease has run out
    assert sum(w for w in waits if w is not None) > 120
    assert visibility_for(LeaseHeld("busy", retry_after=2.0), receive_count=3, jitter=0.0) == 2
    # the backoff stops growing (and never passes the bound), however often the message came back
    assert visibility_for(lease, receive_count=50, jitter=0.99) == REDELIVERY_MAX_SECONDS


@pytest.mark.parametrize("jitter", [-5.0, 0.0, 0.5, 0.999, 1.0, 7.0])
def test_jitter_is_clamped_and_the_bounds_always_hold(jitter: float) -> None:
    for retry_after in (0.0, 0.5, 1.0, 30.0, 119.9, 120.0, 10_000.0):
        seconds = visibility_for(Throttled("x", retry_after=retry_after), receive_count=1, jitter=jitter)
        assert seconds is not None and 1 <= seconds <= REDELIVERY_MAX_SECONDS
    assert visibility_for(Throttled("x", retry_after=10.0), receive_count=1, jitter=-5.0) == 10
    assert visibility_for(Throttled("x", retry_after=10.0), receive_count=1, jitter=7.0) == 13


def test_an_outcome_is_consumed() -> None:
    assert decide(None, receive_count=1, jitter=0.0) == Consume()
    assert decide(None, receive_count=5, jitter=0.9) == Consume()


@pytest.mark.parametrize("receive_count", [1, 4, 5])
def test_a_malformed_body_goes_to_the_dlq_at_once_whatever_its_receive_count(receive_count: int) -> None:
    # issue 11: never five receives at the queue's visibility timeout for what can never succeed
    for what in ("platform event", "sync command"):
        err = MalformedMessage("bad", what=what)
        assert decide(err, receive_count=receive_count, jitter=0.5) == DeadLetter()


@pytest.mark.parametrize(
    "err",
    [
        ServiceUnavailable("5xx"),
        RetryableError("try again"),
        Throttled("no hint"),
        ReconnectRequired("reconnect"),
        UncertainOutcome("maybe written"),
        Conflict("lost a race"),
        ConfigurationError("missing env"),
        BadRequest("not from the parse"),  # only the parser's MalformedMessage is "malformed"
        DataError("the service handles these; one that escapes is retried"),
        QbsyncError("base"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_qbsync_errors_without_a_hint_are_retried_after_the_queue_timeout(err: QbsyncError) -> None:
    assert decide(err, receive_count=2, jitter=0.3) == Redeliver("retry", None)


def test_qbsync_errors_with_a_hint_come_back_early() -> None:
    assert decide(Throttled("429", retry_after=3.4), receive_count=1, jitter=0.0) == Redeliver("retry", 4)
    assert decide(LeaseHeld("busy", retry_after=119.0), receive_count=2, jitter=0.0) == Redeliver("retry", 20)
    assert decide(RetryableError("limiter", retry_after=60.0), receive_count=1, jitter=1.0) == Redeliver(
        "retry", 75
    )


@pytest.mark.parametrize("err", [ValueError("bug"), KeyError("x"), RuntimeError("boom")])
def test_anything_else_is_redelivered_and_nothing_more(err: Exception) -> None:
    assert decide(err, receive_count=1, jitter=0.0) == Redeliver("unexpected", None)


@pytest.mark.parametrize(
    ("value", "count"),
    [("1", 1), ("4", 4), (3, 3), ("0", 1), ("-2", 1), (None, 1), ("", 1), ("two", 1), ("2.5", 1), ([], 1)],
)
def test_the_receive_count_is_at_least_one(value: object, count: int) -> None:
    assert receive_count_of(value) == count
