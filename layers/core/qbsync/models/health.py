"""The per-firm health report of ``GET /health`` (PRODUCT.md J.6, issue 15 item 3; docs/operations.md).

Every figure names its unit and window. No token is ever part of it: only expiry dates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qbsync.models.qbsync_events import HealthLevel, HealthReason

__all__ = [
    "BudgetUse",
    "FirmHealth",
    "LagFigures",
    "QueueBacklog",
    "QueuesBacklog",
    "RecordCounts",
    "TokenExpiry",
]


class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class LagFigures(_Strict):
    window_seconds: int = Field(description="the window: records that turned synced in the last hour")
    samples: int = Field(description="records whose event-to-QuickBooks lag was measured")
    complete: bool = Field(description="false when the samples were capped (the newest ones are used)")
    p50_seconds: float | None = Field(description="median lag, seconds (none without samples)")
    p95_seconds: float | None = Field(description="95th percentile lag, seconds (nearest rank)")
    max_seconds: float | None = Field(description="the longest lag, seconds")


class RecordCounts(_Strict):
    failed: int = Field(description="records in failed now (records)")
    blocked: int = Field(description="records blocked on a prerequisite now (records)")
    complete: bool = Field(description="false when a count stopped at its read limit (a lower bound)")


class QueueBacklog(_Strict):
    queue: Literal[
        "outbound", "outbound_dead_letters", "inbound", "inbound_dead_letters", "retry", "catch_up"
    ]
    visible: int = Field(description="messages waiting (approximate, as SQS reports)")
    in_flight: int = Field(description="messages received and not yet deleted (approximate)")
    delayed: int = Field(description="messages sent with a delay not yet over (approximate)")


class QueuesBacklog(_Strict):
    scope: Literal["fleet"] = Field(
        "fleet",
        description="the queues are shared by every firm: these are fleet-wide counts, the firm's share "
        "is not knowable from SQS",
    )
    queues: list[QueueBacklog]


class TokenExpiry(_Strict):
    idle_expires_at: datetime | None = Field(
        description="when the refresh token dies unused (Intuit's 100-day rolling window, restarted by every "
        "refresh; the keep-alive refreshes idle connections weekly)"
    )
    idle_days_left: float | None = Field(description="days until idle_expires_at")
    hard_expires_at: datetime | None = Field(
        description="the 5-year cap of the grant: a reconnect is needed then whatever the activity"
    )
    hard_days_left: float | None = Field(description="days until hard_expires_at")
    hard_estimated: bool = Field(
        description="true when Intuit did not say and the cap is estimated as 5 years from the connection"
    )


class BudgetUse(_Strict):
    limit_per_minute: int = Field(description="QuickBooks' request budget of the realm (requests/minute)")
    limiter_cap_per_minute: int = Field(description="what qbsync's limiter lets through (requests/minute)")
    last_minute: int = Field(description="requests in the current minute (requests)")
    last_hour: int = Field(description="requests in the last 60 minutes (requests)")
    peak_minute: int = Field(description="the busiest minute of the last 60 (requests)")
    window_seconds: int = Field(description="the window of last_hour and peak_minute")


class FirmHealth(_Strict):
    firm_id: str
    realm_id: str | None
    connection_status: str = Field(description="connected | needs_reconnect | disconnected | pending_switch")
    level: HealthLevel = Field(description="ok, degraded or failing (docs/operations.md thresholds)")
    reasons: list[HealthReason] = Field(description="the figures past a threshold (empty when ok)")
    evaluated_at: datetime
    last_synced_at: datetime | None = Field(description="the newest record qbsync synced to QuickBooks")
    lag: LagFigures
    records: RecordCounts
    dead_letters: int = Field(description="this firm's events in the dead-letter queue (the last 14 days)")
    dead_letters_complete: bool = Field(description="false when the count stopped at its read limit")
    backlog: QueuesBacklog | None = Field(description="fleet-wide queue depths (GET /health only)")
    tokens: TokenExpiry | None = Field(description="none without a connection")
    budget: BudgetUse | None = Field(description="none without a connection")
