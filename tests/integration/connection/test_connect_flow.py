"""Connect, callback, status and check through the real handlers (API Gateway events) on moto + simulator."""

from __future__ import annotations

from tests.integration.connection.conftest import handle_of, new_firm


def test_connect_flow_end_to_end(stack, qbo_company):
    firm = new_firm()
    owner = stack.api.token(firm)

    started = stack.api.call(
        "POST", "/connection/connect-url", bearer=owner, body={"settings": {"sync_accounts": "all"}}
    )
    assert started.status == 200, started.body
    assert started.json()["url"].startswith(stack.sim.url + "/connect/oauth2?")
    stack.sim.control.set_consent(realm_id=qbo_company, client_id=stack.app.client_id)
    callback = stack.browser_consent(started.json()["url"])

    redirected = stack.api.call("GET", "/oauth/callback", query=callback)

    # The callback connects nothing: it sends the browser back to the platform with a one-time handle.
    assert redirected.status == 303, redirected.body
    assert redirected.headers["Cache-Control"] == "no-store"
    assert redirected.headers["Referrer-Policy"] == "no-referrer"  # the code never reaches the platform
    assert callback["code"] not in redirected.headers["Location"]
    assert stack.api.call("GET", "/connection", bearer=owner).status == 404
    completed = stack.api.call(
        "POST", "/connection/complete", bearer=owner, body={"handle": handle_of(redirected)}
    )
    assert completed.status == 200, completed.body
    outcome = completed.json()
    assert outcome["change"] == "connected" and outcome["realm_id"] == qbo_company
    assert outcome["company_name"] and "QuickBooks is connected" in outcome["message"]
    status = stack.api.call("GET", "/connection", bearer=stack.api.token(firm, role="staff"))
    assert status.status == 200
    view = status.json()
    assert view["status"] == "connected" and view["realm_id"] == qbo_company
    assert view["settings"]["sync_accounts"] == "all"
    assert "token" not in status.body.replace("expires_at", "")
    [event] = stack.connection_events()
    assert event["change"] == "connected" and event["firm_id"] == firm and event["realm_id"] == qbo_company
    assert event["correlation_id"] and event["occurred_at"]

    checked = stack.api.call("POST", "/connection/check", bearer=stack.api.token(firm, role="admin"))
    assert checked.status == 200, checked.body
    assert checked.json()["company_name"]


def test_state_replay_is_a_clear_400(stack, qbo_company):
    firm = new_firm()
    stack.sim.control.set_consent(realm_id=qbo_company, client_id=stack.app.client_id)
    started = stack.api.call("POST", "/connection/connect-url", bearer=stack.api.token(firm))
    callback = stack.browser_consent(started.json()["url"])
    assert stack.api.call("GET", "/oauth/callback", query=callback).status == 303

    second = stack.browser_consent(started.json()["url"])  # a second consent with the same state
    replay = stack.api.call("GET", "/oauth/callback", query=second)

    assert replay.status == 400 and "already used" in replay.body


def test_forged_state_is_refused_and_connects_nothing(stack, qbo_company):
    firm = new_firm()
    stack.sim.control.set_consent(realm_id=qbo_company, client_id=stack.app.client_id)
    started = stack.api.call("POST", "/connection/connect-url", bearer=stack.api.token(firm))
    callback = stack.browser_consent(started.json()["url"])
    payload, signature = callback["state"].split(".")

    forged = stack.api.call(
        "GET", "/oauth/callback", query={**callback, "state": payload[:-1] + "A." + signature}
    )

    assert forged.status == 400 and "state" in forged.body
    assert stack.api.call("GET", "/connection", bearer=stack.api.token(firm)).status == 404


def test_bad_input_is_4xx_never_5xx(stack):
    firm = new_firm()
    owner = stack.api.token(firm)
    assert (
        stack.api.call("POST", "/connection/connect-url", bearer=owner, body={"settings": {"x": 1}}).status
        == 400
    )
    bad_json = stack.api.call("POST", "/connection/confirm-switch", bearer=owner, body="not json")
    assert bad_json.status == 400 and bad_json.json()["error"] == "bad_request"
    assert stack.api.call("GET", "/oauth/callback", query={"code": "x"}).status == 400
    assert stack.api.call("GET", "/oauth/callback", query=None).status == 400


def test_roles_and_authentication(stack):
    firm = new_firm()
    assert stack.api.call("GET", "/connection").status == 401
    assert stack.api.call("GET", "/connection", bearer=stack.api.token(firm, exp=1)).status == 401
    staff = stack.api.token(firm, role="staff")
    for path in (
        "/connection/connect-url",
        "/connection/disconnect",
        "/connection/confirm-switch",
        "/connection/complete",
        "/connection/check",
    ):
        body = {"confirmation": "ACCEPT"} if path.endswith("confirm-switch") else None
        body = {"handle": "h" * 43} if path.endswith("complete") else body
        result = stack.api.call("POST", path, bearer=staff, body=body)
        assert result.status == 403, (path, result.body)
        assert result.json()["error"] == "forbidden"


def test_other_firm_gets_404(stack, qbo_company):
    firm_a, firm_b = new_firm(), new_firm()
    assert stack.connect(firm_a, qbo_company).status == 200
    b_owner = stack.api.token(firm_b)

    assert stack.api.call("GET", "/connection", bearer=b_owner).status == 404
    assert stack.api.call("POST", "/connection/disconnect", bearer=b_owner).status == 404
    assert stack.api.call("POST", "/connection/check", bearer=b_owner).status == 404
    confirm = stack.api.call(
        "POST", "/connection/confirm-switch", bearer=b_owner, body={"confirmation": "ACCEPT"}
    )
    assert confirm.status == 404 and confirm.json()["error"] == "not_found"
    # firm A is untouched
    assert (
        stack.api.call("GET", "/connection", bearer=stack.api.token(firm_a)).json()["status"] == "connected"
    )
