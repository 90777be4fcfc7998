"""Domain models of the connection lifecycle that cross the API boundary (never tokens, never DB items)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qbsync.models.firm_settings import IsoDate
from qbsync.models.qbsync_events import CompanyWarning
from qbsync.repositories.connections import ArchivedConnection, Connection


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class ConnectSettings(BaseModel):
    """What the owner picks before consent (PRODUCT.md B.1-B.2). Strict, like the settings it seeds."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)

    #: which client accounts sync: only those with invoices or payments (default), or all.
    sync_accounts: Literal["with_activity", "all"] = "with_activity"
    #: accounts, invoices and payments dated before this are not synced.
    sync_start_date: IsoDate | None = None


class ConnectUrl(BaseModel):
    model_config = ConfigDict(defer_build=True)

    url: str
    expires_at: str


class PendingSwitchView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    realm_id: str
    company_name: str | None = None
    requested_at: str | None = None


class ArchivedView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    realm_id: str
    company_name: str | None = None
    archived_at: str | None = None


class ConnectionView(BaseModel):
    """The connection as the admin API shows it."""

    model_config = ConfigDict(defer_build=True)

    status: str
    realm_id: str
    company_name: str | None = None
    connected_at: str | None = None
    updated_at: str | None = None
    reason: str | None = None
    access_expires_at: str | None = None
    refresh_expires_at: str | None = None
    refresh_hard_expires_at: str | None = None
    pending_switch: PendingSwitchView | None = None
    archived: list[ArchivedView] = Field(default_factory=list)
    settings: dict[str, object] = Field(default_factory=dict)

    @classmethod
    def of(cls, connection: Connection, archived: list[ArchivedConnection] | None = None) -> ConnectionView:
        tokens = connection.tokens
        pending = connection.pending
        return cls(
            status=connection.status,
            realm_id=connection.realm_id,
            company_name=connection.company_name,
            connected_at=_iso(connection.connected_at),
            updated_at=_iso(connection.updated_at),
            reason=connection.reason,
            access_expires_at=_iso(tokens.access_expires_at) if tokens else None,
            refresh_expires_at=_iso(tokens.refresh_expires_at) if tokens else None,
            refresh_hard_expires_at=_iso(tokens.refresh_hard_expires_at) if tokens else None,
            pending_switch=PendingSwitchView(
                realm_id=pending.realm_id,
                company_name=pending.company_name,
                requested_at=_iso(pending.requested_at),
            )
            if pending
            else None,
            archived=[
                ArchivedView(
                    realm_id=a.realm_id, company_name=a.company_name, archived_at=_iso(a.archived_at)
                )
                for a in archived or []
            ],
            settings=dict(connection.settings),
        )


class AuthorizationParked(BaseModel):
    """What the OAuth callback did: the grant is proven and parked under a one-time ``handle`` that only the
    user who started the connection can complete (``POST /connection/complete``) before ``expires_at``.

    ``return_url``: the platform's return URL with the handle added, where the browser is sent (None when
    the deployment configures no return URL: the callback then shows the handle on its page).
    """

    model_config = ConfigDict(defer_build=True, frozen=True)

    handle: str = Field(repr=False)
    expires_at: str
    realm_id: str
    company_name: str | None = None
    return_url: str | None = Field(default=None, repr=False)


class ConnectOutcome(BaseModel):
    """What completing a connection did (``POST /connection/complete``)."""

    model_config = ConfigDict(defer_build=True)

    change: Literal["connected", "reconnected", "switch_pending"] = Field(
        description="connected: first connection; reconnected: the same company again; switch_pending: a "
        "different company, held until the owner confirms with ACCEPT (POST /connection/confirm-switch)"
    )
    status: str
    realm_id: str
    company_name: str | None = None
    message: str
    warnings: list[CompanyWarning] = Field(
        default_factory=list,
        description="what about the company makes records land differently from the platform (e.g. custom "
        "transaction numbers off: invoices get QuickBooks' numbers); they do not block anything",
    )


class CheckResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: str
    realm_id: str
    company_name: str | None = None
    checked_at: str
    warnings: list[CompanyWarning] = Field(
        default_factory=list,
        description="what about the company makes records land differently from the platform (e.g. custom "
        "transaction numbers off: invoices get QuickBooks' numbers); they do not block anything",
    )
