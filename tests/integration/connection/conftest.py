"""The connection handlers in-process, exactly as configured by template.yaml, on moto + the simulator.

Uses the shared fixtures of tests/fixtures/aws.py (moto server, resources provisioned from the template,
``function_env``), tests/fixtures/qbo_sim.py and tests/fixtures/events.py (``qbsync_events``). API Gateway
is played by :class:`Api`: it runs the real REQUEST authorizer on every admin route (as API Gateway would)
and builds proxy events from the samples in ``events/handlers/``.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from qbsync import wiring

from local.stack.provision import LOCAL_PLATFORM_RETURN_URL, Resources, clients
from tests.fixtures.events import EventCapture
from tests.fixtures.firms import new_firm as new_firm  # the tests of this folder import it from here
from tests.fixtures.lambda_runtime import HttpResult, LambdaContext, load_function

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events" / "handlers"


def load_handler(name: str) -> Any:
    return load_function(name, prefix="h7")


OAUTH = load_handler("oauth")
AUTHORIZER = load_handler("authorizer")
KEEPALIVE = load_handler("token_keepalive")


def handle_of(redirected: HttpResult) -> str:
    """The one-time handle of the callback's redirect to the platform's return URL."""
    location = redirected.headers["Location"]
    assert location.startswith(LOCAL_PLATFORM_RETURN_URL + "?"), location
    return parse_qs(urlsplit(location).query)["handle"][0]


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


class Api:
    """API Gateway in front of the handlers: authorizer first (admin routes), then the proxy integration."""

    def __init__(self, jwt_key: str) -> None:
        self.jwt_key = jwt_key

    def token(self, firm_id: str, role: str = "owner", user_id: str = "user-1", **overrides: Any) -> str:
        claims = {
            "sub": user_id,
            "firm_id": firm_id,
            "role": role,
            "iss": "platform",
            "aud": "qbsync-admin",
            "exp": int(time.time()) + 300,
            **overrides,
        }
        return jwt.encode(claims, self.jwt_key, algorithm="HS256")

    def authorize(self, method: str, path: str, bearer: str | None) -> dict[str, Any]:
        event = sample("authorizer_request.json")
        event["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:abc123/dev/{method}{path}"
        event["headers"] = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return AUTHORIZER.lambda_handler(event, LambdaContext())

    def call(
        self,
        method: str,
        path: str,
        *,
        bearer: str | None = None,
        body: Any = None,
        raw_body: str | None = None,
        query: dict[str, str] | None = None,
    ) -> HttpResult:
        if path == "/oauth/callback":
            event = sample("oauth_callback.json")
        else:
            event = copy.deepcopy(sample("oauth_get_connection.json"))
            try:
                policy = self.authorize(method, path, bearer)
            except Exception as exc:  # API Gateway answers 401 when the authorizer raises "Unauthorized"
                assert str(exc) == "Unauthorized"
                return HttpResult(401, {}, json.dumps({"error": "unauthorized"}))
            event["requestContext"]["authorizer"] = {
                **policy["context"],
                "principalId": policy["principalId"],
            }
            event["headers"]["Authorization"] = f"Bearer {bearer}"
        event.update(
            httpMethod=method,
            path=path,
            resource=path,
            body=raw_body if raw_body is not None else json.dumps(body) if body is not None else None,
            queryStringParameters=query,
            multiValueQueryStringParameters={k: [v] for k, v in query.items()} if query else None,
        )
        event["requestContext"].update(
            httpMethod=method, resourcePath=path, path=f"/dev{path}", requestId=str(uuid.uuid4())
        )
        response = OAUTH.lambda_handler(event, LambdaContext())
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        return HttpResult(response["statusCode"], headers, response.get("body") or "")


@dataclass
class Stack:
    api: Api
    resources: Resources
    sim: Any
    app: Any
    captured: EventCapture  # the qbsync "Connection Changed" events

    def browser_consent(self, connect_url: str) -> dict[str, str]:
        """Follow the consent URL like the owner's browser; returns the callback query Intuit sends."""
        response = requests.get(connect_url, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(self.app.redirect_uri + "?")
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def authorize(self, firm_id: str, realm_id: str, *, user_id: str = "user-1") -> HttpResult:
        """connect-url → consent for ``realm_id`` → callback: the callback's answer (303 to the platform)."""
        self.sim.control.set_consent(realm_id=realm_id, client_id=self.app.client_id)
        owner = self.api.token(firm_id, user_id=user_id)
        started = self.api.call("POST", "/connection/connect-url", bearer=owner)
        assert started.status == 200, started.body
        return self.api.call("GET", "/oauth/callback", query=self.browser_consent(started.json()["url"]))

    def connect(self, firm_id: str, realm_id: str, *, user_id: str = "user-1") -> HttpResult:
        """The whole connection as the platform drives it: :meth:`authorize`, then the owner who started
        completes it with the handle of the return URL; the answer of ``POST /connection/complete``."""
        redirected = self.authorize(firm_id, realm_id, user_id=user_id)
        assert redirected.status == 303, redirected.body
        return self.complete(firm_id, handle_of(redirected), user_id=user_id)

    def complete(
        self, firm_id: str, handle: str, *, user_id: str = "user-1", role: str = "owner"
    ) -> HttpResult:
        bearer = self.api.token(firm_id, role=role, user_id=user_id)
        return self.api.call("POST", "/connection/complete", bearer=bearer, body={"handle": handle})

    def connection_events(self) -> list[dict[str, Any]]:
        """Every "Connection Changed" detail published so far (drains the capture queue)."""
        out = []
        for envelope in self.captured.drain():
            assert envelope["source"] == "qbsync" and envelope["detail-type"] == "Connection Changed"
            out.append(envelope["detail"])
        return out


@pytest.fixture
def stack(
    aws_clean: Resources,
    function_env: Any,
    intuit_app_secret: Any,
    qbo_sim: Any,
    qbsync_events: Callable[..., EventCapture],
) -> Iterator[Stack]:
    function_env("OAuthFunction")
    wiring.reset()
    c = clients(aws_clean.endpoint_url, aws_clean.region)
    jwt_key = json.loads(
        c["secretsmanager"].get_secret_value(SecretId=aws_clean.ref("AdminJwtSecret"))["SecretString"]
    )["key"]
    captured = qbsync_events("Connection Changed")
    stack = Stack(Api(jwt_key), aws_clean, qbo_sim, intuit_app_secret, captured)
    stack.connection_events()  # drain what earlier tests left
    yield stack
    wiring.reset()
