"""Admin caller identity.

The REQUEST authorizer (``functions/authorizer``) verifies the admin JWT and hands API Gateway a
context ``{"firm_id", "user_id", "role"}``; API Gateway copies it into
``event["requestContext"]["authorizer"]``. Handlers read the caller ONLY from there: firm and role never
come from the path, the query or the body (docs/contracts.md, "Admin authentication").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qbsync.errors import Forbidden, Unauthorized
from qbsync.vocab import ID_CHARS, ID_MAX_LENGTH, USER_ID_PATTERN

ROLES: tuple[str, ...] = ("owner", "admin", "staff")

_FIRM_ID = re.compile(rf"^[{ID_CHARS}]{{1,{ID_MAX_LENGTH}}}$")
_USER_ID = re.compile(USER_ID_PATTERN)


def claims_problem(firm_id: Any, user_id: Any, role: Any) -> str | None:
    """Why these caller claims cannot name a caller, or None when they can.

    ``firm_id`` must be an id (docs/contracts.md "Admin authentication": 1-128 letters, digits or
    ``_ . : -``): it becomes part of table keys, queue messages and events, so ``#``, ``/``, spaces and
    non-ASCII are refused here rather than failing later in a handler. ``user_id`` may also carry ``@ + |``.
    The message names the claim, never its value.
    """
    if not isinstance(firm_id, str) or not _FIRM_ID.fullmatch(firm_id):
        return "firm_id is not a valid id"
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        return "sub is not a valid user id"
    if role not in ROLES:
        return "role is not a known role"
    return None


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified admin caller: which firm, which user, which role."""

    firm_id: str
    user_id: str
    role: str


def caller_from_event(event: Mapping[str, Any]) -> Caller:
    """The caller of an API Gateway proxy event, from the authorizer context only.

    Raises:
        Unauthorized: no authorizer context, or it lacks a valid firm id, user id or known role (the route
            was reached without the authorizer, which must never happen behind API Gateway).
    """
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    if not isinstance(authorizer, Mapping):
        raise Unauthorized("the request carries no verified caller")
    firm_id = authorizer.get("firm_id")
    user_id = authorizer.get("user_id") or authorizer.get("principalId")
    role = authorizer.get("role")
    if claims_problem(firm_id, user_id, role) is not None:  # the authorizer checked: defence in depth
        raise Unauthorized("the request carries no verified caller")
    return Caller(firm_id=str(firm_id), user_id=str(user_id), role=str(role))


def require_role(caller: Caller, *roles: str) -> None:
    """Raise :class:`Forbidden` unless the caller has one of ``roles``."""
    if caller.role not in roles:
        raise Forbidden(
            f"this action needs the role {' or '.join(roles)}", firm_id=caller.firm_id, role=caller.role
        )
