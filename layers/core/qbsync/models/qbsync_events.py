"""Events qbsync sends to the platform (``Source = "qbsync"`` on the qbsync bus).

Each model is the EventBridge ``detail``; its class attribute ``DETAIL_TYPE`` is the DetailType, so
:class:`qbsync.adapters.eventbridge.EventPublisher` publishes instances directly::

    publisher.publish([ConnectionChanged(firm_id=..., correlation_id=..., status="connected", ...)])

Every detail carries ``firm_id``, ``event_id`` (unique; the platform's idempotency key),
``occurred_at`` and ``correlation_id`` (the id of the platform event or admin request that caused
it). ``event_id`` and ``occurred_at`` default to a fresh UUID and now (UTC). Details never hold tokens.
JSON Schemas are committed in ``docs/events/qbsync`` (``scripts/gen_event_schemas.py``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from qbsync.models.common import Address, Currency, Email, EventModel, Id, Money, NonNegativeMoney, Phone
from qbsync.vocab import INITIAL_SYNC_PHASES, ErrorCategory, InitialSyncPhase, PlatformEntity

__all__ = [
    "CUSTOM_TXN_NUMBERS_OFF",
    "QBSYNC_EVENT_TYPES",
    "QBSYNC_SOURCE",
    "CompanyWarning",
    "ConnectionChanged",
    "ContactData",
    "ContactImported",
    "ContactUpdated",
    "DriftDetected",
    "DriftDifference",
    "DriftFinding",
    "FirmHealthChanged",
    "InitialSyncPlanned",
    "InitialSyncProgress",
    "InvoicePaid",
    "PaymentReceivedInQbo",
    "PaymentWithdrawnInQbo",
    "PhaseProgress",
    "PlanFinding",
    "PlanTotals",
    "QbsyncEvent",
    "ReceivedAllocation",
    "ServiceDeleteRequested",
    "ServiceImported",
    "SyncErrorRaised",
    "SyncErrorResolved",
    "SyncStatusChanged",
    "WithdrawnAllocation",
]

QBSYNC_SOURCE = "qbsync"

EntityType = PlatformEntity
SyncStatus = Literal["not_synced", "syncing", "synced", "failed", "skipped"]
NotifyRole = Literal["owner", "admin", "staff"]


def _new_event_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


def _default_notify_roles() -> list[NotifyRole]:
    return ["owner", "admin"]  # E.5: the owner and the admins are notified of new errors


def _envelope_required(schema: dict[str, Any]) -> None:
    # event_id and occurred_at have defaults in Python but are always present on the wire.
    required = schema.setdefault("required", [])
    for name in ("firm_id", "event_id", "occurred_at", "correlation_id"):
        if name not in required:
            required.append(name)


class QbsyncEvent(EventModel):
    """Envelope fields of every qbsync event."""

    model_config = ConfigDict(defer_build=True, json_schema_extra=_envelope_required)

    DETAIL_TYPE: ClassVar[str]

    firm_id: Id
    event_id: Id = Field(default_factory=_new_event_id)
    occurred_at: AwareDatetime = Field(default_factory=_now)
    correlation_id: Id


#: the company numbers invoices itself: the platform's invoice numbers are not sent (QBO.md Preferences)
CUSTOM_TXN_NUMBERS_OFF = "custom_txn_numbers_off"


class CompanyWarning(EventModel):
    """Something about the QuickBooks company that makes records land differently from what the firm sees
    on the platform. Not a problem: nothing is refused, the sync goes on; the firm should know (and may
    change the company's settings in QuickBooks)."""

    code: Literal["custom_txn_numbers_off"] = Field(
        description="custom_txn_numbers_off: invoices get QuickBooks' own numbers (1001, 1002, ...), not the "
        "platform's invoice numbers"
    )
    message: str = Field(min_length=1, max_length=1000, description="what happens and how to change it")


class ConnectionChanged(QbsyncEvent):
    """The firm's QuickBooks connection changed (published by ``qbsync.connection``).

    ``change`` says what happened: ``connected`` (first connection; the initial sync subscribes to
    it), ``reconnected`` (same company again: mappings kept, paused work resumes), ``switch_pending``
    (the owner consented to a *different* company; waiting for the typed ``ACCEPT``),
    ``switched`` (the new company is live; ``previous_realm_id`` was archived and everything syncs
    afresh), ``needs_reconnect`` (authorization revoked or expired; ``reason`` says why, work is
    paused, admins are notified), ``disconnected`` (by the owner; tokens revoked at Intuit).
    ``status`` is the connection's status after the change.
    """

    DETAIL_TYPE: ClassVar[str] = "Connection Changed"
    change: Literal[
        "connected", "reconnected", "switch_pending", "switched", "needs_reconnect", "disconnected"
    ]
    status: Literal["connected", "needs_reconnect", "disconnected", "pending_switch"]
    realm_id: Id
    company_name: str | None = Field(None, max_length=500)
    previous_realm_id: Id | None = None
    reason: str | None = Field(None, max_length=1000, description="Plain-language cause (needs_reconnect)")
    warnings: list[CompanyWarning] = Field(
        default_factory=list,
        description="connected, reconnected, switch_pending: what about the company makes records land "
        "differently (e.g. custom transaction numbers off); empty when nothing",
    )


HealthLevel = Literal["ok", "degraded", "failing"]
HealthReason = Literal[
    "not_connected",
    "token_expiring",
    "token_expiry_soon",
    "failed_records",
    "dead_letters",
    "lag_high",
    "lag_critical",
    "budget_high",
]


class FirmHealthChanged(QbsyncEvent):
    """The firm's sync health crossed a threshold (``ok`` → ``degraded`` → ``failing`` or back), published
    once per crossing by ``qbsync.health`` when ``GET /health`` or the hourly resync evaluates it
    (docs/operations.md "Per-firm health"). ``reasons`` name the figures past a threshold (codes, no data).
    """

    DETAIL_TYPE: ClassVar[str] = "Firm Health Changed"
    realm_id: Id | None = None
    level: HealthLevel
    previous_level: HealthLevel
    reasons: list[HealthReason] = Field(
        default_factory=list, description="why the level is not ok (empty when ok)"
    )


class SyncStatusChanged(QbsyncEvent):
    """A platform record's sync status changed (Not synced, Syncing, Synced, Failed, Skipped)."""

    DETAIL_TYPE: ClassVar[str] = "Sync Status Changed"
    realm_id: Id
    entity_type: EntityType
    platform_id: Id
    status: SyncStatus
    qbo_id: Id | None = None
    qbo_url: str | None = Field(None, max_length=2000, description="Deep link to the record in QBO")
    error_id: Id | None = Field(None, description="Set when status is failed")
    error_message: str | None = Field(
        None, max_length=2000, description="Error text shown next to the status"
    )
    note: str | None = Field(
        None,
        max_length=500,
        description='synced: how the record landed differently from the platform, e.g. "QuickBooks numbered '
        'it 1042: custom transaction numbers are off in the company"',
    )


class SyncErrorRaised(QbsyncEvent):
    """A NEW sync error was recorded in the error center: the notification contract (PRODUCT.md E.5).

    Published once per new error entry (only the writer that created it publishes): the platform notifies
    the firm's users with a role in ``notify_roles`` (the owner and the admins) and may refresh its banner
    with ``open_error_count``. Repeats of the same error, and errors an admin skipped, are not published
    again; a different error of the same record opens a new entry and is published (E.3).
    """

    DETAIL_TYPE: ClassVar[str] = "Sync Error Raised"
    error_id: Id
    realm_id: Id | None = None
    category: ErrorCategory
    entity_type: EntityType | None = None
    platform_id: Id | None = None
    qbo_code: str | None = Field(None, max_length=50)
    qbo_message: str | None = Field(None, max_length=2000)
    explanation: str = Field(min_length=1, max_length=2000, description="Plain-language explanation and fix")
    attempts: int = Field(ge=1)
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    open_error_count: int | None = Field(None, ge=0, description="Open errors of the firm (banner count)")
    notify_roles: list[NotifyRole] = Field(
        default_factory=_default_notify_roles,
        min_length=1,
        description="Roles of the firm's users to notify (E.5: the owner and the admins)",
    )


class SyncErrorResolved(QbsyncEvent):
    """An error left the open list: the resync succeeded, or an admin skipped, deleted or remapped."""

    DETAIL_TYPE: ClassVar[str] = "Sync Error Resolved"
    error_id: Id
    category: ErrorCategory
    entity_type: EntityType | None = None
    platform_id: Id | None = None
    resolution: Literal[
        "resynced",
        "skipped",
        "deleted",
        "mapped_existing",
        "created_new",
        "not_synced",
        "ignored",
        "accepted_quickbooks",
        "matched_again",
    ] = Field(
        description="accepted_quickbooks: the firm kept QuickBooks' change of a record edited there (its "
        "contact fields went to the platform as Contact Updated); matched_again: a record edited in "
        "QuickBooks was changed back there and matches the platform again; not_synced: unsynced or unlinked"
    )
    resolved_by: Id | None = Field(None, description="Admin user id; null when a retry fixed it")
    open_error_count: int | None = Field(None, ge=0)


class ContactData(EventModel):
    """A contact as read from a QBO Customer (the fields that sync both ways)."""

    first_name: str | None = Field(None, max_length=100)
    middle_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    display_name: str = Field(min_length=1, max_length=500)
    company_name: str | None = Field(None, max_length=500)
    email: Email | None = None
    phones: list[Phone] = Field(default_factory=list)
    physical_address: Address | None = None
    mailing_address: Address | None = None


class ContactImported(QbsyncEvent):
    """A QBO customer was imported ("sync now").

    ``match``: ``linked`` (exact name and email: linked to ``platform_contact_id``), ``new`` (no match:
    the platform creates a contact of type ``contact_type``), ``duplicate`` (name or email only:
    queued for the admin; ``candidate_contact_ids`` are the proposed matches).
    """

    DETAIL_TYPE: ClassVar[str] = "Contact Imported"
    realm_id: Id
    qbo_customer_id: Id
    match: Literal["linked", "new", "duplicate"]
    platform_contact_id: Id | None = None
    candidate_contact_ids: list[Id] = Field(default_factory=list)
    contact_type: str = Field("Client", min_length=1, max_length=100)
    contact: ContactData


class ContactUpdated(QbsyncEvent):
    """A linked contact changed in QBO; ``contact`` is its new state, ``changed_fields`` what changed."""

    DETAIL_TYPE: ClassVar[str] = "Contact Updated"
    realm_id: Id
    qbo_customer_id: Id
    platform_contact_id: Id
    changed_fields: list[
        Literal["name", "email", "phones", "physical_address", "mailing_address", "company_name"]
    ] = Field(min_length=1)
    contact: ContactData


class ReceivedAllocation(EventModel):
    invoice_id: Id = Field(description="Platform invoice id")
    qbo_invoice_id: Id
    amount: Money = Field(description="The part of the payment applied to this invoice")
    invoice_balance: NonNegativeMoney = Field(description="Invoice balance in QBO after this payment")


#: ``created``: the platform has not held this QBO payment; ``updated``: it replaces what was announced
PaymentOperation = Literal["created", "updated"]


class PaymentReceivedInQbo(QbsyncEvent):
    """A payment recorded in QBO against synced invoices (manual, partial, or split across invoices).

    Exactly once per QBO payment version (``qbo_payment_id`` + ``qbo_version``, the payment's SyncToken):
    a redelivery of the same version carries the same ``event_id``, which is the platform's dedupe key.
    ``operation``: ``created`` (the platform has not received this payment yet) or ``updated`` (an edit in
    QBO: ``allocations`` is the payment's complete new state and REPLACES what an earlier version said;
    an invoice no longer listed is no longer paid by it). ``amount`` is the payment's total;
    ``unapplied_amount`` the part QBO keeps as the customer's credit (not applied to any invoice).
    """

    DETAIL_TYPE: ClassVar[str] = "Payment Received In QBO"
    realm_id: Id
    qbo_payment_id: Id
    qbo_version: Id = Field(description="The QBO payment's SyncToken this event announces")
    operation: PaymentOperation
    account_id: Id = Field(description="Platform client account of the paying customer")
    payment_date: date
    currency: Currency
    amount: Money
    unapplied_amount: NonNegativeMoney = Field(
        default=Decimal("0.00"), description="Left unapplied in QBO (a credit of the customer)"
    )
    method: str | None = Field(None, max_length=100, description="QBO payment method name")
    reference: str | None = Field(None, max_length=100, description="QBO PaymentRefNum")
    allocations: list[ReceivedAllocation] = Field(min_length=1, max_length=500)


class WithdrawnAllocation(EventModel):
    invoice_id: Id = Field(description="Platform invoice id")
    qbo_invoice_id: Id
    amount: Money = Field(description="The amount the withdrawn payment had applied to this invoice")


class PaymentWithdrawnInQbo(QbsyncEvent):
    """A payment announced earlier by "Payment Received In QBO" no longer stands: undo it on the platform.

    ``reason``: ``deleted`` (deleted in QBO), ``voided`` (voided in QBO: amount 0, nothing applied),
    ``unapplied`` (edited so that it pays none of the synced invoices any more), ``rejected`` (edited into
    a version qbsync refuses - e.g. a date more than 2 days ahead -; ``error_id`` is the Payments error that
    says why; a valid later version is announced again as ``created``). ``allocations`` is what was
    announced before. Exactly once per QBO payment version, like "Payment Received In QBO" (``qbo_version``
    is ``deleted`` for a deletion).
    """

    DETAIL_TYPE: ClassVar[str] = "Payment Withdrawn In QBO"
    realm_id: Id
    qbo_payment_id: Id
    qbo_version: Id = Field(description="The QBO payment's SyncToken, or 'deleted'")
    reason: Literal["deleted", "voided", "unapplied", "rejected"]
    error_id: Id | None = Field(None, description="rejected: the error-center entry that explains why")
    allocations: list[WithdrawnAllocation] = Field(min_length=1, max_length=500)


class InvoicePaid(QbsyncEvent):
    """A synced invoice's balance reached 0 through payments recorded in QBO: mark it Paid.

    Published with the "Payment Received In QBO" of the payment version that brought the balance to 0
    (``qbo_payment_id`` + ``qbo_version``), exactly once per that version; ``event_id`` is derived from
    (invoice, payment, version), the platform's dedupe key.
    """

    DETAIL_TYPE: ClassVar[str] = "Invoice Paid"
    realm_id: Id
    invoice_id: Id
    qbo_invoice_id: Id
    paid_on: date
    total: Money
    qbo_payment_id: Id = Field(description="The QBO payment whose version brought the balance to 0")
    qbo_version: Id = Field(description="That payment's SyncToken")
    qbo_payment_ids: list[Id] = Field(
        default_factory=list, max_length=500, description="QBO payments that paid it"
    )


RunStatus = Literal[
    "waiting_for_snapshot",
    "planning",
    "awaiting_approval",
    "running",
    "completed",
    "failed",
    "cancelled",
    "superseded",
]


class PhaseProgress(EventModel):
    """One phase of an initial sync: what its plan holds and what happened so far."""

    phase: InitialSyncPhase
    status: Literal["pending", "running", "completed"]
    planned: int = Field(0, ge=0, description="records of the plan in this phase (every action)")
    done: int = Field(0, ge=0, description="synced (written now, linked, or already in QuickBooks)")
    failed: int = Field(0, ge=0, description="failed with an error in the error center")
    skipped: int = Field(
        0, ge=0, description="skipped with a reason (settings, drafts, before the start date)"
    )
    blocked: int = Field(0, ge=0, description="waiting on a prerequisite that has not synced")
    changed: int = Field(
        0, ge=0, description="changed on the platform after the plan: synced by its own event"
    )
    remaining: int = Field(0, ge=0)
    rate_per_minute: float | None = Field(None, ge=0, description="records finished per minute in this phase")
    eta_seconds: int | None = Field(None, ge=0, description="at that rate, until the phase is done")


class InitialSyncProgress(QbsyncEvent):
    """Progress of an initial sync: when a phase starts, after each chunk, when a phase ends, and at each
    change of the run's status. ``phase_status`` says which of the phase's moments the event announces."""

    DETAIL_TYPE: ClassVar[str] = "Initial Sync Progress"
    realm_id: Id
    run_id: Id
    status: RunStatus
    current_phase: InitialSyncPhase | None = None
    phase_status: Literal["started", "running", "completed"] | None = Field(
        None,
        description="what this event announces about current_phase: started (the phase began, sent once "
        "before its first chunk runs: done 0, remaining = planned), running (a chunk of it finished), "
        "completed (the phase ended); absent for a change of the run's status",
    )
    phases: list[PhaseProgress] = Field(min_length=1, max_length=len(INITIAL_SYNC_PHASES))
    error: str | None = Field(None, max_length=1000, description="why a failed run stopped (plain language)")


class PlanFinding(EventModel):
    """A pre-flight finding about the QuickBooks company, or a blocking finding of the plan."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    severity: Literal["warning", "blocking"]
    message: str = Field(min_length=1, max_length=1000)
    fix: str | None = Field(None, max_length=1000)
    record_types: list[str] = Field(default_factory=list, max_length=8)
    count: int | None = Field(None, ge=0, description="records it affects, when the plan counted them")


class PlanTotals(EventModel):
    """What the plan will do with one record type: records and money per action."""

    record_type: str = Field(min_length=1, max_length=32)
    create: int = Field(0, ge=0)
    link: int = Field(0, ge=0)
    skip: int = Field(0, ge=0)
    block: int = Field(0, ge=0)
    create_amount: NonNegativeMoney | None = None
    link_amount: NonNegativeMoney | None = None
    skip_amount: NonNegativeMoney | None = None
    block_amount: NonNegativeMoney | None = None


class InitialSyncPlanned(QbsyncEvent):
    """The dry-run plan of an initial sync (PRODUCT.md J.1): per record type what will be created, linked to
    an object already in QuickBooks, skipped or blocked, with money totals, the pre-flight findings and the
    plan's blocking findings. ``needs_approval``: the run waits for the owner's approval
    (``POST /initial-sync/approve``); false when the firm's settings approve automatically."""

    DETAIL_TYPE: ClassVar[str] = "Initial Sync Planned"
    realm_id: Id
    run_id: Id
    needs_approval: bool
    totals: list[PlanTotals] = Field(max_length=len(INITIAL_SYNC_PHASES))
    findings: list[PlanFinding] = Field(default_factory=list, max_length=100)


class ServiceDeleteRequested(QbsyncEvent):
    """A firm admin chose "Delete" on a Services error (PRODUCT.md E.3): the platform removes the service.

    qbsync never deletes QBO items (QBO cannot); the failing service is removed on the platform side and
    the error is resolved. The platform's own "Service Deleted" event follows as usual.
    """

    DETAIL_TYPE: ClassVar[str] = "Service Delete Requested"
    realm_id: Id | None = None
    service_id: Id = Field(description="Platform service id")
    error_id: Id = Field(description="The Services error the admin acted on")
    requested_by: Id = Field(description="Admin user id")


class ServiceImported(QbsyncEvent):
    """A QBO service item was copied from QuickBooks on request (PRODUCT.md C.2): the platform creates it.

    Idempotency: ``qbo_item_id`` is the platform's dedupe key (one platform service per QBO item). The
    platform then sends "Service Created" with the same name, and qbsync links that service to this item by
    its exact name instead of creating a second item.
    """

    DETAIL_TYPE: ClassVar[str] = "Service Imported"
    realm_id: Id
    qbo_item_id: Id
    name: str = Field(min_length=1, max_length=100, description="QBO Item Name")
    rate: NonNegativeMoney = Field(description="QBO UnitPrice")
    rate_type: Literal["hour", "item"] = Field(description="From the QBO Sku")
    description: str | None = Field(None, max_length=4000)
    requested_by: Id | None = Field(None, description="Admin user id")


DriftKind = Literal[
    "missing_in_quickbooks",
    "deleted_in_quickbooks",
    "amount_mismatch",
    "edited_in_quickbooks",
    "paid_status_mismatch",
    "balance_mismatch",
]


class DriftDifference(EventModel):
    """One field that differs: the platform's value (``was``: what qbsync wrote) and QuickBooks' (``now``),
    money to the cent with its currency (``605.00 USD``); both null for client data (named, never shown)."""

    field: str = Field(min_length=1, max_length=100)
    was: str | None = Field(None, max_length=200)
    now: str | None = Field(None, max_length=200)


class DriftFinding(EventModel):
    """A record whose two sides disagree (the drift report's finding, docs/admin-api.md "Drift report")."""

    kind: DriftKind
    entity_type: EntityType
    platform_id: Id
    qbo_id: Id | None = None
    differences: list[DriftDifference] = Field(default_factory=list, max_length=50)
    error_id: Id | None = Field(None, description="its error-center entry (record kinds; null for derived)")
    actions: list[Literal["resync", "relink", "accept", "unlink"]] = Field(default_factory=list)


class DriftDetected(QbsyncEvent):
    """The drift report (PRODUCT.md J.3) found differences between the platform and QuickBooks that were not
    known before: published once per report that has any, never again for the same difference (a record
    already carrying its drift error, or a derived finding already in the last report, is not new).
    ``new_findings`` lists at most 50 of them; ``new_count`` counts all; ``open_count`` is every finding of
    the report. The report itself: ``GET /drift``."""

    DETAIL_TYPE: ClassVar[str] = "Drift Detected"
    realm_id: Id
    report_id: Id
    new_count: int = Field(ge=1)
    open_count: int = Field(ge=1)
    new_findings: list[DriftFinding] = Field(min_length=1, max_length=50)


#: Every qbsync event class by its EventBridge DetailType.
QBSYNC_EVENT_TYPES: dict[str, type[QbsyncEvent]] = {
    cls.DETAIL_TYPE: cls
    for cls in (
        ConnectionChanged,
        SyncStatusChanged,
        SyncErrorRaised,
        SyncErrorResolved,
        ContactImported,
        ContactUpdated,
        PaymentReceivedInQbo,
        InvoicePaid,
        InitialSyncProgress,
        ServiceDeleteRequested,
        ServiceImported,
        PaymentWithdrawnInQbo,
        InitialSyncPlanned,
        DriftDetected,
        FirmHealthChanged,
    )
}
