"""The connection lifecycle of one firm's QuickBooks company (PRODUCT.md A, QBO.md §1, §9.18).

Entry points (each takes the verified :class:`~qbsync.auth.Caller`; firm and role never come from input):

* :meth:`ConnectionService.create_connect_url` (owner): a consent URL with a signed, single-use, 10-minute
  ``state`` that binds the firm, the user and a nonce.
* :meth:`ConnectionService.complete_callback` (no caller: the state authenticates): verifies the state,
  exchanges the code and proves the company: CompanyInfo of the callback's ``realmId`` read with the NEW
  token (any failure refuses). Connects nothing: the grant is parked (encrypted, 5 minutes, single use)
  under a one-time handle, returned with the platform's return URL. A company another firm holds is
  refused. Every refusal after the exchange revokes the new grant and stores nothing.
* :meth:`ConnectionService.complete_connection` (owner; only the user the state was issued to): takes the
  parked grant once. First connection → ``connected``; the same company → ``reconnected``; a *different*
  company than the firm's current/previous one → held as ``pending_switch`` until the owner types
  ``ACCEPT`` (TaxDome's guard: switching is irreversible and re-syncs everything). So a forwarded authorize
  link connects nothing for whoever consents with it.
* One realm, one live firm: the realm-owner item (:mod:`qbsync.repositories.connections`) is claimed in
  the connection write's own transaction; two firms completing at once never both win.
* :meth:`ConnectionService.confirm_switch` (owner, ``"ACCEPT"`` exactly): revokes the old company's tokens,
  archives the old connection (``CONNECTION#ARCHIVED#…``; its mappings stay under their realm, never
  reused), activates the new company.
* :meth:`ConnectionService.disconnect` (owner): revokes at Intuit, status ``disconnected``; nothing else is
  deleted (pending work and mappings are kept for a reconnect).
* :meth:`ConnectionService.status` (any role), :meth:`ConnectionService.check` (owner, admin: CompanyInfo
  through the :class:`~qbsync.connection.tokens.TokenProvider`; refreshes when needed; 401 twice → needs
  reconnect).
* Company warnings (issue 11): completing a connection and the check read the company's Preferences once
  and answer ``warnings`` (:class:`~qbsync.models.qbsync_events.CompanyWarning`), e.g. custom transaction
  numbers off (invoices get QuickBooks' numbers, not the platform's); the "Connection Changed" event of a
  completion carries them too. They never block: a failed read warns of nothing.

Every change publishes "Connection Changed" (:mod:`qbsync.connection.events`).

Errors (``qbsync.errors``; ``http_status`` maps them at the API edge): Forbidden (role; another user's
handle; a grant that does not open the callback's company), NotFound (the firm has no connection / nothing
of that firm, another firm's handle), BadRequest (bad/forged/expired/replayed state or handle, declined
consent, wrong confirmation text), Conflict (the company is connected to another firm, no switch pending, a
concurrent change), ReconnectRequired (the authorization is gone), ServiceUnavailable/Throttled (Intuit or
AWS unavailable: retry). Never tokens, codes or handles in a log line or an error.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from qbsync.auth import ROLES, Caller, require_role
from qbsync.connection.events import ConnectionEvents
from qbsync.connection.models import (
    AuthorizationParked,
    CheckResult,
    ConnectionView,
    ConnectOutcome,
    ConnectSettings,
    ConnectUrl,
)
from qbsync.connection.preflight import preference_warnings
from qbsync.connection.state import STATE_TTL_SECONDS, StateClaims, StateSigner
from qbsync.connection.tokens import AccessTokens, TokenProvider, tokens_from_token_set
from qbsync.errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    Forbidden,
    NotFound,
    QbsyncError,
    ReconnectRequired,
    ServiceUnavailable,
)
from qbsync.models.qbsync_events import CompanyWarning
from qbsync.repositories.connections import (
    DISCONNECTED,
    PENDING_SWITCH,
    Connection,
    ConnectionsRepository,
    PendingSwitch,
    RealmTaken,
    Tokens,
    iso,
)
from qbsync.repositories.oauth_grants import ParkedGrant, ParkedGrants
from qbsync.repositories.oauth_state import OAuthState, OAuthStateRepository

logger = logging.getLogger("qbsync.connection")

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
CONFIRMATION_TEXT = "ACCEPT"
_REALM_RE = re.compile(r"^[0-9A-Za-z]{1,64}$")
_OAUTH_ERROR_RE = re.compile(r"^[a-z_]{1,64}$")
_MAX_CODE = 2048  # Intuit's codes are up to 512 characters (QBO.md §1.3)
#: how long a parked grant waits for its user to complete it (the platform does so right after the redirect)
GRANT_TTL_SECONDS = 300
_HANDLE_UNKNOWN = (
    "this QuickBooks connection handle is unknown, already used or expired; start the connection again"
)
_REALM_TAKEN = (
    "this QuickBooks company is connected to another firm; it must be disconnected there before it can be "
    "connected here. Nothing was changed"
)


class OAuthClient(Protocol):
    """The part of :class:`qbsync.qbo.oauth.IntuitOAuthClient` the lifecycle uses."""

    def authorization_url(self, *, redirect_uri: str, state: str, scopes: Any = ...) -> str: ...

    def exchange_code(self, *, code: str, redirect_uri: str) -> Any: ...

    def refresh(self, refresh_token: str) -> Any: ...

    def revoke(self, token: str) -> None: ...


class CompanyInfoClient(Protocol):
    def company_info(self) -> dict[str, Any]: ...

    def preferences(self) -> dict[str, Any]: ...


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
        grants: ParkedGrants,
        oauth: OAuthClient,
        signer: StateSigner,
        events: ConnectionEvents,
        redirect_uri: str | None,
        qbo_client: QboClientFactory,
        return_url: str | None = None,
        clock: Callable[[], float] = time.time,
        token_provider_options: dict[str, Any] | None = None,
    ) -> None:
        self._connections = connections
        self._states = states
        self._grants = grants
        self._return_url = return_url
        self._oauth = oauth
        self._signer = signer
        self._events = events
        self._redirect_uri = redirect_uri
        self._qbo_client = qbo_client
        self._clock = clock
        self._provider_options = dict(token_provider_options or {})
        #: the access tokens this container's providers read or saved, while valid (TokenProvider docs)
        self._access_tokens = AccessTokens()

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
            **{"remembered": self._access_tokens, **options},
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
    ) -> AuthorizationParked:
        """Intuit's redirect: verify the state, exchange the code, prove the company, park the grant.

        Connects nothing: the grant waits under a one-time handle for :meth:`complete_connection` by the
        user the state was issued to. The state is verified and consumed FIRST, also when Intuit reports an
        error, so a state can never be used twice. Every refusal after the code exchange revokes the new
        grant and stores nothing.

        Raises BadRequest (state problems, declined consent, missing code/realm, rejected code), NotFound (a
        state bound to another firm/user), Forbidden (the grant does not open the company in ``realmId``),
        Conflict (the company is connected to another firm), ServiceUnavailable (Intuit's token endpoint, or
        QuickBooks could not confirm the company: start again), UncertainOutcome (the code exchange).
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
        if not code or len(code) > _MAX_CODE:
            raise BadRequest("the QuickBooks callback carries no valid authorization code", firm_id=firm_id)
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
        try:
            company_name = self._prove_realm(firm_id, realm_id, tokens)
            self._refuse_if_held_elsewhere(firm_id, realm_id)
            handle = secrets.token_urlsafe(32)
            expires_at = now + GRANT_TTL_SECONDS
            self._grants.park(
                handle,
                ParkedGrant(
                    firm_id=firm_id,
                    user_id=record.user_id,
                    realm_id=realm_id,
                    tokens=tokens,
                    expires_at=expires_at,
                    company_name=company_name,
                    settings=record.settings,
                ),
            )
        except BaseException:
            self._revoke_quietly(tokens.refresh_token, firm_id, realm_id, "callback refused")
            raise
        logger.info("quickbooks authorization parked", extra={"firm_id": firm_id, "realm_id": realm_id})
        return AuthorizationParked(
            handle=handle,
            expires_at=iso(expires_at),
            realm_id=realm_id,
            company_name=company_name,
            return_url=_with_query(self._return_url, handle=handle) if self._return_url else None,
        )

    def complete_connection(self, caller: Caller, handle: str) -> ConnectOutcome:
        """Owner only, and only the user who asked for the connect URL: complete a parked grant.

        The handle is single use: it is taken (deleted) before anything else, so a replay finds nothing. A
        handle of another firm or another user, or an expired one, discards the grant (revoked at Intuit)
        and changes nothing. Then: first connection → ``connected``; the same company → ``reconnected``; a
        different company → ``switch_pending`` (confirm with ACCEPT).

        Raises Forbidden (role; another user of the firm), BadRequest (unknown, used or expired handle),
        NotFound (another firm's handle), Conflict (the company is connected to another firm; a concurrent
        change), ServiceUnavailable (AWS).
        """
        require_role(caller, "owner")
        now = self._clock()
        grant = self._grants.take(handle)
        if grant is None:
            raise BadRequest(_HANDLE_UNKNOWN, firm_id=caller.firm_id)
        refusal: QbsyncError | None = None
        if grant.firm_id != caller.firm_id:
            refusal = NotFound(_HANDLE_UNKNOWN, firm_id=caller.firm_id)
        elif grant.user_id != caller.user_id:
            refusal = Forbidden(
                "only the user who started this QuickBooks connection can complete it; the authorization "
                "was discarded, start the connection again from your own account",
                firm_id=caller.firm_id,
            )
        elif grant.expires_at <= now:
            refusal = BadRequest(
                "this QuickBooks authorization has expired; start the connection again",
                firm_id=caller.firm_id,
            )
        try:
            if refusal is not None:
                raise refusal
            self._refuse_if_held_elsewhere(grant.firm_id, grant.realm_id)
            warnings = self._company_warnings(
                grant.firm_id, self._qbo_client(grant.realm_id, _FreshTokens(grant.tokens.access_token))
            )
            return self._store_authorization(grant, now, warnings)
        except BaseException as exc:
            why = exc.code if isinstance(exc, QbsyncError) else "unexpected error"
            self._revoke_quietly(grant.tokens.refresh_token, grant.firm_id, grant.realm_id, why)
            raise

    def _prove_realm(self, firm_id: str, realm_id: str, tokens: Tokens) -> str | None:
        """Read the company's CompanyInfo with the NEW access token: only a grant for that company can.

        Returns the company name (None if QuickBooks gives none). Raises Forbidden (QuickBooks refused the
        token for that company: 401/403), ServiceUnavailable (any other failure: nothing is proven).
        """
        try:
            info = self._qbo_client(realm_id, _FreshTokens(tokens.access_token)).company_info()
        except ReconnectRequired as exc:
            logger.warning(
                "callback refused: the grant does not open the company",
                extra={"firm_id": firm_id, "realm_id": realm_id, "qbo_code": exc.qbo_code},
            )
            raise Forbidden(
                f"QuickBooks did not confirm access to company {realm_id} with this authorization, so "
                "nothing was connected; start the connection again and choose the company there",
                firm_id=firm_id,
                realm_id=realm_id,
            ) from exc
        except ConfigurationError:
            raise
        except QbsyncError as exc:
            logger.warning(
                "callback refused: the company could not be confirmed",
                extra={"firm_id": firm_id, "realm_id": realm_id, "error_code": exc.code},
            )
            raise ServiceUnavailable(
                "QuickBooks could not confirm the company right now, so nothing was connected; start the "
                "connection again in a few minutes",
                firm_id=firm_id,
                realm_id=realm_id,
            ) from exc
        name = info.get("CompanyName") if isinstance(info, dict) else None
        return name if isinstance(name, str) and name else None

    def _refuse_if_held_elsewhere(self, firm_id: str, realm_id: str) -> None:
        """Conflict when another firm's live connection holds the company (never names that firm)."""
        if self._connections.realm_held_elsewhere(realm_id, firm_id):
            raise Conflict(_REALM_TAKEN, firm_id=firm_id, realm_id=realm_id)

    def _company_warnings(self, firm_id: str, client: CompanyInfoClient) -> list[CompanyWarning]:
        """What about the company makes records land differently (custom transaction numbers off: invoices
        get QuickBooks' numbers), from one Preferences read. A failed read warns of nothing (logged): it
        never blocks a connection, and ``POST /connection/check`` reads it again."""
        try:
            return preference_warnings(client.preferences())
        except ConfigurationError:
            raise
        except QbsyncError as exc:  # ReferenceDataError too
            logger.warning(
                "could not read the company preferences for the connection warnings",
                extra={"firm_id": firm_id, "error_code": exc.code},
            )
            return []

    def _store_authorization(
        self, grant: ParkedGrant, now: float, warnings: list[CompanyWarning]
    ) -> ConnectOutcome:
        try:
            return self._store(grant, now, warnings)
        except RealmTaken as exc:
            raise Conflict(_REALM_TAKEN, firm_id=grant.firm_id, realm_id=grant.realm_id) from exc

    def _store(self, grant: ParkedGrant, now: float, warnings: list[CompanyWarning]) -> ConnectOutcome:
        firm_id, realm_id, tokens = grant.firm_id, grant.realm_id, grant.tokens
        company_name, user_id, settings = grant.company_name, grant.user_id, grant.settings
        current = self._connections.get(firm_id)
        if current is None:
            self._connections.create(
                firm_id=firm_id,
                realm_id=realm_id,
                tokens=tokens,
                company_name=company_name,
                connected_by=user_id,
                settings=settings,
                now=now,
            )
            self._events.publish(
                change="connected",
                firm_id=firm_id,
                realm_id=realm_id,
                status="connected",
                company_name=company_name,
                warnings=warnings,
            )
            logger.info("quickbooks connected", extra={"firm_id": firm_id, "realm_id": realm_id})
            return ConnectOutcome(
                change="connected",
                status="connected",
                realm_id=realm_id,
                company_name=company_name,
                message="QuickBooks is connected. The first sync starts now.",
                warnings=warnings,
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
                connected_by=user_id,
                settings=settings,
                now=now,
            )
            self._events.publish(
                change="reconnected",
                firm_id=firm_id,
                realm_id=realm_id,
                status=updated.status,
                company_name=updated.company_name,
                warnings=warnings,
            )
            logger.info("quickbooks reconnected", extra={"firm_id": firm_id, "realm_id": realm_id})
            return ConnectOutcome(
                change="reconnected",
                status=updated.status,
                realm_id=realm_id,
                company_name=updated.company_name,
                message="QuickBooks is reconnected to the same company. Syncing resumes without duplicates.",
                warnings=warnings,
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
            requested_by=user_id,
        )
        held = self._connections.hold_pending_switch(current, pending, now=now)
        self._events.publish(
            change="switch_pending",
            firm_id=firm_id,
            realm_id=realm_id,
            status=held.status,
            previous_realm_id=current.realm_id,
            company_name=company_name,
            warnings=warnings,
        )
        logger.info(
            "quickbooks company switch pending",
            extra={"firm_id": firm_id, "realm_id": realm_id, "previous_realm_id": current.realm_id},
        )
        return ConnectOutcome(
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
            warnings=warnings,
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
        # Another firm connected that company after it was parked here: nothing changes (the owner can keep
        # the current company by reconnecting it, which drops the pending one).
        self._refuse_if_held_elsewhere(caller.firm_id, current.pending.realm_id)
        if current.tokens is not None:
            # Before anything changes: if Intuit is down we raise; the owner simply confirms again.
            self._oauth.revoke(current.tokens.refresh_token)
        old_realm = current.realm_id
        try:
            activated = self._connections.activate_pending_switch(
                current, archived_by=caller.user_id, now=self._clock()
            )
        except RealmTaken as exc:  # lost a race to another firm after the check above
            raise Conflict(_REALM_TAKEN, firm_id=caller.firm_id, realm_id=current.pending.realm_id) from exc
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
        self._access_tokens.drop(caller.firm_id)
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
            warnings=self._company_warnings(caller.firm_id, client),
        )

    # ------------------------------------------------------------------ helpers
    def _require(self, firm_id: str) -> Connection:
        current = self._connections.get(firm_id)
        if current is None:
            raise NotFound("this firm has no QuickBooks connection", firm_id=firm_id)
        return current

    def _revoke_quietly(self, refresh_token: str, firm_id: str, realm_id: str, why: str) -> None:
        """Revoke a grant we are dropping. A failure is logged (the grant then just expires unused)."""
        try:
            self._oauth.revoke(refresh_token)
        except QbsyncError as exc:
            logger.warning(
                "could not revoke a dropped QuickBooks grant",
                extra={"firm_id": firm_id, "realm_id": realm_id, "why": why, "error_code": exc.code},
            )


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query (its own query and fragment kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
