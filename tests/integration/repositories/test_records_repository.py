"""RecordsRepository on moto: leases, transitions, indexes (gsi1 reverse lookup, gsi2 status, blocked_on)."""

from __future__ import annotations

import pytest
from qbsync.errors import Conflict, LeaseHeld
from qbsync.models.record_key import RecordKey
from qbsync.repositories.records import (
    BLOCKED,
    NOT_SYNCED,
    SKIPPED,
    SYNCED,
    SYNCING,
    ClaimOutcome,
    QboLink,
    RecordError,
)

from tests.integration.repositories.conftest import T0, new_id


@pytest.fixture
def firm() -> str:
    return new_id("f")


REALM = "9130351234567890"


def claim(records, firm, entity_type, pid, *, version=1, owner="w1", now=T0, lease=60):
    return records.claim(
        RecordKey(firm, REALM, entity_type, pid), version=version, owner=owner, lease_seconds=lease, now=now
    )


def synced(records, firm, entity_type, pid, qbo_id, *, version=1, owner="w1", now=T0):
    assert claim(records, firm, entity_type, pid, version=version, owner=owner, now=now).claimed
    return records.mark_synced(
        RecordKey(firm, REALM, entity_type, pid),
        owner=owner,
        version=version,
        link=QboLink(
            qbo_entity="Invoice" if entity_type == "invoice" else "Customer",
            qbo_id=qbo_id,
            sync_token="0",
            deep_link=None,
        ),
        now=now,
    )


def test_claim_creates_the_item_and_holds_a_lease(records, firm):
    result = claim(records, firm, "invoice", "inv_1", version=3)

    assert result.outcome is ClaimOutcome.CLAIMED
    rec = result.record
    assert (rec.status, rec.owner, rec.lease_until, rec.claimed_version) == (SYNCING, "w1", T0 + 60, 3)
    assert rec.prev_status == NOT_SYNCED and rec.attempts == 1
    with pytest.raises(LeaseHeld) as held:
        claim(records, firm, "invoice", "inv_1", version=3, owner="w2", now=T0 + 10)
    assert held.value.retry_after == 50
    # the same owner renews; after expiry another owner takes over
    assert claim(records, firm, "invoice", "inv_1", version=3, now=T0 + 20).record.lease_until == T0 + 80
    taken = claim(records, firm, "invoice", "inv_1", version=3, owner="w2", now=T0 + 80)
    assert taken.record.owner == "w2" and taken.record.attempts == 3


def test_lost_lease_cannot_record_an_outcome(records, firm):
    claim(records, firm, "invoice", "inv_2")
    claim(records, firm, "invoice", "inv_2", owner="w2", now=T0 + 61)
    with pytest.raises(Conflict):
        records.mark_synced(
            RecordKey(firm, REALM, "invoice", "inv_2"),
            owner="w1",
            version=1,
            link=QboLink(qbo_entity="Invoice", qbo_id="10", sync_token="0", deep_link=None),
            now=T0 + 62,
        )
    assert records.get(RecordKey(firm, REALM, "invoice", "inv_2")).owner == "w2"


def test_versions_stale_and_already_applied(records, firm):
    synced(records, firm, "invoice", "inv_3", "11", version=4)

    assert claim(records, firm, "invoice", "inv_3", version=3).outcome is ClaimOutcome.STALE
    assert claim(records, firm, "invoice", "inv_3", version=4).outcome is ClaimOutcome.ALREADY_APPLIED
    newer = claim(records, firm, "invoice", "inv_3", version=5)
    assert newer.claimed and newer.record.prev_status == SYNCED
    released = records.release(
        RecordKey(firm, REALM, "invoice", "inv_3"), owner="w1", status=SYNCED, now=T0 + 1
    )
    assert released.status == SYNCED and released.owner is None and released.platform_version == 4


def test_failed_skipped_and_status_pages(records, firm):
    for i in range(5):
        claim(records, firm, "payment", f"pay_{i}", now=T0 + i)
        records.mark_failed(
            RecordKey(firm, REALM, "payment", f"pay_{i}"),
            owner="w1",
            error=RecordError("qbo_validation", "payments", "bad", "6000"),
            now=T0 + i,
        )
    claim(records, firm, "invoice", "inv_s")
    skipped = records.mark_skipped(
        RecordKey(firm, REALM, "invoice", "inv_s"), owner="w1", reason="zero amount", now=T0
    )
    assert skipped.status == SKIPPED and skipped.skip_reason == "zero amount"

    first = records.list_by_status(firm, REALM, "failed", entity_type="payment", limit=2)
    second = records.list_by_status(
        firm, REALM, "failed", entity_type="payment", limit=2, start_key=first.next_key
    )
    third = records.list_by_status(
        firm, REALM, "failed", entity_type="payment", limit=2, start_key=second.next_key
    )
    ids = [r.platform_id for page in (first, second, third) for r in page.records]
    assert ids == ["pay_4", "pay_3", "pay_2", "pay_1", "pay_0"]  # newest first, all pages
    assert first.records[0].error == RecordError("qbo_validation", "payments", "bad", "6000")
    assert [r.platform_id for r in records.list_by_status(firm, REALM, SKIPPED).records] == ["inv_s"]
    assert records.list_by_status(firm, REALM, "failed", entity_type="invoice").records == []


def test_blocked_on_finds_the_records_waiting_on_a_prerequisite(records, firm):
    claim(records, firm, "invoice", "inv_a")
    records.mark_blocked(
        RecordKey(firm, REALM, "invoice", "inv_a"), owner="w1", waiting_on=[("client_account", "c1")], now=T0
    )
    claim(records, firm, "payment", "pay_a")
    records.mark_blocked(
        RecordKey(firm, REALM, "payment", "pay_a"),
        owner="w1",
        waiting_on=[("invoice", "inv_a"), ("client_account", "c1")],
        now=T0,
    )
    claim(records, firm, "invoice", "inv_b")
    records.mark_blocked(
        RecordKey(firm, REALM, "invoice", "inv_b"), owner="w1", waiting_on=[("client_account", "c2")], now=T0
    )

    on_c1 = {r.platform_id for r in records.blocked_on(RecordKey(firm, REALM, "client_account", "c1"))}
    assert on_c1 == {"inv_a", "pay_a"}
    assert {r.platform_id for r in records.blocked_on(RecordKey(firm, REALM, "invoice", "inv_a"))} == {
        "pay_a"
    }
    only_invoices = records.blocked_on(
        RecordKey(firm, REALM, "client_account", "c1"), dependent_type="invoice"
    )
    assert [r.platform_id for r in only_invoices] == ["inv_a"]
    assert list(records.blocked_on(RecordKey(firm, REALM, "client_account", "c9"))) == []
    pay = records.get(RecordKey(firm, REALM, "payment", "pay_a"))
    assert pay.status == BLOCKED
    assert pay.waiting_on == (("client_account", "c1"), ("invoice", "inv_a"))
    # released when it syncs: no longer blocked on anything
    claim(records, firm, "invoice", "inv_a", now=T0 + 5)
    records.mark_synced(
        RecordKey(firm, REALM, "invoice", "inv_a"),
        owner="w1",
        version=1,
        link=QboLink(qbo_entity="Invoice", qbo_id="77", sync_token="0", deep_link=None),
        now=T0 + 5,
    )
    assert {r.platform_id for r in records.blocked_on(RecordKey(firm, REALM, "client_account", "c1"))} == {
        "pay_a"
    }
    assert records.get(RecordKey(firm, REALM, "invoice", "inv_a")).waiting_on == ()


def test_find_by_qbo_id_is_per_realm_and_entity(records, firm):
    synced(records, firm, "invoice", "inv_q", "501")

    assert records.find_by_qbo_id(REALM, "Invoice", "501").platform_id == "inv_q"
    assert records.find_by_qbo_id(REALM, "Customer", "501") is None
    assert records.find_by_qbo_id("1234", "Invoice", "501") is None


def test_bad_input_is_rejected_before_any_write(records, firm):
    with pytest.raises(ValueError, match="entity_type"):
        claim(records, firm, "contact_person", "x")
    with pytest.raises(ValueError, match="platform_id"):
        claim(records, firm, "invoice", "a#b")
    with pytest.raises(ValueError, match="version"):
        claim(records, firm, "invoice", "x", version=-1)
    claim(records, firm, "invoice", "self")
    with pytest.raises(ValueError, match="itself"):
        records.mark_blocked(
            RecordKey(firm, REALM, "invoice", "self"), owner="w1", waiting_on=[("invoice", "self")], now=T0
        )
    with pytest.raises(ValueError, match="rests"):
        records.release(RecordKey(firm, REALM, "invoice", "self"), owner="w1", status=SYNCING, now=T0)


def test_last_event_keeps_the_newest_version(records, firm):
    pid = new_id("inv")
    assert records.last_event(RecordKey(firm, REALM, "invoice", pid)) is None
    event = {"version": "0", "detail": {"version": 3, "data": {"id": pid}}}
    # only an existing record item takes an event (it is stored after a claim)
    assert not records.store_last_event(RecordKey(firm, REALM, "invoice", pid), version=3, envelope=event)
    assert records.get(RecordKey(firm, REALM, "invoice", pid)) is None

    assert claim(records, firm, "invoice", pid, version=3).claimed
    before = records.get(RecordKey(firm, REALM, "invoice", pid))
    assert records.store_last_event(RecordKey(firm, REALM, "invoice", pid), version=3, envelope=event)
    assert records.last_event(RecordKey(firm, REALM, "invoice", pid)) == event
    assert (
        records.get(RecordKey(firm, REALM, "invoice", pid)).revision == before.revision
    )  # not a state change

    older = {"version": "0", "detail": {"version": 2, "data": {"id": pid}}}
    assert not records.store_last_event(RecordKey(firm, REALM, "invoice", pid), version=2, envelope=older)
    assert records.last_event(RecordKey(firm, REALM, "invoice", pid)) == event
    rerun = {"version": "0", "detail": {"version": 3, "data": {"id": pid}, "correlation_id": "c2"}}
    assert records.store_last_event(RecordKey(firm, REALM, "invoice", pid), version=3, envelope=rerun)
    assert records.last_event(RecordKey(firm, REALM, "invoice", pid)) == rerun
