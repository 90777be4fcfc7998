"""Intuit OAuth 2.0 / OpenID endpoints (QBO.md §1): discovery, authorize, token, revoke, userinfo.

Faithful parts: Basic (or client_secret_post) client authentication, single-use short-lived codes,
rotating refresh tokens (every refresh by default), a superseded/revoked/expired refresh token answers
400 ``invalid_grant``, bad client credentials 401 ``invalid_client``, ``x_refresh_token_hard_expires_in``
only when ``x-include-refresh-token-hard-expires-in: true`` is sent, revoke ends the whole grant.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from local.qbo_sim.state import AccessToken, App, AuthCode, Grant, SimError, SimState

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = {
    ACCOUNTING_SCOPE,
    "com.intuit.quickbooks.payment",
    "openid",
    "profile",
    "email",
    "phone",
    "address",
    "indirect-tax.tax-calculation.quickbooks",
    "project-management.project",
    "app-foundations.custom-field-definitions",
    "app-foundations.custom-field-definitions.read",
}

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def sim(request: Request) -> SimState:
    return request.app.state.sim


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# ---------------------------------------------------------------- discovery


async def discovery(request: Request) -> Response:
    base = base_url(request)
    return JSONResponse(
        {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/oauth2/v1/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": [
                "aud",
                "exp",
                "iat",
                "iss",
                "realmid",
                "sub",
            ],
        }
    )


async def jwks(request: Request) -> Response:
    # The simulator never issues id_tokens, so there is nothing to verify.
    return JSONResponse({"keys": []})


# ---------------------------------------------------------------- authorize


def _redirect_with(uri: str, params: dict[str, str]) -> RedirectResponse:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=302)


async def authorize(request: Request) -> Response:
    state = sim(request)
    params = request.query_params
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    app = state.apps.get(client_id)
    # Like Intuit: an unknown client or a redirect URI that is not registered never redirects.
    if app is None:
        return JSONResponse({"error": "invalid_client", "error_description": "unknown client_id"}, 400)
    if redirect_uri not in app.redirect_uris:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "redirect_uri is not registered for this app"},
            400,
        )
    oauth_state = params.get("state")
    extra = {"state": oauth_state} if oauth_state is not None else {}
    if params.get("response_type") != "code":
        return _redirect_with(redirect_uri, {"error": "unsupported_response_type", **extra})
    scopes = params.get("scope", "").split()
    if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
        return _redirect_with(redirect_uri, {"error": "invalid_scope", **extra})
    decision = state.consent.get(client_id) or state.consent.get(None)
    if decision == "__deny__":
        return _redirect_with(redirect_uri, {"error": "access_denied", **extra})
    realm_id = decision if decision in state.companies else next(iter(state.companies), None)
    if realm_id is None:
        return _redirect_with(redirect_uri, {"error": "access_denied", **extra})
    code = "AB11" + secrets.token_urlsafe(36)
    state.codes[code] = AuthCode(
        code=code,
        client_id=client_id,
        redirect_uri=redirect_uri,
        realm_id=realm_id,
        scopes=scopes,
        expires_at=state.clock.time() + state.config.auth_code_ttl,
    )
    return _redirect_with(redirect_uri, {"code": code, **extra, "realmId": realm_id})


# ---------------------------------------------------------------- token


def _client_auth(request: Request, form: dict[str, str], state: SimState) -> App:
    """Authenticate the client by HTTP Basic or client_secret_post. Raises SimError 401."""
    header = request.headers.get("authorization", "")
    client_id = client_secret = None
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SimError(401, "invalid_client") from None
        client_id, _, client_secret = decoded.partition(":")
    elif "client_id" in form:
        client_id, client_secret = form.get("client_id"), form.get("client_secret", "")
    app = state.apps.get(client_id or "")
    if app is None or not secrets.compare_digest(app.client_secret, client_secret or ""):
        raise SimError(401, "invalid_client")
    return app


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", errors="replace")
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        try:
            data = json.loads(raw or "{}")
        except json.JSONDecodeError:
            raise SimError(400, "invalid_request", "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise SimError(400, "invalid_request", "body must be a JSON object")
        return {str(k): str(v) for k, v in data.items()}
    return dict(parse_qsl(raw, keep_blank_values=True))


def issue_access_token(state: SimState, grant: Grant) -> AccessToken:
    token = state.new_token("eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..", 96)
    record = AccessToken(token, grant.grant_id, state.clock.time() + state.config.access_token_ttl)
    state.access_tokens[token] = record
    return record


def _rotate_refresh(state: SimState, grant: Grant) -> None:
    now = state.clock.time()
    token = "RT1-" + str(secrets.randbelow(900) + 100) + "-H0-" + secrets.token_urlsafe(30)
    grant.refresh_token = token
    grant.refresh_issued_at = now
    grant.refresh_expires_at = now + state.config.refresh_token_ttl
    state.refresh_tokens[token] = grant.grant_id


def token_response(state: SimState, grant: Grant, access: AccessToken, include_hard: bool) -> dict[str, Any]:
    now = state.clock.time()
    body: dict[str, Any] = {
        "token_type": "bearer",
        "access_token": access.token,
        "expires_in": round(access.expires_at - now),
        "refresh_token": grant.refresh_token,
        "x_refresh_token_expires_in": max(0, round(grant.refresh_expires_at - now)),
    }
    if include_hard:
        body["x_refresh_token_hard_expires_in"] = max(0, round(grant.hard_expires_at - now))
    return body


def create_grant(state: SimState, client_id: str, realm_id: str, scopes: list[str]) -> Grant:
    now = state.clock.time()
    grant = Grant(
        grant_id=secrets.token_hex(8),
        client_id=client_id,
        realm_id=realm_id,
        scopes=scopes,
        created_at=now,
        hard_expires_at=now + state.config.refresh_token_hard_ttl,
    )
    state.grants[grant.grant_id] = grant
    _rotate_refresh(state, grant)
    return grant


async def token(request: Request) -> Response:
    state = sim(request)
    try:
        form = await _form(request)
        app = _client_auth(request, form, state)
        include_hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
        grant_type = form.get("grant_type")
        now = state.clock.time()
        grant: Grant | None
        if grant_type == "authorization_code":
            code = state.codes.get(form.get("code", ""))
            if code is None or code.client_id != app.client_id:
                raise SimError(400, "invalid_grant")
            if code.used or code.expires_at <= now:
                raise SimError(400, "invalid_grant")
            if form.get("redirect_uri") != code.redirect_uri:
                raise SimError(400, "invalid_grant")
            code.used = True  # single use, even if what follows fails
            grant = create_grant(state, app.client_id, code.realm_id, code.scopes)
        elif grant_type == "refresh_token":
            presented = form.get("refresh_token", "")
            if not presented:
                raise SimError(400, "invalid_request")
            grant_id = state.refresh_tokens.get(presented)
            grant = state.grants.get(grant_id or "")
            if (
                grant is None
                or grant.client_id != app.client_id
                or grant.revoked
                or grant.refresh_token != presented  # superseded by a rotation
                or grant.refresh_expires_at <= now
                or grant.hard_expires_at <= now
            ):
                raise SimError(400, "invalid_grant", "Incorrect or invalid refresh token")
            age = now - grant.refresh_issued_at
            if (
                state.config.refresh_token_rotation_seconds == 0
                or age >= state.config.refresh_token_rotation_seconds
            ):
                _rotate_refresh(state, grant)
            else:
                grant.refresh_expires_at = now + state.config.refresh_token_ttl  # rolling window restarts
        elif not grant_type:
            raise SimError(400, "invalid_request")
        else:
            raise SimError(400, "unsupported_grant_type")
        assert grant is not None
        access = issue_access_token(state, grant)
        return JSONResponse(token_response(state, grant, access, include_hard), headers=_NO_STORE)
    except SimError as exc:
        headers = {"WWW-Authenticate": 'Basic realm="Intuit"'} if exc.status == 401 else None
        return JSONResponse(exc.body(), exc.status, headers=headers)


def revoke_grant(state: SimState, grant: Grant) -> None:
    grant.revoked = True
    for tok in [t for t, rec in state.access_tokens.items() if rec.grant_id == grant.grant_id]:
        del state.access_tokens[tok]


async def revoke(request: Request) -> Response:
    state = sim(request)
    try:
        form = await _form(request)
        app = _client_auth(request, form, state)
        presented = form.get("token", "")
        if not presented:
            raise SimError(400, "invalid_request", "token is required")
        grant = None
        if presented in state.refresh_tokens:
            grant = state.grants.get(state.refresh_tokens[presented])
        elif presented in state.access_tokens:
            grant = state.grants.get(state.access_tokens[presented].grant_id)
        if grant is not None and grant.client_id == app.client_id:
            revoke_grant(state, grant)
        # RFC 7009: an unknown token is not an error.
        return Response(status_code=200)
    except SimError as exc:
        return JSONResponse(exc.body(), exc.status)


# ---------------------------------------------------------------- bearer auth / userinfo


class AuthFailure(Exception):
    """The bearer token is missing, malformed, unknown, expired or revoked."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def authenticate(state: SimState, header: str | None) -> Grant:
    """Resolve ``Authorization: Bearer ...`` to a live grant. Raises AuthFailure."""
    if not header or not header.lower().startswith("bearer "):
        raise AuthFailure("Authorization header missing or not a Bearer token")
    presented = header[7:].strip()
    # The real gateway echoes the start of the token; only a short prefix is echoed here.
    shown = (presented[:12] + "...") if len(presented) > 12 else "..."
    if len(presented) < 20 or len(presented) > 4096:
        raise AuthFailure("Malformed bearer token: too short or too long")
    record = state.access_tokens.get(presented)
    if record is None:
        raise AuthFailure(f"Token invalid: {shown}")
    grant = state.grants.get(record.grant_id)
    if grant is None or grant.revoked:
        raise AuthFailure(f"Token revoked: {shown}")
    if record.expires_at <= state.clock.time():
        raise AuthFailure(f"Token expired: {shown}")
    return grant


async def userinfo(request: Request) -> Response:
    state = sim(request)
    try:
        grant = authenticate(state, request.headers.get("authorization"))
    except AuthFailure:
        return JSONResponse(
            {"error": "invalid_token"}, 401, headers={"WWW-Authenticate": 'Bearer realm="Intuit"'}
        )
    return JSONResponse(
        {
            "sub": f"sim-user-{grant.realm_id}",
            "givenName": "Sim",
            "familyName": "Owner",
            "email": f"owner+{grant.realm_id}@example.com",
            "emailVerified": True,
            "phoneNumber": "+16505550100",
            "phoneNumberVerified": False,
        }
    )


def routes() -> list[Route]:
    return [
        Route("/.well-known/openid_configuration", discovery, methods=["GET"]),
        Route("/.well-known/openid_configuration/", discovery, methods=["GET"]),
        Route("/.well-known/openid_sandbox_configuration", discovery, methods=["GET"]),
        Route("/.well-known/openid_sandbox_configuration/", discovery, methods=["GET"]),
        Route("/op/v1/jwks", jwks, methods=["GET"]),
        Route("/connect/oauth2", authorize, methods=["GET"]),
        Route("/oauth2/v1/tokens/bearer", token, methods=["POST"]),
        Route("/oauth2/v1/tokens/revoke", revoke, methods=["POST"]),
        Route("/v2/oauth2/tokens/revoke", revoke, methods=["POST"]),
        Route("/v1/openid_connect/userinfo", userinfo, methods=["GET"]),
    ]
