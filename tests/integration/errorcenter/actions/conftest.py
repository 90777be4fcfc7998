"""Record and error actions through the admin API handler, on moto + the simulator.

Reuses the fixtures of tests/integration/api (``api``: the admin API handler behind proxy events with an
authorizer context) and tests/integration/entity_sync (``stack``: the entity-sync handler, to put real records
and errors in place through the normal sync path). Both run on the same moto tables and simulator company.
The events the actions publish are collected by a subscription on the bus (tests/fixtures/events.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from qbsync import wiring
from qbsync.models.commands import SYNC_COMMAND_KIND
from qbsync.models.record_key import RecordKey
from qbsync.qbo.client import QboClient

from tests.fixtures.events import EventCapture
from tests.integration.api.conftest import AdminApi, HttpResult, api  # noqa: F401 - fixture
from tests.integration.entity_sync.conftest import (  # noqa: F401 - fixtures
    SyncStack,
    new_firm,
    platform_event,
    stack,
)

ACTION_EVENTS = ["Sync Status Changed", "Sync Error Resolved", "Service Imported", "Service Delete Requested"]


@dataclass
class Env:
    """The admin API (``api``) and the sync worker (``stack``) of one test, on one firm."""

    api: AdminApi
    stack: SyncStack
    captured: EventCapture  # the qbsync events of ACTION_EVENTS
    firm: str

    @property
    def realm(self) -> str:
        return self.stack.realm_id

    def call(
        self, method: str, path: str, *, role: str = "owner", firm: str | None = None, **kw: Any
    ) -> HttpResult:
        return self.api.call(method, path, firm_id=firm or self.firm, role=role, **kw)

    def sync(self, *events: Any) -> None:
        """Deliver platform events (or SyncCommands) to the entity-sync worker; nothing may fail."""
        assert self.stack.deliver(*events) == {"batchItemFailures": []}

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """The action events published since the last call (drains the capture queue)."""
        return [(envelope["detail-type"], envelope["detail"]) for envelope in self.captured.drain()]

    def commands(self) -> list[dict[str, Any]]:
        """The SyncCommands on the OutboundQueue (drained; other messages are dropped)."""
        return [b for b in self.stack.requeued() if b.get("kind") == SYNC_COMMAND_KIND]

    def record(self, entity_type: str, platform_id: str) -> Any:
        return self.stack.records.get(RecordKey(self.firm, self.realm, entity_type, platform_id))

    def qbo(self, entity: str) -> list[dict[str, Any]]:
        return self.stack.entities(entity)

    def qbo_client(self) -> QboClient:
        """A QBO client of the test company, as someone working in QuickBooks directly."""
        issued = self.stack.sim.control.issue_tokens(self.stack.client_id, self.realm)
        return QboClient(
            base_url=self.stack.env["QBO_API_BASE_URL"],
            realm_id=self.realm,
            tokens=_Tokens(issued["access_token"]),
        )

    def open_error(self, entity_type: str, platform_id: str) -> str:
        entries, _ = self.stack.errors.list(self.firm)
        found = [e.error_id for e in entries if (e.entity_type, e.platform_id) == (entity_type, platform_id)]
        assert len(found) == 1, entries
        return found[0]


@dataclass
class _Tokens:
    token: str

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise AssertionError("the simulator's fresh token was refused")


@pytest.fixture
def env(
    api: AdminApi,  # noqa: F811
    stack: SyncStack,  # noqa: F811
    qbsync_events: Callable[..., EventCapture],
) -> Iterator[Env]:
    wiring.reset()
    firm = new_firm()
    stack.connect(firm)
    e = Env(api, stack, qbsync_events(*ACTION_EVENTS), firm)
    e.events()  # drop what earlier tests left
    yield e
    wiring.reset()
