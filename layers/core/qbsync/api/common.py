"""What every admin API router shares: the caller, the error body, the documented error responses.

The HTTP shape of an error is ``{"error": code, "message": text}`` (:class:`ErrorBody`; a 5xx also carries
``request_id``, the id of the request's log lines), produced once, by the handler's exception handlers built
from :func:`qbsync_error_response`, :func:`validation_error_response` and :func:`unexpected_error_response`.
Route modules raise :mod:`qbsync.errors` types and declare the statuses they can answer with
``responses=error_responses(...)`` so the OpenAPI document (docs/openapi.json) lists them.

What a request may hold is checked before routing (:func:`body_problem`: a body is a JSON object of at
most :data:`MAX_BODY_BYTES` bytes nested at most :data:`MAX_BODY_DEPTH` deep) and while routing
(:class:`AdminResolver`: a path parameter is everything between two slashes, so its pattern sees all of it).
Path parameters share one vocabulary: :data:`PlatformIdPath`, :data:`ErrorIdPath`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from qbsync.auth import Caller, caller_from_event
from qbsync.errors import ConfigurationError, QbsyncError, RetryableError, TooManyRequests
from qbsync.observability import bind_context, logger
from qbsync.repositories.error_log import ERROR_ID_PATTERN
from qbsync.vocab import RECORD_ID_PATTERN

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_BODY_DEPTH",
    "WRITE_ROLES",
    "AdminResolver",
    "ErrorBody",
    "ErrorIdPath",
    "PlatformIdPath",
    "body_problem",
    "caller_of",
    "error_responses",
    "nesting_depth",
    "not_configured",
    "qbsync_error_response",
    "refuse_body",
    "unexpected_error_response",
    "validation_error_response",
]

#: roles that may change settings and run actions (reads: every role)
WRITE_ROLES: tuple[str, ...] = ("owner", "admin")
#: the largest request body accepted (bytes of UTF-8 JSON; larger: 400 before anything is parsed)
MAX_BODY_BYTES = 256 * 1024
#: the deepest nesting of arrays and objects accepted in a body (the body object itself is level 1)
MAX_BODY_DEPTH = 32

#: ``{platform_id}``, ``{client_id}``: a platform id (the one id vocabulary, :mod:`qbsync.models.record_key`)
PlatformIdPath = Annotated[
    str, Path(pattern=RECORD_ID_PATTERN, max_length=128, description="the record's platform id")
]
#: ``{error_id}``: an error-center id, as ``GET /errors`` lists it
ErrorIdPath = Annotated[
    str, Path(pattern=ERROR_ID_PATTERN, max_length=80, description="the error's id (from GET /errors)")
]


class AdminResolver(APIGatewayRestResolver):
    """The REST resolver of the admin API handlers, with exact route matching.

    Powertools matches a path with ``re.match`` on ``^...$`` and a character class per parameter: ``$``
    also matches before a final line break, so ``/errors/%0A`` (a decoded ``"/errors/\\n"``) was routed
    to ``GET /errors`` and ``/errors/x%0A`` to ``GET /errors/x``. Here a parameter is every character
    between two slashes and the path must match to its very end (``\\Z``): whatever a parameter holds
    reaches its declared pattern, and a bad one is a 400 naming it, like a bad body field.
    """

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "") -> re.Pattern[str]:
        # base_regex is Powertools' anchor template; the anchors here are always \A ... /*\Z
        return re.compile(r"\A" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", rule) + r"/*\Z")


class ErrorBody(BaseModel):
    """Every error answer of the admin API."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    error: str = Field(description="stable machine-readable code, e.g. bad_request, not_found, conflict")
    message: str = Field(description="what went wrong and what to do, safe to show to the user")
    request_id: str | None = Field(
        None, description="5xx only: the request's id in qbsync's logs (quote it when reporting the error)"
    )


_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: the message names the invalid fields, parameters or settings (also: a body that is "
    f"not a JSON object, is larger than {MAX_BODY_BYTES // 1024} KiB or nested deeper than {MAX_BODY_DEPTH} "
    "levels)",
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
    if status >= 500:
        body["request_id"] = _request_id()  # what the operator looks for in the logs
    return _json(status, body, headers)


def _request_id() -> str:
    # the API Gateway request id: the correlation id of every log line of this request
    return str(logger.get_correlation_id() or "")


def _where(loc: Sequence[Any]) -> str:
    # ("query", "limit") -> "query.limit"; ("body", "tax_map", "7", "tax_code_id") -> "body.tax_map.7.…";
    # a map key that is not valid is not repeated: ("body", "work_type_map", "a b", "[key]") ->
    # "body.work_type_map (a key)"
    parts = [str(part) for part in loc]
    if len(parts) >= 2 and parts[-1] == "[key]":
        return ".".join(parts[:-2]) + " (a key)"
    return ".".join(parts) or "request"


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
# a JSON string (escapes included) and the brackets outside strings: the nesting is read without parsing
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_JSON_TYPE_NAMES = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _content_type(event: Mapping[str, Any]) -> str:
    headers = event.get("headers") or {}
    if not isinstance(headers, Mapping):
        return ""
    value = next((str(v) for k, v in headers.items() if str(k).lower() == "content-type"), "")
    return value.strip().lower()


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in the JSON ``text`` (0 for a scalar), in one pass, no recursion.

    Strings are skipped (a ``[`` inside one does not count); text that is not JSON gives some number, and
    the parser that reads it afterwards refuses it.
    """
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def body_problem(event: Mapping[str, Any]) -> str | None:
    """Why a proxy event's body cannot be a request body, or None when it can (or there is none).

    A body is UTF-8 JSON (``Content-Type: application/json`` or none), at most :data:`MAX_BODY_BYTES`
    bytes, nested at most :data:`MAX_BODY_DEPTH` levels, and a JSON object (the routes' models then check
    its fields). Checked before routing, and in this order, because the parsers after it fail with
    exceptions that are not validation errors (→ 5xx): Powertools' request validation on a body that is not
    UTF-8 or on form content, the JSON parser on deep nesting (RecursionError); and because Powertools
    validates ``[{...}]`` as the object it holds.
    """
    content_type = _content_type(event)
    body = event.get("body")
    if content_type.startswith(_FORM_TYPES):
        return "body: send JSON (Content-Type: application/json), not form data"
    if not body:
        return None
    if content_type and not content_type.startswith("application/json"):
        return "body: send JSON (Content-Type: application/json)"
    text = str(body)
    if event.get("isBase64Encoded"):
        if len(text) > (MAX_BODY_BYTES + 2) // 3 * 4:
            return _too_large()
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return "body: not UTF-8 JSON"
    if len(text) > MAX_BODY_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        return _too_large()
    if nesting_depth(text) > MAX_BODY_DEPTH:
        return f"body: nested deeper than {MAX_BODY_DEPTH} levels of arrays and objects"
    try:
        parsed = json.loads(text)
    except ValueError:  # JSONDecodeError, and a lone surrogate
        return "body: not valid JSON"
    if not isinstance(parsed, dict):
        return f"body: expected a JSON object, got {_JSON_TYPE_NAMES.get(type(parsed), 'null')}"
    return None


def _too_large() -> str:
    return f"body: larger than {MAX_BODY_BYTES} bytes ({MAX_BODY_BYTES // 1024} KiB), the limit"


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
