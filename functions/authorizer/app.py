"""REQUEST authorizer of AdminApi: verifies ``Authorization: Bearer <JWT>`` (docs/contracts.md).

The JWT is HS256-signed with the ``ADMIN_JWT_SECRET_ARN`` key (``{"key"}``) and must carry ``iss=platform``,
``aud=qbsync-admin``, ``exp``, ``sub`` (user id), ``firm_id`` and ``role`` (owner | admin | staff);
``firm_id`` and ``sub`` must match the documented id patterns (:func:`qbsync.auth.claims_problem`).
A valid token gets an IAM Allow policy on every method of this API stage (so API Gateway's authorizer
cache serves the caller's other routes) and the context ``{firm_id, user_id, role}`` that handlers read
through :func:`qbsync.auth.caller_from_event`. Anything else raises ``Exception("Unauthorized")``, which
API Gateway turns into a 401. The token is never logged.
"""

from __future__ import annotations

import re
from typing import Any

import jwt
from qbsync.auth import claims_problem
from qbsync.errors import ConfigurationError
from qbsync.observability import logger

ISSUER = "platform"
AUDIENCE = "qbsync-admin"
_METHOD_ARN = re.compile(r"^(arn:[^:]+:execute-api:[^:]+:[^:]+:[^/]+/[^/]+)/")
_MAX_TOKEN_LENGTH = 8192


class _Refused(Exception):
    """Why a request is refused (logged; never the token)."""


def _signing_key() -> str:
    from qbsync.adapters.secrets import get_secret_field
    from qbsync.settings import get_auth_settings

    return get_secret_field(get_auth_settings().admin_jwt_secret_arn, "key")


def _bearer_token(event: dict[str, Any]) -> str:
    headers = event.get("headers") or {}
    values = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        raise _Refused("missing or repeated Authorization header")
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _Refused("Authorization is not a Bearer token")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise _Refused("bearer token too long")
    return token


def _claims(token: str, key: str) -> dict[str, str]:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "sub"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise _Refused(f"invalid token ({type(exc).__name__})") from None
    firm_id, user_id, role = claims.get("firm_id"), claims.get("sub"), claims.get("role")
    problem = claims_problem(firm_id, user_id, role)
    if problem is not None:  # every claim passed on to the handlers matches its documented pattern
        raise _Refused(f"token claim refused: {problem}")
    return {"firm_id": str(firm_id), "user_id": str(user_id), "role": str(role)}


def authorize(event: dict[str, Any], key: str) -> dict[str, Any]:
    """The authorizer response for ``event``. Raises ``Exception("Unauthorized")`` when not allowed."""
    try:
        match = _METHOD_ARN.match(str(event.get("methodArn") or ""))
        if match is None:
            raise _Refused("malformed methodArn")
        claims = _claims(_bearer_token(event), key)
    except _Refused as refused:
        logger.info("admin request refused", extra={"reason": str(refused)})
        raise Exception("Unauthorized") from None  # exactly what API Gateway maps to a 401
    logger.info("admin request authorized", extra={"firm_id": claims["firm_id"], "role": claims["role"]})
    return {
        "principalId": claims["user_id"],
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": f"{match.group(1)}/*"}
            ],
        },
        "context": claims,
    }


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        key = _signing_key()
    except ConfigurationError as err:  # a missing or bad setting fails the invocation here, loudly
        logger.error(
            "configuration error: the invocation cannot start",
            extra={"error": err.message, **err.context()},
        )
        raise
    return authorize(event, key)
