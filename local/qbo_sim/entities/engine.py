"""The entity engine: create, read, update (full/sparse), delete and void with QBO's rules.

Every public method either returns the stored object (a plain JSON dict, the shape QBO returns) or
raises ``QboFault`` with the code, message and HTTP status QBO uses (QBO.md §2.5-§2.7, §4, §5).
Each successful write appends ``Change`` records (for webhooks) to ``Engine.changes``.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from local.qbo_sim import faults
from local.qbo_sim.clock import SimClock
from local.qbo_sim.entities.seed import ACCOUNT_CLASSIFICATION
from local.qbo_sim.faults import QboFault
from local.qbo_sim.state import Company

CENT = Decimal("0.01")
PRICE = Decimal("0.00001")
SYSTEM_FIELDS = {"Id", "SyncToken", "MetaData", "domain", "sparse", "status"}

_REF = "Ref"
_ADDR = {
    "Id",
    "Line1",
    "Line2",
    "Line3",
    "Line4",
    "Line5",
    "City",
    "Country",
    "CountrySubDivisionCode",
    "PostalCode",
    "Lat",
    "Long",
    "Note",
    "CountryCode",
}

_NAME_PARTS = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"]
_PERSON = {
    "Title",
    "GivenName",
    "MiddleName",
    "FamilyName",
    "Suffix",
    "DisplayName",
    "CompanyName",
    "PrintOnCheckName",
    "Active",
    "PrimaryPhone",
    "AlternatePhone",
    "Mobile",
    "Fax",
    "PrimaryEmailAddr",
    "WebAddr",
    "BillAddr",
    "ShipAddr",
    "OtherAddr",
    "Notes",
    "CurrencyRef",
    "Balance",
    "AcctNum",
    "TaxIdentifier",
    "V4IDPseudonym",
    "Source",
}

FIELDS: dict[str, set[str]] = {
    "Customer": _PERSON
    | {
        "ARAccountRef",
        "BalanceWithJobs",
        "BillWithParent",
        "DefaultTaxCodeRef",
        "FullyQualifiedName",
        "IsProject",
        "Job",
        "Level",
        "OpenBalanceDate",
        "ParentRef",
        "PaymentMethodRef",
        "PreferredDeliveryMethod",
        "PrimaryTaxIdentifier",
        "ResaleNum",
        "SalesTermRef",
        "Taxable",
        "CustomerTypeRef",
        "TaxExemptionReasonId",
        "SecondaryTaxIdentifier",
        "BusinessNumber",
        "GSTIN",
        "GSTRegistrationType",
        "ClientEntityId",
    },
    "Vendor": _PERSON
    | {
        "APAccountRef",
        "BillRate",
        "TermRef",
        "TaxReportingBasis",
        "Vendor1099",
        "CostRate",
        "VendorPaymentBankDetail",
    },
    "Employee": _PERSON
    | {
        "BillRate",
        "BillableTime",
        "BirthDate",
        "CostRate",
        "EmailAddress",
        "EmployeeNumber",
        "Gender",
        "HiredDate",
        "Organization",
        "PrimaryAddr",
        "ReleasedDate",
        "SSN",
    },
    "Item": {
        "AbatementRate",
        "Active",
        "AssetAccountRef",
        "Description",
        "ExpenseAccountRef",
        "FullyQualifiedName",
        "IncomeAccountRef",
        "InvStartDate",
        "ItemCategoryType",
        "Level",
        "Name",
        "ParentRef",
        "PurchaseCost",
        "PurchaseDesc",
        "PurchaseTaxCodeRef",
        "PurchaseTaxIncluded",
        "QtyOnHand",
        "ReverseChargeRate",
        "SalesTaxCodeRef",
        "SalesTaxIncluded",
        "ServiceType",
        "Sku",
        "SubItem",
        "Taxable",
        "TrackQtyOnHand",
        "Type",
        "UnitPrice",
        "ClassRef",
        "PrefVendorRef",
        "TaxClassificationRef",
    },
    "Account": {
        "AccountSubType",
        "AccountType",
        "AcctNum",
        "Active",
        "Classification",
        "CurrencyRef",
        "CurrentBalance",
        "CurrentBalanceWithSubAccounts",
        "Description",
        "FullyQualifiedName",
        "Name",
        "ParentRef",
        "SubAccount",
        "TaxCodeRef",
        "TxnLocationType",
        "AccountAlias",
    },
    "PaymentMethod": {"Active", "Name", "Type"},
    "TaxCode": set(),
    "TaxRate": set(),
    "CustomerType": set(),
}
_TXN_COMMON = {
    "CurrencyRef",
    "DocNumber",
    "ExchangeRate",
    "Line",
    "PrivateNote",
    "TotalAmt",
    "TxnDate",
    "TxnSource",
    "TxnStatus",
    "DepartmentRef",
    "LinkedTxn",
    "TransactionLocationType",
    "HomeTotalAmt",
    "TaxExemptionRef",
    "GlobalTaxCalculation",
    "TxnTaxDetail",
    "RecurDataRef",
    "ProjectRef",
    "ClassRef",
}
_SALES = _TXN_COMMON | {
    "ApplyTaxAfterDiscount",
    "Balance",
    "BillAddr",
    "BillEmail",
    "BillEmailBcc",
    "BillEmailCc",
    "CustomField",
    "CustomerMemo",
    "CustomerRef",
    "EmailStatus",
    "PrintStatus",
    "SalesTermRef",
    "ShipAddr",
    "ShipDate",
    "ShipMethodRef",
    "TrackingNum",
    "HomeBalance",
    "FreeFormAddress",
    "ShipFromAddr",
    "DeliveryInfo",
}
FIELDS.update(
    {
        "Invoice": _SALES
        | {
            "AllowIPNPayment",
            "AllowOnlineACHPayment",
            "AllowOnlineCreditCardPayment",
            "AllowOnlinePayment",
            "Deposit",
            "DepositToAccountRef",
            "DueDate",
            "EInvoiceStatus",
            "InvoiceLink",
        },
        "CreditMemo": _SALES | {"RemainingCredit", "InvoiceRef"},
        "RefundReceipt": _SALES
        | {
            "CheckPayment",
            "CreditCardPayment",
            "DepositToAccountRef",
            "PaymentMethodRef",
            "PaymentRefNum",
            "PaymentType",
        },
        "Payment": _TXN_COMMON
        | {
            "ARAccountRef",
            "CreditCardPayment",
            "CustomerRef",
            "DepositToAccountRef",
            "PaymentMethodRef",
            "PaymentRefNum",
            "ProcessPayment",
            "UnappliedAmt",
        },
        "Purchase": _TXN_COMMON
        | {
            "AccountRef",
            "Credit",
            "EntityRef",
            "PaymentMethodRef",
            "PaymentType",
            "PrintStatus",
            "PurchaseEx",
            "RemitToAddr",
            "IncludeInAnnualTPAR",
        },
        "CompanyInfo": {
            "CompanyName",
            "LegalName",
            "CompanyAddr",
            "CustomerCommunicationAddr",
            "LegalAddr",
            "CustomerCommunicationEmailAddr",
            "PrimaryPhone",
            "CompanyStartDate",
            "FiscalYearStartMonth",
            "Country",
            "Email",
            "WebAddr",
            "SupportedLanguages",
            "NameValue",
            "EmployerId",
        },
        "Preferences": {
            "AccountingInfoPrefs",
            "ProductAndServicesPrefs",
            "SalesFormsPrefs",
            "EmailMessagesPrefs",
            "VendorAndPurchasesPrefs",
            "TimeTrackingPrefs",
            "TaxPrefs",
            "CurrencyPrefs",
            "ReportPrefs",
            "OtherPrefs",
        },
    }
)

# JSON shapes checked before any rule runs (QBO fails deserialization with 2010 on a wrong type)
_OBJECT_SUFFIXES = ("Ref", "Addr", "Prefs", "Phone", "EmailAddr")
_OBJECT_FIELDS = {
    "Mobile",
    "Fax",
    "BillEmail",
    "BillEmailCc",
    "BillEmailBcc",
    "TxnTaxDetail",
    "CustomerMemo",
    "MetaData",
    "Email",
    "DeliveryInfo",
    "CreditCardPayment",
    "CheckPayment",
    "PurchaseEx",
}
_LIST_FIELDS = {"Line", "LinkedTxn", "CustomField", "NameValue"}

NAME_LISTS = {"Customer", "Vendor", "Employee", "Item", "Account", "PaymentMethod"}
READ_ONLY = {"TaxCode", "TaxRate", "CustomerType"}
SINGLETONS = {"CompanyInfo", "Preferences"}
SALES_FORMS = {"Invoice", "CreditMemo", "RefundReceipt"}
TRANSACTIONS = SALES_FORMS | {"Payment", "Purchase"}
VOIDABLE = {"Invoice", "Payment", "CreditMemo", "RefundReceipt"}
ENTITIES = NAME_LISTS | READ_ONLY | SINGLETONS | TRANSACTIONS
# the URL segment (lower case) -> entity name
URL_NAMES = {name.lower(): name for name in ENTITIES}
# objects whose computed fields read-only on input: accepted and ignored
COMPUTED = {
    "Balance",
    "BalanceWithJobs",
    "TotalAmt",
    "RemainingCredit",
    "UnappliedAmt",
    "HomeBalance",
    "HomeTotalAmt",
    "FullyQualifiedName",
    "Level",
    "CurrentBalance",
    "CurrentBalanceWithSubAccounts",
    "Classification",
    "LinkedTxn",
    "InvoiceLink",
}


def _computed(entity: str) -> set[str]:
    # TotalAmt is an input on Payment (the amount received) and computed everywhere else
    return COMPUTED - {"TotalAmt"} if entity == "Payment" else COMPUTED


US_PSEUDO_TAX_CODES = {"TAX", "NON"}
DOC_NUMBER_MAX = 21


@dataclass(frozen=True)
class Change:
    entity: str
    entity_id: str
    operation: str  # Create | Update | Delete | Void
    last_updated: str
    deleted_id: str | None = None


def money(value: Any, element: str) -> Decimal:
    """Parse a JSON amount. Raises 2010 for a non-number (QBO cannot deserialize it)."""
    if isinstance(value, bool):
        raise faults.invalid_property(f"{element}", element)
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise faults.invalid_property(f"{element}", element) from None
    if not result.is_finite():
        raise faults.invalid_property(f"{element}", element)
    return result


def num(value: Decimal, places: Decimal = CENT) -> float:
    """Render an amount the way QBO's JSON does (a number, rounded half-up)."""
    return float(value.quantize(places, rounding=ROUND_HALF_UP))


def clean(value: Any) -> Any:
    """Drop null, empty-string and empty-object fields recursively (QBO omits empty fields)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = clean(item)
            if item is None or item == "" or (isinstance(item, dict) and not item):
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def _ref_value(ref: Any, element: str) -> str | None:
    if ref is None:
        return None
    if isinstance(ref, dict):
        value = ref.get("value")
    else:
        raise faults.invalid_property(element, element)
    if value is None or value == "":
        return None
    return str(value)


def _norm_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def _parse_date(value: Any, element: str) -> date:
    if not isinstance(value, str):
        raise faults.invalid_property(element, element)
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise faults.invalid_property(f"{element}:{value}", element) from None


class Engine:
    """Applies operations to one company. Not thread-safe by itself: callers hold ``SimState.lock``."""

    def __init__(self, company: Company, clock: SimClock) -> None:
        self.company = company
        self.clock = clock
        self.changes: list[Change] = []

    # ------------------------------------------------------------------ helpers
    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.company.table(entity)

    def prefs(self) -> dict[str, Any]:
        return self.company.table("Preferences").get("1", {})

    def _get(self, entity: str, obj_id: str) -> dict[str, Any] | None:
        return self.table(entity).get(obj_id)

    def ref(
        self,
        entity: str,
        ref: Any,
        element: str,
        *,
        required: bool = False,
        required_name: str | None = None,
        allow_inactive: bool = False,
    ) -> dict[str, Any] | None:
        """Resolve a ``{"value": id}`` reference: 2020 if required and missing, 2500 if unknown,
        610 if inactive."""
        value = _ref_value(ref, element)
        if value is None:
            if required:
                raise faults.required_missing(required_name or element.split(".")[-1], element)
            return None
        obj = self._get(entity, value)
        if obj is None:
            raise faults.invalid_reference(element, value)
        if obj.get("Active") is False and not allow_inactive:
            raise faults.object_not_found(element)
        return obj

    def _named_ref(self, obj: dict[str, Any], name_field: str = "DisplayName") -> dict[str, str]:
        out = {"value": obj["Id"]}
        name = obj.get(name_field) or obj.get("Name")
        if name:
            out["name"] = name
        return out

    def _check_fields(self, entity: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise faults.invalid_property(f"{entity} body must be a JSON object")
        allowed = FIELDS[entity] | SYSTEM_FIELDS
        for key, value in body.items():
            if key not in allowed:
                raise faults.invalid_property(
                    f'Unrecognized field "{key}" (class com.intuit.schema.finance.v3.{entity}), '
                    "not marked as ignorable",
                    key,
                )
            if value is None:
                continue
            if key.endswith(_OBJECT_SUFFIXES) or key in _OBJECT_FIELDS:
                if not isinstance(value, dict):
                    raise faults.invalid_property(f"{key}: expected a JSON object", key)
            elif key in _LIST_FIELDS and (
                not isinstance(value, list) or not all(isinstance(v, dict) for v in value)
            ):
                raise faults.invalid_property(f"{key}: expected a JSON array of objects", key)
        return body

    def _stamp_new(self, entity: str, obj: dict[str, Any], obj_id: str) -> None:
        stamp = self.clock.stamp()
        obj["Id"] = obj_id
        obj["SyncToken"] = "0"
        obj["domain"] = "QBO"
        obj["sparse"] = False
        obj["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        self.table(entity)[obj_id] = obj
        self.company.touched[(entity, obj_id)] = self.clock.time()
        self.changes.append(Change(entity, obj_id, "Create", stamp))

    def _stamp_update(
        self, entity: str, obj: dict[str, Any], previous: dict[str, Any], op: str = "Update"
    ) -> None:
        stamp = self.clock.stamp()
        obj["Id"] = previous["Id"]
        obj["SyncToken"] = str(int(previous.get("SyncToken", "0")) + 1)
        obj["domain"] = "QBO"
        obj["sparse"] = False
        obj["MetaData"] = {**previous.get("MetaData", {}), "LastUpdatedTime": stamp}
        self.table(entity)[obj["Id"]] = obj
        self.company.touched[(entity, obj["Id"])] = self.clock.time()
        self.changes.append(Change(entity, obj["Id"], op, stamp))

    # ------------------------------------------------------------------ read
    def read(self, entity: str, obj_id: str) -> dict[str, Any]:
        obj = self._get(entity, obj_id)
        if obj is None:
            raise faults.object_not_found()
        return obj

    # ------------------------------------------------------------------ create / update
    def create(self, entity: str, body: Any, *, include: frozenset[str] = frozenset()) -> dict[str, Any]:
        if entity in READ_ONLY or entity in SINGLETONS:
            raise faults.unsupported_operation("Create", entity)
        body = self._check_fields(entity, body)
        data = clean({k: v for k, v in body.items() if k not in SYSTEM_FIELDS and k not in _computed(entity)})
        obj = self._build(entity, data, None, include)
        self._stamp_new(entity, obj, self.company.next_id(entity))
        self._after_write(entity, obj, None)
        return obj

    def update(self, entity: str, body: Any, *, include: frozenset[str] = frozenset()) -> dict[str, Any]:
        if entity in READ_ONLY:
            raise faults.unsupported_operation("Update", entity)
        body = self._check_fields(entity, body)
        previous = self._locate(entity, body)
        if "void" in include:
            return self.void(entity, body)
        sparse = body.get("sparse") in (True, "true")
        incoming = {k: v for k, v in body.items() if k not in SYSTEM_FIELDS and k not in _computed(entity)}
        if sparse:
            base = {k: copy.deepcopy(v) for k, v in previous.items() if k not in SYSTEM_FIELDS}
            base.update(incoming)
            data = clean(base)
        else:
            data = clean(incoming)
        if entity in TRANSACTIONS:
            self._check_books(previous.get("TxnDate"))
        obj = self._build(entity, data, previous, include)
        self._stamp_update(entity, obj, previous)
        self._after_write(entity, obj, previous)
        return obj

    def _locate(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        obj_id = body.get("Id")
        if obj_id in (None, ""):
            raise faults.required_missing("Id", "Id")
        token = body.get("SyncToken")
        if token in (None, ""):
            raise faults.required_missing("SyncToken", "SyncToken")
        previous = self._get(entity, str(obj_id))
        if previous is None:
            raise faults.object_not_found()
        if str(token) != previous.get("SyncToken"):
            raise faults.stale_object()
        return previous

    # ------------------------------------------------------------------ delete / void
    def delete(self, entity: str, body: Any) -> dict[str, Any]:
        """Hard delete of a transaction; returns the ``{"domain","status":"Deleted","Id"}`` stub."""
        if entity not in TRANSACTIONS:
            raise faults.unsupported_operation("Delete", entity)
        if not isinstance(body, dict):
            raise faults.invalid_property(f"{entity} body must be a JSON object")
        previous = self._locate(entity, body)
        self._check_books(previous.get("TxnDate"))
        obj_id = previous["Id"]
        del self.table(entity)[obj_id]
        self.company.voided.discard((entity, obj_id))
        stamp = self.clock.stamp()
        self.company.deleted.setdefault(entity, {})[obj_id] = {
            "Id": obj_id,
            "status": "Deleted",
            "domain": "QBO",
            "MetaData": {"LastUpdatedTime": stamp},
        }
        self.company.touched[(entity, obj_id)] = self.clock.time()
        self.changes.append(Change(entity, obj_id, "Delete", stamp))
        self._after_write(entity, None, previous)
        return {"domain": "QBO", "status": "Deleted", "Id": obj_id}

    def void(self, entity: str, body: Any) -> dict[str, Any]:
        """Void in place: amounts zeroed, ``PrivateNote`` "Voided", SyncToken + 1 (QBO.md §2.7)."""
        if entity not in VOIDABLE:
            raise faults.unsupported_operation("Void", entity)
        if not isinstance(body, dict):
            raise faults.invalid_property(f"{entity} body must be a JSON object")
        previous = self._locate(entity, body)
        self._check_books(previous.get("TxnDate"))
        obj = copy.deepcopy({k: v for k, v in previous.items() if k not in SYSTEM_FIELDS})
        for line in obj.get("Line", []):
            if "Amount" in line:
                line["Amount"] = 0
            for detail in ("SalesItemLineDetail",):
                if detail in line:
                    line[detail].pop("Qty", None)
                    line[detail]["UnitPrice"] = 0
        if entity == "Payment":
            obj["Line"] = []
            obj["UnappliedAmt"] = 0
        obj["TotalAmt"] = 0
        if "Balance" in obj:
            obj["Balance"] = 0
        if entity == "CreditMemo":
            obj["RemainingCredit"] = 0
        if "TxnTaxDetail" in obj:
            obj["TxnTaxDetail"] = {"TotalTax": 0}
        obj["PrivateNote"] = "Voided"
        self.company.voided.add((entity, previous["Id"]))
        self._stamp_update(entity, obj, previous, "Void")
        self._after_write(entity, obj, previous)
        return obj

    # ------------------------------------------------------------------ rules shared by transactions
    def _check_books(self, txn_date: Any) -> None:
        """6200/6210 when the date is on or before the books-closed date (QBO.md §4.4)."""
        close = self.prefs().get("AccountingInfoPrefs", {}).get("BookCloseDate")
        if not close or not txn_date:
            return
        if _parse_date(txn_date, "TxnDate") <= date.fromisoformat(close[:10]):
            if self.company.books_closed_password:
                raise QboFault(
                    "6210",
                    "Account Period Closed, Requires Password",
                    f"Account Period Closed, Requires Password : The books are closed as of {close}; "
                    "changing a transaction dated on or before that date requires the closing-date password.",
                    "TxnDate",
                )
            raise QboFault(
                "6200",
                "Account Period Closed",
                f"Account Period Closed : The account period has closed and the transaction cannot be "
                f"saved. The books are closed as of {close}; use a date after it.",
                "TxnDate",
            )

    def _txn_date(self, data: dict[str, Any]) -> str:
        if "TxnDate" in data:
            return _parse_date(data["TxnDate"], "TxnDate").isoformat()
        return self.clock.today()

    def _doc_number(
        self, entity: str, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        doc = data.get("DocNumber")
        custom = bool(self.prefs().get("SalesFormsPrefs", {}).get("CustomTxnNumbers"))
        if doc is None:
            if entity in SALES_FORMS and not custom and previous is None:
                # QBO numbers sales forms itself when the company does not use custom numbers.
                data["DocNumber"] = self._next_doc_number(entity)
            return
        doc = str(doc)
        if len(doc) > DOC_NUMBER_MAX:
            raise faults.string_length("DocNumber", DOC_NUMBER_MAX)
        data["DocNumber"] = doc
        enforce = (entity in SALES_FORMS and custom) or entity == "Purchase"
        if not enforce or "allowduplicatedocnum" in include:
            return
        own_id = previous["Id"] if previous else None
        for other in self.table(entity).values():
            if other.get("DocNumber") == doc and other["Id"] != own_id:
                raise faults.duplicate_doc_number(doc, entity, other["Id"])

    def _next_doc_number(self, entity: str) -> str:
        taken = {o.get("DocNumber") for o in self.table(entity).values()}
        while str(self.company.next_doc_number) in taken:
            self.company.next_doc_number += 1
        value = str(self.company.next_doc_number)
        self.company.next_doc_number += 1
        return value

    def _customer(self, data: dict[str, Any]) -> dict[str, Any]:
        customer = self.ref("Customer", data.get("CustomerRef"), "CustomerRef", required=True)
        assert customer is not None
        data["CustomerRef"] = self._named_ref(customer)
        return customer

    def _account(
        self, ref: Any, element: str, *, required: bool = False, types: set[str] | None = None, what: str = ""
    ) -> dict[str, Any] | None:
        account = self.ref("Account", ref, element, required=required)
        if account is not None and types is not None and account.get("AccountType") not in types:
            raise faults.business_validation(
                f"{element} must be {what or ' or '.join(sorted(types))} account (Account Id={account['Id']} "
                f"is {account.get('AccountType')}).",
                element,
            )
        return account

    def _undeposited_funds(self) -> dict[str, Any] | None:
        for acct in self.table("Account").values():
            if acct.get("AccountSubType") == "UndepositedFunds" and acct.get("Active", True):
                return acct
        return None

    def _payment_method(self, data: dict[str, Any]) -> None:
        method = self.ref("PaymentMethod", data.get("PaymentMethodRef"), "PaymentMethodRef")
        if method is not None:
            data["PaymentMethodRef"] = self._named_ref(method, "Name")

    # ------------------------------------------------------------------ sales lines and tax
    def _sales_lines(self, data: dict[str, Any]) -> tuple[Decimal, Decimal, list[str]]:
        """Validate and normalise Line[]; returns (subtotal, taxable amount, real tax code ids on lines)."""
        lines = data.get("Line")
        if not isinstance(lines, list) or not lines:
            raise faults.required_missing("Line", "Line")
        out: list[dict[str, Any]] = []
        subtotal = Decimal(0)
        taxable = Decimal(0)
        discount_lines: list[dict[str, Any]] = []
        line_codes: list[str] = []
        default_item = next(
            (i for i in self.table("Item").values() if i.get("Name") == "Sales" and i.get("Active", True)),
            None,
        )
        for line in lines:
            if not isinstance(line, dict):
                raise faults.invalid_property("Line", "Line")
            detail_type = line.get("DetailType")
            if detail_type == "SubTotalLineDetail":
                continue  # recomputed below, as QBO does
            if detail_type == "DescriptionOnly" or (
                detail_type is None and "SalesItemLineDetail" not in line and "DiscountLineDetail" not in line
            ):
                line = {**line, "DetailType": "DescriptionOnly"}
                line.pop("Amount", None)
                line.setdefault("DescriptionLineDetail", {})
                out.append(line)
                continue
            if detail_type == "DiscountLineDetail" or "DiscountLineDetail" in line:
                discount_lines.append({**line, "DetailType": "DiscountLineDetail"})
                continue
            if detail_type not in (None, "SalesItemLineDetail"):
                raise faults.invalid_enum("Line.DetailType", detail_type)
            line = copy.deepcopy(line)
            line["DetailType"] = "SalesItemLineDetail"
            detail = line.setdefault("SalesItemLineDetail", {})
            if not isinstance(detail, dict):
                raise faults.invalid_property("Line.SalesItemLineDetail", "Line.SalesItemLineDetail")
            if "Amount" not in line:
                raise faults.required_missing("Amount", "Line.Amount")
            amount = money(line["Amount"], "Line.Amount")
            if amount < 0:
                raise QboFault(
                    "2290",
                    "NegativeAmount",
                    "Negative amounts aren't supported on transaction lines",
                    "Line.Amount",
                )
            item_element = "Line.SalesItemLineDetail.ItemRef"
            item: dict[str, Any] | None
            if _ref_value(detail.get("ItemRef"), item_element) is None:
                if default_item is None:
                    raise faults.required_missing("ItemRef", item_element)
                item = default_item
            else:
                item = self.ref("Item", detail.get("ItemRef"), item_element)
            assert item is not None
            detail["ItemRef"] = self._named_ref(item, "Name")
            qty = money(detail["Qty"], "Line.SalesItemLineDetail.Qty") if "Qty" in detail else None
            price = (
                money(detail["UnitPrice"], "Line.SalesItemLineDetail.UnitPrice")
                if "UnitPrice" in detail
                else None
            )
            if qty is not None and price is not None:
                expected = (qty * price).quantize(CENT, rounding=ROUND_HALF_UP)
                if expected != amount.quantize(CENT, rounding=ROUND_HALF_UP):
                    raise QboFault(
                        "6070",
                        "Amount calculation incorrect in the request",
                        f"Amount is not equal to UnitPrice * Qty. Supplied value: {amount.quantize(CENT)}",
                        "Line.Amount",
                    )
            elif qty is not None and qty != 0:
                detail["UnitPrice"] = num(amount / qty, PRICE)
            elif price is not None and price != 0:
                detail["Qty"] = num(amount / price, PRICE)
            code = _ref_value(detail.get("TaxCodeRef"), "Line.SalesItemLineDetail.TaxCodeRef")
            if code is None:
                code = "TAX" if item.get("Taxable") else "NON"
                detail["TaxCodeRef"] = {"value": code}
            elif code not in US_PSEUDO_TAX_CODES:
                if code not in self.table("TaxCode"):
                    raise faults.invalid_reference("Line.SalesItemLineDetail.TaxCodeRef", code)
                line_codes.append(code)
            line["Amount"] = num(amount)
            subtotal += amount
            if code == "TAX":
                taxable += amount
            out.append(line)
        discount_total = Decimal(0)
        for line in discount_lines:
            d = line.get("DiscountLineDetail") or {}
            if not isinstance(d, dict):
                raise faults.invalid_property("Line.DiscountLineDetail", "Line.DiscountLineDetail")
            if d.get("PercentBased") and "DiscountPercent" in d:
                pct = money(d["DiscountPercent"], "Line.DiscountLineDetail.DiscountPercent")
                amount = (subtotal * pct / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            else:
                if "Amount" not in line:
                    raise faults.required_missing("Amount", "Line.Amount")
                amount = money(line["Amount"], "Line.Amount")
            if amount < 0:
                raise QboFault(
                    "2290",
                    "NegativeAmount",
                    "Negative amounts aren't supported on transaction lines",
                    "Line.Amount",
                )
            line["Amount"] = num(amount)
            discount_total += amount
        if subtotal > 0 and discount_total and taxable:
            taxable = (taxable * (subtotal - discount_total) / subtotal).quantize(
                CENT, rounding=ROUND_HALF_UP
            )
        out.extend(discount_lines)
        for number, line in enumerate(out, start=1):
            line["Id"] = str(number)
            line["LineNum"] = number
        out.append({"Amount": num(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        data["Line"] = out
        return subtotal - discount_total, taxable, line_codes

    def _tax(self, data: dict[str, Any], taxable: Decimal, line_codes: list[str]) -> Decimal:
        """US sales tax: one tax code per transaction (TAX/NON on lines). Returns the total tax."""
        prefs = self.prefs().get("TaxPrefs", {})
        detail = data.get("TxnTaxDetail") or {}
        if not isinstance(detail, dict):
            raise faults.invalid_property("TxnTaxDetail", "TxnTaxDetail")
        txn_code = _ref_value(detail.get("TxnTaxCodeRef"), "TxnTaxDetail.TxnTaxCodeRef")
        codes = set(line_codes) | ({txn_code} if txn_code else set())
        rate_ids = set()
        tax_lines_in = detail.get("TaxLine") or []
        if not isinstance(tax_lines_in, list) or not all(
            isinstance(t, dict) and isinstance(t.get("TaxLineDetail", {}), dict) for t in tax_lines_in
        ):
            raise faults.invalid_property("TxnTaxDetail.TaxLine", "TxnTaxDetail.TaxLine")
        for tax_line in tax_lines_in:
            rid = _ref_value((tax_line.get("TaxLineDetail") or {}).get("TaxRateRef"), "TaxLine.TaxRateRef")
            if rid:
                rate_ids.add(rid)
        if len(codes) > 1 or (rate_ids and self._rates_span_codes(rate_ids, txn_code)):
            raise faults.business_validation(
                "A US transaction can carry only one sales tax rate: use TAX or NON on lines and a single "
                "TxnTaxDetail.TxnTaxCodeRef.",
                "TxnTaxDetail",
            )
        if line_codes:
            raise QboFault(
                "6100",
                "Invalid Line TaxCode",
                "Invalid line tax code: US transaction lines take TAX or NON",
                "Line.SalesItemLineDetail.TaxCodeRef",
            )
        if prefs.get("PartnerTaxEnabled") and not txn_code and taxable:
            txn_code = "2"  # AST picks the code from the address; the simulator always picks California
        code = self._get("TaxCode", txn_code) if txn_code else None
        if txn_code and code is None:
            raise faults.invalid_reference("TxnTaxDetail.TxnTaxCodeRef", txn_code)
        explicit = "TotalTax" in detail and money(detail["TotalTax"], "TxnTaxDetail.TotalTax") != 0
        tax_lines: list[dict[str, Any]] = []
        total = Decimal(0)
        if code is not None and prefs.get("UsingSalesTax", True):
            for rate_detail in code.get("SalesTaxRateList", {}).get("TaxRateDetail", []):
                rate = self._get("TaxRate", rate_detail["TaxRateRef"]["value"])
                if rate is None:
                    continue
                pct = Decimal(str(rate["RateValue"]))
                amount = (taxable * pct / 100).quantize(CENT, rounding=ROUND_HALF_UP)
                total += amount
                tax_lines.append(
                    {
                        "Amount": num(amount),
                        "DetailType": "TaxLineDetail",
                        "TaxLineDetail": {
                            "TaxRateRef": {"value": rate["Id"]},
                            "PercentBased": True,
                            "TaxPercent": float(pct),
                            "NetAmountTaxable": num(taxable),
                        },
                    }
                )
        if explicit:
            total = money(detail["TotalTax"], "TxnTaxDetail.TotalTax").quantize(CENT, rounding=ROUND_HALF_UP)
        out: dict[str, Any] = {"TotalTax": num(total)}
        if code is not None:
            out["TxnTaxCodeRef"] = {"value": code["Id"]}
        if tax_lines:
            out["TaxLine"] = tax_lines
        data["TxnTaxDetail"] = out
        return total

    def _rates_span_codes(self, rate_ids: set[str], txn_code: str | None) -> bool:
        if txn_code:
            code = self._get("TaxCode", txn_code) or {}
            allowed = {
                d["TaxRateRef"]["value"] for d in code.get("SalesTaxRateList", {}).get("TaxRateDetail", [])
            }
            return bool(rate_ids - allowed)
        # no transaction code: the rates must all belong to one code
        for code in self.table("TaxCode").values():
            members = {
                d["TaxRateRef"]["value"] for d in code.get("SalesTaxRateList", {}).get("TaxRateDetail", [])
            }
            if rate_ids <= members:
                return False
        return True

    # ------------------------------------------------------------------ builders
    def _build(
        self, entity: str, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> dict[str, Any]:
        builder = getattr(self, f"_build_{entity.lower()}", None)
        if builder is None:
            return data  # CompanyInfo / Preferences: stored as sent
        builder(data, previous, include)
        if previous is not None:
            for key in ("Balance", "BalanceWithJobs", "CurrentBalance", "CurrentBalanceWithSubAccounts"):
                if key in previous and key not in data:
                    data[key] = previous[key]
        return data

    def _unique_display_name(
        self, data: dict[str, Any], previous: dict[str, Any] | None, entity: str
    ) -> None:
        name = data.get("DisplayName")
        if not name:
            parts = [str(data[p]) for p in _NAME_PARTS if data.get(p)]
            name = " ".join(parts) or data.get("CompanyName")
        if not name:
            raise QboFault(
                "6080",
                "No Name Provided",
                "No Name Provided : Please provide a name (DisplayName, GivenName or CompanyName).",
                "DisplayName",
            )
        name = str(name)
        if len(name) > 500:
            raise faults.string_length("DisplayName", 500)
        if any(ch in name for ch in ":\t\n"):
            raise faults.business_validation(
                "DisplayName cannot contain a colon, tab or newline.", "DisplayName"
            )
        data["DisplayName"] = name
        key = _norm_name(name)
        own = (entity, previous["Id"]) if previous else None
        for other_entity in ("Customer", "Vendor", "Employee"):
            for other in self.table(other_entity).values():
                if (other_entity, other["Id"]) != own and _norm_name(other.get("DisplayName", "")) == key:
                    raise faults.duplicate_name(other["Id"])
        email = (data.get("PrimaryEmailAddr") or {}).get("Address")
        if email is not None and ("@" not in str(email) or "." not in str(email) or len(str(email)) > 100):
            raise QboFault(
                "2210",
                "Invalid Email Address Format",
                "Invalid Email Address Format : the e-mail address does not follow RFC 822 rules.",
                "PrimaryEmailAddr.Address",
            )
        data.setdefault("PrintOnCheckName", name)
        data.setdefault("Active", True)
        data.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})

    def _build_customer(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        self._unique_display_name(data, previous, "Customer")
        parent = self.ref("Customer", data.get("ParentRef"), "ParentRef")
        if parent is not None:
            if previous is not None and parent["Id"] == previous["Id"]:
                raise faults.business_validation("A customer cannot be its own parent.", "ParentRef")
            level = int(parent.get("Level", 0)) + 1
            if level > 4:
                raise QboFault(
                    "6180",
                    "Sub Level Limit",
                    "Sub Level Limit : a customer can be nested 4 levels deep.",
                    "ParentRef",
                )
            data["ParentRef"] = {"value": parent["Id"]}
            data["Job"] = True
            data["Level"] = level
            data["FullyQualifiedName"] = (
                f"{parent.get('FullyQualifiedName', parent['DisplayName'])}:{data['DisplayName']}"
            )
            data.setdefault("BillWithParent", False)
        else:
            data["Job"] = False
            data["BillWithParent"] = False
            data.pop("Level", None)
            data["FullyQualifiedName"] = data["DisplayName"]
        ctype = self.ref("CustomerType", data.get("CustomerTypeRef"), "CustomerTypeRef")
        if ctype is not None:
            data["CustomerTypeRef"] = {"value": ctype["Id"]}
        self._payment_method(data)
        data.setdefault("Taxable", True)
        data.setdefault("PreferredDeliveryMethod", "Print")
        data.setdefault("IsProject", False)
        if previous is None:
            data["Balance"] = 0
            data["BalanceWithJobs"] = 0
        elif data.get("Active") is False and previous.get("Active", True):
            balance = Decimal(str(previous.get("Balance", 0)))
            if balance != 0:
                raise QboFault(
                    "6220",
                    "Delete List Has Balance Error",
                    "Delete List Has Balance Error : This customer cannot be deleted because it has a "
                    "non-zero balance.",
                    "Active",
                )

    def _build_vendor(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        self._unique_display_name(data, previous, "Vendor")
        data.setdefault("Vendor1099", False)
        if previous is None:
            data["Balance"] = 0

    def _build_employee(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        self._unique_display_name(data, previous, "Employee")
        data.setdefault("BillableTime", False)

    def _unique_name(
        self, entity: str, data: dict[str, Any], previous: dict[str, Any] | None, limit: int
    ) -> str:
        name = data.get("Name")
        if not name:
            raise faults.required_missing("Name", "Name")
        name = str(name)
        if len(name) > limit:
            raise faults.string_length("Name", limit)
        if ":" in name:
            raise faults.business_validation("Name cannot contain a colon.", "Name")
        key = _norm_name(name.removesuffix(" (deleted)"))
        own = previous["Id"] if previous else None
        for other in self.table(entity).values():
            other_name = str(other.get("Name", "")).removesuffix(" (deleted)")
            if other["Id"] != own and _norm_name(other_name) == key:
                raise faults.duplicate_name(other["Id"])
        data.setdefault("Active", True)
        return name

    def _build_item(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        name = self._unique_name("Item", data, previous, 100)
        item_type = data.setdefault("Type", "NonInventory")
        if item_type not in ("Service", "NonInventory", "Inventory", "Category"):
            raise faults.invalid_enum("Type", item_type)
        if item_type != "Category":
            income = self._account(data.get("IncomeAccountRef"), "IncomeAccountRef", required=True)
            assert income is not None
            data["IncomeAccountRef"] = self._named_ref(income, "Name")
        expense = self._account(data.get("ExpenseAccountRef"), "ExpenseAccountRef")
        if expense is not None:
            data["ExpenseAccountRef"] = self._named_ref(expense, "Name")
        data["FullyQualifiedName"] = name
        data.setdefault("Taxable", False)
        data.setdefault("UnitPrice", 0)
        data.setdefault("TrackQtyOnHand", False)
        if "UnitPrice" in data:
            data["UnitPrice"] = num(money(data["UnitPrice"], "UnitPrice"))

    def _build_account(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        if data.get("Active") is False and previous is not None:
            # QBO renames an inactivated account: "<name> (deleted)"
            base = str(data.get("Name", previous.get("Name", ""))).removesuffix(" (deleted)")
            data["Name"] = base
            self._unique_name("Account", data, previous, 100)
            data["Name"] = f"{base} (deleted)"
        else:
            if data.get("Name"):
                data["Name"] = str(data["Name"]).removesuffix(" (deleted)")
            self._unique_name("Account", data, previous, 100)
        acct_type = data.get("AccountType")
        if not acct_type:
            raise faults.required_missing("AccountType", "AccountType")
        if acct_type not in ACCOUNT_CLASSIFICATION:
            raise faults.invalid_enum("AccountType", acct_type)
        data["Classification"] = ACCOUNT_CLASSIFICATION[acct_type]
        parent = self._account(data.get("ParentRef"), "ParentRef")
        data["SubAccount"] = parent is not None
        data["FullyQualifiedName"] = (
            f"{parent['FullyQualifiedName']}:{data['Name']}" if parent is not None else data["Name"]
        )
        data.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
        if previous is None:
            data["CurrentBalance"] = 0
            data["CurrentBalanceWithSubAccounts"] = 0

    def _build_paymentmethod(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        self._unique_name("PaymentMethod", data, previous, 31)
        pm_type = data.setdefault("Type", "NON_CREDIT_CARD")
        if pm_type not in ("CREDIT_CARD", "NON_CREDIT_CARD"):
            raise faults.invalid_enum("Type", pm_type)

    def _sales_form(
        self, entity: str, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> tuple[dict[str, Any], Decimal]:
        customer = self._customer(data)
        data["TxnDate"] = self._txn_date(data)
        self._check_books(data["TxnDate"])
        subtotal, taxable, line_codes = self._sales_lines(data)
        tax = self._tax(data, taxable, line_codes)
        self._doc_number(entity, data, previous, include)
        total = subtotal + tax
        data["TotalAmt"] = num(total)
        data.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
        for addr in ("BillAddr", "ShipAddr"):
            if addr not in data and addr in customer:
                data[addr] = {k: v for k, v in customer[addr].items() if k != "Id"}
        if "BillEmail" not in data and "PrimaryEmailAddr" in customer:
            data["BillEmail"] = dict(customer["PrimaryEmailAddr"])
        data.setdefault("PrintStatus", "NotSet")
        data.setdefault("EmailStatus", "NotSet")
        data.setdefault("ApplyTaxAfterDiscount", False)
        return customer, total

    def _build_invoice(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        _, total = self._sales_form("Invoice", data, previous, include)
        if "DueDate" in data:
            data["DueDate"] = _parse_date(data["DueDate"], "DueDate").isoformat()
        else:
            data["DueDate"] = (date.fromisoformat(data["TxnDate"]) + timedelta(days=30)).isoformat()
        deposit = self._account(
            data.get("DepositToAccountRef"), "DepositToAccountRef", types={"Bank", "Other Current Asset"}
        )
        if deposit is not None:
            data["DepositToAccountRef"] = self._named_ref(deposit, "Name")
        if previous is not None:
            applied = self._applied_amounts()[("Invoice", previous["Id"])]
            if applied > total:
                raise faults.business_validation(
                    f"The invoice total {total.quantize(CENT)} would be less than the payments applied to it "
                    f"({applied.quantize(CENT)}); unapply payments first.",
                    "TotalAmt",
                )
        data["Balance"] = num(total)  # reduced by applied payments in _relink
        data["LinkedTxn"] = []

    def _build_creditmemo(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        _, total = self._sales_form("CreditMemo", data, previous, include)
        data["RemainingCredit"] = num(total)
        data["Balance"] = num(total)

    def _build_refundreceipt(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        # DepositToAccountRef is required: the account the refund is paid from (QBO.md §5.6).
        account = self._account(
            data.get("DepositToAccountRef"),
            "DepositToAccountRef",
            required=True,
            types={"Bank", "Other Current Asset"},
        )
        assert account is not None
        data["DepositToAccountRef"] = self._named_ref(account, "Name")
        self._payment_method(data)
        self._sales_form("RefundReceipt", data, previous, include)
        data["Balance"] = 0

    def _build_purchase(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        payment_type = data.get("PaymentType")
        if not payment_type:
            raise faults.required_missing("PaymentType", "PaymentType")
        if payment_type not in ("Cash", "Check", "CreditCard"):
            raise faults.invalid_enum("PaymentType", payment_type)
        types = {"Check": {"Bank"}, "CreditCard": {"Credit Card"}, "Cash": {"Bank", "Other Current Asset"}}
        account = self._account(
            data.get("AccountRef"),
            "AccountRef",
            required=True,
            types=types[payment_type],
            what=" or ".join(sorted(types[payment_type])),
        )
        assert account is not None
        data["AccountRef"] = self._named_ref(account, "Name")
        if data.get("Credit") and payment_type != "CreditCard":
            raise faults.business_validation("Credit applies only to CreditCard purchases.", "Credit")
        entity_ref = data.get("EntityRef")
        if entity_ref is not None:
            kind = entity_ref.get("type", "Vendor") if isinstance(entity_ref, dict) else "Vendor"
            if kind not in ("Vendor", "Customer", "Employee"):
                raise faults.invalid_enum("EntityRef.type", kind)
            payee = self.ref(kind, entity_ref, "EntityRef")
            if payee is not None:
                data["EntityRef"] = {**self._named_ref(payee), "type": kind}
        self._payment_method(data)
        data["TxnDate"] = self._txn_date(data)
        self._check_books(data["TxnDate"])
        lines = data.get("Line")
        if not isinstance(lines, list) or not lines:
            raise faults.required_missing("Line", "Line")
        total = Decimal(0)
        out = []
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, dict):
                raise faults.invalid_property("Line", "Line")
            line = copy.deepcopy(line)
            if "Amount" not in line:
                raise faults.required_missing("Amount", "Line.Amount")
            amount = money(line["Amount"], "Line.Amount")
            if amount < 0:
                raise QboFault(
                    "2290",
                    "NegativeAmount",
                    "Negative amounts aren't supported on transaction lines",
                    "Line.Amount",
                )
            detail_type = line.get("DetailType") or (
                "ItemBasedExpenseLineDetail"
                if "ItemBasedExpenseLineDetail" in line
                else "AccountBasedExpenseLineDetail"
            )
            if detail_type == "AccountBasedExpenseLineDetail":
                detail = line.setdefault("AccountBasedExpenseLineDetail", {})
                element = "Line.AccountBasedExpenseLineDetail.AccountRef"
                acct = self._account(detail.get("AccountRef"), element, required=True)
                assert acct is not None
                detail["AccountRef"] = self._named_ref(acct, "Name")
                detail.setdefault("BillableStatus", "NotBillable")
                detail.setdefault("TaxCodeRef", {"value": "NON"})
            elif detail_type == "ItemBasedExpenseLineDetail":
                if not self.prefs().get("ProductAndServicesPrefs", {}).get("ForPurchase", True):
                    raise faults.business_validation(
                        "Item lines on purchases are turned off for this company."
                    )
                detail = line.setdefault("ItemBasedExpenseLineDetail", {})
                item = self.ref(
                    "Item", detail.get("ItemRef"), "Line.ItemBasedExpenseLineDetail.ItemRef", required=True
                )
                assert item is not None
                detail["ItemRef"] = self._named_ref(item, "Name")
            else:
                raise faults.invalid_enum("Line.DetailType", detail_type)
            line["DetailType"] = detail_type
            line["Amount"] = num(amount)
            line["Id"] = str(number)
            total += amount
            out.append(line)
        data["Line"] = out
        self._doc_number("Purchase", data, previous, include)
        data["TotalAmt"] = num(total)
        data.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
        if payment_type == "CreditCard":
            data.setdefault("Credit", False)

    def _build_payment(
        self, data: dict[str, Any], previous: dict[str, Any] | None, include: frozenset[str]
    ) -> None:
        customer = self._customer(data)
        if "TotalAmt" not in data:
            raise faults.required_missing("TotalAmt", "TotalAmt")
        total = money(data["TotalAmt"], "TotalAmt")
        if total < 0:
            raise QboFault(
                "2290", "NegativeAmount", "Negative amounts aren't supported on transaction lines", "TotalAmt"
            )
        data["TxnDate"] = self._txn_date(data)
        self._check_books(data["TxnDate"])
        if data.get("PaymentMethodRef") is not None:
            self._payment_method(data)
        deposit = self._account(
            data.get("DepositToAccountRef"), "DepositToAccountRef", types={"Bank", "Other Current Asset"}
        )
        if deposit is None:
            deposit = self._undeposited_funds()
        if deposit is not None:
            data["DepositToAccountRef"] = {"value": deposit["Id"]}
        lines = data.get("Line", [])
        if not isinstance(lines, list):
            raise faults.invalid_property("Line", "Line")
        own_id = previous["Id"] if previous else None
        applied_elsewhere = self._applied_amounts(exclude_payment=own_id)
        applied = Decimal(0)
        out = []
        for line in lines:
            if not isinstance(line, dict):
                raise faults.invalid_property("Line", "Line")
            line = copy.deepcopy(line)
            if "Amount" not in line:
                raise faults.required_missing("Amount", "Line.Amount")
            amount = money(line["Amount"], "Line.Amount")
            if amount < 0:
                raise QboFault(
                    "2290",
                    "NegativeAmount",
                    "Negative amounts aren't supported on transaction lines",
                    "Line.Amount",
                )
            links = line.get("LinkedTxn") or []
            if not isinstance(links, list) or not links:
                raise faults.required_missing("LinkedTxn", "Line.LinkedTxn")
            norm_links = []
            for link in links:
                txn_type = link.get("TxnType") if isinstance(link, dict) else None
                txn_id = str(link.get("TxnId", "")) if isinstance(link, dict) else ""
                if not txn_id:
                    raise faults.required_missing("TxnId", "Line.LinkedTxn.TxnId")
                if txn_type not in ("Invoice", "CreditMemo"):
                    raise QboFault(
                        "620",
                        "Txn ID Cannot Be Linked",
                        f"Transaction of type {txn_type} Id={txn_id} cannot be linked to a payment.",
                        "Line.LinkedTxn.TxnType",
                    )
                target = self._get(txn_type, txn_id)
                if target is None:
                    raise faults.object_not_found("Line.LinkedTxn.TxnId")
                if (target.get("CustomerRef") or {}).get("value") != customer["Id"]:
                    raise faults.business_validation(
                        f"The customer on the payment (Id={customer['Id']}) differs from the customer on "
                        f"{txn_type} Id={txn_id}; a payment applies only to that customer's transactions.",
                        "Line.LinkedTxn",
                    )
                open_amount = Decimal(str(target.get("TotalAmt", 0))) - applied_elsewhere[(txn_type, txn_id)]
                if amount > open_amount:
                    what = "open balance" if txn_type == "Invoice" else "remaining credit"
                    raise faults.business_validation(
                        f"The payment line amount {amount.quantize(CENT)} exceeds the {what} "
                        f"{open_amount.quantize(CENT)} of {txn_type} Id={txn_id}.",
                        "Line.Amount",
                    )
                norm_links.append({"TxnId": txn_id, "TxnType": txn_type})
                applied += amount if txn_type == "Invoice" else -amount
            line["Amount"] = num(amount)
            line["LinkedTxn"] = norm_links
            out.append(line)
        if applied > total:
            raise faults.business_validation(
                f"The amount applied to transactions ({applied.quantize(CENT)}) is more than the payment "
                f"total ({total.quantize(CENT)}).",
                "TotalAmt",
            )
        data["Line"] = out
        data["TotalAmt"] = num(total)
        data["UnappliedAmt"] = num(total - applied)
        data.setdefault("ProcessPayment", False)
        data.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})

    # ------------------------------------------------------------------ links and balances
    def _applied_amounts(self, exclude_payment: str | None = None) -> dict[tuple[str, str], Decimal]:
        applied: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for payment in self.table("Payment").values():
            if payment["Id"] == exclude_payment:
                continue
            for line in payment.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    applied[(link["TxnType"], link["TxnId"])] += Decimal(str(line.get("Amount", 0)))
        return applied

    def _after_write(self, entity: str, obj: dict[str, Any] | None, previous: dict[str, Any] | None) -> None:
        if entity not in TRANSACTIONS:
            return
        customers = set()
        for o in (obj, previous):
            if o is not None and "CustomerRef" in o:
                customers.add(o["CustomerRef"]["value"])
        if (
            entity in ("Invoice", "CreditMemo")
            and previous is not None
            and (obj is None or (entity, previous["Id"]) in self.company.voided)
        ):
            self._unlink_payments(entity, previous["Id"])
        self._relink(customers, (entity, obj["Id"]) if obj is not None else None)

    def _unlink_payments(self, entity: str, txn_id: str) -> None:
        """A deleted or voided invoice/credit memo no longer takes payments: drop the links."""
        for payment in list(self.table("Payment").values()):
            lines = payment.get("Line", [])
            kept = [
                ln
                for ln in lines
                if not any(
                    lk["TxnType"] == entity and lk["TxnId"] == txn_id for lk in ln.get("LinkedTxn", [])
                )
            ]
            if len(kept) != len(lines):
                updated = copy.deepcopy(payment)
                updated["Line"] = kept
                total = Decimal(str(updated.get("TotalAmt", 0)))
                applied = sum(
                    (
                        Decimal(str(ln["Amount"])) * (1 if ln["LinkedTxn"][0]["TxnType"] == "Invoice" else -1)
                        for ln in kept
                    ),
                    Decimal(0),
                )
                updated["UnappliedAmt"] = num(total - applied)
                self._stamp_update("Payment", updated, payment)

    def _relink(self, customer_ids: set[str], just_written: tuple[str, str] | None = None) -> None:
        """Recompute Balance/RemainingCredit/LinkedTxn of the customers' invoices and credit memos and
        the customers' balances. A changed invoice gets a new SyncToken, as in QBO (except the object
        this very write produced, which is fixed in place)."""
        if not customer_ids:
            return
        applied: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        links: dict[tuple[str, str], list[str]] = defaultdict(list)
        unapplied: dict[str, Decimal] = defaultdict(Decimal)
        for payment in self.table("Payment").values():
            cid = payment.get("CustomerRef", {}).get("value")
            if cid not in customer_ids:
                continue
            unapplied[cid] += Decimal(str(payment.get("UnappliedAmt", 0)))
            for line in payment.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    key = (link["TxnType"], link["TxnId"])
                    applied[key] += Decimal(str(line.get("Amount", 0)))
                    if payment["Id"] not in links[key]:
                        links[key].append(payment["Id"])
        balances: dict[str, Decimal] = defaultdict(Decimal)
        for entity in ("Invoice", "CreditMemo"):
            for obj in list(self.table(entity).values()):
                cid = obj.get("CustomerRef", {}).get("value")
                if cid not in customer_ids:
                    continue
                key = (entity, obj["Id"])
                open_amount = Decimal(str(obj.get("TotalAmt", 0))) - applied[key]
                linked = [{"TxnId": pid, "TxnType": "Payment"} for pid in links[key]]
                if entity == "Invoice":
                    balances[cid] += open_amount
                    changed = (
                        Decimal(str(obj.get("Balance", 0))) != open_amount
                        or obj.get("LinkedTxn", []) != linked
                    )
                    if changed:
                        updated = obj if key == just_written else copy.deepcopy(obj)
                        updated["Balance"] = num(open_amount)
                        updated["LinkedTxn"] = linked
                        if key != just_written:
                            self._stamp_update(entity, updated, obj)
                else:
                    balances[cid] -= open_amount
                    changed = Decimal(str(obj.get("RemainingCredit", 0))) != open_amount or (
                        obj.get("LinkedTxn", []) != linked
                    )
                    if changed:
                        updated = obj if key == just_written else copy.deepcopy(obj)
                        updated["RemainingCredit"] = num(open_amount)
                        updated["Balance"] = num(open_amount)
                        if linked:
                            updated["LinkedTxn"] = linked
                        else:
                            updated.pop("LinkedTxn", None)
                        if key != just_written:
                            self._stamp_update(entity, updated, obj)
        for cid in customer_ids:
            customer = self._get("Customer", cid)
            if customer is not None:
                balance = balances[cid] - unapplied[cid]
                customer["Balance"] = num(balance)
                customer["BalanceWithJobs"] = num(balance)
