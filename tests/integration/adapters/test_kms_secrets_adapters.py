"""TokenCipher and SecretsReader against moto."""

from __future__ import annotations

import json

import pytest
from botocore.stub import Stubber
from qbsync.adapters.kms import TokenCipher
from qbsync.adapters.secrets import SecretsReader
from qbsync.errors import ConfigurationError, ReconnectRequired, ServiceUnavailable, Throttled

CTX = {"firm_id": "firm-1", "realm_id": "realm-1"}


@pytest.fixture
def key_id(aws_client) -> str:
    return aws_client("kms").create_key(Description="tokens")["KeyMetadata"]["KeyId"]


def test_encrypt_decrypt_round_trip_bound_to_context(aws_client, key_id):
    cipher = TokenCipher(key_id, client=aws_client("kms"))
    blob = cipher.encrypt(b"refresh-token-value", CTX)
    assert b"refresh-token-value" not in blob
    assert cipher.decrypt(blob, CTX) == b"refresh-token-value"

    with pytest.raises(ReconnectRequired) as err:
        cipher.decrypt(blob, {"firm_id": "firm-2", "realm_id": "realm-1"})
    assert err.value.firm_id == "firm-2"
    assert "refresh-token-value" not in str(err.value)


def test_bad_arguments_are_value_errors_not_data_errors(aws_client, key_id):
    cipher = TokenCipher(key_id, client=aws_client("kms"))
    with pytest.raises(ValueError, match="context"):
        cipher.encrypt(b"x", {})
    with pytest.raises(ValueError, match="non-empty strings"):
        cipher.encrypt(b"x", {"firm_id": ""})
    with pytest.raises(ValueError, match="bytes"):
        cipher.encrypt("text", CTX)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="4096"):
        cipher.encrypt(b"x" * 4097, CTX)


def test_unknown_key_is_a_configuration_error(aws_client):
    cipher = TokenCipher("11111111-2222-3333-4444-555555555555", client=aws_client("kms"))
    with pytest.raises(ConfigurationError, match="KMS Encrypt"):
        cipher.encrypt(b"x", CTX)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("KMSInternalException", ServiceUnavailable),
        ("ThrottlingException", Throttled),
        ("DisabledException", ConfigurationError),
    ],
)
def test_kms_errors_are_translated(aws_client, code, expected):
    kms = aws_client("kms")
    with Stubber(kms) as stub:
        stub.add_client_error("decrypt", service_error_code=code)
        with pytest.raises(expected):
            TokenCipher("k", client=kms).decrypt(b"blob", CTX)


@pytest.fixture
def secret_arn(aws_client, unique) -> str:
    return aws_client("secretsmanager").create_secret(
        Name=f"intuit-{unique}",
        SecretString=json.dumps(
            {"client_id": "cid", "client_secret": "shh-very-secret", "webhook_verifier_token": "v"}
        ),
    )["ARN"]


def test_reads_fields_and_caches_until_max_age(aws_client, secret_arn):
    sm = aws_client("secretsmanager")
    now = [1000.0]
    reader = SecretsReader(client=sm, max_age=300, clock=lambda: now[0])
    assert reader.get_field(secret_arn, "client_secret") == "shh-very-secret"

    sm.put_secret_value(
        SecretId=secret_arn, SecretString=json.dumps({"client_id": "cid", "client_secret": "rotated"})
    )
    now[0] += 299
    assert reader.get_field(secret_arn, "client_secret") == "shh-very-secret"  # still cached
    now[0] += 2
    assert reader.get_field(secret_arn, "client_secret") == "rotated"  # max_age passed: re-read
    sm.put_secret_value(SecretId=secret_arn, SecretString=json.dumps({"client_secret": "again"}))
    reader.clear()
    assert reader.get_field(secret_arn, "client_secret") == "again"


def test_missing_key_names_the_key_not_any_value(aws_client, secret_arn):
    reader = SecretsReader(client=aws_client("secretsmanager"))
    with pytest.raises(ConfigurationError) as err:
        reader.get_field(secret_arn, "nope")
    assert "'nope'" in str(err.value)
    assert "shh-very-secret" not in str(err.value) and "cid" not in str(err.value)


def test_missing_or_malformed_secret_is_a_configuration_error(aws_client, unique):
    sm = aws_client("secretsmanager")
    reader = SecretsReader(client=sm)
    with pytest.raises(ConfigurationError, match="ResourceNotFound"):
        reader.get_json(f"absent-{unique}")
    arn = sm.create_secret(Name=f"plain-{unique}", SecretString="not json: hunter2")["ARN"]
    with pytest.raises(ConfigurationError, match="not valid JSON") as err:
        reader.get_json(arn)
    assert "hunter2" not in str(err.value) and err.value.__cause__ is None
    arr = sm.create_secret(Name=f"list-{unique}", SecretString="[1, 2]")["ARN"]
    with pytest.raises(ConfigurationError, match="not a JSON object"):
        reader.get_json(arr)


def test_default_clients_follow_aws_endpoint_url(monkeypatch, moto_endpoint, aws_client, secret_arn):
    from qbsync.adapters import clear_default_clients
    from qbsync.adapters.secrets import clear_caches, get_secret_field

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clear_default_clients()
    clear_caches()
    try:
        # no client injected: the lazy container-wide client reaches moto through the environment
        assert get_secret_field(secret_arn, "client_id") == "cid"
    finally:
        clear_default_clients()
        clear_caches()
