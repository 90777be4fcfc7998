"""Caller identity comes only from the authorizer context; the authorizer verifies the admin JWT."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import jwt
import pytest
from qbsync.auth import Caller, caller_from_event, require_role
from qbsync.errors import Forbidden, Unauthorized

KEY = "admin-jwt-key-for-tests-0123456789abcdef"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/connection"


def _load_authorizer():
    path = Path(__file__).resolve().parents[3] / "functions" / "authorizer" / "app.py"
    spec = importlib.util.spec_from_file_location("authorizer_app_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


authorizer = _load_authorizer()


def token(**overrides) -> str:
    claims = {
        "sub": "user-1",
        "firm_id": "firm-a",
        "role": "owner",
        "iss": "platform",
        "aud": "qbsync-admin",
        "exp": int(time.time()) + 300,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, overrides.pop("_key", KEY), algorithm="HS256")


def request(auth: str | None, header: str = "Authorization") -> dict:
    headers = {header: auth} if auth is not None else {}
    return {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": headers}


def test_caller_from_authorizer_context_only():
    event = {
        "pathParameters": {"firm_id": "firm-evil"},
        "body": '{"firm_id": "firm-evil", "role": "owner"}',
        "requestContext": {
            "authorizer": {"firm_id": "firm-a", "user_id": "u1", "role": "staff", "principalId": "u1"}
        },
    }
    assert caller_from_event(event) == Caller("firm-a", "u1", "staff")


@pytest.mark.parametrize(
    "authorizer_context",
    [
        None,
        {},
        {"firm_id": "f"},
        {"firm_id": "f", "user_id": "u", "role": "root"},
        {"user_id": "u", "role": "owner"},
    ],
)
def test_missing_or_incomplete_caller_is_unauthorized(authorizer_context):
    event = {"requestContext": {"authorizer": authorizer_context} if authorizer_context is not None else {}}
    with pytest.raises(Unauthorized):
        caller_from_event(event)


def test_require_role():
    require_role(Caller("f", "u", "admin"), "owner", "admin")
    with pytest.raises(Forbidden):
        require_role(Caller("f", "u", "staff"), "owner")


def test_valid_token_allows_the_whole_stage_with_claims_in_context():
    result = authorizer.authorize(request("Bearer " + token(role="admin")), KEY)
    assert result["principalId"] == "user-1"
    assert result["context"] == {"firm_id": "firm-a", "user_id": "user-1", "role": "admin"}
    [statement] = result["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/*",
    }


def test_header_name_is_case_insensitive():
    assert (
        authorizer.authorize(request("Bearer " + token(), header="authorization"), KEY)["context"]["role"]
        == "owner"
    )


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer " + token(exp=int(time.time()) - 60),
        "Bearer " + token(aud="someone-else"),
        "Bearer " + token(iss="attacker"),
        "Bearer " + token(role="superuser"),
        "Bearer " + token(firm_id=None),
        "Bearer " + token(sub=None),
        "Bearer " + token(exp=None),
        "Bearer "
        + jwt.encode(
            {
                "sub": "u",
                "firm_id": "f",
                "role": "owner",
                "iss": "platform",
                "aud": "qbsync-admin",
                "exp": int(time.time()) + 60,
            },
            "wrong-key-0123456789abcdef-0123456789",
            algorithm="HS256",
        ),
        "Bearer "
        + jwt.encode(
            {
                "sub": "u",
                "firm_id": "f",
                "role": "owner",
                "iss": "platform",
                "aud": "qbsync-admin",
                "exp": int(time.time()) + 60,
            },
            None,
            algorithm="none",
        ),
    ],
)
def test_anything_else_is_unauthorized(auth, caplog):
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.authorize(request(auth), KEY)
    if auth and len(auth) > 20:
        assert auth.split(" ", 1)[1] not in caplog.text  # the token is never logged


def test_malformed_method_arn_is_unauthorized():
    event = request("Bearer " + token())
    event["methodArn"] = "not-an-arn"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.authorize(event, KEY)


@pytest.mark.parametrize(
    "claims",
    [
        {"firm_id": "firm#a"},  # the table keys' separator
        {"firm_id": "firm/a"},
        {"firm_id": "firm a"},
        {"firm_id": "firmé"},
        {"firm_id": "firm\n"},
        {"firm_id": "f" * 129},
        {"firm_id": 7},
        {"sub": "user 1"},
        {"sub": "user#1"},
        {"sub": "ü"},
        {"role": "root"},
    ],
)
def test_the_authorizer_refuses_claims_outside_their_documented_pattern(claims):
    event = request(f"Bearer {token(**claims)}")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.authorize(event, KEY)


@pytest.mark.parametrize("sub", ["user-1", "ana@firm.example", "auth0|abc123", "a+b@x.io"])
def test_the_authorizer_passes_on_ids_and_user_subjects_that_match(sub):
    result = authorizer.authorize(request(f"Bearer {token(sub=sub, firm_id='firm_A.1:x-2')}"), KEY)
    assert result["context"] == {"firm_id": "firm_A.1:x-2", "user_id": sub, "role": "owner"}


def test_a_handler_refuses_an_authorizer_context_with_an_invalid_firm_id():
    event = {"requestContext": {"authorizer": {"firm_id": "firm#evil", "user_id": "u1", "role": "owner"}}}
    with pytest.raises(Unauthorized):
        caller_from_event(event)
