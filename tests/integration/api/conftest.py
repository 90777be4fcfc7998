"""The admin API handler (functions/admin_api) in-process, configured as template.yaml configures it.

Runs on the session's moto server and QuickBooks simulator. API Gateway is played by :meth:`AdminApi.call`:
it builds the proxy event API Gateway sends for the greedy ``/{proxy+}`` route, with the authorizer
context ``{firm_id, user_id, role}`` the REQUEST authorizer returns (the authorizer itself is tested in
tests/integration/connection). A firm is connected by storing a connection with tokens the simulator
issued (tests/fixtures/firms.py; the OAuth flow is tested elsewhere).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from qbsync import wiring
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.repositories.connections import ConnectionsRepository
from qbsync.repositories.records import RecordsRepository

from local.stack.provision import Resources
from tests.fixtures.firms import company_for, connections_repository, store_connection
from tests.fixtures.firms import new_firm as new_firm  # the tests of this folder import it from here
from tests.fixtures.lambda_runtime import HttpResult, LambdaContext, load_function

ROOT = Path(__file__).resolve().parents[3]


def load_handler(name: str) -> Any:
    return load_function(name, prefix="api")


HANDLER = load_handler("admin_api")


@dataclass
class AdminApi:
    resources: Resources
    sim: Any
    realm_id: str
    client_id: str
    env: dict[str, str]
    #: companies made for other firms than the test's (deleted after the test)
    made: list[str] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        *,
        firm_id: str,
        role: str = "owner",
        body: Any = None,
        raw_body: str | None = None,
        query: dict[str, str] | None = None,
    ) -> HttpResult:
        """One request through the greedy proxy route, as API Gateway delivers it after the authorizer."""
        event = {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method,
            "headers": {"Content-Type": "application/json", "Authorization": "Bearer x"},
            "multiValueHeaders": {"Content-Type": ["application/json"], "Authorization": ["Bearer x"]},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": {"proxy": quote(path.lstrip("/"))},
            "stageVariables": None,
            "requestContext": {
                "resourcePath": "/{proxy+}",
                "httpMethod": method,
                "path": f"/dev{path}",
                "stage": "dev",
                "requestId": str(uuid.uuid4()),
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "identity": {"sourceIp": "203.0.113.7"},
                "authorizer": {
                    "firm_id": firm_id,
                    "user_id": "user-1",
                    "role": role,
                    "principalId": "user-1",
                },
            },
            "body": raw_body if raw_body is not None else (json.dumps(body) if body is not None else None),
            "isBase64Encoded": False,
        }
        response = HANDLER.lambda_handler(event, LambdaContext())
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        return HttpResult(response["statusCode"], headers, response.get("body") or "")

    @property
    def sync_table(self) -> DynamoTable:
        return DynamoTable(self.env["SYNC_TABLE_NAME"])

    @property
    def records(self) -> RecordsRepository:
        return RecordsRepository(self.sync_table)

    def connections(self) -> ConnectionsRepository:
        return connections_repository(self.env)

    def connect(self, firm_id: str, realm_id: str | None = None) -> str:
        """Store a ``connected`` connection of ``firm_id`` to ``realm_id`` (default: the test company; a
        company of its own when another firm holds it)."""
        realm = company_for(self.connections(), self.sim, firm_id, realm_id or self.realm_id, self.made)
        store_connection(self.connections(), self.sim, self.client_id, firm_id, realm)
        return realm

    def qbo(self, entity: str) -> list[dict[str, Any]]:
        return self.sim.control.entities(self.realm_id, entity)


@pytest.fixture
def api(
    aws_clean: Resources,
    function_env: Any,
    intuit_app_secret: Any,
    qbo_sim: Any,
    qbo_company: str,
) -> Iterator[AdminApi]:
    env = function_env("AdminApiFunction")
    wiring.reset()
    api = AdminApi(aws_clean, qbo_sim, qbo_company, intuit_app_secret.client_id, env)
    yield api
    wiring.reset()
    for realm in api.made:
        qbo_sim.control.delete_company(realm)
