"""Helpers for the simulator's own integration tests: an authenticated v3 client for one company."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests


@dataclass
class QboApi:
    """Calls ``/v3/company/{realm}/...`` with a bearer token; returns ``requests.Response``."""

    base_url: str
    realm_id: str
    access_token: str
    session: requests.Session

    def url(self, path: str) -> str:
        return f"{self.base_url}/v3/company/{self.realm_id}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}

    def get(self, path: str, **params: Any) -> requests.Response:
        params.setdefault("minorversion", "75")
        return self.session.get(self.url(path), params=params, headers=self.headers(), timeout=10)

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        params.setdefault("minorversion", "75")
        return self.session.post(self.url(path), json=body, params=params, headers=self.headers(), timeout=10)

    def create(self, entity: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        response = self.post(entity.lower(), body, **params)
        assert response.status_code == 200, response.text
        return response.json()[entity]

    def read(self, entity: str, obj_id: str) -> dict[str, Any]:
        response = self.get(f"{entity.lower()}/{obj_id}")
        assert response.status_code == 200, response.text
        return response.json()[entity]

    def fault(self, response: requests.Response, status: int = 400) -> dict[str, Any]:
        """The first Error of a Fault response, after checking the status."""
        assert response.status_code == status, response.text
        return response.json()["Fault"]["Error"][0]

    def query(self, text: str) -> dict[str, Any]:
        response = self.get("query", query=text)
        assert response.status_code == 200, response.text
        return response.json()["QueryResponse"]


@pytest.fixture
def api(qbo_sim, qbo_tokens, qbo_company) -> QboApi:
    return QboApi(qbo_sim.url, qbo_company, qbo_tokens["access_token"], requests.Session())


@pytest.fixture
def seed(qbo_sim, qbo_company) -> dict[str, Any]:
    """Ids of the seeded objects tests need: accounts by name, items, payment methods, etc."""
    control = qbo_sim.control
    accounts = {a["Name"]: a["Id"] for a in control.entities(qbo_company, "Account")}
    items = {i["Name"]: i["Id"] for i in control.entities(qbo_company, "Item")}
    methods = {m["Name"]: m["Id"] for m in control.entities(qbo_company, "PaymentMethod")}
    return {"accounts": accounts, "items": items, "methods": methods}
