"""POST /sync/records/payment/{platform_id}/unsync: a payment and its refunds leave QuickBooks once (C.4)."""

from __future__ import annotations

from typing import Any

from qbsync.outbound.mapping import parse_marker

from tests.integration.entity_sync.conftest import untaxed_invoice
from tests.integration.errorcenter.actions.conftest import Env, platform_event

UNSYNC = "/sync/records/payment/pay-500/unsync"


def _marked(objs: list[dict[str, Any]], entity: str, platform_id: str) -> list[dict[str, Any]]:
    return [o for o in objs if parse_marker(o.get("PrivateNote")) == (entity, platform_id)]


def _paid_and_refunded(env: Env) -> tuple[str, str]:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    payment = platform_event(
        "payment_created",
        env.firm,
        amount="605.00",
        allocations=[{"invoice_id": "inv-400", "amount": "605.00"}],
    )
    env.sync(untaxed_invoice(env.firm))
    env.sync(payment)
    env.sync(platform_event("refund_created", env.firm, invoice_id="inv-400"))
    payments = _marked(env.qbo("Payment"), "Payment", "pay-500")
    refunds = _marked(env.qbo("RefundReceipt"), "Refund", "ref-600")
    assert len(payments) == 1 and len(refunds) == 1
    assert env.record("refund", "ref-600").status == "synced"
    env.events()
    return payments[0]["Id"], refunds[0]["Id"]


def _deletes(env: Env) -> int:
    log = env.stack.sim.control.requests(env.realm, limit=500)
    return sum(1 for r in log if "operation=delete" in str(r.get("query") or r.get("url") or r.get("path")))


def test_unsync_deletes_refunds_then_the_payment_exactly_once(env: Env) -> None:
    payment_id, refund_id = _paid_and_refunded(env)

    answer = env.call("POST", UNSYNC)

    assert answer.status == 200, answer.body
    assert answer.json() == {
        "payment_id": "pay-500",
        "status": "unsynced",
        "deleted": [
            {
                "entity_type": "refund",
                "platform_id": "ref-600",
                "qbo_entity": "RefundReceipt",
                "qbo_id": refund_id,
                "outcome": "deleted",
            },
            {
                "entity_type": "payment",
                "platform_id": "pay-500",
                "qbo_entity": "Payment",
                "qbo_id": payment_id,
                "outcome": "deleted",
            },
        ],
    }
    assert _marked(env.qbo("Payment"), "Payment", "pay-500") == []
    assert _marked(env.qbo("RefundReceipt"), "Refund", "ref-600") == []
    invoice = next(i for i in env.qbo("Invoice") if i["Id"] == env.record("invoice", "inv-400").qbo_id)
    assert float(invoice["Balance"]) == 605.0  # the invoice is open again in QuickBooks
    for entity_type, pid in (("payment", "pay-500"), ("refund", "ref-600")):
        record = env.record(entity_type, pid)
        assert record.status == "not_synced" and record.qbo_id is None and record.platform_version == 1
        assert env.stack.records.find_by_qbo_id(env.realm, record.qbo_entity or "Payment", payment_id) is None
    statuses = sorted(
        (d["entity_type"], d["platform_id"], d["status"])
        for t, d in env.events()
        if t == "Sync Status Changed"
    )
    assert statuses == [("Payment", "pay-500", "not_synced"), ("Refund", "ref-600", "not_synced")]

    # a repeat deletes nothing and does not fail
    deletes = _deletes(env)
    assert deletes == 2
    again = env.call("POST", UNSYNC)
    assert (again.status, again.json()["status"], again.json()["deleted"]) == (200, "already_unsynced", [])
    assert _deletes(env) == deletes


def test_a_lost_delete_response_and_an_object_already_gone(env: Env) -> None:
    _, refund_id = _paid_and_refunded(env)
    # the refund receipt is deleted in QuickBooks by someone else first
    qbo = env.qbo_client()
    receipt = qbo.read("RefundReceipt", refund_id)
    qbo.delete("RefundReceipt", refund_id, receipt["SyncToken"], request_id="outside-delete-1")
    # every try of the payment delete commits in QuickBooks but its answer is lost
    env.stack.sim.control.inject_fault(
        "drop_after_commit", count=10, realm_id=env.realm, method="POST", path_regex="/payment$"
    )
    try:
        lost = env.call("POST", UNSYNC)
    finally:
        env.stack.sim.control.clear_faults()
    assert lost.status == 503, lost.body
    assert _marked(env.qbo("Payment"), "Payment", "pay-500") == []  # it was deleted; we do not know yet
    assert env.record("refund", "ref-600").status == "not_synced"
    assert env.record("payment", "pay-500").intent is not None

    # the repeat resends the same requestid: QuickBooks answers the original delete, nothing new is deleted
    again = env.call("POST", UNSYNC)

    assert again.status == 200, again.body
    assert [(d["platform_id"], d["outcome"]) for d in again.json()["deleted"]] == [("pay-500", "deleted")]
    payment = env.record("payment", "pay-500")
    assert payment.status == "not_synced" and payment.qbo_id is None and payment.intent is None


def test_refusals(env: Env) -> None:
    # never synced: the platform sent it, but its invoice never reached QuickBooks (blocked)
    env.sync(platform_event("payment_created", env.firm))
    refused = env.call("POST", UNSYNC)
    assert refused.status == 409 and refused.json()["message"] == "the payment is not synced to QuickBooks"
    assert env.call("POST", UNSYNC, role="staff").status == 403
    assert env.call("POST", UNSYNC, role="admin").status == 409
    other = "firm-other-" + env.firm[-4:]
    env.stack.connect(other)
    assert env.call("POST", UNSYNC, firm=other).status == 404
    assert env.call("POST", "/sync/records/payment/bad%23id/unsync").status in (400, 404)


def test_resync_after_unsync_creates_a_new_payment_not_a_replay_of_the_deleted_one(env: Env) -> None:
    """QBO replays a remembered requestid: the re-sync after an unsync must use a new one (epoch salt)."""
    payment_id, _ = _paid_and_refunded(env)
    assert env.call("POST", UNSYNC).status == 200
    assert env.call("POST", "/sync/records/payment/pay-500/sync").status == 202
    env.sync(*env.commands())
    rec = env.record("payment", "pay-500")
    live = _marked(env.qbo("Payment"), "Payment", "pay-500")

    assert rec.status == "synced"
    assert len(live) == 1 and rec.qbo_id == live[0]["Id"] and live[0]["Id"] != payment_id
    # and a second unsync deletes the new payment (its delete is not a replay of the first delete either)
    assert env.call("POST", UNSYNC).status == 200
    assert _marked(env.qbo("Payment"), "Payment", "pay-500") == []
