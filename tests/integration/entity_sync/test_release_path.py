"""The release path of blocked records (issue 4): each stored event is re-enqueued a bounded number of times,
a crash between a sync and its release loses nothing, and no record stays blocked once its prerequisites are
synced.

The real handler on moto + the simulator; the "messages" are the bodies the service put on the real
OutboundQueue (``stack.requeued()`` drains it), so every count below is a count of SQS messages.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from qbsync import wiring
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.models.platform_events import parse_platform_event
from qbsync.models.record_key import RecordKey
from qbsync.outbound.service import SyncService

from local.stack.provision import clients
from tests.integration.entity_sync.conftest import (
    SyncStack,
    new_firm,
    platform_event,
    untaxed_invoice,
)

SERVICES = ("svc-301", "svc-302", "svc-303")


def _key(body: dict[str, Any]) -> tuple[str, str]:
    return body["detail-type"].split(" ")[0], body["detail"]["data"]["id"]


def _invoice_on_services(firm: str, invoice_id: str, services: tuple[str, ...]) -> dict[str, Any]:
    """An untaxed invoice of acct-100 with one line per service (so it waits on 1 + len(services) records)."""
    event = untaxed_invoice(firm, number=f"N-{invoice_id}")
    data = event["detail"]["data"]
    data["id"] = invoice_id
    event["detail"]["event_id"] = f"evt-{invoice_id}"
    line = data["line_items"][0]
    data["line_items"] = [
        {**line, "id": f"ln-{i}", "service_id": sid, "quantity": "1", "rate": "100.00", "amount": "100.00"}
        for i, sid in enumerate(services)
    ]
    total = f"{100 * len(services)}.00"
    data.update(subtotal=total, total=total, balance_due=total)
    return event


def _service(firm: str, service_id: str) -> dict[str, Any]:
    event = platform_event("service_created", firm, id=service_id)
    event["detail"]["data"]["name"] = f"Service {service_id}"
    event["detail"]["event_id"] = f"evt-{service_id}"
    return event


def test_a_record_waiting_on_four_prerequisites_is_released_once(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    invoice = _invoice_on_services(firm, "inv-600", SERVICES)
    assert stack.deliver(invoice) == {"batchItemFailures": []}
    blocked = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-600"))
    assert blocked is not None and blocked.status == "blocked" and len(blocked.waiting_on) == 4
    assert stack.requeued() == []

    # the four prerequisites arrive out of order, each delivered twice (redelivery), one per batch
    prerequisites = [platform_event("client_account_created", firm), *(_service(firm, s) for s in SERVICES)]
    random.Random(7).shuffle(prerequisites)
    sent: list[dict[str, Any]] = []
    for event in prerequisites + prerequisites:
        assert stack.deliver(event) == {"batchItemFailures": []}
        sent += stack.requeued()
    # released once: by the last prerequisite, not by each of the four nor by the redeliveries
    assert [_key(b) for b in sent] == [("Invoice", "inv-600")]

    # two prerequisites synced "at once": both their redeliveries in one batch, still nothing re-sent
    assert stack.deliver(prerequisites[0], prerequisites[1]) == {"batchItemFailures": []}
    assert stack.requeued() == []

    assert stack.deliver(*sent) == {"batchItemFailures": []}
    synced = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-600"))
    assert synced is not None and synced.status == "synced" and synced.qbo_id
    assert synced.requeued_by is None  # the claim took the mark off
    assert stack.requeued() == []


def test_a_skipped_account_is_woken_once_by_many_blocked_invoices(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)  # default settings: an account syncs only once it has activity
    assert stack.deliver(_service(firm, "svc-301"), platform_event("client_account_created", firm)) == {
        "batchItemFailures": []
    }
    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "skipped"

    invoices = [_invoice_on_services(firm, f"inv-61{i}", ("svc-301",)) for i in range(4)]
    for invoice in invoices:  # one at a time: each blocks on the skipped account
        assert stack.deliver(invoice) == {"batchItemFailures": []}
    assert stack.deliver(*invoices[1:]) == {"batchItemFailures": []}  # redelivered, in one batch
    woken = stack.requeued()
    assert [_key(b) for b in woken] == [("ClientAccount", "acct-100")]  # by the first invoice only
    # a redelivery of the invoice that sent it sends it again (it cannot tell a crash before its send
    # from a duplicate): one more message, bounded by that one record's deliveries
    assert stack.deliver(invoices[0]) == {"batchItemFailures": []}
    again = stack.requeued()
    assert [_key(b) for b in again] == [("ClientAccount", "acct-100")]

    assert stack.deliver(*woken) == {"batchItemFailures": []}
    released = stack.requeued()
    assert Counter(_key(b) for b in released) == Counter(("Invoice", f"inv-61{i}") for i in range(4))
    assert stack.deliver(*again) == {"batchItemFailures": []}  # the second copy: already_synced
    assert stack.requeued() == []

    assert stack.deliver(*released) == {"batchItemFailures": []}
    for i in range(4):
        record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", f"inv-61{i}"))
        assert record is not None and record.status == "synced"
    assert stack.requeued() == []


def test_a_crash_between_the_sync_and_the_release_is_repaired_by_the_redelivery(
    stack: SyncStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    assert stack.deliver(_service(firm, "svc-301")) == {"batchItemFailures": []}
    invoices = [_invoice_on_services(firm, f"inv-62{i}", ("svc-301",)) for i in range(2)]
    assert stack.deliver(*invoices) == {"batchItemFailures": []}
    assert stack.requeued() == []

    # the account syncs, then the worker "dies" releasing its dependents: the OutboundQueue is gone
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    missing = sqs.create_queue(QueueName=f"gone-{firm}")["QueueUrl"]
    sqs.delete_queue(QueueUrl=missing)
    monkeypatch.setenv("OUTBOUND_QUEUE_URL", missing)
    wiring.reset()
    account = platform_event("client_account_created", firm)
    failed = stack.deliver(account)
    assert len(failed["batchItemFailures"]) == 1
    synced = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert synced is not None and synced.status == "synced" and synced.released_version is None
    for i in range(2):  # marked for release by the account, but never sent
        record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", f"inv-62{i}"))
        assert record is not None and record.status == "blocked"
        assert record.requeued_by == "client_account#acct-100"

    monkeypatch.setenv("OUTBOUND_QUEUE_URL", stack.env["OUTBOUND_QUEUE_URL"])
    wiring.reset()
    # SQS redelivers the message: already_synced, and the release is done now
    assert stack.deliver(account) == {"batchItemFailures": []}
    released = stack.requeued()
    assert sorted(_key(b) for b in released) == [("Invoice", "inv-620"), ("Invoice", "inv-621")]
    done = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert done is not None and done.released_version == done.platform_version
    assert stack.deliver(account) == {"batchItemFailures": []}  # later redeliveries release nothing
    assert stack.requeued() == []
    assert stack.deliver(*released) == {"batchItemFailures": []}
    for i in range(2):
        record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", f"inv-62{i}"))
        assert record is not None and record.status == "synced"


class _InterleavingTable(DynamoTable):
    """The sync table, running ``hook`` once right after the first Query that matches ``when`` returned
    its items: the interleaving of two workers, made deterministic (no QBO or DynamoDB call is faked)."""

    def __init__(self, name: str, when: Any, hook: Any) -> None:
        super().__init__(name)
        self._when = when
        self._hook = hook

    def query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        items = list(super().query(**kwargs))
        if self._hook is not None and self._when(kwargs):
            hook, self._hook = self._hook, None
            hook()
        return iter(items)


def _service_with(table: DynamoTable) -> SyncService:
    """A second worker, built by the production builder but on ``table``."""
    return wiring.build_sync_service(table=table, owner_id="entity-sync-interleaved")


def test_an_invoice_that_blocks_while_its_account_is_being_skipped_is_not_left_blocked(
    stack: SyncStack,
) -> None:
    """The account's worker looked for activity (none yet) and is about to mark the account skipped; the
    invoice's worker blocks on it meanwhile and, re-checking, sees the account mid-claim (not skipped,
    so it does not wake it). Before the fix nobody sent the account again: the invoice stayed blocked."""
    firm = new_firm()
    stack.connect(firm)  # accounts sync once they have activity
    assert stack.deliver(_service(firm, "svc-301")) == {"batchItemFailures": []}
    invoice = _invoice_on_services(firm, "inv-630", ("svc-301",))

    def invoice_blocks_meanwhile() -> None:
        assert stack.deliver(invoice) == {"batchItemFailures": []}

    def activity_check(kwargs: dict[str, Any]) -> bool:
        return kwargs.get("index") == "gsi2" and "client_account#acct-100" in str(kwargs.get("values"))

    table = _InterleavingTable(stack.env["SYNC_TABLE_NAME"], activity_check, invoice_blocks_meanwhile)
    worker = _service_with(table)
    outcome = worker.handle(parse_platform_event(platform_event("client_account_created", firm)))
    assert outcome.status == "skipped"
    blocked = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-630"))
    assert blocked is not None and blocked.status == "blocked"

    woken = stack.requeued()  # the skipped account saw the new dependent and sent itself again
    assert [_key(b) for b in woken] == [("ClientAccount", "acct-100")]
    assert stack.deliver(*woken) == {"batchItemFailures": []}
    released = stack.requeued()
    assert [_key(b) for b in released] == [("Invoice", "inv-630")]
    assert stack.deliver(*released) == {"batchItemFailures": []}
    record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-630"))
    assert record is not None and record.status == "synced"
    wiring.reset()


def test_an_older_event_delivered_after_a_newer_blocked_one_does_not_overwrite_it(stack: SyncStack) -> None:
    """Invoice v2 blocks; the late v1 (SQS does not keep order) must not be written in its place."""
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    assert stack.deliver(_service(firm, "svc-301")) == {"batchItemFailures": []}
    newer = _invoice_on_services(firm, "inv-640", ("svc-301",))
    newer["detail"]["version"] = 3
    newer["detail"]["event_id"] = "evt-640-3"
    newer["detail"]["data"]["memo"] = "version 3"
    older = _invoice_on_services(firm, "inv-640", ("svc-301",))
    older["detail"]["version"] = 2
    older["detail"]["event_id"] = "evt-640-2"
    older["detail"]["data"]["memo"] = "version 2"
    assert stack.deliver(newer) == {"batchItemFailures": []}
    assert stack.deliver(platform_event("client_account_created", firm)) == {"batchItemFailures": []}
    released = stack.requeued()
    assert [(_key(b), b["detail"]["version"]) for b in released] == [(("Invoice", "inv-640"), 3)]
    assert stack.deliver(older) == {"batchItemFailures": []}  # superseded: nothing written
    assert [i for i in stack.entities("Invoice") if "inv-640" in str(i.get("PrivateNote"))] == []
    assert stack.requeued() == []
    assert stack.deliver(*released) == {"batchItemFailures": []}
    record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-640"))
    assert record is not None and record.status == "synced" and record.platform_version == 3
    mine = [i for i in stack.entities("Invoice") if "inv-640" in str(i.get("PrivateNote"))]
    assert len(mine) == 1 and mine[0].get("CustomerMemo", {}).get("value") == "version 3"
