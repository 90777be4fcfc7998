"""The exactly-once writer against the QuickBooks simulator, on the sync-state records of moto
(tests/integration/repositories/conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from qbsync.errors import ReconnectRequired
from qbsync.outbound.writer import ExactlyOnceWriter, marker
from qbsync.qbo.client import QboClient, quote_literal
from qbsync.repositories.records import RecordsRepository

from tests.integration.repositories.conftest import (  # noqa: F401 - fixtures
    FakeClock,
    clock,
    new_id,
    records,
    table,
)


@dataclass
class StaticTokens:
    """A TokenSource over tokens issued by the simulator; ``gate`` (optional) pauses every call until set,
    so a test can hold a worker inside its QBO call deterministically."""

    token: str
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)

    def access_token(self) -> str:
        self.entered.set()
        if self.gate is not None and not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise ReconnectRequired("the test token was rejected")


@dataclass
class Rig:
    sim: Any
    realm: str
    firm: str
    records: RecordsRepository
    clock: FakeClock
    token: str

    def client(self, *, max_attempts: int = 4, gate: threading.Event | None = None) -> QboClient:
        return QboClient(
            base_url=self.sim.url,
            realm_id=self.realm,
            tokens=StaticTokens(self.token, gate=gate),
            sleep=lambda _s: None,  # backoff is not slept in tests
            jitter=lambda: 0.0,
            max_attempts=max_attempts,
        )

    def writer(
        self, owner: str = "worker-1", qbo: QboClient | None = None, **kwargs: Any
    ) -> ExactlyOnceWriter:
        return ExactlyOnceWriter(
            self.records,
            qbo or self.client(),
            self.clock,
            owner,
            app_base_url=self.sim.url,
            **kwargs,
        )

    def customers(self, display_name: str | None = None) -> list[dict[str, Any]]:
        rows = self.sim.control.entities(self.realm, "Customer")
        return [r for r in rows if display_name is None or r.get("DisplayName") == display_name]


@pytest.fixture
def rig(qbo_sim, qbo_company, qbo_tokens, records, clock) -> Rig:  # noqa: F811 - the fixtures above
    return Rig(qbo_sim, qbo_company, new_id("f"), records, clock, qbo_tokens["access_token"])


def customer_payload(name: str, client_id: str) -> dict[str, Any]:
    return {"DisplayName": name, "CompanyName": name, "Notes": marker("client_account", client_id)}


def find_customer(name: str, client_id: str) -> Callable[[QboClient], dict[str, Any] | None]:
    """Business key (DisplayName, queryable) + the qbsync marker matched client-side (QBO.md §9.3)."""

    def find(qbo: QboClient) -> dict[str, Any] | None:
        rows = qbo.query(f"SELECT * FROM Customer WHERE DisplayName = {quote_literal(name)}")
        tag = marker("client_account", client_id)
        return next((r for r in rows if tag in (r.get("Notes") or "")), None)

    return find
