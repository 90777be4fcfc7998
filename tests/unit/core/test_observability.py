"""Observability: redaction of every log record, context keys, the lazy tracer."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aws_lambda_powertools import Logger
from qbsync import observability
from qbsync.observability import LazyTracer, RedactingFormatter, redact

SECRETS = {
    "access_token": "AT-abcdef123456",
    "refresh_token": "RT-AB11xyz987",
    "client_secret": "cs-topsecret",
    "auth_code": "OAUTHCODE42",
    "email": "jane.doe@example.com",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-part",
    "verifier": "verifier-tok-77",
}


@pytest.fixture
def captured():
    """A logger with qbsync's formatter writing to a buffer (same formatter as qbsync.observability)."""
    stream = io.StringIO()
    log = Logger(
        service="redaction-test", stream=stream, logger_formatter=RedactingFormatter(), level="DEBUG"
    )
    return log, stream


def _stream_handler() -> logging.StreamHandler:
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    return handler


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_secret_shape_is_scrubbed_from_the_output(captured):
    log, stream = captured
    log.info(
        {
            "headers": {"Authorization": f"Bearer {SECRETS['jwt']}", "Content-Type": "application/json"},
            "token_response": {
                "access_token": SECRETS["access_token"],
                "refresh_token": SECRETS["refresh_token"],
            },
            "app": {"client_id": "public-id", "client_secret": SECRETS["client_secret"]},
            "callback": f"https://api.example/oauth/callback?code={SECRETS['auth_code']}&state=s1&realmId=123",
            "form": f"grant_type=refresh_token&refresh_token={SECRETS['refresh_token']}",
            "customer": {
                "PrimaryEmailAddr": {"Address": SECRETS["email"]},
                "note": f"mail {SECRETS['email']}",
            },
            "raw_body": json.dumps({"access_token": SECRETS["access_token"], "expires_in": 3600}),
            "webhook": {"webhook_verifier_token": SECRETS["verifier"]},
        },
        extra={"query": {"code": SECRETS["auth_code"], "state": "s1"}, "basic": "Basic Y2xpZW50OnNlY3JldA=="},
    )
    log.warning("calling %s", f"https://x/?code={SECRETS['auth_code']}")
    try:
        raise RuntimeError(f"token exchange failed for {SECRETS['email']} with {SECRETS['jwt']}")
    except RuntimeError:
        log.exception("oops")

    out = stream.getvalue()
    for name, secret in SECRETS.items():
        assert secret not in out, name
    assert "Y2xpZW50OnNlY3JldA==" not in out
    first = _lines(stream)[0]
    # what is not secret survives, so logs stay useful
    assert first["message"]["app"]["client_id"] == "public-id"
    assert first["message"]["headers"]["Content-Type"] == "application/json"
    assert "state=s1" in first["message"]["callback"] and "realmId=123" in first["message"]["callback"]
    assert first["query"]["state"] == "s1"
    assert '"expires_in": 3600' in first["message"]["raw_body"]


def test_redact_does_not_mutate_its_input():
    original = {"access_token": "x", "nested": [{"refresh_token": "y"}]}
    assert redact(original) == {"access_token": "[REDACTED]", "nested": [{"refresh_token": "[REDACTED]"}]}
    assert original == {"access_token": "x", "nested": [{"refresh_token": "y"}]}


def test_shared_logger_uses_the_redacting_formatter_and_carries_context_keys():
    stream = io.StringIO()
    handler = _stream_handler()
    old_stream = handler.setStream(stream)
    try:
        with observability.context_keys(firm_id="firm-1", realm_id="realm-9", correlation_id="corr-7"):
            observability.logger.info("exchanging", extra={"refresh_token": "RT-secret-value"})
        observability.logger.info("after")
    finally:
        handler.setStream(old_stream)
    inside, after = _lines(stream)
    assert (inside["firm_id"], inside["realm_id"], inside["correlation_id"]) == (
        "firm-1",
        "realm-9",
        "corr-7",
    )
    assert inside["refresh_token"] == "[REDACTED]"
    assert "firm_id" not in after and "correlation_id" not in after


def test_lazy_tracer_builds_the_tracer_on_first_call_only():
    built: list[object] = []

    class FakeTracer:
        def capture_lambda_handler(self, fn, capture_response=None, capture_error=None):
            def wrapped(event, context, **kw):
                return ("traced", fn(event, context, **kw))

            return wrapped

        def capture_method(self, fn, capture_response=None, capture_error=None):
            return lambda *a, **k: ("method", fn(*a, **k))

        def put_annotation(self, key, value):
            return (key, value)

    def factory():
        built.append(1)
        return FakeTracer()

    tracer = LazyTracer(factory)

    @tracer.capture_lambda_handler
    def handler(event, context):
        return event["n"] + 1

    @tracer.capture_method(capture_response=False)
    def work(x):
        return x * 2

    assert not tracer.created and built == []
    assert handler({"n": 1}, None) == ("traced", 2)
    assert work(3) == ("method", 6)
    assert tracer.put_annotation("firm_id", "f") == ("firm_id", "f")
    assert built == [1]  # one tracer, built lazily


def test_shared_tracer_is_not_built_at_import():
    assert isinstance(observability.tracer, LazyTracer)
    assert logging.getLogger(observability.logger.name).handlers  # the logger itself is ready


def test_shared_logger_does_not_propagate_raw_records_to_the_root_logger():
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record)

    root_handler = Collect()
    logging.getLogger().addHandler(root_handler)
    handler = _stream_handler()
    old_stream = handler.setStream(io.StringIO())
    try:
        observability.logger.info({"access_token": "raw-secret"})
        Logger(service=observability.logger.service, child=True).info("from a child module")
    finally:
        handler.setStream(old_stream)
        logging.getLogger().removeHandler(root_handler)
    assert seen == []


def test_lazy_tracer_wraps_the_real_powertools_tracer(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracer = LazyTracer()

    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event, context):
        return {"ok": event["x"]}

    @tracer.capture_method
    def helper(a, b=1):
        return a + b

    assert not tracer.created
    assert handler({"x": 1}, None) == {"ok": 1}
    assert helper(2, b=3) == 5
    assert tracer.created
    from aws_lambda_powertools import Tracer

    assert isinstance(tracer.get(), Tracer)
