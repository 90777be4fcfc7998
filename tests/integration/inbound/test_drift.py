"""Records edited or deleted in QuickBooks (issue 14 item 4), found by the CDC catch-up (item 5): the real
catch-up handler (functions/cdc_catchup) and admin API on moto + the simulator. Changes are made as an
accountant would, through the simulator's v3 API; no webhook is delivered at all, so every change here is
one CDC (or the full comparison) has to catch."""

from __future__ import annotations

from typing import Any

from qbsync import wiring
from qbsync.models.commands import SyncCommand
from qbsync.models.messages import CatchUpRequest, EntityChange, InboundNotice
from qbsync.models.record_key import RecordKey
from qbsync.outbound.mapping import parse_marker
from qbsync.qbo.client import BatchOperation
from qbsync.repositories.watermarks import WatermarkRepository

from local.stack.provision import clients
from tests.fixtures.events import drain_queue
from tests.fixtures.lambda_runtime import LambdaContext, load_function, sqs_record
from tests.integration.entity_sync.conftest import untaxed_invoice
from tests.integration.errorcenter.actions.conftest import Env, platform_event

CATCH_UP = load_function("cdc_catchup", prefix="drift")


def catch_up(env: Env) -> None:
    """One CatchUpQueue message for the test's firm through the real handler; it must not fail."""
    body = CatchUpRequest(firm_id=env.firm, reason="on_demand", request_id="t-1").body()
    answer = CATCH_UP.lambda_handler({"Records": [sqs_record(body, queue="qbsync-catchup")]}, LambdaContext())
    assert answer == {"batchItemFailures": []}


def _ours(env: Env, entity: str, marker: str, platform_id: str) -> dict[str, Any]:
    found = [
        o
        for o in env.qbo(entity)
        if parse_marker(o.get("PrivateNote") or o.get("Notes")) == (marker, platform_id)
    ]
    assert len(found) == 1, found
    return found[0]


def _synced_invoice(env: Env) -> dict[str, Any]:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    env.sync(untaxed_invoice(env.firm))
    assert env.record("invoice", "inv-400").status == "synced"
    catch_up(env)  # the firm's first run: a full comparison that finds nothing and starts the watermark
    assert env.stack.errors.list(env.firm)[0] == []
    env.events()
    return _ours(env, "Invoice", "Invoice", "inv-400")


def _edit_invoice_line(env: Env, invoice: dict[str, Any], amount: float, **more: Any) -> dict[str, Any]:
    lines = [dict(line) for line in invoice["Line"] if line.get("DetailType") == "SalesItemLineDetail"]
    detail = dict(lines[-1]["SalesItemLineDetail"])
    detail.update(Qty=1, UnitPrice=amount)
    lines[-1] = {**lines[-1], "Amount": amount, "SalesItemLineDetail": detail}
    body = {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True, "Line": lines, **more}
    return env.qbo_client().update("Invoice", body, request_id=f"acct-{invoice['SyncToken']}", sparse=True)


def _the_error(env: Env, entity_type: str, platform_id: str) -> Any:
    entries, _ = env.stack.errors.list(env.firm, status="open")
    found = [e for e in entries if (e.entity_type, e.platform_id) == (entity_type, platform_id)]
    assert len(found) == 1, entries
    return found[0]


def _resync(env: Env, entity_type: str, platform_id: str) -> None:
    """What the error center's Resync enqueues for the record (the retry fan-out's SyncCommand)."""
    command = SyncCommand(
        firm_id=env.firm,
        entity_type=entity_type,  # type: ignore[arg-type]
        platform_id=platform_id,
        reason="resync_error",
        request_id="resync-1",
    )
    env.sync(command.model_dump())


def _invoice_writes(env: Env) -> int:
    log = env.stack.sim.control.requests(env.realm, limit=1000)
    return sum(1 for r in log if r.get("method") == "POST" and "/invoice" in str(r.get("path")))


def test_an_invoice_edited_in_quickbooks_is_one_error_naming_every_amount_and_pushed_back_exactly_once(
    env: Env,
) -> None:
    invoice = _synced_invoice(env)
    _edit_invoice_line(env, invoice, 125.0, DueDate="2026-04-30")

    catch_up(env)

    record = env.record("invoice", "inv-400")
    assert record.status == "failed" and record.error.code == "edited_in_quickbooks"
    entry = _the_error(env, "invoice", "inv-400")
    assert entry.code == "edited_in_quickbooks" and entry.category == "Invoices"
    assert "total was 605.00 USD, now 650.00 USD" in entry.explanation
    assert "line 2 amount was 80.00 USD, now 125.00 USD" in entry.explanation
    assert "due date was" in entry.explanation and "now 2026-04-30" in entry.explanation
    assert "Resync" in entry.fix and "Unlink" in entry.fix
    published = [t for t, _ in env.stack.published()]
    assert published.count("Sync Error Raised") == 1

    # the same change read again (the next run's overlap) is not a second error; a second edit updates it
    catch_up(env)
    assert _the_error(env, "invoice", "inv-400").attempts == 1
    edited = _ours(env, "Invoice", "Invoice", "inv-400")
    _edit_invoice_line(env, edited, 130.0)
    catch_up(env)
    again = _the_error(env, "invoice", "inv-400")
    assert again.error_id == entry.error_id and again.attempts == 2
    assert "now 655.00 USD" in again.explanation

    # push the platform's version again: QuickBooks is back to 605.00, the error resolves, exactly once
    writes = _invoice_writes(env)
    _resync(env, "invoice", "inv-400")
    back = _ours(env, "Invoice", "Invoice", "inv-400")
    assert float(back["TotalAmt"]) == 605.0
    assert env.record("invoice", "inv-400").status == "synced"
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    after_push = _invoice_writes(env)
    assert after_push - writes == 1
    _resync(env, "invoice", "inv-400")  # a repeat (redelivery) writes nothing more
    assert _invoice_writes(env) == after_push
    catch_up(env)  # our own write is an echo, not a new drift
    assert env.stack.errors.list(env.firm, status="open")[0] == []


def test_an_invoice_deleted_in_quickbooks_is_an_error_and_pushing_it_again_creates_it_once(env: Env) -> None:
    invoice = _synced_invoice(env)
    env.qbo_client().delete("Invoice", invoice["Id"], invoice["SyncToken"], request_id="acct-del")

    catch_up(env)

    entry = _the_error(env, "invoice", "inv-400")
    assert entry.code == "deleted_in_quickbooks"
    assert entry.explanation.startswith("The invoice INV-1042 was deleted in QuickBooks")
    record = env.record("invoice", "inv-400")
    assert record.status == "failed" and record.qbo_id is None

    _resync(env, "invoice", "inv-400")
    _resync(env, "invoice", "inv-400")
    recreated = _ours(env, "Invoice", "Invoice", "inv-400")
    assert recreated["Id"] != invoice["Id"]
    assert env.record("invoice", "inv-400").qbo_id == recreated["Id"]
    assert env.stack.errors.list(env.firm, status="open")[0] == []


def _everything_synced(env: Env) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm), platform_event("service_created", env.firm))
    env.sync(untaxed_invoice(env.firm))
    env.sync(
        platform_event(
            "payment_created",
            env.firm,
            amount="605.00",
            allocations=[{"invoice_id": "inv-400", "amount": "605.00"}],
        )
    )
    env.sync(platform_event("refund_created", env.firm, invoice_id="inv-400"))
    env.sync(platform_event("processing_fee_created", env.firm))
    for entity_type, pid in (
        ("client_account", "acct-100"),
        ("service", "svc-300"),
        ("payment", "pay-500"),
        ("refund", "ref-600"),
        ("fee", "fee-700"),
    ):
        assert env.record(entity_type, pid).status == "synced", entity_type


def test_every_record_type_edited_or_deleted_in_quickbooks_gets_its_error(env: Env) -> None:
    _everything_synced(env)
    qbo = env.qbo_client()
    customer = _ours(env, "Customer", "ClientAccount", "acct-100")
    item = env.qbo("Item")
    item = next(i for i in item if i["Id"] == env.record("service", "svc-300").qbo_id)
    payment = _ours(env, "Payment", "Payment", "pay-500")
    refund = _ours(env, "RefundReceipt", "Refund", "ref-600")
    fee = _ours(env, "Purchase", "ProcessingFee", "fee-700")
    qbo.update(
        "Customer",
        {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "DisplayName": "Renamed LLC"},
        request_id="a1",
        sparse=True,
    )
    qbo.update(
        "Item",
        {"Id": item["Id"], "SyncToken": item["SyncToken"], "UnitPrice": 175},
        request_id="a2",
        sparse=True,
    )
    qbo.update(
        "Payment",
        {"Id": payment["Id"], "SyncToken": payment["SyncToken"], "TxnDate": "2026-03-20"},
        request_id="a3",
        sparse=True,
    )
    qbo.update(
        "RefundReceipt",
        {"Id": refund["Id"], "SyncToken": refund["SyncToken"], "TxnDate": "2026-03-21"},
        request_id="a4",
        sparse=True,
    )
    qbo.delete("Purchase", fee["Id"], fee["SyncToken"], request_id="a5")

    catch_up(env)  # no watermark yet: the full comparison of the synced records finds them all

    expected = {
        ("client_account", "acct-100"): ("edited_in_quickbooks", "Accounts", "display name changed"),
        ("service", "svc-300"): ("edited_in_quickbooks", "Services", "now 175.00"),
        ("payment", "pay-500"): ("edited_in_quickbooks", "Payments", "now 2026-03-20"),
        ("refund", "ref-600"): ("edited_in_quickbooks", "Refunds", "now 2026-03-21"),
        ("fee", "fee-700"): ("deleted_in_quickbooks", "Expenses", "deleted in QuickBooks"),
    }
    entries, _ = env.stack.errors.list(env.firm, status="open")
    got = {(e.entity_type, e.platform_id): e for e in entries}
    assert set(got) == set(expected)
    for key, (code, category, text) in expected.items():
        assert got[key].code == code and got[key].category == category, key
        assert text in got[key].explanation, (key, got[key].explanation)
    assert "Renamed" not in got[("client_account", "acct-100")].explanation  # client data never shown
    assert env.record("invoice", "inv-400").status == "synced"  # untouched in QuickBooks: no error


def _edited_account(env: Env, **changes: Any) -> str:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("client_account_created", env.firm))
    catch_up(env)
    customer = _ours(env, "Customer", "ClientAccount", "acct-100")
    body = {"Id": customer["Id"], "SyncToken": customer["SyncToken"], **changes}
    env.qbo_client().update("Customer", body, request_id="acct-edit", sparse=True)
    catch_up(env)
    env.events()
    return _the_error(env, "client_account", "acct-100").error_id


def test_accept_quickbooks_sends_the_contact_fields_to_the_platform(env: Env, qbsync_events: Any) -> None:
    contacts = qbsync_events("Contact Updated")
    contacts.drain()
    error_id = _edited_account(env, PrimaryEmailAddr={"Address": "billing@rivera.example"})

    answer = env.call("POST", f"/errors/{error_id}/accept-quickbooks")

    assert answer.status == 200, answer.body
    assert answer.json()["outcome"] == "accepted" and answer.json()["changed_fields"] == ["email"]
    (event,) = [e for e in contacts.drain() if e["detail"]["firm_id"] == env.firm]
    assert event["detail"]["platform_contact_id"] == "ct-200"
    assert event["detail"]["changed_fields"] == ["email"]
    assert event["detail"]["contact"]["email"] == "billing@rivera.example"
    assert env.record("client_account", "acct-100").status == "synced"
    resolved = [d for t, d in env.events() if t == "Sync Error Resolved"]
    assert [d["resolution"] for d in resolved] == ["accepted_quickbooks"]
    assert env.call("POST", f"/errors/{error_id}/accept-quickbooks").status == 409  # resolved now
    catch_up(env)  # the accepted version is QuickBooks' own: no new error
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    # the drift report compares every field again: the accepted email is the platform's now, not drift
    report = env.call("POST", "/drift/run")
    assert report.status == 200 and report.json()["findings"] == [], report.body
    # and a later Resync pushes the accepted email, not the one QuickBooks had before
    env.sync(
        SyncCommand(
            firm_id=env.firm,
            entity_type="client_account",
            platform_id="acct-100",
            reason="resync_error",
            request_id="resync-after-accept",
        ).model_dump()
    )
    customer = _ours(env, "Customer", "ClientAccount", "acct-100")
    assert customer["PrimaryEmailAddr"]["Address"] == "billing@rivera.example"


def test_accept_is_refused_for_what_the_platform_cannot_take(env: Env) -> None:
    error_id = _edited_account(env, DisplayName="Rivera Holdings")
    answer = env.call("POST", f"/errors/{error_id}/accept-quickbooks")
    assert answer.status == 409 and "display name" in answer.json()["message"]
    assert env.call("POST", f"/errors/{error_id}/accept-quickbooks", role="staff").status == 403
    assert env.call("POST", "/errors/nope-1/accept-quickbooks").status == 404
    assert env.call("POST", f"/errors/{error_id}/accept-quickbooks", firm="f-other").status == 404


def test_unlink_detaches_the_record_and_keeps_quickbooks_version(env: Env) -> None:
    invoice = _synced_invoice(env)
    _edit_invoice_line(env, invoice, 125.0)
    catch_up(env)
    error_id = _the_error(env, "invoice", "inv-400").error_id

    answer = env.call("POST", f"/errors/{error_id}/unlink")

    assert answer.status == 200, answer.body
    assert answer.json()["outcome"] == "unlinked" and answer.json()["record_status"] == "skipped"
    record = env.record("invoice", "inv-400")
    assert record.status == "skipped" and record.qbo_id is None and record.epoch >= 2
    assert (
        float(_ours(env, "Invoice", "Invoice", "inv-400")["TotalAmt"]) == 650.0
    )  # QuickBooks' version stays
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    # a later platform version stays skipped (the firm's choice); nothing is written to QuickBooks
    writes = _invoice_writes(env)
    updated = untaxed_invoice(env.firm)
    updated["detail"]["version"] = 5
    env.sync(updated)
    assert env.record("invoice", "inv-400").status == "skipped" and _invoice_writes(env) == writes
    assert env.call("POST", f"/errors/{error_id}/unlink").status == 409


def test_cdc_pages_past_1000_changes_and_advances_the_watermark(env: Env) -> None:
    _synced_invoice(env)  # the watermark starts here
    marks = WatermarkRepository(env.stack.sync_table)
    before = marks.get(env.firm, env.realm).of("Customer")
    qbo = env.qbo_client()
    for b in range(34):  # 1,020 customers nobody synced, 30 a batch (QBO's batch limit)
        ops = [
            BatchOperation.create(f"c{i}", "Customer", {"DisplayName": f"Walk-in {b}-{i}"}) for i in range(30)
        ]
        assert all(r.ok for r in qbo.batch(ops, request_id=f"bulk-{b}"))

    report = wiring.catch_up().run(env.firm)

    assert report.objects["Customer"] >= 1020
    customer_calls = [
        r
        for r in env.stack.sim.control.requests(env.realm, limit=200)
        if "/cdc" in str(r.get("path")) and "Customer" in str(r.get("query"))
    ]
    assert len(customer_calls) >= 2  # paged
    after = marks.get(env.firm, env.realm).of("Customer")
    assert before is not None and after is not None and after > before


def test_a_watermark_older_than_30_days_falls_back_to_a_full_comparison(env: Env) -> None:
    invoice = _synced_invoice(env)
    marks = WatermarkRepository(env.stack.sync_table)
    table = env.stack.sync_table
    table.update(  # as if the last run was 31 days ago
        {"pk": f"FIRM#{env.firm}#REALM#{env.realm}", "sk": "WATERMARK#cdc"},
        update="SET at_Invoice = at_Invoice - :d",
        values={":d": 31 * 86400},
    )
    _edit_invoice_line(env, invoice, 125.0)

    report = wiring.catch_up().run(env.firm)

    assert "Invoice" in report.full
    assert _the_error(env, "invoice", "inv-400").code == "edited_in_quickbooks"
    assert marks.get(env.firm, env.realm).full_at is not None


def test_a_record_being_written_is_not_judged_and_the_watermark_waits(env: Env) -> None:
    invoice = _synced_invoice(env)
    _edit_invoice_line(env, invoice, 125.0)
    key = RecordKey(env.firm, env.realm, "invoice", "inv-400")
    marks = WatermarkRepository(env.stack.sync_table)
    before = marks.get(env.firm, env.realm).of("Invoice")
    claimed = env.stack.records.claim(
        key, version=9, owner="w-test", lease_seconds=300, now=__import__("time").time()
    )
    assert claimed.claimed

    body = CatchUpRequest(firm_id=env.firm, reason="scheduled", request_id="t-2").body()
    answer = CATCH_UP.lambda_handler({"Records": [sqs_record(body, queue="qbsync-catchup")]}, LambdaContext())

    assert len(answer["batchItemFailures"]) == 1  # retried later
    assert marks.get(env.firm, env.realm).of("Invoice") == before
    assert env.stack.errors.list(env.firm, status="open")[0] == []


INBOUND = load_function("inbound_worker", prefix="drift")


def _webhook(env: Env, qbo_id: str, operation: str, notification_id: str) -> None:
    """A webhook notice of one Invoice change through the real inbound worker; it must not fail."""
    notice = InboundNotice(
        realm_id=env.realm,
        changes=(EntityChange("Invoice", qbo_id, operation, "2026-12-07T01:00:00Z"),),
        source="webhook_classic",
        received_at="2026-12-07T01:00:01Z",
        notification_id=notification_id,
    )
    answer = INBOUND.lambda_handler(
        {"Records": [sqs_record(notice.body(), queue="qbsync-inbound")]}, LambdaContext()
    )
    assert answer == {"batchItemFailures": []}


def test_a_webhook_notice_reaches_the_same_drift_detection(env: Env) -> None:
    """The inbound worker (webhook path) hands the edited invoice to the same route as the catch-up."""
    invoice = _synced_invoice(env)
    _edit_invoice_line(env, invoice, 125.0)
    _webhook(env, invoice["Id"], "Update", "n-drift-1")
    entry = _the_error(env, "invoice", "inv-400")
    assert entry.code == "edited_in_quickbooks" and "now 650.00 USD" in entry.explanation
    catch_up(env)  # the same change read again by CDC: still one error, not counted twice
    assert _the_error(env, "invoice", "inv-400").attempts == 1


def test_an_edit_undone_in_quickbooks_resolves_the_error(env: Env) -> None:
    invoice = _synced_invoice(env)
    _edit_invoice_line(env, invoice, 125.0)
    catch_up(env)
    error_id = _the_error(env, "invoice", "inv-400").error_id
    _edit_invoice_line(env, _ours(env, "Invoice", "Invoice", "inv-400"), 80.0)  # back to the platform's 80.00

    catch_up(env)

    assert env.stack.errors.list(env.firm, status="open")[0] == []
    assert env.stack.errors.get(env.firm, error_id).status == "resolved"
    assert env.record("invoice", "inv-400").status == "synced"
    resolved = [d for t, d in env.events() if t == "Sync Error Resolved"]
    assert [d["resolution"] for d in resolved] == ["matched_again"]


def test_the_schedule_fans_out_and_the_route_queues_a_run_for_the_callers_firm(env: Env) -> None:
    sqs = clients(env.stack.resources.endpoint_url, env.stack.resources.region)["sqs"]
    queue = env.stack.env["CATCHUP_QUEUE_URL"]
    drain_queue(sqs, queue)

    answer = CATCH_UP.lambda_handler({"id": "sched-evt-1", "detail-type": "Scheduled Event"}, LambdaContext())

    connected = {c.firm_id for c in env.stack.connections().by_status("connected")}
    assert env.firm in connected and answer["scheduled"] == len(connected)
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    waiting = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesDelayed"])
    assert waiting == len(connected)  # one run per connected firm, spread out with DelaySeconds
    sqs.purge_queue(QueueUrl=queue)

    queued = env.call("POST", "/sync/catch-up")
    assert queued.status == 202, queued.body
    (body,) = [b for b in drain_queue(sqs, queue) if b["firm_id"] == env.firm]
    assert body["reason"] == "on_demand" and body["request_id"] == queued.json()["request_id"]
    assert env.call("POST", "/sync/catch-up", role="staff").status == 403
    assert env.call("POST", "/sync/catch-up", firm="f-never-connected").status == 409


def test_a_malformed_catch_up_message_is_a_batch_failure_without_its_content(env: Env) -> None:
    bad = {"kind": "qbsync.cdc_catch_up.v1", "firm_id": "x#y", "reason": "scheduled", "request_id": "r"}
    answer = CATCH_UP.lambda_handler({"Records": [sqs_record(bad, queue="qbsync-catchup")]}, LambdaContext())
    assert len(answer["batchItemFailures"]) == 1


def test_a_customer_qbsync_linked_and_never_wrote_is_not_drift_when_edited_there(env: Env) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    name = f"Linked Rivera {env.firm[-8:]}"
    existing = env.qbo_client().create(
        "Customer",
        {"DisplayName": name, "PrimaryEmailAddr": {"Address": "books@rivera.example"}},
        request_id=f"pre-{env.firm[-8:]}",
    )
    account = platform_event("client_account_created", env.firm)
    account["detail"]["data"]["name"] = name
    env.sync(account)
    assert env.record("client_account", "acct-100").qbo_id == existing["Id"]  # matched by name, not created
    catch_up(env)
    current = next(c for c in env.qbo("Customer") if c["Id"] == existing["Id"])
    env.qbo_client().update(
        "Customer",
        {
            "Id": current["Id"],
            "SyncToken": current["SyncToken"],
            "PrimaryPhone": {"FreeFormNumber": "555 0199"},
        },
        request_id=f"edit-{env.firm[-8:]}",
        sparse=True,
    )

    catch_up(env)

    # its fields are QuickBooks' own (the platform's email and address never went there): no error, and the
    # record keeps up with QuickBooks' SyncToken
    record = env.record("client_account", "acct-100")
    assert record.status == "synced" and env.stack.errors.list(env.firm, status="open")[0] == []
    edited = next(c for c in env.qbo("Customer") if c["Id"] == existing["Id"])
    assert record.sync_token == str(edited["SyncToken"])


def test_an_invoice_the_platform_voided_is_not_drift_when_quickbooks_edits_or_deletes_it(env: Env) -> None:
    """Voided on the platform (so voided in QuickBooks: total 0.00): the accountant's memo on the voided
    invoice, or its deletion there, is no drift, by CDC or by webhook; the record keeps QuickBooks' token."""
    _synced_invoice(env)
    voided = platform_event("invoice_voided", env.firm)
    voided["detail"]["data"]["id"] = "inv-400"
    voided["detail"]["version"] = 5
    env.sync(voided)
    record = env.record("invoice", "inv-400")
    assert record.status == "synced" and record.applied_op == "void"
    (invoice,) = [i for i in env.qbo("Invoice") if i["Id"] == record.qbo_id]  # QuickBooks notes it "Voided"
    assert float(invoice["TotalAmt"]) == 0.0
    catch_up(env)  # the void itself is our own echo
    env.events()

    memo = env.qbo_client().update(
        "Invoice",
        {
            "Id": invoice["Id"],
            "SyncToken": invoice["SyncToken"],
            "CustomerMemo": {"value": "voided: duplicate"},
        },
        request_id="acct-memo",
        sparse=True,
    )
    catch_up(env)
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    record = env.record("invoice", "inv-400")
    assert record.status == "synced" and record.sync_token == str(memo["SyncToken"])

    env.qbo_client().delete("Invoice", invoice["Id"], memo["SyncToken"], request_id="acct-del-void")
    _webhook(env, invoice["Id"], "Delete", "n-void-del-1")
    catch_up(env)
    assert env.stack.errors.list(env.firm, status="open")[0] == []
    assert env.record("invoice", "inv-400").status == "synced"
    assert not [t for t, _ in env.events() if t in ("Sync Error Raised", "Drift Detected")]
