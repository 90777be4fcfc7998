"""``SimControl``: a small client of the simulator's control API (tests, demo, benchmarks)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


class SimControlError(Exception):
    """The control API answered an error (status and body attached)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"simulator control API answered {status}: {body}")
        self.status = status
        self.body = body


class SimControl:
    """Drive ``/_sim/*`` of a running simulator. Every method raises SimControlError on a non-2xx."""

    def __init__(self, base_url: str, session: requests.Session | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self.session.request(
            method, self.base_url + path, json=body, params=params, timeout=self.timeout
        )
        if response.status_code >= 300:
            try:
                payload: Any = response.json()
            except ValueError:
                payload = response.text
            raise SimControlError(response.status_code, payload)
        return response.json() if response.content else None

    # ---- world
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/health")

    def create_app(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str],
        webhook: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": redirect_uris,
        }
        if webhook is not None:
            body["webhook"] = webhook
        return self._call("POST", "/_sim/apps", body)

    def create_company(
        self, company_name: str = "Sandbox Company_US_1", seed: str = "default", realm_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"company_name": company_name, "seed": seed}
        if realm_id is not None:
            body["realm_id"] = realm_id
        return self._call("POST", "/_sim/companies", body)

    def reset_company(self, realm_id: str) -> dict[str, Any]:
        return self._call("POST", f"/_sim/companies/{realm_id}/reset", {})

    def delete_company(self, realm_id: str) -> None:
        self._call("DELETE", f"/_sim/companies/{realm_id}")

    def set_preferences(self, realm_id: str, **changes: Any) -> dict[str, Any]:
        """Change preferences, e.g. ``books_closed_date="2025-12-31"``, ``custom_txn_numbers=True``."""
        return self._call("PATCH", f"/_sim/companies/{realm_id}/preferences", changes)

    def set_consent(
        self, realm_id: str | None = None, client_id: str | None = None, deny: bool = False
    ) -> Any:
        body: dict[str, Any] = {"deny": True} if deny else {"realm_id": realm_id}
        if client_id is not None:
            body["client_id"] = client_id
        return self._call("PUT", "/_sim/consent", body)

    # ---- tokens and time
    def expire_tokens(
        self, kind: str = "access", realm_id: str | None = None, client_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind}
        if realm_id is not None:
            body["realm_id"] = realm_id
        if client_id is not None:
            body["client_id"] = client_id
        return self._call("POST", "/_sim/tokens/expire", body)

    def revoke_tokens(self, realm_id: str, client_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"realm_id": realm_id}
        if client_id is not None:
            body["client_id"] = client_id
        return self._call("POST", "/_sim/tokens/revoke", body)

    def issue_tokens(self, client_id: str, realm_id: str) -> dict[str, Any]:
        """Consent + code exchange in one call: the token response plus ``realmId``."""
        return self._call("POST", "/_sim/tokens/issue", {"client_id": client_id, "realm_id": realm_id})

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return self._call("POST", "/_sim/clock", {"advance_seconds": seconds})

    def clock(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/clock")

    # ---- chaos and limits
    def inject_fault(self, kind: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", "/_sim/faults", {"kind": kind, **options})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        return self._call("PUT", "/_sim/limits", limits)

    def set_latency(self, fixed_ms: float = 0, jitter_ms: float = 0) -> dict[str, Any]:
        return self._call("PUT", "/_sim/latency", {"fixed_ms": fixed_ms, "jitter_ms": jitter_ms})

    # ---- inspection
    def entities(self, realm_id: str, entity: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/_sim/companies/{realm_id}/entities/{entity}")[entity]

    def deleted_entities(self, realm_id: str, entity: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/_sim/companies/{realm_id}/entities/{entity}")["deleted"]

    def requests(self, realm_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if realm_id is not None:
            params["realm_id"] = realm_id
        return self._call("GET", "/_sim/requests", params=params)["requests"]

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_sim/webhooks/deliveries")["deliveries"]

    def flush_webhooks(self, include_retries: bool = False) -> list[dict[str, Any]]:
        """Deliver pending notifications now; returns every delivery attempt so far."""
        return self._call("POST", "/_sim/webhooks/flush", {"include_retries": include_retries})["deliveries"]

    def lose_webhooks(
        self, count: int = 1, realm_id: str | None = None, client_id: str | None = None
    ) -> dict[str, Any]:
        """Lose the next ``count`` notifications for ``realm_id`` / ``client_id`` (None: any): never sent,
        never retried, listed in :meth:`webhook_deliveries` with ``outcome`` ``lost``. Returns the rule."""
        body: dict[str, Any] = {"count": count}
        if realm_id is not None:
            body["realm_id"] = realm_id
        if client_id is not None:
            body["client_id"] = client_id
        return self._call("POST", "/_sim/webhooks/lose", body)

    def webhook_losses(self) -> list[dict[str, Any]]:
        """The loss rules with notifications still to lose."""
        return self._call("GET", "/_sim/webhooks/lose")["losses"]

    def clear_webhook_losses(self) -> None:
        self._call("DELETE", "/_sim/webhooks/lose")

    # ---- the browser side of OAuth
    def authorize(
        self, client_id: str, redirect_uri: str, state: str = "st", scope: str = ACCOUNTING_SCOPE
    ) -> dict[str, str]:
        """Follow the authorize endpoint like a consenting user; returns the callback query
        (``code``, ``state``, ``realmId`` or ``error``)."""
        query = urlencode(
            {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": scope,
                "state": state,
            }
        )
        response = self.session.get(
            f"{self.base_url}/connect/oauth2?{query}", allow_redirects=False, timeout=self.timeout
        )
        if response.status_code != 302:
            raise SimControlError(response.status_code, response.text)
        params = parse_qs(urlsplit(response.headers["location"]).query)
        return {k: v[0] for k, v in params.items()}


class SimAccountant:
    """The firm's accountant working in QuickBooks: v3 API calls with a token of their own (an app of
    their own on the simulator), e.g. recording a payment against an invoice qbsync synced.

    ``SimAccountant.sign_in(control, realm_id)`` registers an app and takes a token for the company.
    Every call raises SimControlError on a non-2xx (the QBO Fault is in ``body``).
    """

    def __init__(self, base_url: str, realm_id: str, access_token: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm_id = realm_id
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {access_token}", "Accept": "application/json"})

    @classmethod
    def sign_in(cls, control: SimControl, realm_id: str, client_id: str = "accountant-app") -> SimAccountant:
        try:
            control.create_app(client_id, "accountant-secret", ["http://127.0.0.1/accountant"])
        except SimControlError as err:
            if err.status != 409:  # registered already (another company of the same simulator)
                raise
        tokens = control.issue_tokens(client_id, realm_id)
        return cls(control.base_url, realm_id, tokens["access_token"], control.timeout)

    def _v3(self, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/v3/company/{self.realm_id}/{path}"
        if body is None:
            response = self.session.get(url, params=params, timeout=self.timeout)
        else:
            response = self.session.post(url, json=body, params=params, timeout=self.timeout)
        if response.status_code >= 300:
            try:
                payload: Any = response.json()
            except ValueError:
                payload = response.text
            raise SimControlError(response.status_code, payload)
        return response.json()

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        return self._v3(f"{entity.lower()}/{entity_id}")[entity]

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._v3(entity.lower(), body)[entity]

    def update(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """A sparse update (``Id`` and ``SyncToken`` in ``body``)."""
        return self._v3(entity.lower(), {**body, "sparse": True})[entity]

    def delete(self, entity: str, entity_id: str, sync_token: str) -> dict[str, Any]:
        return self._v3(entity.lower(), {"Id": entity_id, "SyncToken": sync_token}, {"operation": "delete"})

    def void(self, entity: str, entity_id: str, sync_token: str) -> dict[str, Any]:
        return self._v3(entity.lower(), {"Id": entity_id, "SyncToken": sync_token}, {"operation": "void"})[
            entity
        ]

    def receive_payment(
        self, customer_id: str, applied: list[tuple[str, str]], *, txn_date: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Record a payment of ``customer_id`` applying ``(invoice_id, amount)`` pairs (Receive payment);
        the total is the sum unless ``TotalAmt`` is given in ``extra``."""
        total = sum(float(amount) for _, amount in applied)
        body: dict[str, Any] = {
            "CustomerRef": {"value": customer_id},
            "TotalAmt": round(total, 2),
            "Line": [
                {"Amount": float(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}
                for invoice_id, amount in applied
            ],
            **extra,
        }
        if txn_date is not None:
            body["TxnDate"] = txn_date
        return self.create("Payment", body)
