"""The skip reason of an account without activity says what it has instead (issue 11 item 4)."""

from __future__ import annotations

from datetime import date

from qbsync.outbound.gate import no_activity_reason, will_not_sync
from qbsync.repositories.records import ACTIVITY_CAP, SKIPPED, SyncRecord, UnsyncedActivity

START = date(2026, 3, 5)
TAIL = ". The client account syncs by itself once one of its invoices or payments does"


def test_nothing_yet() -> None:
    assert no_activity_reason(UnsyncedActivity(), START) == (
        "no_activity: the client account has no invoices or payments yet"
    )


def test_drafts_and_invoices_before_the_start_are_counted() -> None:
    assert no_activity_reason(UnsyncedActivity(drafts=2, before_start=1), START) == (
        "no_activity: no invoices or payments that sync: 2 draft invoices and 1 dated before the sync start "
        "date 2026-03-05" + TAIL
    )
    assert no_activity_reason(UnsyncedActivity(drafts=1), START) == (
        "no_activity: no invoices or payments that sync: 1 draft invoice" + TAIL
    )
    assert no_activity_reason(UnsyncedActivity(before_start=3), None) == (
        "no_activity: no invoices or payments that sync: 3 invoices dated before the sync start date" + TAIL
    )


def test_a_count_at_the_cap_is_at_least() -> None:
    reason = no_activity_reason(UnsyncedActivity(drafts=ACTIVITY_CAP), START)
    assert f"at least {ACTIVITY_CAP} draft invoices" in reason


def test_an_explained_no_activity_account_is_still_on_its_way_for_its_dependents() -> None:
    """The reason keeps its prefix: an invoice that later waits on the account blocks and wakes it."""
    account = SyncRecord(
        "f",
        "r",
        "client_account",
        "c1",
        status=SKIPPED,
        skip_reason=no_activity_reason(UnsyncedActivity(drafts=1), START),
    )
    assert will_not_sync(account) is None
