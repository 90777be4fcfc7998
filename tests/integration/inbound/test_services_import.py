"""Copying services from QuickBooks (C.2, qbsync.inbound.services_import) through the admin API handler."""

from __future__ import annotations

import secrets

from tests.integration.errorcenter.actions.conftest import Env, platform_event


def test_candidates_and_copy(env: Env) -> None:
    env.stack.set_settings(env.firm, sync_accounts="all")
    env.sync(platform_event("service_created", env.firm))  # the platform's "Bookkeeping (monthly)"
    qbo = env.qbo_client()
    income = next(a for a in env.qbo("Account") if a["Name"] == "Services")["Id"]

    def item(name: str, **fields: object) -> str:
        body = {"Name": name, "Type": "Service", "IncomeAccountRef": {"value": income}, **fields}
        return str(qbo.create("Item", body, request_id=f"t-item-{secrets.token_hex(6)}")["Id"])

    payroll = item("Payroll (monthly)", Sku="hour", UnitPrice=95, Description="Monthly payroll run")
    advisory = item("Advisory", Type="NonInventory", Sku=" Item ", UnitPrice=200)
    flat = item("Flat fee", Sku="flat", UnitPrice=50)
    discount = item("Discount", Sku="item", UnitPrice=-5)
    folder = str(qbo.create("Item", {"Name": "Tax work", "Type": "Category"}, request_id="t-item-cat")["Id"])
    consulting = item("Consulting", Sku="hour", UnitPrice=10)
    # the platform has a service of that name too (whatever its sync did with it: linked or failed 6240)
    platform_consulting = platform_event("service_created", env.firm, id="svc-301")
    platform_consulting["detail"]["data"]["name"] = "CONSULTING"
    env.sync(platform_consulting)

    listed = env.call("GET", "/services/qbo-candidates", role="staff")

    assert listed.status == 200, listed.body
    verdicts = {i["qbo_item_id"]: (i["copyable"], i["skip_reason"]) for i in listed.json()["items"]}
    synced_item = env.record("service", "svc-300").qbo_id
    assert verdicts[payroll] == (True, None)
    assert verdicts[advisory] == (True, None)
    assert verdicts[flat] == (False, "unsupported_rate_type")
    assert verdicts[discount] == (False, "negative_rate")
    assert verdicts[folder] == (False, "category")
    assert verdicts[synced_item] == (False, "name_exists")
    assert verdicts[consulting] == (False, "name_exists")
    payroll_row = next(i for i in listed.json()["items"] if i["qbo_item_id"] == payroll)
    assert (payroll_row["rate"], payroll_row["rate_type"], payroll_row["type"]) == (
        "95.00",
        "hour",
        "Service",
    )

    copied = env.call("POST", "/services/copy", body={"qbo_item_ids": [payroll, flat, advisory, "999999"]})

    assert copied.status == 200, copied.body
    assert [(r["qbo_item_id"], r["outcome"], r["skip_reason"]) for r in copied.json()["results"]] == [
        (payroll, "copied", None),
        (flat, "skipped", "unsupported_rate_type"),
        (advisory, "copied", None),
        ("999999", "not_found", None),
    ]
    imported = sorted(
        (d["qbo_item_id"], d["name"], d["rate"], d["rate_type"], d["description"], d["requested_by"])
        for t, d in env.events()
        if t == "Service Imported"
    )
    assert imported == sorted(
        [
            (payroll, "Payroll (monthly)", "95.00", "hour", "Monthly payroll run", "user-1"),
            (advisory, "Advisory", "200.00", "item", None, "user-1"),
        ]
    )
    assert env.call("POST", "/services/copy", role="staff", body={"qbo_item_ids": [payroll]}).status == 403
    for bad in ({"qbo_item_ids": []}, {"qbo_item_ids": ["x"]}, {"qbo_item_ids": [payroll, payroll]}, {}):
        assert env.call("POST", "/services/copy", body=bad).status == 400, bad
    assert env.call("GET", "/services/qbo-candidates", firm="firm-never-connected").status == 409
