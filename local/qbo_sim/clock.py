"""Simulated clock: real time plus an offset that the control API advances.

Every expiry in the simulator (codes, tokens, CDC windows, MetaData timestamps) reads this clock, so
tests move time forward with ``POST /_sim/clock`` instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone

# QBO renders timestamps in the company's time zone; sandbox companies default to US Pacific.
# A fixed -08:00 offset keeps output deterministic (no DST switch in the middle of a test run).
COMPANY_TZ = timezone(timedelta(hours=-8))


class SimClock:
    """Wall clock plus an adjustable offset (seconds). Thread-safe."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = float(offset_seconds)
        self._lock = threading.Lock()

    @property
    def offset_seconds(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move simulated time forward (never backwards). Returns the new offset.

        Raises ValueError for a negative or non-finite amount.
        """
        if (
            not isinstance(seconds, int | float)
            or seconds < 0
            or seconds != seconds
            or seconds == float("inf")
        ):
            raise ValueError("advance_seconds must be a finite number >= 0")
        with self._lock:
            self._offset += float(seconds)
            return self._offset

    def time(self) -> float:
        """Simulated epoch seconds."""
        return time.time() + self._offset

    def now(self) -> datetime:
        """Simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def company_now(self) -> datetime:
        return self.now().astimezone(COMPANY_TZ)

    def today(self) -> str:
        """The company's current date, ``YYYY-MM-DD``."""
        return self.company_now().date().isoformat()

    def stamp(self) -> str:
        """MetaData timestamp, e.g. ``2026-03-02T10:11:12-08:00``."""
        return self.company_now().replace(microsecond=0).isoformat()

    def response_time(self) -> str:
        """The ``time`` field of a response, e.g. ``2026-03-02T10:11:12.345-08:00``."""
        return self.company_now().isoformat(timespec="milliseconds")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time as QBO accepts it; naive values are company time.

    Raises ValueError when the text is not a date.
    """
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=COMPANY_TZ)
    return parsed
