"""The connection lifecycle of one firm's QuickBooks company (PRODUCT.md A, QBO.md §1, §9.18).

Entry points (each takes the verified :class:`~qbsync.auth.Caller`; firm and role never come from input):

* :meth:`ConnectionService.create_connect_url` (owner): a consent URL with a signed, single-use, 10-minute
  ``state`` that binds the firm, the user and a nonce.
* :meth:`ConnectionService.complete_callback` (no caller: the state authenticates): verifies the state,
  exchanges the code, stores the tokens encrypted. Same company (or first connection) → ``connected``;
  a *different* company than the firm's current/previous one → held as ``pending_switch`` until the owner
  types ``ACCEPT`` (TaxDome's guard: switching is irreversible and re-syncs everything).
* :meth:`ConnectionService.confirm_switch` (owner, ``"ACCEPT"`` exactly): revokes the old company's tokens,
  archives the old connection (``CONNECTION#ARCHIVED#…``; its mappings stay under their realm, never
  reused), activates the new company.
* :meth:`ConnectionService.disconnect` (owner): revokes at Intuit, status ``disconnected``; nothing else is
  deleted (pending work and mappings are kept for a reconnect).
* :meth:`ConnectionService.status` (any role), :meth:`ConnectionService.check` (owner, admin: CompanyInfo
  through the :class:`~qbsync.connection.tokens.TokenProvider`; refreshes when needed; 401 twice → needs
  reconnect).

Every change publishes "Connection Changed" (:mod:`qbsync.connection.events`).

Errors (``qbsync.errors``; ``http_status`` maps them at the API edge): Forbidden (role), NotFound (the firm
has no connection / nothing of that firm), BadRequest (bad/forged/expired/replayed state, declined consent,
wrong confirmation text), Conflict (no switch pending, a concurrent change), ReconnectRequired (the
authorization is gone), ServiceUnavailable/Throttled (Intuit or AWS unavailable: retry).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from qbsync.auth import ROLES, Caller, require_role
from qbsync.connection.events import ConnectionEvents
from qbsync.connection.models import (
    CallbackOutcome,
    CheckResult,
    ConnectionView,
    ConnectSettings,
    ConnectUrl,
)
from qbsync.connection.state import STATE_TTL_SECONDS, StateClaims, StateSigner
from qbsync.connection.tokens import TokenProvider, tokens_from_token_set
from qbsync.errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    NotFound,
    QbsyncError,
    ReconnectRequired,
)
from qbsync.repositories.connections import (
    DISCONNECTED,
    PENDING_SWITCH,
    Connection,
    ConnectionsRepository,
    PendingSwitch,
    Tokens,
    iso,
)
from qbsync.repositories.oauth_state import OAuthState, OAuthStateRepository

logger = logging.getLogger("qbsync.connection")

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
CONFIRMATION_TEXT = "ACCEPT"
_REALM_RE = re.compile(r"^[0-9A-Za-z]{1,64}$")
_OAUTH_ERROR_RE = re.compile(r"^[a-z_]{1,64}$")


class OAuthClient(Protocol):
    """The part of :class:`qbsync.qbo.oauth.IntuitOAuthClient` the lifecycle uses."""

    def authorization_url(self, *, redirect_uri: str, state: str, scopes: Any = ...) -> str: ...

    def exchange_code(self, *, code: str, redirect_uri: str) -> Any: ...

    def refresh(self, refresh_token: str) -> Any: ...

    def revoke(self, token: str) -> None: ...


class CompanyInfoClient(Protocol):
    def company_info(self) -> dict[str, Any]: ...


#: Builds a QBO client for a realm from a token source (``QboClient(base_url=…, realm_id=…, tokens=…)``).
QboClientFactory = Callable[[str, Any], CompanyInfoClient]


class _FreshTokens:
    """Token source over a just-issued access token (the callback reads the company name with it)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise ReconnectRequired("QuickBooks rejected a token it has just issued")


class ConnectionService:
    """See the module docstring. Every dependency is injected (tests pass moto/simulator-backed ones)."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        connections: ConnectionsRepository,
        states: OAuthStateRepository,
        oauth: OAuthClient,
        signer: StateSigner,
        events: ConnectionEvents,
        redirect_uri: str | None,
        qbo_client: QboClientFactory,
        clock: Callable[[], float] = time.time,
        token_provider_options: dict[str, Any] | None = None,
    ) -> None:
        self._connections = connections
        self._states = states
        self._oauth = oauth
        self._signer = signer
        self._events = events
        self._redirect_uri = redirect_uri
        self._qbo_client = qbo_client
        self._clock = clock
        self._provider_options = dict(token_provider_options or {})

    # ------------------------------------------------------------------ token providers
    @property
    def connections(self) -> ConnectionsRepository:
        return self._connections

    def token_provider(self, firm_id: str, realm_id: str | None = None, **overrides: Any) -> TokenProvider:
        """A :class:`TokenProvider` for the firm that publishes "Connection Changed" when it marks the
        connection ``needs_reconnect``. ``overrides``: TokenProvider keyword arguments."""
        options = {**self._provider_options, **overrides}
        return TokenProvider(
            firm_id,
            self._connections,
            self._oauth,
            self._clock,
            realm_id=realm_id,
            on_needs_reconnect=self._announce_needs_reconnect,
            **options,
        )

    def _announce_needs_reconnect(self, connection: Connection, reason: str) -> None:
        self._events.publish(
            change="needs_reconnect",
            firm_id=connection.firm_id,
            realm_id=connection.realm_id,
            status=connection.status,
            company_name=connection.company_name,
            reason=reason,
        )

    # ------------------------------------------------------------------ connect
    def _redirect(self, fallback: str | None) -> str:
        """The configured redirect URI, else ``fallback`` (the API's own callback URL, from the request)."""
        uri = self._redirect_uri or fallback
        if not uri:
            raise ConfigurationError("the OAuth redirect URI is not configured")
        return uri

    def create_connect_url(
        self, caller: Caller, settings: ConnectSettings | None = None, *, redirect_uri: str | None = None
    ) -> ConnectUrl:
        """Owner only. ``redirect_uri`` is used only when the deployment configures none.

        Raises Forbidden, ServiceUnavailable (Intuit discovery down), ConfigurationError.
        """
        require_role(caller, "owner")
        now = self._clock()
        claims = StateClaims(
            firm_id=caller.firm_id,
            user_id=caller.user_id,
            nonce=secrets.token_urlsafe(24),
            expires_at=int(now) + STATE_TTL_SECONDS,
        )
        state = self._signer.sign(claims)
        url = self._oauth.authorization_url(
            redirect_uri=self._redirect(redirect_uri), state=state, scopes=[ACCOUNTING_SCOPE]
        )
        self._states.create(
            OAuthState(
                nonce=claims.nonce,
                firm_id=caller.firm_id,
                user_id=caller.user_id,
                expires_at=claims.expires_at,
                settings=(settings or ConnectSettings()).model_dump(mode="json"),
            )
        )
        logger.info("connect url issued", extra={"firm_id": caller.firm_id, "user_id": caller.user_id})
        return ConnectUrl(url=url, expires_at=iso(claims.expires_at))

    def complete_callback(
        self,
        *,
        code: str | None,
        state: str | None,
        realm_id: str | None,
        error: str | None = None,
        redirect_uri: str | None = None,
    ) -> CallbackOutcome:
        """Finish the authorization-code flow (see the module docstring).

        The state is verified and consumed FIRST, also when Intuit reports an error, so a state can never
        be used twice. Raises BadRequest (state problems, declined consent, missing code/realm, rejected
        code), NotFound (a state bound to another firm/user), Conflict (concurrent change),
        ServiceUnavailable / UncertainOutcome (Intuit's token endpoint: start again).
        """
        if not state:
            raise BadRequest("the QuickBooks callback carries no state")
        now = self._clock()
        claims = self._signer.verify(state, now=now)
        record = self._states.consume(claims.nonce, firm_id=claims.firm_id, user_id=claims.user_id, now=now)
        firm_id = record.firm_id
        if error:
            shown = error if _OAUTH_ERROR_RE.match(error) else "error"
            raise BadRequest(
                f"QuickBooks did not authorize the connection ({shown}); start the connection again",
                firm_id=firm_id,
            )
        if not code:
            raise BadRequest("the QuickBooks callback carries no authorization code", firm_id=firm_id)
        if not realm_id or not _REALM_RE.match(realm_id):
            raise BadRequest("the QuickBooks callback carries no valid company id (realmId)", firm_id=firm_id)
        try:
            tokens = tokens_from_token_set(
                self._oauth.exchange_code(code=code, redirect_uri=self._redirect(redirect_uri))
            )
        except ReconnectRequired as exc:
            raise BadRequest(
                "QuickBooks rejected the authorization code (expired or already used); start the connection "
                "again",
                firm_id=firm_id,
                realm_id=realm_id,
            ) from exc
        company_name = self._company_name(realm_id, tokens.access_token)
        try:
            return self._store_authorization(record, realm_id, tokens, company_name, now)
        except Conflict:
            self._revoke_quietly(tokens.refresh_token, firm_id, realm_id, "a concurrent change won")
            raise

    def _store_authorization(
        self, record: OAuthState, realm_id: str, tokens: Tokens, company_name: str | None, now: float
    ) -> CallbackOutcome:
        firm_id = record.firm_id
        current = self._connections.get(firm_id)
        if current is None:
            self._connections.create(
                firm_id=firm_id,
                realm_id=realm_id,
                tokens=tokens,
                company_name=company_name,
                connected_by=record.user_id,
                settings=record.settings,
                now=now,
            )
            self._events.publish(
                change="connected",
                firm_id=firm_id,
                realm_id=realm_id,
                status="connected",
                company_name=company_name,
            )
            logger.info("quickbooks connected", extra={"firm_id": firm_id, "realm_id": realm_id})
            return CallbackOutcome(
                change="connected",
                status="connected",
                realm_id=realm_id,
                company_name=company_name,
                message="QuickBooks is connected. The first sync starts now.",
            )
        if current.realm_id == realm_id:
            if current.pending is not None:
                # The owner went back to the current company: the other company's grant is dropped.
                self._revoke_quietly(
                    current.pending.tokens.refresh_token, firm_id, current.pending.realm_id, "switch"
                )
            updated = self._connections.reconnect(
                current,
                tokens=tokens,
                company_name=company_name,
                connected_by=record.user_id,
                settings=record.settings,
                now=now,
            )
            self._events.publish(
                change="reconnected",
                firm_id=firm_id,
                realm_id=realm_id,
                status=updated.status,
                company_name=updated.company_name,
            )
            logger.info("quickbooks reconnected", extra={"firm_id": firm_id, "realm_id": realm_id})
            return CallbackOutcome(
                change="reconnected",
                status=updated.status,
                realm_id=realm_id,
                company_name=updated.company_name,
                message="QuickBooks is reconnected to the same company. Syncing resumes without duplicates.",
            )
        # A different company: never switch silently.
        if current.pending is not None and current.pending.realm_id != realm_id:
            self._revoke_quietly(
                current.pending.tokens.refresh_token, firm_id, current.pending.realm_id, "replaced"
            )
        pending = PendingSwitch(
            realm_id=realm_id,
            company_name=company_name,
            tokens=tokens,
            requested_at=now,
            requested_by=record.user_id,
        )
        held = self._connections.hold_pending_switch(current, pending, now=now)
        self._events.publish(
            change="switch_pending",
            firm_id=firm_id,
            realm_id=realm_id,
            status=held.status,
            previous_realm_id=current.realm_id,
            company_name=company_name,
        )
        logger.info(
            "quickbooks company switch pending",
            extra={"firm_id": firm_id, "realm_id": realm_id, "previous_realm_id": current.realm_id},
        )
        return CallbackOutcome(
            change="switch_pending",
            status=PENDING_SWITCH,
            realm_id=realm_id,
            company_name=company_name,
            message=(
                "This is a different QuickBooks company than the one this firm used. Switching is "
                "irreversible: "
                "every client, invoice and payment will be synced again to the new company. To continue, "
                f"confirm by typing {CONFIRMATION_TEXT} in the QuickBooks settings."
            ),
        )

    # ------------------------------------------------------------------ switch
    def confirm_switch(self, caller: Caller, confirmation: str) -> ConnectionView:
        """Owner only; ``confirmation`` must be exactly ``"ACCEPT"``.

        Raises Forbidden, BadRequest (wrong text), NotFound (no connection), Conflict (no switch pending,
        concurrent change), ServiceUnavailable (revoking the old company's tokens failed: nothing changed).
        """
        require_role(caller, "owner")
        if confirmation != CONFIRMATION_TEXT:
            raise BadRequest(
                f"switching QuickBooks company is irreversible: type {CONFIRMATION_TEXT} to confirm",
                firm_id=caller.firm_id,
            )
        current = self._require(caller.firm_id)
        # The status may have moved on (the current company's grant died meanwhile): the pending company is
        # what the owner confirms.
        if current.pending is None:
            raise Conflict("no QuickBooks company switch is pending", firm_id=caller.firm_id)
        if current.tokens is not None:
            # Before anything changes: if Intuit is down we raise; the owner simply confirms again.
            self._oauth.revoke(current.tokens.refresh_token)
        old_realm = current.realm_id
        activated = self._connections.activate_pending_switch(
            current, archived_by=caller.user_id, now=self._clock()
        )
        self._events.publish(
            change="switched",
            firm_id=caller.firm_id,
            realm_id=activated.realm_id,
            status=activated.status,
            previous_realm_id=old_realm,
            company_name=activated.company_name,
        )
        logger.info(
            "quickbooks company switched",
            extra={"firm_id": caller.firm_id, "realm_id": activated.realm_id, "previous_realm_id": old_realm},
        )
        return ConnectionView.of(activated, self._connections.archived(caller.firm_id))

    # ------------------------------------------------------------------ disconnect
    def disconnect(self, caller: Caller) -> ConnectionView:
        """Owner only. Revokes the grant at Intuit (and a pending switch's), then status ``disconnected``.

        Idempotent. Raises Forbidden, NotFound, ServiceUnavailable/Throttled (Intuit unreachable: nothing
        changed, try again).
        """
        require_role(caller, "owner")
        current = self._require(caller.firm_id)
        if current.status == DISCONNECTED:
            return ConnectionView.of(current, self._connections.archived(caller.firm_id))
        for attempt in range(3):
            if current.tokens is not None:
                self._oauth.revoke(current.tokens.refresh_token)
            if current.pending is not None:
                self._oauth.revoke(current.pending.tokens.refresh_token)
            try:
                updated = self._connections.mark_disconnected(
                    current, reason="disconnected by the firm owner", now=self._clock()
                )
                break
            except Conflict:
                # A worker refreshed meanwhile (new token version): revoke what is stored now and retry.
                if attempt == 2:
                    raise
                current = self._require(caller.firm_id)
        self._events.publish(
            change="disconnected",
            firm_id=caller.firm_id,
            realm_id=updated.realm_id,
            status=updated.status,
            company_name=updated.company_name,
        )
        logger.info(
            "quickbooks disconnected", extra={"firm_id": caller.firm_id, "realm_id": updated.realm_id}
        )
        return ConnectionView.of(updated, self._connections.archived(caller.firm_id))

    # ------------------------------------------------------------------ status / check
    def status(self, caller: Caller) -> ConnectionView:
        """Any role of the firm. Raises NotFound when the firm never connected."""
        require_role(caller, *ROLES)
        current = self._require(caller.firm_id)
        return ConnectionView.of(current, self._connections.archived(caller.firm_id))

    def check(self, caller: Caller) -> CheckResult:
        """Owner or admin: read CompanyInfo with the stored tokens (refreshing them when needed).

        Raises NotFound, ReconnectRequired (the connection is not usable, or QBO rejected the token twice -
        the connection is then marked ``needs_reconnect``), and the retryable errors of the QBO client.
        """
        require_role(caller, "owner", "admin")
        current = self._require(caller.firm_id)
        provider = self.token_provider(caller.firm_id, realm_id=current.realm_id)
        client = self._qbo_client(current.realm_id, provider)
        try:
            info = client.company_info()
        except ReconnectRequired:
            provider.mark_needs_reconnect("QuickBooks rejected the access token twice (HTTP 401)")
            raise
        name = info.get("CompanyName") if isinstance(info, dict) else None
        latest = self._require(caller.firm_id)
        if (
            isinstance(name, str)
            and name
            and name != latest.company_name
            and latest.realm_id == current.realm_id
        ):
            latest = self._connections.set_company_name(latest, name, now=self._clock())
        return CheckResult(
            status=latest.status,
            realm_id=latest.realm_id,
            company_name=latest.company_name,
            checked_at=iso(self._clock()),
        )

    # ------------------------------------------------------------------ helpers
    def _require(self, firm_id: str) -> Connection:
        current = self._connections.get(firm_id)
        if current is None:
            raise NotFound("this firm has no QuickBooks connection", firm_id=firm_id)
        return current

    def _company_name(self, realm_id: str, access_token: str) -> str | None:
        """The company's name, for display; a failure here never blocks storing the tokens."""
        try:
            info = self._qbo_client(realm_id, _FreshTokens(access_token)).company_info()
        except QbsyncError as exc:
            logger.warning(
                "company name unavailable after connect",
                extra={"realm_id": realm_id, "error_code": exc.code},
            )
            return None
        name = info.get("CompanyName") if isinstance(info, dict) else None
        return name if isinstance(name, str) and name else None

    def _revoke_quietly(self, refresh_token: str, firm_id: str, realm_id: str, why: str) -> None:
        """Revoke a grant we are dropping. A failure is logged (the grant then just expires unused)."""
        try:
            self._oauth.revoke(refresh_token)
        except QbsyncError as exc:
            logger.warning(
                "could not revoke a dropped QuickBooks grant",
                extra={"firm_id": firm_id, "realm_id": realm_id, "why": why, "error_code": exc.code},
            )
