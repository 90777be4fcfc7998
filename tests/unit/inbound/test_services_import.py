"""Pure rules of the services import (qbsync.inbound.services_import): Sku → rate type, copy verdicts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from qbsync.inbound.services_import import ServicesImport, rate_type_of


@pytest.mark.parametrize(
    ("sku", "expected"),
    [
        ("hour", "hour"),
        ("Item", "item"),
        (" HOUR ", "hour"),
        ("flat", None),
        ("", None),
        (None, None),
        ("SKU-1", None),
    ],
)
def test_rate_type_is_read_back_from_the_sku(sku: object, expected: str | None) -> None:
    assert rate_type_of(sku) == expected


def _row(**fields: object) -> dict[str, object]:
    return {"Id": "7", "Name": "Payroll", "Type": "Service", "UnitPrice": 95, "Sku": "hour", **fields}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (_row(), None),
        (_row(Type="NonInventory", Sku="item"), None),
        (_row(Type="Category"), "category"),
        (_row(Name="PAYROLL"), "name_exists"),
        (_row(Id="99"), "name_exists"),
        (_row(UnitPrice=-1), "negative_rate"),
        (_row(Sku="flat"), "unsupported_rate_type"),
    ],
)
def test_copy_verdicts(row: dict[str, object], reason: str | None) -> None:
    platform_names = {"payroll"} if row["Name"] == "PAYROLL" else set()
    candidate = ServicesImport._judge(row, platform_names, {"99"})
    assert candidate is not None
    assert (candidate.copyable, candidate.skip_reason) == (reason is None, reason)


def test_inventory_items_are_not_offered_and_rates_are_cents() -> None:
    assert ServicesImport._judge(_row(Type="Inventory"), set(), set()) is None
    candidate = ServicesImport._judge(_row(UnitPrice=12.5), set(), set())
    assert candidate is not None and candidate.rate == Decimal("12.50")
