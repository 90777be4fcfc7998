"""One firm's resync (qbsync.reconcile.resync): which steps run, a failing step does not stop the others, a
retryable failure is raised after every step, a sweep cut short continues in a new message, the pre-flight
check runs once a day."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from qbsync.errors import DataError, MalformedMessage, Throttled
from qbsync.models.messages import CatchUpRequest, parse_catch_up_message
from qbsync.models.preflight import PreflightResult, PreflightResultInvalid
from qbsync.reconcile.resync import PREFLIGHT_EVERY_SECONDS, DailyPreflight, FirmRun, Resync, SweepStep
from qbsync.reconcile.sweep import SweepCursor, SweepReport
from qbsync.repositories.connections import Connection
from qbsync.repositories.initial_sync import Run, RunRef
from qbsync.settings import SweepSettings

NOW = 1_800_000_000.0
#: the production staleness of a running initial sync (the settings' default)
STALE_AFTER_SECONDS = SweepSettings().initial_sync_stale_seconds


class _Connections:
    def __init__(self, status: str = "connected") -> None:
        self.status = status

    def get(self, firm_id: str) -> Connection:
        return Connection(firm_id=firm_id, realm_id="r1", status=self.status, tokens=None)


class _Step:
    def __init__(self, name: str, fails: Exception | None = None, cursor: SweepCursor | None = None) -> None:
        self.name, self.fails, self.cursor = name, fails, cursor
        self.runs: list[FirmRun] = []

    def run(self, firm: FirmRun) -> dict[str, Any]:
        self.runs.append(firm)
        if self.fails is not None:
            raise self.fails
        if self.cursor is not None:
            firm.sweep_cursor = self.cursor
        return {"done": 1}


class _Queue:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_many(self, messages: Iterable[Any]) -> None:
        self.sent.extend(messages)


def _request(reason: str = "scheduled", **more: Any) -> CatchUpRequest:
    return CatchUpRequest(firm_id="f1", reason=reason, request_id="evt-1", **more)


def _steps(**fails: Exception) -> list[_Step]:
    return [_Step(n, fails.get(n)) for n in ("catch_up", "sweep", "preflight", "drift")]


@pytest.mark.parametrize(
    ("reason", "ran"),
    [
        ("scheduled", ["catch_up", "sweep", "preflight", "drift"]),
        ("on_demand", ["catch_up"]),
    ],
)
def test_the_reason_decides_the_steps(reason: str, ran: list[str]) -> None:
    steps = _steps()
    report = Resync(connections=_Connections(), steps=steps, continuations=_Queue()).run(_request(reason))
    assert [s.name for s in steps if s.runs] == ran == list(report.steps)


def test_a_continued_request_runs_the_sweep_from_its_cursor() -> None:
    steps = _steps()
    after = {
        "pk": "FIRM#f1#REALM#r1",
        "sk": "REC#invoice#i",
        "gsi2pk": "FIRM#f1#REALM#r1#STATUS#x",
        "gsi2sk": "a",
    }
    request = _request("continued", sweep_status="not_synced", sweep_after=after)
    Resync(connections=_Connections(), steps=steps, continuations=_Queue()).run(request)
    (sweep,) = [s for s in steps if s.runs]
    assert sweep.name == "sweep" and sweep.runs[0].sweep_from == SweepCursor("not_synced", after)


def test_a_failing_step_does_not_stop_the_others_and_a_retryable_one_is_raised_after_them() -> None:
    steps = _steps(catch_up=Throttled("slow down"), preflight=DataError("refused"))
    with pytest.raises(Throttled):
        Resync(connections=_Connections(), steps=steps, continuations=_Queue()).run(_request())
    assert all(s.runs for s in steps)


def test_a_non_retryable_step_failure_is_reported_and_the_message_consumed() -> None:
    steps = _steps(preflight=DataError("refused"))
    report = Resync(connections=_Connections(), steps=steps, continuations=_Queue()).run(_request())
    assert report.failed == {"preflight": DataError.code} and set(report.steps) == {
        "catch_up",
        "sweep",
        "drift",
    }


def test_a_firm_that_is_not_connected_runs_nothing() -> None:
    steps = _steps()
    report = Resync(connections=_Connections("needs_reconnect"), steps=steps, continuations=_Queue()).run(
        _request()
    )
    assert report.status == "not_connected" and not any(s.runs for s in steps)


def test_a_sweep_cut_short_continues_in_a_message_of_the_same_firm() -> None:
    after = {
        "pk": "FIRM#f1#REALM#r1",
        "sk": "REC#invoice#i",
        "gsi2pk": "FIRM#f1#REALM#r1#STATUS#b",
        "gsi2sk": "z",
    }
    queue = _Queue()
    steps = [_Step("sweep", cursor=SweepCursor("blocked", after))]
    report = Resync(connections=_Connections(), steps=steps, continuations=queue).run(_request())
    (message,) = queue.sent
    assert report.continued
    continued = parse_catch_up_message(message.body_text())
    assert (continued.firm_id, continued.reason, continued.sweep_status) == ("f1", "continued", "blocked")
    assert continued.sweep_after == after


def test_a_continuation_must_point_at_the_firms_own_items() -> None:
    other = {"pk": "FIRM#f2#REALM#r", "sk": "REC#x#y", "gsi2pk": "FIRM#f2#REALM#r#STATUS#b", "gsi2sk": "z"}
    body = json.loads(_request("continued", sweep_status="blocked", sweep_after=other).body())
    with pytest.raises(MalformedMessage, match="not a key of the firm's items") as err:
        parse_catch_up_message(body)
    assert "f2" not in err.value.message
    own = {**body, "sweep_after": {**other, "pk": "FIRM#f1#REALM#r", "gsi2pk": "FIRM#f1#REALM#r#STATUS#b"}}
    assert parse_catch_up_message(own).sweep_status == "blocked"
    with pytest.raises(MalformedMessage, match="sweep_status is given exactly when"):
        parse_catch_up_message({**own, "reason": "scheduled"})


# ---------------------------------------------------------------------------------------------- pre-flight


def _result(at: float) -> PreflightResult:
    return PreflightResult(
        realm_id="r1",
        checked_at=datetime.fromtimestamp(at, UTC),
        company_name=None,
        findings=(),
        books_closed_on=None,
        multicurrency=False,
        home_currency=None,
    )


class _Results:
    def __init__(self, latest: PreflightResult | Exception | None) -> None:
        self._latest, self.saved = latest, []

    def latest(self, firm_id: str, realm_id: str) -> PreflightResult | None:
        if isinstance(self._latest, Exception):
            raise self._latest
        return self._latest

    def save(self, firm_id: str, result: PreflightResult) -> None:
        self.saved.append(result)


class _Check:
    def __init__(self) -> None:
        self.runs = 0

    def run(self, qbo: Any, settings: Any) -> PreflightResult:
        self.runs += 1
        return _result(NOW)


class _Clients:
    def qbo_for(self, firm_id: str, realm_id: str) -> Any:
        return object()


class _Settings:
    def get(self, firm_id: str) -> Any:
        return object()


@pytest.mark.parametrize(
    ("latest", "runs"),
    [
        (None, 1),
        (_result(NOW - PREFLIGHT_EVERY_SECONDS), 1),
        (_result(NOW - PREFLIGHT_EVERY_SECONDS + 60), 0),  # checked today
        (PreflightResultInvalid("unreadable"), 1),
    ],
)
def test_the_preflight_check_runs_at_most_once_a_day(latest: Any, runs: int) -> None:
    check, results = _Check(), _Results(latest)
    step = DailyPreflight(
        preflight=check, results=results, realm_clients=_Clients(), settings=_Settings(), clock=lambda: NOW
    )
    counts = step.run(FirmRun("f1", "r1", "evt-1", "scheduled"))
    assert check.runs == runs == len(results.saved) == counts["ran"]


class _Sweep:
    def __init__(self) -> None:
        self.runs: list[str] = []

    def run(self, firm_id: str, realm_id: str, request_id: str, *, start: Any) -> SweepReport:
        self.runs.append(firm_id)
        return SweepReport(examined=3, sent={"missed_release": 1}, pages=1)


class _InitialSyncs:
    def __init__(self, run: Run | None) -> None:
        self.run = run

    def latest(self, firm_id: str) -> Run | None:
        return self.run


def _initial_sync(status: str, realm_id: str = "r1", *, idle: float = 60.0) -> Run:
    return Run(RunRef("f1", realm_id, "run-1"), status, NOW - 7200, NOW - idle, "connected")


@pytest.mark.parametrize(
    ("latest", "swept"),
    [
        (None, True),
        (_initial_sync("running"), False),  # its chunks run their own records again, in batch calls
        (_initial_sync("running", realm_id="r0"), True),  # a run on the firm's earlier company
        (_initial_sync("completed"), True),
        (_initial_sync("failed"), True),  # stopped until resumed: its records are not left waiting
        # 'running' but not moved for 90 minutes (an execution stopped without ending it): nothing waits on it
        (_initial_sync("running", idle=STALE_AFTER_SECONDS + 1), True),
    ],
)
def test_the_sweep_waits_while_the_firms_initial_sync_runs_on_its_company(
    latest: Run | None, swept: bool
) -> None:
    sweep = _Sweep()
    step = SweepStep(
        sweep,  # type: ignore[arg-type]
        _InitialSyncs(latest),
        clock=lambda: NOW,
        stale_after=STALE_AFTER_SECONDS,
    )
    counts = step.run(FirmRun(firm_id="f1", realm_id="r1", request_id="evt-1", reason="scheduled"))
    assert (sweep.runs == ["f1"]) is swept
    assert counts == (
        {"examined": 3, "pages": 1, "missed_release": 1} if swept else {"deferred": "initial_sync_running"}
    )


def test_the_initial_sync_staleness_is_the_configured_one() -> None:
    """SWEEP_INITIAL_SYNC_STALE_SECONDS decides when a 'running' initial sync stops deferring the sweep."""
    stale_after = SweepSettings.from_env(
        {"SWEEP_INITIAL_SYNC_STALE_SECONDS": "1200"}
    ).initial_sync_stale_seconds
    assert stale_after == 1200
    for idle, swept in ((1199.0, False), (1201.0, True)):
        sweep = _Sweep()
        step = SweepStep(
            sweep,  # type: ignore[arg-type]
            _InitialSyncs(_initial_sync("running", idle=idle)),
            clock=lambda: NOW,
            stale_after=stale_after,
        )
        step.run(FirmRun(firm_id="f1", realm_id="r1", request_id="evt-1", reason="scheduled"))
        assert (sweep.runs == ["f1"]) is swept
