"""Admin API: actions on records and errors, and copying services from QuickBooks (PRODUCT.md C, E.3).

* ``POST /sync/records/{entity_type}/{platform_id}/sync`` - manual sync (C.6) → 202.
* ``POST /sync/records/payment/{platform_id}/unsync`` - delete the payment and its refunds in QBO (C.4).
* ``GET /qbo/customers?search=`` - QBO customers to map an account to (C.1).
* ``POST /errors/{error_id}/map-customer`` ``{"qbo_customer_id"}``,
  ``POST /errors/{error_id}/create-customer`` ``{"display_name"?}``, ``POST /errors/{error_id}/dont-sync``
  - account error actions (E.3).
* ``POST /errors/{error_id}/delete-service`` - service error action (E.3).
* ``POST /errors/{error_id}/let-quickbooks-number`` - invoice number too long: sync it without the number
  (issue 11) → 202.
* ``GET /services/qbo-candidates``, ``POST /services/copy`` ``{"qbo_item_ids": [...]}`` - copy services (C.2).

Every action is owner/admin; ``GET /services/qbo-candidates`` is a read (any role). Thin: each route reads the
caller, calls one method of :class:`qbsync.errorcenter.actions.RecordActions` or
:class:`qbsync.inbound.services_import.ServicesImport`, and returns its view. The firm is always the caller's:
another firm's record or error answers 404.
"""

# No `from __future__ import annotations`: Powertools/pydantic read the route annotations at import.

from decimal import Decimal
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from qbsync import wiring
from qbsync.api.common import ErrorIdPath, PlatformIdPath, caller_of, error_responses
from qbsync.errorcenter.actions import AccountActionResult, valid_display_name
from qbsync.errors import BadRequest
from qbsync.observability import metrics
from qbsync.vocab import SyncableType

__all__ = [
    "AccountActionView",
    "CandidateList",
    "CandidateView",
    "CopyResultView",
    "CopyServicesBody",
    "CopyServicesView",
    "CreateCustomerBody",
    "CustomerList",
    "CustomerView",
    "ManualSyncView",
    "MapCustomerBody",
    "NumberingView",
    "ServiceActionView",
    "UnsyncView",
    "router",
]

router = Router()

SyncEntityType = SyncableType
QBO_ID_PATTERN = r"^[0-9]{1,20}$"
PlatformId = PlatformIdPath
ErrorId = ErrorIdPath
_RECORD_TAGS = ["records"]
_ERROR_TAGS = ["errors"]
_SERVICE_TAGS = ["services"]


# --- request bodies ----------------------------------------------------------------------------------


class MapCustomerBody(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    qbo_customer_id: str = Field(pattern=QBO_ID_PATTERN, description="the QuickBooks customer's Id")


class CreateCustomerBody(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    display_name: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="a new DisplayName (no colon, tab or line break; unique across customers, vendors and "
        "employees); default: the client account's name",
    )

    @field_validator("display_name")
    @classmethod
    def _rules(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return valid_display_name(value)
        except BadRequest as err:
            raise ValueError(err.message) from None


class CopyServicesBody(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    qbo_item_ids: list[Annotated[str, Field(pattern=QBO_ID_PATTERN)]] = Field(
        min_length=1, max_length=100, description="QuickBooks Item ids (from GET /services/qbo-candidates)"
    )


# --- views -------------------------------------------------------------------------------------------


class ManualSyncView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    request_id: str = Field(description="ties the queued sync to this request (logs)")
    status: Literal["queued"]
    entity_type: SyncEntityType
    platform_id: str
    force: bool = Field(description="true for a skipped record: the settings that skipped it do not apply")


class UnsyncedObjectView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    entity_type: str
    platform_id: str
    qbo_entity: str
    qbo_id: str
    outcome: Literal["deleted", "already_deleted"]


class UnsyncView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    payment_id: str
    status: Literal["unsynced", "already_unsynced"]
    deleted: list[UnsyncedObjectView] = Field(description="refunds first, then the payment")


class CustomerView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    id: str
    display_name: str
    company_name: str | None
    balance: str = Field(description="open balance in QuickBooks, two decimals")


class CustomerList(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    customers: list[CustomerView] = Field(description="active customers by name, at most 50")


class AccountActionView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    error_id: str
    account_id: str
    outcome: Literal["mapped", "created", "excluded", "already_done"]
    record_status: str
    qbo_customer_id: str | None = None
    deep_link: str | None = None
    released: int = Field(0, description="records that waited on the account and were queued again")


class ServiceActionView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    error_id: str
    service_id: str
    outcome: Literal["delete_requested"]


class CandidateView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    qbo_item_id: str
    name: str
    type: Literal["Service", "NonInventory", "Category"]
    rate: Decimal | None = Field(description="QBO UnitPrice")
    rate_type: Literal["hour", "item"] | None = Field(description="from the QBO Sku")
    description: str | None
    copyable: bool
    skip_reason: Literal["name_exists", "negative_rate", "unsupported_rate_type", "category"] | None


class CandidateList(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    items: list[CandidateView]


class CopyResultView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    qbo_item_id: str
    outcome: Literal["copied", "skipped", "not_found"]
    skip_reason: str | None = None
    name: str | None = None


class CopyServicesView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    results: list[CopyResultView]


def _account_view(result: AccountActionResult) -> AccountActionView:
    return AccountActionView(
        error_id=result.error_id,
        account_id=result.account_id,
        outcome=result.outcome,  # type: ignore[arg-type]
        record_status=result.record_status,
        qbo_customer_id=result.qbo_customer_id,
        deep_link=result.deep_link,
        released=result.released,
    )


def _accepted() -> dict[int, OpenAPIResponse]:
    return {
        202: {
            "description": "Queued: the sync runs in the background",
            "content": {"application/json": {"model": ManualSyncView}},
        }
    }


# --- records -----------------------------------------------------------------------------------------


@router.post(
    "/sync/records/<entity_type>/<platform_id>/sync",
    summary="Sync one record now",
    description="Queues a sync of a Not synced, Failed, Skipped or Blocked record from the last platform "
    "event qbsync received for it (a Skipped one ignores the settings that skipped it). 409 when it is "
    'already synced or syncing, when qbsync holds no event for it ("qbsync has not received this record '
    'from the platform yet"), and for an invoice, payment or refund whose client account is not in '
    'QuickBooks: the message starts with "sync the client account first" and names the account. '
    "Owner or admin.",
    tags=_RECORD_TAGS,
    responses={**_accepted(), **error_responses(409, 503, ok=None)},
)
def sync_record(
    entity_type: Annotated[SyncEntityType, Path(description="the record's type")],
    platform_id: PlatformId,
) -> Response[ManualSyncView]:
    caller = caller_of(router)
    result = wiring.record_actions().manual_sync(caller, entity_type, platform_id)
    metrics.add_metric(name="ManualSyncQueued", unit="Count", value=1)
    view = ManualSyncView(
        request_id=result.request_id,
        status="queued",
        entity_type=entity_type,
        platform_id=platform_id,
        force=result.force,
    )
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=view)


@router.post(
    "/sync/records/payment/<platform_id>/unsync",
    summary="Unsync a payment",
    description="Deletes the payment in QuickBooks together with its refunds (refund receipts first; for a "
    "credit-balance payment its credit application, then the credit memo), each exactly once, and marks "
    "them Not synced. Repeating it is safe: nothing is deleted twice (`already_unsynced`). 409 when the "
    "payment was never synced or QuickBooks refuses a delete (e.g. closed books). Owner or admin.",
    tags=_RECORD_TAGS,
    responses=error_responses(409, 429, 503),
)
def unsync_payment(platform_id: PlatformId) -> UnsyncView:
    caller = caller_of(router)
    result = wiring.record_actions().unsync_payment(caller, platform_id)
    metrics.add_metric(name="PaymentUnsynced", unit="Count", value=1)
    return UnsyncView(
        payment_id=result.payment_id,
        status=result.status,  # type: ignore[arg-type]
        deleted=[
            UnsyncedObjectView(
                entity_type=d.entity_type,
                platform_id=d.platform_id,
                qbo_entity=d.qbo_entity,
                qbo_id=d.qbo_id,
                outcome=d.outcome,  # type: ignore[arg-type]
            )
            for d in result.deleted
        ],
    )


# --- account errors ----------------------------------------------------------------------------------


@router.get(
    "/qbo/customers",
    summary="Search QuickBooks customers",
    description="Active QuickBooks customers whose display name contains `search` (all when empty), by name, "
    "at most 50: the choices to map a client account to. Owner or admin (it queries QuickBooks).",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 429, 503),
)
def search_qbo_customers(
    search: Annotated[
        str | None,
        Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$", description="part of the display name"),
    ] = None,
) -> CustomerList:
    caller = caller_of(router)
    found = wiring.record_actions().search_customers(caller, search)
    return CustomerList(
        customers=[
            CustomerView(id=c.id, display_name=c.display_name, company_name=c.company_name, balance=c.balance)
            for c in found
        ]
    )


@router.post(
    "/errors/<error_id>/map-customer",
    summary="Map an account to a QuickBooks customer",
    description="Links the client account of an open Accounts error to an existing, active QuickBooks "
    "customer that no other account of the firm uses; the error is resolved and the records that waited "
    "on the account are queued again. 400 when QuickBooks has no such active customer; 409 when it is "
    "linked to another account or the error is not an open account error. Owner or admin.",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 429, 503),
)
def map_customer(error_id: ErrorId, body: Annotated[MapCustomerBody, Body()]) -> AccountActionView:
    caller = caller_of(router)
    result = wiring.record_actions().map_customer(caller, error_id, body.qbo_customer_id)
    metrics.add_metric(name="AccountMapped", unit="Count", value=1)
    return _account_view(result)


@router.post(
    "/errors/<error_id>/create-customer",
    summary="Create a QuickBooks customer for an account",
    description="Creates a new QuickBooks customer from the client account of an open Accounts error "
    "(optionally under a new display name; the body may be omitted), exactly once, and links it; the "
    "error is resolved and the records that waited on the account are queued again. A repeat answers "
    "`already_done`. 409 when the name is taken in QuickBooks. Owner or admin.",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 429, 503),
)
def create_customer(
    error_id: ErrorId, body: Annotated[CreateCustomerBody | None, Body()] = None
) -> AccountActionView:
    caller = caller_of(router)
    display_name = body.display_name if body is not None else None
    result = wiring.record_actions().create_customer(caller, error_id, display_name)
    metrics.add_metric(name="AccountCustomerCreated", unit="Count", value=1)
    return _account_view(result)


@router.post(
    "/errors/<error_id>/dont-sync",
    summary="Don't sync an account",
    description="Marks the client account of an open Accounts error Skipped (excluded by the firm) and "
    "resolves the error; later changes of the account stay skipped until a manual sync. Owner or admin.",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 503),
)
def dont_sync_account(error_id: ErrorId) -> AccountActionView:
    caller = caller_of(router)
    result = wiring.record_actions().dont_sync(caller, error_id)
    metrics.add_metric(name="AccountExcluded", unit="Count", value=1)
    return _account_view(result)


@router.post(
    "/errors/<error_id>/delete-service",
    summary="Delete the service of an error",
    description='Publishes "Service Delete Requested" so the platform removes the failing service, and '
    "resolves the error. Only for open Services errors (409 otherwise). Owner or admin.",
    tags=_ERROR_TAGS,
    responses=error_responses(409, 503),
)
def delete_service(error_id: ErrorId) -> ServiceActionView:
    caller = caller_of(router)
    result = wiring.record_actions().delete_service(caller, error_id)
    metrics.add_metric(name="ServiceDeleteRequested", unit="Count", value=1)
    return ServiceActionView(
        error_id=result.error_id, service_id=result.service_id, outcome="delete_requested"
    )


class NumberingView(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    error_id: str
    invoice_id: str
    request_id: str = Field(description="the resync's request id (in the error's history and the logs)")
    status: Literal["queued"]


@router.post(
    "/errors/<error_id>/let-quickbooks-number",
    summary="Let QuickBooks number an invoice",
    description="For an open Invoices error `doc_number_too_long` (the platform's invoice number is longer "
    "than QuickBooks' 21 characters): the invoice - and its later versions - is synced without the "
    "platform's number (QuickBooks numbers it, or leaves the number blank in a company with custom "
    "transaction numbers). Queues the resync (202); the error resolves when the invoice syncs. The other "
    "fix is to correct the number on the platform. No request body. 409 for any other error or when the "
    "invoice is being synced. Owner or admin.",
    tags=_ERROR_TAGS,
    responses={
        202: {
            "description": "Queued: the invoice syncs in the background without its platform number",
            "content": {"application/json": {"model": NumberingView}},
        },
        **error_responses(409, 503, ok=None),
    },
)
def let_quickbooks_number(error_id: ErrorId) -> Response[NumberingView]:
    caller = caller_of(router)
    result = wiring.record_actions().let_qbo_number(caller, error_id)
    metrics.add_metric(name="InvoiceNumberingLeftToQbo", unit="Count", value=1)
    view = NumberingView(
        error_id=result.error_id, invoice_id=result.invoice_id, request_id=result.request_id, status="queued"
    )
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=view)


# --- services from QuickBooks ------------------------------------------------------------------------


@router.get(
    "/services/qbo-candidates",
    summary="QuickBooks services that can be copied",
    description="Active QuickBooks items of type Service, NonInventory and Category, each with `copyable` "
    "and the reason when it is not: `name_exists` (the platform has that name), `negative_rate`, "
    "`unsupported_rate_type` (the Sku does not say hour or item), `category`. Any role.",
    tags=_SERVICE_TAGS,
    responses=error_responses(409, 429, 503),
)
def list_service_candidates() -> CandidateList:
    caller = caller_of(router)
    found = wiring.services_import().candidates(caller)
    return CandidateList(
        items=[
            CandidateView(
                qbo_item_id=c.qbo_item_id,
                name=c.name,
                type=c.type,  # type: ignore[arg-type]
                rate=c.rate,
                rate_type=c.rate_type,  # type: ignore[arg-type]
                description=c.description,
                copyable=c.copyable,
                skip_reason=c.skip_reason,  # type: ignore[arg-type]
            )
            for c in found
        ]
    )


@router.post(
    "/services/copy",
    summary="Copy services from QuickBooks",
    description='Publishes "Service Imported" for each copyable item so the platform creates the service; '
    "one result per id: `copied`, `skipped` (with the reason) or `not_found`. Copying the same item again "
    "is harmless: the platform dedupes on `qbo_item_id`, and the service it creates is linked to the item "
    "by its exact name. Owner or admin.",
    tags=_SERVICE_TAGS,
    responses=error_responses(409, 429, 503),
)
def copy_services(body: Annotated[CopyServicesBody, Body()]) -> CopyServicesView:
    caller = caller_of(router)
    results = wiring.services_import().copy(caller, body.qbo_item_ids)
    metrics.add_metric(name="ServicesCopied", unit="Count", value=sum(r.outcome == "copied" for r in results))
    return CopyServicesView(
        results=[
            CopyResultView(
                qbo_item_id=r.qbo_item_id,
                outcome=r.outcome,  # type: ignore[arg-type]
                skip_reason=r.skip_reason,
                name=r.name,
            )
            for r in results
        ]
    )
