"""Pre-flight results on moto (SyncStateTable of template.yaml): one item per check, newest first, 90 days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from qbsync.connection.preflight import Finding, PreflightResult, PreflightResultInvalid
from qbsync.repositories.preflight import PREFLIGHT_TTL_SECONDS, PreflightRepository
from qbsync.wiring import build_preflight_repository

from tests.integration.repositories.conftest import T0, FakeClock, new_id

REALM = "9130351234567890"
AT = datetime.fromtimestamp(T0, UTC)


def result(at: datetime = AT, *, realm: str = REALM, findings: tuple[Finding, ...] = ()) -> PreflightResult:
    return PreflightResult(
        realm_id=realm,
        checked_at=at,
        company_name="Smith & Co CPA",
        findings=findings,
        books_closed_on=date(2025, 12, 31),
        multicurrency=False,
        home_currency="USD",
    )


CARD = Finding(
    "payment_method_missing",
    "blocking",
    "QuickBooks has no active payment method named 'Credit Card', so card payments would be refused.",
    "Add it in QuickBooks.",
    ("payment",),
    {"payment_methods": "card", "qbo_names": "Credit Card"},
)
CLOSED = Finding(
    "books_closed",
    "warning",
    "Closed through 2025-12-31.",
    "Move it.",
    ("invoice", "fee"),
    {"books_closed_on": "2025-12-31"},
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def repo(table, clock) -> PreflightRepository:
    return PreflightRepository(table, clock=clock)


def test_the_wiring_builds_the_repository_on_the_table(table) -> None:
    firm = new_id("f")
    build_preflight_repository(table=table).save(firm, result())
    assert PreflightRepository(table, clock=lambda: T0).latest(firm, REALM) == result()


def test_a_saved_result_comes_back_whole_from_its_item(repo, table) -> None:
    firm = new_id("f")
    saved = result(findings=(CARD, CLOSED))

    repo.save(firm, saved)

    assert repo.latest(firm, REALM) == saved
    item = table.get({"pk": f"FIRM#{firm}#REALM#{REALM}", "sk": "PREFLIGHT#2026-11-23T16:05:00.000000Z"})
    assert item is not None
    assert item["ttl"] == int(T0) + PREFLIGHT_TTL_SECONDS
    assert item["codes"] == ["payment_method_missing", "books_closed"]
    assert item["blocking_codes"] == ["payment_method_missing"]
    assert (item["firm_id"], item["realm_id"], item["books_closed_on"]) == (firm, REALM, "2025-12-31")


def test_latest_is_the_newest_check_of_that_company(repo) -> None:
    firm = new_id("f")
    older, newer = result(AT - timedelta(days=1), findings=(CARD,)), result(AT, findings=(CLOSED,))
    repo.save(firm, newer)
    repo.save(firm, older)  # written last, checked earlier
    repo.save(firm, result(AT + timedelta(hours=1), realm="9130359999999999"))  # another company of the firm

    assert repo.latest(firm, REALM) == newer
    assert repo.latest(new_id("f"), REALM) is None  # another firm: never checked


def test_a_result_without_company_name_or_closing_date_round_trips(repo) -> None:
    firm = new_id("f")
    bare = PreflightResult(REALM, AT, None, (), None, True, None)

    repo.save(firm, bare)

    assert repo.latest(firm, REALM) == bare


def test_an_expired_result_is_not_returned(repo, clock) -> None:
    firm = new_id("f")
    repo.save(firm, result())

    clock.advance(PREFLIGHT_TTL_SECONDS - 1)
    assert repo.latest(firm, REALM) is not None
    clock.advance(1)
    assert repo.latest(firm, REALM) is None  # moto never deletes it; the reader checks


def test_a_damaged_item_is_refused_naming_the_field(repo, table) -> None:
    firm = new_id("f")
    repo.save(firm, result())
    key = {"pk": f"FIRM#{firm}#REALM#{REALM}", "sk": "PREFLIGHT#2026-11-23T16:05:00.000000Z"}
    table.update(key, update="SET multicurrency = :v", values={":v": "no"})

    with pytest.raises(PreflightResultInvalid, match=r"^multicurrency"):
        repo.latest(firm, REALM)


def test_ids_with_the_key_separator_are_refused(repo) -> None:
    with pytest.raises(ValueError):
        repo.save("f#1", result())
