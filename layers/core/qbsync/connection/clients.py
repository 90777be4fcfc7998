"""A realm's QuickBooks client, from one port: :class:`RealmClients`.

The services that call QuickBooks for a firm (the outbound sync, the error actions, the services import,
the settings routes) ask ``realm_clients.qbo_for(firm_id, realm_id)`` for a client of that company. They
still read the firm's :class:`~qbsync.repositories.connections.Connection` themselves (its status and
realm decide whether to call at all); how the client gets its tokens and its request budget is not theirs
to know.

:class:`ConnectionRealmClients` is the production implementation: the firm's
:class:`~qbsync.connection.tokens.TokenProvider` (refresh, single-flight, "needs reconnect" announced by
the :class:`~qbsync.connection.service.ConnectionService`) and the deployment's client factory
(``qbsync.wiring``: every client paced by the realm's shared limiter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from qbsync.connection.service import ConnectionService
from qbsync.qbo.client import QboClient, TokenSource

__all__ = ["ConnectionRealmClients", "QboClientFactory", "RealmClients"]

#: ``(realm_id, tokens) -> QboClient``
QboClientFactory = Callable[[str, TokenSource], QboClient]


class RealmClients(Protocol):
    """The port: a QuickBooks client of ``realm_id`` acting with ``firm_id``'s authorization."""

    def qbo_for(self, firm_id: str, realm_id: str) -> QboClient: ...


class ConnectionRealmClients:
    """:class:`RealmClients` over the connection service's token providers and a client factory."""

    def __init__(self, connections: ConnectionService, client: QboClientFactory) -> None:
        self._connections = connections
        self._client = client

    def qbo_for(self, firm_id: str, realm_id: str) -> QboClient:
        return self._client(realm_id, self._connections.token_provider(firm_id, realm_id))
