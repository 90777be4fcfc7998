"""TokenProvider: the access token of one firm's connection, refreshed single-flight (QBO.md §1.5-1.7, §9.1).

It implements the ``TokenSource`` port of :class:`qbsync.qbo.client.QboClient`:
``access_token()`` and ``refresh_after_unauthorized(rejected_token)``.

How a refresh stays safe when many workers (threads, processes, Lambdas) need a token at once:

1. The stored access token is used while it is valid for more than ``refresh_margin`` seconds.
2. Otherwise the worker tries to take the per-connection **lease** (a conditional write on the
   connection item, free or expired only). Exactly one worker wins.
3. The winner **re-reads** the connection: if another worker already saved newer tokens, it uses them.
   Else it calls Intuit with the stored refresh token and **persists the new token pair atomically
   (version-checked) before returning the new access token**, then releases the lease. A rotated
   refresh token is therefore never lost: nothing uses the new access token before the new refresh
   token is stored, and a stale writer can never overwrite a newer version.
4. Losers re-read the connection a bounded number of times (``wait_attempts`` x ``wait_interval``, with an
   injected ``sleep``) and use the winner's token as soon as it is saved; if it does not appear in time they
   raise :class:`LeaseHeld` (retryable: the message goes back to its queue).

Reads: a provider built with an :class:`AccessTokens` (one per container, shared by the providers of every
firm) hands out the access token it last read or saved while it stays valid beyond the margin, without
reading the connection again (issue 12: one read per QBO call before). A token QBO refuses (401) is
dropped from it at once; a disconnect or a switch is caught by the callers, which read the connection's
status once per batch, and by the 401 QBO answers to a revoked token.

Failures:

* ``invalid_grant`` (:class:`ReconnectRequired` from the OAuth client): the refresh token is expired,
  revoked or superseded. The provider re-reads first - if a newer token was saved meanwhile the failure
  only concerned a superseded token and the newer one is used. Otherwise the connection is marked
  ``needs_reconnect`` (conditional on the version it refreshed from), ``on_needs_reconnect`` is told (the
  domain publishes "Connection Changed"), and :class:`ReconnectRequired` is raised.
* A lost refresh response (:class:`UncertainOutcome`, or :class:`ServiceUnavailable` after the request
  was sent): Intuit may have rotated the refresh token without us seeing the new one. Nothing is written -
  the stored state stays the last one we know to be consistent (old RT, same version) - the lease is
  released and the error is raised (retryable). The next attempt refreshes with the old refresh token:
  at Intuit the old value keeps working while the RT has not rotated (~24 h window) and for a grace period
  after a rotation, so it normally succeeds and the newest RT is saved. If Intuit answers
  ``invalid_grant`` instead, the grant is lost and the connection goes to ``needs_reconnect`` as above
  (the owner reconnects; mappings are kept because they are keyed by realm).
  The same holds if saving the new pair fails (DynamoDB unavailable after Intuit answered): the error is
  raised, the stored old pair stays, and the next attempt recovers as just described.
* :class:`Throttled` / :class:`ServiceUnavailable` before sending: raised as they are (retryable).
* No connection, or a connection that is disconnected / needs reconnect / has no tokens:
  :class:`ReconnectRequired`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from qbsync.errors import Conflict, LeaseHeld, ReconnectRequired
from qbsync.repositories.connections import Connection, ConnectionsRepository, Tokens

logger = logging.getLogger("qbsync.connection.tokens")

DEFAULT_REFRESH_MARGIN = 300.0
DEFAULT_LEASE_SECONDS = 30.0


class AccessTokens:
    """The access tokens a container last read or saved, per (firm, realm), while they stay valid.

    Thread-safe; bounded (``max_entries``, the oldest dropped first). Holds access tokens only (never a
    refresh token), in this process's memory, as the connection item read a moment ago did.
    """

    def __init__(self, max_entries: int = 512) -> None:
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, firm_id: str, realm_id: str, *, valid_after: float) -> str | None:
        """The remembered token of the connection if it expires after ``valid_after``, else None."""
        with self._lock:
            entry = self._tokens.get((firm_id, realm_id))
        if entry is None or entry[1] <= valid_after:
            return None
        return entry[0]

    def put(self, firm_id: str, realm_id: str, tokens: Tokens) -> None:
        with self._lock:
            self._tokens.pop((firm_id, realm_id), None)
            self._tokens[(firm_id, realm_id)] = (tokens.access_token, tokens.access_expires_at)
            while len(self._tokens) > self._max:
                self._tokens.pop(next(iter(self._tokens)))

    def drop(self, firm_id: str, realm_id: str | None = None, *, token: str | None = None) -> None:
        """Forget the firm's token (of ``realm_id``, or every realm); ``token``: only if it is that one."""
        with self._lock:
            for key in [k for k in self._tokens if k[0] == firm_id and realm_id in (None, k[1])]:
                if token is None or self._tokens[key][0] == token:
                    del self._tokens[key]


class RefreshClient(Protocol):
    """The part of :class:`qbsync.qbo.oauth.IntuitOAuthClient` the provider uses."""

    def refresh(self, refresh_token: str) -> Any: ...


def _epoch(value: datetime | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def tokens_from_token_set(token_set: Any) -> Tokens:
    """Convert a :class:`qbsync.qbo.oauth.TokenSet` (datetime expiries) to stored :class:`Tokens`."""
    return Tokens(
        access_token=token_set.access_token,
        refresh_token=token_set.refresh_token,
        access_expires_at=_epoch(token_set.access_expires_at) or 0.0,
        refresh_expires_at=_epoch(token_set.refresh_expires_at),
        refresh_hard_expires_at=_epoch(token_set.refresh_hard_expires_at),
    )


class TokenProvider:
    """Access tokens of one firm's connection (see the module docstring for the protocol).

    Args:
        firm_id: whose connection.
        connections: the connections repository (DynamoDB, tokens decrypted with KMS).
        oauth_client: refreshes tokens at Intuit (``refresh(refresh_token) -> TokenSet``).
        clock: epoch seconds (injected so tests control time).
        lease_seconds: how long a refresh lease lives; longer than the OAuth client's timeout, so a
            lease never expires while its owner is still waiting for Intuit.
        refresh_margin: refresh when the access token expires within this many seconds.
        sleep / wait_attempts / wait_interval: how a worker that lost the lease waits for the winner.
        realm_id: when given, the realm the caller works on; a connection that now points at another
            company raises :class:`ReconnectRequired` instead of handing out the other company's token.
        on_needs_reconnect: called with the connection (already marked) and the reason, once, by the
            worker that marked it.
        owner_id: identifies this worker in the lease (default: a random id per provider).
        remembered: the container's :class:`AccessTokens` (None: the connection is read on every call).
    """

    def __init__(  # noqa: PLR0913
        self,
        firm_id: str,
        connections: ConnectionsRepository,
        oauth_client: RefreshClient,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        *,
        sleep: Callable[[float], None] = time.sleep,
        wait_attempts: int = 20,
        wait_interval: float = 0.25,
        realm_id: str | None = None,
        on_needs_reconnect: Callable[[Connection, str], None] | None = None,
        owner_id: str | None = None,
        remembered: AccessTokens | None = None,
    ) -> None:
        self.firm_id = firm_id
        self._repo = connections
        self._oauth = oauth_client
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._margin = refresh_margin
        self._sleep = sleep
        self._wait_attempts = wait_attempts
        self._wait_interval = wait_interval
        self._realm_id = realm_id
        self._on_needs_reconnect = on_needs_reconnect
        self._owner = owner_id or f"tp-{uuid.uuid4().hex}"
        self._local = threading.Lock()  # one refresh at a time inside this process too
        self._remembered = remembered

    # ------------------------------------------------------------------ TokenSource
    def access_token(self) -> str:
        """A valid access token (refreshed first when it expires within the margin).

        Raises ReconnectRequired, LeaseHeld, and the retryable errors of the OAuth client.
        """
        if self._remembered is not None and self._realm_id is not None:
            valid_after = self._clock() + self._margin
            token = self._remembered.get(self.firm_id, self._realm_id, valid_after=valid_after)
            if token is not None:
                return token
        connection = self._usable(self._repo.get(self.firm_id))
        tokens = connection.tokens
        assert tokens is not None  # _usable guarantees it
        if tokens.access_expires_at - self._margin > self._clock():
            self._remember(connection.realm_id, tokens)
            return tokens.access_token
        return self._remember_token(connection.realm_id, self._refresh(connection, rejected=None))

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        """QBO answered 401 to ``rejected_token``: return a newer stored token, or force one refresh."""
        if self._remembered is not None:
            self._remembered.drop(self.firm_id, token=rejected_token)
        connection = self._usable(self._repo.get(self.firm_id))
        assert connection.tokens is not None
        if connection.tokens.access_token != rejected_token:
            return connection.tokens.access_token
        return self._refresh(connection, rejected=rejected_token)

    def _remember(self, realm_id: str, tokens: Tokens) -> None:
        if self._remembered is not None:
            self._remembered.put(self.firm_id, realm_id, tokens)

    def _remember_token(self, realm_id: str, token: str) -> str:
        """After a refresh: remember the token the connection now holds (read back below only if it is
        the one returned, so a token another worker saved is never paired with a wrong expiry)."""
        if self._remembered is not None:
            latest = self._repo.get(self.firm_id)
            if latest is not None and latest.tokens is not None and latest.tokens.access_token == token:
                self._remembered.put(self.firm_id, realm_id, latest.tokens)
        return token

    # ------------------------------------------------------------------ needs reconnect
    def mark_needs_reconnect(self, reason: str) -> Connection | None:
        """Put the connection in ``needs_reconnect`` (e.g. QBO answered 401 after a successful refresh).

        Idempotent: returns None if it is already not usable. Raises Conflict only if the connection keeps
        changing under us (extremely unlikely; safe to retry).
        """
        connection = self._repo.get(self.firm_id)
        if connection is None or not connection.usable:
            return None
        return self._mark(connection, reason)

    # ------------------------------------------------------------------ internals
    def _usable(self, connection: Connection | None) -> Connection:
        if connection is None:
            raise ReconnectRequired("QuickBooks is not connected for this firm", firm_id=self.firm_id)
        if self._realm_id is not None and connection.realm_id != self._realm_id:
            raise ReconnectRequired(
                "the firm's QuickBooks connection now points at another company",
                firm_id=self.firm_id,
                realm_id=self._realm_id,
            )
        if not connection.usable:
            raise ReconnectRequired(
                f"the QuickBooks connection is {connection.status.replace('_', ' ')}: the firm owner must "
                "reconnect QuickBooks",
                firm_id=self.firm_id,
                realm_id=connection.realm_id,
                status=connection.status,
            )
        return connection

    def _fresh_enough(self, seen: Connection, current: Connection, rejected: str | None) -> bool:
        """Did someone else save tokens we can use since ``seen`` was read?"""
        if current.token_version == seen.token_version or current.tokens is None:
            return False
        if rejected is not None:
            return current.tokens.access_token != rejected
        return current.tokens.access_expires_at - self._margin > self._clock()

    def _refresh(self, seen: Connection, rejected: str | None) -> str:
        with self._local:
            for attempt in range(self._wait_attempts + 1):
                if self._repo.acquire_lease(
                    self.firm_id, self._owner, now=self._clock(), seconds=self._lease_seconds
                ):
                    try:
                        return self._refresh_holding_lease(seen, rejected)
                    finally:
                        self._repo.release_lease(self.firm_id, self._owner)
                # Another worker is refreshing: wait for its result instead of refreshing twice.
                if attempt < self._wait_attempts:
                    self._sleep(self._wait_interval)
                current = self._usable(self._repo.get(self.firm_id))
                if self._fresh_enough(seen, current, rejected):
                    assert current.tokens is not None
                    return current.tokens.access_token
        raise LeaseHeld(
            "another worker is refreshing this connection's QuickBooks token",
            firm_id=self.firm_id,
            realm_id=seen.realm_id,
            retry_after=self._lease_seconds,
        )

    def _refresh_holding_lease(self, seen: Connection, rejected: str | None) -> str:
        current = self._usable(self._repo.get(self.firm_id))
        assert current.tokens is not None
        if self._fresh_enough(seen, current, rejected):
            return current.tokens.access_token
        if rejected is None and current.tokens.access_expires_at - self._margin > self._clock():
            return current.tokens.access_token  # still valid (e.g. seen was stale)
        try:
            token_set = self._oauth.refresh(current.tokens.refresh_token)
        except ReconnectRequired as exc:
            return self._after_invalid_grant(current, exc)
        new_tokens = tokens_from_token_set(token_set)
        try:
            saved = self._repo.save_refreshed_tokens(current, new_tokens, now=self._clock())
        except Conflict:
            # Someone saved a newer version while we held the lease (our lease had expired): theirs wins,
            # never overwrite it. Our refresh token is then either the same value (no rotation) or
            # superseded by theirs.
            latest = self._usable(self._repo.get(self.firm_id))
            assert latest.tokens is not None
            logger.warning(
                "token refresh lost the version race; using the newer stored token",
                extra={"firm_id": self.firm_id, "realm_id": current.realm_id},
            )
            return latest.tokens.access_token
        logger.info(
            "qbo access token refreshed",
            extra={
                "firm_id": self.firm_id,
                "realm_id": saved.realm_id,
                "token_version": saved.token_version,
                "refresh_token_rotated": new_tokens.refresh_token != current.tokens.refresh_token,
            },
        )
        return new_tokens.access_token

    def _after_invalid_grant(self, current: Connection, exc: ReconnectRequired) -> str:
        latest = self._repo.get(self.firm_id)
        if latest is not None and latest.usable and latest.token_version != current.token_version:
            assert latest.tokens is not None
            return latest.tokens.access_token  # we refreshed with a superseded token; the newer one works
        marked = self._mark(
            current, "QuickBooks rejected the refresh token (invalid_grant): authorization expired or revoked"
        )
        if marked is None:
            latest = self._repo.get(self.firm_id)
            if latest is not None and latest.usable and latest.token_version != current.token_version:
                assert latest.tokens is not None
                return latest.tokens.access_token  # newer tokens were saved while we failed
        raise ReconnectRequired(
            "QuickBooks authorization was revoked or has expired: the firm owner must reconnect QuickBooks",
            firm_id=self.firm_id,
            realm_id=current.realm_id,
            intuit_tid=exc.intuit_tid,
        ) from exc

    def _mark(self, connection: Connection, reason: str) -> Connection | None:
        try:
            marked = self._repo.mark_needs_reconnect(connection, reason=reason, now=self._clock())
        except Conflict:
            latest = self._repo.get(self.firm_id)
            if latest is None or not latest.usable:
                return None  # someone else marked it (or disconnected) first
            if latest.token_version != connection.token_version:
                return None  # newer tokens were saved: the failure concerned an old token
            marked = self._repo.mark_needs_reconnect(latest, reason=reason, now=self._clock())
        if self._remembered is not None:
            self._remembered.drop(self.firm_id)
        logger.warning(
            "qbo connection needs reconnect",
            extra={"firm_id": self.firm_id, "realm_id": marked.realm_id, "reason": reason},
        )
        if self._on_needs_reconnect is not None:
            self._on_needs_reconnect(marked, reason)
        return marked
