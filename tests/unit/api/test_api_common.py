"""The admin API's shared edge: error bodies, the body pre-check, documented responses, error mapping."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from qbsync.api import common
from qbsync.api.records_routes import _decode_cursor, _encode_cursor
from qbsync.errors import BadRequest, Conflict, InfrastructureError, ServiceUnavailable, TooManyRequests

ROOT = Path(__file__).resolve().parents[3]


def _load_admin_app() -> Any:
    spec = importlib.util.spec_from_file_location("unit_admin_api_app", ROOT / "functions/admin_api/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["unit_admin_api_app"] = module
    spec.loader.exec_module(module)
    return module


def _body(response: Any) -> dict[str, Any]:
    return json.loads(response.body)


def test_domain_errors_keep_their_status_code_and_message() -> None:
    refused = common.qbsync_error_response(Conflict("QuickBooks is not connected", firm_id="f1"))
    assert refused.status_code == 409
    assert _body(refused) == {"error": "conflict", "message": "QuickBooks is not connected"}
    throttled = common.qbsync_error_response(
        TooManyRequests("retry all at most every 3 minutes", retry_after=90.4)
    )
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "90"
    unavailable = common.qbsync_error_response(ServiceUnavailable("QuickBooks is down", retry_after=0.2))
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "1"


def test_a_request_aws_rejects_is_a_bare_500_that_does_not_blame_the_caller() -> None:
    rejected = InfrastructureError("DynamoDB PutItem on t: request rejected (ValidationException)")
    response = common.qbsync_error_response(rejected)
    assert response.status_code == 500
    assert _body(response) == {"error": "infrastructure_error", "message": "internal error"}


def test_validation_errors_name_fields_never_values() -> None:
    response = common.validation_error_response(
        [
            {
                "loc": ("body", "tax_map", "r1", "tax_code_id"),
                "msg": "Field required",
                "input": "secret@x.com",
            },
            {"loc": ("query", "limit"), "msg": "Input should be less than or equal to 200", "input": 999},
        ]
    )
    assert response.status_code == 400
    body = _body(response)
    assert body["error"] == "bad_request"
    assert body["message"] == (
        "body.tax_map.r1.tax_code_id: Field required; query.limit: Input should be less than or equal to 200"
    )
    assert "secret@x.com" not in response.body and "999" not in response.body


def test_body_precheck_accepts_json_and_refuses_what_powertools_would_crash_on() -> None:
    def event(body: str | None, content_type: str | None = "application/json", b64: bool = False) -> dict:
        headers = {"Content-Type": content_type} if content_type else {}
        return {"headers": headers, "body": body, "isBase64Encoded": b64}

    assert common.body_problem(event('{"a": 1}')) is None
    assert common.body_problem(event('{"a": 1}', "application/json; charset=utf-8")) is None
    assert common.body_problem(event(None, None)) is None
    assert common.body_problem(event("", "text/plain")) is None  # no body: nothing to read
    assert common.body_problem(event('{"a": 1}', None)) is None
    utf8 = base64.b64encode('{"name": "Zoë"}'.encode()).decode()
    assert common.body_problem(event(utf8, b64=True)) is None
    latin1 = base64.b64encode(b"\xfa>\\\x1dD/\xb0").decode()
    assert common.body_problem(event(latin1, b64=True)) == "body: not UTF-8 JSON"
    assert "form data" in str(common.body_problem(event("", "multipart/form-data")))
    assert "form data" in str(common.body_problem(event("a=1", "application/x-www-form-urlencoded")))
    assert "application/json" in str(common.body_problem(event("hello", "text/plain")))
    refused = common.refuse_body("body: not UTF-8 JSON")
    assert refused["statusCode"] == 400
    assert json.loads(refused["body"]) == {"error": "bad_request", "message": "body: not UTF-8 JSON"}


def test_documented_responses_include_success_and_the_common_errors() -> None:
    documented = common.error_responses(409, 429)
    assert sorted(documented) == [200, 400, 401, 403, 404, 409, 429]
    assert "content" not in documented[200]  # the route's return annotation becomes the schema
    assert documented[429]["headers"]["Retry-After"]["schema"]["minimum"] == 1
    assert 200 not in common.error_responses(ok=None)


def test_the_handler_maps_unexpected_exceptions_to_a_bare_500_and_routes_domain_errors() -> None:
    app = _load_admin_app().app
    manager = app.exception_handler_manager
    bug = manager.lookup_exception_handler(KeyError)(KeyError("settings"))
    assert bug.status_code == 500
    assert _body(bug) == {"error": "internal_error", "message": "internal error", "request_id": ""}
    refused = manager.lookup_exception_handler(BadRequest)(BadRequest("cursor: bad"))
    assert refused.status_code == 400 and _body(refused)["message"] == "cursor: bad"


def test_cursors_round_trip_and_garbage_is_a_bad_request() -> None:
    key = {"pk": "FIRM#f1#REALM#r1", "sk": "REC#invoice#inv-1"}
    assert _decode_cursor(_encode_cursor(key)) == key
    for garbage in ("!!", "bm90IGpzb24", base64.urlsafe_b64encode(b"[1, 2]").decode()):
        try:
            _decode_cursor(garbage)
        except BadRequest as err:
            assert err.message.startswith("cursor:")
        else:
            raise AssertionError(f"{garbage!r} was accepted")
