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
        # the depth check before any parser runs: a 400 naming the limit, never a 5xx
        assert (answer.status, answer.json()) == (
            400,
            {"error": "bad_request", "message": "body: nested deeper than 32 levels of arrays and objects"},
        ), path
    assert stack.api.call("GET", "/connection", bearer=owner).status == 404  # nothing was connected


def test_an_unexpected_error_of_the_handler_is_a_json_500_with_the_request_id(stack, monkeypatch):
    """The catch-all: a bug below a route (here the service raising a KeyError) never escapes as a 502."""
    from qbsync import wiring

    firm = new_firm()
    owner = stack.api.token(firm)
    service = wiring.connection_service()

    def broken(*_args, **_kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(type(service), "status", broken)
    answer = stack.api.call("GET", "/connection", bearer=owner)

    assert answer.status == 500 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert (body["error"], body["message"]) == ("internal_error", "internal error") and body["request_id"]


def test_an_unknown_route_of_the_handler_is_a_json_404(stack):
    answer = stack.api.call("GET", "/connection/nope", bearer=stack.api.token(new_firm()))
    assert answer.status == 404 and answer.json() == {"error": "not_found", "message": "no such route"}


def test_a_path_with_a_trailing_line_break_is_no_route(stack):
    """The whole path must match (Powertools' `$` matches before a final "\\n": /connection\\n was served)."""
    answer = stack.api.call("GET", "/connection\n", bearer=stack.api.token(new_firm()))
    assert answer.status == 404 and answer.json() == {"error": "not_found", "message": "no such route"}
