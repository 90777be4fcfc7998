"""Every production QBO client is paced by the shared per-realm limiter."""

from __future__ import annotations

from typing import Any

import pytest
from qbsync import settings
from qbsync.qbo.ratelimit import RealmRateLimiter
from qbsync.wiring import paced_client_factory


class _Tokens:
    def access_token(self) -> str:
        return "unused"

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return "unused"


def test_the_factory_builds_clients_with_the_deployment_settings_and_the_limiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNC_TABLE_NAME", "sync-table")
    monkeypatch.setenv("QBO_API_BASE_URL", "https://qbo.example")
    monkeypatch.setenv("QBO_MINOR_VERSION", "75")
    monkeypatch.setenv("QBO_APP_BASE_URL", "https://app.qbo.example")
    monkeypatch.setenv("INTUIT_DISCOVERY_URL", "https://intuit.example/.well-known/openid_configuration")
    monkeypatch.setenv("OAUTH_REDIRECT_URI", "")
    settings.clear()
    table: Any = object()
    try:
        client = paced_client_factory(table)("9130", _Tokens())
    finally:
        settings.clear()
    assert client.realm_id == "9130"
    assert client.base_url.startswith("https://qbo.example")
    limiter = client._limiter
    assert isinstance(limiter, RealmRateLimiter)
