"""Pure parts of the sync records and the writer: keys, item mapping, claim decisions, requestids."""

from __future__ import annotations

from decimal import Decimal

import pytest
from qbsync.errors import LeaseHeld
from qbsync.models.record_key import RecordKey
from qbsync.outbound.writer import marker, write_request_id
from qbsync.qbo.client import request_id_for
from qbsync.repositories.records import (
    BLOCKED,
    SYNCED,
    SYNCING,
    ClaimOutcome,
    Intent,
    RecordError,
    RecordsRepository,
    SyncRecord,
)
from qbsync.vocab import RECORD_TYPES, record_error_category

classify = RecordsRepository._classify


def rec(**changes) -> SyncRecord:
    base = SyncRecord(firm_id="f1", realm_id="123", entity_type="invoice", platform_id="inv_1")
    return SyncRecord(**{**{k: getattr(base, k) for k in base.__slots__}, **changes})


def test_request_id_is_deterministic_per_logical_write():
    rid = write_request_id(RecordKey("f1", "123", "invoice", "inv_1"), "create", 3)

    assert rid == write_request_id(RecordKey("f1", "123", "invoice", "inv_1"), "create", 3)
    assert rid == request_id_for("f1", "123", "invoice", "inv_1", "create", 3)
    assert len(rid) == 36
    others = {
        write_request_id(RecordKey("f1", "123", "invoice", "inv_1"), "create", 4),
        write_request_id(RecordKey("f1", "123", "invoice", "inv_1"), "update", 3),
        write_request_id(RecordKey("f1", "123", "invoice", "inv_2"), "create", 3),
        write_request_id(RecordKey("f1", "124", "invoice", "inv_1"), "create", 3),
        write_request_id(RecordKey("f2", "123", "invoice", "inv_1"), "create", 3),
        write_request_id(RecordKey("f1", "123", "payment", "inv_1"), "create", 3),
    }
    assert rid not in others and len(others) == 6


def test_marker_and_categories():
    assert marker("invoice", "inv_1") == "qbsync:invoice:inv_1"
    assert {t: record_error_category(t) for t in RECORD_TYPES} == {
        "client_account": "accounts",
        "service": "services",
        "invoice": "invoices",
        "payment": "payments",
        "credit_memo": "payments",
        "fee": "expenses",
        "refund": "refunds",
        "credit_application": "payments",
    }


def test_record_key_validates_its_parts():
    key = RecordKey("f1", "123", "invoice", "inv_1")
    assert (key.pk, key.sk, key.ref) == ("FIRM#f1#REALM#123", "REC#invoice#inv_1", "invoice#inv_1")
    assert key.item_key() == {
        "pk": "FIRM#f1#REALM#123",
        "sk": "REC#invoice#inv_1",
    }
    for bad in (("f#1", "123", "invoice", "x"), ("f1", "", "invoice", "x"), ("f1", "1", "bill", "x")):
        with pytest.raises(ValueError):
            RecordKey(*bad)


def test_item_round_trip():
    item = {
        "firm_id": "f1",
        "realm_id": "123",
        "entity_type": "invoice",
        "platform_id": "inv_1",
        "status": BLOCKED,
        "qbo_entity": "Invoice",
        "qbo_id": "45",
        "sync_token": "2",
        "platform_version": Decimal(3),
        "claimed_version": Decimal(4),
        "deep_link": "https://x/app/invoice?txnId=45",
        "error_code": "qbo_validation",
        "error_category": "invoices",
        "error_message": "m",
        "error_qbo_code": "6140",
        "waiting_on": {"payment#p1", "client_account#c1"},
        "attempts": Decimal(2),
        "owner": "w1",
        "lease_until": Decimal("1795449960.5"),
        "prev_status": SYNCED,
        "intent_op": "update",
        "intent_version": Decimal(4),
        "intent_request_id": "rid",
        "intent_sync_token": "2",
        "intent_at": Decimal(1795449900),
        "revision": Decimal(9),
        "updated_at": Decimal(1795449900),
    }
    r = SyncRecord.from_item(item)

    assert r.waiting_on == (("client_account", "c1"), ("payment", "p1"))
    assert r.error == RecordError("qbo_validation", "invoices", "m", "6140")
    assert r.intent == Intent("update", 4, "rid", "2", 1795449900.0)
    assert (r.platform_version, r.claimed_version, r.attempts, r.revision) == (3, 4, 2, 9)
    assert r.lease_until == 1795449960.5
    minimal = SyncRecord.from_item(
        {"firm_id": "f1", "realm_id": "1", "entity_type": "fee", "platform_id": "x"}
    )
    assert minimal.intent is None and minimal.error is None and minimal.platform_version is None


def test_claim_decisions():
    now = 1000.0
    assert classify(None, 1, "w1", now) is None
    # another worker's live lease
    with pytest.raises(LeaseHeld):
        classify(rec(status=SYNCING, owner="w2", lease_until=now + 1), 1, "w1", now)
    # an expired lease, or our own, may be taken
    assert classify(rec(status=SYNCING, owner="w2", lease_until=now), 1, "w1", now) is None
    assert classify(rec(status=SYNCING, owner="w1", lease_until=now + 50), 1, "w1", now) is None
    # versions
    applied = rec(status=SYNCED, platform_version=5, qbo_id="9")
    assert classify(applied, 4, "w1", now).outcome is ClaimOutcome.STALE
    assert classify(applied, 5, "w1", now).outcome is ClaimOutcome.ALREADY_APPLIED
    assert classify(applied, 6, "w1", now) is None
    # same version but something is unresolved: claim it again
    in_flight = rec(status=SYNCED, platform_version=5, qbo_id="9", intent=Intent("update", 5, "r", "1", 0))
    assert classify(in_flight, 5, "w1", now) is None
    assert classify(rec(status="failed", platform_version=5, qbo_id="9"), 5, "w1", now) is None


def test_lease_liveness():
    r = rec(status=SYNCING, owner="w1", lease_until=100.0)
    assert r.lease_live(99.9) and not r.lease_live(100.0)
    assert r.held_by_other("w2", 50) and not r.held_by_other("w1", 50)
    assert not rec(status=SYNCED, owner=None, lease_until=None).lease_live(0)
