"""ExactlyOnceWriter on moto (SyncStateTable) + the QuickBooks simulator through a real QboClient."""

from __future__ import annotations

import queue
import threading

import pytest
from qbsync.errors import (
    Conflict,
    DataError,
    LeaseHeld,
    QboValidationError,
    ReconnectRequired,
    RetryableError,
    UncertainOutcome,
)
from qbsync.models.record_key import RecordKey
from qbsync.outbound.writer import ExactlyOnceWriter, WriteRequest, create_intent, write_request_id
from qbsync.repositories.records import (
    FAILED,
    NOT_SYNCED,
    SYNCED,
    ClaimOptions,
    Intent,
    RecordError,
    RecordsRepository,
)

from tests.integration.outbound.conftest import customer_payload, find_customer, new_id

CLIENT = "client_account"


def test_create_is_applied_once_and_record_synced_with_deep_link(rig):
    name, cid = f"Acme {new_id('c')}", new_id("acct")
    outcome = rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", customer_payload(name, cid)
    )

    assert outcome.status == "synced"
    [created] = rig.customers(name)
    record = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert record is not None
    assert record.status == SYNCED
    assert record.qbo_entity == "Customer"
    assert record.qbo_id == created["Id"]
    assert record.sync_token == created["SyncToken"]
    assert record.platform_version == 1
    assert record.intent is None and record.owner is None and record.lease_until is None
    assert (
        record.deep_link == f"{rig.sim.url}/app/customerdetail?nameId={created['Id']}&companyId={rig.realm}"
    )
    assert outcome.request_id == write_request_id(RecordKey(rig.firm, rig.realm, CLIENT, cid), "create", 1)
    # the requestid QBO saw is the deterministic one
    posts = [r for r in rig.sim.control.requests(rig.realm, limit=20) if r["method"] == "POST"]
    assert any(f"requestid={outcome.request_id}" in (r.get("query") or "") for r in posts)
    # reverse lookup (gsi1) and status index (gsi2)
    assert rig.records.find_by_qbo_id(rig.realm, "Customer", created["Id"]).platform_id == cid
    synced = rig.records.list_by_status(rig.firm, rig.realm, SYNCED, entity_type=CLIENT).records
    assert [r.platform_id for r in synced] == [cid]


def test_redelivery_after_success_creates_nothing(rig):
    name, cid = f"Redeliver {new_id('c')}", new_id("acct")
    payload = customer_payload(name, cid)
    first = rig.writer("w1").write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", payload
    )
    requests_before = len(rig.sim.control.requests(rig.realm, limit=1000))
    again = rig.writer("w2").write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", payload
    )

    assert first.status == "synced"
    assert again.status == "already_synced"
    assert again.record.qbo_id == first.record.qbo_id
    assert len(rig.customers(name)) == 1
    assert len(rig.sim.control.requests(rig.realm, limit=1000)) == requests_before  # QBO not even asked


@pytest.mark.parametrize("with_lookup", [True, False], ids=["adopt-by-lookup", "replay-same-requestid"])
def test_dropped_response_is_uncertain_then_retry_ends_with_one_object(rig, with_lookup):
    name, cid = f"Dropped {new_id('c')}", new_id("acct")
    payload = customer_payload(name, cid)
    find = find_customer(name, cid) if with_lookup else None
    rig.sim.control.inject_fault(
        "drop_after_commit", count=1, realm_id=rig.realm, method="POST", path_regex="/customer$"
    )
    single_shot = rig.client(max_attempts=1)  # the client's own retry would hide the lost answer

    with pytest.raises(UncertainOutcome):
        rig.writer("w1", qbo=single_shot).write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", payload, find
        )
    assert len(rig.customers(name)) == 1  # the write did commit in QBO
    pending = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert pending.status == NOT_SYNCED and pending.owner is None  # released, not failed
    assert pending.intent is not None
    assert pending.intent.request_id == write_request_id(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), "create", 1
    )

    retry = rig.writer("w2").write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", payload, find
    )

    [only] = rig.customers(name)
    assert retry.status == ("adopted" if with_lookup else "synced")
    assert retry.record.status == SYNCED
    assert retry.record.qbo_id == only["Id"]
    assert retry.record.intent is None


def test_crash_between_qbo_write_and_state_write_adopts_existing_object(rig):
    name, cid = f"Crash {new_id('c')}", new_id("acct")
    payload = customer_payload(name, cid)
    rid = write_request_id(RecordKey(rig.firm, rig.realm, CLIENT, cid), "create", 1)
    # worker 1: claim, record the intent, write to QBO ... and die before recording the outcome
    claim = rig.records.claim(
        RecordKey(rig.firm, rig.realm, CLIENT, cid),
        version=1,
        owner="dead",
        lease_seconds=60,
        now=rig.clock(),
    )
    assert claim.claimed
    rig.records.record_intent(
        RecordKey(rig.firm, rig.realm, CLIENT, cid),
        owner="dead",
        intent=Intent(operation="create", version=1, request_id=rid, sync_token=None, at=rig.clock()),
    )
    created = rig.client().create("Customer", payload, request_id=rid)

    # while the dead worker's lease is live nobody else may write
    with pytest.raises(LeaseHeld):
        rig.writer("w2").write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid),
            1,
            "create",
            "Customer",
            payload,
            find_customer(name, cid),
        )
    rig.clock.advance(61)
    outcome = rig.writer("w2").write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid),
        1,
        "create",
        "Customer",
        payload,
        find_customer(name, cid),
    )

    assert outcome.status == "adopted"
    assert outcome.record.qbo_id == created["Id"]
    assert outcome.record.status == SYNCED and outcome.record.intent is None
    assert len(rig.customers(name)) == 1


def test_two_workers_on_one_record_write_once(rig):
    name, cid = f"Race {new_id('c')}", new_id("acct")
    payload = customer_payload(name, cid)
    gate = threading.Event()
    writers = [rig.writer(f"w{i}", qbo=rig.client(gate=gate)) for i in (1, 2)]
    start = threading.Barrier(2)
    results: queue.Queue = queue.Queue()

    def run(writer):
        start.wait(timeout=10)
        try:
            results.put(
                writer.write(RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", payload)
            )
        except Exception as exc:
            results.put(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    # the winner waits inside its QBO call (gate closed); the loser cannot claim and returns first
    loser = results.get(timeout=30)
    gate.set()
    for t in threads:
        t.join(timeout=30)
    winner = results.get(timeout=5)

    assert isinstance(loser, LeaseHeld | Conflict), loser
    assert winner.status == "synced"
    assert len(rig.customers(name)) == 1
    assert rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid)).qbo_id == winner.record.qbo_id


def test_older_version_is_skipped(rig):
    name, cid = f"Stale {new_id('c')}", new_id("acct")
    first = rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 5, "create", "Customer", customer_payload(name, cid)
    )
    older = rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid),
        4,
        "update",
        "Customer",
        {"DisplayName": name, "CompanyName": "Old"},
    )

    assert older.status == "stale"
    [obj] = rig.customers(name)
    assert obj["CompanyName"] == name  # the old version never reached QBO
    assert obj["SyncToken"] == first.record.sync_token
    assert rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid)).platform_version == 5


def test_stale_sync_token_is_recovered_once(rig):
    name, cid = f"Edited {new_id('c')}", new_id("acct")
    created = rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", customer_payload(name, cid)
    )
    # someone edits the customer in QBO: our stored SyncToken is now stale
    obj = rig.customers(name)[0]
    rig.client().update(
        "Customer",
        {"Id": obj["Id"], "SyncToken": obj["SyncToken"], "DisplayName": name, "Title": "Dr"},
        request_id=new_id("edit"),
    )

    updated = rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid),
        2,
        "update",
        "Customer",
        {"DisplayName": name, "CompanyName": "New Co"},
    )

    [now] = rig.customers(name)
    assert updated.status == "synced"
    assert now["CompanyName"] == "New Co" and now["Title"] == "Dr"  # sparse: the QBO edit survives
    assert updated.record.sync_token == now["SyncToken"]
    assert int(now["SyncToken"]) == int(created.record.sync_token) + 2
    assert updated.record.platform_version == 2 and updated.record.intent is None
    statuses = [r["status"] for r in rig.sim.control.requests(rig.realm, limit=10) if r["method"] == "POST"]
    assert 400 in statuses  # the 5010 happened and was recovered


def test_duplicate_display_name_marks_record_failed_with_qbo_code(rig):
    cid = new_id("acct")
    # "Stripe" is a Vendor of the seeded company: DisplayName is unique across names (6240)
    with pytest.raises(QboValidationError) as raised:
        rig.writer().write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid),
            1,
            "create",
            "Customer",
            customer_payload("Stripe", cid),
        )

    assert raised.value.qbo_code == "6240"
    record = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert record.status == FAILED
    assert record.error is not None
    assert record.error.qbo_code == "6240"
    assert record.error.category == "accounts"
    assert record.error.code == "qbo_validation"
    assert record.intent is None and record.owner is None
    failed = rig.records.list_by_status(rig.firm, rig.realm, FAILED).records
    assert [r.platform_id for r in failed] == [cid]
    assert rig.customers("Stripe") == []


def test_update_with_lost_answer_is_applied_once(rig):
    name, cid = f"Upd {new_id('c')}", new_id("acct")
    rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", customer_payload(name, cid)
    )
    token_before = int(rig.customers(name)[0]["SyncToken"])
    rig.sim.control.inject_fault(
        "drop_after_commit", count=1, realm_id=rig.realm, method="POST", path_regex="/customer$"
    )
    change = {"DisplayName": name, "CompanyName": "Changed Co"}

    with pytest.raises(UncertainOutcome):
        rig.writer("w1", qbo=rig.client(max_attempts=1)).write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid), 2, "update", "Customer", change
        )
    pending = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert pending.status == SYNCED and pending.platform_version == 1  # back to its resting status
    assert pending.intent.operation == "update" and pending.intent.sync_token == str(token_before)

    retry = rig.writer("w2").write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 2, "update", "Customer", change
    )

    [obj] = rig.customers(name)
    assert retry.status == "synced" and retry.record.platform_version == 2
    assert obj["CompanyName"] == "Changed Co"
    assert int(obj["SyncToken"]) == token_before + 1  # applied once: QBO replayed the lost answer
    assert retry.record.sync_token == obj["SyncToken"]
    assert retry.request_id == pending.intent.request_id


def _invoice_payload(rig, customer_id: str, invoice_id: str) -> dict:
    [item] = [i for i in rig.sim.control.entities(rig.realm, "Item") if i["Name"] == "Services"]
    return {
        "CustomerRef": {"value": customer_id},
        "Line": [
            {
                "Amount": 150.0,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1, "UnitPrice": 150.0},
            }
        ],
        "PrivateNote": f"qbsync:invoice:{invoice_id}",
    }


def test_invoice_void_and_delete(rig):
    name, cid = f"Inv {new_id('c')}", new_id("acct")
    customer = rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", customer_payload(name, cid)
    )
    to_void, to_delete = new_id("inv"), new_id("inv")
    w = rig.writer()
    for inv in (to_void, to_delete):
        created = w.write(
            RecordKey(rig.firm, rig.realm, "invoice", inv),
            1,
            "create",
            "Invoice",
            _invoice_payload(rig, customer.record.qbo_id, inv),
        )
        assert created.record.deep_link.startswith(f"{rig.sim.url}/app/invoice?txnId=")

    voided = w.write(RecordKey(rig.firm, rig.realm, "invoice", to_void), 2, "void", "Invoice", {})
    deleted = w.write(RecordKey(rig.firm, rig.realm, "invoice", to_delete), 2, "delete", "Invoice", {})
    # a redelivered void is recognised as applied
    again = w.write(RecordKey(rig.firm, rig.realm, "invoice", to_void), 2, "void", "Invoice", {})

    by_id = {i["Id"]: i for i in rig.sim.control.entities(rig.realm, "Invoice")}
    assert voided.status == "synced" and voided.record.applied_op == "void"
    assert by_id[voided.record.qbo_id]["TotalAmt"] == 0
    assert voided.record.sync_token == by_id[voided.record.qbo_id]["SyncToken"]
    assert deleted.status == "synced" and deleted.record.qbo_id not in by_id
    assert deleted.record.deep_link is None and deleted.record.sync_token is None
    assert again.status == "already_synced"


def test_update_without_qbo_object_fails_clearly(rig):
    cid = new_id("acct")
    with pytest.raises(DataError, match="no QuickBooks object"):
        rig.writer().write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "update", "Customer", {"DisplayName": "X"}
        )
    record = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert record.status == FAILED and record.owner is None


def test_revoked_authorization_releases_without_failing(rig):
    name, cid = f"Revoked {new_id('c')}", new_id("acct")
    rig.sim.control.revoke_tokens(rig.realm)

    with pytest.raises(ReconnectRequired):
        rig.writer().write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", customer_payload(name, cid)
        )

    record = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert record.status == NOT_SYNCED and record.owner is None and record.error is None
    assert record.intent is not None  # resolved by the next attempt after the reconnect
    assert rig.customers(name) == []


def test_throttling_releases_without_failing(rig):
    name, cid = f"Throttled {new_id('c')}", new_id("acct")
    rig.sim.control.inject_fault("throttle", count=1, realm_id=rig.realm, method="POST")

    with pytest.raises(RetryableError):
        rig.writer().write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", customer_payload(name, cid)
        )
    record = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert record.status == NOT_SYNCED and record.owner is None and record.error is None

    done = rig.writer().write(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), 1, "create", "Customer", customer_payload(name, cid)
    )
    assert done.status == "synced" and len(rig.customers(name)) == 1


def test_failure_before_resolving_keeps_the_earlier_intent(rig):
    cid = new_id("acct")
    rid = write_request_id(RecordKey(rig.firm, rig.realm, CLIENT, cid), "create", 1)
    rig.records.claim(
        RecordKey(rig.firm, rig.realm, CLIENT, cid), version=1, owner="dead", lease_seconds=5, now=rig.clock()
    )
    rig.records.record_intent(
        RecordKey(rig.firm, rig.realm, CLIENT, cid),
        owner="dead",
        intent=Intent(operation="create", version=1, request_id=rid, sync_token=None, at=rig.clock()),
    )
    rig.clock.advance(10)

    # an update arrives for a record whose create is unresolved and nothing can look it up
    with pytest.raises(DataError):
        rig.writer().write(
            RecordKey(rig.firm, rig.realm, CLIENT, cid), 2, "update", "Customer", {"DisplayName": "Y"}
        )

    record = rig.records.get(RecordKey(rig.firm, rig.realm, CLIENT, cid))
    assert record.status == FAILED
    assert record.intent is not None and record.intent.request_id == rid  # still to be resolved


def test_a_record_claimed_by_its_orchestrator_is_written_under_that_one_claim(rig):
    """One run of a record is one claim: the orchestrator claims, the writer renews the lease and writes."""
    cid = new_id("acct")
    key = RecordKey(rig.firm, rig.realm, CLIENT, cid)
    claim = rig.records.claim(key, version=1, owner="worker-1", lease_seconds=30, now=rig.clock())
    rig.clock.advance(25)  # a long preparation (reference data, prerequisites) ate most of the lease

    with pytest.raises(QboValidationError):  # "Stripe" is a Vendor of the seeded company (6240)
        rig.writer().write_claimed(
            claim.record, WriteRequest(1, "create", "Customer", customer_payload("Stripe", cid))
        )

    record = rig.records.get(key)
    assert record.status == FAILED and record.error.qbo_code == "6240"
    assert record.attempts == 1  # not 2: the writer did not claim the record a second time

    other = RecordKey(rig.firm, rig.realm, CLIENT, new_id("acct"))
    held = rig.records.claim(other, version=1, owner="worker-2", lease_seconds=30, now=rig.clock())
    with pytest.raises(ValueError, match="lease"):
        rig.writer().write_claimed(
            held.record, WriteRequest(1, "create", "Customer", customer_payload("X", other.platform_id))
        )
    assert rig.records.get(other).owner == "worker-2"  # nothing written under another owner's lease


def test_write_claimed_renews_the_lease_before_the_call(rig):
    cid = new_id("acct")
    name = f"Renewed {cid}"
    key = RecordKey(rig.firm, rig.realm, CLIENT, cid)
    claim = rig.records.claim(key, version=1, owner="worker-1", lease_seconds=30, now=rig.clock())
    rig.clock.advance(25)
    renewed_until: list[float] = []

    class Watching(ExactlyOnceWriter):
        def _write_held(self, record, *args, **kwargs):
            renewed_until.append(record.lease_until)
            return super()._write_held(record, *args, **kwargs)

    writer = Watching(rig.records, rig.client(), rig.clock, "worker-1", app_base_url=rig.sim.url)
    outcome = writer.write_claimed(
        claim.record, WriteRequest(1, "create", "Customer", customer_payload(name, cid))
    )

    assert outcome.status == "synced" and len(rig.customers(name)) == 1
    assert renewed_until and renewed_until[0] > claim.record.lease_until  # renewed from "now", not the claim


def _failed_account(rig, cid: str, *, owner: str = "worker-1"):
    """A client account whose sync failed with an account error the firm is fixing, then claimed again."""
    key = RecordKey(rig.firm, rig.realm, CLIENT, cid)
    rig.records.claim(key, version=1, owner="sync", lease_seconds=30, now=rig.clock())
    original = RecordError(
        code="data_error", category="accounts", message="the firm's own words", qbo_code="6000"
    )
    rig.records.mark_failed(key, owner="sync", error=original, now=rig.clock())
    claim = rig.records.claim(key, version=1, owner=owner, lease_seconds=30, now=rig.clock())
    return key, claim.record, original


def test_a_salted_request_is_not_the_syncs_write_and_replays_only_itself(rig):
    """An error action's create carries its own requestid: not the sync's (QuickBooks would replay the
    sync's answer), the same on a repeat of the same request."""
    cid = new_id("acct")
    name = f"Salted {cid}"
    key, held, _ = _failed_account(rig, cid)
    request = WriteRequest(
        1, "create", "Customer", customer_payload(name, cid), salt=("create_customer", "e1")
    )

    outcome = rig.writer().write_claimed(held, request)

    assert outcome.status == "synced" and len(rig.customers(name)) == 1
    assert outcome.request_id == write_request_id(key, "create", 1, "create_customer", "e1")
    assert outcome.request_id != write_request_id(key, "create", 1)


def test_a_refusal_can_keep_the_records_original_error(rig):
    """keep_error: the firm still sees the error it is fixing, not QuickBooks' answer to the fix."""
    cid = new_id("acct")
    key, held, original = _failed_account(rig, cid)
    # "Stripe" is a Vendor of the seeded company: QuickBooks refuses the name (6240)
    request = WriteRequest(1, "create", "Customer", customer_payload("Stripe", cid), keep_error=True)

    with pytest.raises(QboValidationError):
        rig.writer().write_claimed(held, request)

    record = rig.records.get(key)
    assert record.status == FAILED and record.error == original


def test_adopt_claimed_links_the_found_object_without_writing(rig):
    cid = new_id("acct")
    name = f"Adopted {cid}"
    created = rig.writer("earlier").write(
        RecordKey(rig.firm, rig.realm, CLIENT, new_id("other")),
        1,
        "create",
        "Customer",
        customer_payload(name, cid),
    )
    key, held, _ = _failed_account(rig, cid)
    before = len(rig.customers())

    outcome = rig.writer().adopt_claimed(
        held, WriteRequest(1, "create", "Customer", customer_payload(name, cid)), created.qbo_object
    )

    assert outcome.status == "adopted" and outcome.record.status == SYNCED
    assert outcome.record.qbo_id == created.record.qbo_id and len(rig.customers()) == before
    assert rig.records.get(key).owner is None  # the lease ends with the link


class _CountingRecords(RecordsRepository):
    """The real repository, counting the intents written on their own (not with a claim)."""

    def __init__(self, table) -> None:
        super().__init__(table)
        self.intents_written: list[Intent] = []

    def record_intent(self, key, *, owner, intent):
        self.intents_written.append(intent)
        return super().record_intent(key, owner=owner, intent=intent)


def _claim_with_intent(records, key: RecordKey, now: float, owner: str = "worker-1"):
    return records.claim(
        key,
        version=1,
        owner=owner,
        lease_seconds=60,
        now=now,
        options=ClaimOptions("create", intent=create_intent(key, 1, now)),
    )


def test_a_create_claimed_with_its_intent_is_sent_under_it_without_writing_it_again(rig, table):
    """Issue 12/13: the claim of a create notes its intent with the lease (one UpdateItem less per record);
    the intent is durable before QuickBooks is called, and QuickBooks sees exactly its requestid."""
    records = _CountingRecords(table)
    cid = new_id("acct")
    name = f"Claimed {cid}"
    key = RecordKey(rig.firm, rig.realm, CLIENT, cid)
    claim = _claim_with_intent(records, key, rig.clock())
    rid = write_request_id(key, "create", 1)

    assert claim.claimed and claim.record.intent is not None and claim.record.intent.fresh
    stored = records.get(key)
    assert stored.intent == Intent("create", 1, rid, None, at=claim.record.intent.at)  # durable, not fresh
    assert stored.intent.fresh is False and stored.leftover_intent is not None

    writer = ExactlyOnceWriter(records, rig.client(), rig.clock, "worker-1", app_base_url=rig.sim.url)
    outcome = writer.write_claimed(
        claim.record,
        WriteRequest(1, "create", "Customer", customer_payload(name, cid), find_customer(name, cid)),
    )

    assert outcome.status == "synced" and outcome.request_id == rid
    assert records.intents_written == []  # the claim's intent was the one sent under
    assert len(rig.customers(name)) == 1
    posts = [r for r in rig.sim.control.requests(rig.realm, limit=20) if r["method"] == "POST"]
    assert any(f"requestid={rid}" in (r.get("query") or "") for r in posts)
    queries = [r for r in rig.sim.control.requests(rig.realm, limit=20) if "/query" in str(r.get("path"))]
    assert queries == []  # the claim's own intent is no leftover: nothing looked up before the create
    assert records.get(key).intent is None


def test_a_lost_answer_under_the_claims_intent_keeps_it_and_the_next_run_writes_once(rig, table):
    records = _CountingRecords(table)
    cid = new_id("acct")
    name = f"Lost {cid}"
    key = RecordKey(rig.firm, rig.realm, CLIENT, cid)
    payload = customer_payload(name, cid)
    rig.sim.control.inject_fault(
        "drop_after_commit", count=1, realm_id=rig.realm, method="POST", path_regex="/customer$"
    )
    claim = _claim_with_intent(records, key, rig.clock())
    single_shot = ExactlyOnceWriter(
        records, rig.client(max_attempts=1), rig.clock, "worker-1", app_base_url=rig.sim.url
    )

    with pytest.raises(UncertainOutcome):
        single_shot.write_claimed(claim.record, WriteRequest(1, "create", "Customer", payload))

    left = records.get(key)
    assert left.status == NOT_SYNCED and left.owner is None
    assert left.intent is not None and left.intent.request_id == write_request_id(key, "create", 1)
    again = _claim_with_intent(records, key, rig.clock(), owner="worker-2")
    assert again.record.intent == left.intent and not again.record.intent.fresh  # a leftover is not replaced
    retry = rig.writer("worker-2").write_claimed(
        again.record, WriteRequest(1, "create", "Customer", payload, find_customer(name, cid))
    )
    [only] = rig.customers(name)
    assert retry.status == "adopted" and retry.record.qbo_id == only["Id"]


def test_a_failure_before_any_call_removes_the_claims_own_intent(rig, table):
    """Nothing was sent under the claim's intent: the record must not look like a write is in flight (the
    next run would look the object up and skip the exact-name match for it)."""
    records = _CountingRecords(table)
    key = RecordKey(rig.firm, rig.realm, CLIENT, new_id("acct"))
    claim = _claim_with_intent(records, key, rig.clock())

    with pytest.raises(DataError):  # an update of a record with no QuickBooks object: refused before a call
        rig.writer().write_claimed(claim.record, WriteRequest(1, "update", "Customer", {"DisplayName": "Y"}))

    record = records.get(key)
    assert record.status == FAILED and record.intent is None


def test_a_release_before_any_call_removes_the_claims_own_intent_and_after_a_call_keeps_it(rig, table):
    records = _CountingRecords(table)
    unsent = RecordKey(rig.firm, rig.realm, CLIENT, new_id("acct"))
    claim = _claim_with_intent(records, unsent, rig.clock())
    records.release(unsent, owner="worker-1", status=NOT_SYNCED, now=rig.clock(), drop_intent=True)
    assert records.get(unsent).intent is None

    cid = new_id("acct")
    sent = RecordKey(rig.firm, rig.realm, CLIENT, cid)
    claim = _claim_with_intent(records, sent, rig.clock())
    rig.sim.control.inject_fault("throttle", count=1, realm_id=rig.realm, method="POST")
    writer = ExactlyOnceWriter(
        records, rig.client(max_attempts=1), rig.clock, "worker-1", app_base_url=rig.sim.url
    )
    with pytest.raises(RetryableError):  # QuickBooks was called: what it did is not ours to assume
        writer.write_claimed(claim.record, WriteRequest(1, "create", "Customer", customer_payload(cid, cid)))
    record = records.get(sent)
    assert record.status == NOT_SYNCED and record.intent is not None
