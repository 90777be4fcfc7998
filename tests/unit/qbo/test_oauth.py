"""IntuitOAuthClient over a scripted network: discovery caching, token calls, error mapping, no secrets."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3.exceptions
from qbsync.errors import (
    ConfigurationError,
    ReconnectRequired,
    ServiceUnavailable,
    Throttled,
    UncertainOutcome,
)
from qbsync.qbo.oauth import IntuitOAuthClient, TokenSet, clear_discovery_cache

from tests.unit.qbo.conftest import Canned, ScriptedAdapter, all_log_text

DISCOVERY_URL = "https://intuit.example/.well-known/openid_configuration/"
DISCOVERY = {
    "issuer": "https://oauth.platform.intuit.com/op/v1",
    "authorization_endpoint": "https://appcenter.example/connect/oauth2",
    "token_endpoint": "https://oauth.example/oauth2/v1/tokens/bearer",
    "revocation_endpoint": "https://developer.example/v2/oauth2/tokens/revoke",
    "userinfo_endpoint": "https://accounts.example/v1/openid_connect/userinfo",
}
CLIENT_ID = "ABclientid123"
CLIENT_SECRET = "client-secret-do-not-leak"
CODE = "AB11code-do-not-leak"
RT = "RT1-old-refresh-token-do-not-leak"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKEN_BODY = {
    "token_type": "bearer",
    "access_token": "AT-new-access-token-do-not-leak",
    "expires_in": 3600,
    "refresh_token": "RT2-new-refresh-token-do-not-leak",
    "x_refresh_token_expires_in": 8726400,
    "x_refresh_token_hard_expires_in": 156032154,
}
SECRETS = (CLIENT_SECRET, CODE, RT, TOKEN_BODY["access_token"], TOKEN_BODY["refresh_token"])


@pytest.fixture(autouse=True)
def _fresh_discovery_cache():
    clear_discovery_cache()
    yield
    clear_discovery_cache()


@pytest.fixture
def oauth(session: requests.Session) -> IntuitOAuthClient:
    return IntuitOAuthClient(
        discovery_url=DISCOVERY_URL,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        session=session,
        clock=lambda: NOW,
    )


def discovered(adapter: ScriptedAdapter, *steps) -> ScriptedAdapter:
    return adapter.queue(Canned(200, DISCOVERY), *steps)


def form(adapter: ScriptedAdapter, index: int = -1) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(adapter.body(index).decode()).items()}


def test_authorization_url(oauth, adapter):
    discovered(adapter)
    url = oauth.authorization_url(redirect_uri="https://app.example.com/oauth/callback", state="signed.state")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == DISCOVERY["authorization_endpoint"]
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": "https://app.example.com/oauth/callback",
        "state": "signed.state",
    }
    assert CLIENT_SECRET not in url
    multi = oauth.authorization_url(redirect_uri="https://r", state="s", scopes=("openid", "email"))
    assert "scope=openid+email" in multi
    with pytest.raises(ValueError):
        oauth.authorization_url(redirect_uri="https://r", state="")
    with pytest.raises(ValueError):
        oauth.authorization_url(redirect_uri="https://r", state="s", scopes=())


def test_discovery_is_fetched_once_per_process(session, adapter):
    discovered(adapter, Canned(200, TOKEN_BODY), Canned(200, TOKEN_BODY))
    first = IntuitOAuthClient(
        discovery_url=DISCOVERY_URL, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, session=session
    )
    second = IntuitOAuthClient(
        discovery_url=DISCOVERY_URL, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, session=session
    )
    first.authorization_url(redirect_uri="https://r", state="s")
    first.refresh(RT)
    second.refresh(RT)
    discovery_calls = [r for r in adapter.requests if r.url == DISCOVERY_URL]
    assert len(discovery_calls) == 1
    assert len(adapter.requests) == 3


def test_discovery_failures(oauth, adapter):
    adapter.queue(Canned(503, "busy"))
    with pytest.raises(ServiceUnavailable):
        oauth.endpoints()
    adapter.queue(Canned(404, "nope"))
    with pytest.raises(ConfigurationError):
        oauth.endpoints()  # a failure is not cached: this is a second fetch
    adapter.queue(Canned(200, {"issuer": "x"}))
    with pytest.raises(ConfigurationError):
        oauth.endpoints()
    adapter.queue(requests.exceptions.ConnectTimeout())
    with pytest.raises(ServiceUnavailable):
        oauth.endpoints()
    assert len(adapter.requests) == 4


def test_exchange_code_sends_basic_auth_form_and_hard_expiry_header(oauth, adapter):
    discovered(adapter, Canned(200, TOKEN_BODY))
    tokens = oauth.exchange_code(code=CODE, redirect_uri="https://app.example.com/oauth/callback")
    request = adapter.requests[-1]
    assert request.url == DISCOVERY["token_endpoint"]
    assert request.method == "POST"
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["x-include-refresh-token-hard-expires-in"] == "true"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(adapter) == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": "https://app.example.com/oauth/callback",
    }
    assert tokens == TokenSet(
        access_token=TOKEN_BODY["access_token"],
        refresh_token=TOKEN_BODY["refresh_token"],
        access_expires_at=NOW + timedelta(seconds=3600),
        refresh_expires_at=NOW + timedelta(seconds=8726400),
        refresh_hard_expires_at=NOW + timedelta(seconds=156032154),
    )


def test_token_set_repr_hides_tokens(oauth, adapter):
    discovered(adapter, Canned(200, TOKEN_BODY))
    tokens = oauth.refresh(RT)
    text = repr(tokens) + str(tokens)
    assert TOKEN_BODY["access_token"] not in text
    assert TOKEN_BODY["refresh_token"] not in text
    assert "access_expires_at" in text
    assert CLIENT_SECRET not in repr(oauth)


def test_refresh_form_and_missing_hard_expiry(oauth, adapter):
    body = {k: v for k, v in TOKEN_BODY.items() if k != "x_refresh_token_hard_expires_in"}
    discovered(adapter, Canned(200, body))
    tokens = oauth.refresh(RT)
    assert form(adapter) == {"grant_type": "refresh_token", "refresh_token": RT}
    assert tokens.refresh_hard_expires_at is None
    assert tokens.refresh_token == TOKEN_BODY["refresh_token"]


@pytest.mark.parametrize(
    ("canned", "cls"),
    [
        (
            Canned(
                400, {"error": "invalid_grant", "error_description": "Incorrect or invalid refresh token"}
            ),
            ReconnectRequired,
        ),
        (Canned(400, {"error": "invalid_client"}), ConfigurationError),
        (Canned(401, {"error": "invalid_client"}), ConfigurationError),
        (Canned(401, ""), ConfigurationError),
        (Canned(400, {"error": "unsupported_grant_type"}), ConfigurationError),
        (Canned(429, "", {"Retry-After": "9"}), Throttled),
        (Canned(500, "<html>oops</html>"), ServiceUnavailable),
        (Canned(503, ""), ServiceUnavailable),
    ],
)
def test_refresh_error_mapping(oauth, adapter, caplog, canned, cls):
    caplog.set_level(logging.DEBUG)
    discovered(adapter, canned)
    with pytest.raises(cls) as info:
        oauth.refresh(RT)
    for secret in SECRETS:
        assert secret not in str(info.value)
        assert secret not in repr(info.value.context())
    assert all(s not in all_log_text(caplog) for s in SECRETS)


def test_refresh_5xx_flags_possible_supersession(oauth, adapter):
    discovered(adapter, Canned(502, ""))
    with pytest.raises(ServiceUnavailable) as info:
        oauth.refresh(RT)
    assert info.value.extra["refresh_token_may_be_superseded"] is True


def test_throttle_has_retry_after(oauth, adapter):
    discovered(adapter, Canned(429, ""))
    with pytest.raises(Throttled) as info:
        oauth.refresh(RT)
    assert info.value.retry_after == 60


def test_invalid_grant_on_exchange_is_reconnect(oauth, adapter):
    discovered(adapter, Canned(400, {"error": "invalid_grant"}))
    with pytest.raises(ReconnectRequired) as info:
        oauth.exchange_code(code=CODE, redirect_uri="https://r")
    assert "authorization code" in str(info.value)


def test_timeout_after_sending_is_uncertain(oauth, adapter):
    discovered(adapter, requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(UncertainOutcome) as info:
        oauth.refresh(RT)
    assert info.value.extra["refresh_token_may_be_superseded"] is True
    adapter.queue(requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("aborted")))
    with pytest.raises(UncertainOutcome):
        oauth.exchange_code(code=CODE, redirect_uri="https://r")


def test_connect_failure_is_service_unavailable(oauth, adapter):
    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    discovered(
        adapter,
        requests.exceptions.ConnectTimeout(),
        requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", refused)),  # type: ignore[arg-type]
    )
    with pytest.raises(ServiceUnavailable):
        oauth.refresh(RT)
    with pytest.raises(ServiceUnavailable):
        oauth.refresh(RT)


def test_unreadable_200_is_uncertain(oauth, adapter):
    discovered(adapter, Canned(200, "<html>proxy page</html>"), Canned(200, {"access_token": "x"}))
    with pytest.raises(UncertainOutcome):
        oauth.refresh(RT)
    with pytest.raises(UncertainOutcome):
        oauth.refresh(RT)


def test_empty_inputs(oauth, adapter):
    with pytest.raises(ReconnectRequired):
        oauth.refresh("")
    with pytest.raises(ReconnectRequired):
        oauth.exchange_code(code="", redirect_uri="https://r")
    with pytest.raises(ValueError):
        oauth.revoke("")
    with pytest.raises(ConfigurationError):
        IntuitOAuthClient(discovery_url=DISCOVERY_URL, client_id="", client_secret="x")
    assert adapter.requests == []


def test_successful_calls_log_no_secrets(oauth, adapter, caplog):
    caplog.set_level(logging.DEBUG)
    discovered(
        adapter, Canned(200, TOKEN_BODY, {"intuit_tid": "tid-7"}), Canned(200, TOKEN_BODY), Canned(200, "")
    )
    oauth.exchange_code(code=CODE, redirect_uri="https://r")
    oauth.refresh(RT)
    oauth.revoke(RT)
    text = all_log_text(caplog)
    assert all(secret not in text for secret in SECRETS)
    operations = [
        r.operation for r in caplog.records if r.name == "qbsync.qbo.oauth" and hasattr(r, "operation")
    ]
    assert operations == ["discovery", "exchange", "refresh", "revoke"]
    assert any(getattr(r, "intuit_tid", None) == "tid-7" for r in caplog.records)


def test_revoke(oauth, adapter):
    discovered(adapter, Canned(200, ""))
    oauth.revoke(RT)
    request = adapter.requests[-1]
    assert request.url == DISCOVERY["revocation_endpoint"]
    assert adapter.json() == {"token": RT}
    assert request.headers["Authorization"].startswith("Basic ")


def test_revoke_of_an_already_invalid_token_is_done(oauth, adapter, caplog):
    discovered(adapter, Canned(400, {"error": "invalid_token"}))
    caplog.set_level(logging.WARNING)
    oauth.revoke(RT)
    assert any("already invalid" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("canned", "cls"),
    [
        (Canned(401, ""), ConfigurationError),
        (Canned(400, {"error": "invalid_client"}), ConfigurationError),
        (Canned(500, ""), ServiceUnavailable),
        (Canned(429, ""), Throttled),
        (requests.exceptions.ReadTimeout(), ServiceUnavailable),
    ],
)
def test_revoke_errors(oauth, adapter, canned, cls):
    discovered(adapter, canned)
    with pytest.raises(cls):
        oauth.revoke(RT)
