"""A firm's sync settings (PRODUCT.md B), as the outbound mapping reads them.

The settings hold QBO ids chosen by the firm. Whether those ids still exist in the company, and have
the right type, is checked against :class:`qbsync.qbo.reference.QboReference` when a payload is built
(:mod:`qbsync.outbound.mapping` raises :class:`~qbsync.outbound.mapping.MappingError` with the fix).

The models are strict (they are the body of ``PUT /settings``): a boolean is ``true``/``false`` (not
``"yes"``, not ``1``), an id is a string (not a number), a date is ``YYYY-MM-DD`` (not a date-time), and
every map has a maximum (:data:`MAX_TAX_MAP`, :data:`MAX_WORK_TYPE_MAP`) whose keys are platform ids.
A document at every maximum still fits a request body and a DynamoDB item (tests/unit/models).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, WithJsonSchema, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from qbsync.vocab import RECORD_ID_PATTERN

__all__ = ["MAX_TAX_MAP", "MAX_WORK_TYPE_MAP", "FirmSyncSettings", "IsoDate", "TaxMapping"]

#: at most this many platform tax rates mapped (``tax_map``)
MAX_TAX_MAP = 200
#: at most this many platform work types mapped (``work_type_map``)
MAX_WORK_TYPE_MAP = 500

QboId = StrictStr
#: a platform id as a map key (tax rate, work type): the one id vocabulary of qbsync
PlatformKey = Annotated[StrictStr, Field(pattern=RECORD_ID_PATTERN)]
#: a map keyed by platform ids: keys that are not one are refused (JSON Schema: patternProperties alone
#: would let any other key through)
_ONLY_ID_KEYS: JsonDict = {"additionalProperties": False}

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> date:
    # pydantic turns "2026-01-05T00:00:00" (and 1767571200) into a date; a date-time is not a date here
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date_value", "expected a date YYYY-MM-DD that exists") from None
    raise PydanticCustomError("date_type", "expected a date YYYY-MM-DD (not a date-time, not a number)")


#: a calendar date, written ``YYYY-MM-DD``, nothing else
IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}),
]


class TaxMapping(BaseModel):
    """Where one platform tax rate goes in QBO.

    ``tax_code_id`` is the QBO TaxCode (a single rate or a combined group). For a combined rate the
    firm names the primary and the secondary QBO TaxRate it is made of; they must belong to the code.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)

    tax_code_id: QboId = Field(min_length=1, max_length=64)
    primary_rate_id: QboId | None = Field(None, min_length=1, max_length=64)
    secondary_rate_id: QboId | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _secondary_needs_primary(self) -> TaxMapping:
        if self.secondary_rate_id is not None and self.primary_rate_id is None:
            raise ValueError("secondary_rate_id needs a primary_rate_id")
        if self.secondary_rate_id is not None and self.secondary_rate_id == self.primary_rate_id:
            raise ValueError("secondary_rate_id must differ from primary_rate_id")
        return self

    @property
    def rate_ids(self) -> tuple[str, ...]:
        """The QBO TaxRate ids named by this mapping (primary first)."""
        return tuple(r for r in (self.primary_rate_id, self.secondary_rate_id) if r is not None)


class FirmSyncSettings(BaseModel):
    """Per-firm settings of PRODUCT.md B (defaults are the product defaults).

    * ``sync_accounts`` - "with_activity": only client accounts that have invoices or payments; "all".
    * ``sync_start_date`` - invoices, payments, credits, fees and refunds dated before it never sync.
    * ``sync_offline_payments`` - default for payments recorded by hand; each payment may override it.
    * ``deposit_account_id`` - QBO Account (Bank or Other Current Asset); None = Undeposited Funds.
    * ``service_income_account_id`` - QBO Income account of synced services; None = "Uncategorized
      Income" when the company has it, otherwise services are not created and lines use the "Sales" item.
    * ``fee_expense_account_id`` - QBO Expense account of processing fees; None = the company's first
      active Expense account of sub-type BankCharges.
    * ``customer_type_id`` - QBO CustomerType of new customers; None = "Individual" when it exists.
    * ``tax_map`` - platform tax rate id -> :class:`TaxMapping`.
    * ``work_type_map`` - platform work type id -> QBO Item id; ``default_service_id`` - the QBO Item id
      of lines whose work type is not mapped (None = the "Sales" item).
    * ``initial_sync_auto_approve`` - the initial sync's plan runs without waiting for the owner's approval
      (J.1); off by default: the owner reads the plan first.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)

    sync_accounts: Literal["with_activity", "all"] = "with_activity"
    sync_start_date: IsoDate | None = None
    sync_offline_payments: bool = False
    deposit_account_id: QboId | None = Field(None, min_length=1, max_length=64)
    service_income_account_id: QboId | None = Field(None, min_length=1, max_length=64)
    fee_expense_account_id: QboId | None = Field(None, min_length=1, max_length=64)
    customer_type_id: QboId | None = Field(None, min_length=1, max_length=64)
    tax_map: dict[PlatformKey, TaxMapping] = Field(
        default_factory=dict,
        max_length=MAX_TAX_MAP,
        description=f"at most {MAX_TAX_MAP} entries",
        json_schema_extra=_ONLY_ID_KEYS,
    )
    work_type_map: dict[PlatformKey, Annotated[QboId, Field(min_length=1, max_length=64)]] = Field(
        default_factory=dict,
        max_length=MAX_WORK_TYPE_MAP,
        description=f"at most {MAX_WORK_TYPE_MAP} entries",
        json_schema_extra=_ONLY_ID_KEYS,
    )
    default_service_id: QboId | None = Field(None, min_length=1, max_length=64)
    initial_sync_auto_approve: bool = False
