"""The identity of one sync record: :class:`RecordKey` (firm, realm, record type, platform id).

Services, repositories, messages and the admin API name a record by this one frozen value instead of four
loose arguments. It validates its parts when it is made (ids are opaque ASCII without ``#``, the record
type is one qbsync knows) and gives the record item's table key (``pk`` / ``sk``, docs/data-model.md):
``FIRM#{firm_id}#REALM#{realm_id}`` / ``REC#{record_type}#{platform_id}``. The item attribute that holds
the record type is still called ``entity_type`` (the item shape is unchanged); only the Python name is
``record_type``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from qbsync.vocab import RECORD_ID_PATTERN, RECORD_TYPES

__all__ = [
    "QBO_NOTE_FIELD",
    "RecordKey",
    "check_id",
    "check_record_type",
    "marker",
    "note_of",
    "parse_marker",
]

#: the QBO field qbsync's marker is written to, per QBO entity (``PrivateNote`` for every other one)
QBO_NOTE_FIELD = {"Customer": "Notes", "Item": "Description"}
_MARKER = re.compile(r"qbsync:([A-Za-z]+):([A-Za-z0-9_.:\-]+?)(?=$|[\s;,)])")


def marker(entity_type: str, platform_id: str) -> str:
    """``qbsync:<EntityType>:<platform id>``, the tag that identifies our own writes in QBO."""
    return f"qbsync:{entity_type}:{platform_id}"


def parse_marker(note: str | None) -> tuple[str, str] | None:
    """``(entity_type, platform_id)`` of the first qbsync marker in a note, or None."""
    if not note:
        return None
    found = _MARKER.search(note)
    return (found.group(1), found.group(2)) if found else None


def note_of(qbo_entity: str, obj: dict[str, Any]) -> str | None:
    """The note of a QBO object that carries qbsync's marker (``Notes``, ``Description`` or
    ``PrivateNote``), or None."""
    value = obj.get(QBO_NOTE_FIELD.get(qbo_entity, "PrivateNote"))
    return value if isinstance(value, str) else None


_ID_RE = re.compile(RECORD_ID_PATTERN)


def check_id(value: Any, what: str) -> str:
    """``value`` when it is a valid id; ValueError naming ``what`` otherwise."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):  # match: `$` passes a final "\n"
        raise ValueError(f"invalid {what} {value!r}: 1-128 letters, digits or _ . : @ -")
    return value


def check_record_type(record_type: Any) -> str:
    """``record_type`` when qbsync knows it; ValueError otherwise."""
    if record_type not in RECORD_TYPES:
        raise ValueError(f"unknown entity_type {record_type!r}; expected one of {list(RECORD_TYPES)}")
    return str(record_type)


@dataclass(frozen=True, slots=True)
class RecordKey:
    """One record of one firm's QuickBooks company. Raises ValueError on an invalid part."""

    firm_id: str
    realm_id: str
    record_type: str
    platform_id: str

    def __post_init__(self) -> None:
        check_id(self.firm_id, "firm_id")
        check_id(self.realm_id, "realm_id")
        check_record_type(self.record_type)
        check_id(self.platform_id, "platform_id")

    @property
    def pk(self) -> str:
        return f"FIRM#{self.firm_id}#REALM#{self.realm_id}"

    @property
    def sk(self) -> str:
        return f"REC#{self.record_type}#{self.platform_id}"

    def item_key(self) -> dict[str, str]:
        """The table key of the record item."""
        return {"pk": self.pk, "sk": self.sk}

    @property
    def ref(self) -> str:
        """``{record_type}#{platform_id}``: how ``waiting_on`` and ``requeued_by`` name a record."""
        return f"{self.record_type}#{self.platform_id}"

    @property
    def local(self) -> tuple[str, str]:
        """``(record_type, platform_id)``: the record within its realm (prerequisites, ``waiting_on``)."""
        return (self.record_type, self.platform_id)

    def sibling(self, record_type: str, platform_id: str | None = None) -> RecordKey:
        """Another record of the same firm and realm (``platform_id`` defaults to this one's)."""
        return RecordKey(
            self.firm_id,
            self.realm_id,
            record_type,
            platform_id if platform_id is not None else self.platform_id,
        )
