"""The OAuth ``state`` token: signed (HMAC-SHA256), expiring, bound to a firm, a user and a nonce.

Format: ``base64url(json payload) "." base64url(hmac_sha256(key, payload_b64))`` with the payload
``{"f": firm_id, "u": user_id, "n": nonce, "e": expires_at}``. The signature makes it unforgeable, the
expiry bounds it, and the stored nonce record (:mod:`qbsync.repositories.oauth_state`) makes it single use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

from qbsync.errors import BadRequest, ConfigurationError

STATE_TTL_SECONDS = 600


@dataclass(frozen=True, slots=True)
class StateClaims:
    firm_id: str
    user_id: str
    nonce: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StateSigner:
    """Signs and verifies state tokens with the ``STATE_SIGNING_SECRET_ARN`` key.

    ``key`` may be a callable that returns the key: it is then fetched on first use, so functions that
    never sign (the keep-alive sweep) need no access to the secret.
    """

    def __init__(self, key: bytes | str | Callable[[], bytes | str]) -> None:
        self._source = key
        self._key: bytes | None = None
        if not callable(key):
            self._key = self._checked(key)

    @staticmethod
    def _checked(key: bytes | str) -> bytes:
        raw = key.encode("utf-8") if isinstance(key, str) else key
        if len(raw) < 16:
            raise ConfigurationError("the OAuth state signing key is missing or too short")
        return raw

    def _secret(self) -> bytes:
        if self._key is None:
            source = self._source
            assert callable(source)
            self._key = self._checked(source())
        return self._key

    def _mac(self, payload_b64: str) -> str:
        return _b64(hmac.new(self._secret(), payload_b64.encode("ascii"), hashlib.sha256).digest())

    def sign(self, claims: StateClaims) -> str:
        payload = json.dumps(
            {"f": claims.firm_id, "u": claims.user_id, "n": claims.nonce, "e": claims.expires_at},
            separators=(",", ":"),
            sort_keys=True,
        )
        payload_b64 = _b64(payload.encode("utf-8"))
        return f"{payload_b64}.{self._mac(payload_b64)}"

    def verify(self, token: str, *, now: float) -> StateClaims:
        """The claims of a genuine, unexpired token.

        Raises:
            BadRequest: missing, malformed, wrongly signed (forged or tampered) or expired state.
        """
        if not token or token.count(".") != 1 or len(token) > 2048:
            raise BadRequest("the QuickBooks connect link is invalid (bad state)")
        payload_b64, signature = token.split(".")
        if not hmac.compare_digest(self._mac(payload_b64), signature):
            raise BadRequest("the QuickBooks connect link is invalid (bad state signature)")
        try:
            data = json.loads(_unb64(payload_b64))
            claims = StateClaims(
                firm_id=str(data["f"]),
                user_id=str(data["u"]),
                nonce=str(data["n"]),
                expires_at=int(data["e"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BadRequest("the QuickBooks connect link is invalid (bad state)") from None
        if not (claims.firm_id and claims.user_id and claims.nonce):
            raise BadRequest("the QuickBooks connect link is invalid (bad state)")
        if claims.expires_at <= now:
            raise BadRequest("this QuickBooks connect link has expired; start the connection again")
        return claims
