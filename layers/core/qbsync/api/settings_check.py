"""Checks a firm's sync settings (PRODUCT.md B) against its QuickBooks company before they are stored.

:func:`settings_problems` is pure: it takes the settings, the company's reference data
(:class:`~qbsync.qbo.reference.QboReference`) and the QBO Items the settings name, and returns one line
per violation, each naming the setting and why (``deposit_account_id: account 35 is a Credit Card
account; choose a Bank or Other Current Asset account``). :func:`load_items` fetches those Items.

:func:`settings_warnings` is what is not a problem (nothing is refused) but makes records land differently
from what the firm sees: custom transaction numbers off in the company (invoices get QuickBooks' numbers).

Both come from the pre-flight check (:mod:`qbsync.connection.preflight`), the one place that knows what
about a company makes records fail or land differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qbsync.connection.preflight import (
    SERVICE_ITEM_TYPES,
    company_warnings,
    item_ids,
    load_items,
    setting_problems,
)
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.qbsync_events import CompanyWarning
from qbsync.qbo.client import QboClient
from qbsync.qbo.reference import QboReference, ReferenceCache

__all__ = [
    "SERVICE_ITEM_TYPES",
    "item_ids",
    "load_items",
    "load_reference",
    "load_services",
    "settings_problems",
    "settings_warnings",
]


def load_reference(qbo: QboClient) -> QboReference:
    """The company's reference data, read fresh (no cache: the firm is choosing from it right now)."""

    return ReferenceCache.load(qbo)


def load_services(qbo: QboClient) -> list[dict[str, Any]]:
    """The company's active Service items (what a work type or the default service may map to), by name."""
    rows = qbo.query_all("SELECT * FROM Item WHERE Type = 'Service' AND Active = true ORDERBY Name")
    return [dict(r) for r in rows if isinstance(r, Mapping) and isinstance(r.get("Id"), str)]


def settings_problems(
    settings: FirmSyncSettings, ref: QboReference, items: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Every way ``settings`` do not fit the company: one ``"<setting>: <why>"`` line each (empty = fit).

    ``items``: the active QBO Items named by the settings, by id (:func:`load_items`).
    """
    return [str(p) for p in setting_problems(settings, ref, items)]


def settings_warnings(ref: QboReference) -> list[CompanyWarning]:
    """What about the company makes records land differently from the platform whatever the settings (not
    problems: the settings are stored and the sync goes on), e.g. custom transaction numbers off."""
    return company_warnings(ref)
