"""Fixtures of tests/integration/inbound.

* ``api``, ``env``, ``stack``: the services import behind the admin API (errorcenter/actions fixtures).
* ``inbound``: the inbound worker's handler in-process (``functions/inbound_worker``), configured as
  template.yaml configures it, on moto + the simulator, beside the entity-sync handler that syncs the
  platform's records out first (:class:`InboundStack`, a :class:`SyncStack`). The accountant works in the
  simulator through its v3 API with a token of their own (:class:`local.qbo_sim.client.SimAccountant`);
  what the webhook intake would enqueue is built with :meth:`InboundStack.notice`. The qbsync events for
  the platform are collected by a subscription on the bus (tests/fixtures/events.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from qbsync import wiring
from qbsync.models.messages import EntityChange, InboundNotice
from qbsync.models.record_key import RecordKey
from qbsync.repositories.error_log import ErrorEntry
from qbsync.repositories.inbound_payments import InboundPayments

from local.qbo_sim.client import SimAccountant
from local.stack.provision import Resources
from tests.fixtures.events import EventCapture
from tests.fixtures.lambda_runtime import LambdaContext, load_function, sqs_record
from tests.integration.entity_sync.conftest import SyncStack, platform_event, untaxed_invoice
from tests.integration.errorcenter.actions.conftest import api, env, stack

__all__ = ["InboundStack", "api", "env", "inbound", "stack"]

INBOUND = load_function("inbound_worker", prefix="ib")
#: what ``InboundStack.announced`` collects
INBOUND_EVENTS = ("Payment Received In QBO", "Invoice Paid", "Payment Withdrawn In QBO", "Sync Error Raised")


@dataclass
class InboundStack(SyncStack):
    accountant: SimAccountant | None = None

    def sync_invoices(self, firm_id: str, *numbers: tuple[str, str]) -> dict[str, str]:
        """Connect ``firm_id`` and sync its account, service and one untaxed invoice (605.00) per
        ``(platform id, number)``; returns platform invoice id → QBO invoice id."""
        self.connect(firm_id)
        self.set_settings(firm_id, sync_accounts="all")
        events = [
            platform_event("client_account_created", firm_id),
            platform_event("service_created", firm_id),
        ]
        for platform_id, number in numbers:
            invoice = untaxed_invoice(firm_id, number=number)
            invoice["detail"]["data"]["id"] = platform_id
            invoice["id"] = str(uuid.uuid4())
            invoice["detail"]["event_id"] = f"evt-{platform_id}"
            events.append(invoice)
        self.deliver_until_drained(*events)
        out = {}
        for platform_id, _ in numbers:
            record = self.records.get(RecordKey(firm_id, self.realm_id, "invoice", platform_id))
            assert record is not None and record.status == "synced" and record.qbo_id
            out[platform_id] = record.qbo_id
        self.published()  # the outbound "Sync ..." events are not what these tests look at
        return out

    def realm_of(self, firm_id: str) -> str:
        connection = self.connections().get(firm_id)
        assert connection is not None
        return connection.realm_id

    def accountant_of(self, firm_id: str) -> SimAccountant:
        return SimAccountant.sign_in(self.sim.control, self.realm_of(firm_id))

    def customer_of(self, firm_id: str) -> str:
        record = self.records.get(RecordKey(firm_id, self.realm_of(firm_id), "client_account", "acct-100"))
        assert record is not None and record.qbo_id
        return record.qbo_id

    @staticmethod
    def notice(realm_id: str, *changes: tuple[str, str, str]) -> str:
        """The InboundQueue body the webhook intake enqueues for ``(entity, id, operation)`` changes."""
        return InboundNotice(
            realm_id=realm_id,
            changes=tuple(
                EntityChange(entity, qbo_id, operation, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                for entity, qbo_id, operation in changes
            ),
            source="webhook_classic",
            received_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            notification_id=uuid.uuid4().hex,
        ).body()

    def inbound(self, *bodies: Any) -> dict[str, Any]:
        """One InboundQueue batch to the inbound worker; returns its ``batchItemFailures`` response."""
        event = {"Records": [sqs_record(b, queue="qbsync-inbound") for b in bodies]}
        return INBOUND.lambda_handler(event, LambdaContext())

    def announced(self) -> list[tuple[str, dict[str, Any]]]:
        """The inbound events published so far (drains the capture), as (detail-type, detail)."""
        return self.published()

    @property
    def payments(self) -> InboundPayments:
        return InboundPayments(self.sync_table)

    def payment_errors(self, firm_id: str) -> list[ErrorEntry]:
        entries, _ = self.errors.list(firm_id, category="Payments", status="open", limit=50)
        return [e for e in entries if e.entity_type == "qbo_payment"]


@pytest.fixture
def inbound(
    aws_clean: Resources,
    function_env: Any,
    intuit_app_secret: Any,
    qbo_sim: Any,
    qbo_company: str,
    qbsync_events: Callable[..., EventCapture],
) -> Iterator[InboundStack]:
    env = function_env("InboundWorkerFunction")
    wiring.reset()
    captured = qbsync_events(*INBOUND_EVENTS)
    s = InboundStack(aws_clean, qbo_sim, qbo_company, intuit_app_secret.client_id, env, captured)
    s.requeued()
    s.published()
    yield s
    wiring.reset()
    for realm in s.made:
        qbo_sim.control.delete_company(realm)
