"""Issue 10 items 1 and 8 through the real OAuth handler (API Gateway events) on moto + the simulator.

The callback proves the company with the new token and parks the grant; the platform completes it with the
JWT of the user who started. Each refusal asserts the status, the message, that the new grant was revoked
at the simulator and that nothing changed: the connection (GET /connection) and the realm index
(the repository).
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import pytest
from qbsync import wiring

from tests.integration.connection.conftest import handle_of, new_firm

REVOKE_PATH = "/oauth2/v1/tokens/revoke"
REALM_TAKEN = "connected to another firm; it must be disconnected there"


def repo():
    return wiring.connection_service().connections


def revokes(stack) -> int:
    return sum(1 for r in stack.sim.control.requests(limit=5000) if r["path"] == REVOKE_PATH)


def connection_of(stack, firm: str, user_id: str = "user-1"):
    return stack.api.call("GET", "/connection", bearer=stack.api.token(firm, user_id=user_id))


@pytest.fixture
def other_company(qbo_sim):
    realm = qbo_sim.control.create_company(company_name="Someone Else's Books")["realm_id"]
    yield realm
    qbo_sim.control.delete_company(realm)


def test_a_forged_realm_id_is_refused_and_stores_nothing(stack, qbo_company, other_company):
    firm, victim = new_firm(), new_firm()
    assert stack.connect(victim, other_company).status == 200
    stack.sim.control.set_consent(realm_id=qbo_company, client_id=stack.app.client_id)
    started = stack.api.call("POST", "/connection/connect-url", bearer=stack.api.token(firm))
    callback = stack.browser_consent(started.json()["url"])  # consent to the firm's own company
    before = revokes(stack)

    forged = stack.api.call("GET", "/oauth/callback", query={**callback, "realmId": other_company})

    assert forged.status == 403 and forged.headers["Content-Type"].startswith("text/html")
    assert f"did not confirm access to company {other_company}" in html.unescape(forged.body)
    assert "Location" not in forged.headers
    assert revokes(stack) == before + 1  # the new grant was revoked
    assert connection_of(stack, firm).status == 404
    assert repo().firm_of_realm(other_company) == victim
    assert repo().indexed_firms(other_company) == [(victim, "connected")]
    assert repo().indexed_firms(qbo_company) == []


def test_a_company_connected_to_another_firm_is_refused(stack, qbo_company):
    firm, holder = new_firm(), new_firm()
    assert stack.connect(holder, qbo_company).status == 200
    before = revokes(stack)

    refused = stack.authorize(firm, qbo_company)

    assert refused.status == 409 and refused.headers["Content-Type"].startswith("text/html")
    page = html.unescape(refused.body)
    assert REALM_TAKEN in page and holder not in page
    assert revokes(stack) == before + 1
    assert connection_of(stack, firm).status == 404
    assert repo().firm_of_realm(qbo_company) == holder
    assert repo().indexed_firms(qbo_company) == [(holder, "connected")]


def test_another_user_of_the_firm_cannot_complete(stack, qbo_company):
    firm = new_firm()
    redirected = stack.authorize(firm, qbo_company, user_id="owner-who-started")
    assert redirected.status == 303, redirected.body

    refused = stack.complete(firm, handle_of(redirected), user_id="another-owner")

    assert refused.status == 403 and refused.json()["error"] == "forbidden"
    assert "only the user who started this QuickBooks connection" in refused.json()["message"]
    assert connection_of(stack, firm).status == 404 and repo().indexed_firms(qbo_company) == []
    # the grant was discarded: the starter cannot use the leaked handle either
    late = stack.complete(firm, handle_of(redirected), user_id="owner-who-started")
    assert late.status == 400 and "unknown, already used or expired" in late.json()["message"]


def test_another_firms_owner_cannot_complete(stack, qbo_company, other_company):
    firm, other = new_firm(), new_firm()
    assert stack.connect(other, other_company).status == 200
    other_before = connection_of(stack, other).json()
    redirected = stack.authorize(firm, qbo_company)

    refused = stack.complete(other, handle_of(redirected))

    assert refused.status == 404 and refused.json() == {
        "error": "not_found",
        "message": "this QuickBooks connection handle is unknown, already used or expired; start the "
        "connection again",
    }
    assert connection_of(stack, firm).status == 404
    assert connection_of(stack, other).json() == other_before
    assert repo().indexed_firms(qbo_company) == [] and repo().firm_of_realm(qbo_company) is None


def test_a_replayed_handle_changes_nothing(stack, qbo_company):
    firm = new_firm()
    redirected = stack.authorize(firm, qbo_company)
    assert stack.complete(firm, handle_of(redirected)).status == 200
    before = connection_of(stack, firm).json()
    events = stack.connection_events()

    replay = stack.complete(firm, handle_of(redirected))

    assert replay.status == 400 and replay.json()["error"] == "bad_request"
    assert "unknown, already used or expired" in replay.json()["message"]
    assert connection_of(stack, firm).json() == before
    assert [e["change"] for e in events] == ["connected"] and stack.connection_events() == []


def test_a_bad_handle_body_is_a_400_naming_the_field(stack):
    owner = stack.api.token(new_firm())
    for body in (
        {},
        {"handle": 12345678901234567890},
        {"handle": "short"},
        {"handle": "x" * 200},
        {"handle": "h" * 43, "firm_id": "f"},
        {"handle": "not/url-safe" * 4},
    ):
        answer = stack.api.call("POST", "/connection/complete", bearer=owner, body=body)
        assert answer.status == 400, (body, answer.body)
        assert answer.json()["error"] == "bad_request" and "body" in answer.json()["message"]
        assert "not/url-safe" not in answer.json()["message"]  # never the value sent


def test_without_a_return_url_the_callback_page_shows_the_handle(stack, qbo_company, monkeypatch):
    monkeypatch.setenv("PLATFORM_RETURN_URL", "")
    wiring.reset()
    firm = new_firm()

    page = stack.authorize(firm, qbo_company)

    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "finish in the platform" in page.body and "Location" not in page.headers
    handle = page.body.split("<code", 1)[1].split(">", 1)[1].split("</code>", 1)[0]
    assert connection_of(stack, firm).status == 404
    assert stack.complete(firm, html.unescape(handle)).json()["change"] == "connected"
    assert connection_of(stack, firm).json()["realm_id"] == qbo_company


def test_the_return_url_keeps_its_own_query(stack, qbo_company, monkeypatch):
    monkeypatch.setenv("PLATFORM_RETURN_URL", "https://platform.example/qb?tab=accounting")
    wiring.reset()

    redirected = stack.authorize(new_firm(), qbo_company)

    location = urlsplit(redirected.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "platform.example", "/qb")
    assert set(parse_qs(location.query)) == {"tab", "handle"}
