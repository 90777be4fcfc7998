"""Intuit's webhooks: ``POST /webhooks/intuit`` (no admin JWT: the ``intuit-signature`` authenticates).

Thin: the raw body and the signature header out of the API Gateway event, one call of
:meth:`qbsync.inbound.intake.WebhookIntake.receive` (verify → read by shape → split per realm → drop
unknown realms → ``InboundQueue``), then the answer (docs/webhooks.md):

======  ============================================================================================
200     verified and read; every notice of a known realm is on InboundQueue (body: counts and the
        notification ids, no payload content)
400     signed but unreadable (not JSON, neither shape, too many events, a field missing): the message
        names the field; nothing queued
401     ``intuit-signature`` missing, wrong, or no verifier token configured; nothing read or queued
413     the body is larger than 1 MiB (checked before the HMAC)
503     the realm lookup or SQS failed: Intuit retries the same bytes (same notification ids)
500     a bug or a missing setting: JSON with the request id
======  ============================================================================================

Cold start is on Intuit's 3 s budget, so this handler does not import :mod:`qbsync.wiring` (which builds
every service of every function, about 270 ms of imports): like the authorizer, it assembles its three
adapters from the settings itself (:func:`_intake`). No tracer either (building Powertools' Tracer costs
130-600 ms at cold start; Lambda's active tracing still records the invocation).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.kms import TokenCipher
from qbsync.adapters.secrets import get_secret_json
from qbsync.adapters.sqs import SqsSender
from qbsync.errors import BadRequest, ConfigurationError, QbsyncError, RetryableError, Unauthorized
from qbsync.inbound.intake import VerifierToken, WebhookIntake, intuit_signature, raw_body, verifier_reader
from qbsync.lazy import Lazy
from qbsync.observability import logger, metrics
from qbsync.repositories.connections import ConnectionsRepository
from qbsync.settings import get_core_settings


def _build() -> WebhookIntake:
    core = get_core_settings()
    app_secret = core.intuit_app_secret_arn
    return WebhookIntake(
        verifier=VerifierToken(verifier_reader(lambda force: get_secret_json(app_secret, force_fetch=force))),
        # only firms_of_realms is called (a BatchGetItem of realm-owner items): the token key is never used
        realms=ConnectionsRepository(DynamoTable(core.sync_table_name), TokenCipher(core.token_kms_key_id)),
        queue=SqsSender(core.inbound_queue_url),
    )


#: the container's intake, built on the first request (a missing setting fails that request, loudly)
_intake = Lazy(_build)


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def _refused(err: QbsyncError, status: int, metric: str) -> dict[str, Any]:
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    logger.warning("webhook refused", extra={"status": status, **err.context(), "error": err.message})
    return _answer(status, {"error": err.code, "message": err.message})


def _failed(err: QbsyncError, status: int, context: Any) -> dict[str, Any]:
    metrics.add_metric(name="WebhookIntakeFailed", unit=MetricUnit.Count, value=1)
    logger.error("webhook not accepted", extra={"status": status, **err.context(), "error": err.message})
    request_id = getattr(context, "aws_request_id", None)
    return _answer(status, {"error": err.code, "message": "try again later", "request_id": request_id})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        result = _intake.get().receive(raw_body(event), intuit_signature(event))
    except Unauthorized as err:
        return _refused(err, 401, "WebhookSignatureRefused")
    except BadRequest as err:
        return _refused(err, err.http_status, "WebhookBodyRefused")
    except RetryableError as err:
        return _failed(err, 503, context)
    except ConfigurationError as err:
        return _failed(err, 500, context)
    except QbsyncError as err:  # InfrastructureError: SQS refused a message it can never take
        return _failed(err, 500, context)
    except Exception:
        logger.exception("webhook intake: unhandled error")
        metrics.add_metric(name="WebhookIntakeFailed", unit=MetricUnit.Count, value=1)
        request_id = getattr(context, "aws_request_id", None)
        return _answer(
            500, {"error": "internal_error", "message": "internal error", "request_id": request_id}
        )
    metrics.add_metric(name="WebhookNoticesQueued", unit=MetricUnit.Count, value=len(result.notices))
    if result.unknown_realms:
        metrics.add_metric(
            name="WebhookUnknownRealms", unit=MetricUnit.Count, value=len(result.unknown_realms)
        )
    if result.skipped:
        metrics.add_metric(name="WebhookEventsSkipped", unit=MetricUnit.Count, value=len(result.skipped))
    return _answer(200, result.answer())
