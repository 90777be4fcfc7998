"""Value helpers shared by the repositories (DynamoDB returns Decimal numbers and Binary blobs)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def as_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return float(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def as_int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes(value.value)  # boto3.dynamodb.types.Binary
