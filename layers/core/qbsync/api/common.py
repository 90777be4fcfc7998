"""What every admin API router shares: the caller, the error body, the documented error responses.

The HTTP shape of an error is ``{"error": code, "message": text}`` (:class:`ErrorBody`), produced once, by
the handler's exception handlers built from :func:`qbsync_error_response`,
:func:`validation_error_response` and :func:`unexpected_error_response`. Route modules raise
:mod:`qbsync.errors` types and declare the statuses they can answer with ``responses=error_responses(...)``
so the OpenAPI document (docs/openapi.json) lists them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from qbsync.auth import Caller, caller_from_event
from qbsync.errors import ConfigurationError, QbsyncError, RetryableError, TooManyRequests
from qbsync.observability import bind_context, logger

__all__ = [
    "WRITE_ROLES",
    "ErrorBody",
    "body_problem",
    "caller_of",
    "error_responses",
    "not_configured",
    "qbsync_error_response",
    "refuse_body",
    "unexpected_error_response",
    "validation_error_response",
]

#: roles that may change settings and run actions (reads: every role)
WRITE_ROLES: tuple[str, ...] = ("owner", "admin")


class ErrorBody(BaseModel):
    """Every error answer of the admin API."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="stable machine-readable code, e.g. bad_request, not_found, conflict")
    message: str = Field(description="what went wrong and what to do, safe to show to the user")


_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: the message names the invalid fields or settings",
    401: "No valid admin bearer token (answered by the API Gateway authorizer)",
    403: "The caller's role may not do this",
    404: "Not found (also: the record belongs to another firm)",
    409: "Conflicts with the current state (e.g. QuickBooks is not connected)",
    429: "Too many requests: wait for the Retry-After seconds",
    503: "QuickBooks or AWS is temporarily unavailable: retry later",
}


def error_responses(*statuses: int, ok: int | None = 200) -> dict[int, OpenAPIResponse]:
    """OpenAPI ``responses``: the success ``ok`` plus ``statuses`` and the errors every route can answer.

    Every route can answer 400 (a malformed query or path), 401 (the authorizer), 403 (a role or the
    gateway refusing the path) and 404 (another firm's id, an unknown path). ``ok`` (default 200) is
    documented with the route's return annotation as its schema (Powertools drops the return schema when
    ``responses`` has no entry for it); a route that answers 202 passes ``ok=None`` and its own 202 entry.
    """
    result: dict[int, OpenAPIResponse] = {}
    if ok is not None:
        result[ok] = {"description": "Successful response"}
    for status in sorted({400, 401, 403, 404, *statuses}):
        response: OpenAPIResponse = {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {"application/json": {"model": ErrorBody}},
        }
        if status in (429, 503):
            response["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}
            }
        result[status] = response
    return result


def caller_of(router: BaseRouter) -> Caller:
    """The verified caller of the current request (authorizer context only), bound to the log context.

    Raises:
        Unauthorized: the request carries no verified caller.
    """
    caller = caller_from_event(router.current_event.raw_event)
    bind_context(firm_id=caller.firm_id)
    return caller


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=dict(headers or {}),
    )


def qbsync_error_response(err: QbsyncError) -> Response:
    """The one mapping of domain errors to HTTP: status from the error class, its code, a safe message.

    5xx answers never carry the internal message (except the retryable ones, which say what to wait for).
    """
    status = err.http_status
    headers: dict[str, str] = {}
    retry_after = getattr(err, "retry_after", None)
    if isinstance(err, RetryableError | TooManyRequests) and retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if isinstance(err, ConfigurationError):  # the message names the setting, never its value
        logger.error("request failed: configuration error", extra={"error": err.message, **err.context()})
    elif status >= 500:
        logger.error("request failed", extra={"error_code": err.code, **err.context()})
    else:
        logger.info("request refused", extra={"error_code": err.code, "status": status})
    message = err.message if status < 500 or isinstance(err, RetryableError) else "internal error"
    body = {"error": err.code, "message": message}
    if isinstance(err, ConfigurationError):
        body["request_id"] = _request_id()  # what the operator looks for in the logs
    return _json(status, body, headers)


def _request_id() -> str:
    # the API Gateway request id: the correlation id of every log line of this request
    return str(logger.get_correlation_id() or "")


def _where(loc: Sequence[Any]) -> str:
    # ("query", "limit") -> "query.limit"; ("body", "tax_map", "7", "tax_code_id") -> "body.tax_map.7.…"
    return ".".join(str(part) for part in loc) or "request"


def validation_error_response(errors: Sequence[Mapping[str, Any]]) -> Response:
    """400 naming each invalid field and why; never the values sent (they may be personal data)."""
    problems = []
    for err in list(errors)[:20]:
        message = str(err.get("msg") or err.get("type") or "invalid")
        problems.append(f"{_where(err.get('loc') or ())}: {message}")
    logger.info("request refused", extra={"error_code": "bad_request", "status": 400, "n": len(problems)})
    return _json(400, {"error": "bad_request", "message": "; ".join(problems) or "invalid request"})


def unexpected_error_response(exc: Exception) -> Response:
    """500 ``internal error`` for a bug: logged with its stack, nothing internal in the answer but the
    request id to find that log line by."""
    logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
    return _json(500, {"error": "internal_error", "message": "internal error", "request_id": _request_id()})


_FORM_TYPES = ("multipart/", "application/x-www-form-urlencoded")


def body_problem(event: Mapping[str, Any]) -> str | None:
    """Why a proxy event's body cannot be a JSON request body, or None when it can (or there is none).

    The API takes JSON only. Checked before routing because Powertools' request validation fails with
    an exception that is not a validation error (→ 5xx) on a body that is not UTF-8 or on form content.
    """
    headers = event.get("headers") or {}
    content_type = ""
    if isinstance(headers, Mapping):
        content_type = next((str(v) for k, v in headers.items() if str(k).lower() == "content-type"), "")
    content_type = content_type.strip().lower()
    body = event.get("body")
    if content_type.startswith(_FORM_TYPES):
        return "body: send JSON (Content-Type: application/json), not form data"
    if not body:
        return None
    if content_type and not content_type.startswith("application/json"):
        return "body: send JSON (Content-Type: application/json)"
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(str(body), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return "body: not UTF-8 JSON"
    return None


def not_configured(err: ConfigurationError) -> dict[str, Any]:
    """The 500 proxy response of a request that cannot start: a setting is missing or invalid.

    The handler's start-up check (:func:`qbsync.wiring.start`) has logged the setting's name; the answer
    says nothing internal, only the request id to find that log line by.
    """
    return {
        "statusCode": 500,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": err.code, "message": "internal error", "request_id": _request_id()}),
        "isBase64Encoded": False,
    }


def refuse_body(problem: str) -> dict[str, Any]:
    """The 400 proxy response for a body :func:`body_problem` refused."""
    logger.info("request refused", extra={"error_code": "bad_request", "status": 400})
    return {
        "statusCode": 400,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": "bad_request", "message": problem}),
        "isBase64Encoded": False,
    }
