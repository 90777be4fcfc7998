"""Initial-sync runs (PRODUCT.md F, docs/data-model.md "initial-sync run"): one item per run of a firm, realm.

A run is the initial sync of one firm's history into one QuickBooks company. Its Step Functions executions
come and go (a failed or stopped execution is started again and continues); the run item is what they share:

==================  =========================================================================================
attribute           meaning
==================  =========================================================================================
``pk`` / ``sk``     ``FIRM#{firm_id}#REALM#{realm_id}`` / ``INITSYNC#{run_id}``
``gsi2pk/gsi2sk``   ``INITSYNC#{status}`` / ``{started_at ISO}`` (runs by status: the stuck-run sweep)
``status``          ``waiting_for_snapshot`` → ``planning`` → ``awaiting_approval`` → ``running`` →
                    ``completed``; or ``failed`` (resumable), ``cancelled``, ``superseded`` (a company switch)
``execution_arn``   the execution that owns the run now (compare-and-set on every resume)
``waiting_for``     ``snapshot`` | ``approval`` while an execution waits, with its ``task_token``
``manifest_key``    the snapshot the run reads (``snapshot_id``), once the platform answered
``preflight``       the pre-flight findings (JSON), ``plan`` the dry-run plan's summary (JSON), ``plan_keys``
                    the chunk index object of each phase in the snapshot bucket
``phases``          phase -> counters ``planned``, ``done``, ``failed``, ``skipped``, ``blocked``,
                    ``changed``, ``retried`` and ``status``, ``started_at``, ``finished_at``
``chunks_done``     string set of ``{phase}:{index}``: a chunk's counters are added once, with its id
``chunk_error``     the last chunk that failed for good and why (``{phase}:{index}: reason``), until a resume
``current_phase``, ``approved_by``, ``approved_at``, ``auto_approved``, ``cancelled_by``, ``error``
==================  =========================================================================================

The firm's pointer ``FIRM#{firm_id}`` / ``INITSYNC`` names its latest run (``run_id``, ``realm_id``): what
``GET /initial-sync`` shows and what a company switch supersedes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qbsync import vocab
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict
from qbsync.repositories.connections import iso

__all__ = [
    "ACTIVE_STATUSES",
    "COUNTERS",
    "TERMINAL_STATUSES",
    "ChunkCounts",
    "InitialSyncRuns",
    "Run",
    "RunRef",
]

WAITING_FOR_SNAPSHOT = "waiting_for_snapshot"
PLANNING = "planning"
AWAITING_APPROVAL = "awaiting_approval"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
SUPERSEDED = "superseded"
RUN_STATUSES = (
    WAITING_FOR_SNAPSHOT,
    PLANNING,
    AWAITING_APPROVAL,
    RUNNING,
    COMPLETED,
    FAILED,
    CANCELLED,
    SUPERSEDED,
)
#: a run in one of these never runs again
TERMINAL_STATUSES = frozenset({COMPLETED, CANCELLED, SUPERSEDED})
#: a run an execution works on (or waits in)
ACTIVE_STATUSES = frozenset({WAITING_FOR_SNAPSHOT, PLANNING, AWAITING_APPROVAL, RUNNING})
#: the per-phase counters of a run
COUNTERS = ("planned", "done", "failed", "skipped", "blocked", "changed", "retried")


@dataclass(frozen=True)
class RunRef:
    """Which run: the firm, the QuickBooks company and the run id."""

    firm_id: str
    realm_id: str
    run_id: str

    def as_dict(self) -> dict[str, str]:
        return {"firm_id": self.firm_id, "realm_id": self.realm_id, "run_id": self.run_id}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> RunRef:
        try:
            ref = cls(str(value["firm_id"]), str(value["realm_id"]), str(value["run_id"]))
        except (KeyError, TypeError) as exc:
            raise ValueError("a run reference needs firm_id, realm_id and run_id") from exc
        for part in (ref.firm_id, ref.realm_id, ref.run_id):
            if not part or "#" in part:
                raise ValueError("run reference parts are non-empty ids without '#'")
        return ref


@dataclass(frozen=True)
class ChunkCounts:
    """What one chunk did, counted once (see :meth:`InitialSyncRuns.chunk_done`)."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    blocked: int = 0
    changed: int = 0
    retried: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS if name != "planned"}


@dataclass(frozen=True)
class Run:
    """One run item, read."""

    ref: RunRef
    status: str
    started_at: float
    updated_at: float
    trigger: str
    execution_arn: str | None = None
    waiting_for: str | None = None
    task_token: str | None = field(default=None, repr=False)
    manifest_key: str | None = None
    snapshot_id: str | None = None
    preflight: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    plan_keys: dict[str, str] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks_done: frozenset[str] = frozenset()
    current_phase: str | None = None
    approved_by: str | None = None
    approved_at: float | None = None
    auto_approved: bool = False
    cancelled_by: str | None = None
    error: str | None = None
    chunk_error: str | None = None
    executions: int = 1

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Run:
        def num(name: str) -> float | None:
            value = item.get(name)
            return None if value is None else float(value)

        def loads(name: str) -> dict[str, Any] | None:
            text = item.get(name)
            return json.loads(text) if isinstance(text, str) else None

        phases = {
            str(phase): {k: (int(v) if k in COUNTERS else v) for k, v in dict(counters).items()}
            for phase, counters in dict(item.get("phases") or {}).items()
        }
        return cls(
            ref=RunRef(item["firm_id"], item["realm_id"], item["run_id"]),
            status=item["status"],
            started_at=float(item["started_at"]),
            updated_at=float(item.get("updated_at", item["started_at"])),
            trigger=item.get("trigger", "connected"),
            execution_arn=item.get("execution_arn"),
            waiting_for=item.get("waiting_for"),
            task_token=item.get("task_token"),
            manifest_key=item.get("manifest_key"),
            snapshot_id=item.get("snapshot_id"),
            preflight=loads("preflight"),
            plan=loads("plan"),
            plan_keys=dict(item.get("plan_keys") or {}),
            phases=phases,
            chunks_done=frozenset(item.get("chunks_done") or ()),
            current_phase=item.get("current_phase"),
            approved_by=item.get("approved_by"),
            approved_at=num("approved_at"),
            auto_approved=bool(item.get("auto_approved", False)),
            cancelled_by=item.get("cancelled_by"),
            error=item.get("error"),
            chunk_error=item.get("chunk_error"),
            executions=int(item.get("executions", 1)),
        )


def _key(ref: RunRef) -> dict[str, str]:
    return {"pk": f"FIRM#{ref.firm_id}#REALM#{ref.realm_id}", "sk": f"INITSYNC#{ref.run_id}"}


def _pointer(firm_id: str) -> dict[str, str]:
    return {"pk": f"FIRM#{firm_id}", "sk": "INITSYNC"}


class InitialSyncRuns:
    """The run items and the firm's pointer to its latest run (module doc)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    # ------------------------------------------------------------------ reads

    def get(self, ref: RunRef) -> Run | None:
        item = self._table.get(_key(ref), consistent=True)
        return Run.from_item(item) if item else None

    def latest(self, firm_id: str) -> Run | None:
        """The firm's latest run (the pointer's), or None when it never had one."""
        pointer = self._table.get(_pointer(firm_id), consistent=True)
        if not pointer:
            return None
        return self.get(RunRef(firm_id, pointer["realm_id"], pointer["run_id"]))

    # ------------------------------------------------------------------ lifecycle

    def begin(self, ref: RunRef, *, trigger: str, execution_arn: str, now: float) -> tuple[Run, bool]:
        """Create the run (``waiting_for_snapshot``, owned by ``execution_arn``) unless it exists.

        Returns the run and whether this call created it. The firm's pointer is moved to the run either way
        only when it was created."""
        item = {
            **_key(ref),
            **ref.as_dict(),
            "status": WAITING_FOR_SNAPSHOT,
            "gsi2pk": f"INITSYNC#{WAITING_FOR_SNAPSHOT}",
            "gsi2sk": iso(now),
            "trigger": trigger,
            "execution_arn": execution_arn,
            "executions": 1,
            "started_at": int(now),
            "updated_at": int(now),
            "phases": {
                p: {**dict.fromkeys(COUNTERS, 0), "status": "pending"} for p in vocab.INITIAL_SYNC_PHASES
            },
        }
        try:
            self._table.put_new(item)
        except Conflict:
            existing = self.get(ref)
            if existing is None:  # deleted in between: nothing sane to do but try once more
                raise
            return existing, False
        self._table.put({**_pointer(ref.firm_id), "run_id": ref.run_id, "realm_id": ref.realm_id})
        return Run.from_item(item), True

    def take_over(self, ref: RunRef, *, execution_arn: str, previous_arn: str | None, now: float) -> Run:
        """A new execution of an existing run (a resume) becomes its owner, if the run still names the
        execution the caller saw. Raises Conflict otherwise (another resume won)."""
        condition = "execution_arn = :prev" if previous_arn else "attribute_not_exists(execution_arn)"
        values: dict[str, Any] = {":arn": execution_arn, ":now": int(now), ":one": 1}
        if previous_arn:
            values[":prev"] = previous_arn
        item = self._table.update(
            _key(ref),
            update="SET execution_arn = :arn, updated_at = :now ADD executions :one",
            condition=condition,
            values=values,
        )
        return Run.from_item(item)

    def wait_for(self, ref: RunRef, *, what: str, token: str, status: str, now: float) -> Run:
        """The execution waits for ``what`` (``snapshot`` | ``approval``) with its task token."""
        return self._set_status(
            ref,
            status,
            now,
            extra="waiting_for = :what, task_token = :token",
            values={":what": what, ":token": token},
        )

    def snapshot_ready(self, ref: RunRef, *, manifest_key: str, snapshot_id: str, now: float) -> Run:
        """The platform's snapshot arrived: returns the run as it was (its token resumes the execution).
        Raises Conflict when the run is not waiting for one (a repeat, or a run that moved on)."""
        item = self._table.update(
            _key(ref),
            update=(
                "SET manifest_key = :key, snapshot_id = :sid, updated_at = :now, #s = :planning, gsi2pk = :g "
                "REMOVE waiting_for, task_token"
            ),
            condition="waiting_for = :snapshot AND #s = :waiting",
            names={"#s": "status"},
            values={
                ":key": manifest_key,
                ":sid": snapshot_id,
                ":now": int(now),
                ":planning": PLANNING,
                ":g": f"INITSYNC#{PLANNING}",
                ":snapshot": "snapshot",
                ":waiting": WAITING_FOR_SNAPSHOT,
            },
            return_values="ALL_OLD",
        )
        return Run.from_item(item)

    def save_preflight(self, ref: RunRef, findings: Mapping[str, Any], *, now: float) -> None:
        self._table.update(
            _key(ref),
            update="SET preflight = :p, updated_at = :now",
            condition="attribute_exists(pk)",
            values={":p": json.dumps(findings, separators=(",", ":")), ":now": int(now)},
        )

    def save_plan(
        self,
        ref: RunRef,
        *,
        summary: Mapping[str, Any],
        keys: Mapping[str, str],
        planned: Mapping[str, int],
        now: float,
    ) -> Run:
        """Store the plan's summary, each phase's chunk index and planned count (still ``planning``: the run
        awaits approval once its execution waits with a token, :meth:`wait_for`)."""
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":plan": json.dumps(summary, separators=(",", ":")),
            ":keys": dict(keys),
            ":now": int(now),
            ":st": PLANNING,
            ":g": f"INITSYNC#{PLANNING}",
        }
        sets = ["#plan = :plan", "plan_keys = :keys", "updated_at = :now", "#s = :st", "gsi2pk = :g"]
        names["#plan"] = "plan"
        for i, phase in enumerate(vocab.INITIAL_SYNC_PHASES):
            names[f"#p{i}"] = phase
            values[f":n{i}"] = int(planned.get(phase, 0))
            sets.append(f"phases.#p{i}.planned = :n{i}")
        item = self._table.update(
            _key(ref),
            update="SET " + ", ".join(sets),
            condition="attribute_exists(pk)",
            names=names,
            values=values,
        )
        return Run.from_item(item)

    def approve(self, ref: RunRef, *, by: str, auto: bool, now: float) -> Run:
        """``awaiting_approval`` → ``running``; returns the run as it was (its token resumes the execution).
        Raises Conflict when the run is not awaiting approval."""
        item = self._table.update(
            _key(ref),
            update=(
                "SET approved_by = :by, approved_at = :now, auto_approved = :auto, updated_at = :now, "
                "#s = :running, gsi2pk = :g REMOVE waiting_for, task_token"
            ),
            condition="#s = :awaiting",
            names={"#s": "status"},
            values={
                ":by": by,
                ":now": int(now),
                ":auto": auto,
                ":running": RUNNING,
                ":g": f"INITSYNC#{RUNNING}",
                ":awaiting": AWAITING_APPROVAL,
            },
            return_values="ALL_OLD",
        )
        return Run.from_item(item)

    def end(
        self, ref: RunRef, *, status: str, now: float, by: str | None = None, error: str | None = None
    ) -> Run:
        """Move a run that is not terminal to ``status`` (completed, failed, cancelled, superseded); returns
        the run as it was. Raises Conflict when it is terminal already."""
        if status not in (COMPLETED, FAILED, CANCELLED, SUPERSEDED):
            raise ValueError(f"a run ends completed, failed, cancelled or superseded, not {status!r}")
        sets = "SET #s = :st, gsi2pk = :g, updated_at = :now"
        values: dict[str, Any] = {
            ":st": status,
            ":g": f"INITSYNC#{status}",
            ":now": int(now),
            ":t1": COMPLETED,
            ":t2": CANCELLED,
            ":t3": SUPERSEDED,
        }
        if by is not None:
            sets += ", cancelled_by = :by"
            values[":by"] = by
        if error is not None:
            sets += ", #e = :err"
            values[":err"] = error[:1000]
        item = self._table.update(
            _key(ref),
            update=sets + " REMOVE waiting_for, task_token",
            condition="attribute_exists(pk) AND NOT #s IN (:t1, :t2, :t3)",
            names={"#s": "status", **({"#e": "error"} if error is not None else {})},
            values=values,
            return_values="ALL_OLD",
        )
        return Run.from_item(item)

    def reopen(self, ref: RunRef, *, now: float) -> Run:
        """A ``failed`` run being resumed: back to the status its progress says (a resumed execution then
        continues where the run was). Raises Conflict when it is not failed."""
        run = self.get(ref)
        if run is None or run.status != FAILED:
            raise Conflict("only a failed run can be resumed")
        status = (
            RUNNING
            if run.approved_by
            else (AWAITING_APPROVAL if run.plan else (PLANNING if run.manifest_key else WAITING_FOR_SNAPSHOT))
        )
        return self._set_status(
            ref, status, now, extra="#e = :none, chunk_error = :none", values={":none": None}, expect=FAILED
        )

    def _set_status(
        self,
        ref: RunRef,
        status: str,
        now: float,
        *,
        extra: str = "",
        values: Mapping[str, Any] | None = None,
        expect: str | None = None,
    ) -> Run:
        names = {"#s": "status", **({"#e": "error"} if "#e" in extra else {})}
        vals: dict[str, Any] = {":st": status, ":g": f"INITSYNC#{status}", ":now": int(now), **(values or {})}
        condition = "attribute_exists(pk) AND NOT #s IN (:t1, :t2, :t3)"
        vals.update({":t1": COMPLETED, ":t2": CANCELLED, ":t3": SUPERSEDED})
        if expect is not None:
            condition += " AND #s = :expect"
            vals[":expect"] = expect
        update = "SET #s = :st, gsi2pk = :g, updated_at = :now" + (f", {extra}" if extra else "")
        item = self._table.update(_key(ref), update=update, condition=condition, names=names, values=vals)
        return Run.from_item(item)

    # ------------------------------------------------------------------ execution progress

    def phase(self, ref: RunRef, phase: str, *, status: str, now: float) -> Run:
        """A phase starts (``running``: it becomes the current phase) or ends (``completed``)."""
        if phase not in vocab.INITIAL_SYNC_PHASES or status not in ("running", "completed"):
            raise ValueError("unknown phase or phase status")
        stamp = "started_at" if status == "running" else "finished_at"
        sets = f"phases.#p.#st = :st, phases.#p.{stamp} = :now, updated_at = :now"
        if status == "running":
            sets += ", current_phase = :phase"
        item = self._table.update(
            _key(ref),
            update="SET " + sets,
            condition="attribute_exists(pk)",
            names={"#p": phase, "#st": "status"},
            values={":st": status, ":now": int(now), **({":phase": phase} if status == "running" else {})},
        )
        return Run.from_item(item)

    def start_phase(self, ref: RunRef, phase: str, *, now: float) -> Run | None:
        """The phase starts (``running``, the current phase), once: None when it started before (another
        chunk of it, an earlier execution of a resumed run) or ended already."""
        if phase not in vocab.INITIAL_SYNC_PHASES:
            raise ValueError("unknown phase")
        try:
            item = self._table.update(
                _key(ref),
                update="SET phases.#p.#st = :st, phases.#p.started_at = :now, updated_at = :now, "
                "current_phase = :phase",
                condition="attribute_exists(pk) AND (attribute_not_exists(phases.#p.#st) "
                "OR phases.#p.#st = :pending)",
                names={"#p": phase, "#st": "status"},
                values={":st": "running", ":pending": "pending", ":now": int(now), ":phase": phase},
            )
        except Conflict:
            return None
        return Run.from_item(item)

    def chunk_done(self, ref: RunRef, phase: str, index: int, counts: ChunkCounts, *, now: float) -> bool:
        """Add one chunk's counters to its phase, once: False when the chunk was counted before."""
        chunk_id = f"{phase}:{index}"
        names = {"#p": phase}
        values: dict[str, Any] = {":c": {chunk_id}, ":cid": chunk_id, ":now": int(now)}
        adds = ["chunks_done :c"]
        for name, value in counts.as_dict().items():
            names[f"#{name}"] = name
            values[f":{name}"] = int(value)
            adds.append(f"phases.#p.#{name} :{name}")
        try:
            self._table.update(
                _key(ref),
                update="SET updated_at = :now ADD " + ", ".join(adds),
                condition="attribute_exists(pk) AND NOT contains(chunks_done, :cid)",
                names=names,
                values=values,
                return_values="NONE",
            )
        except Conflict:
            return False
        return True

    def chunk_failed(self, ref: RunRef, phase: str, index: int, reason: str, *, now: float) -> None:
        """A chunk failed for good (no retry fixes it): the reason is kept for the run's ``error`` (the state
        machine's own error for a failed Map item says only that a threshold was exceeded). Nothing when the
        chunk was counted meanwhile."""
        chunk_id = f"{phase}:{index}"
        try:
            self._table.update(
                _key(ref),
                update="SET chunk_error = :e, updated_at = :now",
                condition="attribute_exists(pk) AND NOT contains(chunks_done, :cid)",
                values={":e": f"{chunk_id}: {reason}"[:1000], ":cid": chunk_id, ":now": int(now)},
                return_values="NONE",
            )
        except Conflict:
            return

    def runs_in(self, firm_id: str, realm_ids: Sequence[str]) -> list[Run]:
        """The firm's runs in these companies (a company switch looks for the old company's active run)."""
        runs: list[Run] = []
        for realm_id in realm_ids:
            items = self._table.query(
                key_condition="pk = :pk AND begins_with(sk, :sk)",
                values={":pk": f"FIRM#{firm_id}#REALM#{realm_id}", ":sk": "INITSYNC#"},
            )
            runs.extend(Run.from_item(i) for i in items)
        return runs
