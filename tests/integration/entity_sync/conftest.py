"""The entity-sync handler in-process, configured as template.yaml configures it, on moto + the simulator.

The firm is connected by storing a connection with tokens the simulator issued (tests/fixtures/firms.py;
the OAuth flow itself is tested in tests/integration/connection); the qbsync events the handler publishes
are collected by a subscription on the bus (tests/fixtures/events.py). Events are the samples of
``events/platform`` wrapped in SQS records exactly as the ``PlatformEventsRule`` → ``OutboundQueue`` →
Lambda path delivers them.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from qbsync import wiring
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.repositories.connections import ConnectionsRepository
from qbsync.repositories.error_log import ErrorLogRepository
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.repositories.records import RecordsRepository

from local.stack.provision import Resources, clients
from tests.fixtures.events import EventCapture, drain_queue
from tests.fixtures.firms import company_for, connections_repository, store_connection
from tests.fixtures.firms import new_firm as new_firm  # the tests of this folder import it from here
from tests.fixtures.lambda_runtime import LambdaContext, load_function, sqs_record

ROOT = Path(__file__).resolve().parents[3]
PLATFORM_EVENTS = ROOT / "events" / "platform"
#: what ``SyncStack.published`` collects
SYNC_EVENTS = ("Sync Status Changed", "Sync Error Raised")


def load_handler(name: str) -> Any:
    return load_function(name, prefix="es")


HANDLER = load_handler("entity_sync")


def platform_event(name: str, firm_id: str, **data_changes: Any) -> dict[str, Any]:
    """A sample of events/platform for ``firm_id``, with ``data`` fields replaced."""
    event = json.loads((PLATFORM_EVENTS / f"{name}.json").read_text())
    event["detail"]["firm_id"] = firm_id
    event["detail"]["data"].update(copy.deepcopy(data_changes))
    return event


def untaxed_invoice(firm_id: str, *, number: str = "INV-1042") -> dict[str, Any]:
    """The invoice_sent sample without sales tax (the tax map is tested separately)."""
    event = platform_event("invoice_sent", firm_id)
    data = event["detail"]["data"]
    for line in data["line_items"]:
        line["tax_rate_id"] = None
        line["tax_amount"] = None
    data.update(number=number, tax_total="0.00", total="605.00", balance_due="605.00")
    return event


@dataclass
class SyncStack:
    resources: Resources
    sim: Any
    realm_id: str
    client_id: str
    env: dict[str, str]
    captured: EventCapture  # the qbsync events of SYNC_EVENTS
    #: companies made for other firms than the test's (deleted after the test)
    made: list[str] = field(default_factory=list)

    def published(self) -> list[tuple[str, dict[str, Any]]]:
        """Every qbsync "Sync ..." event published so far, as (detail-type, detail) (drains the capture)."""
        out = []
        for envelope in self.captured.drain():
            assert envelope["source"] == "qbsync"
            out.append((envelope["detail-type"], envelope["detail"]))
        return out

    @property
    def sync_table(self) -> DynamoTable:
        return DynamoTable(self.env["SYNC_TABLE_NAME"])

    @property
    def records(self) -> RecordsRepository:
        return RecordsRepository(self.sync_table)

    @property
    def errors(self) -> ErrorLogRepository:
        return ErrorLogRepository(DynamoTable(self.env["ERROR_TABLE_NAME"]))

    def connections(self) -> ConnectionsRepository:
        return connections_repository(self.env)

    def connect(self, firm_id: str) -> None:
        """Store a ``connected`` connection of ``firm_id`` to the test company (a company of its own when
        another firm holds it: one company belongs to one connected firm)."""
        realm = company_for(self.connections(), self.sim, firm_id, self.realm_id, self.made)
        store_connection(self.connections(), self.sim, self.client_id, firm_id, realm)

    def set_settings(self, firm_id: str, **values: Any) -> None:
        FirmSettingsRepository(self.sync_table).put(firm_id, FirmSyncSettings(**values), now=time.time())

    def deliver(self, *bodies: Any) -> dict[str, Any]:
        """One SQS batch to the handler; returns its ``batchItemFailures`` response."""
        event = {"Records": [sqs_record(b) for b in bodies]}
        return HANDLER.lambda_handler(event, LambdaContext())

    def deliver_until_drained(self, *bodies: Any, max_rounds: int = 40) -> None:
        """Deliver ``bodies``, then whatever the service re-enqueued, in batches of up to 10, until the
        OutboundQueue is empty; every batch must succeed. More than ``max_rounds`` rounds is a release
        loop: AssertionError."""
        pending = list(bodies)
        for _ in range(max_rounds):
            for i in range(0, len(pending), 10):
                assert self.deliver(*pending[i : i + 10]) == {"batchItemFailures": []}
            pending = self.requeued()
            if not pending:
                return
        raise AssertionError(f"the outbound queue never drained in {max_rounds} rounds (a release loop)")

    def deliver_records(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return HANDLER.lambda_handler({"Records": records}, LambdaContext())

    def requeued(self) -> list[dict[str, Any]]:
        """Drain the OutboundQueue: the events the service re-enqueued (parsed bodies)."""
        sqs = clients(self.resources.endpoint_url, self.resources.region)["sqs"]
        return drain_queue(sqs, self.env["OUTBOUND_QUEUE_URL"])

    def entities(self, entity: str) -> list[dict[str, Any]]:
        return self.sim.control.entities(self.realm_id, entity)


@pytest.fixture
def stack(
    aws_clean: Resources,
    function_env: Any,
    intuit_app_secret: Any,
    qbo_sim: Any,
    qbo_company: str,
    qbsync_events: Callable[..., EventCapture],
) -> Iterator[SyncStack]:
    env = function_env("OAuthFunction")  # every function shares the Globals environment
    wiring.reset()
    captured = qbsync_events(*SYNC_EVENTS)
    s = SyncStack(aws_clean, qbo_sim, qbo_company, intuit_app_secret.client_id, env, captured)
    s.requeued()  # drop what earlier tests left
    s.published()
    yield s
    wiring.reset()
    for realm in s.made:
        qbo_sim.control.delete_company(realm)
