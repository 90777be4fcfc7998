"""``create_app(config)``: the simulator as one Starlette application.

The ``Gateway`` ASGI wrapper sits in front of every QBO/OAuth path (never ``/_sim``) and does what
Intuit's edge does: latency, injected faults, rate limits (429 ThrottleExceeded) and the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local.qbo_sim import api, control, faults, oauth
from local.qbo_sim.clock import SimClock, parse_timestamp
from local.qbo_sim.config import SimConfig
from local.qbo_sim.entities.engine import Change
from local.qbo_sim.injection import FaultInjector, FaultRule, Latency
from local.qbo_sim.limits import RateLimiter, Throttled
from local.qbo_sim.state import SimState
from local.qbo_sim.webhooks import WebhookDispatcher

# Entities Intuit sends webhooks for (QBO.md §6.1), among those the simulator has.
WEBHOOK_ENTITIES = {
    "Account",
    "CreditMemo",
    "Customer",
    "Employee",
    "Invoice",
    "Item",
    "Payment",
    "PaymentMethod",
    "Preferences",
    "Purchase",
    "RefundReceipt",
    "Vendor",
}


class ConnectionDropped(Exception):
    """Raised after the response head was sent so that uvicorn closes the connection mid-response."""


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


def _realm_of(path: str) -> str | None:
    if path.startswith("/v3/company/"):
        rest = path[len("/v3/company/") :]
        return rest.split("/", 1)[0] or None
    return None


def _send_json(
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> list[Message]:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class Gateway:
    """Latency, fault injection, limits and the request log around the QBO and OAuth routes."""

    def __init__(
        self, app: ASGIApp, state: SimState, injector: FaultInjector, latency: Latency, limiter: RateLimiter
    ) -> None:
        self.app = app
        self.state = state
        self.injector = injector
        self.latency = latency
        self.limiter = limiter

    def _client_id(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                text = value.decode("latin-1")
                if text.lower().startswith("bearer "):
                    record = self.state.access_tokens.get(text[7:].strip())
                    grant = self.state.grants.get(record.grant_id) if record else None
                    return grant.client_id if grant else None
        return None

    async def _emit(self, send: Send, messages: list[Message]) -> None:
        for message in messages:
            await send(message)

    def _injected(self, rule: FaultRule) -> list[Message]:
        now = self.state.clock
        if rule.kind == "http_500":
            body = faults.fault_body(faults.system_fault(), now.response_time())
            return _send_json(500, _dumps(body))
        if rule.kind == "http_503":
            return _send_json(
                503, b"<html><body><h1>503 Service Unavailable</h1></body></html>", b"text/html"
            )
        if rule.kind == "unauthorized":
            body = faults.authentication_failed_body("Token revoked: injected fault", int(now.time() * 1000))
            return _send_json(
                401, _dumps(body), extra=[(b"www-authenticate", faults.WWW_AUTHENTICATE.encode())]
            )
        if rule.kind == "throttle":
            return _send_json(429, faults.throttle_xml(now.response_time()).encode(), b"application/xml")
        return _send_json(504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>", b"text/html")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        realm_id = _realm_of(path)
        scope.setdefault("state", {})
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "sim_time": self.state.clock.response_time(),
            "method": method,
            "path": path,
            "realm_id": realm_id,
        }
        query = _safe_query(scope.get("query_string", b"").decode("latin-1"))
        if query:
            entry["query"] = query
        started = time.perf_counter()
        status: dict[str, int] = {}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["status"] = message["status"]
            await send(message)

        try:
            rule = self.injector.pick(realm_id, method, path)
            if rule is not None:
                entry["fault"] = rule.kind
            if rule is not None and rule.kind != "drop_after_commit":
                if rule.kind == "timeout":
                    await asyncio.sleep(rule.hang_ms / 1000.0)
                await self._emit(tracking_send, self._injected(rule))
                return
            client_id = self._client_id(scope)
            entry["client_id"] = client_id
            permit = None
            if realm_id is not None and client_id is not None and self.state.config.limits.enabled:
                try:
                    permit = self.limiter.acquire(realm_id, client_id, is_batch=path.endswith("/batch"))
                except Throttled as exc:
                    entry["throttled"] = getattr(exc, "reason", "throttled")
                    body = faults.throttle_xml(self.state.clock.response_time()).encode()
                    await self._emit(tracking_send, _send_json(429, body, b"application/xml"))
                    return
            try:
                # Latency is service time: the request holds its concurrency slot while it waits,
                # so parallel callers meet the "concurrent" limit as they would at Intuit.
                delay = self.latency.delay_seconds()
                if delay:
                    await asyncio.sleep(delay)
                if rule is not None:  # drop_after_commit
                    await self._drop_after_commit(rule, scope, receive, tracking_send, entry)
                else:
                    await self.app(scope, receive, tracking_send)
            finally:
                if permit is not None:
                    permit.release()
        finally:
            entry["status"] = status.get("status", 0)
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            st = scope.get("state") or {}
            if st.get("replayed"):
                entry["replayed"] = True
            self.state.request_log.append(entry)

    async def _drop_after_commit(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any]
    ) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)  # the write commits here
        entry["committed_status"] = next(
            (m["status"] for m in captured if m["type"] == "http.response.start"), 0
        )
        if rule.response == "close":
            start = next(m for m in captured if m["type"] == "http.response.start")
            await send(start)
            raise ConnectionDropped("response dropped after commit (injected)")
        code = int(rule.response.split("_")[1])
        if code == 500:
            body = _dumps(faults.fault_body(faults.system_fault(), self.state.clock.response_time()))
            await self._emit(send, _send_json(500, body))
        else:
            await self._emit(
                send, _send_json(code, f"<html><body><h1>{code}</h1></body></html>".encode(), b"text/html")
            )


_SECRET_PARAMS = {"code", "token", "access_token", "refresh_token", "client_secret", "state"}


def _safe_query(query: str) -> str:
    """The query string with OAuth secrets masked (the request log never holds tokens)."""
    if not query:
        return ""
    parts = []
    for part in query.split("&"):
        key, sep, _ = part.partition("=")
        parts.append(f"{key}=***" if sep and key in _SECRET_PARAMS else part)
    return "&".join(parts)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _to_utc_z(stamp: str) -> str:
    moment = parse_timestamp(stamp).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def create_app(config: SimConfig | None = None, clock: SimClock | None = None) -> Starlette:
    """Build the simulator. Apps and companies listed in ``config`` are created up front.

    Raises SimError (via control.add_app/add_company) when the config lists an invalid app/company.
    """
    config = config or SimConfig()
    clock = clock or SimClock()
    state = SimState(config, clock)
    injector = FaultInjector()
    latency = Latency(config.latency_fixed_ms, config.latency_jitter_ms)
    limiter = RateLimiter(config.limits)
    dispatcher = WebhookDispatcher(clock=clock.now, group_window_seconds=config.webhook_group_window_seconds)

    def notify(realm_id: str, changes: list[Change]) -> None:
        apps = [a for a in state.connected_apps(realm_id) if a.webhook]
        for change in changes:
            if change.entity not in WEBHOOK_ENTITIES:
                continue
            for app in apps:
                dispatcher.record_change(
                    app.client_id,
                    realm_id,
                    change.entity,
                    change.entity_id,
                    change.operation,
                    _to_utc_z(change.last_updated),
                    change.deleted_id,
                )

    state.notify = notify  # type: ignore[attr-defined]
    state.webhooks = dispatcher  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dispatcher.start()
        try:
            yield
        finally:
            dispatcher.stop()

    # hot paths first: Starlette tries routes in order
    app = Starlette(routes=[*api.routes(), *oauth.routes(), *control.routes()], lifespan=lifespan)
    app.state.sim = state
    app.state.injector = injector
    app.state.latency = latency
    app.state.limiter = limiter
    for app_data in config.apps:
        control.add_app(state, dict(app_data))
    for company_data in config.companies:
        control.add_company(state, dict(company_data))
    app.add_middleware(Gateway, state=state, injector=injector, latency=latency, limiter=limiter)  # type: ignore[arg-type]
    return app
