"""The admin API against its own OpenAPI document (docs/openapi.json), with Schemathesis, on the local stack.

Every operation of the document is called through the local API Gateway (REQUEST authorizer, the greedy
proxy route to AdminApiFunction, OAuthFunction's own routes) with an owner JWT of a firm connected to a
simulator company through the real OAuth flow. Schemathesis generates valid and invalid inputs
(examples, boundary values from the coverage phase, a few fuzzed cases per operation; a fixed seed, so a
failure reproduces) and checks that the API never answers 5xx, answers only the statuses the document
declares, that every body matches its declared schema, that invalid input (negative data: wrong types,
strings for booleans, maps over ``maxProperties``, a body of the wrong JSON type, ...) is refused with a
400/401/403/404 and never accepted, 422'd or 5xx'd (``negative_data_rejection``), and that a body of an
unexpected content type (Schemathesis' ``text/plain`` and boundary-less ``multipart/form-data`` probes) is a
documented 400 (:func:`unexpected_content_type_is_a_400`).

Schemathesis does not generate what broke the parsers in issue 10 (nesting 50,000 deep, bodies of
megabytes, an array around a valid object): :func:`test_bodies_past_the_limits_are_documented_400s` sends
those to every operation with a body and validates each answer against the operation's declared responses.

``POST /connection/disconnect`` is called for a second firm that never connected (a 404 by contract):
disconnecting the main firm would revoke its tokens and turn every later QuickBooks-backed call into 409.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import schemathesis.engine
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.engine import Status, events
from schemathesis.generation.meta import CONTENT_TYPE_PROBES, coverage_scenario

from tests.fixtures.firms import admin_jwt, connect_through_stack

pytestmark = pytest.mark.e2e

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
FIRM = f"firm-st-{secrets.token_hex(3)}"
NEVER_CONNECTED = f"firm-st-{secrets.token_hex(3)}"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unexpected_content_type_is_a_400",
)
#: what invalid input may be answered with: 400 naming the field (or 404 for a path that names no route;
#: 401/403 when the generated input is the credentials). Never 422, never 5xx.
REJECTION_STATUSES = ["400", "401", "403", "404"]
SEED = 20261123
#: fuzzed cases per operation (the examples and coverage phases add their own deterministic cases)
MAX_EXAMPLES = 4


#: operations whose content-type probes :func:`unexpected_content_type_is_a_400` saw (the check is live)
CONTENT_TYPE_PROBES_SEEN: list[str] = []


@schemathesis.check
def unexpected_content_type_is_a_400(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request whose Content-Type is not JSON is a 400 ``bad_request`` (docs/admin-api.md), not just
    "no 5xx" (Schemathesis' own rule for its content-type probes)."""
    if coverage_scenario(case) not in CONTENT_TYPE_PROBES:
        return None
    CONTENT_TYPE_PROBES_SEEN.append(case.operation.label)
    body = response.json() if response.status_code == 400 else None
    assert response.status_code == 400 and body["error"] == "bad_request", (
        f"Content-Type {case.headers.get('Content-Type')!r} answered {response.status_code}, expected 400"
    )
    return True


def _token(stack: Any, firm_id: str) -> str:
    return admin_jwt(stack, firm_id, ttl_seconds=900)


def _connect(stack: Any, qbo_sim: Any, token: str) -> str:
    """The owner connects a fresh simulator company through the real endpoints (as a browser does)."""
    realm_id = qbo_sim.control.create_company(company_name=f"Schemathesis Co {secrets.token_hex(3)}")[
        "realm_id"
    ]
    connect_through_stack(stack, qbo_sim, token, realm_id)
    return realm_id


@pytest.fixture(scope="module")
def admin_api(local_stack: Any, qbo_sim: Any) -> dict[str, Any]:
    tokens = {FIRM: _token(local_stack, FIRM), NEVER_CONNECTED: _token(local_stack, NEVER_CONNECTED)}
    _connect(local_stack, qbo_sim, tokens[FIRM])
    return {"base_url": local_stack.api_url, "tokens": tokens}


def _exchange(event: Any, case_id: str) -> str:
    """What was sent and answered for one case (for the failure message)."""
    interaction = event.recorder.interactions.get(case_id)
    if interaction is None:
        return "no interaction recorded"
    request, response = interaction.request, interaction.response
    seen = f"{response.status_code} {response.content!r:.300}" if response else "no response"
    return f"{seen} <- {request.method} {request.uri} {request.body!r:.200}"


def _run(base_url: str, token: str, *, only: str | None = None, skip: str | None = None) -> list[str]:
    """One Schemathesis run (examples, coverage and fuzzing phases) of the document's operations.

    Returns one line per failed check: the operation, the check, what it saw (empty = all passed).
    """
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "headers": {"Authorization": f"Bearer {token}"},
            "request-timeout": 60,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            # One undeclared method per operation is enough to see the 404 (TRACE never reaches API Gateway).
            "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": ["patch"]}},
            # One worker: CPython 3.11 < 3.11.9 can raise "AST constructor recursion depth mismatch" when two
            # threads build ASTs at once (gh-106905), which Schemathesis reports as an engine error.
            "workers": 1,
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
                "negative_data_rejection": {"enabled": True, "expected-statuses": REJECTION_STATUSES},
            },
        }
    )
    schema = schemathesis.openapi.from_path(OPENAPI, config=config)
    if only is not None:
        schema = schema.include(path=only)
    if skip is not None:
        schema = schema.exclude(path=skip)
    failures: list[str] = []
    operations: set[str] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.FatalError | events.NonFatalError):
            failures.append(f"{getattr(event, 'label', 'engine')}: {event.info.message}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        operations.add(event.recorder.label)
        for case_id, nodes in event.recorder.checks.items():
            for node in nodes:
                if node.status == Status.FAILURE:
                    failures.append(f"{event.recorder.label}: {node.name}: {_exchange(event, case_id)}")
    assert operations, "Schemathesis ran no operation"
    return sorted(set(failures))


def test_every_operation_keeps_its_contract(admin_api: dict[str, Any]) -> None:
    base, tokens = admin_api["base_url"], admin_api["tokens"]
    failures = _run(base, tokens[FIRM], skip="/connection/disconnect")
    failures += _run(base, tokens[NEVER_CONNECTED], only="/connection/disconnect")
    assert not failures, "\n".join(failures)
    assert {"PUT /settings", "POST /errors/retry", "POST /connection/connect-url"} <= set(
        CONTENT_TYPE_PROBES_SEEN
    )


def test_connection_routes_win_over_the_admin_proxy(admin_api: dict[str, Any]) -> None:
    """The local API Gateway, like API Gateway, prefers /connection and /oauth/callback over /{proxy+}."""
    headers = {"Authorization": f"Bearer {admin_api['tokens'][FIRM]}"}
    base = admin_api["base_url"]
    connection = requests.get(f"{base}/connection", headers=headers, timeout=60)
    assert connection.status_code == 200 and connection.json()["status"] == "connected"  # OAuthFunction
    settings_view = requests.get(f"{base}/settings", headers=headers, timeout=60)
    assert settings_view.status_code == 200 and "is_default" in settings_view.json()  # AdminApiFunction
    callback = requests.get(f"{base}/oauth/callback", timeout=60)  # no token: the route has no authorizer
    assert callback.status_code == 400 and "text/html" in callback.headers["Content-Type"]
    unknown = requests.get(f"{base}/no/such/route", headers=headers, timeout=60)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    anonymous = requests.get(f"{base}/settings", timeout=60)
    assert anonymous.status_code == 401


#: what made the parsers fail (issue 10 items 2 and 3) and what the limits refuse, with the expected message
PAST_THE_LIMITS = (
    ("[" * 50_000, "body: nested deeper than 32 levels of arrays and objects"),
    ('{"a":' * 2_000, "body: nested deeper than 32 levels of arrays and objects"),
    ('{"a":' * 33 + "{}" + "}" * 33, "body: nested deeper than 32 levels of arrays and objects"),
    (json.dumps({"padding": "x" * 300_000}), "body: larger than 262144 bytes (256 KiB), the limit"),
    ("null", "body: expected a JSON object, got null"),
    ("not json", "body: not valid JSON"),
)
#: a syntactically valid value of every path parameter of the document
PATH_VALUES = {"error_id": "0123456789abcdef-1", "entity_type": "invoice", "platform_id": "inv-1"}


def test_bodies_past_the_limits_are_documented_400s(admin_api: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_path(OPENAPI)
    headers = {"Authorization": f"Bearer {admin_api['tokens'][FIRM]}", "Content-Type": "application/json"}
    with_bodies = [
        op for op in (r.ok() for r in schema.get_all_operations()) if op.body and op.path != "/oauth/callback"
    ]
    assert len(with_bodies) >= 7, [op.label for op in with_bodies]
    failures: list[str] = []
    for operation in with_bodies:
        url = admin_api["base_url"] + operation.path.format(**PATH_VALUES)
        wrapped = json.dumps(
            [{"scope": "all", "settings": {}, "confirmation": "ACCEPT", "qbo_item_ids": ["1"]}]
        )
        cases = (*PAST_THE_LIMITS, (wrapped, "body: expected a JSON object, got an array"))
        for body, message in cases:
            answer = requests.request(operation.method.upper(), url, data=body, headers=headers, timeout=60)
            label = f"{operation.label} <- {body[:40]!r}"
            if (answer.status_code, answer.json()) != (400, {"error": "bad_request", "message": message}):
                failures.append(f"{label}: {answer.status_code} {answer.text[:200]}")
                continue
            if "400" not in operation.definition.raw.get("responses", {}):
                failures.append(f"{label}: 400 is not a documented response")
            try:
                operation.validate_response(answer)
            except FailureGroup as exc:
                failures.append(f"{label}: {exc}")
    assert not failures, "\n".join(failures)
