"""What a request may hold (docs/admin-api.md "Limits"): the body pre-check, exact path matching, and both
API handlers refusing before parsing what would make a parser fail (deep nesting, oversize, not an object).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from qbsync.api import common
from qbsync.api.common import MAX_BODY_BYTES, MAX_BODY_DEPTH, body_problem, nesting_depth

from tests.fixtures.deployment import deployed
from tests.fixtures.lambda_runtime import LambdaContext, load_function

__all__ = ["deployed"]

DEEP_ARRAY = "[" * 50_000
DEEP_OBJECT = '{"a":' * 2_000


def _event(body: str | None, *, b64: bool = False, content_type: str = "application/json") -> dict[str, Any]:
    return {"headers": {"Content-Type": content_type}, "body": body, "isBase64Encoded": b64}


def _nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def test_nesting_is_counted_without_parsing_and_ignores_brackets_in_strings() -> None:
    assert nesting_depth('"x"') == 0
    assert nesting_depth("{}") == 1
    assert nesting_depth('{"a": [1, {"b": 2}], "c": []}') == 3
    assert nesting_depth('{"a": "[[[{{{", "b": "\\"[[[", "c": "\\\\"}') == 1
    assert nesting_depth(DEEP_ARRAY) == 50_000  # no recursion: the parser's limit does not apply
    assert nesting_depth(_nested(40)) == 40


def test_a_deeply_nested_body_is_refused_before_it_is_parsed() -> None:
    for deep in (DEEP_ARRAY, DEEP_OBJECT, _nested(MAX_BODY_DEPTH + 1)):
        assert body_problem(_event(deep)) == "body: nested deeper than 32 levels of arrays and objects"
    assert body_problem(_event(_nested(MAX_BODY_DEPTH))) is None
    # the check comes before the JSON parser, which has a recursion limit of its own
    with pytest.raises(RecursionError):
        json.loads(DEEP_ARRAY + "]" * 50_000)


def test_a_body_over_the_size_limit_is_refused_also_when_base64_encoded() -> None:
    at_limit = json.dumps({"a": "x" * (MAX_BODY_BYTES - 9)})
    assert len(at_limit) == MAX_BODY_BYTES
    assert body_problem(_event(at_limit)) is None
    too_large = json.dumps({"a": "x" * (MAX_BODY_BYTES - 8)})
    expected = "body: larger than 262144 bytes (256 KiB), the limit"
    assert body_problem(_event(too_large)) == expected
    # counted in UTF-8 bytes, not characters
    accents = json.dumps({"a": "é" * (MAX_BODY_BYTES // 2)}, ensure_ascii=False)
    assert body_problem(_event(accents)) == expected
    encoded = base64.b64encode(too_large.encode()).decode()
    assert body_problem(_event(encoded, b64=True)) == expected
    assert body_problem(_event(base64.b64encode(at_limit.encode()).decode(), b64=True)) is None


def test_a_body_must_be_a_json_object() -> None:
    refused = {
        '[{"sync_accounts": "all"}]': "body: expected a JSON object, got an array",
        '"all"': "body: expected a JSON object, got a string",
        "true": "body: expected a JSON object, got a boolean",
        "12": "body: expected a JSON object, got a number",
        "null": "body: expected a JSON object, got null",
        '{"scope": ': "body: not valid JSON",
        "{'scope': 'all'}": "body: not valid JSON",
    }
    for body, problem in refused.items():
        assert body_problem(_event(body)) == problem, body
    assert body_problem(_event('{"scope": "all"}')) is None
    assert body_problem(_event("")) is None  # no body: the route decides whether it needs one


def test_an_invalid_map_key_is_named_by_its_map_not_repeated() -> None:
    response = common.validation_error_response(
        [
            {
                "loc": ("body", "work_type_map", "bad key\n<script>", "[key]"),
                "msg": "String should match pattern '^[A-Za-z0-9_.:@-]{1,128}$'",
            }
        ]
    )
    message = json.loads(response.body)["message"]
    assert message == "body.work_type_map (a key): String should match pattern '^[A-Za-z0-9_.:@-]{1,128}$'"


# --- the handlers -------------------------------------------------------------------------------------


def _proxy(method: str, path: str, body: str | None, *, resource: str = "/{proxy+}") -> dict[str, Any]:
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/dev{path}",
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "authorizer": {"firm_id": "firm-unit", "user_id": "user-1", "role": "owner"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


ROUTES_WITH_BODIES = (
    ("admin_api", "PUT", "/settings"),
    ("admin_api", "POST", "/errors/retry"),
    ("admin_api", "POST", "/services/copy"),
    ("admin_api", "POST", "/errors/abc-1/map-customer"),
    ("oauth", "POST", "/connection/connect-url"),
    ("oauth", "POST", "/connection/confirm-switch"),
)


@pytest.mark.parametrize(("function", "method", "path"), ROUTES_WITH_BODIES)
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (DEEP_ARRAY, "body: nested deeper than 32 levels of arrays and objects"),
        (DEEP_OBJECT, "body: nested deeper than 32 levels of arrays and objects"),
        ('[{"scope": "all"}]', "body: expected a JSON object, got an array"),
        (json.dumps({"a": "x" * MAX_BODY_BYTES}), "body: larger than 262144 bytes (256 KiB), the limit"),
    ],
    ids=["deep-array", "deep-object", "array", "oversize"],
)
def test_both_handlers_refuse_such_bodies_with_a_400_before_routing(
    deployed: dict[str, str], function: str, method: str, path: str, body: str, problem: str
) -> None:
    handler = load_function(function, prefix="unit_limits")
    response = handler.lambda_handler(_proxy(method, path, body), LambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"error": "bad_request", "message": problem}


def test_a_path_parameter_is_matched_whole_so_a_line_break_is_a_400_naming_it() -> None:
    """Powertools' ``$`` matched before a final line break: ``/errors/%0A`` answered the error list."""
    app = load_function("admin_api", prefix="unit_limits").app
    cases = {
        "/errors/\n": "path.error_id",
        "/errors/abc-1\n": "path.error_id",
        "/errors/abc-1\n/skip": "path.error_id",
        "/sync/records/invoice/inv-1\n": "path.platform_id",
        "/sync/records/invoice\t/inv-1": "path.entity_type",
        "/sync/records/payment/pay 1/unsync": "path.platform_id",
    }
    for path, where in cases.items():
        method = "POST" if path.endswith(("skip", "unsync")) else "GET"
        response = app.resolve(_proxy(method, path, None), LambdaContext())
        assert response["statusCode"] == 400, path
        message = json.loads(response["body"])["message"]
        assert message.startswith(f"{where}: "), (path, message)
    # a valid id still reaches its route (which then asks the caller: no authorizer context in a unit test)
    fine = app.resolve(_proxy("GET", "/errors/abc-1", None), LambdaContext())
    assert fine["statusCode"] != 400
    # static routes still win over a parameter, with or without a trailing slash
    counts = app.resolve(_proxy("GET", "/errors/counts/", None), LambdaContext())
    assert counts["statusCode"] != 400
