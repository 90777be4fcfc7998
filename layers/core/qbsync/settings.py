"""Validated settings, read from the environment through cached getters.

This is the only module of qbsync that reads ``os.environ`` (see docs/contracts.md, "Environment
variables"). Importing it reads nothing: each getter validates its model on first call and caches the
result for the life of the container. Handlers call the getters they need at handler start, so a
missing variable fails the first invocation loudly instead of a random call deep in the domain.

Every getter raises :class:`qbsync.errors.ConfigurationError` naming the missing or invalid
variables - never their values (ARNs and URLs are not secret, but the rule is simpler without
exceptions). Tests change the environment and call :func:`qbsync.wiring.reset` (which calls :func:`clear`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from qbsync.errors import ConfigurationError

__all__ = [
    "AuthSettings",
    "CoreSettings",
    "InitialSyncSettings",
    "ObservabilitySettings",
    "QboSettings",
    "SweepSettings",
    "clear",
    "get_auth_settings",
    "get_core_settings",
    "get_initial_sync_settings",
    "get_observability_settings",
    "get_qbo_settings",
    "get_sweep_settings",
]


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


def _http_url_keep_slash(value: str) -> str:
    # Discovery and redirect URLs are compared verbatim by Intuit: keep them exactly as configured.
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


NonEmpty = Annotated[str, Field(min_length=1)]
BaseUrl = Annotated[str, Field(min_length=1), AfterValidator(_http_url)]
ExactUrl = Annotated[str, Field(min_length=1), AfterValidator(_http_url_keep_slash)]
OptionalExactUrl = Annotated[ExactUrl | None, BeforeValidator(_empty_is_none)]


class _EnvSettings(BaseModel):
    """Base of every settings model: fields are aliased to their environment variable names."""

    model_config = ConfigDict(
        defer_build=True, frozen=True, extra="ignore", str_strip_whitespace=True, populate_by_name=True
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Validate ``environ`` (default: ``os.environ``).

        Raises:
            ConfigurationError: a variable is missing, empty or malformed; the message names the
                variables and what is wrong, never the values.
        """
        source: Mapping[str, Any] = os.environ if environ is None else environ
        try:
            return cls.model_validate(dict(source))
        except ValidationError as exc:
            problems = []
            for err in exc.errors(include_input=False, include_url=False):
                name = ".".join(str(part) for part in err["loc"]) or "?"
                what = "missing" if err["type"] == "missing" else err["msg"]
                problems.append(f"{name} ({what})")
            # `from None`: the pydantic error embeds the offending values, which must not reach logs.
            raise ConfigurationError(
                f"{cls.__name__}: invalid environment: {', '.join(problems)}",
                variables=[p.split(" ", 1)[0] for p in problems],
            ) from None


class ObservabilitySettings(_EnvSettings):
    """Powertools identity. Defaults are safe here: a wrong service name never corrupts data."""

    service_name: NonEmpty = Field("qbsync", alias="POWERTOOLS_SERVICE_NAME")
    metrics_namespace: NonEmpty = Field("qbsync", alias="POWERTOOLS_METRICS_NAMESPACE")
    log_level: NonEmpty = Field("INFO", alias="POWERTOOLS_LOG_LEVEL")


class CoreSettings(_EnvSettings):
    """AWS resources every worker handler uses: tables, bus, queues, the token key, secret ARNs."""

    sync_table_name: NonEmpty = Field(alias="SYNC_TABLE_NAME")
    error_table_name: NonEmpty = Field(alias="ERROR_TABLE_NAME")
    idempotency_table_name: NonEmpty = Field(alias="IDEMPOTENCY_TABLE_NAME")
    event_bus_name: NonEmpty = Field(alias="EVENT_BUS_NAME")
    outbound_queue_url: BaseUrl = Field(alias="OUTBOUND_QUEUE_URL")
    #: the entity-sync worker sends what it cannot understand here at once (qbsync.outbound.dead_letters)
    outbound_dlq_url: BaseUrl = Field(alias="OUTBOUND_DLQ_URL")
    inbound_queue_url: BaseUrl = Field(alias="INBOUND_QUEUE_URL")
    #: the inbound worker sends a notice it cannot understand here at once (qbsync.outbound.dead_letters)
    inbound_dlq_url: BaseUrl = Field(alias="INBOUND_DLQ_URL")
    retry_queue_url: BaseUrl = Field(alias="RETRY_QUEUE_URL")
    #: CDC catch-up runs, one per firm (functions/cdc_catchup: the schedule's fan-out, POST /sync/catch-up)
    catchup_queue_url: BaseUrl = Field(alias="CATCHUP_QUEUE_URL")
    token_kms_key_id: NonEmpty = Field(alias="TOKEN_KMS_KEY_ID")
    intuit_app_secret_arn: NonEmpty = Field(alias="INTUIT_APP_SECRET_ARN")
    state_signing_secret_arn: NonEmpty = Field(alias="STATE_SIGNING_SECRET_ARN")
    admin_jwt_secret_arn: NonEmpty = Field(alias="ADMIN_JWT_SECRET_ARN")


class AuthSettings(_EnvSettings):
    """What the admin REQUEST authorizer needs (and nothing else, so it can run with a small env)."""

    admin_jwt_secret_arn: NonEmpty = Field(alias="ADMIN_JWT_SECRET_ARN")


class QboSettings(_EnvSettings):
    """Where QuickBooks / Intuit OAuth live (production, sandbox or the local simulator)."""

    intuit_discovery_url: ExactUrl = Field(alias="INTUIT_DISCOVERY_URL")
    qbo_api_base_url: BaseUrl = Field(alias="QBO_API_BASE_URL")
    qbo_app_base_url: BaseUrl = Field(alias="QBO_APP_BASE_URL")
    qbo_minor_version: int = Field(alias="QBO_MINOR_VERSION", ge=1)
    #: ``None`` when the variable is set but empty (template default): the OAuth handler then uses the
    #: API's own ``/oauth/callback`` URL. The variable itself must exist (no silent default).
    oauth_redirect_uri: OptionalExactUrl = Field(alias="OAUTH_REDIRECT_URI")
    #: Where the OAuth callback sends the owner's browser once the grant is parked: the platform's page that
    #: completes the connection (``POST /connection/complete`` with the user's JWT and the ``handle`` query
    #: parameter added to this URL). Unset or empty: the callback shows the handle on its own page.
    platform_return_url: OptionalExactUrl = Field(None, alias="PLATFORM_RETURN_URL")


class InitialSyncSettings(_EnvSettings):
    """The initial sync (PRODUCT.md F): where the platform's snapshots land, and (admin API only) the state
    machine to start again. Separate from :class:`CoreSettings` so functions that never touch it need
    neither variable."""

    snapshot_bucket_name: NonEmpty = Field(alias="SNAPSHOT_BUCKET_NAME")
    state_machine_arn: str | None = Field(None, alias="INITIAL_SYNC_STATE_MACHINE_ARN")


class SweepSettings(_EnvSettings):
    """The scheduled resync's record sweep (qbsync.reconcile.sweep, docs/operations.md "Scheduled resync"):
    how long a record rests before the sweep runs it again. Defaults are the production values; each is
    bounded so that a typo cannot make the sweep race the event-driven path (or never run)."""

    #: a record blocked (or skipped behind a prerequisite) whose prerequisites are all in QuickBooks is run
    #: again once both it and its last prerequisite rested this long (a release in flight takes seconds)
    blocked_after_seconds: int = Field(900, alias="SWEEP_BLOCKED_AFTER_SECONDS", ge=60, le=86400)
    #: a record left not_synced / syncing under a dead lease is run again once untouched this long; at least
    #: OutboundQueue's 5 receives at 720 s (3600 s), so its own retries are over
    retry_after_seconds: int = Field(5400, alias="SWEEP_RETRY_AFTER_SECONDS", ge=3600, le=7 * 86400)
    #: an initial sync that says running but whose item has not moved this long defers no sweep
    initial_sync_stale_seconds: int = Field(
        5400, alias="SWEEP_INITIAL_SYNC_STALE_SECONDS", ge=900, le=7 * 86400
    )


@lru_cache(maxsize=1)
def get_observability_settings() -> ObservabilitySettings:
    """Powertools service name, metrics namespace, log level (defaults when unset)."""
    return ObservabilitySettings.from_env()


@lru_cache(maxsize=1)
def get_core_settings() -> CoreSettings:
    """Tables, bus, queues, KMS key and secret ARNs. Raises ConfigurationError naming missing variables."""
    return CoreSettings.from_env()


@lru_cache(maxsize=1)
def get_auth_settings() -> AuthSettings:
    """The admin JWT secret ARN. Raises ConfigurationError when it is missing."""
    return AuthSettings.from_env()


@lru_cache(maxsize=1)
def get_qbo_settings() -> QboSettings:
    """Intuit/QBO URLs and minor version. Raises ConfigurationError naming missing variables."""
    return QboSettings.from_env()


@lru_cache(maxsize=1)
def get_initial_sync_settings() -> InitialSyncSettings:
    """The snapshot bucket (and the state machine's ARN where set). Raises ConfigurationError when missing."""
    return InitialSyncSettings.from_env()


@lru_cache(maxsize=1)
def get_sweep_settings() -> SweepSettings:
    """The record sweep's thresholds (defaults when unset). Raises ConfigurationError for a bad value."""
    return SweepSettings.from_env()


def clear() -> None:
    """Forget every cached settings object (tests that change the environment call this)."""
    for getter in (
        get_observability_settings,
        get_core_settings,
        get_auth_settings,
        get_qbo_settings,
        get_initial_sync_settings,
        get_sweep_settings,
    ):
        getter.cache_clear()
