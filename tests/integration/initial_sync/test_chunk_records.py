"""What a run's chunks do to the records they cannot write and the records they link, and what a phase
announces when it starts: the InitialSyncFunction handler in-process (plan, chunk and phase_done steps, as the
state machine calls them) on moto + the simulator, the run item moved to each step's state through its
repository (the state machine itself runs in tests/e2e).

- a snapshot line that does not parse, with a readable record id: its record is failed with ONE open
  error-center entry (``invalid_in_snapshot``, naming the field, never its value), announced; a chunk that
  runs again does not add a second entry or attempt; the platform's next event for the record syncs it and
  resolves the entry;
- the firm admin finds that error in ``GET /errors`` (the admin API's handler in-process);
- a line without a readable id: a finding of the plan only (``invalid_in_snapshot_no_id``);
- a linked record (an existing same-name customer adopted) is announced "Sync Status Changed" synced;
- each phase is announced ``started`` once (done 0, remaining = planned), an empty one too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from qbsync import vocab, wiring
from qbsync.initial_sync.runs import run_id_for
from qbsync.models.record_key import RecordKey
from qbsync.repositories.initial_sync import AWAITING_APPROVAL, WAITING_FOR_SNAPSHOT, InitialSyncRuns, RunRef
from qbsync.repositories.records import SYNCED

from local.qbo_sim.client import SimAccountant
from local.stack.provision import Resources, clients
from tests.fixtures.events import EventCapture
from tests.fixtures.lambda_runtime import LambdaContext, load_function
from tests.integration.api.conftest import AdminApi
from tests.integration.entity_sync.conftest import (
    PLATFORM_EVENTS,
    SyncStack,
    new_firm,
    platform_event,
)

HANDLER = load_function("initial_sync", prefix="isc")
EVENTS = ("Sync Status Changed", "Sync Error Raised", "Initial Sync Progress")
SECRET = "beta-secret@example.com"  # a value of the bad line: it must show nowhere


@pytest.fixture
def stack(
    aws_clean: Resources,
    function_env: Any,
    intuit_app_secret: Any,
    qbo_sim: Any,
    qbo_company: str,
    qbsync_events: Callable[..., EventCapture],
) -> Iterator[SyncStack]:
    env = function_env("InitialSyncFunction")
    wiring.reset()
    s = SyncStack(aws_clean, qbo_sim, qbo_company, intuit_app_secret.client_id, env, qbsync_events(*EVENTS))
    s.requeued()
    s.captured.drain()
    yield s
    wiring.reset()
    for realm in s.made:
        qbo_sim.control.delete_company(realm)


def _data(sample: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((PLATFORM_EVENTS / f"{sample}.json").read_text())["detail"]["data"]
    data.update(copy.deepcopy(changes))
    return data


def _account(account_id: str, name: str, **changes: Any) -> dict[str, Any]:
    return _data("client_account_created", id=account_id, name=name, contact_ids=[], **changes)


class Run:
    """One run of a firm driven step by step (what the state machine does between the steps is done on the
    run item through its repository)."""

    def __init__(self, stack: SyncStack, firm_id: str, event_id: str = "evt-1") -> None:
        self.stack = stack
        connection = stack.connections().get(firm_id)
        assert connection is not None
        stack.set_settings(firm_id, sync_accounts="all")  # accounts without activity sync too
        self.ref = RunRef(firm_id, connection.realm_id, run_id_for(firm_id, connection.realm_id, event_id))
        self.runs = InitialSyncRuns(stack.sync_table)
        self.s3 = clients(stack.resources.endpoint_url, stack.resources.region)["s3"]
        self.bucket = stack.env["SNAPSHOT_BUCKET_NAME"]
        self.keys: dict[str, str] = {}

    def step(self, step: str, **more: Any) -> dict[str, Any]:
        return HANDLER.lambda_handler({"step": step, "run": self.ref.as_dict(), **more}, LambdaContext())

    def snapshot(self, files: dict[str, list[str]], *, preflight: bool = False) -> None:
        """Export ``files`` (record type → raw lines) as the run's snapshot and plan it; approved.
        ``preflight``: the pre-flight check runs first (its findings shape the plan)."""
        firm, run = self.ref.firm_id, self.ref.run_id
        now = time.time()
        self.runs.begin(self.ref, trigger="connected", execution_arn=f"arn:exec:{run}", now=now)
        if preflight:
            self.step("preflight")
        self.runs.wait_for(self.ref, what="snapshot", token="t-snap", status=WAITING_FOR_SNAPSHOT, now=now)
        prefix = f"snapshots/{firm}/{run}/"
        entries = []
        for record_type, lines in files.items():
            body = "".join(line + "\n" for line in lines).encode()
            key = f"{prefix}{record_type}.jsonl"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            sha = hashlib.sha256(body).hexdigest()
            entries.append({"record_type": record_type, "key": key, "count": len(lines), "sha256": sha})
        manifest = {
            "format": "qbsync.snapshot/1",
            "firm_id": firm,
            "run_id": run,
            "snapshot_id": f"snap-{run[3:]}",
            "exported_at": "2026-03-02T10:00:00Z",
            "files": entries,
        }
        self.s3.put_object(
            Bucket=self.bucket, Key=f"{prefix}manifest.json", Body=json.dumps(manifest).encode()
        )
        self.runs.snapshot_ready(
            self.ref, manifest_key=f"{prefix}manifest.json", snapshot_id=manifest["snapshot_id"], now=now
        )
        self.keys = self.step("plan")["keys"]
        self.runs.wait_for(self.ref, what="approval", token="t-ok", status=AWAITING_APPROVAL, now=now)
        self.runs.approve(self.ref, by="owner-1", auto=False, now=now)

    def chunks(self, phase: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=self.keys[phase])["Body"].read()
        return json.loads(body)

    def phase(self, phase: str) -> None:
        """Every chunk of ``phase``, then its end."""
        for chunk in self.chunks(phase):
            self.step("chunk", chunk=chunk)
        self.step("phase_done", phase=phase)

    def item(self) -> Any:
        run = self.runs.get(self.ref)
        assert run is not None
        return run


def _line(data: dict[str, Any], version: int = 1) -> str:
    return json.dumps({"version": version, "data": data})


def _published(stack: SyncStack, detail_type: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e["detail"]
        for e in stack.captured.drain()
        if e["detail-type"] == detail_type and all(e["detail"].get(k) == v for k, v in match.items())
    ]


def _events(stack: SyncStack) -> list[tuple[str, dict[str, Any]]]:
    return [(e["detail-type"], e["detail"]) for e in stack.captured.drain()]


def test_a_bad_line_fails_its_record_with_one_open_error_until_its_next_event_syncs_it(stack) -> None:
    firm = new_firm()
    stack.connect(firm)
    run = Run(stack, firm)
    bad = _account("acct-b", "Beta Books", email=[SECRET])  # a list where a string goes
    run.snapshot(
        {
            "client_account": [
                _line(_account("acct-a", "Alpha Audit")),
                _line(bad, version=2),
                "{not json",
            ]
        }
    )
    findings = {f["code"]: f for f in run.item().plan["findings"]}
    assert findings["invalid_in_snapshot"]["count"] == 1
    assert findings["invalid_in_snapshot"]["examples"] == ["acct-b"]
    assert findings["invalid_in_snapshot_no_id"]["count"] == 1
    assert findings["invalid_in_snapshot_no_id"]["examples"] == []
    assert "fix" in findings["invalid_in_snapshot_no_id"]
    [chunk] = run.chunks("customers")

    # the first time the chunk runs, another worker holds acct-a: the chunk is retried (InitialSyncRetry)
    # after the bad line failed its record
    holder = stack.records.claim(
        _key(run, "acct-a"),
        version=1,
        owner="another-worker",
        lease_seconds=300,
        now=time.time(),
    )
    with pytest.raises(HANDLER.InitialSyncRetry):
        run.step("chunk", chunk=chunk)
    stack.records.release(_key(run, "acct-a"), owner="another-worker", status="not_synced", now=time.time())
    assert holder.record.status == "syncing"
    run.step("chunk", chunk=chunk)  # the retry: counted now

    entry = stack.errors.current(firm, "client_account", "acct-b")
    assert entry is not None and entry.status == "open"
    assert entry.code == "invalid_in_snapshot" and entry.category == "Accounts"
    assert entry.attempts == 1  # the retried chunk did not record the line again
    assert "data.email" in entry.explanation
    assert "platform" in entry.fix
    assert SECRET not in json.dumps([entry.message, entry.explanation, entry.fix, entry.title])
    record = stack.records.get(_key(run, "acct-b"))
    assert record is not None and record.status == "failed" and record.error_open
    published = _events(stack)
    raised = [d for t, d in published if t == "Sync Error Raised" and d.get("platform_id") == "acct-b"]
    assert len(raised) == 1 and raised[0]["error_id"] == entry.error_id
    assert raised[0]["category"] == "Accounts"
    failed = [d for t, d in published if t == "Sync Status Changed" and d.get("platform_id") == "acct-b"]
    # announced by each run of the chunk (a repeat may replace a lost one), always with the one entry
    assert [(d["status"], d["error_id"]) for d in failed] == [("failed", entry.error_id)] * 2
    assert SECRET not in json.dumps(published)
    customers = run.item().phases["customers"]
    assert (int(customers["done"]), int(customers["failed"])) == (1, 2)

    # the platform's corrected record comes as an event: synced normally, the error resolved
    corrected = platform_event("client_account_updated", firm)
    corrected["detail"].update(version=3, data=_account("acct-b", "Beta Books"))
    stack.deliver_until_drained(corrected)
    synced = stack.records.get(_key(run, "acct-b"))
    assert synced is not None and synced.status == SYNCED and synced.qbo_id
    assert stack.errors.current(firm, "client_account", "acct-b") is None
    closed = stack.errors.get(firm, entry.error_id)
    assert closed is not None and closed.status == "resolved"


def test_the_same_bad_line_in_a_later_run_keeps_one_open_error(stack) -> None:
    firm = new_firm()
    stack.connect(firm)
    bad = _line(_account("acct-b", "Beta Books", email=[SECRET]), version=2)
    for event_id in ("evt-1", "evt-2"):  # e.g. a reconnect that starts a second run over the same history
        run = Run(stack, firm, event_id)
        run.snapshot({"client_account": [bad]})
        run.phase("customers")
        assert int(run.item().phases["customers"]["failed"]) == 1
    entry = stack.errors.current(firm, "client_account", "acct-b")
    assert entry is not None and entry.status == "open" and entry.attempts == 1
    raised = _published(stack, "Sync Error Raised", platform_id="acct-b")
    assert len(raised) == 1


def test_the_firm_admin_finds_the_bad_line_in_the_error_list(stack, function_env) -> None:
    firm = new_firm()
    stack.connect(firm)
    run = Run(stack, firm)
    run.snapshot({"client_account": [_line(_account("acct-b", "Beta Books", email=[SECRET]), version=2)]})
    run.phase("customers")
    env = function_env("AdminApiFunction")
    wiring.reset()
    admin = AdminApi(stack.resources, stack.sim, stack.realm_id, stack.client_id, env)
    page = admin.call("GET", "/errors", firm_id=firm, role="staff")
    assert page.status == 200
    [listed] = page.json()["errors"]
    assert (listed["platform_id"], listed["code"], listed["category"]) == (
        "acct-b",
        "invalid_in_snapshot",
        "Accounts",
    )
    assert listed["status"] == "open"
    one = admin.call("GET", f"/errors/{listed['error_id']}", firm_id=firm, role="staff")
    assert one.status == 200 and "platform" in one.json()["fix"]
    assert SECRET not in page.body + one.body


def test_a_linked_customer_is_announced_synced(stack) -> None:
    firm = new_firm()
    stack.connect(firm)
    run = Run(stack, firm)
    customer = SimAccountant.sign_in(stack.sim.control, run.ref.realm_id).create(
        "Customer", {"DisplayName": "Gamma Group"}
    )
    run.snapshot(
        {"client_account": [_line(_account("acct-g", "gamma  group")), _line(_account("acct-h", "Hotel"))]}
    )
    [chunk] = run.chunks("customers")
    lines = json.loads(run.s3.get_object(Bucket=run.bucket, Key=chunk["key"])["Body"].read())["lines"]
    assert [ln["action"] for ln in lines] == ["link", "create"]
    run.step("chunk", chunk=chunk)
    [status] = _published(stack, "Sync Status Changed", platform_id="acct-g")
    assert status["status"] == "synced" and status["qbo_id"] == customer["Id"]
    assert status["entity_type"] == "ClientAccount" and status["correlation_id"] == run.ref.run_id
    assert len(stack.entities("Customer")) == 2  # acct-g linked, not created; acct-h created


def test_services_billed_on_the_sales_item_are_linked_to_it_with_its_note(stack) -> None:
    """No service income account and no "Uncategorized Income": the plan links each new service to QuickBooks'
    "Sales" item as the outbound sync would, and the record keeps the note the drift comparisons read."""
    firm = new_firm()
    stack.connect(firm)
    run = Run(stack, firm)
    realm = run.ref.realm_id
    [income] = [
        a for a in stack.sim.control.entities(realm, "Account") if a["Name"] == "Uncategorized Income"
    ]
    SimAccountant.sign_in(stack.sim.control, realm).update(
        "Account", {"Id": income["Id"], "SyncToken": income["SyncToken"], "Name": "Other Income (renamed)"}
    )
    [sales] = [i for i in stack.sim.control.entities(realm, "Item") if i["Name"] == "Sales"]
    items_before = len(stack.sim.control.entities(realm, "Item"))
    service = _data("service_created", id="svc-s", name="Bookkeeping")
    run.snapshot({"service": [_line(service)]}, preflight=True)
    [chunk] = run.chunks("services")
    [line] = json.loads(run.s3.get_object(Bucket=run.bucket, Key=chunk["key"])["Body"].read())["lines"]
    assert (line["action"], line["target_qbo_id"], line["note"]) == (
        "link",
        sales["Id"],
        vocab.SALES_ITEM_NOTE,
    )
    assert line["reason"].startswith("services_use_sales_item:")

    run.step("chunk", chunk=chunk)
    record = stack.records.get(RecordKey(firm, realm, "service", "svc-s"))
    assert record is not None and record.status == SYNCED
    assert (record.qbo_entity, record.qbo_id, record.note) == ("Item", sales["Id"], vocab.SALES_ITEM_NOTE)
    assert len(stack.sim.control.entities(realm, "Item")) == items_before  # nothing created
    [status] = _published(stack, "Sync Status Changed", platform_id="svc-s")
    assert status["status"] == "synced" and status["qbo_id"] == sales["Id"]


def test_a_link_is_announced_again_when_its_chunk_runs_again(stack) -> None:
    firm = new_firm()
    stack.connect(firm)
    run = Run(stack, firm)
    SimAccountant.sign_in(stack.sim.control, run.ref.realm_id).create(
        "Customer", {"DisplayName": "Gamma Group"}
    )
    run.snapshot(
        {"client_account": [_line(_account("acct-g", "Gamma Group")), _line(_account("acct-h", "Hotel"))]}
    )
    [chunk] = run.chunks("customers")
    stack.records.claim(
        _key(run, "acct-h"), version=1, owner="another-worker", lease_seconds=300, now=time.time()
    )
    with pytest.raises(HANDLER.InitialSyncRetry):  # acct-h is held: the chunk runs again
        run.step("chunk", chunk=chunk)
    stack.records.release(_key(run, "acct-h"), owner="another-worker", status="not_synced", now=time.time())
    run.step("chunk", chunk=chunk)
    statuses = _published(stack, "Sync Status Changed", platform_id="acct-g")
    assert [d["status"] for d in statuses] == ["synced", "synced"]  # the repeat may replace a lost one
    assert len({d["qbo_id"] for d in statuses}) == 1
    assert len(stack.entities("Customer")) == 2


def test_each_phase_is_announced_started_once_before_its_chunks_count(stack) -> None:
    firm = new_firm()
    stack.connect(firm)
    run = Run(stack, firm)
    run.snapshot({"client_account": [_line(_account("acct-a", "Alpha Audit"))]})
    run.phase("services")  # nothing planned
    [chunk] = run.chunks("customers")
    run.step("chunk", chunk=chunk)
    run.step("chunk", chunk=chunk)  # a redelivered chunk starts nothing again
    run.step("phase_done", phase="customers")
    progress = _published(stack, "Initial Sync Progress")
    by = {(p["current_phase"], p.get("phase_status")): p for p in progress}
    started = [p for p in progress if p.get("phase_status") == "started"]
    assert sorted(p["current_phase"] for p in started) == ["customers", "services"]
    customers = next(f for f in by[("customers", "started")]["phases"] if f["phase"] == "customers")
    assert customers["status"] == "running"
    assert (customers["done"], customers["remaining"], customers["planned"]) == (0, 1, 1)
    counted = next(f for f in by[("customers", "running")]["phases"] if f["phase"] == "customers")
    assert counted["done"] == 1
    assert ("customers", "completed") in by and ("services", "completed") in by


def _key(run: Run, account_id: str) -> RecordKey:
    return RecordKey(run.ref.firm_id, run.ref.realm_id, "client_account", account_id)
