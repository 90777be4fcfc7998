"""HTTP plumbing shared by the QuickBooks clients: session, user agent, backoff, transport errors.

Kept apart from the clients so that the retry arithmetic (with its jitter isolated for tests) and the
"was the request sent?" rule live in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
import urllib3.exceptions

USER_AGENT = f"qbsync/0.1 python-requests/{requests.__version__}"

#: Namespace of the deterministic request ids (uuid5); fixed forever so ids stay stable across deploys.
REQUEST_ID_NAMESPACE = uuid.UUID("6f1c8a1e-2b4d-5c3e-9a7f-0d5e4b3c2a10")


def build_session() -> requests.Session:
    """A plain session with our User-Agent. No urllib3 retries: the clients own the retry policy."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def request_id_for(*parts: object) -> str:
    """Deterministic ``requestid`` (36 chars, fits the batch limit) for one logical write.

    The same parts always give the same id, so every retry of that write - in this process or after a
    redelivery - reuses it and QBO replays the original response instead of applying it twice.
    Parts are joined unambiguously (length-prefixed), e.g.
    ``request_id_for(realm, "Invoice", local_id, version)``.
    """
    if not parts:
        raise ValueError("request_id_for needs at least one part")
    name = "".join(f"{len(str(p))}:{p};" for p in parts)
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, name))


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: Callable[[], float]) -> float:
    """Capped exponential backoff with "equal jitter": ``d/2 + jitter()*d/2``, ``d = min(cap, base*2^(n-1))``.

    ``attempt`` is the 1-based number of the attempt that just failed. ``jitter`` returns a float in
    [0, 1] (``random.random`` in production; a constant in tests so the sleeps are exact).
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    fraction = min(1.0, max(0.0, jitter()))
    return ceiling / 2 + fraction * ceiling / 2


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/garbled."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def was_sent(exc: requests.RequestException) -> bool:
    """Could the server have received (and acted on) the request that failed with ``exc``?

    False only when the connection was never established (connect timeout, refused, DNS failure):
    then a retry cannot duplicate anything. Everything else (read timeout, connection reset after
    sending, broken chunked response) may have reached the server.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.ReadTimeout
    ):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return False
    return True


def is_configuration_problem(exc: requests.RequestException) -> bool:
    """Errors that no retry fixes: a malformed or unsupported URL in the settings."""
    return isinstance(
        exc,
        requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidURL
        | requests.exceptions.InvalidHeader,
    )
