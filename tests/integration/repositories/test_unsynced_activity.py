"""RecordsRepository on moto: an account's invoices that will not sync as the settings stand (the
``ACTIVITY#client_account#{id}`` item) and the re-explained skip reason of a no-activity account (issue 11
item 4)."""

from __future__ import annotations

from qbsync.models.record_key import RecordKey
from qbsync.repositories import records as records_module

from tests.integration.repositories.conftest import T0, new_id
from tests.integration.repositories.test_records_repository import REALM, claim


def _account(firm: str) -> RecordKey:
    return RecordKey(firm, REALM, "client_account", "c1")


def test_notes_are_idempotent_move_between_kinds_and_leave_the_record_alone(records):
    firm = new_id("f")
    account = _account(firm)
    assert not records.unsynced_activity(account).any

    first = records.note_unsynced_activity(account, "inv_1", "draft", now=T0)
    again = records.note_unsynced_activity(account, "inv_1", "draft", now=T0 + 1)
    assert (first.drafts, first.before_start) == (1, 0) and (again.drafts, again.before_start) == (1, 0)
    assert again.revision > first.revision

    moved = records.note_unsynced_activity(account, "inv_1", "before_start", now=T0 + 2)
    records.note_unsynced_activity(account, "inv_2", "draft", now=T0 + 3)
    assert (moved.drafts, moved.before_start) == (0, 1)
    assert records.unsynced_activity(account) == records_module.UnsyncedActivity(1, 1, 4)
    # no record item was made for the account (its record is created when its event is claimed)
    assert records.get(account) is None


def test_a_kind_stops_growing_at_the_cap(records, monkeypatch):
    monkeypatch.setattr(records_module, "ACTIVITY_CAP", 2)
    firm = new_id("f")
    account = _account(firm)
    for n in range(4):
        got = records.note_unsynced_activity(account, f"inv_{n}", "draft", now=T0 + n)
    assert got.drafts == 2
    assert records.note_unsynced_activity(account, "inv_0", "draft", now=T0 + 9).drafts == 2  # known: fine


def test_the_reason_is_replaced_only_on_a_no_activity_skip_and_only_by_a_newer_revision(records):
    firm = new_id("f")
    account = _account(firm)
    assert not records.set_skip_reason(account, "no_activity: x", prefix="no_activity", activity_revision=1)
    assert claim(records, firm, "client_account", "c1").claimed
    records.mark_skipped(account, owner="w1", reason="no_activity: nothing yet", now=T0)
    revision = records.get(account).revision

    assert records.set_skip_reason(account, "no_activity: 1 draft", prefix="no_activity", activity_revision=2)
    # an older activity revision, written late, does not replace a newer one
    assert not records.set_skip_reason(account, "no_activity: old", prefix="no_activity", activity_revision=1)
    got = records.get(account)
    assert got.skip_reason == "no_activity: 1 draft" and got.status == "skipped"
    assert got.revision == revision + 1  # a write the claim's compare-and-set sees

    # skipped for another reason (the firm's "don't sync"): left alone
    assert claim(records, firm, "client_account", "c1", now=T0 + 5).claimed
    records.mark_skipped(account, owner="w1", reason="excluded_by_firm", now=T0 + 5)
    assert not records.set_skip_reason(account, "no_activity: 2", prefix="no_activity", activity_revision=9)
    assert records.get(account).skip_reason == "excluded_by_firm"
