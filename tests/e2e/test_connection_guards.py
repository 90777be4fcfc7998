"""Issue 10 items 1 and 8 through the local stack's HTTP API, as a browser and the platform drive it.

The OAuth callback proves the company with the new token and sends the browser to the platform's return
URL with a one-time handle; the platform completes with the JWT of the user who started
(``POST /connection/complete``). Each refusal asserts the status, the message and that nothing changed:
the connection (``GET /connection``) and the realm index (the repository). An expired handle needs a
clock the stack does not let a test move: tests/unit/connection/test_completion.py covers it.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fixtures.firms import (
    admin_jwt,
    authorize_through_stack,
    complete_through_stack,
    connect_through_stack,
    connections_repository,
    handle_of,
    new_firm,
)

pytestmark = pytest.mark.e2e

REALM_TAKEN = "connected to another firm; it must be disconnected there"
HANDLE_UNKNOWN = (
    "this QuickBooks connection handle is unknown, already used or expired; start the connection again"
)


@pytest.fixture
def company(qbo_sim: Any) -> Iterator[Any]:
    made: list[str] = []

    def create(name: str = "") -> str:
        realm = qbo_sim.control.create_company(company_name=name or f"Guard Co {secrets.token_hex(3)}")
        made.append(realm["realm_id"])
        return str(realm["realm_id"])

    yield create
    for realm_id in made:
        qbo_sim.control.delete_company(realm_id)


@pytest.fixture
def repo(local_stack: Any) -> Any:
    return connections_repository(local_stack.resources.functions["OAuthFunction"].environment)


def _token(stack: Any, firm_id: str, user_id: str = "u-owner", role: str = "owner") -> str:
    return admin_jwt(stack, firm_id, user_id=user_id, role=role)


def _connection(stack: Any, firm_id: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {_token(stack, firm_id, role='staff', user_id='u-staff')}"}
    return requests.get(f"{stack.api_url}/connection", headers=headers, timeout=60)


def test_first_connection_and_switch_through_the_platform_step(local_stack, qbo_sim, company, repo):
    firm, first, second = new_firm(), company("First books"), company("Second books")
    owner = _token(local_stack, firm)

    redirected = authorize_through_stack(local_stack, qbo_sim, owner, first)
    assert redirected.status_code == 303 and _connection(local_stack, firm).status_code == 404
    done = complete_through_stack(local_stack, owner, handle_of(redirected))
    assert done.status_code == 200 and done.json()["change"] == "connected", done.text
    assert repo.firm_of_realm(first) == firm

    switched = complete_through_stack(
        local_stack, owner, handle_of(authorize_through_stack(local_stack, qbo_sim, owner, second))
    )
    assert switched.status_code == 200 and switched.json()["change"] == "switch_pending"
    assert "ACCEPT" in switched.json()["message"]
    confirmed = requests.post(
        f"{local_stack.api_url}/connection/confirm-switch",
        json={"confirmation": "ACCEPT"},
        headers={"Authorization": f"Bearer {owner}"},
        timeout=60,
    )
    assert confirmed.status_code == 200 and confirmed.json()["realm_id"] == second, confirmed.text
    assert repo.firm_of_realm(second) == firm and repo.firm_of_realm(first) is None


def test_a_forged_realm_id_is_refused_and_changes_nothing(local_stack, qbo_sim, company, repo):
    firm, victim = new_firm(), new_firm()
    own, theirs = company(), company()
    connect_through_stack(local_stack, qbo_sim, _token(local_stack, victim), theirs)
    qbo_sim.control.set_consent(own, client_id=local_stack.intuit_app["client_id"])
    http = requests.Session()
    started = http.post(
        f"{local_stack.api_url}/connection/connect-url",
        json={},
        headers={"Authorization": f"Bearer {_token(local_stack, firm)}"},
        timeout=60,
    )
    consent = http.get(started.json()["url"], allow_redirects=False, timeout=30)
    callback = consent.headers["Location"].replace(f"realmId={own}", f"realmId={theirs}")
    assert f"realmId={theirs}" in callback

    forged = http.get(callback, allow_redirects=False, timeout=60)

    assert forged.status_code == 403 and "text/html" in forged.headers["Content-Type"]
    assert f"did not confirm access to company {theirs}" in html.unescape(forged.text)
    assert _connection(local_stack, firm).status_code == 404
    assert repo.firm_of_realm(theirs) == victim and repo.indexed_firms(theirs) == [(victim, "connected")]
    assert repo.indexed_firms(own) == []


def test_a_company_connected_to_another_firm_is_refused(local_stack, qbo_sim, company, repo):
    firm, holder, realm = new_firm(), new_firm(), company()
    connect_through_stack(local_stack, qbo_sim, _token(local_stack, holder), realm)
    holder_before = _connection(local_stack, holder).json()

    refused = authorize_through_stack(local_stack, qbo_sim, _token(local_stack, firm), realm)

    assert refused.status_code == 409 and "text/html" in refused.headers["Content-Type"]
    page = html.unescape(refused.text)
    assert REALM_TAKEN in page and holder not in page
    assert _connection(local_stack, firm).status_code == 404
    assert _connection(local_stack, holder).json() == holder_before
    assert repo.firm_of_realm(realm) == holder and repo.indexed_firms(realm) == [(holder, "connected")]


def test_a_handle_completed_by_another_user_of_the_firm_is_refused(local_stack, qbo_sim, company, repo):
    firm, realm = new_firm(), company()
    redirected = authorize_through_stack(local_stack, qbo_sim, _token(local_stack, firm, "u-starter"), realm)

    refused = complete_through_stack(
        local_stack, _token(local_stack, firm, "u-colleague"), handle_of(redirected)
    )

    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert "only the user who started this QuickBooks connection" in refused.json()["message"]
    assert _connection(local_stack, firm).status_code == 404
    assert repo.firm_of_realm(realm) is None and repo.indexed_firms(realm) == []


def test_a_handle_completed_by_another_firms_owner_is_refused(local_stack, qbo_sim, company, repo):
    firm, intruder, realm = new_firm(), new_firm(), company()
    redirected = authorize_through_stack(local_stack, qbo_sim, _token(local_stack, firm), realm)

    refused = complete_through_stack(local_stack, _token(local_stack, intruder), handle_of(redirected))

    assert refused.status_code == 404 and refused.json() == {"error": "not_found", "message": HANDLE_UNKNOWN}
    assert _connection(local_stack, firm).status_code == 404
    assert _connection(local_stack, intruder).status_code == 404
    assert repo.firm_of_realm(realm) is None and repo.indexed_firms(realm) == []


def test_a_replayed_handle_is_refused_and_changes_nothing(local_stack, qbo_sim, company, repo):
    firm, realm = new_firm(), company()
    owner = _token(local_stack, firm)
    handle = handle_of(authorize_through_stack(local_stack, qbo_sim, owner, realm))
    assert complete_through_stack(local_stack, owner, handle).status_code == 200
    before = _connection(local_stack, firm).json()

    replay = complete_through_stack(local_stack, owner, handle)

    assert replay.status_code == 400 and replay.json() == {"error": "bad_request", "message": HANDLE_UNKNOWN}
    assert _connection(local_stack, firm).json() == before
    assert repo.indexed_firms(realm) == [(firm, "connected")]
