"""QboClient against the QuickBooks simulator: CRUD, queries, batch, CDC, retries and requestid replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from qbsync.errors import (
    QboObjectNotFound,
    QboValidationError,
    ServiceUnavailable,
    StaleObject,
    Throttled,
    UncertainOutcome,
)
from qbsync.qbo.client import BatchOperation, quote_literal
from qbsync.qbo.http import request_id_for

from tests.integration.qbo.conftest import make_rig


def _item_id(rig, name: str = "Sales") -> str:
    rows = rig.client.query(f"SELECT * FROM Item WHERE Name = {quote_literal(name)}")
    assert len(rows) == 1
    return rows[0]["Id"]


def _invoice_body(customer_id: str, item_id: str) -> dict:
    return {
        "CustomerRef": {"value": customer_id},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 900.0,
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item_id},
                    "Qty": 2,
                    "UnitPrice": 450.0,
                    "TaxCodeRef": {"value": "NON"},
                },
            }
        ],
    }


def _rid(*parts) -> str:
    return request_id_for("it", datetime.now(UTC).isoformat(), *parts)


def test_company_info_and_preferences(rig, qbo_company):
    info = rig.client.company_info()
    assert info["Id"] == "1"
    prefs = rig.client.preferences()
    assert "AccountingInfoPrefs" in prefs


def test_customer_crud_with_sparse_update_and_stale_sync_token(rig):
    c = rig.client
    created = c.create("Customer", {"DisplayName": "O'Brien CPA"}, request_id=_rid("c"))
    assert created["SyncToken"] == "0"
    assert c.read("Customer", created["Id"])["DisplayName"] == "O'Brien CPA"
    updated = c.update(
        "Customer",
        {"Id": created["Id"], "SyncToken": "0", "DisplayName": "O'Brien CPA", "CompanyName": "O'Brien LLC"},
        request_id=_rid("u1"),
    )
    assert updated["SyncToken"] == "1"
    assert updated["CompanyName"] == "O'Brien LLC"
    with pytest.raises(StaleObject) as info:
        c.update(
            "Customer",
            {"Id": created["Id"], "SyncToken": "0", "DisplayName": "O'Brien CPA", "Notes": "late"},
            request_id=_rid("u2"),
        )
    assert info.value.qbo_code == "5010"
    assert rig.sleeps == []  # a data error is never retried


def test_duplicate_name_carries_the_existing_id(rig):
    c = rig.client
    first = c.create("Customer", {"DisplayName": "Lopez Tax Services"}, request_id=_rid("d1"))
    with pytest.raises(QboValidationError) as info:
        c.create("Customer", {"DisplayName": "Lopez Tax Services"}, request_id=_rid("d2"))
    assert info.value.qbo_code == "6240"
    assert f"Id={first['Id']}" in (info.value.qbo_detail or "")
    assert info.value.realm_id == c.realm_id


def test_invoice_delete_void_and_not_found(rig):
    c = rig.client
    customer = c.create("Customer", {"DisplayName": "Rivera & Sons LLC"}, request_id=_rid("cust"))
    item = _item_id(rig)
    one = c.create("Invoice", _invoice_body(customer["Id"], item), request_id=_rid("i1"))
    two = c.create("Invoice", _invoice_body(customer["Id"], item), request_id=_rid("i2"))
    voided = c.void("Invoice", two["Id"], two["SyncToken"], request_id=_rid("v"))
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"] == "Voided"
    stub = c.delete("Invoice", one["Id"], one["SyncToken"], request_id=_rid("del"))
    assert stub["status"] == "Deleted"
    with pytest.raises(QboObjectNotFound):
        c.read("Invoice", one["Id"])


def test_void_payment_uses_update_include_void(rig):
    c = rig.client
    customer = c.create("Customer", {"DisplayName": "Payer Co"}, request_id=_rid("pc"))
    invoice = c.create("Invoice", _invoice_body(customer["Id"], _item_id(rig)), request_id=_rid("pi"))
    payment = c.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 900.0,
            "Line": [{"Amount": 900.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
        request_id=_rid("pay"),
    )
    assert c.read("Invoice", invoice["Id"])["Balance"] == 0
    voided = c.void("Payment", payment["Id"], payment["SyncToken"], request_id=_rid("pv"))
    assert voided["TotalAmt"] == 0
    assert c.read("Invoice", invoice["Id"])["Balance"] == 900.0


def test_query_escaping_paging_and_count(rig):
    c = rig.client
    c.create("Customer", {"DisplayName": "D'Angelo & Partners"}, request_id=_rid("q"))
    name = quote_literal("D'Angelo & Partners")
    found = c.query(f"SELECT * FROM Customer WHERE DisplayName = {name}")
    assert [r["DisplayName"] for r in found] == ["D'Angelo & Partners"]
    total = c.count("Account")
    assert total > 5
    rows = list(c.query_all("SELECT * FROM Account ORDERBY Id", page_size=4))
    assert len(rows) == total
    assert len({r["Id"] for r in rows}) == total
    assert c.count("Customer", f"DisplayName = {name}") == 1
    assert c.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody At All'") == []


def test_batch_with_a_per_item_fault(rig):
    c = rig.client
    existing = c.create("Customer", {"DisplayName": "Existing Client"}, request_id=_rid("e"))
    results = c.batch(
        [
            BatchOperation.create("dup", "Customer", {"DisplayName": "Existing Client"}),
            BatchOperation.create("new", "Customer", {"DisplayName": "Brand New Client"}),
            BatchOperation.update(
                "upd",
                "Customer",
                {"Id": existing["Id"], "SyncToken": "0", "DisplayName": "Existing Client", "Notes": "vip"},
            ),
            BatchOperation.select("q", "SELECT * FROM Item WHERE Name = 'Services'"),
        ],
        request_id=_rid("batch"),
    )
    by_bid = {r.bid: r for r in results}
    assert isinstance(by_bid["dup"].error, QboValidationError)
    assert by_bid["dup"].error.qbo_code == "6240"
    assert f"Id={existing['Id']}" in (by_bid["dup"].error.qbo_detail or "")
    assert by_bid["new"].ok and by_bid["new"].data["DisplayName"] == "Brand New Client"
    assert by_bid["upd"].data["SyncToken"] == "1"
    assert [row["Name"] for row in by_bid["q"].rows] == ["Services"]


def test_cdc_reports_changes_deletions_and_server_time(rig, qbo_sim):
    c = rig.client
    since = datetime.now(UTC) - timedelta(days=1)
    customer = c.create("Customer", {"DisplayName": "CDC Client"}, request_id=_rid("cdc-c"))
    invoice = c.create("Invoice", _invoice_body(customer["Id"], _item_id(rig)), request_id=_rid("cdc-i"))
    c.delete("Invoice", invoice["Id"], invoice["SyncToken"], request_id=_rid("cdc-d"))
    result = c.cdc(["Customer", "Invoice"], since)
    assert customer["Id"] in [r["Id"] for r in result.changed["Customer"]]
    assert [r["Id"] for r in result.deleted["Invoice"]] == [invoice["Id"]]
    assert invoice["Id"] not in [r["Id"] for r in result.changed["Invoice"]]
    assert result.time.tzinfo is not None
    sim_now = datetime.fromisoformat(qbo_sim.control.clock()["now"].replace("Z", "+00:00"))
    assert abs((result.time - sim_now).total_seconds()) < 60
    assert not result.capped


def test_requestid_replay_after_a_dropped_response_creates_nothing_twice(rig, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault(
        "drop_after_commit", count=1, realm_id=qbo_company, method="POST", path_regex="/customer$"
    )
    before = len(qbo_sim.control.entities(qbo_company, "Customer"))
    rid = _rid("replay")
    created = rig.client.create("Customer", {"DisplayName": "Exactly Once LLC"}, request_id=rid)
    customers = qbo_sim.control.entities(qbo_company, "Customer")
    assert len(customers) == before + 1
    assert [x["Id"] for x in customers if x["DisplayName"] == "Exactly Once LLC"] == [created["Id"]]
    assert rig.sleeps == [0.5]  # one backoff, then the replay
    posts = [r for r in qbo_sim.control.requests(realm_id=qbo_company) if r["path"].endswith("/customer")]
    assert len(posts) == 2
    assert all("requestid=" in r.get("query", "") for r in posts)


def test_write_with_lost_response_and_no_attempts_left_is_uncertain_then_resolved_by_replay(
    qbo_sim, qbo_company, oauth_client, connected
):
    rig = make_rig(qbo_sim, qbo_company, oauth_client, connected, max_attempts=1)
    qbo_sim.control.inject_fault(
        "drop_after_commit",
        count=1,
        realm_id=qbo_company,
        method="POST",
        path_regex="/customer$",
        response="http_504",
    )
    rid = _rid("uncertain")
    with pytest.raises(UncertainOutcome):
        rig.client.create("Customer", {"DisplayName": "Maybe Created Inc"}, request_id=rid)
    # the caller resolves it by resending the same logical write: QBO replays the original answer
    again = rig.client.create("Customer", {"DisplayName": "Maybe Created Inc"}, request_id=rid)
    names = [x["DisplayName"] for x in qbo_sim.control.entities(qbo_company, "Customer")]
    assert names.count("Maybe Created Inc") == 1
    assert again["DisplayName"] == "Maybe Created Inc"


def test_5xx_on_reads_is_retried(rig, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("http_503", count=2, realm_id=qbo_company, method="GET")
    assert rig.client.company_info()["Id"] == "1"
    assert rig.sleeps == [0.5, 1.0]


def test_5xx_on_reads_exhausted(rig, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("http_500", count=4, realm_id=qbo_company, method="GET")
    with pytest.raises(ServiceUnavailable):
        rig.client.company_info()


def test_500_on_a_write_is_retried_once_applied_once(rig, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault(
        "http_500", count=1, realm_id=qbo_company, method="POST", path_regex="/customer$"
    )
    created = rig.client.create("Customer", {"DisplayName": "Retry Me LLC"}, request_id=_rid("500"))
    names = [x["DisplayName"] for x in qbo_sim.control.entities(qbo_company, "Customer")]
    assert names.count("Retry Me LLC") == 1
    assert created["DisplayName"] == "Retry Me LLC"


def test_throttle_is_raised_for_later_redelivery(rig, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("throttle", count=1, realm_id=qbo_company)
    with pytest.raises(Throttled) as info:
        rig.client.read("Customer", "1")
    assert info.value.retry_after == 60
    assert rig.sleeps == []


def test_injected_401_refreshes_once(rig, qbo_sim, qbo_company, connected):
    qbo_sim.control.inject_fault("unauthorized", count=1, realm_id=qbo_company)
    assert rig.client.company_info()["Id"] == "1"
    assert rig.tokens.refreshes == [connected.access_token]


def test_minorversion_is_on_every_request(rig, qbo_sim, qbo_company):
    rig.client.company_info()
    rig.client.query("SELECT * FROM Item")
    rig.client.create("Customer", {"DisplayName": "Minor Version Co"}, request_id=_rid("mv"))
    logged = qbo_sim.control.requests(realm_id=qbo_company, limit=3)
    assert len(logged) == 3
    assert all("minorversion=75" in r.get("query", "") for r in logged)


def test_quote_literal_round_trips_quotes_and_backslashes(rig):
    name = "Back\\slash & O'Neil"
    created = rig.client.create("Customer", {"DisplayName": name}, request_id=_rid("bs"))
    rows = rig.client.query(f"SELECT * FROM Customer WHERE DisplayName = {quote_literal(name)}")
    assert [r["Id"] for r in rows] == [created["Id"]]
