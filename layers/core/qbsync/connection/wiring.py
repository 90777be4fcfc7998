"""Builds the connection lifecycle's objects from the deployment's settings (one set per container).

Handlers call :func:`connection_service`; nothing is created at import. Tests point the environment at
moto and the simulator, call :func:`clear`, then the handlers.
"""

from __future__ import annotations

import time
from functools import partial

from qbsync.connection.events import ConnectionEvents
from qbsync.connection.service import ConnectionService
from qbsync.connection.state import StateSigner
from qbsync.errors import ConfigurationError
from qbsync.lazy import Lazy


def build_connection_service() -> ConnectionService:
    """A fully wired service. Raises ConfigurationError (missing env / secret fields)."""
    from qbsync.adapters.dynamodb import DynamoTable
    from qbsync.adapters.eventbridge import EventPublisher
    from qbsync.adapters.kms import TokenCipher
    from qbsync.adapters.secrets import get_secret_field, get_secret_json
    from qbsync.qbo.oauth import IntuitOAuthClient
    from qbsync.repositories.connections import ConnectionsRepository
    from qbsync.repositories.oauth_state import OAuthStateRepository
    from qbsync.settings import get_core_settings, get_qbo_settings
    from qbsync.wiring import paced_client_factory

    core = get_core_settings()
    qbo = get_qbo_settings()
    app = get_secret_json(core.intuit_app_secret_arn)
    client_id, client_secret = app.get("client_id"), app.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        raise ConfigurationError("the Intuit app secret lacks client_id / client_secret")
    table = DynamoTable(core.sync_table_name)
    return ConnectionService(
        connections=ConnectionsRepository(table, TokenCipher(core.token_kms_key_id)),
        states=OAuthStateRepository(table),
        oauth=IntuitOAuthClient(
            discovery_url=qbo.intuit_discovery_url, client_id=client_id, client_secret=client_secret
        ),
        # Fetched on first use: the keep-alive function never signs and has no access to this secret.
        signer=StateSigner(partial(get_secret_field, core.state_signing_secret_arn, "key")),
        events=ConnectionEvents(EventPublisher(core.event_bus_name), clock=time.time),
        # Empty OAUTH_REDIRECT_URI (template default): the handler derives the API's own callback URL.
        redirect_uri=getattr(qbo, "oauth_redirect_uri", None) or None,
        qbo_client=paced_client_factory(table),
    )


_service = Lazy(build_connection_service)


def connection_service() -> ConnectionService:
    """The container's service, built on first use."""
    return _service.get()


def clear() -> None:
    """Forget the cached service (tests that change the environment)."""
    _service.clear()
