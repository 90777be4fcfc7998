"""The QuickBooks client core against the simulator: a connected company and a QboClient for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from qbsync.qbo.client import QboClient
from qbsync.qbo.oauth import IntuitOAuthClient, TokenSet, clear_discovery_cache


@pytest.fixture
def oauth_client(qbo_sim, qbo_app) -> Iterator[IntuitOAuthClient]:
    clear_discovery_cache()
    yield IntuitOAuthClient(
        discovery_url=f"{qbo_sim.url}/.well-known/openid_configuration",
        client_id=qbo_app.client_id,
        client_secret=qbo_app.client_secret,
    )
    clear_discovery_cache()


def authorize(oauth_client: IntuitOAuthClient, redirect_uri: str, state: str) -> dict[str, str]:
    """Play the browser: open the consent URL and read the redirect back to our callback."""
    url = oauth_client.authorization_url(redirect_uri=redirect_uri, state=state)
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def connected(qbo_sim, qbo_app, qbo_company, oauth_client) -> TokenSet:
    """Tokens from the real code flow (authorize → redirect → exchange) for ``qbo_company``."""
    qbo_sim.control.set_consent(realm_id=qbo_company, client_id=qbo_app.client_id)
    callback = authorize(oauth_client, qbo_app.redirect_uri, "state-1")
    assert callback["realmId"] == qbo_company
    return oauth_client.exchange_code(code=callback["code"], redirect_uri=qbo_app.redirect_uri)


@dataclass
class RefreshingTokens:
    """A minimal TokenSource over the OAuth client (the real one: ``qbsync.connection.tokens``)."""

    oauth: IntuitOAuthClient
    tokens: TokenSet
    refreshes: list[str] = field(default_factory=list)

    def access_token(self) -> str:
        return self.tokens.access_token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        self.refreshes.append(rejected_token)
        self.tokens = self.oauth.refresh(self.tokens.refresh_token)
        return self.tokens.access_token


@dataclass
class ClientRig:
    client: QboClient
    tokens: RefreshingTokens
    sleeps: list[float]


def make_rig(qbo_sim, qbo_company, oauth_client, connected, **options) -> ClientRig:
    sleeps: list[float] = []
    tokens = RefreshingTokens(oauth_client, connected)
    client = QboClient(
        base_url=qbo_sim.url,
        realm_id=qbo_company,
        tokens=tokens,
        sleep=sleeps.append,  # simulated waiting: the backoff is recorded, never slept
        jitter=lambda: 1.0,
        **options,
    )
    return ClientRig(client, tokens, sleeps)


@pytest.fixture
def rig(qbo_sim, qbo_company, oauth_client, connected) -> ClientRig:
    return make_rig(qbo_sim, qbo_company, oauth_client, connected)
