"""Admin API of the QuickBooks connection (docs/contracts.md "HTTP routes") and the OAuth callback.

Thin: each route parses its input, reads the caller from the authorizer context, calls one domain
function of :class:`qbsync.connection.service.ConnectionService` and returns its model. Domain errors
become HTTP once, in :func:`handle_qbsync_error` (``{"error": code, "message": ...}``); bad input is
always a 4xx. The callback answers the browser with a small HTML page (never tokens). A missing or bad
setting (environment, secret field) is found at the start of the invocation (:func:`qbsync.wiring.start`):
logged with the setting's name, answered with a JSON 500 carrying the request id.
"""

# No `from __future__ import annotations` here: pydantic resolves the request models' annotations eagerly.

import html
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ConfigDict
from qbsync import wiring
from qbsync.api.common import (
    body_problem,
    error_responses,
    not_configured,
    qbsync_error_response,
    refuse_body,
    unexpected_error_response,
    validation_error_response,
)
from qbsync.auth import Caller, caller_from_event
from qbsync.connection.models import CheckResult, ConnectionView, ConnectSettings, ConnectUrl
from qbsync.connection.service import ConnectionService
from qbsync.errors import BadRequest, ConfigurationError, NotFound, QbsyncError
from qbsync.observability import bind_context, logger, metrics, tracer

# Validation on: request bodies are the pydantic models below (a bad body is a 400 naming the fields, see
# handle_validation_error); the routes' models and responses make docs/openapi.json (scripts/gen_openapi.py).
app = APIGatewayRestResolver(enable_validation=True)


class ConnectUrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: ConnectSettings | None = None


class ConfirmSwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirmation: str


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
<h1>{title}</h1><p>{message}</p><p>You can close this window.</p></body></html>
"""


def _page(status: int, title: str, message: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=_PAGE.format(title=html.escape(title), message=html.escape(message)),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


_HTML_PAGE: OpenAPIResponse = {
    "description": "A small HTML page for the browser saying what happened",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


@app.get(
    "/oauth/callback",
    summary="Intuit's OAuth redirect",
    description="Where Intuit sends the owner's browser after consent. Authenticated by the signed, "
    "single-use state (no admin token). Answers an HTML page, also for refusals (4xx/503).",
    tags=["Connection"],
    security=[{}],
    responses=dict.fromkeys((200, 400, 403, 404, 409, 503), _HTML_PAGE),
)
def oauth_callback(
    code: Annotated[str | None, Query(description="authorization code")] = None,
    state: Annotated[str | None, Query(description="the signed state of the connect URL")] = None,
    realm_id: Annotated[str | None, Query(alias="realmId", description="the QuickBooks company")] = None,
    error: Annotated[str | None, Query(description="set by Intuit when the owner declined")] = None,
) -> Response[str]:
    try:
        outcome = _service().complete_callback(
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
        return _page(status, "QuickBooks was not connected", err.message)
    metrics.add_metric(name="OAuthCallbackCompleted", unit="Count", value=1)
    title = (
        "QuickBooks: confirm the new company"
        if outcome.change == "switch_pending"
        else "QuickBooks connected"
    )
    return _page(200, title, outcome.message)


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
