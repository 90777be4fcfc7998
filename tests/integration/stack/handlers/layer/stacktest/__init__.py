"""Shared helper of the test handlers (a layer, to prove layers are on the runtime's path)."""

import os
import time

import boto3


def mark(category: str, key: str, **attrs: str) -> None:
    """Record that a handler ran (the tests read the marker table)."""
    table = boto3.resource("dynamodb").Table(os.environ["MARKER_TABLE_NAME"])
    table.put_item(Item={"pk": f"MARK#{category}", "sk": key, "at": str(time.time()), **attrs})
