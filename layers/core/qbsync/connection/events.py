"""The "Connection Changed" event qbsync emits on every connection lifecycle step.

The detail is :class:`qbsync.models.qbsync_events.ConnectionChanged` (``firm_id``, ``event_id``,
``occurred_at``, ``correlation_id``, ``realm_id``, ``status``, ``change``, optional ``previous_realm_id``,
``company_name``, ``reason``, ``warnings``: what about the company makes records land differently, on a
completion). The initial sync subscribes to ``connected`` and ``switched``
(and resumes paused work on ``reconnected``); admins are notified on ``needs_reconnect``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from qbsync.models.qbsync_events import CompanyWarning, ConnectionChanged

DETAIL_TYPE = ConnectionChanged.DETAIL_TYPE
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")  # qbsync.models.common.Id


class Publisher(Protocol):
    """``qbsync.adapters.eventbridge.EventPublisher``."""

    def publish(self, events: Any) -> Any: ...


def _default_correlation_id() -> str | None:
    from qbsync.observability import logger

    return logger.get_correlation_id()


class ConnectionEvents:
    """Builds and publishes "Connection Changed" events.

    Args:
        publisher: the EventBridge publisher of the qbsync bus.
        clock: epoch seconds.
        correlation_id: the current correlation id (default: the Powertools logger's, i.e. the API request
            id); a fresh uuid when there is none.
    """

    def __init__(
        self,
        publisher: Publisher,
        clock: Callable[[], float],
        correlation_id: Callable[[], str | None] = _default_correlation_id,
    ) -> None:
        self._publisher = publisher
        self._clock = clock
        self._correlation_id = correlation_id

    def event(  # noqa: PLR0913
        self,
        *,
        change: str,
        firm_id: str,
        realm_id: str,
        status: str,
        previous_realm_id: str | None = None,
        company_name: str | None = None,
        reason: str | None = None,
        warnings: Sequence[CompanyWarning] = (),
    ) -> ConnectionChanged:
        """The event model (validated: unknown change/status values raise pydantic's ValidationError)."""
        return ConnectionChanged.model_validate(
            {
                "firm_id": firm_id,
                "realm_id": realm_id,
                "status": status,
                "change": change,
                "occurred_at": datetime.fromtimestamp(self._clock(), UTC),
                "correlation_id": self._safe_correlation_id(),
                "previous_realm_id": previous_realm_id,
                "company_name": company_name or None,
                "reason": reason[:1000] if reason else None,
                "warnings": [w.model_dump() for w in warnings],
            }
        )

    def _safe_correlation_id(self) -> str:
        value = self._correlation_id()
        return value if value and _ID.match(value) else str(uuid.uuid4())

    def publish(self, **fields: Any) -> ConnectionChanged:
        """Publish one event; returns it. Raises the publisher's errors (retryable ones too)."""
        event = self.event(**fields)
        self._publisher.publish([event])
        return event
