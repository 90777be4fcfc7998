"""The firm's sync settings (qbsync.models.firm_settings): product defaults and validation."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError
from qbsync.api.common import MAX_BODY_BYTES
from qbsync.models.firm_settings import MAX_TAX_MAP, MAX_WORK_TYPE_MAP, FirmSyncSettings, TaxMapping


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


def _problems(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        FirmSyncSettings.model_validate(data)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


def test_settings_types_are_strict() -> None:
    """A boolean is true/false, an id a string, a date a date (issue 10 item 4: "yes" was stored as true)."""
    assert _problems({"sync_offline_payments": "yes"}) == [
        (("sync_offline_payments",), "Input should be a valid boolean")
    ]
    assert _problems({"sync_offline_payments": 1}) == [
        (("sync_offline_payments",), "Input should be a valid boolean")
    ]
    assert _problems({"deposit_account_id": 35}) == [
        (("deposit_account_id",), "Input should be a valid string")
    ]
    assert _problems({"tax_map": {"tr": {"tax_code_id": 3}}}) == [
        (("tax_map", "tr", "tax_code_id"), "Input should be a valid string")
    ]
    assert _problems({"work_type_map": {"wt": 2}}) == [
        (("work_type_map", "wt"), "Input should be a valid string")
    ]


def test_a_sync_start_date_is_a_date_never_a_date_time_cut_short() -> None:
    not_a_date = "expected a date YYYY-MM-DD (not a date-time, not a number)"
    for value in ("2026-01-05T00:00:00", "2026-01-05T10:30:00Z", "2026-01-05 00:00", 1767571200, "20260105"):
        assert _problems({"sync_start_date": value}) == [(("sync_start_date",), not_a_date)], value
    assert _problems({"sync_start_date": datetime(2026, 1, 5, tzinfo=UTC)}) == [
        (("sync_start_date",), not_a_date)
    ]
    assert _problems({"sync_start_date": "2026-02-30"}) == [
        (("sync_start_date",), "expected a date YYYY-MM-DD that exists")
    ]
    assert FirmSyncSettings.model_validate({"sync_start_date": "2026-01-05"}).sync_start_date == date(
        2026, 1, 5
    )
    assert FirmSyncSettings(sync_start_date=date(2026, 1, 5)).model_dump(mode="json")["sync_start_date"] == (
        "2026-01-05"
    )


def test_every_map_has_a_maximum_and_platform_id_keys() -> None:
    assert _problems({"work_type_map": {f"w{i}": "1" for i in range(MAX_WORK_TYPE_MAP + 1)}}) == [
        (("work_type_map",), "Dictionary should have at most 500 items after validation, not 501")
    ]
    assert _problems({"tax_map": {f"t{i}": {"tax_code_id": "3"} for i in range(MAX_TAX_MAP + 1)}}) == [
        (("tax_map",), "Dictionary should have at most 200 items after validation, not 201")
    ]
    ((where, _),) = _problems({"work_type_map": {"wt\n": "1"}})
    assert where == ("work_type_map", "wt\n", "[key]")
    schema = FirmSyncSettings.model_json_schema()["properties"]
    assert schema["work_type_map"]["maxProperties"] == MAX_WORK_TYPE_MAP
    assert schema["work_type_map"]["additionalProperties"] is False  # only keys of the id pattern
    assert schema["tax_map"]["maxProperties"] == MAX_TAX_MAP


def test_settings_at_every_maximum_fit_a_request_body_and_a_dynamodb_item() -> None:
    """The maxima are what a caller learns; DynamoDB's 400 KB item limit must never be how they learn it."""
    key = "k" * 120
    qbo = "9" * 64
    largest = FirmSyncSettings(
        **{f: qbo for f in ("deposit_account_id", "service_income_account_id", "fee_expense_account_id")},
        customer_type_id=qbo,
        default_service_id=qbo,
        sync_start_date=date(2026, 1, 1),
        tax_map={
            f"{key}{i:08d}": TaxMapping(tax_code_id=qbo, primary_rate_id=qbo, secondary_rate_id="8" * 64)
            for i in range(MAX_TAX_MAP)
        },
        work_type_map={f"{key}{i:08d}": qbo for i in range(MAX_WORK_TYPE_MAP)},
    )
    body = json.dumps(largest.model_dump(mode="json"), indent=2).encode()  # a generous client's formatting
    assert len(body) <= MAX_BODY_BYTES
    assert len(largest.model_dump_json().encode()) + 200 < 400_000  # the stored item, with its key attributes
