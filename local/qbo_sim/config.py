"""Simulator configuration (CLI flags, ``--config FILE.json``, ``SimulatorServer(config=...)``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from local.qbo_sim.limits import LimitConfig


@dataclass
class SimConfig:
    """Every knob of the simulator. Durations are seconds of *simulated* time.

    ``refresh_token_rotation_seconds``: 0 rotates the refresh token on every refresh (default, the
    strictest behaviour); N > 0 keeps returning the same refresh token until it is N seconds old
    (Intuit's "about every 24 h", QBO.md §1.5).
    """

    access_token_ttl: int = 3600
    refresh_token_ttl: int = 100 * 86400
    refresh_token_hard_ttl: int = 5 * 365 * 86400
    refresh_token_rotation_seconds: int = 0
    auth_code_ttl: int = 300
    max_minor_version: int = 75
    limits: LimitConfig = field(default_factory=LimitConfig)
    latency_fixed_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    webhook_group_window_seconds: float = 1.0
    request_log_size: int = 5000
    requestid_memory: int = 10000
    # Apps and companies created at start: same bodies as POST /_sim/apps and POST /_sim/companies.
    apps: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        """Build from JSON-like data. Raises ValueError on unknown keys or wrong types."""
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        values = dict(data)
        if "limits" in values:
            values["limits"] = limit_config_from_dict(values["limits"])
        cfg = cls(**values)
        for name in ("access_token_ttl", "refresh_token_ttl", "refresh_token_hard_ttl", "auth_code_ttl"):
            value = getattr(cfg, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer")
        if cfg.refresh_token_rotation_seconds < 0:
            raise ValueError("refresh_token_rotation_seconds must be >= 0")
        if cfg.latency_fixed_ms < 0 or cfg.latency_jitter_ms < 0:
            raise ValueError("latency values must be >= 0")
        return cfg

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def limit_config_from_dict(data: Any, base: LimitConfig | None = None) -> LimitConfig:
    """Merge ``data`` over ``base`` (or the defaults). Raises ValueError on bad keys/values."""
    if not isinstance(data, dict):
        raise ValueError("limits must be a JSON object")
    current = asdict(base) if base is not None else asdict(LimitConfig())
    unknown = set(data) - set(current)
    if unknown:
        raise ValueError(f"unknown limit keys: {sorted(unknown)}")
    for key, value in data.items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise ValueError("enabled must be a boolean")
        elif key == "time_scale":
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError("time_scale must be a positive number")
        elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{key} must be a positive integer")
        current[key] = value
    return LimitConfig(**current)
