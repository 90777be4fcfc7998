"""Logger, tracer and metrics for every qbsync handler, plus context keys and log redaction.

Use the shared instances::

    from qbsync.observability import logger, metrics, tracer, bind_context

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event, context): ...

* ``logger`` is a Powertools ``Logger`` whose formatter scrubs secrets from every record
  (:func:`redact`): OAuth tokens, ``Authorization`` headers, client secrets, verifier tokens, OAuth
  ``code`` query/form parameters, JWT-looking strings and email addresses - in the message, in extra
  keys, in appended keys and in exception text. It is a safety net: never log secrets on purpose.
* ``tracer`` is a lazy proxy: ``Tracer()`` costs 130-600 ms at cold start (docs: LOCAL-AWS.md), so the
  real tracer is built on the first traced call, not at import. Decorators work as on ``Tracer``.
* ``metrics`` is a Powertools ``Metrics`` (cheap once Logger is imported).

Service name, namespace and level come from :func:`qbsync.settings.get_observability_settings`.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from qbsync.settings import get_observability_settings

if TYPE_CHECKING:  # pragma: no cover - typing only; importing Tracer is the cost we avoid
    from aws_lambda_powertools import Tracer

__all__ = [
    "REDACTED",
    "RedactingFormatter",
    "bind_context",
    "clear_context",
    "context_keys",
    "logger",
    "metrics",
    "redact",
    "tracer",
]

REDACTED = "[REDACTED]"

# Keys whose values are always secret or personal, compared after lower-casing and dropping "-"/"_".
# `code` is the OAuth authorization code (our own error dicts use `error_code` / `qbo_code`).
_SENSITIVE_KEYS = frozenset(
    k.replace("_", "").replace("-", "")
    for k in (
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "tokens",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "client_secret",
        "secret",
        "secret_string",
        "password",
        "verifier_token",
        "webhook_verifier_token",
        "intuit-signature",
        "signing_key",
        "private_key",
        "ciphertext",
        "encrypted_access_token",
        "encrypted_refresh_token",
        "code",
        "email",
        "email_address",
        "primary_email_addr",
        "primaryemailaddr",
    )
)

_SECRET_PARAM_NAMES = (
    r"code|access_token|refresh_token|id_token|token|client_secret|client_assertion|password|"
    r"verifier_token|webhook_verifier_token"
)
_STRING_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values inside free text.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), r"\1 " + REDACTED),
    # Query strings and form bodies: ?code=..&state=..  /  grant_type=refresh_token&refresh_token=...
    (
        re.compile(rf"(?<![A-Za-z0-9_])({_SECRET_PARAM_NAMES})=[^&\s\"',;]+", re.IGNORECASE),
        r"\1=" + REDACTED,
    ),
    # JSON or repr text: "access_token": "..."  /  'refresh_token': '...'
    (
        re.compile(
            rf"""(["']({_SECRET_PARAM_NAMES}|authorization|secret)["']\s*:\s*["'])[^"']*""",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
    # JWT / JWE (Intuit access tokens, admin JWTs).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_.-]+"), REDACTED),
    # Email addresses (client personal data).
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[REDACTED_EMAIL]"),
)

_MAX_DEPTH = 12


def _is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("_", "").replace("-", "") in _SENSITIVE_KEYS


def _redact_text(text: str) -> str:
    for pattern, replacement in _STRING_RULES:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """Return a copy of ``value`` with secrets and personal data replaced.

    Dict values under sensitive keys are replaced whole; every string is scanned for tokens,
    Authorization values, secret query/form parameters, JWTs and emails. Containers are copied,
    never mutated (the caller's objects may still be needed).
    """
    if _depth > _MAX_DEPTH:
        return REDACTED  # something this deep in a log line is a mistake; do not risk it
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if _is_sensitive_key(k) and v is not None else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter that runs :func:`redact` over the whole record before serializing.

    Objects JSON cannot encode (exceptions in ``stack_trace``, UUIDs, datetimes, ...) are turned into
    text by ``json_default`` *after* :func:`redact` ran, so that text is scanned too.
    """

    def __init__(self, json_default: Callable[[Any], Any] | None = None, **kwargs: Any) -> None:
        to_text = json_default or str

        def redacting_default(obj: Any) -> Any:
            return redact(to_text(obj))

        super().__init__(json_default=redacting_default, **kwargs)

    def serialize(self, log: Any) -> str:
        return super().serialize(log=redact(log))


def _build_logger() -> Logger:
    settings = get_observability_settings()
    log = Logger(
        service=settings.service_name,
        level=settings.log_level,
        logger_formatter=RedactingFormatter(utc=True),
    )
    # Records must leave only through the redacting handler: the Lambda runtime's root handler
    # would print the raw record (secrets included) a second time.
    log._logger.propagate = False
    return log


logger: Logger = _build_logger()
metrics: Metrics = Metrics(
    namespace=get_observability_settings().metrics_namespace,
    service=get_observability_settings().service_name,
)


class LazyTracer:
    """A ``Tracer`` stand-in that creates the real one on first use.

    ``capture_lambda_handler`` and ``capture_method`` can decorate at import time; the tracer is
    built when the decorated function first runs. Any other attribute (``put_annotation``,
    ``put_metadata``, ``provider``, ...) builds it and delegates.
    """

    def __init__(self, factory: Callable[[], Tracer] | None = None) -> None:
        self._factory = factory or _default_tracer
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        """Whether the real Tracer exists yet (for tests and cold-start diagnostics)."""
        return self._tracer is not None

    def get(self) -> Tracer:
        """The real Powertools Tracer (created once)."""
        if self._tracer is None:
            with self._lock:
                if self._tracer is None:
                    self._tracer = self._factory()
        return self._tracer

    def capture_lambda_handler(
        self,
        lambda_handler: Callable[..., Any] | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        if lambda_handler is None:
            return functools.partial(
                self.capture_lambda_handler, capture_response=capture_response, capture_error=capture_error
            )
        handler_fn = lambda_handler
        traced: Callable[..., Any] | None = None

        @functools.wraps(handler_fn)
        def decorate(event: Any, context: Any, **kwargs: Any) -> Any:
            nonlocal traced
            if traced is None:
                traced = self.get().capture_lambda_handler(
                    handler_fn, capture_response=capture_response, capture_error=capture_error
                )
            return traced(event, context, **kwargs)

        return decorate

    def capture_method(
        self,
        method: Callable[..., Any] | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        if method is None:
            return functools.partial(
                self.capture_method, capture_response=capture_response, capture_error=capture_error
            )
        if (
            inspect.iscoroutinefunction(method)
            or inspect.isgeneratorfunction(method)
            or inspect.isasyncgenfunction(method)
            or hasattr(method, "__wrapped__")
        ):
            # Tracer picks its wrapper by the function's kind; for these, decorate eagerly.
            real: Any = self.get()  # Tracer's overloads do not cover (method, options) together
            return real.capture_method(method, capture_response=capture_response, capture_error=capture_error)
        fn = method
        traced: Callable[..., Any] | None = None

        @functools.wraps(fn)
        def decorate(*args: Any, **kwargs: Any) -> Any:
            nonlocal traced
            if traced is None:
                real: Any = self.get()
                traced = real.capture_method(
                    fn, capture_response=capture_response, capture_error=capture_error
                )
            return traced(*args, **kwargs)

        return decorate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def _default_tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service=get_observability_settings().service_name)


tracer = LazyTracer()

_CONTEXT_KEYS = ("firm_id", "realm_id", "correlation_id")


def bind_context(
    *, firm_id: str | None = None, realm_id: str | None = None, correlation_id: str | None = None
) -> None:
    """Append firm/realm/correlation ids to every following log line of this invocation.

    ``None`` leaves a key as it is. Handlers decorated with ``inject_lambda_context(clear_state=True)``
    start each invocation clean; workers handling several records use :func:`context_keys` instead.
    """
    keys = {"firm_id": firm_id, "realm_id": realm_id}
    logger.append_keys(**{k: v for k, v in keys.items() if v is not None})
    if correlation_id is not None:
        logger.set_correlation_id(correlation_id)


def clear_context() -> None:
    """Remove the firm/realm/correlation keys (e.g. between SQS records)."""
    logger.remove_keys(list(_CONTEXT_KEYS))


@contextmanager
def context_keys(
    *, firm_id: str | None = None, realm_id: str | None = None, correlation_id: str | None = None
) -> Iterator[None]:
    """Bind firm/realm/correlation ids for the duration of a block (one SQS record, one event)."""
    bind_context(firm_id=firm_id, realm_id=realm_id, correlation_id=correlation_id)
    try:
        yield
    finally:
        clear_context()
