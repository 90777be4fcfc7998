"""In-process AWS (moto ``mock_aws``, no network) with the sync-state table of template.yaml."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.kms import TokenCipher
from qbsync.auth import Caller
from qbsync.connection.events import ConnectionEvents
from qbsync.connection.service import ConnectionService
from qbsync.connection.state import StateSigner
from qbsync.repositories.connections import ConnectionsRepository
from qbsync.repositories.oauth_grants import ParkedGrants
from qbsync.repositories.oauth_state import OAuthStateRepository

from tests.unit.connection.support import (
    Clock,
    FakeCompanyInfo,
    FakeIntuit,
    RecordingPublisher,
    SerializedClient,
    create_table_from_template,
)

REGION = "us-east-1"
SIGNING_KEY = "unit-test-state-signing-key-0123456789"
REDIRECT_URI = "https://api.example.com/dev/oauth/callback"
RETURN_URL = "https://platform.example/quickbooks/return?tab=accounting"


@pytest.fixture(scope="module")
def aws_clients() -> Iterator[dict[str, Any]]:
    """One in-process moto per test module (cheap tables per test; the KMS key is shared)."""
    with mock_aws():
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        kms = session.client("kms")
        yield {
            "dynamodb": SerializedClient(session.client("dynamodb")),
            "kms": kms,
            "key_id": kms.create_key(Description="tokens")["KeyMetadata"]["KeyId"],
        }


@pytest.fixture
def aws(aws_clients: dict[str, Any]) -> dict[str, Any]:
    """A fresh sync-state table (from template.yaml) for each test."""
    name = f"sync-state-{uuid.uuid4().hex[:12]}"
    create_table_from_template(aws_clients["dynamodb"], "SyncStateTable", name)
    return {**aws_clients, "table_name": name}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table(aws: dict[str, Any]) -> DynamoTable:
    return DynamoTable(aws["table_name"], client=aws["dynamodb"])


@pytest.fixture
def repo(aws: dict[str, Any], table: DynamoTable) -> ConnectionsRepository:
    return ConnectionsRepository(table, TokenCipher(aws["key_id"], client=aws["kms"]))


@pytest.fixture
def grants(aws: dict[str, Any], table: DynamoTable) -> ParkedGrants:
    return ParkedGrants(table, TokenCipher(aws["key_id"], client=aws["kms"]))


@pytest.fixture
def intuit(clock: Clock) -> FakeIntuit:
    return FakeIntuit(clock=clock)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def service(
    repo: ConnectionsRepository,
    table: DynamoTable,
    grants: ParkedGrants,
    intuit: FakeIntuit,
    publisher: RecordingPublisher,
    clock: Clock,
) -> ConnectionService:
    return ConnectionService(
        connections=repo,
        states=OAuthStateRepository(table),
        grants=grants,
        oauth=intuit,
        signer=StateSigner(SIGNING_KEY),
        events=ConnectionEvents(publisher, clock=clock, correlation_id=lambda: "corr-1"),
        redirect_uri=REDIRECT_URI,
        qbo_client=lambda realm_id, tokens: FakeCompanyInfo(intuit, realm_id, tokens),
        return_url=RETURN_URL,
        clock=clock,
        token_provider_options={"sleep": lambda _s: None, "wait_attempts": 3},
    )


@pytest.fixture
def owner() -> Caller:
    return Caller(firm_id="firm-a", user_id="user-owner", role="owner")
