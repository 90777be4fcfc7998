"""Admin API: the firm's sync settings (PRODUCT.md B). ``GET /settings``, ``PUT /settings``.

``PUT`` replaces the whole settings document (fields left out take their defaults; send what ``GET``
returned with your changes). Before storing, the settings are checked against the firm's QuickBooks
company (:mod:`qbsync.api.settings_check`), so QuickBooks must be connected (409 otherwise); every
violation is named in one 400 answer.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from qbsync.api.common import WRITE_ROLES, caller_of, error_responses
from qbsync.auth import require_role
from qbsync.errors import BadRequest, Conflict
from qbsync.observability import logger, metrics
from qbsync.qbo.client import QboClient
from qbsync.repositories.connections import CONNECTED, Connection, ConnectionsRepository
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.sync.settings import FirmSyncSettings

from . import settings_check

__all__ = ["SettingsView", "SettingsWiring", "clear", "router", "wiring"]

router = Router()


class SettingsView(BaseModel):
    """The firm's settings as the sync uses them now."""

    model_config = ConfigDict(extra="forbid")

    settings: FirmSyncSettings
    is_default: bool = Field(description="true until the firm stores settings (product defaults shown)")
    updated_at: datetime | None = Field(None, description="when the settings were last stored (UTC)")


@dataclass(frozen=True)
class SettingsWiring:
    """What the settings routes need (built once per container from qbsync.settings)."""

    settings: FirmSettingsRepository
    connections: ConnectionsRepository
    qbo_client: Callable[[str, str], QboClient]  # (firm_id, realm_id) -> a client with the firm's tokens
    clock: Callable[[], float]


_lock = threading.Lock()
_wiring: SettingsWiring | None = None


def _build() -> SettingsWiring:
    from qbsync.adapters.dynamodb import DynamoTable
    from qbsync.connection.wiring import connection_service
    from qbsync.qbo.wiring import paced_client_factory
    from qbsync.settings import get_core_settings

    core = get_core_settings()
    connections = connection_service()
    table = DynamoTable(core.sync_table_name)
    paced = paced_client_factory(table)

    def client(firm_id: str, realm_id: str) -> QboClient:
        return paced(realm_id, connections.token_provider(firm_id, realm_id))

    return SettingsWiring(
        settings=FirmSettingsRepository(table),
        connections=connections.connections,
        qbo_client=client,
        clock=time.time,
    )


def wiring() -> SettingsWiring:
    """The container's wiring, built on first use (ConfigurationError when the environment is incomplete)."""
    global _wiring
    with _lock:
        if _wiring is None:
            _wiring = _build()
        return _wiring


def clear() -> None:
    """Forget the cached wiring (tests that change the environment)."""
    global _wiring
    with _lock:
        _wiring = None


def _view(w: SettingsWiring, firm_id: str, connection: Connection | None) -> SettingsView:
    stored = w.settings.find(firm_id)
    if stored is None:
        seed = connection.settings if connection is not None else None
        return SettingsView(settings=w.settings.get(firm_id, seed=seed), is_default=True)
    updated = w.settings.updated_at(firm_id)
    return SettingsView(
        settings=stored,
        is_default=False,
        updated_at=datetime.fromtimestamp(updated, UTC) if updated is not None else None,
    )


@router.get(
    "/settings",
    summary="Get the firm's sync settings",
    description="The stored settings, or the product defaults (is_default=true) until the firm saves some. "
    "Any role.",
    tags=["Settings"],
    responses=error_responses(),
)
def get_settings() -> SettingsView:
    caller = caller_of(router)
    w = wiring()
    return _view(w, caller.firm_id, w.connections.get(caller.firm_id))


@router.put(
    "/settings",
    summary="Replace the firm's sync settings",
    description="Replaces the whole settings document: fields left out take their defaults. Every QuickBooks "
    "id is checked against the firm's company first (deposit account: Bank or Other Current Asset; income "
    "account: Income; fee account: Expense or Other Expense; customer type, tax codes and rates; work-type "
    "and default services must be active Service items); every violation is named in one 400 answer. "
    "QuickBooks must be connected (409 otherwise). Owner or admin.",
    tags=["Settings"],
    responses=error_responses(409, 429, 503),
)
def put_settings(settings: Annotated[FirmSyncSettings, Body()]) -> SettingsView:
    caller = caller_of(router)
    require_role(caller, *WRITE_ROLES)
    w = wiring()
    connection = w.connections.get(caller.firm_id)
    if connection is None or connection.status != CONNECTED:
        status = connection.status if connection is not None else "not_connected"
        raise Conflict(
            f"QuickBooks is not connected ({status}): connect it before changing the sync settings, "
            "they are checked against the QuickBooks company",
            firm_id=caller.firm_id,
        )
    qbo = w.qbo_client(caller.firm_id, connection.realm_id)
    ref = settings_check.load_reference(qbo)
    items = settings_check.load_items(qbo, settings_check.item_ids(settings))
    problems = settings_check.settings_problems(settings, ref, items)
    if problems:
        raise BadRequest("invalid settings: " + "; ".join(problems), firm_id=caller.firm_id)
    w.settings.put(caller.firm_id, settings, now=w.clock())
    logger.info("sync settings stored", extra={"firm_id": caller.firm_id, "by": caller.user_id})
    metrics.add_metric(name="SettingsUpdated", unit="Count", value=1)
    return _view(w, caller.firm_id, connection)
