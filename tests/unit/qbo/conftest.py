"""A fake network for the QuickBooks client core: a ``requests`` transport adapter that answers from a
script and records every request it was given. The code under test (session use, retries, parsing) is
real; only the bytes on the wire are canned."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict


@dataclass
class Canned:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → as is
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


Step = Canned | BaseException | Callable[[requests.PreparedRequest], "Canned | BaseException"]


class ScriptedAdapter(BaseAdapter):
    """Answers each request with the next step of the script (a response or an exception to raise)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Step] = []
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def queue(self, *steps: Step) -> ScriptedAdapter:
        self.script.extend(steps)
        return self

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # type: ignore[override]
        self.requests.append(request)
        self.timeouts.append(timeout)
        if not self.script:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.script.pop(0)
        if callable(step) and not isinstance(step, BaseException | Canned):
            step = step(request)
        if isinstance(step, BaseException):
            raise step
        response = requests.Response()
        response.status_code = step.status
        response._content = step.content()
        response.headers = CaseInsensitiveDict(step.headers)
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        response.reason = "canned"
        return response

    def close(self) -> None:
        pass

    # helpers for assertions
    def query(self, index: int = -1) -> dict[str, str]:
        parsed = parse_qs(urlsplit(self.requests[index].url).query, keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def path(self, index: int = -1) -> str:
        return urlsplit(self.requests[index].url).path

    def body(self, index: int = -1) -> bytes:
        raw = self.requests[index].body
        if raw is None:
            return b""
        return raw if isinstance(raw, bytes) else raw.encode("utf-8")

    def json(self, index: int = -1) -> Any:
        return json.loads(self.body(index))


@pytest.fixture
def adapter() -> ScriptedAdapter:
    return ScriptedAdapter()


@pytest.fixture
def session(adapter: ScriptedAdapter) -> requests.Session:
    s = requests.Session()
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record rendered with its message AND its structured extras."""
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.__dict__))
    return "\n".join(parts)
