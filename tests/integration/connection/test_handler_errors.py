"""The OAuth handler answers every failure as JSON: no exception ever escapes as a bare 502."""

from __future__ import annotations

from tests.integration.connection.conftest import new_firm

DEEP = "[" * 50_000 + "]" * 50_000  # breaks a recursive JSON parser before any model sees it


def test_a_body_that_breaks_the_parser_is_answered_json_with_a_request_id(stack):
    firm = new_firm()
    owner = stack.api.token(firm)
    for path in ("/connection/connect-url", "/connection/confirm-switch", "/connection/complete"):
        answer = stack.api.call("POST", path, bearer=owner, raw_body=DEEP)

        assert answer.headers["Content-Type"] == "application/json", (path, answer.body)
        body = answer.json()
        # A depth check before routing answers 400; without it the catch-all answers 500 with the id.
        assert (answer.status, body["error"]) in {(400, "bad_request"), (500, "internal_error")}, path
        if answer.status == 500:
            assert body["message"] == "internal error" and body["request_id"], path
    assert stack.api.call("GET", "/connection", bearer=owner).status == 404  # nothing was connected


def test_an_unknown_route_of_the_handler_is_a_json_404(stack):
    answer = stack.api.call("GET", "/connection/nope", bearer=stack.api.token(new_firm()))
    assert answer.status == 404 and answer.json() == {"error": "not_found", "message": "no such route"}
