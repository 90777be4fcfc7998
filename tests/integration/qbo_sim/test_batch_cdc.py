"""The query endpoint, Batch and CDC over HTTP (QBO.md §2.8-§2.10)."""

from __future__ import annotations

import requests


def test_query_endpoint_get_post_count_and_empty(api, qbo_sim, qbo_company, qbo_tokens):
    for name in ("Alpha", "Beta", "Gamma"):
        api.create("Customer", {"DisplayName": name})
    page = api.query("SELECT * FROM Customer ORDERBY DisplayName DESC MAXRESULTS 2")
    assert [c["DisplayName"] for c in page["Customer"]] == ["Gamma", "Beta"]
    assert page["startPosition"] == 1 and page["maxResults"] == 2
    assert api.query("select count(*) from Customer") == {"totalCount": 3}
    assert api.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody'") == {}
    assert api.query("SELECT * FROM Bill") == {}
    posted = requests.post(
        api.url("query"),
        data="SELECT * FROM Customer WHERE DisplayName = 'Beta'",
        headers={**api.headers(), "Content-Type": "application/text"},
        params={"minorversion": "75"},
        timeout=10,
    )
    assert posted.status_code == 200
    assert posted.json()["QueryResponse"]["Customer"][0]["DisplayName"] == "Beta"


def test_query_hides_inactive_unless_asked(api):
    customer = api.create("Customer", {"DisplayName": "Hidden Co"})
    api.create("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert api.query("SELECT * FROM Customer WHERE DisplayName = 'Hidden Co'") == {}
    found = api.query("SELECT * FROM Customer WHERE DisplayName = 'Hidden Co' AND Active IN (true, false)")
    assert found["Customer"][0]["Id"] == customer["Id"]


def test_query_errors_are_4000_and_4001(api):
    assert api.fault(api.get("query", query="SELECT * FROM Customer WHERE A = 1 OR B = 2"))["code"] == "4000"
    assert (
        api.fault(api.get("query", query="SELECT * FROM Invoice WHERE PrivateNote = 'x'"))["code"] == "4001"
    )
    assert api.fault(api.get("query", query=""))["code"] == "4000"


def test_batch_mixed_items_with_per_item_faults(api, seed):
    existing = api.create("Customer", {"DisplayName": "Existing Co"})
    body = {
        "BatchItemRequest": [
            {"bId": "c1", "operation": "create", "Customer": {"DisplayName": "Batch New"}},
            {"bId": "c2", "operation": "create", "Customer": {"DisplayName": "Existing Co"}},
            {
                "bId": "u1",
                "operation": "update",
                "Customer": {"Id": existing["Id"], "SyncToken": "0", "sparse": True, "Notes": "batched"},
            },
            {"bId": "q1", "Query": "SELECT * FROM Item WHERE Name = 'Sales'"},
        ]
    }
    response = api.post("batch", body)
    assert response.status_code == 200
    items = {r["bId"]: r for r in response.json()["BatchItemResponse"]}
    assert items["c1"]["Customer"]["DisplayName"] == "Batch New"
    fault = items["c2"]["Fault"]
    assert fault["type"] == "ValidationFault"
    assert fault["Error"][0]["code"] == "6240"
    assert fault["Error"][0]["Detail"].endswith(f"Id={existing['Id']}")
    assert items["u1"]["Customer"]["SyncToken"] == "1"
    assert items["q1"]["QueryResponse"]["Item"][0]["Id"] == seed["items"]["Sales"]


def test_batch_delete_and_void_options(api, seed):
    customer = api.create("Customer", {"DisplayName": "Batch Txn"})
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 10.0,
        "SalesItemLineDetail": {"ItemRef": {"value": seed["items"]["Sales"]}},
    }
    one = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    two = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    body = {
        "BatchItemRequest": [
            {"bId": "d", "operation": "delete", "Invoice": {"Id": one["Id"], "SyncToken": "0"}},
            {
                "bId": "v",
                "operation": "update",
                "optionsData": "void",
                "Invoice": {"Id": two["Id"], "SyncToken": "0"},
            },
        ]
    }
    items = {r["bId"]: r for r in api.post("batch", body).json()["BatchItemResponse"]}
    assert items["d"]["Invoice"]["status"] == "Deleted"
    assert items["v"]["Invoice"]["TotalAmt"] == 0


def test_batch_limit_of_30_items_is_1040(api):
    body = {
        "BatchItemRequest": [
            {"bId": f"b{i}", "operation": "create", "Customer": {"DisplayName": f"N{i}"}} for i in range(31)
        ]
    }
    error = api.fault(api.post("batch", body))
    assert error["code"] == "1040"


def test_batch_requestid_replay(api, qbo_sim, qbo_company):
    body = {"BatchItemRequest": [{"bId": "x", "operation": "create", "Customer": {"DisplayName": "Once"}}]}
    first = api.post("batch", body, requestid="batch-1")
    second = api.post("batch", body, requestid="batch-1")
    assert first.json() == second.json()
    assert "Customer" in first.json()["BatchItemResponse"][0]
    assert api.fault(api.post("batch", body, requestid="b" * 37))["code"] == "2130"


def test_cdc_returns_changes_and_deleted_stubs(api, qbo_sim, seed):
    since = qbo_sim.control.clock()["now"]
    qbo_sim.control.advance_clock(1)
    customer = api.create("Customer", {"DisplayName": "CDC Co"})
    invoice = api.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 10.0,
                    "SalesItemLineDetail": {"ItemRef": {"value": seed["items"]["Sales"]}},
                }
            ],
        },
    )
    api.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="delete")
    response = api.get("cdc", entities="Customer,Invoice,Payment", changedSince=since)
    assert response.status_code == 200
    body = response.json()
    groups = body["CDCResponse"][0]["QueryResponse"]
    assert groups[0]["Customer"][0]["Id"] == customer["Id"]
    assert groups[1]["Invoice"] == [
        {
            "Id": invoice["Id"],
            "status": "Deleted",
            "domain": "QBO",
            "MetaData": groups[1]["Invoice"][0]["MetaData"],
        }
    ]
    assert groups[2] == {}
    assert "time" in body
    # nothing seeded (older than changedSince) comes back
    assert all(c["DisplayName"] == "CDC Co" for c in groups[0]["Customer"])


def test_cdc_window_cap_and_unsupported_entities(api, qbo_sim):
    old = "2020-01-01T00:00:00-08:00"
    assert api.fault(api.get("cdc", entities="Customer", changedSince=old))["code"] == "4001"
    now = qbo_sim.control.clock()["now"]
    assert api.fault(api.get("cdc", entities="TaxCode", changedSince=now))["code"] == "4001"
    assert api.fault(api.get("cdc", entities="Customer"))["code"] == "2020"


def test_cdc_caps_at_1000_objects(api, qbo_sim):
    since = qbo_sim.control.clock()["now"]
    qbo_sim.control.advance_clock(1)
    for start in range(0, 1005, 30):
        items = [
            {"bId": f"b{i}", "operation": "create", "Customer": {"DisplayName": f"Bulk {i}"}}
            for i in range(start, min(start + 30, 1005))
        ]
        assert api.post("batch", {"BatchItemRequest": items}).status_code == 200
    groups = api.get("cdc", entities="Customer", changedSince=since).json()["CDCResponse"][0]["QueryResponse"]
    assert len(groups[0]["Customer"]) == 1000
