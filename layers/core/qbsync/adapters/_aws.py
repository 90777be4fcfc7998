"""Shared plumbing of the AWS adapters: lazy default clients and the one ClientError translation."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

from qbsync.errors import (
    ConfigurationError,
    Conflict,
    InfrastructureError,
    QbsyncError,
    RetryableError,
    ServiceUnavailable,
    Throttled,
)

_client_lock = threading.Lock()

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "KMSRequestThrottled",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "InternalServiceError",
        "InternalServiceErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSInternalException",
        "KeyUnavailableException",
        "DependencyTimeoutException",
    }
)
CONFIGURATION_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "NotFoundException",
        "DisabledException",
        "KMSInvalidStateException",
        "InvalidKeyUsageException",
        "IncorrectKeyException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "DecryptionFailure",
    }
)


@cache
def default_client(service_name: str) -> Any:
    """The container-wide boto3 client of ``service_name``, created on first use.

    boto3 reads region, credentials and ``AWS_ENDPOINT_URL`` (moto locally) from its own environment.
    Standard retry mode: botocore retries throttling and 5xx of whole calls; the adapters only retry
    the entries a batch call reports as failed.
    """
    import boto3
    from botocore.config import Config

    # 64 pooled connections: the bulk path runs a chunk on up to 30 threads sharing this client, which
    # botocore's default pool of 10 made open and drop a connection for most of their calls
    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=5,
        read_timeout=20,
        max_pool_connections=64,
    )
    # Client creation on the shared default session is not thread-safe.
    with _client_lock:
        return boto3.session.Session().client(service_name, config=config)


def clear_default_clients() -> None:
    """Forget the container-wide clients (tests that move ``AWS_ENDPOINT_URL`` to another moto server)."""
    default_client.cache_clear()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, *, service: str, operation: str, resource: str) -> QbsyncError:
    """Map a botocore failure to the qbsync error tree (the caller raises it ``from exc``).

    The message names the service, operation, resource (table, queue, bus, key, secret ARN - never
    data) and the AWS error code. AWS error messages are not copied: some echo request values.
    """
    where = f"{service} {operation} on {resource}"
    if isinstance(exc, ClientError):
        code = error_code(exc)
        meta = exc.response.get("ResponseMetadata", {})
        extra = {"aws_error_code": code, "aws_request_id": meta.get("RequestId")}
        status = int(meta.get("HTTPStatusCode") or 0)
        if code == "ConditionalCheckFailedException":
            return Conflict(f"{where}: condition check failed", **extra)
        if code == "TransactionConflictException":
            return RetryableError(f"{where}: conflicting concurrent transaction", **extra)
        if code in THROTTLING_CODES:
            return Throttled(f"{where}: throttled ({code})", **extra)
        if code in UNAVAILABLE_CODES or status >= 500:
            return ServiceUnavailable(f"{where}: service error ({code or status})", **extra)
        if code in CONFIGURATION_CODES:
            return ConfigurationError(
                f"{where}: {code} (check the resource name, key and permissions)", **extra
            )
        if code in {
            "ValidationException",
            "InvalidParameterValue",
            "InvalidParameterException",
            "SerializationException",
            "ItemCollectionSizeLimitExceededException",
        }:
            return InfrastructureError(f"{where}: request rejected ({code})", **extra)
        return QbsyncError(f"{where}: unexpected AWS error ({code or status})", **extra)
    if isinstance(exc, NoCredentialsError | NoRegionError):
        return ConfigurationError(f"{where}: AWS credentials or region are not configured")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | EndpointConnectionError | ConnectionError):
        return ServiceUnavailable(f"{where}: network failure ({type(exc).__name__})")
    if isinstance(exc, ParamValidationError):
        # botocore's message echoes the offending value: keep only the fact.
        return InfrastructureError(f"{where}: invalid request parameters")
    if isinstance(exc, BotoCoreError):
        return ServiceUnavailable(f"{where}: client failure ({type(exc).__name__})")
    return QbsyncError(f"{where}: unexpected failure ({type(exc).__name__})")
