"""The CLI's flag and config-file handling (no server is started)."""

from __future__ import annotations

import json

import pytest

from local.qbo_sim.__main__ import build_config, main, parse_args


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"access_token_ttl": 120, "limits": {"requests_per_minute": 50}}))
    args = parse_args(
        [
            "--config",
            str(path),
            "--access-token-ttl",
            "60",
            "--no-limits",
            "--latency-ms",
            "5",
            "--company",
            "123",
            "--app",
            "cid:secret:https://x.example/cb",
        ]
    )
    config = build_config(args)
    assert config.access_token_ttl == 60
    assert config.limits.enabled is False and config.limits.requests_per_minute == 50
    assert config.latency_fixed_ms == 5
    assert config.companies == [{"realm_id": "123", "company_name": "Sandbox Company 123"}]
    assert config.apps[0]["redirect_uris"] == ["https://x.example/cb"]


def test_bad_app_flag_is_rejected():
    with pytest.raises(ValueError):
        build_config(parse_args(["--app", "only-an-id"]))


def test_main_exits_2_on_a_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"no_such_key": 1}))
    assert main(["--config", str(path)]) == 2
    assert "unknown config keys" in capsys.readouterr().err
