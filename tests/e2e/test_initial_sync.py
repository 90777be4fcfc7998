"""The initial sync through the whole local stack (issue 13): a firm with history connects; the
``InitialSync`` state machine runs on moto's Step Functions with the real task Lambda.

The platform's side is played as the platform would: a subscription to the firm's qbsync events ("Snapshot
Requested", "Initial Sync Planned", "Initial Sync Progress"), the snapshot written to the bucket the request
names (``local.platform_snapshot``), "Snapshot Ready" put on the bus. The owner reads and approves the plan
through the admin API. Waits are long polls on the subscription under one deadline (no sleeps).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import requests
from qbsync.initial_sync.plan import index_key
from qbsync.models.record_key import note_of, parse_marker

from local.platform_snapshot import announce_snapshot, export_snapshot
from local.qbo_sim.client import SimAccountant
from local.sample_firm import SampleFirm, generate
from local.stack.provision import clients
from tests.fixtures.events import EventCapture, subscribe
from tests.fixtures.firms import admin_jwt, authorize_through_stack, complete_through_stack, handle_of
from tests.fixtures.platform import StatusInbox, admin_api, connect_owner, put_on_bus

pytestmark = pytest.mark.e2e

DEADLINE = 300.0
#: (record type of the plan, platform entity of the sample's records, QuickBooks entity, marker)
KINDS = {
    "client_account": ("ClientAccount", "Customer", "Notes"),
    "service": ("Service", "Item", "Description"),
    "invoice": ("Invoice", "Invoice", "PrivateNote"),
    "fee": ("ProcessingFee", "Purchase", "PrivateNote"),
}


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-initial-{secrets.token_hex(4)}"


class Platform:
    """The platform's view of one firm's initial sync."""

    def __init__(self, stack: Any, firm_id: str) -> None:
        self.stack, self.firm_id = stack, firm_id
        self.capture: EventCapture = subscribe(
            stack.resources,
            "Snapshot Requested",
            "Initial Sync Planned",
            "Initial Sync Progress",
            detail={"firm_id": [firm_id]},
            name="e2e-initsync",
        )
        self.received: list[dict[str, Any]] = []

    def wait_for(self, detail_type: str, deadline: float, **match: Any) -> dict[str, Any]:
        while True:
            for envelope in self.received:
                detail = envelope["detail"]
                if envelope["detail-type"] == detail_type and all(
                    detail.get(k) == v for k, v in match.items()
                ):
                    return detail
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(e["detail-type"], e["detail"].get("status")) for e in self.received]
                raise AssertionError(f"no {detail_type} {match}; got {seen}")
            self.received.extend(self.capture.receive(wait_seconds=max(1, min(5, int(remaining)))))

    def answer(self, request: dict[str, Any], events: list[dict[str, Any]]) -> str:
        c = clients(self.stack.endpoint_url, self.stack.region)
        snapshot_id = f"snap-{secrets.token_hex(6)}"
        manifest_key = export_snapshot(
            c["s3"], request["bucket"], self.firm_id, request["run_id"], events, snapshot_id=snapshot_id
        )
        announce_snapshot(
            c["events"],
            self.stack.resources.ref("EventBus"),
            self.firm_id,
            request["run_id"],
            manifest_key,
            snapshot_id,
        )
        return manifest_key

    def close(self) -> None:
        self.capture.close()


def _history(firm_id: str) -> SampleFirm:
    return generate(firm_id, n_accounts=5, n_invoices=8)


def _records_of(sample: SampleFirm, record_type: str) -> list[dict[str, Any]]:
    entity = KINDS[record_type][0]
    return sample.records[entity]


def _marked(qbo_sim: Any, realm: str, record_type: str) -> Counter[str]:
    """How many QuickBooks objects carry each platform record's marker."""
    entity, qbo_entity, _ = KINDS[record_type]
    counts: Counter[str] = Counter()
    for obj in qbo_sim.control.entities(realm, qbo_entity):
        found = parse_marker(note_of(qbo_entity, obj))
        if found is not None and found[0] == entity:
            counts[found[1]] += 1
    return counts


@pytest.fixture
def platform(local_stack: Any, firm_id: str):
    p = Platform(local_stack, firm_id)
    yield p
    p.close()


def _planned(local_stack, qbo_sim, realm: str, firm_id: str, platform: Platform, sample: SampleFirm):
    connect_owner(local_stack, qbo_sim, firm_id, realm)
    deadline = time.monotonic() + DEADLINE
    request = platform.wait_for("Snapshot Requested", deadline)
    assert request["prefix"] == f"snapshots/{firm_id}/{request['run_id']}/"
    platform.answer(request, sample.events)
    planned = platform.wait_for("Initial Sync Planned", deadline, run_id=request["run_id"])
    return request["run_id"], planned


def test_plan_approve_execute_lands_every_record_once(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, platform: Platform
) -> None:
    sample = _history(firm_id)
    accounts = _records_of(sample, "client_account")
    # the bookkeeper entered one client in QuickBooks before: the plan links it instead of creating it
    broken = {d.platform_id for d in sample.deliberate_errors}
    billed = {i["account_id"] for i in _records_of(sample, "invoice") if i["status"] != "draft"}
    linked = next(a for a in accounts if a["id"] in billed and a["id"] not in broken)
    existing = SimAccountant.sign_in(qbo_sim.control, qbo_company).create(
        "Customer", {"DisplayName": linked["name"]}
    )
    run_id, planned = _planned(local_stack, qbo_sim, qbo_company, firm_id, platform, sample)

    assert planned["needs_approval"] is True
    totals = {t["record_type"]: t for t in planned["totals"]}
    for record_type in KINDS:
        t = totals[record_type]
        assert t["create"] + t["link"] + t["skip"] + t["block"] == len(_records_of(sample, record_type))
    assert totals["client_account"]["link"] >= 1
    invoices = _records_of(sample, "invoice")
    planned_money = sum(
        (Decimal(totals["invoice"].get(f"{a}_amount") or "0") for a in ("create", "link", "skip", "block")),
        Decimal("0.00"),
    )
    assert planned_money == sum((Decimal(i["total"]) for i in invoices), Decimal("0.00"))
    # the negative-rate service is refused by QuickBooks in any company: blocked in the plan, with its reason
    assert any(f["code"] == "service_rate_negative" for f in planned["findings"]), planned["findings"]

    owner, staff = (
        admin_jwt(local_stack, firm_id),
        admin_jwt(local_stack, firm_id, role="staff", user_id="u-s"),
    )
    view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
    assert view["run_id"] == run_id and view["status"] == "awaiting_approval"
    assert {t["record_type"] for t in view["plan"]["totals"]} >= set(KINDS)
    assert admin_api(local_stack, staff, "POST", f"/initial-sync/{run_id}/approve").status_code == 403
    assert sum(_marked(qbo_sim, qbo_company, "invoice").values()) == 0  # nothing before approval

    approved = admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve")
    assert approved.status_code == 200, approved.text
    assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve").status_code == 409
    platform.wait_for("Initial Sync Progress", time.monotonic() + DEADLINE, run_id=run_id, status="completed")

    view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
    assert view["status"] == "completed"
    for phase in view["phases"]:
        finished = sum(phase[k] for k in ("done", "failed", "skipped", "blocked", "changed"))
        assert phase["status"] == "completed" and finished == phase["planned"] and phase["remaining"] == 0, (
            phase
        )
    # nothing left waiting; what failed is exactly the sample's data QuickBooks refuses in any company
    assert all(phase["blocked"] == 0 for phase in view["phases"]), view["phases"]
    refused = {"tax_rate_unmapped", "name_invalid_characters", "service_rate_negative"}
    assert sum(phase["failed"] for phase in view["phases"]) == len(
        [d for d in sample.deliberate_errors if d.reason_code in refused]
    ), view["phases"]
    for record_type in KINDS:
        assert all(n == 1 for n in _marked(qbo_sim, qbo_company, record_type).values()), record_type
    # the linked client: still one customer of that name, and no customer created for it
    same_name = [
        c for c in qbo_sim.control.entities(qbo_company, "Customer") if c["DisplayName"] == linked["name"]
    ]
    assert [c["Id"] for c in same_name] == [existing["Id"]]
    assert linked["id"] not in _marked(qbo_sim, qbo_company, "client_account")
    record = admin_api(local_stack, owner, "GET", f"/sync/records/client_account/{linked['id']}").json()
    assert record["status"] == "synced" and record["qbo_id"] == existing["Id"], record
    # money to the cent: every invoice QuickBooks has from this run equals its platform invoice
    by_id = {i["id"]: Decimal(i["total"]) for i in invoices}
    landed = {
        marker[1]: Decimal(str(obj["TotalAmt"])).quantize(Decimal("0.01"))
        for obj in qbo_sim.control.entities(qbo_company, "Invoice")
        if (marker := parse_marker(note_of("Invoice", obj))) is not None
    }
    assert landed and all(by_id[pid] == amount for pid, amount in landed.items())
    assert len(landed) == sum(p["done"] for p in view["phases"] if p["phase"] == "invoices")


def test_cancel_while_awaiting_approval_writes_nothing(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, platform: Platform
) -> None:
    sample = _history(firm_id)
    run_id, _ = _planned(local_stack, qbo_sim, qbo_company, firm_id, platform, sample)
    owner = admin_jwt(local_stack, firm_id)
    cancelled = admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve").status_code == 409
    assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/cancel").status_code == 409
    platform.wait_for("Initial Sync Progress", time.monotonic() + DEADLINE, run_id=run_id, status="cancelled")
    for record_type in KINDS:
        assert not _marked(qbo_sim, qbo_company, record_type), record_type


def test_a_record_changed_after_the_plan_is_synced_by_its_event_not_rewritten(
    local_stack: Any,
    qbo_sim: Any,
    qbo_company: str,
    firm_id: str,
    platform: Platform,
    status_inbox: StatusInbox,
) -> None:
    sample = _history(firm_id)
    run_id, _ = _planned(local_stack, qbo_sim, qbo_company, firm_id, platform, sample)
    # the platform edits a planned service before the owner approves: its event carries a newer version
    created = next(
        e
        for e in sample.events
        if e["detail-type"] == "Service Created" and not e["detail"]["data"]["rate"].startswith("-")
    )
    detail = {
        **created["detail"],
        "event_id": f"{created['detail']['event_id']}-edit",
        "version": created["detail"]["version"] + 1,
        "data": {**created["detail"]["data"], "description": "Edited after the plan"},
    }
    put_on_bus(local_stack, {"source": "platform", "detail-type": "Service Updated", "detail": detail})
    service_id = detail["data"]["id"]
    status_inbox.wait_for("Service", service_id, "synced", time.monotonic() + DEADLINE)
    owner = admin_jwt(local_stack, firm_id)
    assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve").status_code == 200
    platform.wait_for("Initial Sync Progress", time.monotonic() + DEADLINE, run_id=run_id, status="completed")
    view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
    services = next(p for p in view["phases"] if p["phase"] == "services")
    assert services["changed"] == 1, services
    record = admin_api(local_stack, owner, "GET", f"/sync/records/service/{service_id}").json()
    assert record["status"] == "synced" and record["platform_version"] == detail["version"], record
    # one QuickBooks item for it (its own, or the company's Sales item when there is no income account)
    assert record["qbo_id"] and _marked(qbo_sim, qbo_company, "service")[service_id] <= 1


def _wait_status(platform: Platform, run_id: str, status: str) -> dict[str, Any]:
    return platform.wait_for(
        "Initial Sync Progress", time.monotonic() + DEADLINE, run_id=run_id, status=status
    )


def _no_duplicates(qbo_sim: Any, realm: str) -> None:
    for record_type in KINDS:
        doubled = {pid: n for pid, n in _marked(qbo_sim, realm, record_type).items() if n > 1}
        assert not doubled, (record_type, doubled)


def test_a_company_switch_supersedes_the_run_of_the_old_company(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, platform: Platform
) -> None:
    sample = _history(firm_id)
    run_id, _ = _planned(local_stack, qbo_sim, qbo_company, firm_id, platform, sample)
    second = qbo_sim.control.create_company(company_name=f"Second Co {secrets.token_hex(3)}")["realm_id"]
    try:
        owner = admin_jwt(local_stack, firm_id)
        switched = complete_through_stack(
            local_stack, owner, handle_of(authorize_through_stack(local_stack, qbo_sim, owner, second))
        )
        assert switched.status_code == 200 and switched.json()["change"] == "switch_pending", switched.text
        confirmed = requests.post(
            f"{local_stack.api_url}/connection/confirm-switch",
            json={"confirmation": "ACCEPT"},
            headers={"Authorization": f"Bearer {owner}"},
            timeout=60,
        )
        assert confirmed.status_code == 200, confirmed.text
        deadline = time.monotonic() + DEADLINE
        old = platform.wait_for("Initial Sync Progress", deadline, run_id=run_id, status="superseded")
        assert old["realm_id"] == qbo_company
        request = platform.wait_for("Snapshot Requested", deadline, realm_id=second)
        assert request["run_id"] != run_id
        view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
        assert (view["run_id"], view["realm_id"], view["status"]) == (
            request["run_id"],
            second,
            "waiting_for_snapshot",
        )
        # the old company's plan can no longer be approved, and nothing of it was written
        assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve").status_code == 404
        for record_type in KINDS:
            assert not _marked(qbo_sim, qbo_company, record_type)
    finally:
        qbo_sim.control.delete_company(second)


def test_a_batch_whose_answer_is_lost_after_commit_lands_each_record_once(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, platform: Platform
) -> None:
    """Two QuickBooks batch calls commit and their answers are lost (the connection drops): the records in
    them are looked up by their marker and adopted, never created again."""
    sample = generate(firm_id, n_accounts=6, n_invoices=40)
    run_id, _ = _planned(local_stack, qbo_sim, qbo_company, firm_id, platform, sample)
    qbo_sim.control.inject_fault(
        "drop_after_commit", count=2, method="POST", path_regex=r"/batch$", realm_id=qbo_company
    )
    owner = admin_jwt(local_stack, firm_id)
    try:
        assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve").status_code == 200
        _wait_status(platform, run_id, "completed")
    finally:
        qbo_sim.control.clear_faults()

    log = qbo_sim.control.requests(qbo_company, limit=5000)
    dropped = [e for e in log if e.get("fault") == "drop_after_commit"]
    assert len(dropped) == 2 and all(e["path"].endswith("/batch") for e in dropped), dropped
    assert all(e.get("committed_status") == 200 for e in dropped), dropped
    _no_duplicates(qbo_sim, qbo_company)
    view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
    assert view["status"] == "completed"
    for phase in view["phases"]:
        finished = sum(phase[k] for k in ("done", "failed", "skipped", "blocked", "changed"))
        assert finished == phase["planned"] and phase["remaining"] == 0 and phase["blocked"] == 0, phase
    # every record QuickBooks holds is one the run counted done, and invoice money is to the cent
    by_id = {i["id"]: Decimal(i["total"]) for i in _records_of(sample, "invoice")}
    landed = {
        marker[1]: Decimal(str(obj["TotalAmt"])).quantize(Decimal("0.01"))
        for obj in qbo_sim.control.entities(qbo_company, "Invoice")
        if (marker := parse_marker(note_of("Invoice", obj))) is not None
    }
    invoices = next(p for p in view["phases"] if p["phase"] == "invoices")
    assert len(landed) == invoices["done"] and all(by_id[pid] == amount for pid, amount in landed.items())


# ---------------------------------------------------------------- resume after a failure mid-phase


def _written(qbo_sim: Any, realm: str) -> dict[tuple[str, str], tuple[str, int, int]]:
    """Every QuickBooks object carrying a platform record's marker: (entity, platform id) -> (Id, SyncToken,
    payments linked). Any write of an object moves its SyncToken; so does a payment applied to an invoice
    (QuickBooks recomputes its balance), one step for each payment it gains."""
    found: dict[tuple[str, str], tuple[str, int, int]] = {}
    for record_type in KINDS:
        entity, qbo_entity, _ = KINDS[record_type]
        for obj in qbo_sim.control.entities(realm, qbo_entity):
            marker = parse_marker(note_of(qbo_entity, obj))
            if marker is not None and marker[0] == entity:
                links = [t for t in obj.get("LinkedTxn") or [] if t.get("TxnType") == "Payment"]
                found[(entity, marker[1])] = (obj["Id"], int(obj["SyncToken"]), len(links))
    return found


def _rewritten(
    before: dict[tuple[str, str], tuple[str, int, int]], after: dict[tuple[str, str], tuple[str, int, int]]
) -> dict[tuple[str, str], tuple[Any, Any]]:
    """The objects of ``before`` that were written again since (or are gone): a SyncToken that moved more than
    the payments the object gained."""
    moved = {}
    for key, (qbo_id, token, links) in before.items():
        now = after.get(key)
        if now is None or now[0] != qbo_id or now[1] - token != now[2] - links:
            moved[key] = ((qbo_id, token, links), now)
    return moved


def _phases(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["phase"]: p for p in view["phases"]}


def _finished(phase: dict[str, Any]) -> int:
    return sum(phase[k] for k in ("done", "failed", "skipped", "blocked", "changed"))


def _assert_completed_once(
    local_stack: Any, qbo_sim: Any, realm: str, owner: str, sample: SampleFirm
) -> None:
    """The run completed: every planned record counted once, nothing doubled in QuickBooks, money to the
    cent."""
    view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
    assert view["status"] == "completed" and not view.get("error"), view
    for phase in view["phases"]:
        assert phase["status"] == "completed" and _finished(phase) == phase["planned"], phase
        assert phase["remaining"] == 0 and phase["blocked"] == 0, phase
    refused = {"tax_rate_unmapped", "name_invalid_characters", "service_rate_negative"}
    assert sum(phase["failed"] for phase in view["phases"]) == len(
        [d for d in sample.deliberate_errors if d.reason_code in refused]
    ), view["phases"]
    _no_duplicates(qbo_sim, realm)
    invoices = _records_of(sample, "invoice")
    by_id = {i["id"]: Decimal(i["total"]) for i in invoices}
    landed = {
        marker[1]: Decimal(str(obj["TotalAmt"])).quantize(Decimal("0.01"))
        for obj in qbo_sim.control.entities(realm, "Invoice")
        if (marker := parse_marker(note_of("Invoice", obj))) is not None
    }
    assert len(landed) == _phases(view)["invoices"]["done"]
    assert all(by_id[pid] == amount for pid, amount in landed.items())
    assert sum(landed.values(), Decimal("0.00")) == sum((by_id[pid] for pid in landed), Decimal("0.00"))


def _executions(local_stack: Any, firm_id: str) -> list[tuple[str, str]]:
    """The firm's executions of the state machine, (name, status) oldest first."""
    sfn = clients(local_stack.endpoint_url, local_stack.region)["stepfunctions"]
    arn = local_stack.resources.ref("InitialSyncStateMachine")
    listed = sfn.list_executions(stateMachineArn=arn, maxResults=1000)["executions"]
    mine = [e for e in listed if firm_id in sfn.describe_execution(executionArn=e["executionArn"])["input"]]
    return [(e["name"], e["status"]) for e in sorted(mine, key=lambda e: e["startDate"])]


def test_a_run_that_fails_mid_phase_resumes_where_it_was_without_rewriting(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, platform: Platform
) -> None:
    """A chunk of the invoices phase fails for good (its plan object is unreadable: no retry fixes it) while
    the phases before it and the invoices of the other chunk are written. The run fails with the chunk's
    reason, the cause is fixed, the owner resumes: the run finishes, and nothing written before the failure
    is written again."""
    sample = generate(firm_id, n_accounts=8, n_invoices=100)
    run_id, _ = _planned(local_stack, qbo_sim, qbo_company, firm_id, platform, sample)
    s3 = clients(local_stack.endpoint_url, local_stack.region)["s3"]
    bucket = local_stack.resources.ref("SnapshotBucket")
    index = json.loads(
        s3.get_object(Bucket=bucket, Key=index_key(firm_id, run_id, "invoices"))["Body"].read()
    )
    assert len(index) >= 2, index
    broken = index[-1]
    good_body = s3.get_object(Bucket=bucket, Key=broken["key"])["Body"].read()
    s3.put_object(Bucket=bucket, Key=broken["key"], Body=b'{"lines": [')

    owner = admin_jwt(local_stack, firm_id)
    assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve").status_code == 200
    failed = _wait_status(platform, run_id, "failed")
    assert f"invoices:{broken['index']}" in failed["error"] and "does not read" in failed["error"], failed

    view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
    assert view["status"] == "failed" and f"invoices:{broken['index']}" in view["error"], view
    phases = _phases(view)
    for name in ("services", "customers"):
        assert phases[name]["status"] == "completed" and phases[name]["remaining"] == 0, phases[name]
    invoices = phases["invoices"]
    # mid-phase: the other chunks are counted, the broken one is what remains
    assert invoices["status"] == "running" and invoices["remaining"] == broken["count"], invoices
    assert _finished(invoices) == invoices["planned"] - broken["count"] > 0, invoices
    for name in ("payments", "refunds", "fees"):
        assert phases[name]["status"] == "pending" and _finished(phases[name]) == 0, phases[name]
    before = _written(qbo_sim, qbo_company)
    assert sum(1 for entity, _ in before if entity == "Invoice") == invoices["done"] > 0
    _no_duplicates(qbo_sim, qbo_company)

    # the cause is fixed (the plan object written again), the owner resumes
    s3.put_object(Bucket=bucket, Key=broken["key"], Body=good_body)
    staff = admin_jwt(local_stack, firm_id, role="staff", user_id="u-s")
    assert admin_api(local_stack, staff, "POST", f"/initial-sync/{run_id}/resume").status_code == 403
    resumed = admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running", resumed.text
    # a second resume starts no second execution: 409 once the new execution owns the run, or, before that,
    # the same start again (StartExecution with a running execution's name and input answers that execution);
    # the executions are counted at the end
    again = admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/resume")
    assert again.status_code in (200, 409), again.text
    _wait_status(platform, run_id, "completed")

    _assert_completed_once(local_stack, qbo_sim, qbo_company, owner, sample)
    after = _written(qbo_sim, qbo_company)
    # what was written before the failure was not written again: the same object, its SyncToken moved only by
    # the payments applied to it
    assert not _rewritten(before, after)
    assert len(after) > len(before)
    # the failed execution stays failed; the resume ran in a new one
    assert [status for _, status in _executions(local_stack, firm_id)] == ["FAILED", "SUCCEEDED"]
    assert _executions(local_stack, firm_id)[1][0] == f"{run_id}-r2"


def _mid_invoices(platform: Platform, run_id: str, deadline: float) -> dict[str, Any]:
    """The first "Initial Sync Progress" of the run that shows the invoices phase with chunks counted and
    records remaining."""
    seen = 0
    while True:
        for envelope in platform.received[seen:]:
            detail = envelope["detail"]
            if envelope["detail-type"] == "Initial Sync Progress" and detail.get("run_id") == run_id:
                invoices = _phases(detail)["invoices"]
                if detail["status"] == "running" and invoices["done"] and invoices["remaining"]:
                    return detail
        seen = len(platform.received)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the invoices phase was never seen half done")
        platform.received.extend(platform.capture.receive(wait_seconds=max(1, min(5, int(remaining)))))


def _stopped(platform: Platform, sfn: Any, execution_arn: str, deadline: float) -> str:
    """The execution's status once it is no longer RUNNING (moto reports ABORTED once the task that was
    running has returned); between looks, a long poll of the platform's subscription (its events are kept)."""
    while (status := sfn.describe_execution(executionArn=execution_arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not stop"
        platform.received.extend(platform.capture.receive(wait_seconds=1))
    return status


def test_an_execution_stopped_mid_phase_resumes_where_it_was_without_rewriting(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, platform: Platform
) -> None:
    """The operator stops the execution through the Step Functions API while invoices are half written (the
    chunks that are running finish, the others never start); an admin resumes the run: it finishes, and
    nothing written before the stop is written again."""
    # five chunks of invoices (90 x 4, 40): two run at a time, the stop comes after the first is counted
    sample = generate(firm_id, n_accounts=8, n_invoices=400)
    run_id, _ = _planned(local_stack, qbo_sim, qbo_company, firm_id, platform, sample)
    owner = admin_jwt(local_stack, firm_id)
    assert admin_api(local_stack, owner, "POST", f"/initial-sync/{run_id}/approve").status_code == 200
    _mid_invoices(platform, run_id, time.monotonic() + DEADLINE)

    sfn = clients(local_stack.endpoint_url, local_stack.region)["stepfunctions"]
    arn = local_stack.resources.ref("InitialSyncStateMachine")
    running = [
        e["executionArn"]
        for e in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING", maxResults=1000)[
            "executions"
        ]
        if firm_id in sfn.describe_execution(executionArn=e["executionArn"])["input"]
    ]
    assert len(running) == 1, running
    sfn.stop_execution(executionArn=running[0], error="Operator.Stopped", cause="maintenance")
    assert _stopped(platform, sfn, running[0], time.monotonic() + DEADLINE) == "ABORTED"

    view = admin_api(local_stack, owner, "GET", "/initial-sync").json()
    phases = _phases(view)
    # the run is where the stop left it: mid-phase
    assert view["status"] == "running" and phases["services"]["status"] == "completed", view
    assert phases["invoices"]["done"] > 0 and phases["invoices"]["remaining"] > 0, phases["invoices"]
    before = _written(qbo_sim, qbo_company)
    assert sum(1 for entity, _ in before if entity == "Invoice") > 0
    _no_duplicates(qbo_sim, qbo_company)

    admin = admin_jwt(local_stack, firm_id, role="admin", user_id="u-admin")
    resumed = admin_api(local_stack, admin, "POST", f"/initial-sync/{run_id}/resume")
    assert resumed.status_code == 200, resumed.text
    _wait_status(platform, run_id, "completed")

    _assert_completed_once(local_stack, qbo_sim, qbo_company, owner, sample)
    assert not _rewritten(before, _written(qbo_sim, qbo_company))
    assert [status for _, status in _executions(local_stack, firm_id)] == ["ABORTED", "SUCCEEDED"]
