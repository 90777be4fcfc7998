"""Property tests of the value types and the float-safety of the DynamoDB adapter."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from qbsync.adapters.dynamodb import to_dynamo
from qbsync.models.common import Money, PositiveMoney, Quantity

money = TypeAdapter(Money)
positive = TypeAdapter(PositiveMoney)
quantity = TypeAdapter(Quantity)

cents = st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1)


@given(cents)
def test_money_round_trips_exactly_through_json(n):
    text = f"{Decimal(n) / 100:.2f}"
    value = money.validate_python(text)
    assert value == Decimal(n) / 100
    assert money.dump_python(value, mode="json") == text
    assert money.validate_json(money.dump_json(value)) == value


@pytest.mark.parametrize("bad", [12.5, 12, "12", "12.5", "12.505", "1,000.00", "NaN", True, None, " 1.00x"])
def test_money_rejects_anything_but_two_decimal_strings(bad):
    with pytest.raises(ValidationError):
        money.validate_python(bad)


def test_positive_money_rejects_zero_and_negatives():
    assert positive.validate_python("0.01") == Decimal("0.01")
    for bad in ("0.00", "-1.00"):
        with pytest.raises(ValidationError):
            positive.validate_python(bad)


@given(st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False))
def test_quantity_round_trips(value):
    text = quantity.dump_python(quantity.validate_python(format(value, "f")), mode="json")
    assert Decimal(text) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_to_dynamo_keeps_the_shortest_float_repr(value):
    converted = to_dynamo({"x": [value]})["x"][0]
    assert isinstance(converted, Decimal) and float(converted) == value


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN")])
def test_to_dynamo_rejects_non_finite_numbers(bad):
    with pytest.raises(ValueError, match=r"\$\.a\.b"):
        to_dynamo({"a": {"b": bad}})
