"""TokenProvider: single-flight refresh, no lost refresh token, invalid_grant, lost responses."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from qbsync.connection.tokens import TokenProvider, tokens_from_token_set
from qbsync.errors import LeaseHeld, ReconnectRequired, ServiceUnavailable, UncertainOutcome


@pytest.fixture
def connected(repo, intuit, clock):
    intuit.codes["c"] = "1001"
    tokens = tokens_from_token_set(intuit.exchange_code(code="c", redirect_uri="x"))
    return repo.create(
        firm_id="firm-a",
        realm_id="1001",
        tokens=tokens,
        company_name="A",
        connected_by="u",
        settings={},
        now=clock(),
    )


def provider(repo, intuit, clock, **kw) -> TokenProvider:
    kw.setdefault("sleep", lambda _s: None)
    return TokenProvider("firm-a", repo, intuit, clock, **kw)


def test_valid_token_is_returned_without_refresh(connected, repo, intuit, clock):
    assert provider(repo, intuit, clock).access_token() == connected.tokens.access_token
    assert intuit.refresh_calls == 0


def test_refresh_within_margin_persists_the_new_pair_first(connected, repo, intuit, clock):
    clock.advance(3600 - 299)  # inside the 300 s margin
    token = provider(repo, intuit, clock).access_token()

    stored = repo.get("firm-a")
    assert token != connected.tokens.access_token
    assert stored.tokens.access_token == token
    assert stored.tokens.refresh_token == intuit.current_rt["1001"]  # the rotated RT is the stored one
    assert stored.token_version == connected.token_version + 1
    assert stored.lease_owner is None  # released
    assert intuit.refresh_calls == 1


def test_concurrent_workers_refresh_exactly_once(connected, repo, intuit, clock):
    clock.advance(3600)
    intuit.gate = threading.Event()
    workers = 8
    barrier = threading.Barrier(workers)
    waiting = threading.Semaphore(0)

    def loser_sleep(_seconds: float) -> None:
        waiting.release()  # a loser is waiting for the winner...
        intuit.gate.wait(5)

    def work(_i: int) -> str:
        p = provider(repo, intuit, clock, sleep=loser_sleep, wait_attempts=50)
        barrier.wait()
        return p.access_token()

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(work, i) for i in range(workers)]
        for _ in range(workers - 1):  # ...all losers are waiting while the winner's refresh is held
            assert waiting.acquire(timeout=10)
        intuit.gate.set()
        tokens = {f.result(timeout=10) for f in futures}

    assert intuit.refresh_calls == 1
    stored = repo.get("firm-a")
    assert tokens == {stored.tokens.access_token}
    assert stored.tokens.refresh_token == intuit.current_rt["1001"]
    # no lost refresh token: the next refresh works
    clock.advance(3600)
    intuit.gate = None
    assert provider(repo, intuit, clock).access_token() != stored.tokens.access_token


def test_loser_gives_up_with_lease_held(connected, repo, intuit, clock):
    clock.advance(3600)
    assert repo.acquire_lease("firm-a", "someone-else", now=clock(), seconds=30)
    with pytest.raises(LeaseHeld) as info:
        provider(repo, intuit, clock, wait_attempts=3).access_token()
    assert info.value.retry_after == 30
    assert intuit.refresh_calls == 0


def test_expired_lease_is_taken_over(connected, repo, intuit, clock):
    clock.advance(3600)
    assert repo.acquire_lease("firm-a", "crashed-worker", now=clock() - 31, seconds=30)
    assert provider(repo, intuit, clock).access_token() == repo.get("firm-a").tokens.access_token
    assert intuit.refresh_calls == 1


def test_invalid_grant_marks_needs_reconnect_once(connected, repo, intuit, clock):
    clock.advance(3600)
    intuit.current_rt.clear()  # revoked at Intuit
    calls = []
    p = provider(repo, intuit, clock, on_needs_reconnect=lambda c, reason: calls.append((c.status, reason)))

    with pytest.raises(ReconnectRequired):
        p.access_token()

    stored = repo.get("firm-a")
    assert stored.status == "needs_reconnect" and "invalid_grant" in stored.reason
    assert calls == [("needs_reconnect", stored.reason)]
    with pytest.raises(ReconnectRequired):
        p.access_token()  # no second refresh attempt, no second event
    assert intuit.refresh_calls == 1 and len(calls) == 1


def test_invalid_grant_on_a_superseded_token_uses_the_newer_one(connected, repo, intuit, clock):
    """A worker that read the old version refreshes after another saved a newer pair: no reconnect."""
    clock.advance(3600)
    stale_view = repo.get("firm-a")
    fresh = provider(repo, intuit, clock).access_token()  # rotates the RT and saves it
    slow = provider(repo, intuit, clock)

    assert slow._refresh(stale_view, rejected=stale_view.tokens.access_token) == fresh
    assert repo.get("firm-a").status == "connected"


def test_lost_refresh_response_keeps_state_and_raises(connected, repo, intuit, clock):
    clock.advance(3600)
    intuit.lose_next_refresh = True
    with pytest.raises(UncertainOutcome):
        provider(repo, intuit, clock).access_token()
    stored = repo.get("firm-a")
    assert stored.token_version == connected.token_version and stored.lease_owner is None
    assert stored.status == "connected"
    # The fake rotates on every refresh (no grace): the retry with the old RT gets invalid_grant → reconnect.
    with pytest.raises(ReconnectRequired):
        provider(repo, intuit, clock).access_token()
    assert repo.get("firm-a").status == "needs_reconnect"


def test_unavailable_token_endpoint_is_retryable_and_changes_nothing(connected, repo, intuit, clock):
    clock.advance(3600)
    intuit.unavailable_next_refresh = True
    with pytest.raises(ServiceUnavailable):
        provider(repo, intuit, clock).access_token()
    assert repo.get("firm-a").lease_owner is None
    assert provider(repo, intuit, clock).access_token() == repo.get("firm-a").tokens.access_token


def test_refresh_after_unauthorized(connected, repo, intuit, clock):
    p = provider(repo, intuit, clock)
    rejected = p.access_token()
    fresh = p.refresh_after_unauthorized(rejected)
    assert fresh != rejected and intuit.refresh_calls == 1
    # a worker still holding the old token gets the stored newer one, without another refresh
    assert p.refresh_after_unauthorized(rejected) == fresh
    assert intuit.refresh_calls == 1


def test_realm_guard(connected, repo, intuit, clock):
    with pytest.raises(ReconnectRequired, match="another company"):
        provider(repo, intuit, clock, realm_id="9999").access_token()


def test_no_connection(repo, intuit, clock):
    with pytest.raises(ReconnectRequired, match="not connected"):
        provider(repo, intuit, clock).access_token()
