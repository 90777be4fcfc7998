"""The QuickBooks Online query language, the subset real clients send (QBO.md §2.8).

Grammar (keywords case-insensitive)::

    SELECT ( * | COUNT(*) | column [, column]... ) FROM Entity
      [WHERE cond [AND cond]...]
      [ORDERBY field [ASC|DESC] [, field [ASC|DESC]]...]
      [STARTPOSITION n] [MAXRESULTS n]          -- in either order

    cond   := field ( = | < | > | <= | >= ) literal | field IN ( literal [, literal]... ) | field LIKE 'text'
    field  := Name | Name.Name...                 -- e.g. MetaData.LastUpdatedTime, CustomerRef
    literal:= 'string with \\' escapes' | number | true | false

What QBO rejects is rejected here with ``QueryError``: OR, NOT, JOIN-like syntax, parentheses around
conditions, MAXRESULTS above 1000, and (from ``execute``) a WHERE/ORDERBY on a property that is not
queryable for the entity (QBO answers 4001 "property 'PrivateNote' is not queryable").

Semantics chosen to match QBO (document of record: QBO.md §2.8):

- **Projections are ignored**: QBO returns every property of each object whatever the column list
  (``SELECT Id, DocNumber FROM Invoice`` and ``SELECT *, Sku FROM Item`` both return whole objects).
  ``Query.columns`` still records what was asked.
- Property names match case-insensitively (``displayname`` is ``DisplayName``).
- A property missing from an object (QBO omits empty properties) never satisfies a condition.
- A ``Ref`` (``{"value": "58", "name": ...}``) compares on its ``value``.
- Strings compare case-insensitively. When both sides look like numbers they compare as numbers
  (``Balance > '0'``, ``Id = '58'``); when both look like ISO dates/date-times they compare as instants
  (a date alone means midnight, a value without offset is company time, UTC-8).
- ``LIKE`` supports only ``%`` wildcards, case-insensitively.
- Name lists return only active objects unless the WHERE clause mentions ``Active``
  (``WHERE Active IN (true, false)`` returns all): rows whose ``Active`` is ``false`` are dropped.
- Without ORDERBY, rows keep the order they were given in (the store's creation order).
- ORDERBY puts objects missing the field first when ascending (last when descending).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000
# QBO renders and reads naive timestamps in the company's time zone; sandbox companies are US Pacific.
COMPANY_TZ = timezone(timedelta(hours=-8))

# Canonical spellings of the entities QBO can query (FROM is matched case-insensitively).
ENTITIES = (
    "Account",
    "Attachable",
    "Bill",
    "BillPayment",
    "Budget",
    "Class",
    "CompanyCurrency",
    "CompanyInfo",
    "CreditMemo",
    "Customer",
    "CustomerType",
    "Department",
    "Deposit",
    "Employee",
    "Estimate",
    "Invoice",
    "Item",
    "JournalCode",
    "JournalEntry",
    "Payment",
    "PaymentMethod",
    "Preferences",
    "Purchase",
    "PurchaseOrder",
    "RefundReceipt",
    "SalesReceipt",
    "TaxAgency",
    "TaxCode",
    "TaxRate",
    "Term",
    "TimeActivity",
    "Transfer",
    "Vendor",
    "VendorCredit",
)
_ENTITY_BY_LOWER = {name.lower(): name for name in ENTITIES}

# Queryable (filterable/sortable) top-level properties per entity, from Intuit's entity reference
# pages ("filterable"/"sortable" markers), kept generous where a page is vague. Entities not listed
# accept any property. ``Id`` and ``MetaData`` are queryable everywhere.
_COMMON = {"Id", "MetaData"}
_TXN = {"DocNumber", "TxnDate", "TotalAmt", "CustomerRef", "CurrencyRef", "DepartmentRef", "ClassRef"}
_NAMES = {
    "DisplayName",
    "GivenName",
    "MiddleName",
    "FamilyName",
    "Title",
    "Suffix",
    "CompanyName",
    "FullyQualifiedName",
    "PrintOnCheckName",
    "PrimaryEmailAddr",
    "PrimaryPhone",
    "Active",
    "Balance",
}
QUERYABLE_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(fields | _COMMON)
    for name, fields in {
        "Customer": _NAMES | {"BalanceWithJobs", "Job", "IsProject", "ParentRef", "CustomerTypeRef", "Level"},
        "Vendor": _NAMES | {"Vendor1099", "AcctNum"},
        "Employee": _NAMES | {"EmployeeNumber"},
        "Item": {
            "Name",
            "Active",
            "Type",
            "Sku",
            "FullyQualifiedName",
            "ParentRef",
            "SubItem",
            "Level",
            "Taxable",
            "UnitPrice",
            "QtyOnHand",
            "IncomeAccountRef",
            "ExpenseAccountRef",
        },
        "Invoice": _TXN | {"Balance", "DueDate", "EmailStatus", "PrintStatus", "SalesTermRef"},
        "Payment": _TXN | {"PaymentRefNum", "UnappliedAmt", "DepositToAccountRef", "PaymentMethodRef"},
        "CreditMemo": _TXN | {"Balance", "RemainingCredit"},
        "RefundReceipt": _TXN | {"Balance", "DepositToAccountRef", "PaymentMethodRef"},
        "SalesReceipt": _TXN | {"Balance", "DepositToAccountRef", "PaymentMethodRef"},
        "Estimate": _TXN | {"TxnStatus", "ExpirationDate"},
        "Purchase": _TXN | {"PaymentType", "AccountRef", "EntityRef", "Credit", "PaymentMethodRef"},
        "Account": {
            "Name",
            "FullyQualifiedName",
            "AccountType",
            "AccountSubType",
            "Classification",
            "Active",
            "CurrentBalance",
            "CurrentBalanceWithSubAccounts",
            "SubAccount",
            "ParentRef",
            "AcctNum",
        },
        "TaxCode": {"Name", "Active", "Taxable", "TaxGroup", "Hidden"},
        "TaxRate": {"Name", "Active", "RateValue", "AgencyRef", "SpecialTaxType", "DisplayType"},
        "PaymentMethod": {"Name", "Active", "Type"},
        "CustomerType": {"Name", "Active"},
        "Term": {"Name", "Active", "Type", "DueDays"},
        "Class": {"Name", "Active", "FullyQualifiedName", "SubClass", "ParentRef"},
        "Department": {"Name", "Active", "FullyQualifiedName", "SubDepartment", "ParentRef"},
        "CompanyInfo": {"CompanyName", "LegalName", "Country", "FiscalYearStartMonth"},
    }.items()
}
# Property names are matched case-insensitively (like keywords); known names are rewritten to QBO's
# spelling so that lookups into the stored objects hit.
_CANONICAL_NAMES = {
    name.lower(): name
    for name in sorted(set().union(*QUERYABLE_FIELDS.values()) | {"CreateTime", "LastUpdatedTime"})
}


def _canonical_path(path: str) -> str:
    return ".".join(_CANONICAL_NAMES.get(part.lower(), part) for part in path.split("."))


class QueryError(Exception):
    """The query cannot be parsed or names something QBO refuses; ``str(exc)`` is the fault Detail."""


# ---------------------------------------------------------------------------------------- tokens

_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDERBY",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "STARTPOSITION",
    "MAXRESULTS",
    "COUNT",
    "TRUE",
    "FALSE",
    "NULL",
    "IS",
}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),*;])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class _Token:
    kind: str  # keyword | name | string | number | op | punct | end
    value: Any
    pos: int  # 1-based column

    def describe(self) -> str:
        if self.kind == "end":
            return "<EOF>"
        if self.kind == "string":
            return f"'{self.value}'"
        return str(self.value)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    length = len(text)
    while pos < length:
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            if text[pos] == "'":
                raise QueryError(f"Lexical error at line 1, column {pos + 1}: unterminated string literal")
            raise QueryError(f'Lexical error at line 1, column {pos + 1}. Encountered: "{text[pos]}"')
        kind = match.lastgroup
        raw = match.group()
        if kind == "string":
            tokens.append(_Token("string", _ESCAPE_RE.sub(r"\1", raw[1:-1]), pos + 1))
        elif kind == "number":
            tokens.append(_Token("number", float(raw) if "." in raw else int(raw), pos + 1))
        elif kind == "name":
            upper = raw.upper()
            if upper in _KEYWORDS:
                tokens.append(_Token("keyword", upper, pos + 1))
            else:
                tokens.append(_Token("name", raw, pos + 1))
        elif kind in ("op", "punct"):
            tokens.append(_Token(kind, raw, pos + 1))
        pos = match.end()
    tokens.append(_Token("end", None, length + 1))
    return tokens


# ---------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Condition:
    """One WHERE term: ``path op value``; ``op`` is one of = < > <= >= IN LIKE."""

    path: str
    op: str
    value: Any  # str | int | float | bool, or a tuple of those for IN


@dataclass(frozen=True)
class OrderTerm:
    path: str
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed query. ``columns`` is ``("*",)`` for SELECT * and ``()`` for COUNT(*)."""

    entity: str
    count: bool = False
    columns: tuple[str, ...] = ("*",)
    where: tuple[Condition, ...] = ()
    order_by: tuple[OrderTerm, ...] = ()
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS
    _predicates: tuple[Callable[[dict[str, Any]], bool], ...] = field(default=(), repr=False, compare=False)


@dataclass
class QueryResult:
    rows: list[dict[str, Any]]
    total_count: int
    start_position: int
    max_results: int


# ---------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def fail(self, token: _Token, expected: str) -> QueryError:
        return QueryError(
            f'Encountered " {token.describe()} " at line 1, column {token.pos}. Was expecting: {expected}'
        )

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "keyword" and token.value == word:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.fail(self.peek(), word)

    def expect_punct(self, char: str) -> None:
        token = self.next()
        if token.kind != "punct" or token.value != char:
            raise self.fail(token, f'"{char}"')

    def path(self) -> str:
        token = self.next()
        if token.kind != "name":
            raise self.fail(token, "<IDENTIFIER>")
        return _canonical_path(str(token.value))

    def literal(self) -> Any:
        token = self.next()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "keyword" and token.value in ("TRUE", "FALSE"):
            return token.value == "TRUE"
        raise self.fail(token, "<STRING_LITERAL> | <NUMBER> | true | false")

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count = False
        columns: list[str] = []
        if self.keyword("COUNT"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        else:
            while True:
                token = self.peek()
                if token.kind == "punct" and token.value == "*":
                    self.i += 1
                    columns.append("*")
                else:
                    columns.append(self.path())
                token = self.peek()
                if token.kind == "punct" and token.value == ",":
                    self.i += 1
                    continue
                break
        self.expect_keyword("FROM")
        token = self.next()
        if token.kind != "name" or "." in token.value:
            raise self.fail(token, "<ENTITY>")
        entity = _ENTITY_BY_LOWER.get(token.value.lower(), token.value)
        where: list[Condition] = []
        if self.keyword("WHERE"):
            where.append(self.condition())
            while True:
                if self.keyword("AND"):
                    where.append(self.condition())
                    continue
                token = self.peek()
                if token.kind == "keyword" and token.value == "OR":
                    raise QueryError(
                        f"OR is not supported in the WHERE clause (line 1, column {token.pos}); "
                        "run one query per alternative or use IN"
                    )
                break
        order_by: list[OrderTerm] = []
        token = self.peek()
        if token.kind == "keyword" and token.value in ("ORDERBY", "ORDER"):
            self.i += 1
            if token.value == "ORDER":
                self.expect_keyword("BY")
            while True:
                path = self.path()
                descending = False
                if self.keyword("DESC"):
                    descending = True
                else:
                    self.keyword("ASC")
                order_by.append(OrderTerm(path, descending))
                token = self.peek()
                if token.kind == "punct" and token.value == ",":
                    self.i += 1
                    continue
                break
        start_position = 1
        max_results = DEFAULT_MAX_RESULTS
        seen: set[str] = set()
        while True:
            token = self.peek()
            if (
                token.kind != "keyword"
                or token.value not in ("STARTPOSITION", "MAXRESULTS")
                or token.value in seen
            ):
                break
            self.i += 1
            seen.add(token.value)
            number = self.next()
            if number.kind != "number" or not isinstance(number.value, int):
                raise self.fail(number, "<INTEGER>")
            if token.value == "STARTPOSITION":
                if number.value < 0:
                    raise QueryError(f"STARTPOSITION must be 1 or more, got {number.value}")
                start_position = max(1, number.value)  # QBO treats 0 as the first row
            else:
                if number.value < 1:
                    raise QueryError(
                        f"MAXRESULTS must be between 1 and {MAX_MAX_RESULTS}, got {number.value}"
                    )
                if number.value > MAX_MAX_RESULTS:
                    raise QueryError(f"MAXRESULTS must not exceed {MAX_MAX_RESULTS}, got {number.value}")
                max_results = number.value
        token = self.peek()
        if token.kind == "punct" and token.value == ";":
            self.i += 1
            token = self.peek()
        if token.kind != "end":
            if token.kind == "keyword" and token.value == "OR":
                raise QueryError(f"OR is not supported in the WHERE clause (line 1, column {token.pos})")
            raise self.fail(token, "<EOF>")
        return Query(
            entity=entity,
            count=count,
            columns=() if count else tuple(columns),
            where=tuple(where),
            order_by=tuple(order_by),
            start_position=start_position,
            max_results=max_results,
            _predicates=tuple(_compile(c) for c in where),
        )

    def condition(self) -> Condition:
        token = self.peek()
        if token.kind == "punct" and token.value == "(":
            raise self.fail(token, "<IDENTIFIER> (parenthesised conditions are not supported)")
        if token.kind == "keyword" and token.value == "NOT":
            raise QueryError(f"NOT is not supported in the WHERE clause (line 1, column {token.pos})")
        path = self.path()
        token = self.next()
        if token.kind == "op":
            if token.value in ("!=", "<>"):
                raise QueryError(f"Operator {token.value} is not supported (line 1, column {token.pos})")
            return Condition(path, token.value, self.literal())
        if token.kind == "keyword" and token.value == "IN":
            self.expect_punct("(")
            values = [self.literal()]
            while True:
                sep = self.next()
                if sep.kind == "punct" and sep.value == ",":
                    values.append(self.literal())
                    continue
                if sep.kind == "punct" and sep.value == ")":
                    break
                raise self.fail(sep, '"," | ")"')
            return Condition(path, "IN", tuple(values))
        if token.kind == "keyword" and token.value == "LIKE":
            pattern = self.next()
            if pattern.kind != "string":
                raise self.fail(pattern, "<STRING_LITERAL>")
            return Condition(path, "LIKE", pattern.value)
        raise self.fail(token, '"=" | "<" | ">" | "<=" | ">=" | "IN" | "LIKE"')


@functools.lru_cache(maxsize=512)
def parse(text: str) -> Query:
    """Parse one query. Raises ``QueryError`` (QBO 4000 "Error parsing query") on bad syntax, on OR/NOT,
    on MAXRESULTS outside 1..1000 and on a negative STARTPOSITION. Results are cached (immutable)."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("Encountered empty query")
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------- values

_MISSING = object()
_NUMBER_RE = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")


def _lookup(row: dict[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict):
            return _MISSING
        value = value.get(part, _MISSING)
        if value is _MISSING or value is None:
            return _MISSING
    if isinstance(value, dict):
        value = value.get("value", _MISSING)  # a Ref compares on its value
        if value is None:
            return _MISSING
    return value


@functools.lru_cache(maxsize=65536)
def _as_instant(text: str) -> float | None:
    """Epoch seconds of an ISO date/date-time string, or None if it is not one."""
    if not _DATE_RE.match(text):
        return None
    value = text[:-1] + "+00:00" if text.endswith("Z") else text
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=COMPANY_TZ)
    return moment.astimezone(UTC).timestamp()


@functools.lru_cache(maxsize=65536)
def _as_number(text: str) -> float | None:
    return float(text) if _NUMBER_RE.match(text) else None


def _compare(left: Any, right: Any) -> int | None:
    """Three-way compare a row value with a literal; None when they cannot be compared."""
    if isinstance(left, bool) or isinstance(right, bool):
        lb = left if isinstance(left, bool) else _as_bool(left)
        rb = right if isinstance(right, bool) else _as_bool(right)
        if lb is None or rb is None:
            return None
        return (lb > rb) - (lb < rb)
    if isinstance(left, int | float) or isinstance(right, int | float):
        ln = float(left) if isinstance(left, int | float) else _as_number(str(left))
        rn = float(right) if isinstance(right, int | float) else _as_number(str(right))
        if ln is None or rn is None:
            return None
        return (ln > rn) - (ln < rn)
    if not isinstance(left, str) or not isinstance(right, str):
        return None
    ln = _as_number(left)
    if ln is not None:
        rn = _as_number(right)
        if rn is not None:
            return (ln > rn) - (ln < rn)
    if left[:1].isdigit() and right[:1].isdigit():
        li = _as_instant(left)
        if li is not None:
            ri = _as_instant(right)
            if ri is not None:
                return (li > ri) - (li < ri)
    ll, rl = left.casefold(), right.casefold()
    return (ll > rl) - (ll < rl)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return None


_OPS: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0,
    "<": lambda c: c < 0,
    ">": lambda c: c > 0,
    "<=": lambda c: c <= 0,
    ">=": lambda c: c >= 0,
}


def _compile(cond: Condition) -> Callable[[dict[str, Any]], bool]:
    path = cond.path
    if cond.op == "LIKE":
        parts = (re.escape(p) for p in str(cond.value).split("%"))
        regex = re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)

        def like(row: dict[str, Any]) -> bool:
            value = _lookup(row, path)
            return isinstance(value, str) and regex.match(value) is not None

        return like
    if cond.op == "IN":
        options = cond.value

        def within(row: dict[str, Any]) -> bool:
            value = _lookup(row, path)
            return value is not _MISSING and any(_compare(value, option) == 0 for option in options)

        return within
    check = _OPS[cond.op]
    literal = cond.value
    if (
        isinstance(literal, str)
        and cond.op == "="
        and _as_number(literal) is None
        and not literal[:1].isdigit()
    ):
        folded = literal.casefold()

        def equals_text(row: dict[str, Any]) -> bool:  # the common "Name = 'x'" case, without _compare
            value = _lookup(row, path)
            if isinstance(value, str):
                return value.casefold() == folded
            return value is not _MISSING and _compare(value, literal) == 0

        return equals_text

    def compare(row: dict[str, Any]) -> bool:
        value = _lookup(row, path)
        if value is _MISSING:
            return False
        result = _compare(value, literal)
        return result is not None and check(result)

    return compare


def _order_key(path: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    def key(row: dict[str, Any]) -> tuple[int, Any]:
        return _sort_key(_lookup(row, path))

    return key


def _sort_key(value: Any) -> tuple[int, Any]:
    """Missing < booleans < numbers < instants < text; strings that look numeric sort as numbers."""
    if value is _MISSING:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, float(value))
    if isinstance(value, str):
        number = _as_number(value)
        if number is not None:
            return (2, number)
        if value[:1].isdigit():
            instant = _as_instant(value)
            if instant is not None:
                return (3, instant)
        return (4, value.casefold())
    return (5, str(value))


# ---------------------------------------------------------------------------------------- execute


def check_fields(query: Query) -> None:
    """Raise ``QueryError`` (QBO 4001) when WHERE or ORDERBY uses a property that is not queryable."""
    allowed = QUERYABLE_FIELDS.get(query.entity)
    if allowed is None:
        return
    for path in [c.path for c in query.where] + [o.path for o in query.order_by]:
        root = path.split(".", 1)[0]
        if root not in allowed:
            raise QueryError(f"property '{path}' is not queryable")


def execute(query: Query, rows: Iterable[dict[str, Any]]) -> QueryResult:
    """Filter, order and page ``rows`` (the entity's stored objects) like QBO.

    ``rows`` are returned as the same dict objects (not copies; callers must not mutate them).
    Raises ``QueryError`` (QBO 4001 "Invalid query") for a WHERE/ORDERBY on a non-queryable property.
    """
    check_fields(query)
    predicates = query._predicates
    mentions_active = any(c.path == "Active" for c in query.where)
    selected: list[dict[str, Any]] = []
    append = selected.append
    for row in rows:
        if not mentions_active and row.get("Active") is False:
            continue
        for predicate in predicates:
            if not predicate(row):
                break
        else:
            append(row)
    total = len(selected)
    if query.count:
        return QueryResult([], total, query.start_position, query.max_results)
    for term in reversed(query.order_by):  # stable sorts, last key first
        selected.sort(key=_order_key(term.path), reverse=term.descending)
    start = query.start_position - 1
    page = selected[start : start + query.max_results]
    return QueryResult(page, total, query.start_position, query.max_results)
