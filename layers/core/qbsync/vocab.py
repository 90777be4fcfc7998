"""The one vocabulary of qbsync: record types, their platform and QuickBooks names, and error categories.

Every Literal, lookup table and check of the packages that names a record type or an error category derives
from here (issue 9); nothing else spells the lists out. Core: imports only the standard library.

**Record types** (:data:`RecordType`, the ``entity_type`` of a sync record, of an error-log entry and of a
:class:`~qbsync.models.commands.SyncCommand`), one :class:`RecordTypeInfo` each in :data:`RECORD_TYPE_INFO`:

==================  ================  ========================  =================  ==========  =========
record type         platform entity   QuickBooks entity         marker             category    name list
==================  ================  ========================  =================  ==========  =========
client_account      ClientAccount     Customer                  ClientAccount      Accounts    yes
service             Service           Item                      Service            Services    yes
invoice             Invoice           Invoice                   Invoice            Invoices
payment             Payment           Payment (or CreditMemo)   Payment            Payments
credit_memo         -                 CreditMemo                Payment            Payments
fee                 ProcessingFee     Purchase                  ProcessingFee      Expenses
refund              Refund            RefundReceipt             Refund             Refunds
credit_application  -                 Payment                   CreditApplication  Payments
==================  ================  ========================  =================  ==========  =========

* *platform entity*: the ``ENTITY`` of the platform events (:mod:`qbsync.models.platform_events`) and the
  ``entity_type`` of qbsync's own events (:data:`PlatformEntity`); ``-``: the record type has no events of its
  own (a credit application is the zero-total Payment qbsync writes for a credit payment; ``credit_memo`` is
  kept for the records API and has no writer today). :data:`SYNCABLE_TYPES` (:data:`SyncableType`) are the
  record types with a platform entity: the ones a SyncCommand, a manual sync or a resync can name.
* *QuickBooks entity*: what the record becomes (:attr:`RecordTypeInfo.qbo_entity`: the default, used when
  the event alone does not say, e.g. a delete); a payment from client credit becomes a CreditMemo.
* *marker*: the entity type qbsync writes in its ``qbsync:<marker>:<platform id>`` note to recognise its own
  QuickBooks objects (:func:`qbsync.outbound.mapping.marker`).
* *category*: the error-center category of the record's errors (:data:`ErrorCategory`); a record's own
  ``RecordError.category`` is the same name in lower case (:func:`record_error_category`).
* *name list*: QuickBooks never deletes name-list objects: deleting the record deactivates it.

**Error categories** (:data:`ErrorCategory`, :data:`ERROR_CATEGORIES`, in display order): Accounts,
Invoices, Payments, Refunds, Expenses, Services, Contacts, Taxes, Connection. :data:`MappingCategory` is the
subset a mapping rule can raise (no Contacts, no Connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

__all__ = [
    "CREDIT_APPLICATION",
    "DUPLICATE_IN_SNAPSHOT",
    "ERROR_CATEGORIES",
    "EVENT_ENTITY_OF",
    "INITIAL_SYNC_PHASES",
    "INVALID_IN_SNAPSHOT",
    "INVALID_WITHOUT_ID",
    "MAPPING_CATEGORIES",
    "NAME_LISTS",
    "PHASE_RECORD_TYPE",
    "PLAN_ACTIONS",
    "PLATFORM_ENTITIES",
    "RECORD_TYPES",
    "RECORD_TYPE_INFO",
    "RECORD_TYPE_OF",
    "REMOVING_OPERATIONS",
    "SALES_ITEM_NOTE",
    "SYNCABLE_TYPES",
    "ErrorCategory",
    "InitialSyncPhase",
    "MappingCategory",
    "PlanAction",
    "PlatformEntity",
    "RecordType",
    "RecordTypeInfo",
    "SyncableType",
    "record_error_category",
]

RecordType = Literal[
    "client_account",
    "service",
    "invoice",
    "payment",
    "credit_memo",
    "fee",
    "refund",
    "credit_application",
]
#: the record types that have platform events (and so can be synced again by a SyncCommand)
SyncableType = Literal["client_account", "service", "invoice", "payment", "refund", "fee"]
#: platform entities (``ENTITY`` of platform events, ``entity_type`` of qbsync events)
PlatformEntity = Literal[
    "ClientAccount", "Contact", "Service", "Invoice", "Payment", "Refund", "ProcessingFee"
]
ErrorCategory = Literal[
    "Accounts", "Invoices", "Payments", "Refunds", "Expenses", "Services", "Contacts", "Taxes", "Connection"
]
#: the categories a mapping rule (:class:`~qbsync.outbound.mapping.MappingError`) can raise
MappingCategory = Literal["Accounts", "Invoices", "Payments", "Refunds", "Expenses", "Services", "Taxes"]

RECORD_TYPES: tuple[RecordType, ...] = get_args(RecordType)
SYNCABLE_TYPES: tuple[SyncableType, ...] = get_args(SyncableType)
PLATFORM_ENTITIES: tuple[PlatformEntity, ...] = get_args(PlatformEntity)
#: error-center categories (E.1), in display order
ERROR_CATEGORIES: tuple[ErrorCategory, ...] = get_args(ErrorCategory)
MAPPING_CATEGORIES: tuple[MappingCategory, ...] = get_args(MappingCategory)

#: the record of the zero-total Payment that applies a credit payment's CreditMemo to its invoices
CREDIT_APPLICATION: RecordType = "credit_application"


@dataclass(frozen=True, slots=True)
class RecordTypeInfo:
    """What qbsync knows about one record type (see the module table)."""

    record_type: RecordType
    #: platform entity of its events; None: the record type has no events of its own
    platform_entity: PlatformEntity | None
    #: the QuickBooks entities it may become, the default first
    qbo_entities: tuple[str, ...]
    #: entity type in qbsync's ``qbsync:<marker>:<id>`` note
    marker: str
    category: ErrorCategory
    #: a QuickBooks name list (Customer, Item): never deleted, deactivated
    name_list: bool = False

    @property
    def qbo_entity(self) -> str:
        """The QuickBooks entity of the record when nothing else says (e.g. a delete)."""
        return self.qbo_entities[0]


#: record type -> what qbsync knows about it (keys: :data:`RECORD_TYPES`, in that order)
RECORD_TYPE_INFO: dict[str, RecordTypeInfo] = {
    t.record_type: t
    for t in (
        RecordTypeInfo("client_account", "ClientAccount", ("Customer",), "ClientAccount", "Accounts", True),
        RecordTypeInfo("service", "Service", ("Item",), "Service", "Services", True),
        RecordTypeInfo("invoice", "Invoice", ("Invoice",), "Invoice", "Invoices"),
        RecordTypeInfo("payment", "Payment", ("Payment", "CreditMemo"), "Payment", "Payments"),
        RecordTypeInfo("credit_memo", None, ("CreditMemo",), "Payment", "Payments"),
        RecordTypeInfo("fee", "ProcessingFee", ("Purchase",), "ProcessingFee", "Expenses"),
        RecordTypeInfo("refund", "Refund", ("RefundReceipt",), "Refund", "Refunds"),
        RecordTypeInfo("credit_application", None, ("Payment",), "CreditApplication", "Payments"),
    )
}
if tuple(RECORD_TYPE_INFO) != RECORD_TYPES or {
    t for t, i in RECORD_TYPE_INFO.items() if i.platform_entity
} != set(SYNCABLE_TYPES):  # pragma: no cover - a wrong edit of this module fails every import of it
    raise RuntimeError("qbsync.vocab: RECORD_TYPE_INFO must describe RecordType / SyncableType exactly")

#: the name-list record types (deleting one deactivates its QuickBooks object)
NAME_LISTS: tuple[RecordType, ...] = tuple(i.record_type for i in RECORD_TYPE_INFO.values() if i.name_list)

#: the record operations that remove the record's object from QuickBooks (deleted, voided, or made inactive
#: for a name list): a record last applied so (``applied_op``) is not compared with QuickBooks any more, and a
#: change of that object there is its own removal or an edit of a removed object, never drift
REMOVING_OPERATIONS: frozenset[str] = frozenset({"delete", "void"})

#: the ``note`` of a service record linked to QuickBooks' "Sales" item (no service income account: services
#: are billed on it instead of their own items). That item is QuickBooks' own, not the service: the drift
#: comparisons (:func:`qbsync.inbound.differences.differences`) read only whether it is still active.
SALES_ITEM_NOTE = (
    "Billed on QuickBooks' 'Sales' item: no service income account is set and QuickBooks has no "
    "'Uncategorized Income' account"
)

#: platform entity -> record type (``ClientAccount`` -> ``client_account``; Contact has none: contacts sync
#: inbound)
RECORD_TYPE_OF: dict[str, SyncableType] = {
    i.platform_entity: cast(SyncableType, i.record_type)  # the record types with a platform entity
    for i in RECORD_TYPE_INFO.values()
    if i.platform_entity
}
#: entity type of a record or an error-log entry -> the platform entity qbsync's events name (``contact``:
#: errors of contacts, which have no record type)
EVENT_ENTITY_OF: dict[str, PlatformEntity] = {
    **{t: i.platform_entity for t, i in RECORD_TYPE_INFO.items() if i.platform_entity},
    "contact": "Contact",
}

# ---------------------------------------------------------------------------------------------- initial sync
#: the phases of the initial sync's execution, in the order they run (PRODUCT.md F): each one syncs one record
#: type of the platform's snapshot, so everything a record needs was synced by an earlier phase
InitialSyncPhase = Literal["services", "customers", "invoices", "payments", "refunds", "fees"]
INITIAL_SYNC_PHASES: tuple[InitialSyncPhase, ...] = get_args(InitialSyncPhase)
#: phase -> the record type it syncs (payments include the credit payments that become CreditMemos)
PHASE_RECORD_TYPE: dict[str, SyncableType] = {
    "services": "service",
    "customers": "client_account",
    "invoices": "invoice",
    "payments": "payment",
    "refunds": "refund",
    "fees": "fee",
}
#: what the dry-run plan says will happen to a record (PRODUCT.md J.1)
PlanAction = Literal["create", "link", "skip", "block"]
PLAN_ACTIONS: tuple[PlanAction, ...] = get_args(PlanAction)
#: the reason code of a snapshot line that does not parse or validate (``block``): the record it names gets
#: an error-center entry with this code when its phase runs; a line with no readable id is a plan finding
INVALID_IN_SNAPSHOT = "invalid_in_snapshot"
#: the reason code of a second line of one record in a snapshot file (``block``): a plan finding only, the
#: record syncs from its first line
DUPLICATE_IN_SNAPSHOT = "duplicate_in_snapshot"
#: the plan finding of snapshot lines that do not parse and carry no readable record id
INVALID_WITHOUT_ID = "invalid_in_snapshot_no_id"


def record_error_category(record_type: str) -> str:
    """``RecordError.category`` of a record type: its error-center category in lower case (``invoices``).

    Raises KeyError for an unknown record type."""
    return RECORD_TYPE_INFO[record_type].category.lower()


# ---------------------------------------------------------------------------------------------- ids
#: the characters of a firm, realm or platform record id (docs/events/README.md): opaque ASCII, never the
#: ``#`` the table keys join parts with, no ``/`` (paths), no spaces or control characters
ID_CHARS = r"A-Za-z0-9_.:\-"
#: the longest id
ID_MAX_LENGTH = 128
#: the JSON-schema pattern of an id of the platform's events (with :data:`ID_MAX_LENGTH`;
#: :class:`qbsync.models.common.Id`) and of the admin JWT's ``firm_id``
ID_PATTERN = rf"^[{ID_CHARS}]+$"
#: an id qbsync keys a record, a command, a path parameter or a settings map by: the platform's ids and
#: also ``@`` (request ids); never ``#``, the table keys' separator (``qbsync.models.record_key.check_id``)
RECORD_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"  # ID_CHARS and "@", at most ID_MAX_LENGTH
#: a platform user id (the admin JWT's ``sub``): an id that may also carry ``@``, ``+`` and ``|`` (e-mail
#: addresses and identity-provider subjects such as ``auth0|abc``)
USER_ID_PATTERN = r"^[A-Za-z0-9_.:@+|-]{1,128}$"  # ID_CHARS and "@ + |", at most ID_MAX_LENGTH
