"""Admin API of the QuickBooks connection (docs/contracts.md "HTTP routes") and the OAuth callback.

Thin: each route parses its input, reads the caller from the authorizer context, calls one domain
function of :class:`qbsync.connection.service.ConnectionService` and returns its model. Domain errors
become HTTP once, in :func:`handle_qbsync_error` (``{"error": code, "message": ...}``); bad input is
always a 4xx; anything else is a bug, a JSON 500 with the request id (:func:`handle_unexpected_error`).
The callback connects nothing: it parks the proven grant and sends the browser back to the platform
with a one-time handle (303), or shows the handle on a small HTML page; refusals are HTML pages too (never
tokens, codes or handles of anyone else). The platform completes with ``POST /connection/complete``. A
missing or bad setting (environment, secret field) is found at the start of the invocation
(:func:`qbsync.wiring.start`): logged with the setting's name, answered with a JSON 500 carrying the
request id.
"""

# No `from __future__ import annotations` here: pydantic resolves the request models' annotations eagerly.

import html
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ConfigDict, Field
from qbsync import wiring
from qbsync.api.common import (
    AdminResolver,
    body_problem,
    error_responses,
    not_configured,
    qbsync_error_response,
    refuse_body,
    unexpected_error_response,
    validation_error_response,
)
from qbsync.auth import Caller, caller_from_event
from qbsync.connection.models import (
    AuthorizationParked,
    CheckResult,
    ConnectionView,
    ConnectOutcome,
    ConnectSettings,
    ConnectUrl,
)
from qbsync.connection.service import ConnectionService
from qbsync.errors import BadRequest, ConfigurationError, NotFound, QbsyncError, RetryableError
from qbsync.observability import bind_context, logger, metrics, tracer

# Validation on: request bodies are the pydantic models below (a bad body is a 400 naming the fields, see
# handle_validation_error); the routes' models and responses make docs/openapi.json (scripts/gen_openapi.py).
# AdminResolver: the whole path must match a route (Powertools' own `$` lets "/connection\n" through).
app = AdminResolver(enable_validation=True)


class ConnectUrlRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    settings: ConnectSettings | None = None


class ConfirmSwitchRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    confirmation: str = Field(max_length=32, description='"ACCEPT"')


class CompleteRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    handle: Annotated[
        str,
        Field(
            min_length=16,
            max_length=128,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="the `handle` query parameter the OAuth callback added to the return URL",
        ),
    ]


def _service() -> ConnectionService:
    return wiring.connection_service()


def _caller() -> Caller:
    caller = caller_from_event(app.current_event.raw_event)
    bind_context(firm_id=caller.firm_id)
    return caller


def _ok(model: type[BaseModel], description: str, *statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI responses of a route that answers ``model`` (as a plain dict) or the listed errors."""
    ok: OpenAPIResponse = {"description": description, "content": {"application/json": {"model": model}}}
    return {**error_responses(*statuses, ok=None), 200: ok}


def _own_callback_url() -> str | None:
    """This API's own callback URL (used only when the deployment leaves OAUTH_REDIRECT_URI empty)."""
    context = app.current_event.request_context
    domain, stage = context.domain_name, context.stage
    return f"https://{domain}/{stage}/oauth/callback" if domain and stage else None


@app.get(
    "/connection",
    summary="Get the QuickBooks connection",
    description="Status, company, token expiry, a pending company switch and archived companies. 404 before "
    "the firm first connects. Any role.",
    tags=["Connection"],
    responses=_ok(ConnectionView, "The connection"),
)
def get_connection() -> dict[str, Any]:
    return _service().status(_caller()).model_dump(mode="json")


@app.post(
    "/connection/connect-url",
    summary="Start connecting QuickBooks",
    description="The Intuit consent URL to open in the owner's browser (signed single-use state); the "
    "optional settings are the owner's choices before consent. Owner only.",
    tags=["Connection"],
    responses=_ok(ConnectUrl, "The consent URL", 503),
)
def create_connect_url(request: Annotated[ConnectUrlRequest | None, Body()] = None) -> dict[str, Any]:
    caller = _caller()
    service = _service()
    settings = request.settings if request is not None else None
    url = service.create_connect_url(caller, settings, redirect_uri=_own_callback_url())
    return url.model_dump(mode="json")


@app.post(
    "/connection/confirm-switch",
    summary="Confirm connecting a different QuickBooks company",
    description='Body {"confirmation": "ACCEPT"}; the previous company is archived. Owner only.',
    tags=["Connection"],
    responses=_ok(ConnectionView, "The connection, now on the new company", 409),
)
def confirm_switch(request: Annotated[ConfirmSwitchRequest, Body()]) -> dict[str, Any]:
    caller = _caller()
    return _service().confirm_switch(caller, request.confirmation).model_dump(mode="json")


@app.post(
    "/connection/disconnect",
    summary="Disconnect QuickBooks",
    description="Revokes the tokens at Intuit and stops the sync. Owner only.",
    tags=["Connection"],
    responses=_ok(ConnectionView, "The disconnected connection", 409, 503),
)
def disconnect() -> dict[str, Any]:
    return _service().disconnect(_caller()).model_dump(mode="json")


@app.post(
    "/connection/check",
    summary="Check the QuickBooks connection now",
    description="Calls QuickBooks with the stored tokens (refreshing them if needed). Owner or admin.",
    tags=["Connection"],
    responses=_ok(CheckResult, "QuickBooks answered", 409, 429, 503),
)
def check() -> dict[str, Any]:
    return _service().check(_caller()).model_dump(mode="json")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto;">
<h1>{title}</h1><p>{message}</p>{extra}<p>You can close this window.</p></body></html>
"""

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(status: int, title: str, message: str, extra: str = "") -> Response[str]:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=_PAGE.format(title=html.escape(title), message=html.escape(message), extra=extra),
        headers=dict(_NO_STORE),
    )


_HTML_PAGE: OpenAPIResponse = {
    "description": "A small HTML page for the browser saying what happened",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
_REDIRECT: OpenAPIResponse = {
    "description": "The grant is proven and parked: the browser goes to the platform's return URL "
    "(PLATFORM_RETURN_URL) with the one-time `handle` query parameter; the platform completes the connection "
    "with POST /connection/complete",
    "headers": {"Location": {"description": "the return URL with `handle`", "schema": {"type": "string"}}},
}


def _parked_page(parked: AuthorizationParked) -> Response[str]:
    """No return URL configured: the page shows the handle and what the platform does with it."""
    extra = (
        f"<p>Connection handle (valid until {html.escape(parked.expires_at)}, usable once, only from your "
        "own account):</p>"
        f'<p><code style="word-break: break-all;">{html.escape(parked.handle)}</code></p>'
    )
    return _page(
        200,
        "QuickBooks authorized: finish in the platform",
        "Your QuickBooks company was confirmed but is not connected yet. Go back to the platform and "
        "complete the connection there (the platform sends this handle to POST /connection/complete with "
        "your sign-in).",
        extra,
    )


@app.get(
    "/oauth/callback",
    summary="Intuit's OAuth redirect",
    description="Where Intuit sends the owner's browser after consent. Authenticated by the signed, "
    "single-use state (no admin token). Connects nothing: it proves the company (CompanyInfo read with the "
    "new token), parks the grant under a one-time handle and redirects to the platform's return URL with "
    "it (303), or shows it on a page when no return URL is configured (200). Refusals are HTML pages "
    "(4xx/503) saying why; nothing is stored and the new grant is revoked.",
    tags=["Connection"],
    security=[{}],
    responses={303: _REDIRECT, **dict.fromkeys((200, 400, 403, 404, 409, 429, 503), _HTML_PAGE)},
)
def oauth_callback(
    code: Annotated[str | None, Query(description="authorization code")] = None,
    state: Annotated[str | None, Query(description="the signed state of the connect URL")] = None,
    realm_id: Annotated[str | None, Query(alias="realmId", description="the QuickBooks company")] = None,
    error: Annotated[str | None, Query(description="set by Intuit when the owner declined")] = None,
) -> Response[str]:
    try:
        parked = _service().complete_callback(
            code=code,
            state=state,
            realm_id=realm_id,
            error=error,
            redirect_uri=_own_callback_url(),
        )
    except QbsyncError as err:
        status = err.http_status if err.http_status < 500 else 503
        logger.warning("oauth callback refused", extra={"error_code": err.code, "status": status})
        metrics.add_metric(name="OAuthCallbackRefused", unit="Count", value=1)
        shown = err.message if err.http_status < 500 or isinstance(err, RetryableError) else _TRY_AGAIN
        return _page(status, "QuickBooks was not connected", shown)
    metrics.add_metric(name="OAuthCallbackParked", unit="Count", value=1)
    if parked.return_url is None:
        return _parked_page(parked)
    return Response(
        status_code=303,
        content_type="text/html; charset=utf-8",
        headers={**_NO_STORE, "Location": parked.return_url},
        body="",
    )


_TRY_AGAIN = "QuickBooks could not be connected right now; start the connection again in a few minutes."


@app.post(
    "/connection/complete",
    summary="Complete a QuickBooks connection",
    description='Body {"handle": ...}: the one-time handle the OAuth callback gave the browser. Only the '
    "user who asked for the connect URL completes it (owner), once, within 5 minutes. First connection → "
    "connected; the same company → reconnected; a different company → switch_pending (confirm with "
    "ACCEPT). Another user's or another firm's handle, a replay or an expired handle changes nothing. "
    "Owner only.",
    tags=["Connection"],
    responses=_ok(ConnectOutcome, "What completing the connection did", 409, 503),
)
def complete_connection(request: Annotated[CompleteRequest, Body()]) -> dict[str, Any]:
    caller = _caller()
    outcome = _service().complete_connection(caller, request.handle)
    metrics.add_metric(name="OAuthConnectionCompleted", unit="Count", value=1)
    return outcome.model_dump(mode="json")


@app.exception_handler(QbsyncError)
def handle_qbsync_error(err: QbsyncError) -> Response:
    """The one mapping of domain errors to HTTP (shared with the admin API): status, code, safe message."""
    return qbsync_error_response(err)


@app.exception_handler(RequestValidationError)
def handle_validation_error(err: RequestValidationError) -> Response:
    """A body or query that fails its model: 400 naming the fields (never the values sent)."""
    return validation_error_response(err.errors())


@app.not_found
def handle_not_found(_: NotFoundError) -> Response:
    return qbsync_error_response(NotFound("no such route"))


@app.exception_handler(ServiceError)
def handle_service_error(err: ServiceError) -> Response:
    """Powertools' own HTTP errors (e.g. a method the route does not take): their status, our error body."""
    if err.status_code >= 500:
        return unexpected_error_response(err)
    return qbsync_error_response(BadRequest(str(err.msg), http_status=err.status_code))


@app.exception_handler(Exception)
def handle_unexpected_error(err: Exception) -> Response:
    """Anything else is a bug: a JSON 500 with the request id (logged with its stack), never a bare 502."""
    return unexpected_error_response(err)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_metric(name="ConnectionApiRequests", unit="Count", value=1)
    try:
        wiring.start(wiring.connection_api)  # a missing or bad setting: a JSON 500 with the request id
    except ConfigurationError as err:
        return not_configured(err)
    problem = body_problem(event)
    if problem is not None:
        return refuse_body(problem)
    return app.resolve(event, context)
