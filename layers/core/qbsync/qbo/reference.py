"""Per-realm reference data the outbound mapping needs, built from raw QBO v3 JSON.

:meth:`QboReference.from_qbo` takes the lists as QBO returns them (each object either bare,
``{"Id": ..., "Name": ...}``, or wrapped, ``{"Account": {...}}``) and the Preferences object. It is
cached per realm by the caller and refreshed when QBO reports changes (TaxCode/TaxRate are not in
CDC, so they are polled: QBO.md §5.10).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from qbsync.errors import InfrastructureError, ServiceUnavailable, UncertainOutcome
from qbsync.qbo.client import QUERY_PAGE_MAX, BatchOperation, QboClient, quote_literal

__all__ = [
    "QboAccount",
    "QboNamed",
    "QboPaymentMethod",
    "QboReference",
    "QboTaxCode",
    "QboTaxRate",
    "ReferenceCache",
    "ReferenceDataError",
    "find_sales_item",
]

#: Platform payment methods and the QBO PaymentMethod names they use (first one found wins; QBO.md §5.9).
PAYMENT_METHOD_NAMES: dict[str, tuple[str, ...]] = {
    "cash": ("Cash",),
    "check": ("Check",),
    "card": ("Credit Card",),
    "bank_transfer": ("Bank Transfer", "Direct Debit", "ACH", "EFT"),
    "other": (),
}
#: Platform payment methods whose QBO PaymentMethod must exist (the others are sent without one when missing).
REQUIRED_PAYMENT_METHODS = ("cash", "check", "card")

#: Account types a payment may be deposited to / a refund paid from (QBO.md §5.4, §5.6).
DEPOSIT_ACCOUNT_TYPES = frozenset({"Bank", "Other Current Asset"})
INCOME_ACCOUNT_TYPES = frozenset({"Income"})
EXPENSE_ACCOUNT_TYPES = frozenset({"Expense", "Other Expense"})


class ReferenceDataError(InfrastructureError):
    """QBO reference data is not in the shape QBO documents (missing Id, wrong type).

    Not the firm's data to fix (it is QuickBooks' answer), so not a DataError: the record is not failed and
    no error-center entry is made; the message is retried and then parked in the DLQ for an operator."""

    code = "qbo_reference_invalid"


@dataclass(frozen=True)
class QboAccount:
    id: str
    name: str
    account_type: str
    account_sub_type: str | None
    active: bool


@dataclass(frozen=True)
class QboNamed:
    """A name-list entry (CustomerType)."""

    id: str
    name: str
    active: bool


@dataclass(frozen=True)
class QboPaymentMethod:
    id: str
    name: str
    type: str | None
    active: bool


@dataclass(frozen=True)
class QboTaxCode:
    id: str
    name: str
    active: bool
    taxable: bool
    tax_group: bool
    sales_rate_ids: tuple[str, ...]


@dataclass(frozen=True)
class QboTaxRate:
    id: str
    name: str
    rate_value: Decimal | None
    active: bool


def _unwrap(obj: Any, entity: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ReferenceDataError(f"{entity}: each object must be a JSON object", entity=entity)
    if len(obj) == 1 and entity in obj and isinstance(obj[entity], Mapping):
        return obj[entity]  # type: ignore[no-any-return]
    return obj


def find_sales_item(items: Iterable[Any]) -> str | None:
    """The id of QuickBooks' own "Sales" item among ``items`` (raw Item objects, wrapped or not): the active
    Service item named exactly ``Sales``, where services are billed when none has a service income account
    (:attr:`QboReference.sales_item_id`; the initial sync's plan asks the same). Raises ReferenceDataError for
    an object that is not one."""
    for raw in items:
        item = _unwrap(raw, "Item")
        if (
            _text(item, "Name", "Item") == "Sales"
            and item.get("Type", "Service") == "Service"
            and _flag(item, "Active", True)
        ):
            return _text(item, "Id", "Item")
    return None


def _text(obj: Mapping[str, Any], key: str, entity: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ReferenceDataError(f"{entity}: an object has no {key}", entity=entity)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ReferenceDataError(f"{entity}: {key} must be a string", entity=entity)
    return str(value)


def _flag(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _ref_value(obj: Any) -> str | None:
    if isinstance(obj, Mapping):
        value = obj.get("value")
        return str(value) if value is not None else None
    return None


def _index(objs: list[Any], entity: str, build: Any) -> dict[str, Any]:
    if not isinstance(objs, list):
        raise ReferenceDataError(f"{entity}: expected a list", entity=entity)
    out: dict[str, Any] = {}
    for raw in objs:
        item = build(_unwrap(raw, entity))
        out[item.id] = item
    return out


def _account(obj: Mapping[str, Any]) -> QboAccount:
    return QboAccount(
        id=_text(obj, "Id", "Account") or "",
        name=_text(obj, "Name", "Account") or "",
        account_type=_text(obj, "AccountType", "Account") or "",
        account_sub_type=_text(obj, "AccountSubType", "Account", required=False),
        active=_flag(obj, "Active", True),
    )


def _customer_type(obj: Mapping[str, Any]) -> QboNamed:
    return QboNamed(
        id=_text(obj, "Id", "CustomerType") or "",
        name=_text(obj, "Name", "CustomerType") or "",
        active=_flag(obj, "Active", True),
    )


def _payment_method(obj: Mapping[str, Any]) -> QboPaymentMethod:
    return QboPaymentMethod(
        id=_text(obj, "Id", "PaymentMethod") or "",
        name=_text(obj, "Name", "PaymentMethod") or "",
        type=_text(obj, "Type", "PaymentMethod", required=False),
        active=_flag(obj, "Active", True),
    )


def _tax_code(obj: Mapping[str, Any]) -> QboTaxCode:
    details = (obj.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
    if not isinstance(details, list):
        raise ReferenceDataError("TaxCode: SalesTaxRateList.TaxRateDetail must be a list", entity="TaxCode")
    rate_ids = tuple(
        rid for rid in (_ref_value(d.get("TaxRateRef")) for d in details if isinstance(d, Mapping)) if rid
    )
    return QboTaxCode(
        id=_text(obj, "Id", "TaxCode") or "",
        name=_text(obj, "Name", "TaxCode") or "",
        active=_flag(obj, "Active", True),
        taxable=_flag(obj, "Taxable", False),
        tax_group=_flag(obj, "TaxGroup", False),
        sales_rate_ids=rate_ids,
    )


def _tax_rate(obj: Mapping[str, Any]) -> QboTaxRate:
    raw = obj.get("RateValue")
    rate: Decimal | None = None
    if raw is not None and not isinstance(raw, bool):
        try:
            rate = Decimal(str(raw))
        except InvalidOperation:
            raise ReferenceDataError("TaxRate: RateValue is not a number", entity="TaxRate") from None
    return QboTaxRate(
        id=_text(obj, "Id", "TaxRate") or "",
        name=_text(obj, "Name", "TaxRate") or "",
        rate_value=rate,
        active=_flag(obj, "Active", True),
    )


def _book_close_date(prefs: Mapping[str, Any]) -> date | None:
    raw = (prefs.get("AccountingInfoPrefs") or {}).get("BookCloseDate")
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise ReferenceDataError(
            "Preferences: AccountingInfoPrefs.BookCloseDate is not a date", entity="Preferences"
        ) from None


@dataclass(frozen=True)
class QboReference:
    """Reference data of one QBO company (realm). Lookups return ``None`` when nothing matches."""

    accounts: dict[str, QboAccount] = field(default_factory=dict)
    customer_types: dict[str, QboNamed] = field(default_factory=dict)
    payment_methods: dict[str, QboPaymentMethod] = field(default_factory=dict)
    tax_codes: dict[str, QboTaxCode] = field(default_factory=dict)
    tax_rates: dict[str, QboTaxRate] = field(default_factory=dict)
    custom_txn_numbers: bool = False
    auto_apply_credit: bool = False
    book_close_date: date | None = None
    partner_tax_enabled: bool = False
    using_sales_tax: bool = False
    multicurrency: bool = False
    home_currency: str = "USD"
    country: str = "US"
    sales_item_id: str | None = None
    company_name: str | None = None

    @classmethod
    def from_qbo(  # noqa: PLR0913
        cls,
        accounts: list[dict[str, Any]],
        customer_types: list[dict[str, Any]],
        payment_methods: list[dict[str, Any]],
        tax_codes: list[dict[str, Any]],
        tax_rates: list[dict[str, Any]],
        preferences: dict[str, Any],
        items: list[dict[str, Any]],
        *,
        country: str = "US",
        company_name: str | None = None,
    ) -> QboReference:
        """Build the reference from raw QBO JSON (query results / the Preferences read).

        ``country`` is ``CompanyInfo.Country`` (``US`` for US companies), ``company_name`` its
        ``CompanyName``. ``items`` needs to hold at
        least the "Sales" service item when the company has one (its id becomes ``sales_item_id``).

        Raises:
            ReferenceDataError: an object is not a JSON object, or lacks ``Id``/``Name``/``AccountType``.
        """
        prefs = _unwrap(preferences, "Preferences")
        sales_forms = prefs.get("SalesFormsPrefs") or {}
        tax_prefs = prefs.get("TaxPrefs") or {}
        currency = prefs.get("CurrencyPrefs") or {}
        if not isinstance(items, list):
            raise ReferenceDataError("Item: expected a list", entity="Item")
        sales_item_id = find_sales_item(items)
        return cls(
            accounts=_index(accounts, "Account", _account),
            customer_types=_index(customer_types, "CustomerType", _customer_type),
            payment_methods=_index(payment_methods, "PaymentMethod", _payment_method),
            tax_codes=_index(tax_codes, "TaxCode", _tax_code),
            tax_rates=_index(tax_rates, "TaxRate", _tax_rate),
            custom_txn_numbers=_flag(sales_forms, "CustomTxnNumbers", False),
            auto_apply_credit=_flag(sales_forms, "AutoApplyCredit", False),
            book_close_date=_book_close_date(prefs),
            partner_tax_enabled=_flag(tax_prefs, "PartnerTaxEnabled", False),
            using_sales_tax=_flag(tax_prefs, "UsingSalesTax", False),
            multicurrency=_flag(currency, "MultiCurrencyEnabled", False),
            home_currency=_ref_value(currency.get("HomeCurrency")) or "USD",
            country=(country or "US").upper(),
            sales_item_id=sales_item_id,
            company_name=company_name or None,
        )

    # --- lookups ---------------------------------------------------------------------------------

    @property
    def is_us(self) -> bool:
        return self.country in ("US", "USA")

    def account(self, account_id: str) -> QboAccount | None:
        return self.accounts.get(account_id)

    def undeposited_funds(self) -> QboAccount | None:
        """The active Undeposited Funds system account (found by sub-type, not name)."""
        for acct in self.accounts.values():
            if acct.active and acct.account_sub_type == "UndepositedFunds":
                return acct
        return None

    def account_named(self, name: str, account_type: str | None = None) -> QboAccount | None:
        """An active account by exact name (case-insensitive), optionally of one type."""
        wanted = name.casefold()
        for acct in self.accounts.values():
            if (
                acct.active
                and acct.name.casefold() == wanted
                and (account_type is None or acct.account_type == account_type)
            ):
                return acct
        return None

    def uncategorized_income(self) -> QboAccount | None:
        return self.account_named("Uncategorized Income", "Income")

    def default_fee_expense_account(self) -> QboAccount | None:
        """The first active Expense account of sub-type BankCharges (lowest numeric id first)."""
        for acct in sorted(self.accounts.values(), key=lambda a: (len(a.id), a.id)):
            if acct.active and acct.account_type == "Expense" and acct.account_sub_type == "BankCharges":
                return acct
        return None

    def payment_method_named(self, name: str) -> QboPaymentMethod | None:
        wanted = name.casefold()
        for method in self.payment_methods.values():
            if method.active and method.name.casefold() == wanted:
                return method
        return None

    def customer_type(self, type_id: str) -> QboNamed | None:
        return self.customer_types.get(type_id)

    def customer_type_named(self, name: str) -> QboNamed | None:
        wanted = name.casefold()
        for ctype in self.customer_types.values():
            if ctype.active and ctype.name.casefold() == wanted:
                return ctype
        return None

    def tax_code(self, code_id: str) -> QboTaxCode | None:
        return self.tax_codes.get(code_id)

    def tax_rate(self, rate_id: str) -> QboTaxRate | None:
        return self.tax_rates.get(rate_id)


# --- reference data ----------------------------------------------------------------------------------


class ReferenceCache:
    """Per-realm :class:`QboReference`, loaded through QBO queries and kept ``ttl_seconds`` per container.

    TaxCode/TaxRate are not in CDC, so a short TTL is how changes in QBO are picked up (QBO.md §5.10).
    """

    def __init__(self, clock: Callable[[], float], ttl_seconds: float = 300.0) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._clock = clock
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, QboReference]] = {}
        self._loading: dict[str, threading.Lock] = {}

    def get(self, qbo: QboClient) -> QboReference:
        """The realm's reference data (cached). QBO errors propagate; ReferenceDataError if malformed.

        One load per realm at a time: threads sharing the cache (the bulk path's workers) that miss it
        together wait for the first one's load instead of each asking QuickBooks."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(qbo.realm_id)
            if hit is not None and hit[0] > now:
                return hit[1]
            loading = self._loading.setdefault(qbo.realm_id, threading.Lock())
        with loading:
            with self._lock:
                hit = self._cache.get(qbo.realm_id)  # loaded by another thread meanwhile
                if hit is not None and hit[0] > now:
                    return hit[1]
            ref = self.load(qbo)
            with self._lock:
                self._cache[qbo.realm_id] = (now + self._ttl, ref)
        return ref

    def invalidate(self, realm_id: str) -> None:
        with self._lock:
            self._cache.pop(realm_id, None)

    @staticmethod
    def load(qbo: QboClient) -> QboReference:
        """Every list the mappers need, in ONE batch call of queries (instead of ~8 requests against the
        realm's 500/min budget); a list of 1000+ rows is paged on with plain queries.

        A batch is sent like a write, so a lost answer comes back as UncertainOutcome: for queries that
        only means "try again" (ServiceUnavailable).
        """
        lists = ("Account", "CustomerType", "PaymentMethod", "TaxCode", "TaxRate")

        def every(entity: str, start: int) -> str:  # fixed entity names, not SQL
            return f"SELECT * FROM {entity} ORDERBY Id STARTPOSITION {start} MAXRESULTS {QUERY_PAGE_MAX}"  # noqa: S608

        sales = f"SELECT * FROM Item WHERE Name = {quote_literal('Sales')}"  # noqa: S608
        operations = [
            *(BatchOperation.select(f"l{i}", every(entity, 1)) for i, entity in enumerate(lists)),
            BatchOperation.select("items", sales),
            BatchOperation.select("info", "SELECT * FROM CompanyInfo"),
            BatchOperation.select("prefs", "SELECT * FROM Preferences"),
        ]
        try:
            results = {r.bid: r for r in qbo.batch(operations, request_id=str(uuid.uuid4()))}
        except UncertainOutcome as err:
            raise ServiceUnavailable(
                "QuickBooks did not answer the reference-data queries", realm_id=qbo.realm_id
            ) from err
        rows: dict[str, list[dict[str, Any]]] = {}
        for bid, result in results.items():
            if result.error is not None:
                raise result.error
            rows[bid] = list(result.rows or [])
        for i, entity in enumerate(lists):
            got = rows[f"l{i}"]
            start = QUERY_PAGE_MAX + 1
            while len(got) == start - 1:  # a full page: there may be more
                more = qbo.query(every(entity, start))
                got.extend(more)
                start += QUERY_PAGE_MAX
                if len(more) < QUERY_PAGE_MAX:
                    break
        info = rows["info"][0] if rows["info"] else {}
        if not rows["prefs"]:
            raise ServiceUnavailable(
                "QuickBooks answered without the company preferences", realm_id=qbo.realm_id
            )
        return QboReference.from_qbo(
            accounts=rows["l0"],
            customer_types=rows["l1"],
            payment_methods=rows["l2"],
            tax_codes=rows["l3"],
            tax_rates=rows["l4"],
            preferences=rows["prefs"][0],
            items=rows["items"],
            country=str(info.get("Country") or "US"),
            company_name=name if isinstance(name := info.get("CompanyName"), str) else None,
        )
