"""OAuth 2.0 of the simulator, driven over HTTP like Intuit's (QBO.md §1)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes

from local.qbo_sim.client import SimControl
from local.qbo_sim.server import SimulatorServer

ACCOUNTING = "com.intuit.quickbooks.accounting"


def _token(url, app, data, headers=None, basic=True):
    if basic:
        return requests.post(
            f"{url}/oauth2/v1/tokens/bearer",
            auth=(app.client_id, app.client_secret),
            data=data,
            headers={"Accept": "application/json", **(headers or {})},
            timeout=10,
        )
    data = {**data, "client_id": app.client_id, "client_secret": app.client_secret}
    return requests.post(f"{url}/oauth2/v1/tokens/bearer", data=data, headers=headers, timeout=10)


def _code(qbo_sim, app, realm_id):
    qbo_sim.control.set_consent(realm_id, client_id=app.client_id)
    callback = qbo_sim.control.authorize(app.client_id, app.redirect_uri, state="csrf-1")
    assert callback["realmId"] == realm_id
    assert callback["state"] == "csrf-1"
    return callback["code"]


def _exchange(qbo_sim, app, realm_id, headers=None):
    code = _code(qbo_sim, app, realm_id)
    response = _token(
        qbo_sim.url,
        app,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": app.redirect_uri},
        headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _companyinfo(url, realm_id, access_token):
    return requests.get(
        f"{url}/v3/company/{realm_id}/companyinfo/{realm_id}",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        timeout=10,
    )


def test_discovery_lists_own_absolute_endpoints(qbo_sim):
    doc = requests.get(f"{qbo_sim.url}/.well-known/openid_configuration/", timeout=10).json()
    assert doc["authorization_endpoint"] == f"{qbo_sim.url}/connect/oauth2"
    assert doc["token_endpoint"] == f"{qbo_sim.url}/oauth2/v1/tokens/bearer"
    assert doc["revocation_endpoint"] == f"{qbo_sim.url}/oauth2/v1/tokens/revoke"
    assert doc["userinfo_endpoint"] == f"{qbo_sim.url}/v1/openid_connect/userinfo"
    assert "client_secret_basic" in doc["token_endpoint_auth_methods_supported"]


def test_authorize_redirects_with_code_state_and_realm(qbo_sim, qbo_app, qbo_company):
    qbo_sim.control.set_consent(qbo_company, client_id=qbo_app.client_id)
    query = urlencode(
        {
            "client_id": qbo_app.client_id,
            "redirect_uri": qbo_app.redirect_uri,
            "response_type": "code",
            "scope": ACCOUNTING,
            "state": "xyz",
        }
    )
    response = requests.get(f"{qbo_sim.url}/connect/oauth2?{query}", allow_redirects=False, timeout=10)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == qbo_app.redirect_uri
    params = parse_qs(location.query)
    assert params["state"] == ["xyz"]
    assert params["realmId"] == [qbo_company]
    assert len(params["code"][0]) > 20


def test_authorize_rejects_unknown_client_and_unregistered_redirect(qbo_sim, qbo_app, qbo_company):
    base = {"response_type": "code", "scope": ACCOUNTING, "state": "s"}
    bad_client = requests.get(
        f"{qbo_sim.url}/connect/oauth2",
        params={**base, "client_id": "nope", "redirect_uri": qbo_app.redirect_uri},
        allow_redirects=False,
        timeout=10,
    )
    assert bad_client.status_code == 400
    bad_uri = requests.get(
        f"{qbo_sim.url}/connect/oauth2",
        params={**base, "client_id": qbo_app.client_id, "redirect_uri": "https://evil.example/cb"},
        allow_redirects=False,
        timeout=10,
    )
    assert bad_uri.status_code == 400
    assert "location" not in bad_uri.headers


def test_authorize_bad_scope_response_type_and_denial_redirect_with_error(qbo_sim, qbo_app, qbo_company):
    common = {"client_id": qbo_app.client_id, "redirect_uri": qbo_app.redirect_uri, "state": "s"}
    for extra, error in (
        ({"response_type": "token", "scope": ACCOUNTING}, "unsupported_response_type"),
        ({"response_type": "code", "scope": "com.intuit.nonsense"}, "invalid_scope"),
    ):
        response = requests.get(
            f"{qbo_sim.url}/connect/oauth2", params={**common, **extra}, allow_redirects=False, timeout=10
        )
        assert response.status_code == 302
        assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == [error]
    qbo_sim.control.set_consent(client_id=qbo_app.client_id, deny=True)
    callback = qbo_sim.control.authorize(qbo_app.client_id, qbo_app.redirect_uri)
    assert callback["error"] == "access_denied"
    assert "code" not in callback


def test_code_exchange_basic_and_post_auth_and_single_use(qbo_sim, qbo_app, qbo_company):
    code = _code(qbo_sim, qbo_app, qbo_company)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": qbo_app.redirect_uri}
    first = _token(qbo_sim.url, qbo_app, data)
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 100 * 86400
    assert "x_refresh_token_hard_expires_in" not in body
    assert body["refresh_token"] and body["access_token"]
    replay = _token(qbo_sim.url, qbo_app, data)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    code2 = _code(qbo_sim, qbo_app, qbo_company)
    post_auth = _token(qbo_sim.url, qbo_app, {**data, "code": code2}, basic=False)
    assert post_auth.status_code == 200, post_auth.text


def test_code_expires_and_must_match_redirect_uri(qbo_sim, qbo_app, qbo_company):
    code = _code(qbo_sim, qbo_app, qbo_company)
    wrong = _token(
        qbo_sim.url,
        qbo_app,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://other.example/cb"},
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    code = _code(qbo_sim, qbo_app, qbo_company)
    qbo_sim.control.advance_clock(301)
    late = _token(
        qbo_sim.url,
        qbo_app,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": qbo_app.redirect_uri},
    )
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


def test_bad_client_credentials_answer_401_invalid_client(qbo_sim, qbo_app, qbo_company):
    response = requests.post(
        f"{qbo_sim.url}/oauth2/v1/tokens/bearer",
        auth=(qbo_app.client_id, "wrong"),
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_refresh_rotates_and_superseded_token_is_invalid_grant(qbo_sim, qbo_app, qbo_company):
    tokens = _exchange(qbo_sim, qbo_app, qbo_company)
    first = _token(
        qbo_sim.url,
        qbo_app,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={"x-include-refresh-token-hard-expires-in": "true"},
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert 0 < rotated["x_refresh_token_hard_expires_in"] <= 5 * 365 * 86400
    stale = _token(
        qbo_sim.url, qbo_app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    fresh = _token(
        qbo_sim.url, qbo_app, {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
    )
    assert fresh.status_code == 200
    assert _companyinfo(qbo_sim.url, qbo_company, fresh.json()["access_token"]).status_code == 200


def test_access_token_expires_on_simulated_clock(qbo_sim, qbo_app, qbo_company):
    tokens = _exchange(qbo_sim, qbo_app, qbo_company)
    assert _companyinfo(qbo_sim.url, qbo_company, tokens["access_token"]).status_code == 200
    qbo_sim.control.advance_clock(3601)
    response = _companyinfo(qbo_sim.url, qbo_company, tokens["access_token"])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Intuit", error="invalid_token"'
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3200"
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert error["detail"].startswith("Token expired")
    assert tokens["access_token"] not in response.text


def test_refresh_token_expires_after_rolling_lifetime():
    # 100 days is too far to move the shared session clock (other tests compute CDC windows from it)
    with SimulatorServer() as server:
        control = SimControl(server.url)
        realm = control.create_company("Idle Co")["realm_id"]
        control.create_app("idle-app", "idle-secret", ["https://idle.example/cb"])
        tokens = control.issue_tokens("idle-app", realm)
        control.advance_clock(100 * 86400 - 60)
        alive = requests.post(
            f"{server.url}/oauth2/v1/tokens/bearer",
            auth=("idle-app", "idle-secret"),
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            timeout=10,
        )
        assert alive.status_code == 200  # used just in time: the rolling window restarts
        control.advance_clock(100 * 86400 + 1)
        response = requests.post(
            f"{server.url}/oauth2/v1/tokens/bearer",
            auth=("idle-app", "idle-secret"),
            data={"grant_type": "refresh_token", "refresh_token": alive.json()["refresh_token"]},
            timeout=10,
        )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_revoke_endpoint_ends_the_whole_grant(qbo_sim, qbo_app, qbo_company):
    tokens = _exchange(qbo_sim, qbo_app, qbo_company)
    response = requests.post(
        f"{qbo_sim.url}/oauth2/v1/tokens/revoke",
        auth=(qbo_app.client_id, qbo_app.client_secret),
        json={"token": tokens["refresh_token"]},
        timeout=10,
    )
    assert response.status_code == 200
    assert _companyinfo(qbo_sim.url, qbo_company, tokens["access_token"]).status_code == 401
    refresh = _token(
        qbo_sim.url, qbo_app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_control_expire_and_revoke(qbo_sim, qbo_app, qbo_company):
    tokens = _exchange(qbo_sim, qbo_app, qbo_company)
    qbo_sim.control.expire_tokens("access", realm_id=qbo_company)
    assert _companyinfo(qbo_sim.url, qbo_company, tokens["access_token"]).status_code == 401
    refreshed = _token(
        qbo_sim.url, qbo_app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    qbo_sim.control.expire_tokens("refresh", realm_id=qbo_company, client_id=qbo_app.client_id)
    dead = _token(
        qbo_sim.url, qbo_app, {"grant_type": "refresh_token", "refresh_token": new["refresh_token"]}
    )
    assert dead.json()["error"] == "invalid_grant"
    other = _exchange(qbo_sim, qbo_app, qbo_company)
    qbo_sim.control.revoke_tokens(qbo_company)
    assert _companyinfo(qbo_sim.url, qbo_company, other["access_token"]).status_code == 401


def test_token_of_one_company_cannot_read_another(qbo_sim, qbo_app, qbo_company):
    other = qbo_sim.control.create_company("Other Co")["realm_id"]
    try:
        tokens = _exchange(qbo_sim, qbo_app, qbo_company)
        response = _companyinfo(qbo_sim.url, other, tokens["access_token"])
        assert response.status_code == 403
        assert response.json()["Fault"]["Error"][0]["code"] == "3100"
    finally:
        qbo_sim.control.delete_company(other)


def test_two_apps_two_companies_at_once(qbo_sim, qbo_app, qbo_company):
    second_realm = qbo_sim.control.create_company("Second Co")["realm_id"]
    qbo_sim.control.create_app("second-app", "second-secret", ["https://two.example/cb"])
    try:
        a = _exchange(qbo_sim, qbo_app, qbo_company)
        qbo_sim.control.set_consent(second_realm, client_id="second-app")
        callback = qbo_sim.control.authorize("second-app", "https://two.example/cb")
        assert callback["realmId"] == second_realm
        b = requests.post(
            f"{qbo_sim.url}/oauth2/v1/tokens/bearer",
            auth=("second-app", "second-secret"),
            data={
                "grant_type": "authorization_code",
                "code": callback["code"],
                "redirect_uri": "https://two.example/cb",
            },
            timeout=10,
        ).json()
        assert _companyinfo(qbo_sim.url, qbo_company, a["access_token"]).json()["CompanyInfo"]["Id"] == "1"
        info_b = _companyinfo(qbo_sim.url, second_realm, b["access_token"]).json()["CompanyInfo"]
        assert info_b["CompanyName"] == "Second Co"
    finally:
        qbo_sim.control.delete_company(second_realm)


def test_userinfo(qbo_sim, qbo_tokens, qbo_company):
    response = requests.get(
        f"{qbo_sim.url}/v1/openid_connect/userinfo",
        headers={"Authorization": f"Bearer {qbo_tokens['access_token']}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["email"].endswith("@example.com")
    assert requests.get(f"{qbo_sim.url}/v1/openid_connect/userinfo", timeout=10).status_code == 401


def test_intuit_oauth_client_unmodified_against_discovery(qbo_sim, qbo_app, qbo_company):
    """intuit-oauth (intuitlib) reads every endpoint from the simulator's discovery document."""
    client = AuthClient(
        qbo_app.client_id,
        qbo_app.client_secret,
        qbo_app.redirect_uri,
        f"{qbo_sim.url}/.well-known/openid_configuration/",
    )
    url = client.get_authorization_url([Scopes.ACCOUNTING], state_token="abc")
    qbo_sim.control.set_consent(qbo_company, client_id=qbo_app.client_id)
    redirect = requests.get(url, allow_redirects=False, timeout=10)
    params = parse_qs(urlsplit(redirect.headers["location"]).query)
    client.get_bearer_token(params["code"][0], realm_id=params["realmId"][0])
    first_refresh = client.refresh_token
    client.refresh()
    assert client.refresh_token != first_refresh
    assert _companyinfo(qbo_sim.url, qbo_company, client.access_token).status_code == 200
    assert client.revoke() is True
    assert _companyinfo(qbo_sim.url, qbo_company, client.access_token).status_code == 401


def test_rotation_interval_keeps_the_refresh_token_for_a_day():
    from local.qbo_sim.config import SimConfig

    with SimulatorServer(SimConfig(refresh_token_rotation_seconds=86400)) as server:
        control = SimControl(server.url)
        realm = control.create_company("Daily Co")["realm_id"]
        control.create_app("daily-app", "daily-secret", ["https://daily.example/cb"])
        tokens = control.issue_tokens("daily-app", realm)

        def refresh(rt):
            return requests.post(
                f"{server.url}/oauth2/v1/tokens/bearer",
                auth=("daily-app", "daily-secret"),
                data={"grant_type": "refresh_token", "refresh_token": rt},
                timeout=10,
            )

        same = refresh(tokens["refresh_token"]).json()
        assert same["refresh_token"] == tokens["refresh_token"]
        assert same["access_token"] != tokens["access_token"]
        control.advance_clock(86400)
        rotated = refresh(tokens["refresh_token"]).json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        assert refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_authorize_consents_to_the_first_company_by_default():
    with SimulatorServer() as server:
        control = SimControl(server.url)
        first = control.create_company("First Co")["realm_id"]
        control.create_company("Second Co")
        control.create_app("default-app", "s", ["https://default.example/cb"])
        assert control.authorize("default-app", "https://default.example/cb")["realmId"] == first
