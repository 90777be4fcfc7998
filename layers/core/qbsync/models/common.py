"""Value types shared by the event models: money, quantities, currencies, ids, addresses, phones.

Money travels as a JSON *string* with exactly two decimals (``"1250.00"``): JSON numbers are binary
floats on many platforms and lose cents. Inside Python it is a :class:`~decimal.Decimal`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from qbsync.vocab import ID_MAX_LENGTH, ID_PATTERN

__all__ = [
    "Address",
    "Currency",
    "Email",
    "EventModel",
    "Id",
    "Money",
    "NonNegativeMoney",
    "Phone",
    "PositiveMoney",
    "Quantity",
]

_MONEY = re.compile(r"^-?\d{1,13}\.\d{2}$")
_QUANTITY = re.compile(r"^\d{1,9}(\.\d{1,4})?$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def _parse_money(value: Any) -> Decimal:
    # Strings only (or Decimals built in Python): a JSON float has already lost precision.
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("amount must be a finite number")
        cents = value.quantize(Decimal("0.01"))
        if cents != value:
            raise ValueError("amount has more than two decimals")
        return cents
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('amount must be a string with two decimals, e.g. "125.00"')
    if not _MONEY.match(value):
        raise ValueError('amount must be a string with exactly two decimals, e.g. "125.00"')
    return Decimal(value)


def _money_text(value: Decimal) -> str:
    return f"{value:.2f}"


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("amount must not be negative")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("amount must be greater than zero")
    return value


def _parse_quantity(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise ValueError('quantity must be a decimal string, e.g. "1.5"')
    if not _QUANTITY.match(text):
        raise ValueError('quantity must be a non-negative decimal string with at most 4 decimals, e.g. "1.5"')
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already guarantees a number
        raise ValueError("quantity is not a number") from exc


def _quantity_text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value != value.to_integral() else str(int(value))


_MONEY_SCHEMA = {"type": "string", "pattern": r"^-?\d{1,13}\.\d{2}$", "examples": ["125.00"]}

Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(_money_text, return_type=str),
    WithJsonSchema({**_MONEY_SCHEMA, "description": "Amount, string with two decimals"}),
]
NonNegativeMoney = Annotated[
    Money,
    AfterValidator(_non_negative),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{1,13}\.\d{2}$",
            "examples": ["125.00"],
            "description": "Amount >= 0, string with two decimals",
        }
    ),
]
PositiveMoney = Annotated[
    Money,
    AfterValidator(_positive),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{1,13}\.\d{2}$",
            "not": {"pattern": r"^0+\.00$"},
            "examples": ["125.00"],
            "description": "Amount > 0, string with two decimals",
        }
    ),
]
Quantity = Annotated[
    Decimal,
    BeforeValidator(_parse_quantity),
    PlainSerializer(_quantity_text, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{1,9}(\.\d{1,4})?$",
            "examples": ["1", "1.5"],
            "description": "Quantity >= 0, decimal string with at most 4 decimals",
        }
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["USD"])]
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


Email = Annotated[
    str,
    Field(max_length=254),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]


class EventModel(BaseModel):
    """Base of every event model: unknown fields are rejected (a typo must not vanish silently)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, str_strip_whitespace=True)


class Address(EventModel):
    line1: str | None = Field(None, max_length=500)
    line2: str | None = Field(None, max_length=500)
    city: str | None = Field(None, max_length=255)
    region: str | None = Field(None, max_length=255, description="State / province / county")
    postal_code: str | None = Field(None, max_length=30)
    country: str | None = Field(None, max_length=255)


class Phone(EventModel):
    type: Literal["mobile", "work", "home", "fax", "other"] = "other"
    number: str = Field(min_length=1, max_length=30)
