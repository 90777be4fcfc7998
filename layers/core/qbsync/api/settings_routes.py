"""Admin API: the firm's sync settings (PRODUCT.md B). ``GET /settings``, ``PUT /settings``,
``GET /settings/choices`` (the QuickBooks values each setting may take, for the settings page),
``GET /settings/check`` (the stored settings checked against the company now: problems and warnings).

``PUT`` replaces the whole settings document (fields left out take their defaults; send what ``GET``
returned with your changes). Before storing, the settings are checked against the firm's QuickBooks
company (:mod:`qbsync.api.settings_check`), so QuickBooks must be connected (409 otherwise); every
violation is named in one 400 answer. What is not a problem but makes records land differently from what
the firm sees (custom transaction numbers off: invoices get QuickBooks' numbers) is a **warning**: ``PUT``
stores the settings and answers the warnings; ``GET /settings/check`` answers them with the problems.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from qbsync.api.common import WRITE_ROLES, caller_of, error_responses
from qbsync.auth import require_role
from qbsync.errors import BadRequest, Conflict
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.qbsync_events import CompanyWarning
from qbsync.observability import logger, metrics
from qbsync.qbo.reference import DEPOSIT_ACCOUNT_TYPES, EXPENSE_ACCOUNT_TYPES, INCOME_ACCOUNT_TYPES
from qbsync.repositories.connections import CONNECTED, Connection
from qbsync.wiring import SettingsWiring, settings_wiring

from . import settings_check

__all__ = ["SettingsCheck", "SettingsChoices", "SettingsStored", "SettingsView", "router"]

router = Router()


class SettingsView(BaseModel):
    """The firm's settings as the sync uses them now."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    settings: FirmSyncSettings
    is_default: bool = Field(description="true until the firm stores settings (product defaults shown)")
    updated_at: datetime | None = Field(None, description="when the settings were last stored (UTC)")


_WARNINGS_DESCRIPTION = (
    "not problems (nothing is refused, the sync goes on) but what makes records land differently from what "
    "the firm sees, e.g. custom_txn_numbers_off: invoices get QuickBooks' own numbers, not the platform's"
)


class SettingsStored(SettingsView):
    """The settings as stored, and the company's warnings."""

    warnings: list[CompanyWarning] = Field(default_factory=list, description=_WARNINGS_DESCRIPTION)


class SettingsCheck(BaseModel):
    """The firm's settings (stored, or the defaults) checked against the QuickBooks company now."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    ok: bool = Field(description="true when there is no problem (warnings do not count)")
    problems: list[str] = Field(
        description="what PUT /settings would refuse: one '<setting>: <why>' line each (e.g. an account "
        "made inactive in QuickBooks since the settings were stored)"
    )
    warnings: list[CompanyWarning] = Field(description=_WARNINGS_DESCRIPTION)
    checked_at: datetime


class Choice(BaseModel):
    """One QuickBooks object a setting may point at."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    id: str
    name: str
    type: str | None = Field(None, description="the QuickBooks account or item type, when it matters")
    rate: str | None = Field(None, description="tax rates: the percentage, as QuickBooks holds it")
    rate_ids: list[str] | None = Field(
        None, description="tax codes: the sales tax rates a tax_map entry may name"
    )


class SettingsChoices(BaseModel):
    """The active QuickBooks objects each setting may name (what ``PUT /settings`` accepts)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    deposit_accounts: list[Choice] = Field(description="deposit_account_id: Bank or Other Current Asset")
    income_accounts: list[Choice] = Field(description="service_income_account_id: Income accounts")
    expense_accounts: list[Choice] = Field(description="fee_expense_account_id: Expense or Other Expense")
    customer_types: list[Choice] = Field(description="customer_type_id")
    tax_codes: list[Choice] = Field(description="tax_map values (tax codes)")
    tax_rates: list[Choice] = Field(description="tax_map values (tax rates)")
    services: list[Choice] = Field(description="work_type_map values and default_service_id: Service items")


def _view(w: SettingsWiring, firm_id: str, connection: Connection | None) -> SettingsView:
    stored = w.settings.find(firm_id)
    if stored is None:
        seed = connection.settings if connection is not None else None
        return SettingsView(settings=w.settings.get(firm_id, seed=seed), is_default=True)
    updated = w.settings.updated_at(firm_id)
    return SettingsView(
        settings=stored,
        is_default=False,
        updated_at=datetime.fromtimestamp(updated, UTC) if updated is not None else None,
    )


@router.get(
    "/settings",
    summary="Get the firm's sync settings",
    description="The stored settings, or the product defaults (is_default=true) until the firm saves some. "
    "Any role.",
    tags=["Settings"],
    responses=error_responses(),
)
def get_settings() -> SettingsView:
    caller = caller_of(router)
    w = settings_wiring()
    return _view(w, caller.firm_id, w.connections.get(caller.firm_id))


def _connected(w: SettingsWiring, firm_id: str, what: str) -> Connection:
    connection = w.connections.get(firm_id)
    if connection is None or connection.status != CONNECTED:
        status = connection.status if connection is not None else "not_connected"
        raise Conflict(f"QuickBooks is not connected ({status}): connect it before {what}", firm_id=firm_id)
    return connection


@router.get(
    "/settings/choices",
    summary="List the QuickBooks values each setting may take",
    description="Active accounts by the type each setting needs, customer types, tax codes and rates, and "
    "Service items, read from the firm's QuickBooks company now (the same rules PUT /settings checks). "
    "QuickBooks must be connected (409 otherwise). Owner or admin.",
    tags=["Settings"],
    responses=error_responses(409, 429, 503),
)
def get_settings_choices() -> SettingsChoices:
    caller = caller_of(router)
    require_role(caller, *WRITE_ROLES)
    w = settings_wiring()
    connection = _connected(w, caller.firm_id, "listing its values")
    qbo = w.clients.qbo_for(caller.firm_id, connection.realm_id)
    ref = settings_check.load_reference(qbo)
    services = settings_check.load_services(qbo)

    def accounts(types: frozenset[str]) -> list[Choice]:
        rows = [a for a in ref.accounts.values() if a.active and a.account_type in types]
        return [Choice(id=a.id, name=a.name, type=a.account_type) for a in sorted(rows, key=lambda a: a.name)]

    return SettingsChoices(
        deposit_accounts=accounts(DEPOSIT_ACCOUNT_TYPES),
        income_accounts=accounts(INCOME_ACCOUNT_TYPES),
        expense_accounts=accounts(EXPENSE_ACCOUNT_TYPES),
        customer_types=[
            Choice(id=c.id, name=c.name)
            for c in sorted(ref.customer_types.values(), key=lambda c: c.name)
            if c.active
        ],
        tax_codes=[
            Choice(id=t.id, name=t.name, rate_ids=list(t.sales_rate_ids))
            for t in sorted(ref.tax_codes.values(), key=lambda t: t.name)
            if t.active
        ],
        tax_rates=[
            Choice(id=r.id, name=r.name, rate=None if r.rate_value is None else str(r.rate_value))
            for r in sorted(ref.tax_rates.values(), key=lambda r: r.name)
            if r.active
        ],
        services=[Choice(id=i["Id"], name=str(i.get("Name") or ""), type=i.get("Type")) for i in services],
    )


@router.get(
    "/settings/check",
    summary="Check the firm's settings against its QuickBooks company",
    description="The stored settings (or the defaults) checked against the company now, with the rules PUT "
    "/settings applies: problems (what PUT would refuse) and warnings (nothing is refused, but records land "
    "differently from what the firm sees: custom_txn_numbers_off, invoices get QuickBooks' own numbers). "
    "Check before the first invoice syncs. QuickBooks must be connected (409 otherwise). Owner or admin.",
    tags=["Settings"],
    responses=error_responses(409, 429, 503),
)
def get_settings_check() -> SettingsCheck:
    caller = caller_of(router)
    require_role(caller, *WRITE_ROLES)
    w = settings_wiring()
    connection = _connected(w, caller.firm_id, "checking the settings against its company")
    settings = _view(w, caller.firm_id, connection).settings
    qbo = w.clients.qbo_for(caller.firm_id, connection.realm_id)
    ref = settings_check.load_reference(qbo)
    items = settings_check.load_items(qbo, settings_check.item_ids(settings))
    problems = settings_check.settings_problems(settings, ref, items)
    return SettingsCheck(
        ok=not problems,
        problems=problems,
        warnings=settings_check.settings_warnings(ref),
        checked_at=datetime.fromtimestamp(w.clock(), UTC),
    )


@router.put(
    "/settings",
    summary="Replace the firm's sync settings",
    description="Replaces the whole settings document: fields left out take their defaults. Every QuickBooks "
    "id is checked against the firm's company first (deposit account: Bank or Other Current Asset; income "
    "account: Income; fee account: Expense or Other Expense; customer type, tax codes and rates; work-type "
    "and default services must be active Service items); every violation is named in one 400 answer. "
    "Stored settings are answered with the company's warnings (not refused: e.g. custom_txn_numbers_off, "
    "invoices get QuickBooks' own numbers). QuickBooks must be connected (409 otherwise). Owner or admin.",
    tags=["Settings"],
    responses=error_responses(409, 429, 503),
)
def put_settings(settings: Annotated[FirmSyncSettings, Body()]) -> SettingsStored:
    caller = caller_of(router)
    require_role(caller, *WRITE_ROLES)
    w = settings_wiring()
    connection = _connected(
        w, caller.firm_id, "changing the sync settings, they are checked against the QuickBooks company"
    )
    qbo = w.clients.qbo_for(caller.firm_id, connection.realm_id)
    ref = settings_check.load_reference(qbo)
    items = settings_check.load_items(qbo, settings_check.item_ids(settings))
    problems = settings_check.settings_problems(settings, ref, items)
    if problems:
        raise BadRequest("invalid settings: " + "; ".join(problems), firm_id=caller.firm_id)
    w.settings.put(caller.firm_id, settings, now=w.clock())
    logger.info("sync settings stored", extra={"firm_id": caller.firm_id, "by": caller.user_id})
    metrics.add_metric(name="SettingsUpdated", unit="Count", value=1)
    stored = _view(w, caller.firm_id, connection)
    return SettingsStored(**dict(stored), warnings=settings_check.settings_warnings(ref))
