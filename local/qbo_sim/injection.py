"""Fault and latency injection for the QBO surface (never for ``/_sim``).

A rule fires for the next ``count`` matching requests, or for a share (``ratio``) of them, optionally
only for one realm, one HTTP method or paths matching ``path_regex``.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("http_500", "http_503", "timeout", "drop_after_commit", "unauthorized", "throttle")
DROP_RESPONSES = ("close", "http_500", "http_502", "http_503", "http_504")


@dataclass
class FaultRule:
    kind: str
    count: int | None = None
    ratio: float | None = None
    realm_id: str | None = None
    method: str | None = None
    path_regex: str | None = None
    # timeout: how long to hold the request before answering 504 (simulated gateway timeout)
    hang_ms: float = 30000.0
    # drop_after_commit: what the client gets after the write committed
    response: str = "close"
    seed: int | None = None
    fired: int = 0
    rule_id: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        """Validate a control-API body. Raises ValueError with a readable message."""
        if not isinstance(data, dict):
            raise ValueError("fault must be a JSON object")
        allowed = {
            "kind",
            "count",
            "ratio",
            "realm_id",
            "method",
            "path_regex",
            "hang_ms",
            "response",
            "seed",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}")
        count, ratio = data.get("count"), data.get("ratio")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValueError("count must be an integer >= 1")
        if ratio is not None and (
            not isinstance(ratio, int | float) or isinstance(ratio, bool) or not 0 <= ratio <= 1
        ):
            raise ValueError("ratio must be a number between 0 and 1")
        if count is None and ratio is None:
            count = 1
        method = data.get("method")
        if method is not None and (not isinstance(method, str) or not method.isalpha()):
            raise ValueError("method must be an HTTP method name")
        pattern = None
        if data.get("path_regex") is not None:
            try:
                pattern = re.compile(str(data["path_regex"]))
            except re.error as exc:
                raise ValueError(f"path_regex is not a valid regular expression: {exc}") from None
        response = data.get("response", "close")
        if response not in DROP_RESPONSES:
            raise ValueError(f"response must be one of {list(DROP_RESPONSES)}")
        hang_ms = data.get("hang_ms", 30000.0)
        if not isinstance(hang_ms, int | float) or isinstance(hang_ms, bool) or not 0 <= hang_ms <= 600000:
            raise ValueError("hang_ms must be between 0 and 600000")
        seed = data.get("seed")
        rule = cls(
            kind=kind,
            count=count,
            ratio=float(ratio) if ratio is not None else None,
            realm_id=data.get("realm_id"),
            method=method.upper() if method else None,
            path_regex=data.get("path_regex"),
            hang_ms=float(hang_ms),
            response=response,
            seed=seed,
        )
        rule._pattern = pattern
        rule._rng = random.Random(seed)
        return rule

    def public(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "kind": self.kind,
            "count": self.count,
            "ratio": self.ratio,
            "realm_id": self.realm_id,
            "method": self.method,
            "path_regex": self.path_regex,
            "hang_ms": self.hang_ms,
            "response": self.response,
            "fired": self.fired,
        }

    def matches(self, realm_id: str | None, method: str, path: str) -> bool:
        if self.realm_id is not None and self.realm_id != realm_id:
            return False
        if self.method is not None and self.method != method:
            return False
        return not (self._pattern is not None and not self._pattern.search(path))


class FaultInjector:
    """Holds the active rules; ``pick`` returns the rule that fires for a request, if any."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._next_id = 1

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.rule_id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.public() for r in self._rules]

    def pick(self, realm_id: str | None, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(realm_id, method, path):
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    rule.fired += 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                    return rule
                if rule.ratio is not None and rule._rng.random() < rule.ratio:
                    rule.fired += 1
                    return rule
        return None


@dataclass
class Latency:
    fixed_ms: float = 0.0
    jitter_ms: float = 0.0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def configure(self, data: Any) -> None:
        """Set ``fixed_ms``/``jitter_ms``. Raises ValueError for negative or unknown values."""
        if not isinstance(data, dict):
            raise ValueError("latency must be a JSON object")
        unknown = set(data) - {"fixed_ms", "jitter_ms"}
        if unknown:
            raise ValueError(f"unknown latency keys: {sorted(unknown)}")
        values = {k: data.get(k, getattr(self, k)) for k in ("fixed_ms", "jitter_ms")}
        for key, value in values.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 120000:
                raise ValueError(f"{key} must be between 0 and 120000")
        self.fixed_ms, self.jitter_ms = float(values["fixed_ms"]), float(values["jitter_ms"])

    def delay_seconds(self) -> float:
        jitter = self._rng.uniform(0, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.fixed_ms + jitter) / 1000.0

    def public(self) -> dict[str, float]:
        return {"fixed_ms": self.fixed_ms, "jitter_ms": self.jitter_ms}
