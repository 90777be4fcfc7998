"""A local API Gateway (REST, v1): the template's routes on a local port, as Lambda proxy events.

Per request, like API Gateway: match the resource path and method (unknown → 403 "Missing
Authentication Token"), run the route's Lambda authorizer (REQUEST or TOKEN; missing identity
source or ``Unauthorized`` → 401, deny or no matching allow → 403, authorizer failure → 500; results
cached by identity source for the authorizer's TTL), build the proxy event (path parameters, query
strings incl. multi-value, headers, body + isBase64Encoded, requestContext with stage, requestId,
identity.sourceIp and the authorizer's context + principalId), invoke the function and turn its proxy
result into the HTTP response (a function error or a malformed result → 502). Error bodies follow the
API's gateway responses (``x-amazon-apigateway-gateway-responses``) when the template defines them.

URLs are ``http://host:port/{stage}/{path}``, mirroring ``https://{api}.execute-api…/{stage}/{path}``.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.stack.provision import ApiRoute, Authorizer, Resources
from local.stack.runtime import InvokeResult

log = logging.getLogger("local.stack.api")

Invoker = Callable[[str, Any], InvokeResult]

# API Gateway's default gateway responses (type -> status, message body).
_DEFAULT_RESPONSES: dict[str, tuple[int, dict[str, Any]]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, {"message": "Missing Authentication Token"}),
    "UNAUTHORIZED": (401, {"message": "Unauthorized"}),
    "ACCESS_DENIED": (403, {"Message": "User is not authorized to access this resource"}),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, {"message": None}),
    "AUTHORIZER_FAILURE": (500, {"message": None}),
    "BAD_GATEWAY": (502, {"message": "Internal server error"}),
    "INTEGRATION_FAILURE": (504, {"message": "Endpoint request timed out"}),
    "FORBIDDEN": (403, {"message": "Forbidden"}),
}
_EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"


@dataclass(frozen=True)
class _CompiledRoute:
    route: ApiRoute
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    specificity: tuple[int, int]


def _compile(route: ApiRoute) -> _CompiledRoute:
    parts, params = [], []
    literal = 0
    for segment in route.path.strip("/").split("/") if route.path != "/" else []:
        m = re.fullmatch(r"\{([^}+]+)(\+?)\}", segment)
        if m:
            params.append(m.group(1))
            parts.append(f"(?P<p{len(params) - 1}>.+)" if m.group(2) else f"(?P<p{len(params) - 1}>[^/]+)")
        else:
            literal += 1
            parts.append(re.escape(segment))
    pattern = re.compile("^/" + "/".join(parts) + "$")
    greedy = 1 if "+}" in route.path else 0
    return _CompiledRoute(route, pattern, tuple(params), (-greedy, literal))


class _AuthorizerError(Exception):
    def __init__(self, response_type: str, message: str | None = None) -> None:
        self.response_type = response_type
        self.message = message
        super().__init__(response_type)


class ApiGatewayServer:
    """Serve one REST API of ``resources`` on ``host:port`` (0 = a free port; bound at construction).

    ``attach(resources, invoke)`` must be called before ``start()``; ``invoke(logical_id, event)`` is
    the runtime's invoke. ``clock`` (monotonic seconds) drives the authorizer cache.
    """

    def __init__(
        self,
        api_logical_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        authorizer_cache: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api_logical_id
        self.host = host
        self.authorizer_cache = authorizer_cache
        self.clock = clock
        self._routes: list[_CompiledRoute] = []
        self._resources: Resources | None = None
        self._invoke: Invoker | None = None
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self.stage = ""
        handler = type("_Handler", (_RequestHandler,), {"gateway": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API's invoke URL (stage included), like ``https://{id}.execute-api…/{stage}``."""
        return f"{self.base_url}/{self.stage}" if self.stage else self.base_url

    def attach(self, resources: Resources, invoke: Invoker) -> None:
        routes = [r for r in resources.api_routes if r.api == self.api]
        self._routes = sorted((_compile(r) for r in routes), key=lambda c: c.specificity, reverse=True)
        self._resources = resources
        self._invoke = invoke
        self.stage = resources.api_stages.get(self.api, "")

    def start(self) -> ApiGatewayServer:
        if self._invoke is None:
            raise RuntimeError("attach(resources, invoke) before start()")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, daemon=True, name=f"api-{self.api}"
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def clear_authorizer_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # -- request handling ---------------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        request_id = str(uuid.uuid4())
        split = urlsplit(raw_path)
        path = unquote(split.path)
        prefix = f"/{self.stage}" if self.stage else ""
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            return self._gateway_response("FORBIDDEN", request_id)
        resource_path = path[len(prefix) :] or "/"
        matched = self._match(method, resource_path)
        if matched is None:
            return self._gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        compiled, path_params = matched
        route = compiled.route
        event = self._proxy_event(
            route, method, path, resource_path, split.query, headers, body, source_ip, path_params, request_id
        )
        if route.authorizer is not None:
            try:
                event["requestContext"]["authorizer"] = self._authorize(route, route.authorizer, event)
            except _AuthorizerError as exc:
                return self._gateway_response(exc.response_type, request_id, exc.message)
        assert self._invoke is not None
        result = self._invoke(route.function, event)
        if result.error is not None:
            return self._gateway_response("BAD_GATEWAY", request_id)
        try:
            return self._proxy_response(result.payload, request_id)
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("malformed Lambda proxy response from %s: %s", route.function, exc)
            return self._gateway_response("BAD_GATEWAY", request_id)

    def _match(self, method: str, path: str) -> tuple[_CompiledRoute, dict[str, str]] | None:
        for compiled in self._routes:
            m = compiled.pattern.match(path)
            if m and compiled.route.method in (method, "ANY"):
                return compiled, {name: m.group(f"p{i}") for i, name in enumerate(compiled.params)}
        return None

    def _method_arn(self, route: ApiRoute, method: str, resource_path: str) -> str:
        assert self._resources is not None
        api_id = self._resources.physical.get(route.api, route.api)
        return (
            f"arn:aws:execute-api:{self._resources.region}:{self._resources.account_id}:{api_id}/"
            f"{self.stage}/{method}{resource_path}"
        )

    def _proxy_event(
        self,
        route: ApiRoute,
        method: str,
        path: str,
        resource_path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        path_params: dict[str, str],
        request_id: str,
    ) -> dict[str, Any]:
        assert self._resources is not None
        single_headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            single_headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        single_query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            single_query[name] = value
            multi_query.setdefault(name, []).append(value)
        if body:
            try:
                body_text: str | None = body.decode("utf-8")
                is_b64 = False
            except UnicodeDecodeError:
                body_text, is_b64 = base64.b64encode(body).decode(), True
        else:
            body_text, is_b64 = None, False
        now = datetime.now(UTC)
        lower = {k.lower(): v for k, v in single_headers.items()}
        api_id = self._resources.physical.get(route.api, route.api)
        return {
            "resource": route.path,
            "path": resource_path,
            "httpMethod": method,
            "headers": single_headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": single_query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": uuid.uuid4().hex[:6],
                "resourcePath": route.path,
                "httpMethod": method,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": path,
                "accountId": self._resources.account_id,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": api_id,
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": lower.get("user-agent"),
                    "user": None,
                },
                "domainName": lower.get("host", f"{self.host}:{self.port}"),
                "apiId": api_id,
            },
            "body": body_text,
            "isBase64Encoded": is_b64,
        }

    # -- authorizer -----------------------------------------------------------------------------------
    def _identity(self, auth: Authorizer, event: dict[str, Any]) -> tuple[str, ...] | None:
        headers = {k.lower(): v for k, v in (event["headers"] or {}).items()}
        query = event["queryStringParameters"] or {}
        values = []
        for source in auth.identity_sources:
            if source.startswith("method.request.header."):
                value = headers.get(source.removeprefix("method.request.header.").lower())
            elif source.startswith("method.request.querystring."):
                value = query.get(source.removeprefix("method.request.querystring."))
            elif source.startswith("context."):
                value = event["requestContext"].get(source.removeprefix("context."))
            else:
                value = None
            if not value:
                return None
            values.append(str(value))
        return tuple(values)

    def _authorize(self, route: ApiRoute, auth: Authorizer, event: dict[str, Any]) -> dict[str, Any]:
        identity = self._identity(auth, event)
        if identity is None:
            raise _AuthorizerError("UNAUTHORIZED")  # API Gateway does not even call the authorizer
        method_arn = self._method_arn(route, event["httpMethod"], event["path"])
        key = (auth.name, identity)
        policy = None
        if self.authorizer_cache and auth.ttl_seconds > 0:
            with self._cache_lock:
                cached = self._cache.get(key)
            if cached is not None and cached[0] > self.clock():
                policy = cached[1]
        if policy is None:
            policy = self._call_authorizer(auth, event, method_arn)
            if self.authorizer_cache and auth.ttl_seconds > 0:
                with self._cache_lock:
                    self._cache[key] = (self.clock() + auth.ttl_seconds, policy)
        return _evaluate(policy, method_arn)

    def _call_authorizer(self, auth: Authorizer, event: dict[str, Any], method_arn: str) -> dict[str, Any]:
        if auth.type == "token":
            header = auth.identity_sources[0].removeprefix("method.request.header.").lower()
            token = {k.lower(): v for k, v in (event["headers"] or {}).items()}.get(header)
            auth_event: dict[str, Any] = {
                "type": "TOKEN",
                "authorizationToken": token,
                "methodArn": method_arn,
            }
        else:
            auth_event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                **{
                    k: event[k]
                    for k in (
                        "resource",
                        "path",
                        "httpMethod",
                        "headers",
                        "multiValueHeaders",
                        "queryStringParameters",
                        "multiValueQueryStringParameters",
                        "pathParameters",
                        "stageVariables",
                    )
                },
                "requestContext": {k: v for k, v in event["requestContext"].items() if k != "authorizer"},
            }
        assert self._invoke is not None
        result = self._invoke(auth.function, auth_event)
        if result.error is not None:
            if result.error.get("errorMessage") == "Unauthorized":
                raise _AuthorizerError("UNAUTHORIZED")
            raise _AuthorizerError("AUTHORIZER_CONFIGURATION_ERROR")
        policy = result.payload
        if (
            not isinstance(policy, dict)
            or "principalId" not in policy
            or not isinstance(policy.get("policyDocument"), dict)
        ):
            raise _AuthorizerError("AUTHORIZER_CONFIGURATION_ERROR")
        context = policy.get("context") or {}
        if not isinstance(context, dict) or any(isinstance(v, (dict, list)) for v in context.values()):
            raise _AuthorizerError("AUTHORIZER_CONFIGURATION_ERROR")  # context values must be scalars
        return policy

    # -- responses --------------------------------------------------------------------------------------
    def _proxy_response(self, payload: Any, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if not isinstance(payload, dict):
            raise TypeError("the proxy result is not an object")
        status = payload.get("statusCode")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"statusCode {status!r} is not an HTTP status")
        body = payload.get("body")
        if body is not None and not isinstance(body, str):
            raise TypeError("body must be a string")
        raw = (base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()) if body else b""
        headers: list[tuple[str, str]] = []
        single = payload.get("headers") or {}
        multi = payload.get("multiValueHeaders") or {}
        if not isinstance(single, dict) or not isinstance(multi, dict):
            raise TypeError("headers must be objects")
        for name, value in single.items():
            if name not in multi:
                headers.append((name, str(value)))
        for name, values in multi.items():
            if not isinstance(values, list):
                raise TypeError("multiValueHeaders values must be lists")
            headers.extend((name, str(v)) for v in values)
        if not any(h.lower() == "content-type" for h, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers.append(("x-amzn-RequestId", request_id))
        return status, headers, raw

    def _gateway_response(
        self, response_type: str, request_id: str, message: str | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        status, body = _DEFAULT_RESPONSES[response_type]
        if message is not None:
            body = {"Message": message}
        assert self._resources is not None or response_type in _DEFAULT_RESPONSES
        custom: dict[str, Any] = {}
        if self._resources is not None:
            responses = self._resources.api_gateway_responses.get(self.api, {})
            family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
            custom = responses.get(response_type) or responses.get(family) or {}
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", _error_type(response_type)),
        ]
        if custom:
            status = int(custom.get("statusCode", status))
            template = (custom.get("responseTemplates") or {}).get("application/json")
            if template is not None:
                text = next(iter(body.values()))
                rendered = (
                    template.replace("$context.error.messageString", json.dumps(text))
                    .replace("$context.error.message", str(text))
                    .replace("$context.requestId", request_id)
                )
                return status, headers, rendered.encode()
        return status, headers, json.dumps(body).encode()


def _error_type(response_type: str) -> str:
    return {
        "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
        "UNAUTHORIZED": "UnauthorizedException",
        "ACCESS_DENIED": "AccessDeniedException",
        "AUTHORIZER_CONFIGURATION_ERROR": "AuthorizerConfigurationException",
        "FORBIDDEN": "ForbiddenException",
    }.get(response_type, "InternalServerErrorException")


def _evaluate(policy: dict[str, Any], method_arn: str) -> dict[str, Any]:
    """Allow (→ requestContext.authorizer) or raise ACCESS_DENIED, as API Gateway evaluates policies."""
    statements = policy["policyDocument"].get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for st in statements:
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            continue
        if st.get("Effect") == "Deny":
            raise _AuthorizerError("ACCESS_DENIED", _EXPLICIT_DENY)
        if st.get("Effect") == "Allow":
            allowed = True
    if not allowed:
        raise _AuthorizerError("ACCESS_DENIED")
    # REST APIs pass context values to the integration as strings.
    context = {
        k: (json.dumps(v) if isinstance(v, bool) else str(v))
        for k, v in (policy.get("context") or {}).items()
        if v is not None
    }
    return {**context, "principalId": str(policy["principalId"])}


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: ApiGatewayServer
    protocol_version = "HTTP/1.1"
    server_version = "local-apigateway"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self.gateway.handle(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0]
            )
        except Exception:
            log.exception("local API Gateway failed on %s %s", self.command, urlsplit(self.path).path)
            status, headers, payload = 500, [("Content-Type", "application/json")], b'{"message": null}'
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # the caller gave up waiting (a client timeout, a bench or test that ended): nothing to send to
            self.close_connection = True
            log.debug("local API Gateway: the caller closed the connection before the answer")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)
