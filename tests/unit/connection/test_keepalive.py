"""Keep-alive sweep: due tokens refreshed, idle ones kept alive, one firm's failure isolated."""

from __future__ import annotations

from qbsync.connection.keepalive import keep_alive
from qbsync.connection.tokens import tokens_from_token_set


def _connect(repo, intuit, clock, firm: str, realm: str):
    intuit.codes[f"c-{firm}"] = realm
    tokens = tokens_from_token_set(intuit.exchange_code(code=f"c-{firm}", redirect_uri="x"))
    return repo.create(
        firm_id=firm,
        realm_id=realm,
        tokens=tokens,
        company_name=None,
        connected_by="u",
        settings={},
        now=clock(),
    )


def test_sweep(service, repo, intuit, clock, publisher):
    _connect(repo, intuit, clock, "due", "1")  # access token expires at t0+3600
    _connect(repo, intuit, clock, "broken", "2")
    _connect(repo, intuit, clock, "dead", "3")
    clock.advance(3600 - 600)  # all three are now within the 20-minute window
    fresh = _connect(repo, intuit, clock, "fresh", "4")  # expires in an hour: not due
    original_refresh = intuit.refresh

    def refresh(refresh_token: str):
        if intuit.realm_of_rt(refresh_token) == "2":
            raise RuntimeError("a bug while refreshing one firm")
        return original_refresh(refresh_token)

    intuit.refresh = refresh
    del intuit.current_rt["3"]  # revoked at Intuit

    report = keep_alive(service, now=clock)

    assert report.as_dict() == {
        "candidates": 3,
        "refreshed": 1,
        "needs_reconnect": 1,
        "busy": 0,
        "failed": 1,
        "hard_expiry_soon": 0,
    }
    assert report.failed_firms == ["broken"]
    assert repo.get("dead").status == "needs_reconnect"
    assert repo.get("broken").lease_owner is None  # the crash released its lease
    assert repo.get("fresh").token_version == fresh.token_version
    assert [d["firm_id"] for d in publisher.details("needs_reconnect")] == ["dead"]


def test_idle_connections_are_refreshed_to_keep_the_refresh_token_alive(service, repo, intuit, clock):
    idle = _connect(repo, intuit, clock, "idle", "1")
    clock.advance(8 * 86400)  # no use for 8 days: the access token expired a week ago

    report = keep_alive(service, now=clock)

    assert report.refreshed == 1
    assert repo.get("idle").token_version == idle.token_version + 1
