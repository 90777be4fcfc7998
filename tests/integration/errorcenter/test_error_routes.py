"""Error-center routes through the real admin API handler on moto: lists, counts, one error, skip, resync,
retry (roles, 404 across firms, bad input → 400, the 3-minute retry guard → 429 + Retry-After)."""

from __future__ import annotations

import time

from qbsync.models.commands import parse_retry_request
from qbsync.models.record_key import RecordKey

from tests.integration.errorcenter.conftest import REALM, T0, ErrorStack, new_firm


def test_list_filters_pages_and_counts_only_the_callers_firm(estack: ErrorStack) -> None:
    firm, other = new_firm(), new_firm()
    for i in range(3):
        estack.seed(firm, f"inv-{i}", now=T0 + i)
    estack.seed(firm, "pay-1", entity_type="payment", now=T0 + 10)
    closed = estack.seed(firm, "inv-closed", code="6200", now=T0 + 20)
    estack.errors.skip(firm, closed.error_id, now=T0 + 21, by="user-9")
    estack.seed(other, "inv-x", now=T0 + 30)

    page = estack.call("GET", "/errors", firm_id=firm, role="staff")  # reads: any role
    assert page.status == 200
    body = page.json()
    assert [e["platform_id"] for e in body["errors"]] == ["pay-1", "inv-2", "inv-1", "inv-0"]  # newest first
    assert body["next_cursor"] is None
    first = body["errors"][1]
    assert first["category"] == "Invoices" and first["status"] == "open" and first["qbo_code"] == "6140"
    assert first["code"] == "duplicate_document_number" and first["attempts"] == 1
    assert first["last_seen"].startswith("2026-")

    invoices = estack.call(
        "GET", "/errors", firm_id=firm, query={"category": "Invoices", "limit": "2"}
    ).json()
    assert [e["platform_id"] for e in invoices["errors"]] == ["inv-2", "inv-1"]
    rest = estack.call(
        "GET", "/errors", firm_id=firm, query={"category": "Invoices", "cursor": invoices["next_cursor"]}
    ).json()
    assert [e["platform_id"] for e in rest["errors"]] == ["inv-0"]

    payments = estack.call("GET", "/errors", firm_id=firm, query={"entity_type": "payment", "limit": "1"})
    assert [e["platform_id"] for e in payments.json()["errors"]] == ["pay-1"]
    by_type = estack.call(
        "GET", "/errors", firm_id=firm, query={"entity_type": "invoice", "limit": "2"}
    ).json()
    assert [e["platform_id"] for e in by_type["errors"]] == ["inv-2", "inv-1"]
    more = estack.call(
        "GET", "/errors", firm_id=firm, query={"entity_type": "invoice", "cursor": by_type["next_cursor"]}
    ).json()
    assert [e["platform_id"] for e in more["errors"]] == ["inv-0"]

    skipped = estack.call("GET", "/errors", firm_id=firm, query={"status": "skipped"}).json()
    assert [e["platform_id"] for e in skipped["errors"]] == ["inv-closed"]

    counts = estack.call("GET", "/errors/counts", firm_id=firm, role="staff").json()
    assert counts["total"] == 4
    assert counts["by_category"]["Invoices"] == 3 and counts["by_category"]["Payments"] == 1
    assert counts["by_category"]["Taxes"] == 0

    for query in (
        {"limit": "0"},
        {"limit": "abc"},
        {"category": "Invoice"},
        {"status": "closed"},
        {"cursor": "not-a-cursor!!"},
        {"entity_type": "In#voice"},
    ):
        bad = estack.call("GET", "/errors", firm_id=firm, query=query)
        assert bad.status == 400, query
        assert bad.json()["error"] == "bad_request"
    foreign_cursor = estack.call("GET", "/errors", firm_id=other, query={"limit": "1"}).json()["next_cursor"]
    assert foreign_cursor is None  # one error: no cursor; a cursor of this firm is refused for another:
    assert (
        estack.call("GET", "/errors", firm_id=other, query={"cursor": invoices["next_cursor"]}).status == 400
    )


def test_one_error_with_history_fix_and_deep_link_and_404_across_firms(estack: ErrorStack) -> None:
    firm, other = new_firm(), new_firm()
    entry = estack.seed(firm, "inv-7")
    estack.seed(firm, "inv-7", now=T0 + 60)  # a repeat: attempts 2

    got = estack.call("GET", f"/errors/{entry.error_id}", firm_id=firm, role="staff")
    assert got.status == 200
    detail = got.json()
    assert detail["error_id"] == entry.error_id and detail["attempts"] == 2
    assert detail["qbo_code"] == "6140" and detail["message"] and detail["explanation"] and detail["fix"]
    assert detail["first_seen"] < detail["last_seen"]
    assert [h["action"] for h in detail["history"]] == ["created"]
    assert detail["deep_link"] is None and detail["record_status"] is None and detail["realm_id"] == REALM

    # the record synced meanwhile (e.g. fixed in QBO): its deep link is shown
    link = f"https://app.qbo.intuit.com/app/invoice?txnId=145&companyId={REALM}"
    estack.sync_table.put(
        {
            **RecordKey(firm, REALM, "invoice", "inv-7").item_key(),
            "firm_id": firm,
            "realm_id": REALM,
            "entity_type": "invoice",
            "platform_id": "inv-7",
            "status": "synced",
            "deep_link": link,
        }
    )
    detail = estack.call("GET", f"/errors/{entry.error_id}", firm_id=firm).json()
    assert (detail["record_status"], detail["deep_link"]) == ("synced", link)

    for path in (
        f"/errors/{entry.error_id}",
        f"/errors/{entry.error_id}/skip",
        f"/errors/{entry.error_id}/resync",
    ):
        method = "GET" if path.count("/") == 2 else "POST"
        refused = estack.call(method, path, firm_id=other, role="owner")
        assert refused.status == 404, path
        assert refused.json()["error"] == "not_found"
    assert estack.call("GET", "/errors/nope-1", firm_id=firm).status == 404
    assert estack.call("GET", "/errors/bad%20id!", firm_id=firm).status in (400, 404)


def test_skip_needs_owner_or_admin_records_history_and_tells_the_platform(estack: ErrorStack) -> None:
    firm = new_firm()
    entry = estack.seed(firm, "inv-1")
    estack.seed(firm, "inv-2")

    refused = estack.call("POST", f"/errors/{entry.error_id}/skip", firm_id=firm, role="staff")
    assert refused.status == 403 and refused.json()["error"] == "forbidden"
    assert estack.errors.get(firm, entry.error_id).status == "open"

    skipped = estack.call("POST", f"/errors/{entry.error_id}/skip", firm_id=firm, role="admin", user_id="u-7")
    assert skipped.status == 200
    assert skipped.json()["status"] == "skipped"
    stored = estack.errors.get(firm, entry.error_id)
    assert stored.status == "skipped"
    assert stored.history[-1]["action"] == "skipped" and stored.history[-1]["by"] == "u-7"
    resolved = [d for t, d in estack.published() if t == "Sync Error Resolved"]
    assert [(d["error_id"], d["resolution"], d["resolved_by"], d["open_error_count"]) for d in resolved] == [
        (entry.error_id, "skipped", "u-7", 1)
    ]
    again = estack.call("POST", f"/errors/{entry.error_id}/skip", firm_id=firm, role="owner")
    assert again.status == 409
    assert estack.call("GET", "/errors/counts", firm_id=firm).json()["total"] == 1


def test_resync_one_error_queues_a_retry_request_and_notes_the_history(estack: ErrorStack) -> None:
    firm = new_firm()
    entry = estack.seed(firm, "inv-1")
    estack.errors.skip(firm, entry.error_id, now=T0 + 1)  # an explicit resync also retries a skipped error

    assert estack.call("POST", f"/errors/{entry.error_id}/resync", firm_id=firm, role="staff").status == 403
    accepted = estack.call(
        "POST", f"/errors/{entry.error_id}/resync", firm_id=firm, role="owner", user_id="u-1"
    )
    assert accepted.status == 202
    body = accepted.json()
    assert body["scope"] == "error" and body["error_id"] == entry.error_id and body["request_id"]

    queued = [parse_retry_request(m) for m in estack.drain("RETRY_QUEUE_URL")]
    assert [(q.scope, q.error_id, q.request_id, q.requested_by, q.firm_id) for q in queued] == [
        ("error", entry.error_id, body["request_id"], "u-1", firm)
    ]
    history = estack.errors.get(firm, entry.error_id).history
    assert history[-1]["action"] == "resync requested" and history[-1]["by"] == "u-1"
    assert body["request_id"] in history[-1]["detail"]

    # a resolved error has nothing to resync
    estack.errors.resolve(firm_id=firm, entity_type="invoice", platform_id="inv-1", now=T0 + 5)
    conflict = estack.call("POST", f"/errors/{entry.error_id}/resync", firm_id=firm)
    assert conflict.status == 409 and conflict.json()["error"] == "conflict"
    assert estack.drain("RETRY_QUEUE_URL") == []


def test_retry_all_and_category_are_throttled_to_once_per_three_minutes(estack: ErrorStack) -> None:
    firm, other = new_firm(), new_firm()
    estack.seed(firm, "inv-1")

    for body in (
        {"scope": "category"},  # category missing
        {"scope": "all", "category": "Invoices"},  # category with scope all
        {"scope": "some"},
        {"scope": "category", "category": "Invoice"},
        {"scope": "all", "extra": 1},
        "not json",
        None,
    ):
        bad = estack.call("POST", "/errors/retry", firm_id=firm, body=body)
        assert bad.status == 400, body
        assert bad.json()["error"] == "bad_request"
    assert (
        estack.call("POST", "/errors/retry", firm_id=firm, role="staff", body={"scope": "all"}).status == 403
    )
    assert estack.drain("RETRY_QUEUE_URL") == []

    first = estack.call("POST", "/errors/retry", firm_id=firm, role="admin", body={"scope": "all"})
    assert first.status == 202
    assert first.json()["scope"] == "all"
    second = estack.call("POST", "/errors/retry", firm_id=firm, role="owner", body={"scope": "all"})
    assert second.status == 429 and second.json()["error"] == "too_many_requests"
    assert 1 <= int(second.headers["Retry-After"]) <= 180
    assert (
        estack.call("POST", "/errors/retry", firm_id=other, body={"scope": "all"}).status == 202
    )  # per firm

    invoices = {"scope": "category", "category": "Invoices"}
    assert estack.call("POST", "/errors/retry", firm_id=firm, body=invoices).status == 202
    assert estack.call("POST", "/errors/retry", firm_id=firm, body=invoices).status == 429
    payments = {"scope": "category", "category": "Payments"}
    assert estack.call("POST", "/errors/retry", firm_id=firm, body=payments).status == 202  # its own guard

    queued = [parse_retry_request(m) for m in estack.drain("RETRY_QUEUE_URL")]
    assert sorted((q.firm_id == firm, q.scope, q.category or "") for q in queued) == [
        (False, "all", ""),
        (True, "all", ""),
        (True, "category", "Invoices"),
        (True, "category", "Payments"),
    ]
    assert len({q.request_id for q in queued}) == 4

    # the guard item decides: one whose window ended lets the next retry through, a live one answers
    # with the seconds left
    now = time.time()
    guard = {"pk": f"FIRM#{firm}", "sk": "RETRYALL"}
    estack.sync_table.put({**guard, "until": now - 1, "request_id": "old", "ttl": int(now) + 3600})
    assert estack.call("POST", "/errors/retry", firm_id=firm, body={"scope": "all"}).status == 202
    estack.sync_table.put({**guard, "until": now + 100, "request_id": "old", "ttl": int(now) + 3600})
    throttled = estack.call("POST", "/errors/retry", firm_id=firm, body={"scope": "all"})
    assert throttled.status == 429
    assert 90 <= int(throttled.headers["Retry-After"]) <= 100
