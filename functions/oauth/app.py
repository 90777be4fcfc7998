"""Admin API of the QuickBooks connection (docs/contracts.md "HTTP routes") and the OAuth callback.

Thin: each route parses its input, reads the caller from the authorizer context, calls one domain
function of :class:`qbsync.connection.service.ConnectionService` and returns its model. Domain errors
become HTTP once, in :func:`handle_qbsync_error` (``{"error": code, "message": ...}``); bad input is
always a 4xx. The callback answers the browser with a small HTML page (never tokens).
"""

# No `from __future__ import annotations` here: pydantic resolves the request models' annotations eagerly.

import html
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ConfigDict, ValidationError
from qbsync.auth import Caller, caller_from_event
from qbsync.connection.models import ConnectSettings
from qbsync.connection.service import ConnectionService
from qbsync.connection.wiring import connection_service
from qbsync.errors import BadRequest, QbsyncError, RetryableError, TooManyRequests
from qbsync.observability import bind_context, logger, metrics, tracer

app = APIGatewayRestResolver()


class ConnectUrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: ConnectSettings | None = None


class ConfirmSwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirmation: str


def _service() -> ConnectionService:
    return connection_service()


def _caller() -> Caller:
    caller = caller_from_event(app.current_event.raw_event)
    bind_context(firm_id=caller.firm_id)
    return caller


def _body(model: type[BaseModel]) -> Any:
    """Validate the JSON body (absent body = ``{}``). Raises BadRequest naming the bad fields only."""
    raw = app.current_event.body
    if app.current_event.is_base64_encoded and raw:
        raw = app.current_event.decoded_body
    try:
        return model.model_validate_json(raw or "{}")
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise BadRequest("invalid request body: " + "; ".join(problems)) from None


def _own_callback_url() -> str | None:
    """This API's own callback URL (used only when the deployment leaves OAUTH_REDIRECT_URI empty)."""
    context = app.current_event.request_context
    domain, stage = context.domain_name, context.stage
    return f"https://{domain}/{stage}/oauth/callback" if domain and stage else None


@app.get("/connection")
def get_connection() -> dict[str, Any]:
    return _service().status(_caller()).model_dump(mode="json")


@app.post("/connection/connect-url")
def create_connect_url() -> dict[str, Any]:
    caller = _caller()
    request = _body(ConnectUrlRequest)
    service = _service()
    return service.create_connect_url(caller, request.settings, redirect_uri=_own_callback_url()).model_dump(
        mode="json"
    )


@app.post("/connection/confirm-switch")
def confirm_switch() -> dict[str, Any]:
    caller = _caller()
    request = _body(ConfirmSwitchRequest)
    return _service().confirm_switch(caller, request.confirmation).model_dump(mode="json")


@app.post("/connection/disconnect")
def disconnect() -> dict[str, Any]:
    return _service().disconnect(_caller()).model_dump(mode="json")


@app.post("/connection/check")
def check() -> dict[str, Any]:
    return _service().check(_caller()).model_dump(mode="json")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto;">
<h1>{title}</h1><p>{message}</p><p>You can close this window.</p></body></html>
"""


def _page(status: int, title: str, message: str) -> Response:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=_PAGE.format(title=html.escape(title), message=html.escape(message)),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@app.get("/oauth/callback")
def oauth_callback() -> Response:
    query = app.current_event.query_string_parameters or {}
    try:
        outcome = _service().complete_callback(
            code=query.get("code"),
            state=query.get("state"),
            realm_id=query.get("realmId"),
            error=query.get("error"),
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
    """The one mapping of domain errors to HTTP: status from the error class, a code, a safe message."""
    status = err.http_status
    headers: dict[str, str] = {}
    retry_after = getattr(err, "retry_after", None)
    if isinstance(err, RetryableError | TooManyRequests) and retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if status >= 500:
        logger.error("request failed", extra={"error_code": err.code, **err.context()})
    else:
        logger.info("request refused", extra={"error_code": err.code, "status": status})
    message = err.message if status < 500 or isinstance(err, RetryableError) else "internal error"
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": err.code, "message": message}),
        headers=headers,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_metric(name="ConnectionApiRequests", unit="Count", value=1)
    return app.resolve(event, context)
