"""A QuickBooks customer's contact fields read in the platform's shape: one reading for the drift
comparison (:mod:`qbsync.inbound.differences`), Accept's stored platform data and the "Contact Updated"
event (:mod:`qbsync.errorcenter.drift_actions`).

The values are client data (names, emails, phone numbers, addresses): never logged, never in an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ADDRESS_FIELDS", "PHONE_SLOTS", "customer_email", "customer_phones", "platform_address"]

#: QuickBooks' phone slots -> the platform's phone type (``qbsync.outbound.mapping.customer_payload`` writes
#: the first mobile and fax to their slots, other numbers to Primary then Alternate)
PHONE_SLOTS = (("PrimaryPhone", "work"), ("Mobile", "mobile"), ("Fax", "fax"), ("AlternatePhone", "other"))

#: the platform's address keys -> QuickBooks' address fields
ADDRESS_FIELDS = (
    ("line1", "Line1"),
    ("line2", "Line2"),
    ("city", "City"),
    ("region", "CountrySubDivisionCode"),
    ("postal_code", "PostalCode"),
    ("country", "Country"),
)


def customer_email(customer: Mapping[str, Any]) -> str | None:
    """The customer's ``PrimaryEmailAddr.Address``, or None when it has none."""
    email = customer.get("PrimaryEmailAddr")
    address = email.get("Address") if isinstance(email, Mapping) else None
    if address is None:
        return None
    return str(address).strip() or None


def customer_phones(customer: Mapping[str, Any]) -> list[dict[str, str]]:
    """The customer's phone numbers as the platform's ``[{"type", "number"}]``, in :data:`PHONE_SLOTS`
    order; empty slots are left out."""
    phones = []
    for slot, kind in PHONE_SLOTS:
        value = customer.get(slot)
        number = value.get("FreeFormNumber") if isinstance(value, Mapping) else None
        if number:
            phones.append({"type": kind, "number": str(number)})
    return phones


def platform_address(value: Any) -> dict[str, str] | None:
    """A QuickBooks address (``BillAddr``, ``ShipAddr``) as the platform's address (:data:`ADDRESS_FIELDS`
    keys, empty fields left out); None when it has no field at all."""
    if not isinstance(value, Mapping):
        return None
    out = {key: str(value[field]) for key, field in ADDRESS_FIELDS if value.get(field)}
    return out or None
