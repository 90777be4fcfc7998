"""Checks a firm's sync settings (PRODUCT.md B) against its QuickBooks company before they are stored.

:func:`settings_problems` is pure: it takes the settings, the company's reference data
(:class:`~qbsync.qbo.reference.QboReference`) and the QBO Items the settings name, and returns one line
per violation, each naming the setting and why (``deposit_account_id: account 35 is a Credit Card
account; choose a Bank or Other Current Asset account``). :func:`load_items` fetches those Items.

:func:`settings_warnings` is what is not a problem (nothing is refused) but makes records land differently
from what the firm sees: custom transaction numbers off in the company (invoices get QuickBooks' numbers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.qbsync_events import CompanyWarning
from qbsync.qbo.client import QboClient, quote_literal
from qbsync.qbo.reference import (
    DEPOSIT_ACCOUNT_TYPES,
    EXPENSE_ACCOUNT_TYPES,
    INCOME_ACCOUNT_TYPES,
    QboReference,
    ReferenceCache,
    company_warnings,
)

__all__ = [
    "SERVICE_ITEM_TYPES",
    "item_ids",
    "load_items",
    "load_reference",
    "load_services",
    "settings_problems",
    "settings_warnings",
]

#: QBO Item types a work type may map to (services; QBO.md "Item")
SERVICE_ITEM_TYPES = frozenset({"Service"})
_IN_CHUNK = 100


def item_ids(settings: FirmSyncSettings) -> list[str]:
    """The QBO Item ids the settings name (work-type map targets and the default service), sorted."""
    ids = set(settings.work_type_map.values())
    if settings.default_service_id:
        ids.add(settings.default_service_id)
    return sorted(ids)


def load_reference(qbo: QboClient) -> QboReference:
    """The company's reference data, read fresh (no cache: the firm is choosing from it right now)."""

    return ReferenceCache.load(qbo)


def load_services(qbo: QboClient) -> list[dict[str, Any]]:
    """The company's active Service items (what a work type or the default service may map to), by name."""
    rows = qbo.query_all("SELECT * FROM Item WHERE Type = 'Service' AND Active = true ORDERBY Name")
    return [dict(r) for r in rows if isinstance(r, Mapping) and isinstance(r.get("Id"), str)]


def load_items(qbo: QboClient, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The active QBO Items among ``ids``, by id. QBO ids are digits: other ids cannot exist (not queried).

    Raises the QBO client's errors (ReconnectRequired, Throttled, ServiceUnavailable …).
    """
    wanted = sorted({i for i in ids if i.isdigit()})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = ", ".join(quote_literal(i) for i in wanted[start : start + _IN_CHUNK])
        for raw in qbo.query(f"SELECT * FROM Item WHERE Id IN ({chunk})"):  # noqa: S608 - quoted literals
            item = raw.get("Item", raw) if isinstance(raw, Mapping) else {}
            if isinstance(item, Mapping) and isinstance(item.get("Id"), str):
                found[item["Id"]] = dict(item)
    return found


def _account_problem(
    ref: QboReference, setting: str, account_id: str | None, types: frozenset[str], wanted: str
) -> str | None:
    if account_id is None:
        return None
    account = ref.account(account_id)
    if account is None:
        return f"{setting}: QuickBooks has no account {account_id}"
    if not account.active:
        return f"{setting}: account {account_id} is inactive in QuickBooks"
    if account.account_type not in types:
        return f"{setting}: account {account_id} is a {account.account_type} account; choose {wanted}"
    return None


def _tax_problems(ref: QboReference, settings: FirmSyncSettings) -> list[str]:
    problems = []
    for platform_rate, mapping in sorted(settings.tax_map.items()):
        where = f"tax_map.{platform_rate}"
        code = ref.tax_code(mapping.tax_code_id)
        if code is None:
            problems.append(f"{where}.tax_code_id: QuickBooks has no tax code {mapping.tax_code_id}")
            continue
        if not code.active:
            problems.append(f"{where}.tax_code_id: tax code {mapping.tax_code_id} is inactive in QuickBooks")
        for field, rate_id in (
            ("primary_rate_id", mapping.primary_rate_id),
            ("secondary_rate_id", mapping.secondary_rate_id),
        ):
            if rate_id is None:
                continue
            rate = ref.tax_rate(rate_id)
            if rate is None:
                problems.append(f"{where}.{field}: QuickBooks has no tax rate {rate_id}")
            elif rate_id not in code.sales_rate_ids:
                problems.append(
                    f"{where}.{field}: tax rate {rate_id} is not a sales rate of tax code "
                    f"{mapping.tax_code_id}"
                )
    return problems


def _item_problem(items: Mapping[str, Mapping[str, Any]], setting: str, item_id: str) -> str | None:
    item = items.get(item_id)
    if item is None:
        return f"{setting}: QuickBooks has no active service {item_id}"
    if item.get("Type") not in SERVICE_ITEM_TYPES:
        return f"{setting}: QuickBooks item {item_id} is not a service (type {item.get('Type')})"
    return None


def settings_problems(
    settings: FirmSyncSettings, ref: QboReference, items: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Every way ``settings`` do not fit the company: one ``"<setting>: <why>"`` line each (empty = fit).

    ``items``: the active QBO Items named by the settings, by id (:func:`load_items`).
    """
    problems = [
        _account_problem(
            ref,
            "deposit_account_id",
            settings.deposit_account_id,
            DEPOSIT_ACCOUNT_TYPES,
            "a Bank or Other Current Asset account",
        ),
        _account_problem(
            ref,
            "service_income_account_id",
            settings.service_income_account_id,
            INCOME_ACCOUNT_TYPES,
            "an Income account",
        ),
        _account_problem(
            ref,
            "fee_expense_account_id",
            settings.fee_expense_account_id,
            EXPENSE_ACCOUNT_TYPES,
            "an Expense or Other Expense account",
        ),
    ]
    if settings.customer_type_id is not None:
        ctype = ref.customer_type(settings.customer_type_id)
        if ctype is None:
            problems.append(f"customer_type_id: QuickBooks has no customer type {settings.customer_type_id}")
        elif not ctype.active:
            problems.append(f"customer_type_id: customer type {settings.customer_type_id} is inactive")
    result = [p for p in problems if p is not None]
    result.extend(_tax_problems(ref, settings))
    for work_type, item_id in sorted(settings.work_type_map.items()):
        problem = _item_problem(items, f"work_type_map.{work_type}", item_id)
        if problem:
            result.append(problem)
    if settings.default_service_id is not None:
        problem = _item_problem(items, "default_service_id", settings.default_service_id)
        if problem:
            result.append(problem)
    return result


def settings_warnings(ref: QboReference) -> list[CompanyWarning]:
    """What about the company makes records land differently from the platform whatever the settings (not
    problems: the settings are stored and the sync goes on), e.g. custom transaction numbers off."""
    return company_warnings(ref)
