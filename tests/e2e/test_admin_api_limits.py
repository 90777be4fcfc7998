"""Issue 10 items 2, 3, 4, 5 and 7 through the local stack's HTTP API (docs/admin-api.md "Limits").

Each case is sent the way a client sends it (through the local API Gateway, the REQUEST authorizer and the
handlers) for an owner of a firm connected to a simulator company, and each asserts the status, the message
and that nothing changed: the settings read back the same, no retry was accepted (a valid retry afterwards
is still the first of its 3-minute window), the connection is as it was.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
import requests

from tests.fixtures.firms import admin_jwt, connect_through_stack

pytestmark = pytest.mark.e2e

DEEP_ARRAY = "[" * 50_000
DEEP_OBJECT = '{"a":' * 2_000
TOO_DEEP = "body: nested deeper than 32 levels of arrays and objects"
TOO_LARGE = "body: larger than 262144 bytes (256 KiB), the limit"
NOT_AN_OBJECT = "body: expected a JSON object, got an array"
#: every route that takes a body, on both handlers (the error id need not exist: the body is refused first)
BODY_ROUTES = (
    ("PUT", "/settings"),
    ("POST", "/errors/retry"),
    ("POST", "/services/copy"),
    ("POST", "/errors/0123456789abcdef-1/map-customer"),
    ("POST", "/errors/0123456789abcdef-1/create-customer"),
    ("POST", "/connection/connect-url"),
    ("POST", "/connection/confirm-switch"),
)


class Api:
    def __init__(self, stack: Any, token: str) -> None:
        self.base = stack.api_url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.names = [*stack.resources.tables().values(), *stack.resources.queues().values()]

    def send(self, method: str, path: str, body: str | None = None) -> requests.Response:
        return requests.request(method, f"{self.base}{path}", data=body, headers=self.headers, timeout=60)

    def refused(self, method: str, path: str, body: str | None, message: str) -> None:
        """400 bad_request with exactly ``message``, never naming an AWS resource."""
        answer = self.send(method, path, body)
        assert answer.status_code == 400, (method, path, answer.status_code, answer.text[:300])
        assert answer.json() == {"error": "bad_request", "message": message}, (method, path)
        assert not any(name in answer.text for name in self.names)

    def settings(self) -> dict[str, Any]:
        answer = self.send("GET", "/settings")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def connection(self) -> dict[str, Any]:
        answer = self.send("GET", "/connection")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view


@pytest.fixture(scope="module")
def api(local_stack: Any, qbo_sim: Any) -> Api:
    firm = f"firm-lim-{secrets.token_hex(3)}"
    token = admin_jwt(local_stack, firm, ttl_seconds=1800)
    realm = qbo_sim.control.create_company(company_name=f"Limits Co {secrets.token_hex(3)}")["realm_id"]
    connect_through_stack(local_stack, qbo_sim, token, realm)
    return Api(local_stack, token)


def test_deep_nesting_is_a_400_on_every_route_with_a_body_of_both_handlers(api: Api) -> None:
    """Item 2: it was a 500 on the admin routes and a 502 on /connection/* (RecursionError in the parser)."""
    settings, connection = api.settings(), api.connection()
    for method, path in BODY_ROUTES:
        api.refused(method, path, DEEP_ARRAY, TOO_DEEP)
        api.refused(method, path, DEEP_OBJECT, TOO_DEEP)
    assert api.settings() == settings
    assert api.connection() == connection  # still connected, no pending switch


def test_an_oversize_body_is_a_400_and_a_45000_entry_map_never_reaches_dynamodb(api: Api) -> None:
    """Item 5: a 1.4 MB work-type map reached DynamoDB's item limit: a 422 naming the table."""
    before = api.settings()
    huge_map = {f"wt-{i:06d}": str(100000 + i) for i in range(45_000)}
    body = json.dumps({"work_type_map": huge_map})
    assert len(body) > 1_000_000
    api.refused("PUT", "/settings", body, TOO_LARGE)
    for method, path in BODY_ROUTES:
        api.refused(method, path, json.dumps({"padding": "x" * 300_000}), TOO_LARGE)
    assert api.settings() == before


def test_every_map_has_a_maximum_named_in_a_400(api: Api) -> None:
    before = api.settings()
    over = json.dumps({"work_type_map": {f"wt-{i}": "1" for i in range(501)}})
    api.refused(
        "PUT",
        "/settings",
        over,
        "body.work_type_map: Dictionary should have at most 500 items after validation, not 501",
    )
    taxes = json.dumps({"tax_map": {f"tr-{i}": {"tax_code_id": "3"} for i in range(201)}})
    api.refused(
        "PUT",
        "/settings",
        taxes,
        "body.tax_map: Dictionary should have at most 200 items after validation, not 201",
    )
    many = json.dumps({"qbo_item_ids": [str(i) for i in range(1, 102)]})
    api.refused(
        "POST",
        "/services/copy",
        many,
        "body.qbo_item_ids: List should have at most 100 items after validation, not 101",
    )
    assert api.settings() == before


def test_an_array_body_is_refused_and_nothing_is_stored_or_queued(api: Api) -> None:
    """Item 3: ``[{...}]`` was validated as the object inside: settings stored, a retry queued."""
    before = api.settings()
    api.refused("PUT", "/settings", json.dumps([{"sync_accounts": "all"}]), NOT_AN_OBJECT)
    api.refused("POST", "/errors/retry", json.dumps([{"scope": "all"}]), NOT_AN_OBJECT)
    api.refused("POST", "/connection/confirm-switch", json.dumps([{"confirmation": "ACCEPT"}]), NOT_AN_OBJECT)
    assert api.settings() == before
    # no retry of the firm was accepted: a valid one now is the first of its 3-minute window ...
    first = api.send("POST", "/errors/retry", json.dumps({"scope": "all"}))
    assert first.status_code == 202, first.text
    # ... and the window is real: the next one waits
    again = api.send("POST", "/errors/retry", json.dumps({"scope": "all"}))
    assert again.status_code == 429 and int(again.headers["Retry-After"]) > 0


def test_types_are_strict_and_the_error_names_the_field_and_what_it_expects(api: Api) -> None:
    """Item 4: "yes" was stored as true and a date-time was cut to a date."""
    before = api.settings()
    api.refused(
        "PUT",
        "/settings",
        json.dumps({"sync_offline_payments": "yes"}),
        "body.sync_offline_payments: Input should be a valid boolean",
    )
    not_a_date = "expected a date YYYY-MM-DD (not a date-time, not a number)"
    api.refused(
        "PUT",
        "/settings",
        json.dumps({"sync_start_date": "2026-01-05T10:30:00Z"}),
        f"body.sync_start_date: {not_a_date}",
    )
    api.refused(
        "PUT",
        "/settings",
        json.dumps({"deposit_account_id": 35}),
        "body.deposit_account_id: Input should be a valid string",
    )
    api.refused(
        "POST",
        "/connection/connect-url",
        json.dumps({"settings": {"sync_start_date": "2026-01-05T00:00:00"}}),
        f"body.settings.sync_start_date: {not_a_date}",
    )
    assert api.settings() == before
    # the same fields with their documented types are stored
    stored = api.send(
        "PUT", "/settings", json.dumps({"sync_offline_payments": True, "sync_start_date": "2026-01-05"})
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["settings"]["sync_offline_payments"] is True
    assert stored.json()["settings"]["sync_start_date"] == "2026-01-05"
    assert api.settings()["settings"] == stored.json()["settings"]


def test_path_parameters_are_validated_like_bodies(api: Api) -> None:
    """Item 7: ``GET /errors/%0A`` answered 200 with the error list."""
    error_id = "path.error_id: String should match pattern '^[A-Za-z0-9_.-]{1,80}$'"
    api.refused("GET", "/errors/%0A", None, error_id)
    api.refused("GET", "/errors/0123456789abcdef-1%0A", None, error_id)
    api.refused("POST", "/errors/0123456789abcdef-1%09/skip", None, error_id)
    api.refused(
        "GET",
        "/sync/records/invoice/inv-1%0A",
        None,
        "path.platform_id: String should match pattern '^[A-Za-z0-9_.:@-]{1,128}$'",
    )
    # the routes themselves still answer
    listed = api.send("GET", "/errors")
    assert listed.status_code == 200 and "errors" in listed.json()
    missing = api.send("GET", "/errors/0123456789abcdef-1")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
