"""Drift reports on moto (SyncStateTable of template.yaml): a header and one item per finding, the newest
report read back whole, 90 days."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from qbsync.reconcile.report import report_id_of
from qbsync.repositories.drift_reports import DRIFT_TTL_SECONDS, DriftReportRepository

from tests.integration.repositories.conftest import T0, FakeClock, new_id

REALM = "9130351234567890"


def _header(firm: str, at: float, **more: Any) -> dict[str, Any]:
    return {"firm_id": firm, "realm_id": REALM, "report_id": report_id_of(at), "ran_at": at, **more}


def _finding(platform_id: str, kind: str = "amount_mismatch") -> dict[str, Any]:
    return {
        "kind": kind,
        "entity_type": "invoice",
        "platform_id": platform_id,
        "qbo_id": "145",
        "qbo_entity": "Invoice",
        "differences": [{"field": "total", "was": "605.00 USD", "now": "605.01 USD"}],
        "error_id": None,
        "explained_by": [],
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def repo(table, clock) -> DriftReportRepository:
    return DriftReportRepository(table, clock=clock)


def test_the_newest_report_comes_back_with_all_its_findings_and_only_its_own(repo, clock) -> None:
    firm = new_id("f")
    assert repo.latest(firm, REALM) is None
    repo.save(_header(firm, T0, counts={"amount_mismatch": 2}), [_finding("inv-1"), _finding("inv-2")])
    repo.save(_header(firm, T0 + 60, counts={}), [])  # later and clean
    repo.save(_header(new_id("f"), T0 + 120), [_finding("inv-9")])  # another firm

    header, findings = repo.latest(firm, REALM)  # type: ignore[misc]

    assert header["report_id"] == report_id_of(T0 + 60) and findings == []
    repo.save(_header(firm, T0 + 180, counts={"amount_mismatch": 1}), [_finding("inv-3")])
    header, findings = repo.latest(firm, REALM)  # type: ignore[misc]
    assert header["counts"] == {"amount_mismatch": Decimal(1)}
    assert [f["platform_id"] for f in findings] == ["inv-3"]
    assert findings[0]["differences"] == [{"field": "total", "was": "605.00 USD", "now": "605.01 USD"}]
    assert "error_id" not in findings[0]  # nulls are not stored


def test_a_report_past_its_90_days_is_not_returned(repo, clock) -> None:
    firm = new_id("f")
    repo.save(_header(firm, T0), [_finding("inv-1")])
    clock.advance(DRIFT_TTL_SECONDS + 1)
    assert repo.latest(firm, REALM) is None


def test_report_ids_sort_by_time() -> None:
    ids = [report_id_of(T0 + s) for s in (0, 0.5, 59, 3600, 86400 * 400)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
