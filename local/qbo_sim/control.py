"""The control API under ``/_sim/`` (docs/contracts.md, "QuickBooks simulator"): JSON in, JSON out.

Errors answer ``{"error": code, "error_description": text}`` with 400 (bad body), 404 (unknown realm/app)
or 409 (already exists).
"""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.qbo_sim.config import limit_config_from_dict
from local.qbo_sim.entities.engine import URL_NAMES, Change
from local.qbo_sim.entities.seed import seed_company
from local.qbo_sim.injection import FaultRule
from local.qbo_sim.oauth import (
    ACCOUNTING_SCOPE,
    create_grant,
    issue_access_token,
    revoke_grant,
    token_response,
)
from local.qbo_sim.state import App, Company, SimError, SimState


def _sim(request: Request) -> SimState:
    return request.app.state.sim


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SimError(400, "invalid_request", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise SimError(400, "invalid_request", "body must be a JSON object")
    return data


def _err(exc: SimError) -> JSONResponse:
    return JSONResponse(exc.body(), exc.status)


def _str(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SimError(400, "invalid_request", f"{key} must be a non-empty string")
    return value


# ---------------------------------------------------------------- core operations (also used at start-up)


def add_app(state: SimState, data: dict[str, Any]) -> App:
    """Register (or replace) an app. Raises SimError 400 on a bad body."""
    client_id = _str(data, "client_id")
    secret = _str(data, "client_secret")
    uris = data.get("redirect_uris", [])
    if not isinstance(uris, list) or not all(isinstance(u, str) and u for u in uris):
        raise SimError(400, "invalid_request", "redirect_uris must be a list of URLs")
    webhook = data.get("webhook")
    if webhook is not None:
        if not isinstance(webhook, dict):
            raise SimError(400, "invalid_request", "webhook must be an object")
        _str(webhook, "url")
        _str(webhook, "verifier_token")
        fmt = webhook.get("format", "classic")
        if fmt not in ("classic", "cloudevents"):
            raise SimError(400, "invalid_request", "webhook.format must be 'classic' or 'cloudevents'")
        webhook = {"url": webhook["url"], "verifier_token": webhook["verifier_token"], "format": fmt}
    unknown = set(data) - {"client_id", "client_secret", "redirect_uris", "webhook"}
    if unknown:
        raise SimError(400, "invalid_request", f"unknown keys: {sorted(unknown)}")
    assert client_id is not None and secret is not None
    app = App(client_id, secret, list(uris), webhook)
    with state.lock:
        state.apps[client_id] = app
    dispatcher = getattr(state, "webhooks", None)
    if dispatcher is not None:
        if webhook is not None:
            dispatcher.configure_app(
                client_id,
                url=webhook["url"],
                verifier_token=webhook["verifier_token"],
                format=webhook["format"],
            )
        else:
            dispatcher.remove_app(client_id)
    return app


def add_company(state: SimState, data: dict[str, Any]) -> Company:
    """Create and seed a company. Raises SimError 400 (bad body) or 409 (realm exists)."""
    unknown = set(data) - {"realm_id", "company_name", "seed"}
    if unknown:
        raise SimError(400, "invalid_request", f"unknown keys: {sorted(unknown)}")
    realm_id = data.get("realm_id")
    if realm_id is not None and (
        not isinstance(realm_id, str) or not realm_id.isdigit() or len(realm_id) > 20
    ):
        raise SimError(400, "invalid_request", "realm_id must be a numeric string")
    name = data.get("company_name", "Sandbox Company_US_1")
    if not isinstance(name, str) or not name.strip():
        raise SimError(400, "invalid_request", "company_name must be a non-empty string")
    seed = data.get("seed", "default")
    if seed not in ("default", "empty"):
        raise SimError(400, "invalid_request", "seed must be 'default' or 'empty'")
    with state.lock:
        realm_id = realm_id or state.new_realm_id()
        if realm_id in state.companies:
            raise SimError(409, "conflict", f"company {realm_id} already exists")
        company = Company(realm_id=realm_id, company_name=name, seed=seed)
        seed_company(company, state.clock)
        state.companies[realm_id] = company
    return company


def _matching_grants(state: SimState, realm_id: str | None, client_id: str | None) -> list[Any]:
    return [
        g
        for g in state.grants.values()
        if (realm_id is None or g.realm_id == realm_id) and (client_id is None or g.client_id == client_id)
    ]


# ---------------------------------------------------------------- endpoints


async def health(request: Request) -> Response:
    state = _sim(request)
    return JSONResponse(
        {
            "status": "ok",
            "companies": len(state.companies),
            "apps": len(state.apps),
            "clock_offset_seconds": state.clock.offset_seconds,
            "now": state.clock.company_now().isoformat(),
        }
    )


async def apps_endpoint(request: Request) -> Response:
    state = _sim(request)
    if request.method == "GET":
        return JSONResponse({"apps": [a.public() for a in state.apps.values()]})
    try:
        app = add_app(state, await _body(request))
    except SimError as exc:
        return _err(exc)
    return JSONResponse(app.public(), 201)


async def companies_endpoint(request: Request) -> Response:
    state = _sim(request)
    if request.method == "GET":
        return JSONResponse({"companies": [c.summary() for c in state.companies.values()]})
    try:
        company = add_company(state, await _body(request))
    except SimError as exc:
        return _err(exc)
    return JSONResponse(company.summary(), 201)


async def company_endpoint(request: Request) -> Response:
    state = _sim(request)
    try:
        company = state.company(request.path_params["realm_id"])
        if request.method == "GET":
            return JSONResponse(company.summary())
        with state.lock:
            del state.companies[company.realm_id]
            for grant in _matching_grants(state, company.realm_id, None):
                revoke_grant(state, grant)
    except SimError as exc:
        return _err(exc)
    return Response(status_code=204)


async def reset_company(request: Request) -> Response:
    state = _sim(request)
    try:
        company = state.company(request.path_params["realm_id"])
        body = await _body(request)
        seed = body.get("seed", company.seed)
        if seed not in ("default", "empty"):
            raise SimError(400, "invalid_request", "seed must be 'default' or 'empty'")
        with state.lock:
            company.seed = seed
            seed_company(company, state.clock)
    except SimError as exc:
        return _err(exc)
    return JSONResponse(company.summary())


_PREF_KEYS = {
    "books_closed_date",
    "books_closed_password",
    "custom_txn_numbers",
    "multicurrency",
    "automated_sales_tax",
    "using_sales_tax",
    "auto_apply_credit",
    "Preferences",
}


def _deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = value


async def patch_preferences(request: Request) -> Response:
    state = _sim(request)
    try:
        company = state.company(request.path_params["realm_id"])
        body = await _body(request)
        unknown = set(body) - _PREF_KEYS
        if unknown:
            raise SimError(400, "invalid_request", f"unknown keys: {sorted(unknown)}")
        with state.lock:
            prefs = copy.deepcopy(company.table("Preferences")["1"])
            if "books_closed_date" in body:
                value = body["books_closed_date"]
                acct = prefs.setdefault("AccountingInfoPrefs", {})
                if value is None:
                    acct.pop("BookCloseDate", None)
                else:
                    try:
                        acct["BookCloseDate"] = date.fromisoformat(str(value)).isoformat()
                    except ValueError:
                        raise SimError(
                            400, "invalid_request", "books_closed_date must be YYYY-MM-DD"
                        ) from None
            for key, path in (
                ("custom_txn_numbers", ("SalesFormsPrefs", "CustomTxnNumbers")),
                ("automated_sales_tax", ("TaxPrefs", "PartnerTaxEnabled")),
                ("using_sales_tax", ("TaxPrefs", "UsingSalesTax")),
                ("auto_apply_credit", ("SalesFormsPrefs", "AutoApplyCredit")),
                ("multicurrency", ("CurrencyPrefs", "MultiCurrencyEnabled")),
                ("books_closed_password", None),
            ):
                if key not in body:
                    continue
                if not isinstance(body[key], bool):
                    raise SimError(400, "invalid_request", f"{key} must be a boolean")
                if path is None:
                    continue
                prefs.setdefault(path[0], {})[path[1]] = body[key]
            if "Preferences" in body:
                if not isinstance(body["Preferences"], dict):
                    raise SimError(400, "invalid_request", "Preferences must be an object")
                _deep_merge(
                    prefs,
                    {
                        k: v
                        for k, v in body["Preferences"].items()
                        if k not in ("Id", "SyncToken", "MetaData", "domain", "sparse")
                    },
                )
            if "books_closed_password" in body:
                company.books_closed_password = body["books_closed_password"]
            old = company.table("Preferences")["1"]
            stamp = state.clock.stamp()
            prefs["SyncToken"] = str(int(old.get("SyncToken", "0")) + 1)
            prefs["MetaData"] = {**old.get("MetaData", {}), "LastUpdatedTime": stamp}
            company.table("Preferences")["1"] = prefs
            company.touched[("Preferences", "1")] = state.clock.time()
        notify = getattr(state, "notify", None)
        if notify is not None:
            notify(company.realm_id, [Change("Preferences", "1", "Update", stamp)])
    except SimError as exc:
        return _err(exc)
    return JSONResponse({"Preferences": prefs})


async def consent(request: Request) -> Response:
    state = _sim(request)
    try:
        body = await _body(request)
        client_id = _str(body, "client_id", required=False)
        if body.get("deny") is True:
            state.consent[client_id] = "__deny__"
        else:
            realm_id = _str(body, "realm_id")
            state.company(realm_id or "")
            state.consent[client_id] = realm_id or ""
    except SimError as exc:
        return _err(exc)
    return JSONResponse({"client_id": client_id, "realm_id": state.consent[client_id]})


async def expire_tokens(request: Request) -> Response:
    state = _sim(request)
    try:
        body = await _body(request)
        kind = body.get("kind", "access")
        if kind not in ("access", "refresh", "all"):
            raise SimError(400, "invalid_request", "kind must be 'access', 'refresh' or 'all'")
        grants = _matching_grants(state, body.get("realm_id"), body.get("client_id"))
        past = state.clock.time() - 1
        expired_access = 0
        with state.lock:
            ids = {g.grant_id for g in grants}
            for grant in grants:
                if kind in ("refresh", "all"):
                    grant.refresh_expires_at = past
            if kind in ("access", "all"):
                for record in state.access_tokens.values():
                    if record.grant_id in ids and record.expires_at > past:
                        record.expires_at = past
                        expired_access += 1
    except SimError as exc:
        return _err(exc)
    return JSONResponse({"grants": len(grants), "access_tokens_expired": expired_access})


async def revoke_tokens(request: Request) -> Response:
    state = _sim(request)
    try:
        body = await _body(request)
        realm_id = _str(body, "realm_id")
        grants = _matching_grants(state, realm_id, body.get("client_id"))
        with state.lock:
            for grant in grants:
                revoke_grant(state, grant)
    except SimError as exc:
        return _err(exc)
    return JSONResponse({"grants_revoked": len(grants)})


async def issue_tokens(request: Request) -> Response:
    """Shortcut for tests: consent + code exchange in one call (not an Intuit endpoint)."""
    state = _sim(request)
    try:
        body = await _body(request)
        client_id = _str(body, "client_id")
        realm_id = _str(body, "realm_id")
        state.app(client_id or "")
        state.company(realm_id or "")
        scopes = body.get("scopes", [ACCOUNTING_SCOPE])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise SimError(400, "invalid_request", "scopes must be a list of strings")
        with state.lock:
            grant = create_grant(state, client_id or "", realm_id or "", scopes)
            access = issue_access_token(state, grant)
            result = token_response(state, grant, access, include_hard=True)
    except SimError as exc:
        return _err(exc)
    return JSONResponse({**result, "realmId": realm_id})


async def clock_endpoint(request: Request) -> Response:
    state = _sim(request)
    try:
        if request.method == "POST":
            body = await _body(request)
            seconds = body.get("advance_seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise SimError(400, "invalid_request", "advance_seconds must be a number")
            try:
                state.clock.advance(seconds)
            except ValueError as exc:
                raise SimError(400, "invalid_request", str(exc)) from None
    except SimError as exc:
        return _err(exc)
    return JSONResponse(
        {
            "offset_seconds": state.clock.offset_seconds,
            "now": state.clock.company_now().isoformat(),
            "epoch": state.clock.time(),
        }
    )


async def faults_endpoint(request: Request) -> Response:
    state = _sim(request)
    injector = request.app.state.injector
    if request.method == "DELETE":
        injector.clear()
        dispatcher = getattr(state, "webhooks", None)
        if dispatcher is not None:
            dispatcher.clear_losses()  # "clear every fault" includes the webhook losses
        return Response(status_code=204)
    if request.method == "GET":
        return JSONResponse({"faults": injector.rules()})
    try:
        try:
            rule = FaultRule.from_dict(await _body(request))
        except ValueError as exc:
            raise SimError(400, "invalid_request", str(exc)) from None
    except SimError as exc:
        return _err(exc)
    del state
    return JSONResponse(injector.add(rule).public(), 201)


async def limits_endpoint(request: Request) -> Response:
    state = _sim(request)
    if request.method == "PUT":
        try:
            try:
                cfg = limit_config_from_dict(await _body(request), state.config.limits)
            except ValueError as exc:
                raise SimError(400, "invalid_request", str(exc)) from None
        except SimError as exc:
            return _err(exc)
        state.config.limits = cfg
        request.app.state.limiter.configure(cfg)
    body: dict[str, Any] = dict(state.config.limits.__dict__)
    realm_id, client_id = request.query_params.get("realm_id"), request.query_params.get("client_id")
    if realm_id and client_id:
        body["in_flight"] = request.app.state.limiter.in_flight(realm_id, client_id)
    return JSONResponse(body)


async def latency_endpoint(request: Request) -> Response:
    latency = request.app.state.latency
    if request.method == "PUT":
        try:
            try:
                latency.configure(await _body(request))
            except ValueError as exc:
                raise SimError(400, "invalid_request", str(exc)) from None
        except SimError as exc:
            return _err(exc)
    return JSONResponse(latency.public())


async def entities_endpoint(request: Request) -> Response:
    state = _sim(request)
    try:
        company = state.company(request.path_params["realm_id"])
        entity = URL_NAMES.get(request.path_params["entity"].lower())
        if entity is None:
            raise SimError(404, "not_found", "unknown entity")
        with state.lock:
            rows = copy.deepcopy(list(company.table(entity).values()))
            deleted = copy.deepcopy(list(company.deleted.get(entity, {}).values()))
    except SimError as exc:
        return _err(exc)
    return JSONResponse({entity: rows, "deleted": deleted})


async def entity_endpoint(request: Request) -> Response:
    state = _sim(request)
    try:
        company = state.company(request.path_params["realm_id"])
        entity = URL_NAMES.get(request.path_params["entity"].lower())
        obj = company.table(entity).get(request.path_params["obj_id"]) if entity else None
        if obj is None:
            raise SimError(404, "not_found", "no such object")
    except SimError as exc:
        return _err(exc)
    return JSONResponse({entity: obj})


async def requests_endpoint(request: Request) -> Response:
    state = _sim(request)
    if request.method == "DELETE":
        state.request_log.clear()
        return Response(status_code=204)
    realm_id = request.query_params.get("realm_id")
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        return _err(SimError(400, "invalid_request", "limit must be an integer"))
    rows = [r for r in list(state.request_log) if realm_id is None or r.get("realm_id") == realm_id]
    return JSONResponse({"requests": rows[-limit:] if limit > 0 else []})


async def deliveries_endpoint(request: Request) -> Response:
    state = _sim(request)
    dispatcher = getattr(state, "webhooks", None)
    return JSONResponse({"deliveries": dispatcher.deliveries() if dispatcher is not None else []})


async def flush_webhooks(request: Request) -> Response:
    """Deliver every pending notification now (``{"include_retries": true}`` also forces retries).

    Runs in a worker thread: the POSTs must not block the event loop (the receiver may call back)."""
    state = _sim(request)
    dispatcher = getattr(state, "webhooks", None)
    try:
        body = await _body(request)
    except SimError as exc:
        return _err(exc)
    include_retries = body.get("include_retries") is True
    if dispatcher is not None:
        await run_in_threadpool(dispatcher.flush_now, include_retries=include_retries)
    return JSONResponse({"deliveries": dispatcher.deliveries() if dispatcher is not None else []})


async def lose_webhooks(request: Request) -> Response:
    """The "lose this webhook" fault: ``POST {"count"?: N, "realm_id"?, "client_id"?}`` loses the next N
    notifications (default 1) for that realm/app - built, never sent, never retried, recorded as
    ``lost`` in the deliveries. ``GET`` lists the rules still losing; ``DELETE`` forgets them."""
    dispatcher = getattr(_sim(request), "webhooks", None)
    if dispatcher is None:
        return _err(SimError(404, "not_found", "webhooks are not enabled"))
    if request.method == "DELETE":
        dispatcher.clear_losses()
        return Response(status_code=204)
    if request.method == "GET":
        return JSONResponse({"losses": dispatcher.losses()})
    try:
        body = await _body(request)
        unknown = set(body) - {"count", "realm_id", "client_id"}
        if unknown:
            raise SimError(400, "invalid_request", f"unknown keys: {sorted(unknown)}")
        try:
            rule = dispatcher.lose_next(
                body.get("count", 1), realm_id=body.get("realm_id"), client_id=body.get("client_id")
            )
        except ValueError as exc:
            raise SimError(400, "invalid_request", str(exc)) from None
    except SimError as exc:
        return _err(exc)
    return JSONResponse(rule, 201)


def routes() -> list[Route]:
    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/apps", apps_endpoint, methods=["GET", "POST"]),
        Route("/_sim/companies", companies_endpoint, methods=["GET", "POST"]),
        Route("/_sim/companies/{realm_id}", company_endpoint, methods=["GET", "DELETE"]),
        Route("/_sim/companies/{realm_id}/reset", reset_company, methods=["POST"]),
        Route("/_sim/companies/{realm_id}/preferences", patch_preferences, methods=["PATCH"]),
        Route("/_sim/companies/{realm_id}/entities/{entity}", entities_endpoint, methods=["GET"]),
        Route("/_sim/companies/{realm_id}/entities/{entity}/{obj_id}", entity_endpoint, methods=["GET"]),
        Route("/_sim/consent", consent, methods=["PUT"]),
        Route("/_sim/tokens/expire", expire_tokens, methods=["POST"]),
        Route("/_sim/tokens/revoke", revoke_tokens, methods=["POST"]),
        Route("/_sim/tokens/issue", issue_tokens, methods=["POST"]),
        Route("/_sim/clock", clock_endpoint, methods=["GET", "POST"]),
        Route("/_sim/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/limits", limits_endpoint, methods=["GET", "PUT"]),
        Route("/_sim/latency", latency_endpoint, methods=["GET", "PUT"]),
        Route("/_sim/requests", requests_endpoint, methods=["GET", "DELETE"]),
        Route("/_sim/webhooks/deliveries", deliveries_endpoint, methods=["GET"]),
        Route("/_sim/webhooks/flush", flush_webhooks, methods=["POST"]),
        Route("/_sim/webhooks/lose", lose_webhooks, methods=["GET", "POST", "DELETE"]),
    ]
