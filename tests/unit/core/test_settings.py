"""Settings: validation from the environment, cached getters, errors that name variables only."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from qbsync import settings
from qbsync.errors import ConfigurationError

CORE_ENV = {
    "SYNC_TABLE_NAME": "sync",
    "ERROR_TABLE_NAME": "errors",
    "IDEMPOTENCY_TABLE_NAME": "idem",
    "EVENT_BUS_NAME": "bus",
    "OUTBOUND_QUEUE_URL": "http://127.0.0.1:5000/123456789012/outbound",
    "OUTBOUND_DLQ_URL": "http://127.0.0.1:5000/123456789012/outbound-dlq",
    "INBOUND_QUEUE_URL": "http://127.0.0.1:5000/123456789012/inbound",
    "INBOUND_DLQ_URL": "http://127.0.0.1:5000/123456789012/inbound-dlq",
    "RETRY_QUEUE_URL": "http://127.0.0.1:5000/123456789012/retry",
    "CATCHUP_QUEUE_URL": "http://127.0.0.1:5000/123456789012/catchup",
    "TOKEN_KMS_KEY_ID": "alias/tokens",
    "INTUIT_APP_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:intuit",
    "STATE_SIGNING_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:state",
    "ADMIN_JWT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt",
}
QBO_ENV = {
    "INTUIT_DISCOVERY_URL": "http://127.0.0.1:8123/.well-known/openid_configuration",
    "QBO_API_BASE_URL": "http://127.0.0.1:8123/",
    "QBO_APP_BASE_URL": "https://app.sandbox.qbo.intuit.com",
    "QBO_MINOR_VERSION": "75",
    "OAUTH_REDIRECT_URI": "http://127.0.0.1:3000/oauth/callback",
}


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    for name in [*CORE_ENV, *QBO_ENV]:
        monkeypatch.delenv(name, raising=False)
    settings.clear()
    yield
    settings.clear()


def test_core_settings_read_every_variable(monkeypatch):
    for k, v in CORE_ENV.items():
        monkeypatch.setenv(k, v)
    core = settings.get_core_settings()
    assert core.sync_table_name == "sync"
    assert core.outbound_queue_url.endswith("/outbound")
    assert core.token_kms_key_id == "alias/tokens"
    assert core.admin_jwt_secret_arn.endswith(":jwt")
    assert settings.get_core_settings() is core  # cached per container


def test_missing_variables_are_named_without_values(monkeypatch):
    env = dict(CORE_ENV)
    del env["SYNC_TABLE_NAME"]
    env["OUTBOUND_QUEUE_URL"] = "not-a-url-secretish"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigurationError) as err:
        settings.get_core_settings()
    msg = str(err.value)
    assert "SYNC_TABLE_NAME (missing)" in msg
    assert "OUTBOUND_QUEUE_URL" in msg
    assert "not-a-url-secretish" not in msg
    assert err.value.__cause__ is None  # the pydantic error (with values) is not chained
    assert set(err.value.extra["variables"]) == {"SYNC_TABLE_NAME", "OUTBOUND_QUEUE_URL"}


def test_empty_value_counts_as_missing(monkeypatch):
    monkeypatch.setenv("ADMIN_JWT_SECRET_ARN", "  ")
    with pytest.raises(ConfigurationError, match="ADMIN_JWT_SECRET_ARN"):
        settings.get_auth_settings()


def test_qbo_settings_normalise_base_urls_but_keep_exact_redirect(monkeypatch):
    for k, v in QBO_ENV.items():
        monkeypatch.setenv(k, v)
    qbo = settings.get_qbo_settings()
    assert qbo.qbo_api_base_url == "http://127.0.0.1:8123"
    assert qbo.qbo_minor_version == 75
    assert qbo.oauth_redirect_uri == QBO_ENV["OAUTH_REDIRECT_URI"]
    assert qbo.intuit_discovery_url == QBO_ENV["INTUIT_DISCOVERY_URL"]


def test_empty_redirect_uri_means_derive_it_but_missing_is_an_error(monkeypatch):
    for k, v in {**QBO_ENV, "OAUTH_REDIRECT_URI": ""}.items():
        monkeypatch.setenv(k, v)
    assert settings.get_qbo_settings().oauth_redirect_uri is None
    settings.clear()
    monkeypatch.delenv("OAUTH_REDIRECT_URI")
    with pytest.raises(ConfigurationError, match="OAUTH_REDIRECT_URI"):
        settings.get_qbo_settings()
    settings.clear()
    monkeypatch.setenv("OAUTH_REDIRECT_URI", "ftp://nope")
    with pytest.raises(ConfigurationError, match="OAUTH_REDIRECT_URI"):
        settings.get_qbo_settings()


def test_bad_minor_version_is_a_configuration_error(monkeypatch):
    for k, v in {**QBO_ENV, "QBO_MINOR_VERSION": "latest"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigurationError, match="QBO_MINOR_VERSION"):
        settings.get_qbo_settings()


def test_clear_rereads_the_environment(monkeypatch):
    monkeypatch.setenv("ADMIN_JWT_SECRET_ARN", "arn:one")
    assert settings.get_auth_settings().admin_jwt_secret_arn == "arn:one"
    monkeypatch.setenv("ADMIN_JWT_SECRET_ARN", "arn:two")
    assert settings.get_auth_settings().admin_jwt_secret_arn == "arn:one"
    settings.clear()
    assert settings.get_auth_settings().admin_jwt_secret_arn == "arn:two"


def test_from_env_accepts_an_explicit_mapping():
    assert settings.AuthSettings.from_env({"ADMIN_JWT_SECRET_ARN": "arn:x"}).admin_jwt_secret_arn == "arn:x"


def test_observability_defaults(monkeypatch):
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    assert settings.get_observability_settings().service_name == "qbsync"


def test_core_modules_import_without_any_environment():
    # A clean interpreter with an empty environment: importing must not read settings or build clients.
    code = (
        "import qbsync.settings, qbsync.observability, qbsync.adapters.dynamodb, qbsync.adapters.sqs, "
        "qbsync.adapters.eventbridge, qbsync.adapters.kms, qbsync.adapters.secrets, "
        "qbsync.models.platform_events, qbsync.models.qbsync_events; "
        "from qbsync.observability import tracer; assert not tracer.created"
    )
    importlib.invalidate_caches()
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": "layers/core"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_platform_return_url_is_optional_but_must_be_an_http_url(monkeypatch):
    for k, v in QBO_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PLATFORM_RETURN_URL", raising=False)
    assert settings.get_qbo_settings().platform_return_url is None  # the callback shows the handle
    for value, expected in (
        ("", None),
        ("https://platform.example/qb?tab=1", "https://platform.example/qb?tab=1"),
    ):
        settings.clear()
        monkeypatch.setenv("PLATFORM_RETURN_URL", value)
        assert settings.get_qbo_settings().platform_return_url == expected
    settings.clear()
    monkeypatch.setenv("PLATFORM_RETURN_URL", "javascript:alert(1)")
    with pytest.raises(ConfigurationError, match="PLATFORM_RETURN_URL"):
        settings.get_qbo_settings()


def test_sweep_thresholds_default_to_production_and_are_validated(monkeypatch):
    for name in (
        "SWEEP_BLOCKED_AFTER_SECONDS",
        "SWEEP_RETRY_AFTER_SECONDS",
        "SWEEP_INITIAL_SYNC_STALE_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    defaults = settings.get_sweep_settings()
    assert (defaults.blocked_after_seconds, defaults.retry_after_seconds) == (900, 5400)
    assert defaults.initial_sync_stale_seconds == 5400
    monkeypatch.setenv("SWEEP_BLOCKED_AFTER_SECONDS", "600")
    settings.clear()
    assert settings.get_sweep_settings().blocked_after_seconds == 600
    # below OutboundQueue's own 5 receives at 720 s: the sweep would race the queue's retries
    monkeypatch.setenv("SWEEP_RETRY_AFTER_SECONDS", "1800")
    monkeypatch.setenv("SWEEP_BLOCKED_AFTER_SECONDS", "soon")
    settings.clear()
    with pytest.raises(ConfigurationError) as err:
        settings.get_sweep_settings()
    assert set(err.value.extra["variables"]) == {"SWEEP_BLOCKED_AFTER_SECONDS", "SWEEP_RETRY_AFTER_SECONDS"}
    assert "1800" not in str(err.value) and "soon" not in str(err.value)
