"""Issue 10 item 6, from outside: a JWT whose firm_id or sub is outside the documented id pattern is
refused by the authorizer (401, like a forged token) on every route, and nothing is stored for it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.stack.provision import clients
from tests.fixtures.firms import admin_jwt

pytestmark = pytest.mark.e2e

UNAUTHORIZED = {"error": "unauthorized", "message": "a valid admin bearer token is required"}


def _items_naming(stack: Any, firm_id: str) -> list[dict[str, Any]]:
    """Every item of the sync-state table (connections, settings, OAuth states, records) of ``firm_id``."""
    found = clients(stack.endpoint_url, stack.region)["dynamodb"].scan(
        TableName=stack.resources.ref("SyncStateTable"),
        FilterExpression="firm_id = :f OR contains(pk, :f)",
        ExpressionAttributeValues={":f": {"S": firm_id}},
    )
    return found["Items"]


@pytest.mark.parametrize(
    ("firm_id", "user_id"),
    [
        ("firm#e2e", "u-owner"),  # the table keys' separator
        ("firm/e2e", "u-owner"),
        ("firm e2e", "u-owner"),
        ("firmé-e2e", "u-owner"),
        ("firm-claims-e2e", "user 1"),
    ],
)
def test_a_token_with_a_claim_outside_the_id_pattern_is_refused_everywhere(
    local_stack: Any, firm_id: str, user_id: str
) -> None:
    headers = {"Authorization": f"Bearer {admin_jwt(local_stack, firm_id, user_id=user_id)}"}
    api = local_stack.api_url

    answers = [
        requests.post(f"{api}/connection/connect-url", json={}, headers=headers, timeout=60),
        requests.get(f"{api}/connection", headers=headers, timeout=60),
        requests.put(f"{api}/settings", json={"sync_accounts": "all"}, headers=headers, timeout=60),
        requests.get(f"{api}/errors", headers=headers, timeout=60),
    ]

    assert [(a.status_code, a.json()) for a in answers] == [(401, UNAUTHORIZED)] * len(answers)
    assert _items_naming(local_stack, firm_id) == []  # no OAuth state, no settings, nothing


def test_a_token_with_valid_ids_still_passes(local_stack: Any) -> None:
    headers = {
        "Authorization": f"Bearer {admin_jwt(local_stack, 'firm_claims.e2e:1', user_id='ana@firm.example')}"
    }
    answer = requests.get(f"{local_stack.api_url}/connection", headers=headers, timeout=60)
    assert answer.status_code == 404  # through the authorizer: the firm has not connected yet
