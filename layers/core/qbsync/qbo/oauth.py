"""Intuit OAuth 2.0: discovery, authorization URL, code exchange, refresh and revoke (QBO.md §1).

A thin client over ``requests`` (instead of ``intuit-oauth``): explicit timeouts, typed errors, the
``x-include-refresh-token-hard-expires-in`` header, and a discovery document fetched once per process.

Errors (all from :mod:`qbsync.errors`; messages never contain tokens, codes or the client secret):

* ``400 invalid_grant`` → :class:`ReconnectRequired` - the code is used/expired, or the refresh token is
  expired, revoked or superseded by a newer one. Never retry it.
* ``invalid_client`` (400/401), any other 401, other 400 errors → :class:`ConfigurationError` - our client
  credentials or request are wrong.
* 429 → :class:`Throttled`.
* 5xx, connect failures, connect timeouts → :class:`ServiceUnavailable` (retry later).
* a read timeout or a connection dropped *after* the token request was sent (refresh / exchange) →
  :class:`UncertainOutcome`.

**Refresh and lost responses.** Intuit may rotate the refresh token on any refresh: once it answered, the
RT we sent can be superseded even though we never saw the new one. So after an :class:`UncertainOutcome`
(and, rarely, after a 5xx :class:`ServiceUnavailable`) from :meth:`IntuitOAuthClient.refresh`, the caller
must keep the OLD refresh token (it is the only one it has), retry the refresh with it soon, and treat an
``invalid_grant`` on that retry as "superseded by the lost response" → reconnect. Both errors carry
``extra["refresh_token_may_be_superseded"] = True``. For :meth:`exchange_code` an uncertain outcome means the
single-use code is probably spent: the user must start the connect flow again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from qbsync.errors import (
    ConfigurationError,
    QbsyncError,
    ReconnectRequired,
    ServiceUnavailable,
    Throttled,
    UncertainOutcome,
)
from qbsync.qbo.faults import DEFAULT_THROTTLE_WAIT, intuit_tid_of
from qbsync.qbo.http import USER_AGENT, build_session, is_configuration_problem, parse_retry_after, was_sent

logger = logging.getLogger("qbsync.qbo.oauth")


@dataclass(frozen=True)
class TokenSet:
    """Tokens of one connection with absolute expiry instants (UTC). ``repr`` never shows the tokens."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime
    refresh_hard_expires_at: datetime | None


@dataclass(frozen=True)
class OAuthEndpoints:
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str
    userinfo_endpoint: str | None


# Per-process cache of discovery documents, keyed by URL: a warm Lambda container fetches it once.
_discovery_cache: dict[str, OAuthEndpoints] = {}
_discovery_lock = threading.Lock()


def clear_discovery_cache() -> None:
    """Forget every cached discovery document (tests; a changed discovery URL)."""
    with _discovery_lock:
        _discovery_cache.clear()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _oauth_error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return None


class IntuitOAuthClient:
    """OAuth client of one Intuit app. Thread-safe; reuse one instance per container."""

    ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"

    def __init__(
        self,
        *,
        discovery_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not discovery_url:
            raise ConfigurationError("The Intuit discovery URL is not configured")
        if not client_id or not client_secret:
            raise ConfigurationError("The Intuit app client id / client secret are not configured")
        self._discovery_url = discovery_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session if session is not None else build_session()
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"IntuitOAuthClient(discovery_url={self._discovery_url!r}, client_id={self._client_id!r})"

    # ------------------------------------------------------------------ discovery

    def endpoints(self) -> OAuthEndpoints:
        """The discovery document's endpoints, fetched on first use and cached for the process.

        Raises :class:`ServiceUnavailable` (network/5xx; not cached, so the next call tries again) or
        :class:`ConfigurationError` (the URL does not serve a usable discovery document).
        """
        cached = _discovery_cache.get(self._discovery_url)
        if cached is not None:
            return cached
        with _discovery_lock:
            cached = _discovery_cache.get(self._discovery_url)
            if cached is None:
                cached = self._fetch_discovery()
                _discovery_cache[self._discovery_url] = cached
        return cached

    def _fetch_discovery(self) -> OAuthEndpoints:
        try:
            response = self._session.get(
                self._discovery_url,
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            if is_configuration_problem(exc):
                raise ConfigurationError("The Intuit discovery URL is invalid") from exc
            raise ServiceUnavailable("Intuit's OAuth discovery document could not be fetched") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ServiceUnavailable(
                f"Intuit's OAuth discovery document is unavailable ({response.status_code})",
                intuit_tid=intuit_tid_of(response),
            )
        try:
            doc = response.json() if response.status_code == 200 else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ConfigurationError(
                f"The Intuit discovery URL did not return a discovery document ({response.status_code})"
            )
        try:
            endpoints = OAuthEndpoints(
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                revocation_endpoint=str(doc["revocation_endpoint"]),
                userinfo_endpoint=str(doc["userinfo_endpoint"]) if doc.get("userinfo_endpoint") else None,
            )
        except KeyError as exc:
            raise ConfigurationError(f"The Intuit discovery document lacks {exc.args[0]}") from None
        logger.info("intuit discovery loaded", extra={"operation": "discovery", "status": 200})
        return endpoints

    # ------------------------------------------------------------------ authorization

    def authorization_url(
        self, *, redirect_uri: str, state: str, scopes: Sequence[str] = (ACCOUNTING_SCOPE,)
    ) -> str:
        """The consent URL to send the browser to. ``state`` must be the caller's signed, single-use value."""
        if not redirect_uri:
            raise ValueError("redirect_uri is required")
        if not state:
            raise ValueError("state is required (CSRF protection)")
        if isinstance(scopes, str) or not scopes or not all(scopes):
            raise ValueError("scopes must be a non-empty sequence of scope names")
        query = urlencode(
            {
                "client_id": self._client_id,
                "response_type": "code",
                "scope": " ".join(scopes),
                "redirect_uri": redirect_uri,
                "state": state,
            }
        )
        endpoint = self.endpoints().authorization_endpoint
        separator = "&" if "?" in endpoint else "?"
        return f"{endpoint}{separator}{query}"

    def exchange_code(self, *, code: str, redirect_uri: str) -> TokenSet:
        """Exchange an authorization code (single use) for tokens. Errors: see the module doc."""
        if not code:
            raise ReconnectRequired("The OAuth callback carried no authorization code")
        if not redirect_uri:
            raise ValueError("redirect_uri is required")
        return self._token_request(
            "exchange", {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        """Refresh the access token. ALWAYS persist the returned refresh token: it may have rotated.

        Errors: see the module doc, in particular the note on lost responses.
        """
        if not refresh_token:
            raise ReconnectRequired("No refresh token is stored for this connection")
        return self._token_request("refresh", {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str) -> None:
        """Revoke a refresh (or access) token: ends the app's grant for the company.

        An unknown or already-invalid token is treated as revoked (the goal is reached). Errors:
        :class:`ConfigurationError` (bad client credentials), :class:`ServiceUnavailable` (network/5xx,
        including a lost response: revoking again is harmless), :class:`Throttled`.
        """
        if not token:
            raise ValueError("token is required")
        endpoint = self.endpoints().revocation_endpoint
        started = time.monotonic()
        try:
            response = self._session.post(
                endpoint,
                json={"token": token},
                auth=(self._client_id, self._client_secret),
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            self._log("revoke", None, None, started, error=type(exc).__name__)
            if is_configuration_problem(exc):
                raise ConfigurationError("The Intuit revocation endpoint URL is invalid") from exc
            raise ServiceUnavailable("Intuit's revocation endpoint could not be reached") from exc
        tid = intuit_tid_of(response)
        self._log("revoke", response.status_code, tid, started)
        if response.status_code == 200:
            return
        error = _oauth_error_code(response)
        if response.status_code == 401 or error == "invalid_client":
            raise ConfigurationError(
                "Intuit rejected the app's client credentials on revoke", intuit_tid=tid, oauth_error=error
            )
        if response.status_code == 429:
            raise Throttled(
                "Intuit throttled the revoke request",
                retry_after=parse_retry_after(response.headers.get("Retry-After")) or DEFAULT_THROTTLE_WAIT,
                intuit_tid=tid,
            )
        if response.status_code >= 500:
            raise ServiceUnavailable(
                f"Intuit's revocation endpoint failed ({response.status_code})", intuit_tid=tid
            )
        # 400 for a token that is already revoked/expired/unknown: nothing is left to revoke.
        logger.warning(
            "intuit revoke: token already invalid",
            extra={
                "operation": "revoke",
                "status": response.status_code,
                "oauth_error": error,
                "intuit_tid": tid,
            },
        )

    # ------------------------------------------------------------------ internals

    def _token_request(self, operation: str, form: dict[str, str]) -> TokenSet:
        endpoint = self.endpoints().token_endpoint
        issued_at = self._clock()  # before sending: expiry instants err on the early side
        started = time.monotonic()
        superseded: dict[str, Any] = (
            {"refresh_token_may_be_superseded": True} if operation == "refresh" else {}
        )
        try:
            response = self._session.post(
                endpoint,
                data=form,
                auth=(self._client_id, self._client_secret),
                headers={
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                    "Content-Type": "application/x-www-form-urlencoded",
                    "x-include-refresh-token-hard-expires-in": "true",
                },
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            self._log(operation, None, None, started, error=type(exc).__name__)
            if is_configuration_problem(exc):
                raise ConfigurationError("The Intuit token endpoint URL is invalid") from exc
            if was_sent(exc):
                raise UncertainOutcome(
                    f"The Intuit token {operation} was sent but its response was lost",
                    **superseded,
                ) from exc
            raise ServiceUnavailable(f"Intuit's token endpoint could not be reached ({operation})") from exc
        tid = intuit_tid_of(response)
        self._log(operation, response.status_code, tid, started)
        if response.status_code == 200:
            return self._token_set(response, issued_at, operation, tid, superseded)
        error = _oauth_error_code(response)
        if response.status_code == 400 and error == "invalid_grant":
            what = "authorization code" if operation == "exchange" else "refresh token"
            raise ReconnectRequired(
                f"Intuit rejected the {what} (invalid_grant): the firm must reconnect QuickBooks",
                intuit_tid=tid,
                oauth_error=error,
            )
        if response.status_code == 429:
            raise Throttled(
                f"Intuit throttled the token {operation}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")) or DEFAULT_THROTTLE_WAIT,
                intuit_tid=tid,
            )
        if response.status_code >= 500:
            raise ServiceUnavailable(
                f"Intuit's token endpoint failed ({response.status_code}) on {operation}",
                intuit_tid=tid,
                **superseded,
            )
        raise ConfigurationError(
            f"Intuit rejected the token {operation} ({response.status_code}, {error or 'no error code'}): "
            "check the app's client credentials and redirect URI",
            intuit_tid=tid,
            oauth_error=error,
        )

    def _token_set(
        self,
        response: requests.Response,
        issued_at: datetime,
        operation: str,
        tid: str | None,
        superseded: dict[str, Any],
    ) -> TokenSet:
        try:
            body = response.json()
            access = body["access_token"]
            refresh = body["refresh_token"]
            access_ttl = float(body["expires_in"])
            refresh_ttl = float(body["x_refresh_token_expires_in"])
            hard_raw = body.get("x_refresh_token_hard_expires_in")
            hard_ttl = float(hard_raw) if hard_raw is not None else None
            if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
                raise TypeError("token fields are not strings")
        except (ValueError, KeyError, TypeError) as exc:
            # A 200 was sent, so a refresh token may have rotated - we just cannot read it.
            error: QbsyncError = UncertainOutcome(
                f"Intuit's token {operation} answered 200 with an unreadable body",
                intuit_tid=tid,
                **superseded,
            )
            raise error from exc
        return TokenSet(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=issued_at + timedelta(seconds=access_ttl),
            refresh_expires_at=issued_at + timedelta(seconds=refresh_ttl),
            refresh_hard_expires_at=issued_at + timedelta(seconds=hard_ttl) if hard_ttl is not None else None,
        )

    @staticmethod
    def _log(operation: str, status: int | None, tid: str | None, started: float, **fields: Any) -> None:
        logger.info(
            "intuit oauth call",
            extra={
                "operation": operation,
                "status": status,
                "intuit_tid": tid,
                "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
                **fields,
            },
        )
