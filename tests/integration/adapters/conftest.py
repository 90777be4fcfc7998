"""A moto server of our own for the core adapter tests (free port, stopped at the end).

Clients are built with an explicit endpoint and fake credentials, so nothing here touches the
process environment or the adapters' container-wide default clients.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@pytest.fixture(scope="package")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="package")
def aws_client(moto_endpoint: str) -> Callable[[str], Any]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    cache: dict[str, Any] = {}

    def make(service: str) -> Any:
        if service not in cache:
            cache[service] = session.client(service, endpoint_url=moto_endpoint)
        return cache[service]

    return make


@pytest.fixture
def unique() -> str:
    """A short unique suffix: moto's state is process-wide, so every test names its own resources."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def table_name(aws_client: Callable[[str], Any], unique: str) -> str:
    """A table with the contract's key design (pk/sk, gsi1, gsi2)."""
    name = f"core-test-{unique}"
    attrs = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
    aws_client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attrs],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": gsi,
                "KeySchema": [
                    {"AttributeName": f"{gsi}pk", "KeyType": "HASH"},
                    {"AttributeName": f"{gsi}sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for gsi in ("gsi1", "gsi2")
        ],
    )
    return name
