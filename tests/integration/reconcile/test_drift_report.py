"""The drift report (PRODUCT.md J.3, issue 15 item 2) through the real admin API handler and entity-sync
worker on moto + the simulator. QuickBooks is changed as an accountant would, through the simulator's v3 API;
no webhook and no CDC catch-up runs, so every difference here is one the report has to find itself."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qbsync import wiring
from qbsync.models.commands import SyncCommand
from qbsync.outbound.mapping import parse_marker
from qbsync.reconcile.report import DriftReportStep

from tests.fixtures.events import EventCapture
from tests.integration.entity_sync.conftest import untaxed_invoice
from tests.integration.errorcenter.actions.conftest import Env, platform_event
from tests.integration.inbound.test_drift import catch_up


def _ours(env: Env, entity: str, marker: str, platform_id: str) -> dict[str, Any]:
    found = [
        o
        for o in env.qbo(entity)
        if parse_marker(o.get("PrivateNote") or o.get("Notes")) == (marker, platform_id)
    ]
    assert len(found) == 1, found
    return found[0]


def _invoice(env: Env, platform_id: str, number: str) -> dict[str, Any]:
    event = untaxed_invoice(env.firm, number=number)
    event["detail"]["data"]["id"] = platform_id
    event["id"] = str(uuid.uuid4())
    event["detail"]["event_id"] = f"evt-{platform_id}"
    return event


def _synced_firm(env: Env, invoices: int = 2) -> None:
    """acct-100, svc-300, invoices inv-400.. (605.00 each) and pay-500 paying inv-401 in full."""
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    env.sync(*[_invoice(env, f"inv-{400 + i}", f"INV-{1042 + i}") for i in range(invoices)])
    env.sync(
        platform_event(
            "payment_created",
            env.firm,
            amount="605.00",
            allocations=[{"invoice_id": "inv-401", "amount": "605.00"}],
        )
    )
    for entity_type, pid in (("client_account", "acct-100"), ("service", "svc-300"), ("payment", "pay-500")):
        assert env.record(entity_type, pid).status == "synced", entity_type
    for i in range(invoices):
        assert env.record("invoice", f"inv-{400 + i}").status == "synced"
    env.events()


def _run(env: Env) -> dict[str, Any]:
    answer = env.call("POST", "/drift/run")
    assert answer.status == 200, answer.body
    return answer.json()


def _kinds(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["entity_type"], f["platform_id"], f["kind"]) for f in report["findings"]}


def _finding(report: dict[str, Any], entity_type: str, platform_id: str) -> dict[str, Any]:
    (found,) = [
        f for f in report["findings"] if (f["entity_type"], f["platform_id"]) == (entity_type, platform_id)
    ]
    return found


def _diffs(finding: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(d["field"], d["was"], d["now"]) for d in finding["differences"]]


def _resync(env: Env, entity_type: str, platform_id: str) -> None:
    """What the error center's Resync enqueues for the record (the retry fan-out's SyncCommand)."""
    command = SyncCommand(
        firm_id=env.firm,
        entity_type=entity_type,  # type: ignore[arg-type]
        platform_id=platform_id,
        reason="resync_error",
        request_id=f"resync-{platform_id}",
    )
    env.sync(command.model_dump())


def _drift_events(capture: EventCapture, firm: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in capture.drain() if e["detail"]["firm_id"] == firm]


def _inject_every_kind(env: Env) -> None:
    qbo = env.qbo_client()
    invoice = _ours(env, "Invoice", "Invoice", "inv-400")
    lines = [dict(x) for x in invoice["Line"] if x.get("DetailType") == "SalesItemLineDetail"]
    detail = {**lines[-1]["SalesItemLineDetail"], "Qty": 1, "UnitPrice": 80.01}
    lines[-1] = {**lines[-1], "Amount": 80.01, "SalesItemLineDetail": detail}
    qbo.update(
        "Invoice",
        {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "Line": lines},
        request_id="acct-1",
        sparse=True,
    )
    payment = _ours(env, "Payment", "Payment", "pay-500")
    qbo.delete("Payment", payment["Id"], payment["SyncToken"], request_id="acct-2")
    item = next(i for i in env.qbo("Item") if i["Id"] == env.record("service", "svc-300").qbo_id)
    qbo.update(
        "Item",
        {"Id": item["Id"], "SyncToken": item["SyncToken"], "Name": "Renamed service"},
        request_id="acct-3",
        sparse=True,
    )


def test_each_kind_of_drift_is_reported_exactly_and_fixed_by_its_action(
    env: Env, qbsync_events: Callable[..., EventCapture]
) -> None:
    drift_events = qbsync_events("Drift Detected")
    drift_events.drain()
    _synced_firm(env)
    assert _run(env)["findings"] == []  # everything matches: a clean report
    assert _drift_events(drift_events, env.firm) == []
    _inject_every_kind(env)

    report = _run(env)

    assert _kinds(report) == {
        ("invoice", "inv-400", "amount_mismatch"),
        ("payment", "pay-500", "missing_in_quickbooks"),
        ("invoice", "inv-401", "paid_status_mismatch"),
        ("client_account", "acct-100", "balance_mismatch"),
        ("service", "svc-300", "edited_in_quickbooks"),
    }
    amount = _finding(report, "invoice", "inv-400")
    assert _diffs(amount) == [
        ("total", "605.00 USD", "605.01 USD"),
        ("line 2 amount", "80.00 USD", "80.01 USD"),
    ]
    assert amount["actions"] == ["resync", "unlink"] and amount["new"] is True
    missing = _finding(report, "payment", "pay-500")
    assert missing["actions"] == ["resync", "relink", "unlink"] and missing["qbo_id"]
    paid = _finding(report, "invoice", "inv-401")
    assert _diffs(paid) == [("balance", "0.00 USD", "605.00 USD"), ("paid status", "paid", "open")]
    assert paid["explained_by"] == ["payment#pay-500"] and paid["error_id"] is None
    balance = _finding(report, "client_account", "acct-100")
    assert _diffs(balance) == [("balance", "605.00 USD", "1210.01 USD")]
    assert set(balance["explained_by"]) == {"invoice#inv-400", "invoice#inv-401", "payment#pay-500"}
    assert _diffs(_finding(report, "service", "svc-300")) == [
        ("name", "Bookkeeping (monthly)", "Renamed service")
    ]
    # Customer, Item, Invoice, Payment, and what QuickBooks alone holds for the one client whose balance
    # differs (its credits, credit memos and invoices: one query each)
    assert report["new_count"] == 5 and report["qbo_queries"] == 7

    # one error-center entry per record finding, with the finding's code; the record failed
    entries, _ = env.stack.errors.list(env.firm, status="open")
    by_record = {(e.entity_type, e.platform_id): e for e in entries}
    assert {k: e.code for k, e in by_record.items()} == {
        ("invoice", "inv-400"): "amount_mismatch",
        ("payment", "pay-500"): "missing_in_quickbooks",
        ("service", "svc-300"): "edited_in_quickbooks",
    }
    assert "total was 605.00 USD, now 605.01 USD" in by_record[("invoice", "inv-400")].explanation
    assert by_record[("payment", "pay-500")].explanation.startswith("The payment is missing in QuickBooks")
    assert amount["error_id"] == by_record[("invoice", "inv-400")].error_id
    assert env.record("payment", "pay-500").qbo_id is None  # the push creates a new one
    (event,) = _drift_events(drift_events, env.firm)
    assert event["new_count"] == 5 and event["open_count"] == 5 and event["report_id"] == report["report_id"]
    assert {(f["platform_id"], f["kind"]) for f in event["new_findings"]} >= {("inv-400", "amount_mismatch")}

    # the same data again: the same findings, none new, no event, no second entry
    again = _run(env)
    assert _kinds(again) == _kinds(report) and again["new_count"] == 0
    assert not any(f["new"] for f in again["findings"])
    assert _drift_events(drift_events, env.firm) == []
    entries, _ = env.stack.errors.list(env.firm, status="open")
    assert len(entries) == 3 and all(e.attempts == 1 for e in entries)
    stored = env.call("GET", "/drift")
    assert stored.status == 200 and stored.json()["report_id"] == again["report_id"]
    assert _kinds(stored.json()) == _kinds(report)
    assert stored.json()["finding_count"] == 5 and stored.json()["next_cursor"] is None
    pages, cursor = [], None
    while True:  # a page at a time
        page = env.call(
            "GET", "/drift", query={"limit": "2", **({"cursor": cursor} if cursor else {})}
        ).json()
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p["findings"]) for p in pages] == [2, 2, 1]
    assert {(f["entity_type"], f["platform_id"], f["kind"]) for p in pages for f in p["findings"]} == _kinds(
        report
    )
    older = f"{report['report_id']}.2"  # a cursor of the first report, not the latest
    refused = env.call("GET", "/drift", query={"cursor": older})
    assert refused.status == 400 and "query.cursor" in refused.json()["message"]
    for name, bad in (("limit", "0"), ("limit", "501"), ("limit", "x"), ("cursor", ".."), ("cursor", "abc")):
        answer = env.call("GET", "/drift", query={name: bad})
        assert answer.status == 400 and f"query.{name}" in answer.json()["message"], (name, bad, answer.body)

    # each fix: Resync the amount and the missing payment, Unlink the edited service
    _resync(env, "invoice", "inv-400")
    _resync(env, "payment", "pay-500")
    unlinked = env.call("POST", f"/errors/{by_record[('service', 'svc-300')].error_id}/unlink")
    assert unlinked.status == 200, unlinked.body
    assert float(_ours(env, "Invoice", "Invoice", "inv-400")["TotalAmt"]) == 605.0
    assert _ours(env, "Payment", "Payment", "pay-500")["Id"] != missing["qbo_id"]

    clean = _run(env)
    assert clean["findings"] == [] and clean["new_count"] == 0
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    assert _drift_events(drift_events, env.firm) == []


def test_relink_links_a_missing_record_to_the_object_the_accountant_re_entered(env: Env) -> None:
    _synced_firm(env)
    qbo = env.qbo_client()
    original = _ours(env, "Invoice", "Invoice", "inv-400")
    qbo.delete("Invoice", original["Id"], original["SyncToken"], request_id="acct-del")
    keep = ("CustomerRef", "TxnDate", "DueDate", "DocNumber", "CurrencyRef")
    body = {k: original[k] for k in keep if k in original}
    body["Line"] = [
        {k: v for k, v in line.items() if k not in ("Id", "LineNum")}
        for line in original["Line"]
        if line.get("DetailType") == "SalesItemLineDetail"
    ]
    re_entered = qbo.create("Invoice", body, request_id="acct-new")
    report = _run(env)
    # the re-entered invoice carries the balance: the customer's balance still matches
    assert _kinds(report) == {("invoice", "inv-400", "missing_in_quickbooks")}
    error_id = _finding(report, "invoice", "inv-400")["error_id"]
    other_invoice = env.record("invoice", "inv-401").qbo_id
    customer = env.record("client_account", "acct-100").qbo_id

    for bad, field_named in (
        ({"qbo_id": "999999"}, "body.qbo_id"),  # no such object
        ({"qbo_id": customer}, "body.qbo_id"),  # exists, but as a Customer, not an Invoice
        ({"qbo_id": other_invoice}, "body.qbo_id"),  # linked to another record
        ({"qbo_id": 145}, "body.qbo_id"),  # not a string
        ({"qbo_id": re_entered["Id"], "extra": 1}, "body.extra"),
        ({}, "body.qbo_id"),
    ):
        answer = env.call("POST", f"/errors/{error_id}/relink", body=bad)
        assert answer.status == 400, (bad, answer.status, answer.body)
        assert field_named in answer.json()["message"], (bad, answer.body)
    assert (
        env.call("POST", f"/errors/{error_id}/relink", body={"qbo_id": re_entered["Id"]}, role="staff").status
        == 403
    )
    other_firm = env.call(
        "POST", f"/errors/{error_id}/relink", body={"qbo_id": re_entered["Id"]}, firm="firm-other"
    )
    assert other_firm.status == 404

    answer = env.call("POST", f"/errors/{error_id}/relink", body={"qbo_id": re_entered["Id"]})

    assert answer.status == 200, answer.body
    assert answer.json()["outcome"] == "relinked" and answer.json()["record_status"] == "synced"
    record = env.record("invoice", "inv-400")
    assert record.status == "synced" and record.qbo_id == re_entered["Id"]
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    assert env.call("POST", f"/errors/{error_id}/relink", body={"qbo_id": re_entered["Id"]}).status == 409
    assert _run(env)["findings"] == []


def _queries(env: Env) -> list[dict[str, Any]]:
    return [
        r
        for r in env.stack.sim.control.requests(env.realm, limit=5000)
        if r.get("method") == "POST" and str(r.get("path", "")).endswith("/query")
    ]


def test_the_report_reads_quickbooks_in_batches_not_once_per_record(env: Env) -> None:
    _synced_firm(env, invoices=6)
    before = _queries(env)

    report = wiring.drift_reports().run(env.firm)  # the scheduled resync's entry point

    after = _queries(env)
    read = after[len(before) :] if len(before) < 5000 else after
    assert report.records_compared == 9  # account, service, 6 invoices, payment
    assert report.qbo_queries == len(read) == 4  # one per entity present, whatever the number of records


def test_drift_routes_are_owner_or_admin_and_strict(env: Env) -> None:
    assert env.call("GET", "/drift").status == 404  # connected, never ran
    assert env.call("POST", "/drift/run", role="staff").status == 403
    assert env.call("GET", "/drift", role="staff").status == 403
    assert env.call("GET", "/drift", firm="firm-not-connected").status == 409
    assert env.call("POST", "/drift/run", firm="firm-not-connected").status == 409


def test_records_the_platform_voided_or_deleted_are_not_drift(env: Env) -> None:
    _synced_firm(env)
    env.sync(platform_event("invoice_voided", env.firm), platform_event("payment_deleted", env.firm))
    assert env.record("invoice", "inv-400").applied_op == "void"
    assert env.record("payment", "pay-500").applied_op == "delete"

    report = _run(env)

    # QuickBooks voided inv-400 and deleted pay-500 as the platform asked: inv-401 is open on both sides
    assert report["findings"] == []
    assert report["records_compared"] == 3  # account, service, inv-401


def test_an_edit_undone_in_quickbooks_resolves_its_error_on_the_next_report(env: Env) -> None:
    _synced_firm(env)
    qbo = env.qbo_client()
    invoice = _ours(env, "Invoice", "Invoice", "inv-401")
    qbo.update(
        "Invoice",
        {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "TxnDate": "2026-03-09"},
        request_id="acct-1",
        sparse=True,
    )
    report = _run(env)
    assert _kinds(report) == {("invoice", "inv-401", "edited_in_quickbooks")}
    assert _diffs(_finding(report, "invoice", "inv-401"))[0][0] == "issue date"
    edited = _ours(env, "Invoice", "Invoice", "inv-401")
    qbo.update(
        "Invoice",
        {"Id": edited["Id"], "SyncToken": edited["SyncToken"], "TxnDate": invoice["TxnDate"]},
        request_id="acct-2",
        sparse=True,
    )

    assert _run(env)["findings"] == []

    assert env.record("invoice", "inv-401").status == "synced"
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    resolved = [d for t, d in env.events() if t == "Sync Error Resolved"]
    assert [d["resolution"] for d in resolved] == ["matched_again"]


def test_a_credit_payment_and_a_partial_payment_balance_to_the_cent(env: Env) -> None:
    """A payment from the client's credit is a CreditMemo applied by a zero payment; a partial one leaves
    the invoice partly open and some of it unapplied: the platform's balances still equal QuickBooks'."""
    _synced_firm(env, invoices=3)
    env.sync(
        platform_event(
            "payment_created",
            env.firm,
            id="pay-501",
            method="credit_balance",
            processor=None,
            amount="100.00",
            allocations=[{"invoice_id": "inv-400", "amount": "100.00"}],
        ),
        platform_event(
            "payment_created",
            env.firm,
            id="pay-502",
            amount="300.10",
            allocations=[{"invoice_id": "inv-402", "amount": "300.05"}],
        ),
    )
    assert env.record("payment", "pay-501").status == "synced"
    assert env.record("payment", "pay-501").qbo_entity == "CreditMemo"
    assert env.record("payment", "pay-502").status == "synced"

    report = _run(env)

    assert report["findings"] == [], report["findings"]
    assert report["records_compared"] == 8


def test_the_resync_step_runs_the_report_of_the_firm_it_is_given(env: Env) -> None:
    _synced_firm(env)
    payment = _ours(env, "Payment", "Payment", "pay-500")
    env.qbo_client().delete("Payment", payment["Id"], payment["SyncToken"], request_id="acct-del")

    @dataclass
    class Firm:  # the fields of the scheduled resync's FirmRun the step reads
        firm_id: str

    step = DriftReportStep(wiring.drift_reports())
    counts = step.run(Firm(env.firm))

    # one query per entity present, plus the credits, credit memos and invoices of the client whose
    # balance differs
    assert counts == {"status": "done", "records": 5, "qbo_queries": 7, "findings": 3, "new": 3}
    stored = env.call("GET", "/drift").json()
    assert _kinds(stored) == {
        ("payment", "pay-500", "missing_in_quickbooks"),
        ("invoice", "inv-401", "paid_status_mismatch"),
        ("client_account", "acct-100", "balance_mismatch"),
    }
    assert (
        DriftReportStep(wiring.drift_reports()).run(Firm("firm-never-connected"))["status"] == "not_connected"
    )


def test_an_edited_record_deleted_afterwards_becomes_missing_on_the_same_error_and_resync_creates_it(
    env: Env,
) -> None:
    _synced_firm(env)
    qbo = env.qbo_client()
    invoice = _ours(env, "Invoice", "Invoice", "inv-400")
    qbo.update(
        "Invoice",
        {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "TxnDate": "2026-03-09"},
        request_id="acct-1",
        sparse=True,
    )
    first = _finding(_run(env), "invoice", "inv-400")
    assert first["kind"] == "edited_in_quickbooks"
    edited = _ours(env, "Invoice", "Invoice", "inv-400")
    qbo.delete("Invoice", edited["Id"], edited["SyncToken"], request_id="acct-2")

    second = _finding(_run(env), "invoice", "inv-400")

    assert second["kind"] == "missing_in_quickbooks" and second["error_id"] == first["error_id"]
    assert second["new"] is False  # the record already had its open drift error
    (entry,) = env.stack.errors.list(env.firm, status="open")[0]
    assert entry.code == "missing_in_quickbooks" and entry.attempts == 2
    assert env.record("invoice", "inv-400").qbo_id is None
    _resync(env, "invoice", "inv-400")
    assert _ours(env, "Invoice", "Invoice", "inv-400")["Id"] != invoice["Id"]
    assert _run(env)["findings"] == []


def test_a_client_account_linked_to_a_customer_already_in_quickbooks_is_not_drift_for_its_own_fields(
    env: Env,
) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    name = f"Linked Bakery {uuid.uuid4().hex[:8]}"
    qbo = env.qbo_client()
    existing = qbo.create(
        "Customer",
        {"DisplayName": name, "PrimaryEmailAddr": {"Address": "books@bakery.example"}},
        request_id=f"acct-{uuid.uuid4().hex[:8]}",
    )
    account = platform_event("client_account_created", env.firm)
    account["detail"]["data"]["name"] = (
        name  # the platform's email, phones and address differ from QuickBooks'
    )
    env.sync(account)
    record = env.record("client_account", "acct-100")
    assert record.status == "synced" and record.qbo_id == existing["Id"]  # matched by name, not created

    # QuickBooks' own fields of the object qbsync linked (it never wrote them) are no difference, and stay
    # none when the accountant edits them there
    assert _run(env)["findings"] == []
    current = next(c for c in env.qbo("Customer") if c["Id"] == existing["Id"])
    qbo.update(
        "Customer",
        {
            "Id": current["Id"],
            "SyncToken": current["SyncToken"],
            "PrimaryPhone": {"FreeFormNumber": "555 0199"},
        },
        request_id=f"acct-{uuid.uuid4().hex[:8]}",
        sparse=True,
    )
    assert _run(env)["findings"] == []
    assert env.record("client_account", "acct-100").status == "synced"
    assert env.stack.errors.list(env.firm, status="open")[0] == []


def _without_service_income_account(env: Env) -> None:
    """No income account setting and no "Uncategorized Income": services are billed on the "Sales" item."""
    qbo = env.qbo_client()
    (account,) = qbo.query("SELECT * FROM Account WHERE Name = 'Uncategorized Income'")
    qbo.update(
        "Account",
        {"Id": account["Id"], "SyncToken": account["SyncToken"], "Name": "Other Income (renamed)"},
        request_id=f"acct-{uuid.uuid4().hex[:8]}",
        sparse=True,
    )


def _edit_item(env: Env, qbo_id: str, **changes: Any) -> None:
    item = next(i for i in env.qbo_client().query(f"SELECT * FROM Item WHERE Id = '{qbo_id}'"))
    env.qbo_client().update(
        "Item",
        {"Id": qbo_id, "SyncToken": item["SyncToken"], **changes},
        request_id=f"acct-{uuid.uuid4().hex[:8]}",
        sparse=True,
    )


def test_a_service_billed_on_the_sales_item_is_not_drift_for_the_sales_items_own_fields(env: Env) -> None:
    _without_service_income_account(env)
    env.sync(platform_event("service_created", env.firm))
    record = env.record("service", "svc-300")
    (sales,) = [i for i in env.qbo("Item") if i["Name"] == "Sales"]
    assert record.status == "synced" and record.qbo_id == sales["Id"]
    assert record.note and "'Sales' item" in record.note  # how it landed: noted on the record

    # the Sales item's name, rate and description are QuickBooks' own, not an edit of the service: no
    # finding every hour, and none when the accountant edits them
    assert _run(env)["findings"] == []
    _edit_item(env, sales["Id"], Description="Everything we sell", UnitPrice=12.5)
    assert _run(env)["findings"] == []
    catch_up(env)  # the CDC catch-up reads the same change: no error either
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    assert env.record("service", "svc-300").status == "synced"

    # the Sales item made inactive (QuickBooks' delete of an item): the lines billed on it would fail
    _edit_item(env, sales["Id"], Active=False)
    report = _run(env)
    assert _kinds(report) == {("service", "svc-300", "edited_in_quickbooks")}
    assert _diffs(_finding(report, "service", "svc-300")) == [("status", "active", "inactive")]
