"""``make demo`` step (issue 15 item 5): the accountant changes QuickBooks behind qbsync's back; the scheduled
resync's drift report finds each difference; the owner fixes them through the admin API; the next report is
clean.

After the sample firm synced and its errors were fixed, the accountant works in QuickBooks (the simulator's
v3 API with a token of their own) on three of the firm's synced records, each change's webhook lost (the
simulator's "lose this webhook" fault: built, never sent), so nobody notifies qbsync:

* an invoice's last line amount is raised by 10.00 (``amount_mismatch``);
* a payment is deleted (``deleted_in_quickbooks``: the resync's CDC catch-up sees the deletion before its
  drift report runs);
* a client's customer gets another email (``edited_in_quickbooks``: the field is named, never shown).

The hourly ``CatchUpSchedule`` is fired (the real fan-out: ``CatchUpQueue`` -> ``CdcCatchUpFunction`` ->
the firm's Resync: CDC catch-up, sweep, pre-flight, drift report) and ``GET /drift`` is polled until the
firm's report is newer than the one taken before the changes. Each finding is printed (kind, record id,
was/now to the cent) and must be exactly what was injected: each change once with its kind, and derived
findings (an invoice's paid status, a customer's balance) only when ``explained_by`` names a changed record.
Each record finding is fixed with its error's Resync (``POST /errors/{id}/resync``: QuickBooks gets the
platform's version again; the deleted payment is created again, once); the step waits for each record's
"Sync Status Changed: synced" on the platform's inbox and runs ``POST /drift/run``: it must be clean.

The firm's health (``GET /health``) is the step's last line once that route exists: see
:func:`reconcile_sample_firm`.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from local.qbo_sim.client import SimAccountant

if TYPE_CHECKING:  # local.demo imports this module
    from local.demo import Demo
    from local.sample_firm import SampleFirm

__all__ = ["TITLE", "ReconcileDemoFailure", "reconcile_sample_firm"]

TITLE = (
    "Accountant changes QuickBooks behind qbsync's back; the scheduled resync's drift report finds each "
    "difference; the owner fixes them; the next report is clean"
)
#: how long the step waits for the scheduled run's report, and for each fixed record to sync again
REPORT_TIMEOUT_SECONDS = 120.0
FIX_TIMEOUT_SECONDS = 120.0
#: the admin API's record types -> the event contract's (``local.sample_firm.API_TYPE`` reversed)
_EVENT_TYPE = {"client_account": "ClientAccount", "invoice": "Invoice", "payment": "Payment"}
_DERIVED = frozenset({"paid_status_mismatch", "balance_mismatch"})
_RAISE = Decimal("10.00")


class ReconcileDemoFailure(Exception):
    """The drift report or the fixes did not show what the step injected (``local.demo`` makes it a
    DemoFailure)."""


def reconcile_sample_firm(demo: Demo, sample: SampleFirm) -> str:
    """Run the step; returns the one-line result. Raises ReconcileDemoFailure (or ``local.demo.DemoFailure``
    through ``demo.expect``) when a report or a fix does not show what the step expects."""
    realm = demo.realm_b
    invoice, payment, account = _pick(sample)
    before = demo.expect(demo.api("POST", "/drift/run"), 200)
    known = _all_findings(demo, before)
    _say(
        f"POST /drift/run before the changes -> {len(known)} finding(s) known already "
        f"({before['records_compared']} records compared)"
    )
    for f in known:  # what the earlier steps left: not the accountant's, and still there at the end
        _say(_finding_line(f))
    baseline = {_identity(f) for f in known}

    # 1. the accountant, in QuickBooks, each change's webhook lost
    accountant = SimAccountant.sign_in(demo.sim, realm)
    injected = {
        ("invoice", invoice["id"]): "amount_mismatch",
        ("payment", payment["id"]): "deleted_in_quickbooks",
        ("client_account", account["id"]): "edited_in_quickbooks",
    }
    qbo_id = {key: _qbo_id(demo, *key) for key in injected}
    was, now = _raise_last_line(demo, accountant, qbo_id[("invoice", invoice["id"])])
    _say(f"accountant: invoice {invoice['id']} line amount {was} -> {now} in QuickBooks; webhook lost")
    paid = {("Invoice", _qbo_id(demo, "invoice", payment["allocations"][0]["invoice_id"]))}
    pay_qbo = qbo_id[("payment", payment["id"])]
    # a payment's deletion also updates the invoice it paid (its balance): one notification, both lost
    _unnotified(demo, ("Payment", pay_qbo), lambda: _delete(accountant, "Payment", pay_qbo), also=paid)
    _say(f"accountant: payment {payment['id']} ({payment['amount']}) deleted in QuickBooks; webhook lost")
    cust_qbo = qbo_id[("client_account", account["id"])]
    _unnotified(demo, ("Customer", cust_qbo), lambda: _new_email(accountant, cust_qbo))
    _say(f"accountant: client account {account['id']}'s customer gets another email; webhook lost")

    # 2. the scheduled resync (the real fan-out) and its drift report
    schedule = demo.stack.schedule_id_for("CdcCatchUpFunction")
    demo.stack.fire_schedule(schedule)
    report = _newer_report(demo, before["report_id"])
    findings = [f for f in _all_findings(demo, report) if _identity(f) not in baseline]
    _say(
        f"{schedule} fired -> drift report {report['report_id']}: {len(findings)} new finding(s), "
        f"{report['records_compared']} records compared in {report['qbo_queries']} QuickBooks queries"
    )
    for f in findings:
        _say(_finding_line(f))

    # 3. exactly what was injected: each change once with its kind, derived findings explained by them
    record = [f for f in findings if f["kind"] not in _DERIVED]
    got = sorted((f["entity_type"], f["platform_id"], f["kind"]) for f in record)
    if got != sorted((t, p, k) for (t, p), k in injected.items()):
        raise ReconcileDemoFailure(f"the report found {got}, the accountant made {sorted(injected.items())}")
    unexplained = _unexplained([f for f in findings if f["kind"] in _DERIVED], injected)
    if unexplained:
        raise ReconcileDemoFailure(f"derived findings not explained by the changes: {_kinds(unexplained)}")
    if any(not f["error_id"] or "resync" not in f["actions"] for f in record):
        raise ReconcileDemoFailure(f"a record finding has no error with Resync: {_kinds(record)}")

    # 4. the owner fixes each with its error's Resync; each record syncs again
    deadline = time.monotonic() + FIX_TIMEOUT_SECONDS
    for f in record:
        entity = _EVENT_TYPE[f["entity_type"]]
        synced_before = demo.statuses[(entity, f["platform_id"], "synced")]
        demo.expect(demo.api("POST", f"/errors/{f['error_id']}/resync"), 202)
        demo.wait_for_status(
            entity,
            f["platform_id"],
            "synced",
            at_least=synced_before + 1,
            timeout=max(1.0, deadline - time.monotonic()),
        )
        _say(f"POST /errors/{f['error_id']}/resync -> 202; {f['entity_type']} {f['platform_id']} synced")
    _check_quickbooks(demo, invoice, payment)

    # 5. the next report is clean
    after = demo.expect(demo.api("POST", "/drift/run"), 200)
    left = [f for f in _all_findings(demo, after) if _identity(f) not in baseline]
    if left:
        raise ReconcileDemoFailure(f"the report after the fixes is not clean: {_kinds(left)}")
    _say(
        f"POST /drift/run after the fixes -> clean of the changes ({after['records_compared']} records "
        f"compared; {after['finding_count']} finding(s), the {len(known)} known before)"
    )
    # 6. the firm's health, as the owner reads it after the fixes
    health = demo.expect(demo.api("GET", "/health"), 200)
    _say(_health_line(health))
    derived = len(findings) - len(record)
    return (
        f"{len(record)} differences found by the scheduled drift report (+{derived} derived, explained) "
        f"and fixed through the API; second report clean ({len(known)} known before the changes kept)"
    )


def _health_line(health: dict[str, Any]) -> str:
    """GET /health in one line: level and reasons, lag, counts, budget used, days left on the tokens."""
    lag, records, budget, tokens = (
        health["lag"],
        health["records"],
        health.get("budget"),
        health.get("tokens"),
    )
    reasons = ", ".join(str(r) for r in health.get("reasons") or []) or "none"
    parts = [
        f"GET /health -> {health['level']} (reasons: {reasons})",
        f"lag p50/p95 {_seconds(lag.get('p50_seconds'))}/{_seconds(lag.get('p95_seconds'))} "
        f"over {lag['samples']} records of the last hour",
        f"failed {records['failed']}, blocked {records['blocked']}, dead letters {health['dead_letters']}",
    ]
    if budget:
        parts.append(
            f"QuickBooks requests {budget['last_hour']} in the last hour (peak {budget['peak_minute']}/min "
            f"of {budget['limit_per_minute']})"
        )
    if tokens and tokens.get("idle_days_left") is not None:
        parts.append(f"refresh token idle expiry in {tokens['idle_days_left']:.0f} days")
    return "; ".join(parts)


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


# ---- choosing the records --------------------------------------------------------------------------------


def _pick(sample: SampleFirm) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An untaxed invoice, a payment (one allocation, no refund or fee of its own) and a client account
    that synced in the sample firm's first run, each of another client, so their findings do not touch."""
    synced = sample.expected_synced
    linked = {
        str(r.get("payment_id")) for kind in ("Refund", "ProcessingFee") for r in sample.records.get(kind, [])
    }
    payments = [
        p
        for p in sample.records["Payment"]
        if ("Payment", p["id"]) in synced
        and len(p["allocations"]) == 1
        and p["id"] not in linked
        and p.get("method") != "credit_balance"
    ]
    if not payments:
        raise ReconcileDemoFailure("the sample firm has no synced single-allocation payment")
    payment = payments[-1]
    invoices = [
        i
        for i in sample.records["Invoice"]
        if ("Invoice", i["id"]) in synced
        and i["account_id"] != payment["account_id"]
        and all(line.get("tax_rate_id") is None for line in i["line_items"])
    ]
    if not invoices:
        raise ReconcileDemoFailure("the sample firm has no synced untaxed invoice of another client")
    invoice = invoices[-1]
    used = {payment["account_id"], invoice["account_id"]}
    accounts = [
        a
        for a in sample.records["ClientAccount"]
        if ("ClientAccount", a["id"]) in synced and a["id"] not in used and a.get("email")
    ]
    if not accounts:
        raise ReconcileDemoFailure("the sample firm has no third synced client account with an email")
    return invoice, payment, accounts[-1]


def _qbo_id(demo: Demo, api_type: str, platform_id: str) -> str:
    row = demo.expect(demo.api("GET", f"/sync/records/{api_type}/{platform_id}"), 200)
    if row["status"] != "synced" or not row.get("qbo_id"):
        raise ReconcileDemoFailure(f"{api_type} {platform_id} is {row['status']}, not synced")
    return str(row["qbo_id"])


# ---- the accountant's changes ----------------------------------------------------------------------------


def _raise_last_line(demo: Demo, accountant: SimAccountant, qbo_id: str) -> tuple[Decimal, Decimal]:
    invoice = accountant.read("Invoice", qbo_id)
    lines = [dict(x) for x in invoice["Line"] if x.get("DetailType") == "SalesItemLineDetail"]
    was = Decimal(str(lines[-1]["Amount"])).quantize(Decimal("0.01"))
    now = was + _RAISE
    detail = {**lines[-1]["SalesItemLineDetail"], "Qty": 1, "UnitPrice": float(now)}
    lines[-1] = {**lines[-1], "Amount": float(now), "SalesItemLineDetail": detail}
    body = {"Id": qbo_id, "SyncToken": invoice["SyncToken"], "Line": lines}
    _unnotified(demo, ("Invoice", qbo_id), lambda: accountant.update("Invoice", body))
    return was, now


def _delete(accountant: SimAccountant, entity: str, qbo_id: str) -> None:
    accountant.delete(entity, qbo_id, str(accountant.read(entity, qbo_id)["SyncToken"]))


def _new_email(accountant: SimAccountant, qbo_id: str) -> None:
    customer = accountant.read("Customer", qbo_id)
    accountant.update(
        "Customer",
        {
            "Id": qbo_id,
            "SyncToken": customer["SyncToken"],
            "PrimaryEmailAddr": {"Address": f"accounts-{qbo_id}@changed-in-quickbooks.example"},
        },
    )


def _unnotified(
    demo: Demo,
    changed: tuple[str, str],
    change: Any,
    also: frozenset[tuple[str, str]] | set[Any] = frozenset(),
) -> None:
    """Make ``change()`` with the company's next notification lost; checks that the lost one is this
    change's: the ``changed`` (entity, QuickBooks id), and ``also`` the objects QuickBooks changed with it
    (what was pending is delivered first)."""
    realm = demo.realm_b
    demo.sim.flush_webhooks()
    lost_before = len(_lost(demo.sim.webhook_deliveries(), realm))
    demo.sim.lose_webhooks(count=1, realm_id=realm)
    change()
    lost = _lost(demo.sim.flush_webhooks(), realm)[lost_before:]
    ids = [(c["name"], c["id"]) for d in lost for c in d["changes"]]
    if changed not in ids or not set(ids) <= {changed, *also} or len(set(ids)) != len(ids):
        raise ReconcileDemoFailure(f"expected the webhook of QuickBooks {changed} lost, got {lost}")


def _lost(deliveries: list[dict[str, Any]], realm_id: str) -> list[dict[str, Any]]:
    return [d for d in deliveries if d.get("outcome") == "lost" and d.get("realm_id") == realm_id]


# ---- reading the reports ---------------------------------------------------------------------------------


def _newer_report(demo: Demo, report_id: str) -> dict[str, Any]:
    """``GET /drift`` once the firm's newest report is not ``report_id`` (the scheduled run's), paced by
    long-polling the platform's inbox (the run announces the records it marks failed)."""
    deadline = time.monotonic() + REPORT_TIMEOUT_SECONDS
    while True:
        latest: dict[str, Any] = demo.expect(demo.api("GET", "/drift"), 200)
        if latest["report_id"] > report_id:
            return latest
        if time.monotonic() >= deadline:
            raise ReconcileDemoFailure(
                f"no drift report newer than {report_id} within {REPORT_TIMEOUT_SECONDS:.0f}s"
            )
        demo._poll_inbox(wait_seconds=1)


def _all_findings(demo: Demo, first: dict[str, Any]) -> list[dict[str, Any]]:
    findings = list(first["findings"])
    cursor = first.get("next_cursor")
    while cursor:
        page = demo.expect(demo.api("GET", f"/drift?cursor={cursor}"), 200)
        findings += page["findings"]
        cursor = page.get("next_cursor")
    return findings


def _finding_line(f: dict[str, Any]) -> str:
    diffs = "; ".join(
        f"{d['field']} was {d['was']}, now {d['now']}"
        if d["was"] is not None or d["now"] is not None
        else f"{d['field']} changed (client data: named, not shown)"
        for d in f["differences"]
    )
    why = f" (explained by {', '.join(f['explained_by'])})" if f["explained_by"] else ""
    error = f" error {f['error_id']} [{'/'.join(f['actions'])}]" if f["error_id"] else ""
    what = diffs or "its QuickBooks object is gone"
    return f"  {f['kind']:<22} {f['entity_type']} {f['platform_id']}: {what}{why}{error}"


def _unexplained(derived: list[dict[str, Any]], injected: Any) -> list[dict[str, Any]]:
    """The derived findings not explained by the changes: each names what explains it, a changed record or
    a record whose derived finding is (a customer's balance follows its invoice's paid status, which
    follows the deleted payment)."""
    explained = {f"{t}#{p}" for t, p in injected}
    pending = list(derived)
    while True:
        now = [f for f in pending if f["explained_by"] and set(f["explained_by"]) <= explained]
        if not now:
            return pending
        explained |= {f"{f['entity_type']}#{f['platform_id']}" for f in now}
        pending = [f for f in pending if f not in now]


def _identity(f: dict[str, Any]) -> tuple[Any, ...]:
    """A finding's kind, record, differences and explanation (``GET /drift`` does not show fingerprints)."""
    diffs = tuple((d["field"], d["was"], d["now"]) for d in f["differences"])
    return (f["kind"], f["entity_type"], f["platform_id"], diffs, tuple(f["explained_by"]))


def _kinds(findings: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(f["kind"], f["entity_type"], f["platform_id"]) for f in findings]


def _check_quickbooks(demo: Demo, invoice: dict[str, Any], payment: dict[str, Any]) -> None:
    """QuickBooks after the fixes: the invoice at the platform's total, the payment there once."""
    realm = demo.realm_b
    inv_qbo = _qbo_id(demo, "invoice", invoice["id"])
    found = [i for i in demo.sim.entities(realm, "Invoice") if i["Id"] == inv_qbo]
    if len(found) != 1 or Decimal(str(found[0]["TotalAmt"])) != Decimal(invoice["total"]):
        raise ReconcileDemoFailure(f"invoice {invoice['id']} in QuickBooks is not at {invoice['total']}")
    marker = f"qbsync:Payment:{payment['id']}"
    tagged = re.compile(re.escape(marker) + r"(?=$|[\s;,)])")
    ours = [p for p in demo.sim.entities(realm, "Payment") if tagged.search(str(p.get("PrivateNote") or ""))]
    if len(ours) != 1:
        raise ReconcileDemoFailure(f"{len(ours)} QuickBooks payments carry {marker} after the resync")


def _say(line: str) -> None:
    print(f"     {line}", flush=True)
