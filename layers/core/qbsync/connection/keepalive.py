"""Token keep-alive sweep (scheduled): keeps connections alive and finds dead ones early.

Two gsi2 range queries over ``CONNSTATUS#connected`` (sort key = access-token expiry):

* access tokens expiring within ``access_window`` seconds (active connections): refreshed now, so
  workers rarely have to;
* access tokens that expired more than ``idle_after`` seconds ago (idle connections): refreshed so the
  refresh token's 100-day rolling window restarts (QBO.md §1.5) long before it lapses.

Each refresh goes through the single-flight :class:`~qbsync.connection.tokens.TokenProvider`, so the sweep
never races a worker. ``invalid_grant`` marks the connection ``needs_reconnect`` (the provider publishes the
event). One firm's failure never stops the others; the report counts every outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from qbsync.connection.service import ConnectionService
from qbsync.errors import LeaseHeld, QbsyncError, ReconnectRequired
from qbsync.repositories.connections import CONNECTED, ConnectionSummary

logger = logging.getLogger("qbsync.connection.keepalive")

DEFAULT_ACCESS_WINDOW = 20 * 60  # > the 15-minute schedule: every active token is seen once before expiry
DEFAULT_IDLE_AFTER = 7 * 86400
HARD_EXPIRY_WARNING = 30 * 86400


@dataclass
class KeepAliveReport:
    candidates: int = 0
    refreshed: int = 0
    needs_reconnect: int = 0
    busy: int = 0
    failed: int = 0
    hard_expiry_soon: int = 0
    failed_firms: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "candidates": self.candidates,
            "refreshed": self.refreshed,
            "needs_reconnect": self.needs_reconnect,
            "busy": self.busy,
            "failed": self.failed,
            "hard_expiry_soon": self.hard_expiry_soon,
        }


def keep_alive(
    service: ConnectionService,
    *,
    now: Callable[[], float],
    access_window: float = DEFAULT_ACCESS_WINDOW,
    idle_after: float = DEFAULT_IDLE_AFTER,
) -> KeepAliveReport:
    """Run one sweep; returns the counts. Raises only if the sweep cannot list connections at all."""
    started = now()
    repo = service.connections
    seen: dict[str, ConnectionSummary] = {}
    for row in repo.by_status(CONNECTED, expiring_from=started, expiring_until=started + access_window):
        seen.setdefault(row.firm_id, row)
    for row in repo.by_status(CONNECTED, expiring_until=started - idle_after):
        seen.setdefault(row.firm_id, row)
    report = KeepAliveReport(candidates=len(seen))
    for row in seen.values():
        if (
            row.refresh_hard_expires_at is not None
            and row.refresh_hard_expires_at - started < HARD_EXPIRY_WARNING
        ):
            report.hard_expiry_soon += 1
            logger.warning(
                "quickbooks authorization reaches its 5-year limit soon: the owner must reconnect",
                extra={"firm_id": row.firm_id, "realm_id": row.realm_id},
            )
        # The margin covers the whole window, so an access token inside it is refreshed now.
        provider = service.token_provider(row.firm_id, realm_id=row.realm_id, refresh_margin=access_window)
        try:
            provider.access_token()
        except ReconnectRequired:
            report.needs_reconnect += 1
        except LeaseHeld:
            report.busy += 1  # a worker is refreshing it right now: the goal is reached
        except QbsyncError as exc:
            report.failed += 1
            report.failed_firms.append(row.firm_id)
            logger.warning(
                "keep-alive refresh failed",
                extra={"firm_id": row.firm_id, "realm_id": row.realm_id, "error_code": exc.code},
            )
        except Exception:  # one firm's bug must not stop the sweep; it is logged with its traceback
            report.failed += 1
            report.failed_firms.append(row.firm_id)
            logger.exception(
                "keep-alive refresh crashed", extra={"firm_id": row.firm_id, "realm_id": row.realm_id}
            )
        else:
            report.refreshed += 1
    return report
