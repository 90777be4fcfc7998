"""The per-realm limiter on in-process moto (the sync-state table of template.yaml), with a fake clock:
windows fill, callers wait for the next one, give up with Throttled past the wait bound; QboClient
asks it before every attempt."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Throttled
from qbsync.qbo.client import BatchOperation, QboClient
from qbsync.qbo.ratelimit import RateLimits, RealmRateLimiter
from qbsync.repositories.rate_windows import RateWindows, rate_key

from tests.unit.connection.support import create_table_from_template
from tests.unit.qbo.conftest import Canned, ScriptedAdapter

REALM = "9130350000000001"


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("dynamodb")


@pytest.fixture
def table(ddb: Any) -> DynamoTable:
    name = f"sync-state-{uuid.uuid4().hex[:12]}"
    create_table_from_template(ddb, "SyncStateTable", name)
    return DynamoTable(name, client=ddb)


def limiter(table: DynamoTable, t: FakeTime, **limits: Any) -> RealmRateLimiter:
    return RealmRateLimiter(
        RateWindows(table), RateLimits(**limits), clock=t.clock, sleep=t.sleep, jitter=lambda: 0.0
    )


def test_defaults_stay_under_intuits_sliding_limits() -> None:
    lim = RateLimits()
    # a sliding second overlaps ceil(1 / window) + 1 fixed windows
    windows_per_second = round(1 / lim.window_seconds) + 1
    assert windows_per_second * lim.per_window <= 10
    assert lim.per_window / lim.window_seconds * 60 < 500 and lim.per_minute < 500
    # a sliding minute overlaps at most batch_per_minute + 1 batch windows of one call each, and the calls
    # of the first and the last of them are more than 60 s apart: at most batch_per_minute + 1 <= 40 meet
    assert lim.batch_per_minute + 1 <= 40
    assert lim.batch_per_minute * 30 >= 0.9 * 40 * 30  # >= 90 % of the batch writes Intuit allows


MINUTE = 1_800_000_000 // 60  # 1_800_000_000 is a minute boundary


def test_a_full_short_window_waits_for_the_next(table: DynamoTable) -> None:
    t = FakeTime()
    rl = limiter(table, t)
    assert rl.acquire(REALM) == 0 and rl.acquire(REALM) == 0
    waited = rl.acquire(REALM)  # third request in the same 250 ms window
    assert waited == pytest.approx(0.25)
    assert t.sleeps == [pytest.approx(0.25)]
    item = table.get(rate_key(REALM, MINUTE))
    assert item is not None
    assert (item["count"], item["s0"], item["s1"]) == (3, 2, 1)
    assert item["ttl"] == (MINUTE + 1) * 60 + 3600


def test_realms_have_their_own_budget(table: DynamoTable) -> None:
    t = FakeTime()
    rl = limiter(table, t, per_window=1)
    rl.acquire(REALM)
    assert rl.acquire("other-realm") == 0
    assert not t.sleeps


def test_per_minute_budget_and_throttled_past_the_wait_bound(table: DynamoTable) -> None:
    t = FakeTime()
    rl = limiter(table, t, per_window=100, per_minute=5, max_wait=10)
    for _ in range(5):
        rl.acquire(REALM)
    with pytest.raises(Throttled) as err:
        rl.acquire(REALM)
    assert err.value.retry_after == pytest.approx(60.0)
    assert err.value.realm_id == REALM
    # the refused request counted nowhere: every window of one request is one conditional update
    item = table.get(rate_key(REALM, MINUTE))
    assert item is not None and (item["count"], item["s0"]) == (5, 5)
    # near the end of the minute the same caller waits instead
    t.now += 55
    assert rl.acquire(REALM) == pytest.approx(5.0)
    assert table.get(rate_key(REALM, MINUTE + 1))["count"] == 1


def test_batch_calls_have_their_own_minute_budget(table: DynamoTable) -> None:
    t = FakeTime()
    rl = limiter(table, t, per_window=100, batch_per_minute=2, max_wait=60)
    assert rl.acquire(REALM, is_batch=True) == 0
    # the second batch call of the minute waits for the next batch window (30 s windows at 2 a minute)
    assert rl.acquire(REALM, is_batch=True) == pytest.approx(30.0)
    with pytest.raises(Throttled) as err:  # the minute's 2 are used: the next minute, past the bound
        limiter(table, t, per_window=100, batch_per_minute=2, max_wait=1).acquire(REALM, is_batch=True)
    assert err.value.retry_after == pytest.approx(30.0)
    assert rl.acquire(REALM) == 0  # plain requests still go
    item = table.get(rate_key(REALM, MINUTE))
    assert item is not None and (item["count"], item["batch"], item["b0"], item["b1"]) == (3, 2, 1, 1)


def test_batch_calls_are_spaced_one_per_batch_window(table: DynamoTable) -> None:
    t = FakeTime()
    rl = limiter(table, t, per_window=100, max_wait=5)
    sent = [t.now + rl.acquire(REALM, is_batch=True) for _ in range(45)]
    # at most 40 (Intuit's limit) in any sliding 60 s, at the default 39 windows a minute
    assert max(sum(1 for s in sent if start <= s < start + 60) for start in sent) <= 40
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) > 0 and max(gaps) <= 60 / 39 + 1e-6
    assert sent[-1] - sent[0] == pytest.approx(44 * 60 / 39, abs=0.01)


def test_bad_limits_are_rejected() -> None:
    bad_values = ({"per_window": 0}, {"window_seconds": 0}, {"window_seconds": 0.7}, {"max_wait": -1})
    for bad in (*bad_values, {"per_minute": 1.5}):
        with pytest.raises(ValueError):
            RateLimits(**bad)


class Tokens:
    def access_token(self) -> str:
        return "tok"

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return "tok2"


class Recording:
    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.fail_at = fail_at

    def acquire(self, realm_id: str, *, is_batch: bool = False) -> float:
        self.calls.append((realm_id, is_batch))
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise Throttled("budget used up", realm_id=realm_id, retry_after=3.0)
        return 0.0


def _client(session: Any, limiter: Any) -> QboClient:
    return QboClient(
        base_url="https://qbo.test",
        realm_id=REALM,
        tokens=Tokens(),
        session=session,
        sleep=lambda s: None,
        jitter=lambda: 0.0,
        limiter=limiter,
    )


def test_client_takes_a_slot_before_every_attempt(session: Any, adapter: ScriptedAdapter) -> None:
    recording = Recording()
    adapter.queue(
        Canned(503, {"Fault": {"type": "SystemFault", "Error": [{"code": "10000", "Message": "x"}]}}),
        Canned(401, {"Fault": {"type": "AUTHENTICATION", "Error": [{"code": "3200", "Message": "x"}]}}),
        Canned(200, {"Invoice": {"Id": "1"}}),
        Canned(200, {"BatchItemResponse": [{"bId": "q", "QueryResponse": {"Item": []}}]}),
    )
    client = _client(session, recording)
    assert client.read("Invoice", "1") == {"Id": "1"}
    assert recording.calls == [(REALM, False)] * 3  # 503 retry and the 401 refresh each asked again
    client.batch([BatchOperation.select("q", "SELECT * FROM Item")], request_id="r-1")
    assert recording.calls[-1] == (REALM, True)
    assert len(adapter.requests) == 4


def test_a_limiter_refusal_is_raised_and_marks_a_maybe_applied_write(
    session: Any, adapter: ScriptedAdapter
) -> None:
    recording = Recording(fail_at=2)
    adapter.queue(Canned(502, "bad gateway"))
    client = _client(session, recording)
    with pytest.raises(Throttled) as err:
        client.create("Customer", {"DisplayName": "A"}, request_id="rid-1")
    assert err.value.retry_after == 3.0
    assert err.value.maybe_applied is True  # the first attempt may have reached QBO
    assert len(adapter.requests) == 1
