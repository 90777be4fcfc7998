"""Pre-flight check of a firm's QuickBooks company (PRODUCT.md J.2): before anything fails, what about the
company (and the firm's sync settings against it) will make records fail or land differently.

It runs before the initial sync and daily. :meth:`PreflightCheck.run` reads the company once - the
reference data of :meth:`~qbsync.qbo.reference.ReferenceCache.load` (accounts, customer types, payment
methods, tax codes and rates, the "Sales" item, CompanyInfo and Preferences in ONE QuickBooks batch call),
plus one Item query when the settings name QuickBooks items - and returns a :class:`PreflightResult`: one
:class:`Finding` per problem kind, in the order of :data:`FINDING_CODES`.

* ``blocking``: records of the finding's ``record_types`` would be refused by qbsync's mapping (or by
  QuickBooks) until the firm fixes it. Where only some of them are (card payments only, lines of one work
  type only), the message and ``detail`` say which.
* ``warning``: those records sync, but land differently from what the firm sees on the platform.

This module is the one place that knows what about a company makes records fail or land differently:
the settings check of ``PUT /settings`` (:func:`setting_problems`, via :mod:`qbsync.api.settings_check`) and
the connection warnings (:func:`company_warnings`, :func:`preference_warnings`, used by
:mod:`qbsync.connection.service`) are built from it. The rules mirror :mod:`qbsync.outbound.mapping`, which
refuses a record with a ``MappingError`` of the same ``reason_code`` where one exists (``books_closed``,
``deposit_account_type``, ``payment_method_missing``...). Codes, severities and fixes: docs/preflight.md.

Messages and details name setting paths, QuickBooks ids, dates and currencies only - never client
personal data. QuickBooks errors propagate (ReconnectRequired, Throttled, ServiceUnavailable,
ReferenceDataError for an answer not in QuickBooks' documented shape).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.preflight import (
    PREFLIGHT_FORMAT,
    Finding,
    PreflightResult,
    PreflightResultInvalid,
    Severity,
    iso_utc,
)
from qbsync.models.qbsync_events import CompanyWarning
from qbsync.qbo.client import QboClient, quote_literal
from qbsync.qbo.reference import (
    DEPOSIT_ACCOUNT_TYPES,
    EXPENSE_ACCOUNT_TYPES,
    INCOME_ACCOUNT_TYPES,
    PAYMENT_METHOD_NAMES,
    REQUIRED_PAYMENT_METHODS,
    QboReference,
    ReferenceCache,
    ReferenceDataError,
)
from qbsync.vocab import SYNCABLE_TYPES

__all__ = [
    "COMPANY_WARNING_CODES",
    "FINDING_CODES",
    "FINDING_KINDS",
    "PREFLIGHT_FORMAT",
    "SERVICE_ITEM_TYPES",
    "Finding",
    "FindingKind",
    "PreflightCheck",
    "PreflightResult",
    "PreflightResultInvalid",
    "SettingProblem",
    "Severity",
    "company_warnings",
    "evaluate",
    "iso_utc",
    "item_ids",
    "load_items",
    "preference_warnings",
    "setting_problems",
]

#: QBO Item types a work type or the default service may map to (services; QBO.md §5.2)
SERVICE_ITEM_TYPES = frozenset({"Service"})
_IN_CHUNK = 100
#: at most this many setting paths / ids listed in a finding's detail and message
_LIST_MAX = 20
_MESSAGE_LINES = 5

_DATED = ("invoice", "payment", "refund", "fee")
_SETTINGS_SCREEN = "in the sync settings"


@dataclass(frozen=True, slots=True)
class FindingKind:
    """What one finding code means: its severity, the record types it affects and the fix."""

    code: str
    severity: Severity
    record_types: tuple[str, ...]
    fix: str


#: every finding, in display order (blocking first); docs/preflight.md explains each
FINDING_KINDS: tuple[FindingKind, ...] = (
    FindingKind(
        "deposit_account_missing",
        "blocking",
        ("payment",),
        "Reactivate the account in QuickBooks (Accounting > Chart of accounts), or choose another deposit "
        f"account (a Bank or Other Current Asset account) {_SETTINGS_SCREEN}.",
    ),
    FindingKind(
        "deposit_account_type",
        "blocking",
        ("payment",),
        f"Choose a Bank or Other Current Asset account as the deposit account {_SETTINGS_SCREEN}.",
    ),
    FindingKind(
        "undeposited_funds_missing",
        "blocking",
        ("payment",),
        f"Choose a deposit account (a Bank or Other Current Asset account) {_SETTINGS_SCREEN}.",
    ),
    FindingKind(
        "payment_method_missing",
        "blocking",
        ("payment",),
        "In QuickBooks go to Settings > All lists > Payment methods and add the missing method (or open it "
        "and make it active again).",
    ),
    FindingKind(
        "fee_expense_account_missing",
        "blocking",
        ("fee",),
        "Choose an expense account for processing fees in the sync settings (or reactivate the chosen one "
        "in QuickBooks under Accounting > Chart of accounts).",
    ),
    FindingKind(
        "fee_expense_account_type",
        "blocking",
        ("fee",),
        f"Choose an Expense or Other Expense account for processing fees {_SETTINGS_SCREEN}.",
    ),
    FindingKind(
        "income_account_missing",
        "blocking",
        ("service",),
        "Reactivate the account in QuickBooks (Accounting > Chart of accounts), or choose another service "
        f"income account {_SETTINGS_SCREEN}.",
    ),
    FindingKind(
        "income_account_type",
        "blocking",
        ("service",),
        f"Choose an Income account as the service income account {_SETTINGS_SCREEN}.",
    ),
    FindingKind(
        "customer_type_missing",
        "blocking",
        ("client_account",),
        "Choose another customer type for new customers in the sync settings, or make the chosen one active "
        "again in QuickBooks (Sales > Customers > Customer types).",
    ),
    FindingKind(
        "tax_code_invalid",
        "blocking",
        ("invoice",),
        "Map those platform tax rates to active QuickBooks tax rates in the sync settings (tax rates).",
    ),
    FindingKind(
        "tax_rate_invalid",
        "blocking",
        ("invoice",),
        "Map those platform tax rates again in the sync settings (tax rates), choosing rates that belong to "
        "the chosen QuickBooks tax code.",
    ),
    FindingKind(
        "work_type_item_missing",
        "blocking",
        ("invoice",),
        "Map those work types to active QuickBooks services in the sync settings (work types).",
    ),
    FindingKind(
        "default_service_missing",
        "blocking",
        ("invoice", "payment", "refund"),
        f"Choose an active QuickBooks service as the default service {_SETTINGS_SCREEN}.",
    ),
    FindingKind(
        "books_closed",
        "warning",
        _DATED,
        "Nothing to do if those records should stay out of QuickBooks. Otherwise move the closing date "
        "earlier in QuickBooks (Settings > Account and settings > Advanced > Accounting > Close the books), "
        "or set the sync start date in the sync settings to a day after the closing date so that those "
        "records are skipped instead.",
    ),
    FindingKind(
        "custom_txn_numbers_off",
        "warning",
        ("invoice",),
        "To keep the platform's numbers, turn them on in QuickBooks: Settings > Account and settings > Sales "
        "> Custom transaction numbers; invoices synced from then on carry the platform's number.",
    ),
    FindingKind(
        "auto_apply_credit_on",
        "warning",
        ("invoice", "payment"),
        "To keep QuickBooks' balances the same as the platform's, turn off Settings > Account and settings > "
        "Advanced > Automation > Automatically apply credits in QuickBooks.",
    ),
    FindingKind(
        "multicurrency_on",
        "warning",
        ("client_account", "invoice", "payment", "refund", "fee"),
        "Check that each client account's invoices and payments on the platform are in the client "
        "account's currency before the sync (multicurrency cannot be turned off in QuickBooks).",
    ),
    FindingKind(
        "automated_sales_tax_on",
        "warning",
        ("invoice",),
        "Nothing to do if that is expected. Check the tax of the first synced invoices in QuickBooks "
        "(Taxes > Sales tax) and that each taxable service is marked taxable on the platform.",
    ),
    FindingKind(
        "individual_customer_type_missing",
        "warning",
        ("client_account",),
        "Choose a customer type for new customers in the sync settings, or add a customer type named "
        "Individual in QuickBooks (Sales > Customers > Customer types).",
    ),
    FindingKind(
        "services_use_sales_item",
        "warning",
        ("service", "invoice"),
        "Nothing to do if that is expected; otherwise choose a service income account in the sync settings "
        "so that each service is created as its own QuickBooks product/service.",
    ),
)
#: every finding code, in display order
FINDING_CODES: tuple[str, ...] = tuple(k.code for k in FINDING_KINDS)
_KIND = {k.code: k for k in FINDING_KINDS}
_ORDER = {code: i for i, code in enumerate(FINDING_CODES)}
if len(_KIND) != len(FINDING_KINDS) or any(  # pragma: no cover - a wrong edit fails every import
    t not in SYNCABLE_TYPES for k in FINDING_KINDS for t in k.record_types
):
    raise RuntimeError("qbsync.connection.preflight: finding codes must be unique, record types syncable")

#: the findings the connection answers as :class:`CompanyWarning` (the codes that model allows)
COMPANY_WARNING_CODES: tuple[str, ...] = get_args(CompanyWarning.model_fields["code"].annotation)


def _finding(code: str, message: str, **detail: str) -> Finding:
    kind = _KIND[code]
    return Finding(code, kind.severity, message, kind.fix, kind.record_types, detail)


# --- the sync settings against the company ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One way a firm setting does not fit the company: the ``setting`` (path), the finding ``code`` it
    makes, ``reason`` (plain, ids only) and the QuickBooks id at fault. ``str()`` is
    ``"<setting>: <reason>"``, the line ``PUT /settings`` answers."""

    setting: str
    code: str
    reason: str
    qbo_id: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.reason}"


def item_ids(settings: FirmSyncSettings) -> list[str]:
    """The QBO Item ids the settings name (work-type map targets and the default service), sorted."""
    ids = set(settings.work_type_map.values())
    if settings.default_service_id:
        ids.add(settings.default_service_id)
    return sorted(ids)


def load_items(qbo: QboClient, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The QBO Items among ``ids``, by id, one query per 100 ids. QBO ids are digits: other ids cannot exist
    (not queried). QuickBooks answers active items only.

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


_ACCOUNT_SETTINGS: tuple[tuple[str, frozenset[str], str, str, str], ...] = (
    (
        "deposit_account_id",
        DEPOSIT_ACCOUNT_TYPES,
        "a Bank or Other Current Asset account",
        "deposit_account_missing",
        "deposit_account_type",
    ),
    (
        "service_income_account_id",
        INCOME_ACCOUNT_TYPES,
        "an Income account",
        "income_account_missing",
        "income_account_type",
    ),
    (
        "fee_expense_account_id",
        EXPENSE_ACCOUNT_TYPES,
        "an Expense or Other Expense account",
        "fee_expense_account_missing",
        "fee_expense_account_type",
    ),
)


def _account_problems(ref: QboReference, settings: FirmSyncSettings) -> Iterable[SettingProblem]:
    for setting, types, wanted, missing, wrong_type in _ACCOUNT_SETTINGS:
        account_id = getattr(settings, setting)
        if account_id is None:
            continue
        account = ref.account(account_id)
        if account is None:
            yield SettingProblem(setting, missing, f"QuickBooks has no account {account_id}", account_id)
        elif not account.active:
            yield SettingProblem(
                setting, missing, f"account {account_id} is inactive in QuickBooks", account_id
            )
        elif account.account_type not in types:
            yield SettingProblem(
                setting,
                wrong_type,
                f"account {account_id} is a {account.account_type} account; choose {wanted}",
                account_id,
            )


def _tax_problems(ref: QboReference, settings: FirmSyncSettings) -> Iterable[SettingProblem]:
    for platform_rate, mapping in sorted(settings.tax_map.items()):
        where, code_id = f"tax_map.{platform_rate}", mapping.tax_code_id
        code = ref.tax_code(code_id)
        if code is None:
            yield SettingProblem(
                f"{where}.tax_code_id", "tax_code_invalid", f"QuickBooks has no tax code {code_id}", code_id
            )
            continue
        if not code.active:
            yield SettingProblem(
                f"{where}.tax_code_id",
                "tax_code_invalid",
                f"tax code {code_id} is inactive in QuickBooks",
                code_id,
            )
        for name, rate_id in (
            ("primary_rate_id", mapping.primary_rate_id),
            ("secondary_rate_id", mapping.secondary_rate_id),
        ):
            if rate_id is None:
                continue
            if ref.tax_rate(rate_id) is None:
                reason = f"QuickBooks has no tax rate {rate_id}"
            elif rate_id not in code.sales_rate_ids:
                reason = f"tax rate {rate_id} is not a sales rate of tax code {code_id}"
            else:
                continue
            yield SettingProblem(f"{where}.{name}", "tax_rate_invalid", reason, rate_id)


def _item_problem(
    items: Mapping[str, Mapping[str, Any]], setting: str, code: str, item_id: str
) -> SettingProblem | None:
    item = items.get(item_id)
    if item is None:
        return SettingProblem(setting, code, f"QuickBooks has no active service {item_id}", item_id)
    if item.get("Type") not in SERVICE_ITEM_TYPES:
        return SettingProblem(
            setting, code, f"QuickBooks item {item_id} is not a service (type {item.get('Type')})", item_id
        )
    return None


def setting_problems(
    settings: FirmSyncSettings, ref: QboReference, items: Mapping[str, Mapping[str, Any]]
) -> list[SettingProblem]:
    """Every way ``settings`` name QuickBooks objects that are not usable (empty = they fit).

    ``items``: the active QBO Items named by the settings, by id (:func:`load_items`). What the settings
    leave to the defaults (Undeposited Funds, the "Sales" item...) is not checked here: :func:`evaluate` does.
    """
    problems = list(_account_problems(ref, settings))
    if settings.customer_type_id is not None:
        type_id = settings.customer_type_id
        ctype = ref.customer_type(type_id)
        if ctype is None:
            problems.append(
                SettingProblem(
                    "customer_type_id",
                    "customer_type_missing",
                    f"QuickBooks has no customer type {type_id}",
                    type_id,
                )
            )
        elif not ctype.active:
            problems.append(
                SettingProblem(
                    "customer_type_id",
                    "customer_type_missing",
                    f"customer type {type_id} is inactive",
                    type_id,
                )
            )
    problems.extend(_tax_problems(ref, settings))
    for work_type, item_id in sorted(settings.work_type_map.items()):
        problem = _item_problem(items, f"work_type_map.{work_type}", "work_type_item_missing", item_id)
        if problem:
            problems.append(problem)
    if settings.default_service_id is not None:
        problem = _item_problem(
            items, "default_service_id", "default_service_missing", settings.default_service_id
        )
        if problem:
            problems.append(problem)
    return problems


#: what a setting finding says, before the list of problems
_SETTING_LEADS: dict[str, str] = {
    "deposit_account_missing": "The deposit account chosen in the sync settings is missing or inactive in "
    "QuickBooks, so payments would be refused",
    "deposit_account_type": "The deposit account chosen in the sync settings is not a Bank or Other Current "
    "Asset account, the only kinds QuickBooks deposits payments to, so payments would be refused",
    "income_account_missing": "The service income account chosen in the sync settings is missing or "
    "inactive in QuickBooks, so services would be refused",
    "income_account_type": "The service income account chosen in the sync settings is not an Income "
    "account, so services would be refused",
    "fee_expense_account_missing": "The processing-fee expense account chosen in the sync settings is "
    "missing or inactive in QuickBooks, so processing fees would be refused",
    "fee_expense_account_type": "The processing-fee account chosen in the sync settings is not an Expense "
    "account, so processing fees would be refused",
    "customer_type_missing": "The customer type chosen for new customers in the sync settings is missing "
    "or inactive in QuickBooks, so client accounts would be refused",
    "tax_code_invalid": "The tax rate mapping of the sync settings names QuickBooks tax codes that are "
    "missing or inactive, so invoices taxed at those platform rates would be refused",
    "tax_rate_invalid": "The tax rate mapping of the sync settings names QuickBooks tax rates that are "
    "missing or not part of their tax code, so invoices taxed at those platform rates would be refused",
    "work_type_item_missing": "The work type mapping of the sync settings names QuickBooks items that are "
    "missing, inactive or not services, so invoice lines of those work types would be refused",
    "default_service_missing": "The default service chosen in the sync settings is missing, inactive or "
    "not a service in QuickBooks, so invoice lines without a service or a mapped work type (and the lines "
    "of credit payments and refunds) would be refused",
}


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(values[:_LIST_MAX])
    return shown if len(values) <= _LIST_MAX else f"{shown} (+{len(values) - _LIST_MAX} more)"


def _setting_findings(problems: Sequence[SettingProblem]) -> list[Finding]:
    by_code: dict[str, list[SettingProblem]] = {}
    for problem in problems:
        by_code.setdefault(problem.code, []).append(problem)
    findings = []
    for code, group in by_code.items():
        lines = "; ".join(str(p) for p in group[:_MESSAGE_LINES])
        more = f" (and {len(group) - _MESSAGE_LINES} more)" if len(group) > _MESSAGE_LINES else ""
        findings.append(
            _finding(
                code,
                f"{_SETTING_LEADS[code]}: {lines}{more}.",
                settings=_listed([p.setting for p in group]),
                qbo_ids=_listed(sorted({p.qbo_id for p in group})),
                count=str(len(group)),
            )
        )
    return findings


# --- the company itself ----------------------------------------------------------------------------------


def _preference_findings(ref: QboReference, settings: FirmSyncSettings) -> list[Finding]:
    """What the company's Preferences alone make land differently (or fail: the closed books)."""
    found = []
    closed, start = ref.book_close_date, settings.sync_start_date
    if closed is not None and (start is None or start <= closed):
        found.append(
            _finding(
                "books_closed",
                f"The books are closed in QuickBooks through {closed.isoformat()}: QuickBooks refuses "
                "invoices, payments, refunds and fees dated on or before that day, so those records would "
                "fail.",
                books_closed_on=closed.isoformat(),
            )
        )
    if not ref.custom_txn_numbers:
        found.append(
            _finding(
                "custom_txn_numbers_off",
                "Custom transaction numbers are off in this QuickBooks company: invoices will carry "
                "QuickBooks' own numbers (1001, 1002, ...), not the platform's invoice numbers.",
            )
        )
    if ref.auto_apply_credit:
        found.append(
            _finding(
                "auto_apply_credit_on",
                "QuickBooks applies open credits to new invoices by itself in this company: an invoice may "
                "show as paid in QuickBooks while it is still open on the platform, and a client credit the "
                "platform applies may already be used up in QuickBooks.",
            )
        )
    if ref.multicurrency:
        found.append(
            _finding(
                "multicurrency_on",
                f"Multicurrency is on in this QuickBooks company (home currency {ref.home_currency}): each "
                "client is created in its client account's currency, QuickBooks refuses an invoice or "
                "payment in another currency than its customer's, and a customer's currency cannot be "
                "changed once it has transactions.",
                home_currency=ref.home_currency,
            )
        )
    if ref.partner_tax_enabled:
        found.append(
            _finding(
                "automated_sales_tax_on",
                "QuickBooks calculates sales tax itself in this company (automated sales tax): invoice "
                "lines are sent as taxable or not, and the platform's tax total is sent as the invoice's tax "
                "amount, overriding QuickBooks' own calculation; the tax rate mapping of the sync settings "
                "is not used.",
            )
        )
    return found


def _payment_method_finding(ref: QboReference) -> Finding | None:
    missing = [
        method
        for method in REQUIRED_PAYMENT_METHODS
        if not any(ref.payment_method_named(name) for name in PAYMENT_METHOD_NAMES[method])
    ]
    if not missing:
        return None
    names = [PAYMENT_METHOD_NAMES[m][0] for m in missing]
    return _finding(
        "payment_method_missing",
        f"QuickBooks has no active payment method named {' / '.join(repr(n) for n in names)}, so "
        f"{' and '.join(missing)} payments would be refused (other payments are not affected).",
        payment_methods=", ".join(missing),
        qbo_names=", ".join(names),
    )


def _default_findings(ref: QboReference, settings: FirmSyncSettings) -> list[Finding]:
    """What the defaults the settings leave open need from the company (mapping's fallbacks)."""
    found: list[Finding | None] = [_payment_method_finding(ref)]
    if settings.deposit_account_id is None and ref.undeposited_funds() is None:
        found.append(
            _finding(
                "undeposited_funds_missing",
                "No deposit account is chosen in the sync settings and QuickBooks has no active Undeposited "
                "Funds account, where payments go by default, so payments would be refused.",
            )
        )
    if settings.fee_expense_account_id is None and ref.default_fee_expense_account() is None:
        found.append(
            _finding(
                "fee_expense_account_missing",
                "No expense account is chosen for processing fees in the sync settings and QuickBooks has no "
                "active Expense account of the Bank charges type to use instead, so processing fees would be "
                "refused.",
            )
        )
    if settings.default_service_id is None and ref.sales_item_id is None:
        found.append(
            _finding(
                "default_service_missing",
                "No default service is chosen in the sync settings and QuickBooks has no Sales item, so "
                "invoice lines without a service or a mapped work type (and the lines of credit payments and "
                "refunds) would be refused.",
            )
        )
    if settings.customer_type_id is None and ref.customer_type_named("Individual") is None:
        found.append(
            _finding(
                "individual_customer_type_missing",
                "No customer type is chosen for new customers in the sync settings and QuickBooks has no "
                "active customer type named Individual, so new customers are created without a customer "
                "type.",
            )
        )
    if settings.service_income_account_id is None and ref.uncategorized_income() is None:
        found.append(
            _finding(
                "services_use_sales_item",
                "No service income account is chosen in the sync settings and QuickBooks has no "
                "Uncategorized Income account, so platform services are not created in QuickBooks: their "
                "invoice lines go to QuickBooks' Sales item, described with the service name.",
            )
        )
    return [f for f in found if f is not None]


def evaluate(
    ref: QboReference, settings: FirmSyncSettings, items: Mapping[str, Mapping[str, Any]]
) -> tuple[Finding, ...]:
    """Every finding for the company and the firm's settings, at most one per code, in the order of
    :data:`FINDING_CODES`. Pure: ``items`` are the QBO Items the settings name (:func:`load_items`)."""
    problems = setting_problems(settings, ref, items)
    if ref.partner_tax_enabled:  # automated sales tax: the mapping sends no tax code, the map is not used
        problems = [p for p in problems if p.code not in ("tax_code_invalid", "tax_rate_invalid")]
    found: dict[str, Finding] = {}
    for finding in (
        *_setting_findings(problems),
        *_default_findings(ref, settings),
        *_preference_findings(ref, settings),
    ):
        found.setdefault(finding.code, finding)
    return tuple(sorted(found.values(), key=lambda f: _ORDER[f.code]))


class PreflightCheck:
    """Reads a company and says what about it will make records fail or land differently (module doc)."""

    def __init__(self, references: ReferenceCache, *, clock: Callable[[], float] = time.time) -> None:
        self._references = references
        self._clock = clock

    def run(self, qbo: QboClient, settings: FirmSyncSettings) -> PreflightResult:
        """Check the company behind ``qbo`` against ``settings``: one QuickBooks batch call (fresh reference
        data, also left in the cache for what runs next), plus one Item query per 100 items the settings
        name. QuickBooks errors propagate."""
        self._references.invalidate(qbo.realm_id)
        ref = self._references.get(qbo)
        ids = item_ids(settings)
        items = load_items(qbo, ids) if ids else {}
        return PreflightResult(
            realm_id=qbo.realm_id,
            checked_at=datetime.fromtimestamp(self._clock(), UTC),
            company_name=ref.company_name,
            findings=evaluate(ref, settings, items),
            books_closed_on=ref.book_close_date,
            multicurrency=ref.multicurrency,
            home_currency=ref.home_currency,
        )


# --- the connection's company warnings -------------------------------------------------------------------


def company_warnings(ref: QboReference) -> list[CompanyWarning]:
    """The findings the connection and the settings answer as warnings (:data:`COMPANY_WARNING_CODES`:
    custom transaction numbers off), whatever the settings; empty: nothing."""
    return [
        CompanyWarning(code=f.code, message=f"{f.message} {f.fix}")  # type: ignore[arg-type]
        for f in _preference_findings(ref, FirmSyncSettings())
        if f.code in COMPANY_WARNING_CODES
    ]


def preference_warnings(preferences: Mapping[str, Any]) -> list[CompanyWarning]:
    """:func:`company_warnings` from the Preferences object alone (one read: ``QboClient.preferences``).

    Raises ReferenceDataError when the Preferences are not in QuickBooks' shape."""
    if not isinstance(preferences, Mapping):
        raise ReferenceDataError("Preferences: expected a JSON object", entity="Preferences")
    return company_warnings(QboReference.from_qbo([], [], [], [], [], dict(preferences), []))
