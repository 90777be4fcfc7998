"""In-memory state of the simulator: apps, OAuth grants and tokens, companies and their objects.

All mutation happens on uvicorn's event loop (handlers are ``async`` and never await while mutating);
``SimState.lock`` additionally guards what the webhook thread or the control client may read.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from local.qbo_sim.clock import SimClock
from local.qbo_sim.config import SimConfig


class SimError(Exception):
    """A control-API or OAuth-level error: HTTP status plus a JSON body."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    webhook: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        """The app without its secret (for control API answers)."""
        out: dict[str, Any] = {"client_id": self.client_id, "redirect_uris": list(self.redirect_uris)}
        if self.webhook:
            out["webhook"] = {"url": self.webhook["url"], "format": self.webhook.get("format", "classic")}
        return out


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    realm_id: str
    scopes: list[str]
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    """One consent of one app to one company; holds the current token pair."""

    grant_id: str
    client_id: str
    realm_id: str
    scopes: list[str]
    created_at: float
    hard_expires_at: float
    refresh_token: str = ""
    refresh_issued_at: float = 0.0
    refresh_expires_at: float = 0.0
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    grant_id: str
    expires_at: float


@dataclass
class Company:
    realm_id: str
    company_name: str
    seed: str
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Hard-deleted transactions kept as CDC stubs: entity -> id -> stub
    deleted: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    # precise simulated epoch of the last change of each object (CDC compares on it): (entity, id) -> t
    touched: dict[tuple[str, str], float] = field(default_factory=dict)
    # requestid -> (status, body) of successful writes, oldest first
    request_ids: OrderedDict[str, tuple[int, dict[str, Any]]] = field(default_factory=OrderedDict)
    # voided transactions: (entity, id)
    voided: set[tuple[str, str]] = field(default_factory=set)
    # simulator-only settings (not visible through the QBO API)
    books_closed_password: bool = False
    next_doc_number: int = 1001

    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(entity, {})

    def next_id(self, entity: str) -> str:
        # QBO numbers name lists and transactions from separate sequences; one sequence per entity
        # family is close enough and keeps ids small and predictable.
        family = "txn" if entity in TXN_FAMILY else entity
        value = self.counters.get(family, 0) + 1
        self.counters[family] = value
        return str(value)

    def summary(self) -> dict[str, Any]:
        return {
            "realm_id": self.realm_id,
            "company_name": self.company_name,
            "seed": self.seed,
            "counts": {name: len(rows) for name, rows in sorted(self.objects.items())},
        }


TXN_FAMILY = {"Invoice", "Payment", "CreditMemo", "RefundReceipt", "Purchase"}


class SimState:
    """Everything the simulator knows. One instance per server."""

    def __init__(self, config: SimConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.apps: dict[str, App] = {}
        self.companies: dict[str, Company] = {}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        # every refresh token ever issued -> grant id; only grant.refresh_token is current
        self.refresh_tokens: dict[str, str] = {}
        self.consent: dict[str | None, str] = {}  # client_id (None = any app) -> realm_id
        self.request_log: deque[dict[str, Any]] = deque(maxlen=config.request_log_size)
        self._realm_seq = itertools.count(1)

    # ---- ids ----
    def new_realm_id(self) -> str:
        while True:
            realm = str(9341455000000000 + next(self._realm_seq) * 7919)
            if realm not in self.companies:
                return realm

    @staticmethod
    def new_token(prefix: str, size: int = 32) -> str:
        return prefix + secrets.token_urlsafe(size)

    # ---- lookups ----
    def company(self, realm_id: str) -> Company:
        company = self.companies.get(realm_id)
        if company is None:
            raise SimError(404, "not_found", f"no company with realm_id {realm_id}")
        return company

    def app(self, client_id: str) -> App:
        app = self.apps.get(client_id)
        if app is None:
            raise SimError(404, "not_found", "no such app")
        return app

    def connected_apps(self, realm_id: str) -> list[App]:
        """Apps holding a live (non-revoked) grant for the company."""
        ids = {g.client_id for g in self.grants.values() if g.realm_id == realm_id and not g.revoked}
        return [self.apps[c] for c in sorted(ids) if c in self.apps]
