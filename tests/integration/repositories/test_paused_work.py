"""Paused work (qbsync.repositories.paused, resumed by qbsync.outbound.resume) on moto: parking, the newest
version kept, resume as parked.

And the sync service's side of it: a firm that is not connected gets its events parked and the message
consumed; a connection that comes back while a worker parks is resumed by that worker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import boto3
import pytest
from qbsync.adapters.sqs import SqsMessage, SqsSender
from qbsync.models.commands import SyncCommand
from qbsync.models.platform_events import parse_platform_event
from qbsync.outbound.resume import PausedWorkResumer
from qbsync.outbound.service import SyncService, event_envelope
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.repositories.paused import PausedWork

from tests.fixtures.events import drain_queue as drain
from tests.integration.entity_sync.conftest import platform_event
from tests.integration.repositories.conftest import FakeClock, new_id


@pytest.fixture
def sqs(provisioned) -> Any:
    return boto3.client("sqs", endpoint_url=provisioned.endpoint_url, region_name=provisioned.region)


@pytest.fixture
def queue(sqs) -> str:
    url = sqs.create_queue(QueueName=f"paused-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def envelope(firm: str, name: str, version: int, **data: Any) -> dict[str, Any]:
    raw = platform_event(name, firm, **data)
    raw["detail"]["version"] = version
    return event_envelope(parse_platform_event(raw))


def command(firm: str, platform_id: str) -> SyncCommand:
    return SyncCommand(
        firm_id=firm,
        entity_type="invoice",
        platform_id=platform_id,
        reason="manual_sync",
        force=True,
        request_id="req-1",
    )


def test_the_newest_event_is_parked_beside_a_command_and_resumed_once(table, sqs, queue) -> None:
    firm = new_id("f")
    paused = PausedWork(table, FakeClock())
    resumer = PausedWorkResumer(paused, SqsSender(queue))
    assert paused.park_event(
        firm, "invoice", "inv-400", version=2, envelope=envelope(firm, "invoice_sent", 2)
    )
    assert (
        paused.park_event(firm, "invoice", "inv-400", version=1, envelope=envelope(firm, "invoice_sent", 1))
        is None
    )
    assert paused.park_command(command(firm, "inv-400"))
    for n in range(11):  # more than one SQS batch
        pid = f"svc-{n}"
        paused.park_event(
            firm, "service", pid, version=1, envelope=envelope(firm, "service_created", 1, id=pid)
        )
    assert len(paused.parked(firm)) == 12
    assert paused.parked(new_id("f")) == []

    assert resumer.resume(firm) == 12
    sent = drain(sqs, queue)
    what = sorted(b.get("kind") or f"{b['detail']['data']['id']} v{b['detail']['version']}" for b in sent)
    assert what == sorted(["qbsync.sync_record.v1", "inv-400 v2", *(f"svc-{n} v1" for n in range(11))])
    assert paused.parked(firm) == []
    assert resumer.resume(firm) == 0
    assert drain(sqs, queue) == []


class ParkingWhileSending:
    """The real sender; while the first batch is sent, a newer event of the same record is parked."""

    def __init__(self, sender: SqsSender, park: Any) -> None:
        self.sender = sender
        self.park = park

    def send_many(self, messages: Iterable[SqsMessage]) -> Any:
        receipts = self.sender.send_many(messages)
        if self.park is not None:
            self.park()
            self.park = None
        return receipts


def test_an_event_parked_during_a_resume_is_not_lost(table, sqs, queue) -> None:
    firm = new_id("f")
    clock = FakeClock()
    PausedWork(table, clock).park_event(
        firm, "invoice", "inv-400", version=1, envelope=envelope(firm, "invoice_sent", 1)
    )
    newer = envelope(firm, "invoice_sent", 2)
    racing = PausedWork(table, clock)
    sender = ParkingWhileSending(
        SqsSender(queue), lambda: racing.park_event(firm, "invoice", "inv-400", version=2, envelope=newer)
    )
    paused = PausedWork(table, clock)
    resumer = PausedWorkResumer(paused, sender)

    assert resumer.resume(firm) == 1
    assert [b["detail"]["version"] for b in drain(sqs, queue)] == [1]
    assert [p.version for p in paused.parked(firm)] == [2]  # the newer one stays parked
    assert resumer.resume(firm) == 1
    assert [b["detail"]["version"] for b in drain(sqs, queue)] == [2]
    assert paused.parked(firm) == []


class FlippingConnections:
    """The connections port: answers with ``first`` once, then with ``then``."""

    def __init__(self, first: Connection | None, then: Connection | None) -> None:
        self.answers = [first, then]

    def get(self, firm_id: str) -> Connection | None:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def service(connections: Any, table, queue: str) -> SyncService:
    def unused(*_: Any, **__: Any) -> Any:
        raise AssertionError("no QBO or record access expected while paused")

    clock = FakeClock()

    return SyncService(
        connections=connections,
        realm_clients=unused,  # type: ignore[arg-type]
        records=unused,  # type: ignore[arg-type]
        paused=PausedWork(table, clock),
        settings=unused,  # type: ignore[arg-type]
        errorlog=unused,  # type: ignore[arg-type]
        publisher=unused,  # type: ignore[arg-type]
        requeue=SqsSender(queue),
        clock=clock,
        owner_id="paused-test",
        app_base_url="https://app.qbo.example",
    )


@pytest.mark.parametrize("status", [None, "needs_reconnect", "disconnected", "pending_switch"])
def test_a_firm_that_is_not_connected_gets_its_events_parked(status, table, sqs, queue) -> None:
    firm = new_id("f")
    connection = (
        None if status is None else Connection(firm_id=firm, realm_id="9130", status=status, tokens=None)
    )
    svc = service(FlippingConnections(connection, connection), table, queue)
    event = parse_platform_event(platform_event("service_created", firm))

    outcome = svc.handle(event)

    assert (outcome.status, outcome.entity_type, outcome.platform_id) == ("paused", "service", "svc-300")
    assert outcome.reason == f"QuickBooks is not connected ({status or 'not_connected'})"
    parked = PausedWork(table).parked(firm)
    assert [(p.entity_type, p.platform_id, p.version) for p in parked] == [("service", "svc-300", 1)]
    assert json.loads(parked[0].event or "{}") == event_envelope(event)
    assert drain(sqs, queue) == []

    # a command while paused is parked too (beside the event)
    assert svc.handle_command(command(firm, "inv-1")).status == "paused"
    assert len(PausedWork(table).parked(firm)) == 2


def test_a_worker_that_parks_while_the_firm_reconnects_resumes_the_work(table, sqs, queue) -> None:
    firm = new_id("f")
    down = Connection(firm_id=firm, realm_id="9130", status="needs_reconnect", tokens=None)
    up = Connection(firm_id=firm, realm_id="9130", status=CONNECTED, tokens=None)
    svc = service(FlippingConnections(down, up), table, queue)
    event = parse_platform_event(platform_event("service_created", firm))

    outcome = svc.handle(event)

    assert (outcome.status, outcome.released) == ("paused", 1)
    assert drain(sqs, queue) == [event_envelope(event)]
    assert PausedWork(table).parked(firm) == []
