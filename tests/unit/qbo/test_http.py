"""Backoff arithmetic, Retry-After parsing, request ids and the "was it sent?" rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
import urllib3.exceptions
from qbsync.qbo.http import (
    USER_AGENT,
    backoff_delay,
    build_session,
    parse_retry_after,
    request_id_for,
    was_sent,
)


def test_backoff_is_exponential_capped_and_jitter_bounded():
    assert [backoff_delay(n, base=0.5, cap=8, jitter=lambda: 1.0) for n in range(1, 7)] == [
        0.5,
        1,
        2,
        4,
        8,
        8,
    ]
    assert [backoff_delay(n, base=0.5, cap=8, jitter=lambda: 0.0) for n in range(1, 5)] == [0.25, 0.5, 1, 2]
    # a broken jitter source cannot push the delay outside [d/2, d]
    assert backoff_delay(3, base=1, cap=100, jitter=lambda: 7.0) == 4
    assert backoff_delay(3, base=1, cap=100, jitter=lambda: -3.0) == 2
    with pytest.raises(ValueError):
        backoff_delay(0, base=1, cap=1, jitter=lambda: 0.0)


def test_parse_retry_after():
    now = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Mon, 02 Mar 2026 10:00:30 GMT", now=now) == 30
    assert parse_retry_after("Mon, 02 Mar 2026 09:00:00 GMT", now=now) == 0
    assert parse_retry_after("-4") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


def test_request_id_is_deterministic_short_and_unambiguous():
    a = request_id_for("9130", "Invoice", "inv_1", 3)
    assert a == request_id_for("9130", "Invoice", "inv_1", 3)
    assert len(a) == 36
    assert a != request_id_for("9130", "Invoice", "inv_1", 4)
    assert request_id_for("ab", "c") != request_id_for("a", "bc")
    with pytest.raises(ValueError):
        request_id_for()


def test_session_has_user_agent():
    assert build_session().headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("qbsync/")


def _refused() -> requests.exceptions.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


def test_was_sent():
    assert was_sent(requests.exceptions.ConnectTimeout()) is False
    assert was_sent(_refused()) is False
    assert was_sent(requests.exceptions.ReadTimeout()) is True
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    assert was_sent(requests.exceptions.ConnectionError(reset)) is True
    assert was_sent(requests.exceptions.ChunkedEncodingError()) is True
