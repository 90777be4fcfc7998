"""The application's local stack (template.yaml) from outside: its HTTP API, authorizer and schedule."""

from __future__ import annotations

import json

import pytest
import requests

from local.stack.provision import clients
from tests.fixtures.firms import admin_jwt

pytestmark = pytest.mark.e2e


def _admin_jwt(stack, firm_id: str = "firm-e2e", role: str = "owner", key: str | None = None) -> str:
    return admin_jwt(stack, firm_id, role=role, user_id="user-e2e", key=key)


def test_stack_serves_the_template_routes_behind_the_authorizer(local_stack, qbo_sim) -> None:
    url = f"{local_stack.api_url}/connection"
    missing = requests.get(url, timeout=60)
    assert missing.status_code == 401
    assert missing.json() == {"error": "unauthorized", "message": "a valid admin bearer token is required"}
    forged = requests.get(
        url, headers={"Authorization": f"Bearer {_admin_jwt(local_stack, key='x' * 64)}"}, timeout=60
    )
    assert forged.status_code == 401
    owner = {"Authorization": f"Bearer {_admin_jwt(local_stack)}"}
    connect = requests.post(
        f"{local_stack.api_url}/connection/connect-url", json={}, headers=owner, timeout=60
    )
    assert connect.status_code == 200, connect.text
    assert set(connect.json()) >= {"url", "expires_at"}
    assert connect.json()["url"].startswith(qbo_sim.url)  # the simulator's authorize endpoint
    staff = {"Authorization": f"Bearer {_admin_jwt(local_stack, role='staff')}"}
    refused = requests.post(
        f"{local_stack.api_url}/connection/connect-url", json={}, headers=staff, timeout=60
    )
    assert refused.status_code == 403  # owner only: the handler reads the role from the authorizer context
    # Any other path is AdminApiFunction's greedy /{proxy+} route, behind the authorizer: 401 without a
    # token, a JSON 404 from the handler with one.
    unknown = requests.get(f"{local_stack.api_url}/nope", timeout=60)
    assert unknown.status_code == 401
    unknown = requests.get(f"{local_stack.api_url}/nope", headers=owner, timeout=60)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")


def test_stack_points_the_functions_at_the_simulator_and_the_local_api(local_stack, qbo_sim) -> None:
    env = local_stack.resources.functions["OAuthFunction"].environment
    assert env["OAUTH_REDIRECT_URI"] == f"{local_stack.api_url}/oauth/callback"
    assert env["QBO_API_BASE_URL"] == qbo_sim.url
    creds = json.loads(
        clients(local_stack.endpoint_url, local_stack.region)["secretsmanager"].get_secret_value(
            SecretId=local_stack.resources.ref("IntuitAppSecret")
        )["SecretString"]
    )
    assert creds["client_id"] == local_stack.intuit_app["client_id"]


def test_keepalive_schedule_fires_the_real_handler(local_stack) -> None:
    schedule = local_stack.schedule_id_for("TokenKeepAliveFunction")
    (result,) = local_stack.fire_schedule(schedule)
    assert result.ok, result.error
