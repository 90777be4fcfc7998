"""Admin caller identity.

The REQUEST authorizer (``functions/authorizer``) verifies the admin JWT and hands API Gateway a
context ``{"firm_id", "user_id", "role"}``; API Gateway copies it into
``event["requestContext"]["authorizer"]``. Handlers read the caller ONLY from there: firm and role never
come from the path, the query or the body (docs/contracts.md, "Admin authentication").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qbsync.errors import Forbidden, Unauthorized

ROLES: tuple[str, ...] = ("owner", "admin", "staff")


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified admin caller: which firm, which user, which role."""

    firm_id: str
    user_id: str
    role: str


def caller_from_event(event: Mapping[str, Any]) -> Caller:
    """The caller of an API Gateway proxy event, from the authorizer context only.

    Raises:
        Unauthorized: no authorizer context, or it lacks a firm, a user or a known role (the route was
            reached without the authorizer, which must never happen behind API Gateway).
    """
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    if not isinstance(authorizer, Mapping):
        raise Unauthorized("the request carries no verified caller")
    firm_id = authorizer.get("firm_id")
    user_id = authorizer.get("user_id") or authorizer.get("principalId")
    role = authorizer.get("role")
    if not (isinstance(firm_id, str) and firm_id and isinstance(user_id, str) and user_id):
        raise Unauthorized("the request carries no verified caller")
    if role not in ROLES:
        raise Unauthorized("the request carries no verified caller role")
    return Caller(firm_id=firm_id, user_id=user_id, role=role)


def require_role(caller: Caller, *roles: str) -> None:
    """Raise :class:`Forbidden` unless the caller has one of ``roles``."""
    if caller.role not in roles:
        raise Forbidden(
            f"this action needs the role {' or '.join(roles)}", firm_id=caller.firm_id, role=caller.role
        )
