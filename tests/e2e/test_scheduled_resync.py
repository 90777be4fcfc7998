"""The scheduled resync recovers what the event-driven path left behind (issue 15 item 1), through the whole
local stack. The hourly ``CatchUpSchedule`` is fired with ``LocalStack.fire_schedule``: its fan-out queues
one run per connected firm on ``CatchUpQueue`` (spread with ``DelaySeconds``), the SQS poller hands each to
``CdcCatchUpFunction``, whose record sweep sends a SyncCommand per record to run again; the entity-sync
worker runs them. Two firms, one QuickBooks company each:

* **firm A: a release that was lost.** Its invoice arrives before its client account and is blocked; the
  release is then lost the way the release path can lose it - a releaser marked the invoice
  (``requeued_by``) and crashed before its send, and that releaser's redelivery was dead-lettered (the mark
  is written here through the product's repository, as that releaser wrote it). The account then syncs;
  its own release finds the mark taken and sends nothing: the invoice stays blocked behind a synced account.
* **firm B: a record whose message reached the DLQ.** Its invoice's write fails on QuickBooks' side (503s
  from the simulator: an uncertain write), the worker gives the lease back and SQS keeps the message
  invisible for the queue's 720 s (then 4 more receives, then ``OutboundDLQ``): the record is left
  ``not_synced`` with its event stored.

Both records (and firm A's account) are then aged through the table ("as if an hour / two hours ago": the
sweep's thresholds are 15 and 90 minutes), the schedule fires, and each ends ``synced`` with exactly one
invoice in its company. The test waits on "Sync Status Changed" events (SQS long polls) and polls the record
table under one deadline.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.record_key import RecordKey
from qbsync.repositories.records import RecordsRepository, SyncRecord

from local.stack.provision import clients
from tests.fixtures.firms import admin_jwt
from tests.fixtures.platform import (
    DEADLINE_SECONDS,
    StatusInbox,
    connect_owner,
    marked,
    put_on_bus,
    sample_event,
    untaxed_invoice_without_services,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-resync-a-{secrets.token_hex(4)}"


@pytest.fixture
def second_firm(local_stack: Any, qbo_sim: Any) -> Iterator[tuple[str, str, StatusInbox]]:
    firm = f"firm-e2e-resync-b-{secrets.token_hex(4)}"
    realm = str(qbo_sim.control.create_company(company_name=f"Resync Co {secrets.token_hex(3)}")["realm_id"])
    inbox = StatusInbox(local_stack, firm)
    try:
        yield firm, realm, inbox
    finally:
        inbox.close()
        qbo_sim.control.clear_faults()
        qbo_sim.control.delete_company(realm)


def _table(stack: Any) -> DynamoTable:
    ddb = clients(stack.endpoint_url, stack.region)["dynamodb"]
    return DynamoTable(stack.resources.ref("SyncStateTable"), client=ddb)


def _record_when(records: RecordsRepository, key: RecordKey, wanted: Any, deadline: float) -> SyncRecord:
    """The record once ``wanted(record)`` holds (polled under the test's deadline)."""
    while True:
        found = records.get(key)
        if found is not None and wanted(found):
            return found
        assert time.monotonic() < deadline, f"{key.ref} is {found.status if found else 'absent'}"
        time.sleep(0.25)


def _age(table: DynamoTable, key: RecordKey, seconds: int) -> None:
    table.update(key.item_key(), update="SET updated_at = updated_at - :d", values={":d": seconds})


def _invoices(qbo_sim: Any, realm_id: str) -> list[dict[str, Any]]:
    return marked(qbo_sim.control.entities(realm_id, "Invoice"), "PrivateNote", "Invoice", "inv-400")


def test_the_schedule_recovers_a_lost_release_and_a_dead_lettered_record_in_two_firms(
    local_stack: Any,
    qbo_sim: Any,
    qbo_company: str,
    firm_id: str,
    status_inbox: StatusInbox,
    second_firm: tuple[str, str, StatusInbox],
) -> None:
    firm_b, realm_b, inbox_b = second_firm
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    connect_owner(local_stack, qbo_sim, firm_b, realm_b)
    table = _table(local_stack)
    records = RecordsRepository(table)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    invoice_a = RecordKey(firm_id, qbo_company, "invoice", "inv-400")
    invoice_b = RecordKey(firm_b, realm_b, "invoice", "inv-400")

    # firm A: blocked on its account, the release lost, the account synced
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    _record_when(records, invoice_a, lambda r: r.status == "blocked", deadline)
    assert records.mark_requeued(invoice_a, by="service#svc-lost", statuses=("blocked",))
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    status_inbox.wait_for("ClientAccount", "acct-100", "synced", deadline)

    # firm B (every account syncs): the account syncs; the invoice's write fails on QuickBooks' side and
    # its message waits
    settings = requests.put(
        f"{local_stack.api_url}/settings",
        json={"sync_accounts": "all"},
        headers={"Authorization": f"Bearer {admin_jwt(local_stack, firm_b)}"},
        timeout=60,
    )
    assert settings.status_code == 200, settings.text
    put_on_bus(local_stack, sample_event("client_account_created", firm_b))
    inbox_b.wait_for("ClientAccount", "acct-100", "synced", deadline)
    qbo_sim.control.inject_fault("http_503", count=50, realm_id=realm_b, method="POST", path_regex="/invoice")
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_b))
    left = _record_when(
        records, invoice_b, lambda r: r.status == "not_synced" and r.last_event_version is not None, deadline
    )
    qbo_sim.control.clear_faults()
    assert left.platform_version is None and _invoices(qbo_sim, realm_b) == []

    assert records.get(invoice_a).status == "blocked"  # nothing will wake it
    _age(table, invoice_a, 3600)
    _age(table, RecordKey(firm_id, qbo_company, "client_account", "acct-100"), 3600)
    _age(table, invoice_b, 2 * 3600)

    (result,) = local_stack.fire_schedule(local_stack.schedule_id_for("CdcCatchUpFunction"))
    assert result.ok, result.error

    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    inbox_b.wait_for("Invoice", "inv-400", "synced", deadline)
    assert records.get(invoice_a).status == "synced" and records.get(invoice_b).status == "synced"
    assert len(_invoices(qbo_sim, qbo_company)) == 1
    assert len(_invoices(qbo_sim, realm_b)) == 1
    # the runs the schedule fanned out, one per firm, said what they swept
    log = local_stack.log_path("CdcCatchUpFunction").read_text(encoding="utf-8")
    swept = [line for line in log.splitlines() if '"record sweep"' in line]
    assert any(firm_id in line and "prerequisites_synced" in line for line in swept)
    assert any(firm_b in line and "retries_ran_out" in line for line in swept)
