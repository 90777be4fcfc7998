"""The entity engine without HTTP: rules, computed fields and change records."""

from __future__ import annotations

import pytest

from local.qbo_sim.clock import SimClock
from local.qbo_sim.entities.engine import Engine, clean, money, num
from local.qbo_sim.entities.seed import seed_company
from local.qbo_sim.faults import QboFault
from local.qbo_sim.state import Company


@pytest.fixture
def engine():
    company = Company(realm_id="1", company_name="Unit Co", seed="default")
    clock = SimClock()
    seed_company(company, clock)
    return Engine(company, clock)


def _line(amount, qty=None, price=None, item="1"):
    detail = {"ItemRef": {"value": item}}
    if qty is not None:
        detail["Qty"] = qty
    if price is not None:
        detail["UnitPrice"] = price
    return {"DetailType": "SalesItemLineDetail", "Amount": amount, "SalesItemLineDetail": detail}


def test_clean_drops_empty_values_but_keeps_false_and_zero():
    assert clean({"a": "", "b": None, "c": {}, "d": False, "e": 0, "f": {"g": ""}, "h": []}) == {
        "d": False,
        "e": 0,
        "h": [],
    }


def test_money_and_rounding():
    assert num(money("100.005", "x")) == 100.01  # half-up
    with pytest.raises(QboFault) as err:
        money("abc", "Line.Amount")
    assert err.value.code == "2010"
    with pytest.raises(QboFault):
        money(True, "Line.Amount")


def test_create_records_changes_and_ids(engine):
    customer = engine.create("Customer", {"DisplayName": "Unit Customer"})
    invoice = engine.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line(50)]})
    payment = engine.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 50,
            "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    ops = [(c.entity, c.operation) for c in engine.changes]
    assert ops == [
        ("Customer", "Create"),
        ("Invoice", "Create"),
        ("Payment", "Create"),
        ("Invoice", "Update"),
    ]
    assert engine.read("Invoice", invoice["Id"])["Balance"] == 0
    assert engine.read("Customer", customer["Id"])["Balance"] == 0
    assert int(payment["Id"]) == int(invoice["Id"]) + 1


def test_qty_or_price_completed_from_amount(engine):
    customer = engine.create("Customer", {"DisplayName": "Unit Qty"})
    invoice = engine.create(
        "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line(90, qty=3), _line(40, price=20)]}
    )
    assert invoice["Line"][0]["SalesItemLineDetail"]["UnitPrice"] == 30
    assert invoice["Line"][1]["SalesItemLineDetail"]["Qty"] == 2
    assert invoice["TotalAmt"] == 130


def test_discount_line_reduces_total(engine):
    customer = engine.create("Customer", {"DisplayName": "Unit Discount"})
    invoice = engine.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                _line(200),
                {
                    "DetailType": "DiscountLineDetail",
                    "Amount": 0,
                    "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
                },
            ],
        },
    )
    assert invoice["TotalAmt"] == 180


def test_void_and_delete_restrictions(engine):
    customer = engine.create("Customer", {"DisplayName": "Unit Void"})
    with pytest.raises(QboFault) as err:
        engine.void("Customer", {"Id": customer["Id"], "SyncToken": "0"})
    assert err.value.code == "500"
    with pytest.raises(QboFault) as err:
        engine.delete("Invoice", {"Id": "999", "SyncToken": "0"})
    assert err.value.code == "610"
    with pytest.raises(QboFault) as err:
        engine.update("Customer", {"Id": customer["Id"], "DisplayName": "x"})
    assert err.value.code == "2020"


def test_sub_customer_path_and_level(engine):
    parent = engine.create("Customer", {"DisplayName": "Parent Co"})
    child = engine.create("Customer", {"DisplayName": "Child Job", "ParentRef": {"value": parent["Id"]}})
    assert child["Job"] is True and child["Level"] == 1
    assert child["FullyQualifiedName"] == "Parent Co:Child Job"
