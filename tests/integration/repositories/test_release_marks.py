"""RecordsRepository's release marks on moto: ``requeued_by`` (one sender per stored event and claim) and
``released_version`` (a synced version's dependents were all released)."""

from __future__ import annotations

from qbsync.models.record_key import RecordKey

from tests.integration.repositories.conftest import T0, new_id
from tests.integration.repositories.test_records_repository import REALM, claim, synced


def _blocked(records, firm, pid):
    assert claim(records, firm, "invoice", pid).claimed
    records.mark_blocked(
        RecordKey(firm, REALM, "invoice", pid), owner="w1", waiting_on=[("client_account", "c1")], now=T0
    )


def test_one_sender_per_claim_and_the_same_sender_may_send_again(records):
    firm = new_id("f")
    _blocked(records, firm, "inv_1")
    mark = records.mark_requeued
    assert mark(RecordKey(firm, REALM, "invoice", "inv_1"), by="client_account#c1", statuses=("blocked",))
    # another releaser (a second prerequisite, the record's own re-check) does not send it again
    assert not mark(RecordKey(firm, REALM, "invoice", "inv_1"), by="service#s1", statuses=("blocked",))
    # the same releaser's redelivery (it may have crashed before its send) sends again
    assert mark(RecordKey(firm, REALM, "invoice", "inv_1"), by="client_account#c1", statuses=("blocked",))
    record = records.get(RecordKey(firm, REALM, "invoice", "inv_1"))
    assert record.requeued_by == "client_account#c1" and record.status == "blocked"
    revision = record.revision
    # the sent event is claimed: the mark goes, and the claim was not disturbed by it (same revision)
    assert revision == 2
    again = claim(records, firm, "invoice", "inv_1", now=T0 + 1)
    assert again.claimed and again.record.requeued_by is None
    # only in the given statuses: a record being synced is not sent
    assert not mark(
        RecordKey(firm, REALM, "invoice", "inv_1"), by="service#s1", statuses=("blocked", "skipped")
    )
    assert not mark(RecordKey(firm, REALM, "invoice", "missing"), by="service#s1", statuses=("blocked",))


def test_released_version_is_kept_for_that_version_only(records):
    firm = new_id("f")
    synced(records, firm, "client_account", "c1", "58", version=1)
    records.mark_released(RecordKey(firm, REALM, "client_account", "c1"), version=1)
    assert records.get(RecordKey(firm, REALM, "client_account", "c1")).released_version == 1
    # an older version's late note does not count for the newer sync
    synced(records, firm, "client_account", "c1", "58", version=2, now=T0 + 5)
    assert (
        records.get(RecordKey(firm, REALM, "client_account", "c1")).released_version is None
    )  # every sync clears it
    records.mark_released(RecordKey(firm, REALM, "client_account", "c1"), version=1)
    assert records.get(RecordKey(firm, REALM, "client_account", "c1")).released_version is None
    records.mark_released(RecordKey(firm, REALM, "client_account", "c1"), version=2)
    assert records.get(RecordKey(firm, REALM, "client_account", "c1")).released_version == 2
