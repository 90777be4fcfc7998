"""The firm's sync settings (qbsync.models.firm_settings): product defaults and validation."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError
from qbsync.models.firm_settings import FirmSyncSettings, TaxMapping


def test_settings_defaults_are_the_product_defaults() -> None:
    s = FirmSyncSettings()
    assert s.sync_accounts == "with_activity"
    assert s.sync_start_date is None and s.sync_offline_payments is False
    assert s.deposit_account_id is None and s.service_income_account_id is None
    assert s.fee_expense_account_id is None and s.customer_type_id is None
    assert s.tax_map == {} and s.work_type_map == {} and s.default_service_id is None


def test_settings_validate() -> None:
    s = FirmSyncSettings.model_validate(
        {
            "sync_accounts": "all",
            "sync_start_date": "2026-01-01",
            "tax_map": {"tr_sf": {"tax_code_id": "3", "primary_rate_id": "1", "secondary_rate_id": "2"}},
            "work_type_map": {"wt_audit": "2"},
        }
    )
    assert s.sync_start_date == date(2026, 1, 1)
    assert s.tax_map["tr_sf"].rate_ids == ("1", "2")
    with pytest.raises(ValidationError):
        FirmSyncSettings.model_validate({"sync_accounts": "some"})
    with pytest.raises(ValidationError):
        FirmSyncSettings.model_validate({"deposit_acount_id": "35"})  # typo must not vanish
    with pytest.raises(ValidationError):
        TaxMapping(tax_code_id="3", secondary_rate_id="2")
    with pytest.raises(ValidationError):
        TaxMapping(tax_code_id="3", primary_rate_id="2", secondary_rate_id="2")
