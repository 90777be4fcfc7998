"""What changed in QuickBooks on a synced record: the fields that matter, compared (issue 14 item 4).

:func:`differences` compares the QuickBooks object as it is now with the platform record qbsync last wrote
(the ``detail.data`` of the record's stored ``last_event``), field by field, for the fields that matter per
record type:

==================  =========================================================================================
record type         compared
==================  =========================================================================================
invoice             total (``TotalAmt``), the number of lines and each line's amount (sales lines, in
                    order), issue date (``TxnDate``), due date (``DueDate``), customer (``CustomerRef``)
payment             amount (``TotalAmt``), date (``TxnDate``), customer; as a CreditMemo the same
refund              amount, date, customer (``RefundReceipt``)
fee                 amount, date (``Purchase``)
client_account      display name, email, phone numbers, billing address, active (``Customer``)
service             name, rate (``UnitPrice``), description, active (``Item``)
==================  =========================================================================================

A client account that qbsync *linked* to a customer already in QuickBooks (an exact-name match, a mapping
the firm chose in the error center, the plan's link) is not compared: qbsync never wrote that customer, so
its name and contact fields are QuickBooks' own, not an edit (:func:`written_by_qbsync`: the customers
qbsync creates carry the record's marker in ``Notes``). Its absence still counts. Items carry no marker
(the mapper writes none), so a service linked by the same name cannot be told from one qbsync created and
is compared. A service billed on QuickBooks' "Sales" item (the company has no service income account) is
noted so on its record (:data:`qbsync.vocab.SALES_ITEM_NOTE`, :func:`on_sales_item`): that item's name,
rate and description are QuickBooks' own, so only whether it is still active is compared; its absence
still counts.

Amounts are compared to the cent and named was/now (``total was 605.00 USD, now 650.00 USD``); dates
was/now; a customer by its QuickBooks id. Client data (names, emails, phone numbers, addresses) is never
copied into the result: those fields are named, not shown (house rule: no personal data in errors).
:func:`explain_edit` / :func:`explain_delete` make the error-center explanation.

Pure: no I/O, no clock. Core models only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from qbsync import vocab
from qbsync.models.record_key import note_of, parse_marker
from qbsync.qbo.contact import ADDRESS_FIELDS, customer_email, customer_phones, platform_address

__all__ = [
    "CONTACT_FIELDS",
    "Difference",
    "accepted_contact",
    "differences",
    "explain_delete",
    "explain_edit",
    "explain_missing",
    "on_sales_item",
    "written_by_qbsync",
]

#: the customer fields the platform can take back from QuickBooks (as a "Contact Updated" event)
CONTACT_FIELDS = frozenset({"email", "phone numbers", "billing address"})


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs: ``was`` (the platform's value qbsync wrote) and ``now`` (QuickBooks'), or
    both None when the field holds client data and is only named."""

    field: str
    was: str | None = None
    now: str | None = None

    def text(self) -> str:
        if self.was is None and self.now is None:
            return f"{self.field} changed"
        return f"{self.field} was {self.was or 'empty'}, now {self.now or 'empty'}"


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def _ref(obj: Mapping[str, Any], name: str) -> str | None:
    ref = obj.get(name)
    value = ref.get("value") if isinstance(ref, Mapping) else None
    return str(value) if value not in (None, "") else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


class _Diff:
    """Collects the differences of one comparison."""

    def __init__(self, currency: str | None = None) -> None:
        self.found: list[Difference] = []
        self._currency = f" {currency}" if currency else ""

    def amount(self, label: str, was: Any, now: Any) -> None:
        a, b = _money(was), _money(now)
        if a != b:
            self.found.append(
                Difference(
                    label,
                    None if a is None else f"{a}{self._currency}",
                    None if b is None else f"{b}{self._currency}",
                )
            )

    def plain(self, label: str, was: Any, now: Any) -> None:
        a, b = _text(was), _text(now)
        if a != b:
            self.found.append(Difference(label, a, b))

    def hidden(self, label: str, was: Any, now: Any) -> None:
        """A field holding client data: named when it differs, its values never shown."""
        if _text(was) != _text(now):
            self.found.append(Difference(label))

    def customer(self, expected: str | None, obj: Mapping[str, Any]) -> None:
        now = _ref(obj, "CustomerRef")
        if expected is not None and now != expected:
            self.found.append(
                Difference(
                    "customer",
                    f"QuickBooks customer {expected}",
                    f"QuickBooks customer {now}" if now else None,
                )
            )


def _invoice(data: Mapping[str, Any], obj: Mapping[str, Any], customer_id: str | None) -> list[Difference]:
    d = _Diff(_text(data.get("currency")))
    d.amount("total", data.get("total"), obj.get("TotalAmt"))
    lines = [row for row in data.get("line_items") or [] if isinstance(row, Mapping)]
    qbo_lines = [
        row
        for row in obj.get("Line") or []
        if isinstance(row, Mapping) and row.get("DetailType") == "SalesItemLineDetail"
    ]
    if len(lines) != len(qbo_lines):
        d.found.append(Difference("number of lines", str(len(lines)), str(len(qbo_lines))))
    for i, (mine, theirs) in enumerate(zip(lines, qbo_lines, strict=False), start=1):
        d.amount(f"line {i} amount", mine.get("amount"), theirs.get("Amount"))
    d.plain("issue date", data.get("issue_date"), obj.get("TxnDate"))
    d.plain("due date", data.get("due_date"), obj.get("DueDate"))
    d.customer(customer_id, obj)
    return d.found


def _dated_amount(
    date_field: str, *, billed: bool = True
) -> Callable[[Mapping[str, Any], Mapping[str, Any], str | None], list[Difference]]:
    """``billed``: the object names the client's customer (``CustomerRef``); a fee's ``Purchase`` does not
    (it is paid to the processor, ``EntityRef`` a vendor), so its customer is not compared."""

    def compare(data: Mapping[str, Any], obj: Mapping[str, Any], customer_id: str | None) -> list[Difference]:
        d = _Diff(_text(data.get("currency")))
        d.amount("amount", data.get("amount"), obj.get("TotalAmt"))
        d.plain("date", data.get(date_field), obj.get("TxnDate"))
        if billed:
            d.customer(customer_id, obj)
        return d.found

    return compare


def _phones(obj: Mapping[str, Any]) -> str:
    return ",".join(sorted("".join(ch for ch in p["number"] if ch.isalnum()) for p in customer_phones(obj)))


def _platform_phones(data: Mapping[str, Any]) -> str:
    """The numbers qbsync wrote (as ``qbsync.outbound.mapping.customer_payload`` places them: the first
    mobile and fax in their slots, others in Primary then Alternate, the rest have no place in QBO)."""
    slots: dict[str, str] = {}
    for phone in data.get("phones") or []:
        if not isinstance(phone, Mapping) or not phone.get("number"):
            continue
        key = {"mobile": "Mobile", "fax": "Fax"}.get(str(phone.get("type")))
        if key is None:
            key = "PrimaryPhone" if "PrimaryPhone" not in slots else "AlternatePhone"
        slots.setdefault(key, "".join(ch for ch in str(phone["number"]) if ch.isalnum()))
    return ",".join(sorted(slots.values()))


def _address(value: Any, names: Sequence[str]) -> str:
    if not isinstance(value, Mapping):
        return ""
    return "|".join(_text(value.get(n)) or "" for n in names).strip("|")


def _customer(data: Mapping[str, Any], obj: Mapping[str, Any], _: str | None) -> list[Difference]:
    d = _Diff()
    d.hidden("display name", data.get("name"), obj.get("DisplayName"))
    d.hidden("email", data.get("email"), customer_email(obj))
    d.hidden("phone numbers", _platform_phones(data), _phones(obj))
    d.hidden(
        "billing address",
        _address(data.get("billing_address"), [p for p, _ in ADDRESS_FIELDS]),
        _address(obj.get("BillAddr"), [q for _, q in ADDRESS_FIELDS]),
    )
    _active(d, data, obj)
    return d.found


def _active(d: _Diff, data: Mapping[str, Any], obj: Mapping[str, Any]) -> None:
    was = data.get("active", True) is not False
    now = obj.get("Active", True) is not False
    if was != now:
        d.found.append(Difference("status", "active" if was else "inactive", "active" if now else "inactive"))


def _item(data: Mapping[str, Any], obj: Mapping[str, Any], _: str | None) -> list[Difference]:
    d = _Diff()
    d.plain("name", data.get("name"), obj.get("Name"))
    d.amount("rate", data.get("rate"), obj.get("UnitPrice"))
    d.hidden("description", data.get("description"), obj.get("Description"))
    _active(d, data, obj)
    return d.found


def accepted_contact(
    data: Mapping[str, Any], customer: Mapping[str, Any], fields: Sequence[str]
) -> dict[str, Any]:
    """The client account's platform ``data`` with QuickBooks' values of the contact ``fields`` the firm
    accepted (:data:`CONTACT_FIELDS`), in the platform's shape: the inverse of the comparison, so that
    :func:`differences` of the result and ``customer`` names none of those fields. Other fields are kept."""
    out = dict(data)
    if "email" in fields:
        out["email"] = customer_email(customer)
    if "phone numbers" in fields:
        out["phones"] = customer_phones(customer)
    if "billing address" in fields:
        out["billing_address"] = platform_address(customer.get("BillAddr"))
    return out


_COMPARE: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], str | None], list[Difference]]] = {
    "invoice": _invoice,
    "payment": _dated_amount("payment_date"),
    "credit_memo": _dated_amount("payment_date"),
    "refund": _dated_amount("refund_date"),
    "fee": _dated_amount("fee_date", billed=False),
    "client_account": _customer,
    "service": _item,
}


def written_by_qbsync(record_type: str, platform_id: str, qbo_entity: str, obj: Mapping[str, Any]) -> bool:
    """Whether QuickBooks' ``obj`` is one qbsync wrote for the record (see the module doc): for a client
    account when the customer carries the record's own marker, not when qbsync linked the record to a
    customer that was already there; True for every other record type (transactions are qbsync's; items
    carry no marker to tell)."""
    if record_type != "client_account":
        return True
    info = vocab.RECORD_TYPE_INFO[record_type]
    return parse_marker(note_of(qbo_entity or info.qbo_entities[0], dict(obj))) == (info.marker, platform_id)


def on_sales_item(record_type: str, note: str | None) -> bool:
    """Whether the record is a service billed on QuickBooks' "Sales" item (its ``note`` says so:
    :data:`qbsync.vocab.SALES_ITEM_NOTE`, written when the outbound sync linked it there)."""
    return record_type == "service" and note == vocab.SALES_ITEM_NOTE


def _sales_item(data: Mapping[str, Any], obj: Mapping[str, Any]) -> list[Difference]:
    """A service on the "Sales" item: the item's name, rate and description are QuickBooks' own; only an
    inactive item matters (the lines billed on it would fail), while the platform's service is active."""
    if data.get("active", True) is not False and obj.get("Active", True) is False:
        return [Difference("status", "active", "inactive")]
    return []


def differences(
    record_type: str,
    data: Mapping[str, Any],
    obj: Mapping[str, Any],
    *,
    customer_id: str | None = None,
    sales_item: bool = False,
) -> list[Difference]:
    """The fields that matter of ``record_type`` where QuickBooks' ``obj`` differs from the platform's
    ``data`` (see the module table); ``customer_id``: the QuickBooks id of the record's client account
    (None: the customer is not compared); ``sales_item``: the record is a service billed on QuickBooks'
    "Sales" item (:func:`on_sales_item`): only whether that item is still active is compared. Raises
    KeyError for a record type that is not compared."""
    if sales_item:
        return _sales_item(data, obj)
    return _COMPARE[record_type](data, obj, customer_id)


_NOUN = {
    "invoice": "invoice",
    "payment": "payment",
    "credit_memo": "credit memo",
    "refund": "refund",
    "fee": "processing fee",
    "client_account": "client account's customer",
    "service": "service's item",
}


def _what(record_type: str, data: Mapping[str, Any]) -> str:
    noun = _NOUN.get(record_type, record_type.replace("_", " "))
    number = _text(data.get("number")) if record_type == "invoice" else None
    return f"The {noun} {number}" if number else f"The {noun}"


def explain_edit(record_type: str, data: Mapping[str, Any], found: Sequence[Difference]) -> str:
    """``The invoice INV-1042 was edited in QuickBooks after it was synced: total was 605.00 USD, now 650.00
    USD; line 2 amount was 120.00 USD, now 165.00 USD.`` (names only for client data)."""
    changes = "; ".join(d.text() for d in found) or "a field qbsync does not compare changed"
    return f"{_what(record_type, data)} was edited in QuickBooks after it was synced: {changes}."


def explain_delete(record_type: str, data: Mapping[str, Any]) -> str:
    return (
        f"{_what(record_type, data)} was deleted in QuickBooks after it was synced, so QuickBooks no longer "
        "has the platform's record."
    )


def explain_missing(record_type: str, data: Mapping[str, Any], qbo_entity: str, qbo_id: str) -> str:
    """The drift report did not find the record's QuickBooks object (a query cannot tell deleted from never
    there)."""
    return (
        f"{_what(record_type, data)} is missing in QuickBooks: QuickBooks has no {qbo_entity} {qbo_id} (it "
        "was deleted there, or the link points to an object this company never had)."
    )
