"""RecordsRepository on moto, the reads and flags issue 12 added: ``get_many`` (one BatchGetItem),
``waiting_on_any`` (the records waiting on any of several prerequisites), ``error_open`` (a synced record
resolves its error center entry only after a failure), and a claim that stores its event (``ClaimOptions``:
``SUPERSEDED`` by a newer stored event, ``seen`` instead of a read)."""

from __future__ import annotations

import pytest
from qbsync.errors import Conflict, LeaseHeld
from qbsync.models.record_key import RecordKey
from qbsync.repositories.records import BLOCKED, SKIPPED, ClaimOptions, ClaimOutcome, QboLink, RecordError

from tests.integration.repositories.conftest import T0, new_id

REALM = "9130351234567890"


@pytest.fixture
def firm() -> str:
    return new_id("f")


def _key(firm: str, entity_type: str, pid: str) -> RecordKey:
    return RecordKey(firm, REALM, entity_type, pid)


def _event(pid: str, version: int) -> dict:
    return {"version": "0", "detail": {"version": version, "data": {"id": pid}}}


def _claim(records, key: RecordKey, version: int = 1, **options):
    return records.claim(
        key, version=version, owner="w1", lease_seconds=60, now=T0, options=ClaimOptions(**options)
    )


def _synced(records, key: RecordKey, version: int = 1):
    return records.mark_synced(
        key,
        owner="w1",
        version=version,
        link=QboLink(qbo_entity="Customer", qbo_id=new_id("q"), sync_token="0", deep_link=None),
        now=T0,
    )


def test_get_many_reads_every_key_and_names_the_missing(records, firm):
    present = [_key(firm, "invoice", new_id("inv")) for _ in range(3)]
    for key in present:
        assert _claim(records, key).claimed
    missing = _key(firm, "invoice", new_id("inv"))

    found = records.get_many([*present, missing])

    assert set(found) == {*present, missing}
    assert found[missing] is None
    assert all(found[k] is not None and found[k].key == k for k in present)


def test_waiting_on_any_finds_each_waiting_record_once_across_statuses(records, firm):
    account, service, other = (_key(firm, t, new_id(t[:3])) for t in ("client_account", "service", "service"))
    both = _key(firm, "invoice", new_id("inv"))  # waits on the account and the service
    one = _key(firm, "invoice", new_id("inv"))  # waits on the service, skipped
    unrelated = _key(firm, "invoice", new_id("inv"))  # waits on another service
    for key, waiting, skipped in (
        (both, [account, service], False),
        (one, [service], True),
        (unrelated, [other], False),
    ):
        assert _claim(records, key).claimed
        refs = [(w.record_type, w.platform_id) for w in waiting]
        if skipped:
            records.mark_skipped(key, owner="w1", reason="waiting", now=T0, waiting_on=refs)
        else:
            records.mark_blocked(key, owner="w1", waiting_on=refs, now=T0)

    found = list(records.waiting_on_any([account, service]))

    assert sorted(r.platform_id for r in found) == sorted([both.platform_id, one.platform_id])
    assert {r.platform_id: r.status for r in found} == {both.platform_id: BLOCKED, one.platform_id: SKIPPED}
    with pytest.raises(ValueError):
        list(records.waiting_on_any([account, RecordKey(firm, "1111222233334444", "service", "x")]))


def test_error_open_is_set_by_a_failure_and_cleared_only_for_the_synced_version(records, firm):
    key = _key(firm, "client_account", new_id("acct"))
    assert _claim(records, key).claimed
    _synced(records, key)
    assert records.get(key).error_open is False  # never failed: a sync reads no error log

    assert _claim(records, key, version=2).claimed
    failed = records.mark_failed(
        key, owner="w1", error=RecordError("qbo_validation", "Clients", "bad", "6000"), now=T0
    )
    assert failed.error_open is True
    assert _claim(records, key, version=3).claimed
    assert _synced(records, key, version=3).error_open is True  # kept until the entry is resolved

    records.clear_error_open(key, version=2)  # not the synced version: nothing
    assert records.get(key).error_open is True
    records.clear_error_open(key, version=3)
    assert records.get(key).error_open is False


def test_a_claim_stores_its_event_and_an_older_event_is_superseded(records, firm):
    key = _key(firm, "invoice", new_id("inv"))
    newer = _event(key.platform_id, 3)

    assert _claim(records, key, version=3, last_event=newer).claimed
    assert records.last_event(key) == newer  # in the claim's own write
    assert records.get(key).last_event_version == 3
    _synced(records, key, version=3)

    # version 2 is STALE against the applied 3; a version above the applied one but below the stored event
    # is what a record redelivered out of order meets: SUPERSEDED, nothing written
    assert (
        _claim(records, key, version=2, last_event=_event(key.platform_id, 2)).outcome is ClaimOutcome.STALE
    )
    records.store_last_event(key, version=5, envelope=_event(key.platform_id, 5))
    before = records.get(key)
    superseded = _claim(records, key, version=4, last_event=_event(key.platform_id, 4))
    assert superseded.outcome is ClaimOutcome.SUPERSEDED
    after = records.get(key)
    assert after.revision == before.revision and records.last_event(key)["detail"]["version"] == 5


def test_a_claim_on_a_record_as_seen_is_caught_when_it_changed_since(records, firm):
    key = _key(firm, "invoice", new_id("inv"))
    assert _claim(records, key).claimed
    seen = records.get_many([key])[key]
    _synced(records, key)  # someone else's write after our read

    again = _claim(records, key, version=2, seen=seen)  # the write's condition fails; read again, claim
    assert again.claimed and again.record.claimed_version == 2
    assert again.record.revision > seen.revision + 1  # written on the fresh read, not on the stale one


def test_a_lease_held_elsewhere_is_never_taken_from_a_stale_seen_read(records, firm):
    key = _key(firm, "invoice", new_id("inv"))
    seen = records.get_many([key])[key]  # no item yet
    assert seen is None
    assert records.claim(key, version=1, owner="w2", lease_seconds=60, now=T0).claimed
    with pytest.raises((Conflict, LeaseHeld)):
        _claim(records, key, version=1, seen=seen)
