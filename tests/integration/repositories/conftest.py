"""Sync-state records on moto (the SyncStateTable of template.yaml), with an injected clock.

Also the fixtures of tests/integration/outbound (the exactly-once writer works on these records).
"""

from __future__ import annotations

import secrets

import boto3
import pytest
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.repositories.records import RecordsRepository

T0 = 1_795_449_900.0


class FakeClock:
    """Injected time: tests move it explicitly (leases expire without sleeping)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@pytest.fixture
def table(provisioned) -> DynamoTable:
    client = boto3.client("dynamodb", endpoint_url=provisioned.endpoint_url, region_name=provisioned.region)
    return DynamoTable(provisioned.ref("SyncStateTable"), client=client)


@pytest.fixture
def records(table) -> RecordsRepository:
    return RecordsRepository(table)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
