"""Admin API (docs/admin-api.md): settings, sync status, the error center, record actions, dead letters.

Thin: the routes live in :mod:`qbsync.api` as Powertools ``Router`` objects (one module per area), this
handler includes them into one :class:`qbsync.api.common.AdminResolver` (an ``APIGatewayRestResolver``
whose routes match the whole path, so every path parameter reaches its pattern) with request validation on
(pydantic models from the routes' annotations; they also make docs/openapi.json, see
scripts/gen_openapi.py) and maps every failure to HTTP once:

* :class:`qbsync.errors.QbsyncError` -> its status, ``{"error": code, "message": ...}`` (a 5xx also carries
  the ``request_id``; its message is ``"internal error"`` unless it is retryable);
* a request that fails validation -> 400 naming the fields (never 422, never the values sent); so does a
  body that is not a JSON object of at most 256 KiB nested at most 32 levels, or not UTF-8 JSON (checked
  before routing and before parsing: :func:`qbsync.api.common.body_problem`);
* an unknown route -> 404 JSON;
* anything else is a bug -> 500 ``internal error`` with the ``request_id``, logged with its stack;
* a missing or bad setting (environment, secret field) is found at the start of the invocation
  (:func:`qbsync.wiring.start`): logged with the setting's name, answered 500 with the request id.

API Gateway routes every admin path to this function (a greedy ``/{proxy+}``) except ``/connection/*`` and
``/oauth/callback``, which stay on OAuthFunction (functions/oauth/app.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from qbsync import wiring
from qbsync.api import (
    actions_routes,
    common,
    drift_routes,
    errors_routes,
    health_routes,
    initial_sync_routes,
    operations_routes,
    records_routes,
    settings_routes,
)
from qbsync.errors import ConfigurationError, NotFound, QbsyncError
from qbsync.observability import logger, metrics, tracer

app = common.AdminResolver(enable_validation=True)
app.include_router(settings_routes.router)
app.include_router(records_routes.router)
app.include_router(errors_routes.router)
app.include_router(actions_routes.router)
app.include_router(drift_routes.router)
app.include_router(operations_routes.router)
app.include_router(health_routes.router)
app.include_router(initial_sync_routes.router)


@app.exception_handler(QbsyncError)
def handle_qbsync_error(err: QbsyncError) -> Response:
    return common.qbsync_error_response(err)


@app.exception_handler(RequestValidationError)
def handle_validation_error(err: RequestValidationError) -> Response:
    return common.validation_error_response(err.errors())


@app.not_found
def handle_not_found(_: NotFoundError) -> Response:
    return common.qbsync_error_response(NotFound("no such route"))


@app.exception_handler(Exception)
def handle_unexpected_error(err: Exception) -> Response:
    return common.unexpected_error_response(err)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_metric(name="AdminApiRequests", unit="Count", value=1)
    try:
        wiring.start(wiring.admin_api)  # a missing or bad setting: a JSON 500 with the request id
    except ConfigurationError as err:
        return common.not_configured(err)
    problem = common.body_problem(event)
    if problem is not None:
        return common.refuse_body(problem)
    return app.resolve(event, context)
