"""Unit tests of the simulator's pure parts: clock, config, fault rules, latency."""

from __future__ import annotations

import re

import pytest

from local.qbo_sim.clock import SimClock, parse_timestamp
from local.qbo_sim.config import SimConfig, limit_config_from_dict
from local.qbo_sim.injection import FaultInjector, FaultRule, Latency


def test_clock_advances_and_formats():
    clock = SimClock()
    before = clock.time()
    clock.advance(86400)
    assert clock.time() - before >= 86400
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-08:00", clock.stamp())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-08:00", clock.response_time())
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.advance(float("nan"))


def test_parse_timestamp_treats_naive_as_company_time():
    assert parse_timestamp("2026-03-01T00:00:00").utcoffset().total_seconds() == -8 * 3600
    assert parse_timestamp("2026-03-01T08:00:00Z") == parse_timestamp("2026-03-01T00:00:00-08:00")
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def test_config_from_dict_validates():
    cfg = SimConfig.from_dict({"access_token_ttl": 60, "limits": {"enabled": False}})
    assert cfg.access_token_ttl == 60 and cfg.limits.enabled is False
    for bad in (
        {"colour": 1},
        {"access_token_ttl": 0},
        {"limits": {"requests_per_minute": -1}},
        {"limits": {"burst": 3}},
        {"latency_fixed_ms": -5},
    ):
        with pytest.raises(ValueError):
            SimConfig.from_dict(bad)


def test_limit_merge_keeps_other_values():
    base = limit_config_from_dict({"requests_per_minute": 3})
    merged = limit_config_from_dict({"enabled": False}, base)
    assert merged.requests_per_minute == 3 and merged.enabled is False
    with pytest.raises(ValueError):
        limit_config_from_dict({"enabled": "yes"})


def test_fault_rule_validation():
    assert FaultRule.from_dict({"kind": "http_500"}).count == 1
    for bad in (
        {"kind": "nope"},
        {"kind": "http_500", "count": 0},
        {"kind": "http_500", "ratio": 1.5},
        {"kind": "http_500", "path_regex": "("},
        {"kind": "timeout", "hang_ms": -1},
        {"kind": "drop_after_commit", "response": "http_418"},
        {"kind": "http_500", "extra": 1},
    ):
        with pytest.raises(ValueError):
            FaultRule.from_dict(bad)


def test_injector_count_filters_and_seeded_ratio():
    injector = FaultInjector()
    injector.add(FaultRule.from_dict({"kind": "http_503", "count": 2, "realm_id": "1", "method": "post"}))
    assert injector.pick("2", "POST", "/v3/company/2/customer") is None
    assert injector.pick("1", "GET", "/v3/company/1/customer/1") is None
    assert injector.pick("1", "POST", "/v3/company/1/customer").kind == "http_503"
    assert injector.pick("1", "POST", "/v3/company/1/customer").kind == "http_503"
    assert injector.pick("1", "POST", "/v3/company/1/customer") is None
    assert injector.rules() == []

    def fired(seed):
        inj = FaultInjector()
        inj.add(FaultRule.from_dict({"kind": "http_500", "ratio": 0.3, "seed": seed}))
        return [inj.pick(None, "GET", "/x") is not None for _ in range(200)]

    first = fired(7)
    assert first == fired(7)  # reproducible
    assert 30 < sum(first) < 90


def test_latency_configure():
    latency = Latency()
    latency.configure({"fixed_ms": 10, "jitter_ms": 5})
    assert 0.010 <= latency.delay_seconds() <= 0.015
    with pytest.raises(ValueError):
        latency.configure({"fixed_ms": -1})
    with pytest.raises(ValueError):
        latency.configure({"slow": True})
