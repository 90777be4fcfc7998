"""``make demo`` step (issue 14 item 4-5): an invoice edited in QuickBooks shows up in the error center with
its actions. The demo firm's invoice (synced by the outbound step) is edited in QuickBooks as an accountant
would - the simulator's v3 API with a token of its own - and its webhook is lost (the simulator's "lose this
webhook" fault: built, never sent), so nobody notifies qbsync. The hourly ``CatchUpSchedule`` is fired; its
fan-out queues the firm's CDC catch-up on ``CatchUpQueue`` and ``CdcCatchUpFunction`` finds the edit. The
platform then sees the invoice "failed", and the error center shows the error with what changed (was/now)
and its actions; the owner pushes the platform's version again (Resync) and QuickBooks is back to the
platform's total.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from local.qbo_sim.client import SimAccountant

if TYPE_CHECKING:  # local.demo imports this module
    from local.demo import Demo

__all__ = ["DRIFT_CODES", "TITLE", "invoice_edited_in_quickbooks"]

#: the error codes of a record changed in QuickBooks (``qbsync.inbound.drift.DRIFT_CODES``; this module
#: imports nothing from ``qbsync``: ``python -m local.demo`` runs without ``layers/core`` on the path)
DRIFT_CODES = frozenset(
    {"edited_in_quickbooks", "deleted_in_quickbooks", "missing_in_quickbooks", "amount_mismatch"}
)

TITLE = "An invoice edited in QuickBooks shows up in the error center with its actions (CDC catch-up)"


def invoice_edited_in_quickbooks(demo: Demo, realm_id: str, invoice_id: str) -> str:
    """Run the step; returns the one-line result. Raises ``local.demo.DemoFailure`` (``demo.expect``) or
    RuntimeError when QuickBooks or the error center do not show what the step expects."""
    accountant = SimAccountant.sign_in(demo.sim, realm_id)
    invoice = _ours(demo, realm_id, invoice_id)
    lines = [dict(x) for x in invoice["Line"] if x.get("DetailType") == "SalesItemLineDetail"]
    detail = {**lines[-1]["SalesItemLineDetail"], "Qty": 1, "UnitPrice": 125}
    lines[-1] = {**lines[-1], "Amount": 125, "SalesItemLineDetail": detail}
    demo.sim.flush_webhooks()  # what is pending is delivered first: the notification lost is this edit's
    lost_before = _lost(demo.sim.webhook_deliveries(), realm_id)
    demo.sim.lose_webhooks(count=1, realm_id=realm_id)
    accountant.update("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "Line": lines})
    lost = _lost(demo.sim.flush_webhooks(), realm_id)[len(lost_before) :]
    if [c["id"] for d in lost for c in d["changes"]] != [invoice["Id"]]:
        raise RuntimeError(f"expected the edit's webhook to be lost, the simulator lost {lost}")
    _say(f"accountant edits invoice {invoice['Id']} in QuickBooks; its webhook is lost (never sent)")

    failed_before = demo.statuses[("Invoice", invoice_id, "failed")]
    schedule = demo.stack.schedule_id_for("CdcCatchUpFunction")
    demo.stack.fire_schedule(schedule)
    _say(f"{schedule} fired: one catch-up per connected firm queued")
    demo.wait_for_status("Invoice", invoice_id, "failed", at_least=failed_before + 1)

    listed = demo.expect(demo.api("GET", "/errors?category=Invoices&status=open"), 200)["errors"]
    mine = [e for e in listed if e["platform_id"] == invoice_id and e["code"] == "edited_in_quickbooks"]
    if len(mine) != 1:
        raise RuntimeError(f"expected one edited_in_quickbooks error, got {listed}")
    error = demo.expect(demo.api("GET", f"/errors/{mine[0]['error_id']}"), 200)
    _say(f"GET /errors/{error['error_id']} -> {error['title']!r}")
    _say(f"  explanation: {error['explanation']}")
    _say(f"  fix: {error['fix']}")
    refused = demo.expect(demo.api("POST", f"/errors/{error['error_id']}/accept-quickbooks"), 409)
    _say(f"  POST .../accept-quickbooks -> 409 {refused['message'][:80]!r}")

    synced_before = demo.statuses[("Invoice", invoice_id, "synced")]
    demo.expect(demo.api("POST", f"/errors/{error['error_id']}/resync"), 202)
    demo.wait_for_status("Invoice", invoice_id, "synced", at_least=synced_before + 1)
    total = Decimal(str(_ours(demo, realm_id, invoice_id)["TotalAmt"]))
    if total != Decimal("605.00"):
        raise RuntimeError(f"after the push QuickBooks has {total}, not 605.00")
    _say("  POST .../resync (push the platform's version again) -> synced, QuickBooks total 605.00")
    return f"edit caught by CDC -> error {error['code']} with Resync / Unlink; pushed back to {total}"


def _ours(demo: Demo, realm_id: str, invoice_id: str) -> dict[str, Any]:
    notes = f"qbsync:Invoice:{invoice_id}"
    found = [i for i in demo.sim.entities(realm_id, "Invoice") if notes in str(i.get("PrivateNote") or "")]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} QuickBooks invoices carry {notes}")
    return found[0]


def _lost(deliveries: list[dict[str, Any]], realm_id: str) -> list[dict[str, Any]]:
    return [d for d in deliveries if d.get("outcome") == "lost" and d.get("realm_id") == realm_id]


def _say(line: str) -> None:
    print(f"     {line}", flush=True)
