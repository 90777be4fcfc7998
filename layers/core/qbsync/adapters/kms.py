"""KMS adapter: encrypt/decrypt OAuth tokens bound to an encryption context.

The encryption context (contract: ``{"firm_id": ..., "realm_id": ...}``) is authenticated data: a
blob encrypted for one firm and realm cannot be decrypted under another context. KMS logs the
context in CloudTrail, so it must never hold secrets or personal data (ids only).

Errors (re-raised ``from`` the botocore exception):

* :class:`~qbsync.errors.ReconnectRequired` - the blob does not decrypt under this context (wrong
  firm/realm, corrupted or tampered): the stored tokens are unusable; only a new connection fixes it.
* :class:`~qbsync.errors.ConfigurationError` - key missing, disabled, wrong key, access denied.
* :class:`~qbsync.errors.Throttled` / :class:`~qbsync.errors.ServiceUnavailable` - retry later.
* ``ValueError`` - bad arguments (empty plaintext/context, non-string values, plaintext over KMS's
  4096-byte limit); :class:`~qbsync.errors.ConfigurationError` - no key id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qbsync.adapters._aws import default_client, error_code, translate
from qbsync.errors import ConfigurationError, ReconnectRequired

__all__ = ["MAX_PLAINTEXT_BYTES", "TokenCipher"]

MAX_PLAINTEXT_BYTES = 4096


def _check_context(context: Mapping[str, str]) -> dict[str, str]:
    if not context:
        raise ValueError("an encryption context is required (firm_id, realm_id)")
    bad = [
        k for k, v in context.items() if not isinstance(k, str) or not isinstance(v, str) or not k or not v
    ]
    if bad:
        raise ValueError(
            f"encryption context keys and values must be non-empty strings: {sorted(map(str, bad))}"
        )
    return dict(context)


class TokenCipher:
    """Encrypts small secrets (OAuth tokens) with one KMS key.

    Args:
        key_id: key id, ARN or alias (from :func:`qbsync.settings.get_core_settings`).
        client: a boto3 KMS client; default: the container-wide lazy client.
    """

    def __init__(self, key_id: str, client: Any = None) -> None:
        if not key_id:
            raise ConfigurationError("TokenCipher needs a KMS key id")
        self.key_id = key_id
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client("kms")
        return self._client

    def encrypt(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        """Encrypt ``plaintext`` under ``context``; returns the ciphertext blob."""
        if not isinstance(plaintext, bytes | bytearray) or not plaintext:
            raise ValueError("plaintext must be non-empty bytes")
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise ValueError(f"plaintext is larger than {MAX_PLAINTEXT_BYTES} bytes ({len(plaintext)})")
        ctx = _check_context(context)
        try:
            resp = self.client.encrypt(KeyId=self.key_id, Plaintext=bytes(plaintext), EncryptionContext=ctx)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, service="KMS", operation="Encrypt", resource=self.key_id) from exc
        return bytes(resp["CiphertextBlob"])

    def decrypt(self, blob: bytes, context: Mapping[str, str]) -> bytes:
        """Decrypt a blob made by :meth:`encrypt` under the same ``context``."""
        if not isinstance(blob, bytes | bytearray) or not blob:
            raise ValueError("ciphertext must be non-empty bytes")
        ctx = _check_context(context)
        try:
            resp = self.client.decrypt(CiphertextBlob=bytes(blob), EncryptionContext=ctx, KeyId=self.key_id)
        except ClientError as exc:
            if error_code(exc) == "InvalidCiphertextException":
                raise ReconnectRequired(
                    "stored tokens do not decrypt under this firm/realm context (corrupt or not ours)",
                    firm_id=ctx.get("firm_id"),
                    realm_id=ctx.get("realm_id"),
                ) from exc
            raise translate(exc, service="KMS", operation="Decrypt", resource=self.key_id) from exc
        except BotoCoreError as exc:
            raise translate(exc, service="KMS", operation="Decrypt", resource=self.key_id) from exc
        return bytes(resp["Plaintext"])
