"""The production QBO client factory: one place that says how every qbsync QBO client is built.

Every QuickBooks call of every function (the outbound worker, the admin API's settings check, error actions
and service import, the connection check) takes a slot of the realm's shared request budget
(:mod:`qbsync.qbo.ratelimit`), so a busy admin and a busy sync worker together still stay under Intuit's
per-realm limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qbsync.qbo.client import QboClient, TokenSource

__all__ = ["paced_client_factory"]


def paced_client_factory(table: Any | None = None) -> Callable[[str, TokenSource], QboClient]:
    """``(realm_id, tokens) -> QboClient`` from the deployment's settings, paced per realm.

    ``table``: the sync-state table adapter holding the rate windows (default: ``SYNC_TABLE_NAME``).
    Raises ConfigurationError (missing env) when called, like the settings it reads.
    """
    from qbsync.adapters.dynamodb import DynamoTable
    from qbsync.qbo.ratelimit import RealmRateLimiter
    from qbsync.settings import get_core_settings, get_qbo_settings

    qbo = get_qbo_settings()
    windows = table if table is not None else DynamoTable(get_core_settings().sync_table_name)
    limiter = RealmRateLimiter(windows)

    def client(realm_id: str, tokens: TokenSource) -> QboClient:
        return QboClient(
            base_url=qbo.qbo_api_base_url,
            realm_id=realm_id,
            tokens=tokens,
            minor_version=qbo.qbo_minor_version,
            limiter=limiter,
        )

    return client
