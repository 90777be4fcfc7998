"""SyncCommands (re-run a record's stored event), credit-memo application, "Sales" line names (issue 4).

Through the real entity-sync handler on moto + the simulator, as test_entity_sync.py.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from qbsync.models.commands import SyncCommand
from qbsync.models.record_key import RecordKey
from qbsync.outbound.mapping import parse_marker
from qbsync.qbo.client import QboClient

from tests.integration.entity_sync.conftest import (
    SyncStack,
    new_firm,
    platform_event,
    sqs_record,
    untaxed_invoice,
)


def _marked(objs: list[dict[str, Any]], entity: str, platform_id: str) -> list[dict[str, Any]]:
    return [o for o in objs if parse_marker(o.get("PrivateNote") or o.get("Notes")) == (entity, platform_id)]


def _command(firm: str, entity_type: str, platform_id: str, *, force: bool = False) -> dict[str, Any]:
    return SyncCommand(
        firm_id=firm,
        entity_type=entity_type,  # type: ignore[arg-type]
        platform_id=platform_id,
        reason="manual_sync",
        force=force,
        request_id=f"req-{uuid.uuid4().hex[:8]}",
        requested_by="user-1",
        correlation_id="corr-manual",
    ).model_dump(mode="json")


def _posts(stack: SyncStack) -> int:
    return sum(1 for r in stack.sim.control.requests(stack.realm_id, limit=500) if r.get("method") == "POST")


def _sync_prerequisites(stack: SyncStack, firm: str) -> None:
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    response = stack.deliver(
        platform_event("client_account_created", firm), platform_event("service_created", firm)
    )
    assert response == {"batchItemFailures": []}


def test_a_sync_command_reruns_the_stored_event_forced_or_not(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)  # default settings: an account without activity is skipped

    assert stack.deliver(_command(firm, "client_account", "acct-100")) == {"batchItemFailures": []}
    assert (
        stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100")) is None
    )  # nothing stored

    assert stack.deliver(platform_event("client_account_created", firm)) == {"batchItemFailures": []}
    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "skipped"
    stored = stack.records.last_event(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert stored is not None and stored["detail"]["event_id"] == "evt-0001"

    # a manual sync without force follows the settings again: still skipped, nothing in QBO
    assert stack.deliver(_command(firm, "client_account", "acct-100")) == {"batchItemFailures": []}
    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "skipped"
    assert _marked(stack.entities("Customer"), "ClientAccount", "acct-100") == []
    stack.published()

    # forced (manual sync of a skipped record): the same version is claimed again and syncs
    assert stack.deliver(_command(firm, "client_account", "acct-100", force=True)) == {
        "batchItemFailures": []
    }
    customers = _marked(stack.entities("Customer"), "ClientAccount", "acct-100")
    assert len(customers) == 1
    account = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert account is not None and account.status == "synced" and account.qbo_id == customers[0]["Id"]
    statuses = [
        (d["status"], d["correlation_id"]) for t, d in stack.published() if t == "Sync Status Changed"
    ]
    assert statuses == [("synced", "corr-manual")]

    # a manual sync of a synced record is a no-op
    before = _posts(stack)
    assert stack.deliver(_command(firm, "client_account", "acct-100", force=True)) == {
        "batchItemFailures": []
    }
    assert _posts(stack) == before
    assert len(_marked(stack.entities("Customer"), "ClientAccount", "acct-100")) == 1


def test_a_failed_record_is_resynced_by_a_command_after_the_fix(stack: SyncStack) -> None:
    firm = new_firm()
    _sync_prerequisites(stack, firm)
    assert stack.deliver(untaxed_invoice(firm)) == {"batchItemFailures": []}
    stack.set_settings(firm, sync_accounts="all", deposit_account_id="999999")  # no such account
    payment = platform_event(
        "payment_created", firm, amount="605.00", allocations=[{"invoice_id": "inv-400", "amount": "605.00"}]
    )
    assert stack.deliver(payment) == {"batchItemFailures": []}
    failed = stack.records.get(RecordKey(firm, stack.realm_id, "payment", "pay-500"))
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error.code == "deposit_account_missing"
    assert len(stack.errors.list(firm)[0]) == 1

    stack.set_settings(firm, sync_accounts="all")  # fixed: Undeposited Funds
    assert stack.deliver(_command(firm, "payment", "pay-500")) == {"batchItemFailures": []}
    synced = stack.records.get(RecordKey(firm, stack.realm_id, "payment", "pay-500"))
    assert synced is not None and synced.status == "synced" and synced.platform_version == 1
    assert len(_marked(stack.entities("Payment"), "Payment", "pay-500")) == 1
    assert stack.errors.list(firm)[0] == []


def test_a_credit_payment_is_applied_to_its_invoice_exactly_once(stack: SyncStack) -> None:
    firm = new_firm()
    _sync_prerequisites(stack, firm)
    assert stack.deliver(untaxed_invoice(firm)) == {"batchItemFailures": []}
    credit = platform_event(
        "payment_created",
        firm,
        id="pay-credit",
        amount="200.00",
        method="credit_balance",
        processor=None,
        reference=None,
        deposit=None,
        allocations=[{"invoice_id": "inv-400", "amount": "200.00"}],
    )
    records = [sqs_record(credit, message_id="m-credit")]
    # the CreditMemo is written, but every try of the application commits in QBO and its answer is lost
    stack.sim.control.inject_fault(
        "drop_after_commit", count=10, realm_id=stack.realm_id, method="POST", path_regex="/payment$"
    )
    try:
        assert stack.deliver_records(records) == {"batchItemFailures": [{"itemIdentifier": "m-credit"}]}
    finally:
        stack.sim.control.clear_faults()
    memo = stack.records.get(RecordKey(firm, stack.realm_id, "payment", "pay-credit"))
    assert memo is not None and memo.status == "synced" and memo.qbo_entity == "CreditMemo"
    pending = stack.records.get(RecordKey(firm, stack.realm_id, "credit_application", "pay-credit"))
    assert pending is not None and pending.status != "synced" and pending.intent is not None

    # redelivered twice: the application is adopted (found by its marker), never written again
    assert stack.deliver_records(records) == {"batchItemFailures": []}
    assert stack.deliver_records(records) == {"batchItemFailures": []}

    applications = _marked(stack.entities("Payment"), "CreditApplication", "pay-credit")
    assert len(applications) == 1
    assert Decimal(str(applications[0]["TotalAmt"])) == Decimal("0")
    memos = _marked(stack.entities("CreditMemo"), "Payment", "pay-credit")
    assert len(memos) == 1 and Decimal(str(memos[0]["RemainingCredit"])) == Decimal("0")
    invoice = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert invoice is not None
    balance = next(i["Balance"] for i in stack.entities("Invoice") if i["Id"] == invoice.qbo_id)
    assert Decimal(str(balance)) == Decimal("405.00")
    applied = stack.records.get(RecordKey(firm, stack.realm_id, "credit_application", "pay-credit"))
    assert applied is not None and applied.status == "synced" and applied.qbo_id == applications[0]["Id"]

    # deleting the payment deletes the application first, then the CreditMemo: the invoice is open again
    deleted = platform_event("payment_deleted", firm, id="pay-credit")
    assert stack.deliver(deleted) == {"batchItemFailures": []}
    assert _marked(stack.entities("Payment"), "CreditApplication", "pay-credit") == []
    assert _marked(stack.entities("CreditMemo"), "Payment", "pay-credit") == []
    balance = next(i["Balance"] for i in stack.entities("Invoice") if i["Id"] == invoice.qbo_id)
    assert Decimal(str(balance)) == Decimal("605.00")


class _Tokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise AssertionError("the simulator token was rejected")


def test_lines_on_the_sales_item_carry_the_service_name(stack: SyncStack) -> None:
    # no "Uncategorized Income" and no income account setting: services are billed on the "Sales" item
    issued = stack.sim.control.issue_tokens(stack.client_id, stack.realm_id)
    qbo = QboClient(
        base_url=stack.env["QBO_API_BASE_URL"],
        realm_id=stack.realm_id,
        tokens=_Tokens(issued["access_token"]),
    )
    account = qbo.query("SELECT * FROM Account WHERE Name = 'Uncategorized Income'")[0]
    qbo.update(
        "Account",
        {"Id": account["Id"], "SyncToken": account["SyncToken"], "Name": "Other Income (renamed)"},
        request_id=str(uuid.uuid4()),
    )
    firm = new_firm()
    _sync_prerequisites(stack, firm)
    service = stack.records.get(RecordKey(firm, stack.realm_id, "service", "svc-300"))
    sales = [i for i in stack.entities("Item") if i["Name"] == "Sales"]
    assert service is not None and service.status == "synced" and service.qbo_id == sales[0]["Id"]

    event = untaxed_invoice(firm)
    event["detail"]["data"]["line_items"][0]["description"] = None
    assert stack.deliver(event) == {"batchItemFailures": []}

    invoices = _marked(stack.entities("Invoice"), "Invoice", "inv-400")
    assert len(invoices) == 1
    lines = [ln for ln in invoices[0]["Line"] if ln.get("DetailType") == "SalesItemLineDetail"]
    assert lines[0]["SalesItemLineDetail"]["ItemRef"]["value"] == sales[0]["Id"]
    assert lines[0]["Description"] == "Bookkeeping (monthly)"
    assert lines[1]["Description"] == "Payroll run"  # a line's own description is kept
