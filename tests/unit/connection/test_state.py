"""The signed OAuth state token."""

from __future__ import annotations

import base64
import json

import pytest
from qbsync.connection.state import StateClaims, StateSigner
from qbsync.errors import BadRequest, ConfigurationError

signer = StateSigner("state-key-for-tests-0123456789")
CLAIMS = StateClaims(firm_id="firm-a", user_id="u1", nonce="n-123", expires_at=2_000)


def test_round_trip():
    assert signer.verify(signer.sign(CLAIMS), now=1_000) == CLAIMS


def test_expired():
    with pytest.raises(BadRequest, match="expired"):
        signer.verify(signer.sign(CLAIMS), now=2_000)


def test_tampered_payload_is_refused():
    payload, signature = signer.sign(CLAIMS).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["f"] = "firm-b"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(BadRequest, match="signature"):
        signer.verify(f"{forged}.{signature}", now=1_000)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 3000, "e30.sig"])
def test_malformed(token):
    with pytest.raises(BadRequest):
        signer.verify(token, now=1_000)


def test_signed_garbage_payload_is_refused():
    payload = base64.urlsafe_b64encode(b'{"f": ""}').rstrip(b"=").decode()
    token = f"{payload}.{signer._mac(payload)}"
    with pytest.raises(BadRequest):
        signer.verify(token, now=1_000)


def test_short_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        StateSigner("short")


def test_key_source_is_read_on_first_use_only():
    reads = []

    def source() -> str:
        reads.append(1)
        return "state-key-for-tests-0123456789"

    lazy = StateSigner(source)
    assert reads == []
    assert lazy.verify(signer.sign(CLAIMS), now=1_000) == CLAIMS  # same key, same signatures
    lazy.sign(CLAIMS)
    assert reads == [1]
    with pytest.raises(ConfigurationError):
        StateSigner(lambda: "").sign(CLAIMS)
