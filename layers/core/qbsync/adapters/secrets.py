"""Secrets Manager adapter: JSON secrets read once per ``max_age`` seconds per container.

Usage::

    from qbsync.adapters.secrets import get_secret_field
    client_secret = get_secret_field(settings.intuit_app_secret_arn, "client_secret")

Errors:

* :class:`~qbsync.errors.ConfigurationError` - the secret does not exist, cannot be read or
  decrypted, is not a JSON object, or lacks the requested key. Messages name the secret ARN and the
  key, never a value.
* :class:`~qbsync.errors.Throttled` / :class:`~qbsync.errors.ServiceUnavailable` - retry later.

Tests call :func:`clear_caches` (or build their own :class:`SecretsReader` with a client and clock).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qbsync.adapters._aws import default_client, translate
from qbsync.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_AGE", "SecretsReader", "clear_caches", "get_secret_field", "get_secret_json"]

DEFAULT_MAX_AGE = 300.0


class SecretsReader:
    """Reads JSON secrets with a per-secret TTL cache.

    Args:
        client: a boto3 Secrets Manager client; default: the container-wide lazy client.
        max_age: seconds a value is reused before it is read again (rotation takes effect then).
        clock: monotonic seconds (tests inject a fake clock instead of sleeping).
    """

    def __init__(
        self,
        client: Any = None,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.max_age = max_age
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client("secretsmanager")
        return self._client

    def get_json(self, secret_id: str, *, force_fetch: bool = False) -> dict[str, Any]:
        """The secret's JSON object (cached ``max_age`` seconds)."""
        if not secret_id:
            raise ConfigurationError("no secret id given (is the *_SECRET_ARN variable set?)")
        now = self._clock()
        with self._lock:
            cached = self._cache.get(secret_id)
        if cached and not force_fetch and now - cached[0] < self.max_age:
            return dict(cached[1])  # a copy: a caller's change must not leak into the cache
        value = self._fetch(secret_id)
        with self._lock:
            self._cache[secret_id] = (now, value)
        return dict(value)

    def get_field(self, secret_id: str, key: str, *, force_fetch: bool = False) -> str:
        """One string field of a JSON secret.

        Raises:
            ConfigurationError: the key is missing or not a non-empty string (names the key, not the value).
        """
        value = self.get_json(secret_id, force_fetch=force_fetch).get(key)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                f"secret {secret_id} has no non-empty string field {key!r}", secret_id=secret_id, key=key
            )
        return value

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def _fetch(self, secret_id: str) -> dict[str, Any]:
        try:
            resp = self.client.get_secret_value(SecretId=secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise translate(
                exc, service="SecretsManager", operation="GetSecretValue", resource=secret_id
            ) from exc
        text = resp.get("SecretString")
        if text is None:
            raise ConfigurationError(
                f"secret {secret_id} is binary; a JSON string is expected", secret_id=secret_id
            )
        try:
            value = json.loads(text)
        except ValueError:
            # `from None`: the decode error quotes the secret text.
            raise ConfigurationError(f"secret {secret_id} is not valid JSON", secret_id=secret_id) from None
        if not isinstance(value, dict):
            raise ConfigurationError(f"secret {secret_id} is not a JSON object", secret_id=secret_id)
        return value


_default_reader: SecretsReader | None = None
_default_lock = threading.Lock()


def _reader() -> SecretsReader:
    global _default_reader
    with _default_lock:
        if _default_reader is None:
            _default_reader = SecretsReader()
        return _default_reader


def get_secret_json(secret_id: str, *, force_fetch: bool = False) -> dict[str, Any]:
    """The JSON object of ``secret_id`` through the container-wide cache (see :class:`SecretsReader`)."""
    return _reader().get_json(secret_id, force_fetch=force_fetch)


def get_secret_field(secret_id: str, key: str, *, force_fetch: bool = False) -> str:
    """One string field of a JSON secret through the container-wide cache."""
    return _reader().get_field(secret_id, key, force_fetch=force_fetch)


def clear_caches() -> None:
    """Forget every cached secret: the next read fetches again (tests; after a rotation).

    Tests that move ``AWS_ENDPOINT_URL`` also call :func:`qbsync.adapters.clear_default_clients`.
    """
    global _default_reader
    with _default_lock:
        _default_reader = None
