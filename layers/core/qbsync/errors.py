"""The one error tree of qbsync.

Every error says what the caller can do about it, by its class:

* :class:`RetryableError` - try again later (throttling, 5xx, timeouts, a lease held by someone else).
* :class:`DataError` - the firm's data must be fixed first (validation, not found, duplicate, business
  rule). Only this lands in a firm's error center; never raise it for a bug or a deployment mistake.
* :class:`ReconnectRequired` - the firm must reconnect QuickBooks (revoked/expired authorization).
* :class:`UncertainOutcome` - a write may or may not have happened (its response was lost);
  look it up before any new attempt.
* :class:`ConfigurationError` - the deployment is wrong (missing setting or secret); an operator fixes it.
* :class:`InfrastructureError` - a service qbsync calls (AWS, QuickBooks) rejected a request as invalid or
  answered outside its documented shape: not retryable, not the firm's data; an operator reads the log.
* ``ValueError`` / ``TypeError`` (not qbsync errors) - the caller passed bad arguments: a bug.
* :class:`NotFound`, :class:`Forbidden`, :class:`Conflict`, :class:`BadRequest` - caller errors
  of the admin API.

Attributes carry the context an operator needs (firm, realm, entity, QBO code, intuit_tid); never tokens
or personal data. ``str(err)`` is safe to log and to show. ``maybe_applied`` (any error of a write): an
earlier attempt of the write may have reached QuickBooks, so it may only be resent with the same
``requestid`` (or after looking the object up); :class:`UncertainOutcome` always says so.
"""

from __future__ import annotations

from typing import Any


class QbsyncError(Exception):
    """Base of every error qbsync raises on purpose."""

    #: HTTP status an API answers with when this error reaches the edge.
    http_status: int = 500
    #: Stable machine-readable code (API bodies, error-log entries, metrics dimensions).
    code: str = "internal_error"
    #: A write this error is about may have been applied by an earlier attempt (see the module doc).
    maybe_applied: bool = False

    def __init__(  # noqa: PLR0913
        self,
        message: str,
        *,
        firm_id: str | None = None,
        realm_id: str | None = None,
        entity: str | None = None,
        entity_id: str | None = None,
        qbo_code: str | None = None,
        qbo_detail: str | None = None,
        intuit_tid: str | None = None,
        http_status: int | None = None,
        maybe_applied: bool | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.firm_id = firm_id
        self.realm_id = realm_id
        self.entity = entity
        self.entity_id = entity_id
        self.qbo_code = qbo_code
        self.qbo_detail = qbo_detail
        self.intuit_tid = intuit_tid
        if http_status is not None:
            self.http_status = http_status
        if maybe_applied is not None:
            self.maybe_applied = maybe_applied
        self.extra = extra

    def context(self) -> dict[str, Any]:
        """Loggable context (no secrets): the non-empty attributes."""
        fields = {
            "error_code": self.code,
            "firm_id": self.firm_id,
            "realm_id": self.realm_id,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "qbo_code": self.qbo_code,
            "intuit_tid": self.intuit_tid,
            "maybe_applied": True if self.maybe_applied else None,
        }
        fields.update(self.extra)
        return {k: v for k, v in fields.items() if v is not None}


# --- what the caller can do -------------------------------------------------------------------------


class RetryableError(QbsyncError):
    """Transient: retry later with backoff (SQS visibility / Step Functions Retry for long waits)."""

    code = "retryable"
    http_status = 503

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Throttled(RetryableError):
    """QuickBooks (429 / ThrottleExceeded 3001) or AWS throttled us."""

    code = "throttled"
    http_status = 429


class ServiceUnavailable(RetryableError):
    """5xx or a network failure before anything was written."""

    code = "service_unavailable"


class LeaseHeld(RetryableError):
    """Another worker holds the lease (e.g. the per-realm token refresh); try again shortly."""

    code = "lease_held"


class UncertainOutcome(QbsyncError):
    """A write was sent but its outcome is unknown (timeout / 5xx / dropped response).

    Never blindly resend: look the object up first (requestid replay or a query on business keys).
    """

    code = "uncertain_outcome"
    http_status = 503
    maybe_applied = True


class ReconnectRequired(QbsyncError):
    """The QuickBooks authorization is revoked, expired or invalid: the firm owner must reconnect."""

    code = "reconnect_required"
    http_status = 409


class DataError(QbsyncError):
    """The firm's data must change before a retry can succeed (mapping rules, QBO validation / business rule
    faults). It is what lands in the firm's error center: never raise it for a bug (ValueError/TypeError), a
    deployment mistake (ConfigurationError) or a request a service rejects (InfrastructureError)."""

    code = "data_error"
    http_status = 422


class QboValidationError(DataError):
    """QBO rejected the request (400 ValidationFault): duplicate name, stale SyncToken, closed books, …"""

    code = "qbo_validation"


class QboObjectNotFound(DataError):
    """QBO says the object does not exist or was deleted (610)."""

    code = "qbo_object_not_found"
    http_status = 404


class StaleObject(DataError):
    """Stale SyncToken (5010): re-read, re-check and resend."""

    code = "stale_object"
    http_status = 409


class ObjectMissing(DataError):
    """An object qbsync was told to read does not exist (an S3 key of a snapshot or a plan): the writer of
    that object must write it (``err.extra["key"]`` names it)."""

    code = "object_missing"
    http_status = 404


class SnapshotInvalid(DataError):
    """The platform's snapshot of a firm cannot be used as it is (docs/events/snapshot.md): a manifest that
    does not parse or names keys outside the run's prefix, a missing file, a file whose sha256, line count or
    money total differs from its manifest. The message names the problem and the field, never a value; the
    platform must export the snapshot again. (A single bad *line* is not this: it becomes a record with a
    problem.)"""

    code = "snapshot_invalid"


class ConfigurationError(QbsyncError):
    """Deployment is wrong: missing env setting or secret, bad ARN. An operator must fix it."""

    code = "configuration_error"
    http_status = 500


class InfrastructureError(QbsyncError):
    """A service qbsync calls rejected a request as invalid (AWS validation, serialization, size limits, a
    sender fault) or answered outside its documented shape (malformed QuickBooks reference data).

    Sending the same request again fails the same way and nothing the firm changes fixes it: the code or the
    deployment must change. Not retryable, never an error-center entry; the API answers a 500."""

    code = "infrastructure_error"
    http_status = 500


# --- admin API caller errors ------------------------------------------------------------------------


class BadRequest(QbsyncError):
    code = "bad_request"
    http_status = 400


class MalformedMessage(BadRequest):
    """A queue message body qbsync cannot understand (:mod:`qbsync.models.messages`).

    ``what`` names what the body was read as (``platform event``, ``sync command``, ``retry message``).
    The message names field paths, never values; ``code`` and :meth:`context` are those of BadRequest.
    """

    def __init__(self, message: str, *, what: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.what = what


class Unauthorized(QbsyncError):
    code = "unauthorized"
    http_status = 401


class Forbidden(QbsyncError):
    code = "forbidden"
    http_status = 403


class NotFound(QbsyncError):
    code = "not_found"
    http_status = 404


class Conflict(QbsyncError):
    """A conditional write lost (someone else changed the record), or the request conflicts with state."""

    code = "conflict"
    http_status = 409


class TooManyRequests(QbsyncError):
    code = "too_many_requests"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
