"""A firm's sync settings (PRODUCT.md B), as the outbound mapping reads them.

The settings hold QBO ids chosen by the firm. Whether those ids still exist in the company, and have
the right type, is checked against :class:`qbsync.qbo.reference.QboReference` when a payload is built
(:mod:`qbsync.outbound.mapping` raises :class:`~qbsync.outbound.mapping.MappingError` with the fix).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FirmSyncSettings", "TaxMapping"]

QboId = str


class TaxMapping(BaseModel):
    """Where one platform tax rate goes in QBO.

    ``tax_code_id`` is the QBO TaxCode (a single rate or a combined group). For a combined rate the
    firm names the primary and the secondary QBO TaxRate it is made of; they must belong to the code.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sync_accounts: Literal["with_activity", "all"] = "with_activity"
    sync_start_date: date | None = None
    sync_offline_payments: bool = False
    deposit_account_id: QboId | None = Field(None, min_length=1, max_length=64)
    service_income_account_id: QboId | None = Field(None, min_length=1, max_length=64)
    fee_expense_account_id: QboId | None = Field(None, min_length=1, max_length=64)
    customer_type_id: QboId | None = Field(None, min_length=1, max_length=64)
    tax_map: dict[str, TaxMapping] = Field(default_factory=dict)
    work_type_map: dict[str, QboId] = Field(default_factory=dict)
    default_service_id: QboId | None = Field(None, min_length=1, max_length=64)
