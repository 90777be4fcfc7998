"""IntuitOAuthClient against the simulator's Intuit OAuth endpoints (QBO.md §1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from qbsync.errors import ConfigurationError, ReconnectRequired
from qbsync.qbo.client import QboClient
from qbsync.qbo.oauth import IntuitOAuthClient

from tests.integration.qbo.conftest import authorize, make_rig


def test_code_flow_gives_working_tokens(qbo_sim, qbo_app, qbo_company, oauth_client):
    qbo_sim.control.set_consent(realm_id=qbo_company, client_id=qbo_app.client_id)
    callback = authorize(oauth_client, qbo_app.redirect_uri, "signed-state-123")
    assert callback["state"] == "signed-state-123"
    assert callback["realmId"] == qbo_company
    tokens = oauth_client.exchange_code(code=callback["code"], redirect_uri=qbo_app.redirect_uri)
    assert tokens.access_expires_at - tokens.refresh_expires_at < timedelta(0)
    assert tokens.refresh_hard_expires_at is not None  # we asked for it with the header
    assert tokens.refresh_hard_expires_at > tokens.refresh_expires_at
    assert timedelta(minutes=59) < tokens.access_expires_at - datetime.now(UTC) <= timedelta(hours=1)

    class Fixed:
        def access_token(self) -> str:
            return tokens.access_token

        def refresh_after_unauthorized(self, rejected_token: str) -> str:
            raise AssertionError("no 401 expected")

    client = QboClient(base_url=qbo_sim.url, realm_id=qbo_company, tokens=Fixed())
    assert client.company_info()["CompanyName"].startswith("Test Co")


def test_code_is_single_use(qbo_sim, qbo_app, qbo_company, oauth_client):
    qbo_sim.control.set_consent(realm_id=qbo_company, client_id=qbo_app.client_id)
    callback = authorize(oauth_client, qbo_app.redirect_uri, "s")
    oauth_client.exchange_code(code=callback["code"], redirect_uri=qbo_app.redirect_uri)
    with pytest.raises(ReconnectRequired):
        oauth_client.exchange_code(code=callback["code"], redirect_uri=qbo_app.redirect_uri)


def test_refresh_rotates_and_the_superseded_token_is_invalid_grant(oauth_client, connected):
    rotated = oauth_client.refresh(connected.refresh_token)
    assert rotated.refresh_token != connected.refresh_token
    assert rotated.access_token != connected.access_token
    again = oauth_client.refresh(rotated.refresh_token)
    assert again.refresh_token
    with pytest.raises(ReconnectRequired) as info:
        oauth_client.refresh(connected.refresh_token)
    assert info.value.extra["oauth_error"] == "invalid_grant"
    assert connected.refresh_token not in str(info.value)


def test_expired_refresh_token_is_reconnect(qbo_sim, qbo_company, oauth_client, connected):
    qbo_sim.control.expire_tokens(kind="refresh", realm_id=qbo_company)
    with pytest.raises(ReconnectRequired):
        oauth_client.refresh(connected.refresh_token)


def test_revoke_ends_the_grant(qbo_sim, qbo_company, oauth_client, connected):
    oauth_client.revoke(connected.refresh_token)
    with pytest.raises(ReconnectRequired):
        oauth_client.refresh(connected.refresh_token)
    # the access token is dead too: a call gets 401, the refresh gets invalid_grant → reconnect
    rig = make_rig(qbo_sim, qbo_company, oauth_client, connected)
    with pytest.raises(ReconnectRequired):
        rig.client.company_info()
    # revoking again is harmless
    oauth_client.revoke(connected.refresh_token)


def test_wrong_client_secret_is_configuration_error(qbo_sim, qbo_app, connected):
    bad = IntuitOAuthClient(
        discovery_url=f"{qbo_sim.url}/.well-known/openid_configuration",
        client_id=qbo_app.client_id,
        client_secret="wrong-secret",
    )
    with pytest.raises(ConfigurationError):
        bad.refresh(connected.refresh_token)


def test_expired_access_token_is_refreshed_once_on_401(qbo_sim, qbo_company, oauth_client, connected):
    rig = make_rig(qbo_sim, qbo_company, oauth_client, connected)
    qbo_sim.control.expire_tokens(kind="access", realm_id=qbo_company)
    assert rig.client.company_info()["CompanyName"]
    assert rig.tokens.refreshes == [connected.access_token]
    assert rig.tokens.tokens.access_token != connected.access_token
    assert rig.sleeps == []


def test_app_disconnected_in_qbo_is_reconnect(qbo_sim, qbo_company, oauth_client, connected):
    rig = make_rig(qbo_sim, qbo_company, oauth_client, connected)
    qbo_sim.control.revoke_tokens(realm_id=qbo_company)
    with pytest.raises(ReconnectRequired):
        rig.client.read("Customer", "1")
    assert len(rig.tokens.refreshes) == 1
