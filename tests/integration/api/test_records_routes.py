"""GET /sync/records, /sync/records/{entity_type}/{platform_id} and /sync/summary through the handler.

Records are written with the real RecordsRepository transitions the sync worker uses (claim, then
synced / failed / skipped / blocked) and, for the client filter, the ``last_event`` the worker stores.
"""

from __future__ import annotations

import json
import time
from typing import Any

from qbsync.models.record_key import RecordKey
from qbsync.repositories.records import QboLink, RecordError

from tests.integration.api.conftest import AdminApi, new_firm

OWNER = "worker-test"


def _claim(api: AdminApi, firm: str, realm: str, entity_type: str, platform_id: str) -> None:
    claim = api.records.claim(
        RecordKey(firm, realm, entity_type, platform_id),
        version=1,
        owner=OWNER,
        lease_seconds=60,
        now=time.time(),
    )
    assert claim.claimed


def _synced(api: AdminApi, firm: str, realm: str, entity_type: str, platform_id: str, qbo_id: str) -> None:
    _claim(api, firm, realm, entity_type, platform_id)
    api.records.mark_synced(
        RecordKey(firm, realm, entity_type, platform_id),
        owner=OWNER,
        version=1,
        link=QboLink(
            qbo_entity={"client_account": "Customer", "invoice": "Invoice", "payment": "Payment"}[
                entity_type
            ],
            qbo_id=qbo_id,
            sync_token="0",
            deep_link=f"https://app.qbo.example/app/x?txnId={qbo_id}",
        ),
        now=time.time(),
    )


def _last_event(
    api: AdminApi, firm: str, realm: str, entity_type: str, platform_id: str, account: str
) -> None:
    envelope: dict[str, Any] = {
        "detail-type": "Invoice Sent",
        "source": "platform",
        "detail": {"firm_id": firm, "data": {"id": platform_id, "account_id": account}},
    }
    assert api.records.store_last_event(
        RecordKey(firm, realm, entity_type, platform_id), version=1, envelope=envelope
    )


def _seed(api: AdminApi, firm: str) -> str:
    realm = api.connect(firm)
    _synced(api, firm, realm, "client_account", "acct-1", "58")
    _synced(api, firm, realm, "client_account", "acct-2", "59")
    _synced(api, firm, realm, "invoice", "inv-1", "130")
    _last_event(api, firm, realm, "invoice", "inv-1", "acct-1")
    _claim(api, firm, realm, "invoice", "inv-2")
    api.records.mark_failed(
        RecordKey(firm, realm, "invoice", "inv-2"),
        owner=OWNER,
        error=RecordError("qbo_validation", "Invoices", "Duplicate document number", qbo_code="6140"),
        now=time.time(),
    )
    _last_event(api, firm, realm, "invoice", "inv-2", "acct-2")
    _claim(api, firm, realm, "payment", "pay-1")
    api.records.mark_blocked(
        RecordKey(firm, realm, "payment", "pay-1"),
        owner=OWNER,
        waiting_on=[("invoice", "inv-2")],
        now=time.time(),
    )
    _last_event(api, firm, realm, "payment", "pay-1", "acct-2")
    _claim(api, firm, realm, "payment", "pay-2")
    api.records.mark_skipped(
        RecordKey(firm, realm, "payment", "pay-2"),
        owner=OWNER,
        reason="offline payments do not sync",
        now=time.time(),
    )
    _last_event(api, firm, realm, "payment", "pay-2", "acct-1")
    return realm


def _ids(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(row["entity_type"], row["platform_id"]) for row in body["items"]]


def test_list_filters_and_rows(api: AdminApi) -> None:
    firm = new_firm()
    _seed(api, firm)
    everything = api.call("GET", "/sync/records", firm_id=firm, role="staff")
    assert everything.status == 200, everything.body
    assert _ids(everything.json()) == [
        ("client_account", "acct-1"),
        ("client_account", "acct-2"),
        ("invoice", "inv-1"),
        ("invoice", "inv-2"),
        ("payment", "pay-1"),
        ("payment", "pay-2"),
    ]
    assert everything.json()["next_cursor"] is None
    rows = {(r["entity_type"], r["platform_id"]): r for r in everything.json()["items"]}
    assert rows[("invoice", "inv-1")]["status"] == "synced"
    assert rows[("invoice", "inv-1")]["qbo_id"] == "130"
    assert rows[("invoice", "inv-1")]["deep_link"].endswith("txnId=130")
    assert rows[("invoice", "inv-2")]["error"] == {
        "code": "qbo_validation",
        "category": "Invoices",
        "message": "Duplicate document number",
        "qbo_code": "6140",
    }
    assert rows[("payment", "pay-1")]["waiting_on"] == [{"entity_type": "invoice", "platform_id": "inv-2"}]
    assert rows[("payment", "pay-2")]["skip_reason"] == "offline payments do not sync"
    assert rows[("payment", "pay-2")]["status"] == "skipped" and rows[("payment", "pay-2")]["updated_at"]

    def listing(**query: str) -> list[tuple[str, str]]:
        got = api.call("GET", "/sync/records", firm_id=firm, query=query)
        assert got.status == 200, got.body
        return _ids(got.json())

    assert listing(entity_type="invoice") == [("invoice", "inv-1"), ("invoice", "inv-2")]
    assert listing(status="failed") == [("invoice", "inv-2")]
    # newest first; both were synced within the same second here, so only the set is certain
    assert sorted(listing(status="synced", entity_type="client_account")) == [
        ("client_account", "acct-1"),
        ("client_account", "acct-2"),
    ]
    assert listing(client_id="acct-1") == [
        ("client_account", "acct-1"),
        ("invoice", "inv-1"),
        ("payment", "pay-2"),
    ]
    assert listing(client_id="acct-2", entity_type="payment") == [("payment", "pay-1")]
    assert listing(client_id="acct-2", status="failed") == [("invoice", "inv-2")]


def test_cursor_pages_cover_everything_once(api: AdminApi) -> None:
    firm = new_firm()
    _seed(api, firm)
    for query in ({}, {"client_id": "acct-2"}, {"status": "synced"}):
        seen: list[tuple[str, str]] = []
        cursor = None
        for _ in range(10):
            q = {**query, "limit": "1", **({"cursor": cursor} if cursor else {})}
            page = api.call("GET", "/sync/records", firm_id=firm, query=q)
            assert page.status == 200, page.body
            seen += _ids(page.json())
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        whole = _ids(api.call("GET", "/sync/records", firm_id=firm, query=query).json())
        assert sorted(seen) == sorted(whole) and len(seen) == len(set(seen)), (query, seen)


def test_bad_queries_are_400(api: AdminApi) -> None:
    firm = new_firm()
    _seed(api, firm)
    for query, field in (
        ({"status": "exploded"}, "query.status"),
        ({"entity_type": "widget"}, "query.entity_type"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"client_id": "a#b"}, "query.client_id"),
        ({"cursor": "!!not-base64!!"}, "cursor"),
    ):
        got = api.call("GET", "/sync/records", firm_id=firm, query=query)
        assert got.status == 400, (query, got.body)
        assert got.json()["error"] == "bad_request" and field in got.json()["message"], (query, got.body)
    # a cursor of one listing is refused by another (and by another firm)
    page = api.call("GET", "/sync/records", firm_id=firm, query={"limit": "1"}).json()
    other_filter = api.call(
        "GET", "/sync/records", firm_id=firm, query={"status": "failed", "cursor": page["next_cursor"]}
    )
    assert other_filter.status == 400, other_filter.body
    other_firm = new_firm()
    api.connect(other_firm)
    stolen = api.call("GET", "/sync/records", firm_id=other_firm, query={"cursor": page["next_cursor"]})
    assert stolen.status == 400, stolen.body


def test_one_record_and_tenant_isolation(api: AdminApi) -> None:
    firm, other = new_firm(), new_firm()
    _seed(api, firm)
    api.connect(other)  # same QuickBooks test company, another firm
    got = api.call("GET", "/sync/records/invoice/inv-2", firm_id=firm, role="staff")
    assert got.status == 200, got.body
    assert got.json()["status"] == "failed" and got.json()["error"]["qbo_code"] == "6140"
    for caller in (other, new_firm()):  # another firm, and a firm never connected
        denied = api.call("GET", "/sync/records/invoice/inv-2", firm_id=caller)
        assert denied.status == 404 and denied.json()["error"] == "not_found", denied.body
        assert api.call("GET", "/sync/records", firm_id=caller).json()["items"] == []
    missing = api.call("GET", "/sync/records/invoice/inv-404", firm_id=firm)
    assert missing.status == 404
    bad_type = api.call("GET", "/sync/records/widget/inv-2", firm_id=firm)
    assert bad_type.status == 400 and "path.entity_type" in bad_type.json()["message"], bad_type.body


def test_summary_counts_per_type_and_status(api: AdminApi) -> None:
    firm = new_firm()
    realm = _seed(api, firm)
    got = api.call("GET", "/sync/summary", firm_id=firm, role="staff")
    assert got.status == 200, got.body
    body = got.json()
    assert body["realm_id"] == realm
    assert body["totals"] == {
        "not_synced": 0,
        "syncing": 0,
        "synced": 3,
        "failed": 1,
        "skipped": 1,
        "blocked": 1,
        "total": 6,
    }
    assert (
        body["by_entity_type"]["invoice"]["synced"] == 1 and body["by_entity_type"]["invoice"]["failed"] == 1
    )
    assert body["by_entity_type"]["payment"]["total"] == 2
    assert body["by_entity_type"]["refund"]["total"] == 0
    empty = api.call("GET", "/sync/summary", firm_id=new_firm()).json()
    assert empty["realm_id"] is None and empty["totals"]["total"] == 0
    assert json.dumps(empty)  # plain JSON
