"""The callback proves the company and parks the grant; only the user who started completes it (issue 10,
items 1 and 8). Every refusal asserts its error, its message, that the new grant was revoked at "Intuit",
and that nothing was stored: no connection, no realm owner, the realm index unchanged."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
from qbsync.auth import Caller
from qbsync.connection.service import GRANT_TTL_SECONDS, ConnectionService
from qbsync.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    QboValidationError,
    ServiceUnavailable,
    Throttled,
)
from qbsync.repositories.connections import RealmTaken, Tokens

from tests.unit.connection.conftest import RETURN_URL

OTHER_FIRM_OWNER = Caller(firm_id="firm-b", user_id="user-b", role="owner")
REALM_TAKEN = "connected to another firm; it must be disconnected there"


def _state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def _callback(service: ConnectionService, intuit, caller: Caller, consented: str, claimed: str | None = None):
    """The owner consents to ``consented``; the callback claims ``claimed`` (forged if different)."""
    state = _state_of(service.create_connect_url(caller).url)
    code = intuit.issue_code(consented)
    return service.complete_callback(code=code, state=state, realm_id=claimed or consented)


def _connect(service: ConnectionService, intuit, caller: Caller, realm: str):
    return service.complete_connection(caller, _callback(service, intuit, caller, realm).handle)


def _parked_items(aws) -> list[dict]:
    items = aws["dynamodb"].scan(TableName=aws["table_name"])["Items"]
    return [i for i in items if i["pk"]["S"].startswith("OAUTHGRANT#")]


def _nothing_stored(repo, aws, firm_id: str, realm: str) -> None:
    assert repo.get(firm_id) is None
    assert repo.firm_of_realm(realm) is None and repo.indexed_firms(realm) == []
    assert _parked_items(aws) == []


# ------------------------------------------------------------------ the callback parks, never connects


def test_the_callback_parks_a_proven_grant_and_connects_nothing(service, intuit, owner, repo, aws, caplog):
    caplog.set_level(logging.DEBUG)
    parked = _callback(service, intuit, owner, "1001")

    assert parked.company_name == "Company 1001" and parked.realm_id == "1001"
    query = parse_qs(urlsplit(parked.return_url).query)
    assert parked.return_url.startswith(RETURN_URL.split("?")[0] + "?")
    assert query == {"tab": ["accounting"], "handle": [parked.handle]}  # the platform's own query is kept
    assert repo.get("firm-a") is None and repo.firm_of_realm("1001") is None
    [item] = _parked_items(aws)
    assert parked.handle not in str(item)  # the key is a hash of the handle
    assert intuit.current_rt["1001"].encode() not in item["token_blob"]["B"]  # encrypted
    assert parked.handle not in repr(parked) and parked.handle not in caplog.text

    outcome = service.complete_connection(owner, parked.handle)

    assert outcome.change == "connected" and outcome.company_name == "Company 1001"
    assert repo.get("firm-a").status == "connected" and repo.firm_of_realm("1001") == "firm-a"
    assert _parked_items(aws) == []


def test_without_a_return_url_the_callback_hands_back_the_handle_only(service, intuit, owner):
    service._return_url = None  # the deployment configures no PLATFORM_RETURN_URL
    parked = _callback(service, intuit, owner, "1001")
    assert parked.return_url is None and parked.handle
    assert service.complete_connection(owner, parked.handle).change == "connected"


# ------------------------------------------------------------------ item 1: the realm is proven by the grant


def test_a_forged_realm_id_is_refused_revoked_and_stores_nothing(
    service, intuit, owner, repo, aws, publisher
):
    with pytest.raises(Forbidden, match="did not confirm access to company 2002") as refused:
        _callback(service, intuit, owner, consented="1001", claimed="2002")

    assert "nothing was connected" in refused.value.message
    assert "1001" not in intuit.current_rt  # the new grant (for 1001) was revoked
    _nothing_stored(repo, aws, "firm-a", "2002")
    _nothing_stored(repo, aws, "firm-a", "1001")
    assert publisher.details() == []


def test_a_forged_realm_id_cannot_steal_another_firms_company(service, intuit, owner, repo, aws):
    _connect(service, intuit, OTHER_FIRM_OWNER, "2002")

    with pytest.raises(Forbidden, match="2002"):
        _callback(service, intuit, owner, consented="1001", claimed="2002")

    assert repo.get("firm-a") is None
    assert repo.firm_of_realm("2002") == "firm-b" and repo.indexed_firms("2002") == [("firm-b", "connected")]


@pytest.mark.parametrize(
    "failure",
    [
        ServiceUnavailable("QuickBooks 503"),
        Throttled("QuickBooks 429", retry_after=60),
        QboValidationError("QuickBooks 400"),
    ],
    ids=["unavailable", "throttled", "fault"],
)
def test_any_failure_of_the_company_lookup_refuses(service, intuit, owner, repo, aws, failure):
    intuit.company_info_failures.append(failure)

    with pytest.raises(ServiceUnavailable, match="could not confirm the company"):
        _callback(service, intuit, owner, "1001")

    assert "1001" not in intuit.current_rt  # revoked
    _nothing_stored(repo, aws, "firm-a", "1001")


# ------------------------------------------------------------------ item 1: one realm, one connected firm


def test_a_company_connected_to_another_firm_is_refused_at_the_callback(service, intuit, owner, repo, aws):
    _connect(service, intuit, OTHER_FIRM_OWNER, "1001")
    b_rt = repo.get("firm-b").tokens.refresh_token

    with pytest.raises(Conflict, match=REALM_TAKEN) as refused:
        _callback(service, intuit, owner, "1001")

    assert "firm-b" not in refused.value.message  # the other firm is never named
    assert intuit.revoked[-1] != b_rt and len(intuit.revoked) == 1  # only firm A's new grant
    assert repo.get("firm-a") is None and _parked_items(aws) == []
    assert repo.firm_of_realm("1001") == "firm-b" and repo.indexed_firms("1001") == [("firm-b", "connected")]


def test_a_company_another_firm_connected_meanwhile_is_refused_at_completion(service, intuit, owner, repo):
    parked = _callback(service, intuit, owner, "1001")
    _connect(service, intuit, OTHER_FIRM_OWNER, "1001")  # firm B completes first
    assert intuit.revoked == []

    with pytest.raises(Conflict, match=REALM_TAKEN):
        service.complete_connection(owner, parked.handle)

    assert len(intuit.revoked) == 1 and intuit.revoked[0] != repo.get("firm-b").tokens.refresh_token
    assert repo.get("firm-a") is None
    assert repo.firm_of_realm("1001") == "firm-b" and repo.indexed_firms("1001") == [("firm-b", "connected")]


def test_two_firms_completing_at_once_never_both_win(service, intuit, owner, repo):
    handles = {
        owner.firm_id: _callback(service, intuit, owner, "1001").handle,
        OTHER_FIRM_OWNER.firm_id: _callback(service, intuit, OTHER_FIRM_OWNER, "1001").handle,
    }
    start = threading.Barrier(2)

    def complete(caller: Caller):
        start.wait(5)
        try:
            return service.complete_connection(caller, handles[caller.firm_id]).change
        except Conflict as exc:
            return exc.message

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(complete, [owner, OTHER_FIRM_OWNER]))

    assert sorted(r == "connected" for r in results) == [False, True], results
    assert any(REALM_TAKEN in r for r in results)
    winner = "firm-a" if results[0] == "connected" else "firm-b"
    loser = "firm-b" if winner == "firm-a" else "firm-a"
    assert repo.get(loser) is None and repo.firm_of_realm("1001") == winner
    assert repo.indexed_firms("1001") == [(winner, "connected")]


def test_the_realm_owner_is_claimed_by_a_conditional_write(repo, clock):
    tokens = Tokens("at", "rt", clock() + 3600)
    repo.create(
        firm_id="firm-a",
        realm_id="1001",
        tokens=tokens,
        company_name=None,
        connected_by="u",
        settings={},
        now=1,
    )
    with pytest.raises(RealmTaken):  # the service's pre-check skipped: the write itself refuses
        repo.create(
            firm_id="firm-b",
            realm_id="1001",
            tokens=tokens,
            company_name=None,
            connected_by="u",
            settings={},
            now=1,
        )
    assert repo.get("firm-b") is None and repo.firm_of_realm("1001") == "firm-a"


def test_a_company_disconnected_elsewhere_can_be_connected(service, intuit, owner, repo):
    _connect(service, intuit, OTHER_FIRM_OWNER, "1001")
    service.disconnect(OTHER_FIRM_OWNER)
    assert repo.firm_of_realm("1001") is None  # released

    assert _connect(service, intuit, owner, "1001").change == "connected"

    assert repo.firm_of_realm("1001") == "firm-a"
    # ... and the firm that disconnected cannot take it back while firm A holds it
    before = repo.get("firm-b")
    with pytest.raises(Conflict, match=REALM_TAKEN):
        _callback(service, intuit, OTHER_FIRM_OWNER, "1001")
    assert repo.get("firm-b") == before


def test_a_switch_to_a_company_of_another_firm_is_refused_and_changes_nothing(service, intuit, owner, repo):
    _connect(service, intuit, owner, "1001")
    _connect(service, intuit, OTHER_FIRM_OWNER, "2002")
    before = repo.get("firm-a")

    with pytest.raises(Conflict, match=REALM_TAKEN):
        _callback(service, intuit, owner, "2002")

    assert repo.get("firm-a") == before and repo.firm_of_realm("2002") == "firm-b"


def test_confirming_a_switch_to_a_company_another_firm_took_meanwhile_changes_nothing(
    service, intuit, owner, repo
):
    _connect(service, intuit, owner, "1001")
    assert _connect(service, intuit, owner, "2002").change == "switch_pending"
    _connect(service, intuit, OTHER_FIRM_OWNER, "2002")  # allowed: firm A only holds 1001
    before = repo.get("firm-a")
    revoked = list(intuit.revoked)

    with pytest.raises(Conflict, match=REALM_TAKEN):
        service.confirm_switch(owner, "ACCEPT")

    assert repo.get("firm-a") == before and intuit.revoked == revoked  # the current company still works
    assert repo.firm_of_realm("1001") == "firm-a" and repo.firm_of_realm("2002") == "firm-b"


def test_a_switch_moves_the_realm_owner(service, intuit, owner, repo):
    _connect(service, intuit, owner, "1001")
    _connect(service, intuit, owner, "2002")
    service.confirm_switch(owner, "ACCEPT")
    assert repo.firm_of_realm("2002") == "firm-a" and repo.firm_of_realm("1001") is None
    # the old company is free for another firm now
    assert _connect(service, intuit, OTHER_FIRM_OWNER, "1001").change == "connected"


# ------------------------------------------------------------------ item 8: only the user who started


def test_another_user_of_the_firm_cannot_complete_and_the_grant_is_discarded(
    service, intuit, owner, repo, aws
):
    parked = _callback(service, intuit, owner, "1001")
    colleague = Caller(firm_id="firm-a", user_id="user-other-owner", role="owner")

    with pytest.raises(Forbidden, match="only the user who started this QuickBooks connection"):
        service.complete_connection(colleague, parked.handle)

    assert "1001" not in intuit.current_rt  # revoked
    _nothing_stored(repo, aws, "firm-a", "1001")
    with pytest.raises(BadRequest, match="unknown, already used or expired"):
        service.complete_connection(owner, parked.handle)  # discarded for good


def test_another_firms_owner_gets_404_and_changes_nothing(service, intuit, owner, repo, aws):
    _connect(service, intuit, OTHER_FIRM_OWNER, "2002")
    b_before = repo.get("firm-b")
    parked = _callback(service, intuit, owner, "1001")

    with pytest.raises(NotFound, match="handle is unknown"):
        service.complete_connection(OTHER_FIRM_OWNER, parked.handle)

    assert repo.get("firm-b") == b_before and repo.get("firm-a") is None
    assert repo.firm_of_realm("1001") is None and "1001" not in intuit.current_rt
    assert _parked_items(aws) == []


def test_a_first_connection_by_a_forwarded_link_never_connects(service, intuit, owner, repo):
    """Item 8: the owner's authorize link forwarded to someone else, who consents to their company: the
    callback parks it for the owner only; the other person (another firm's owner) cannot complete it."""
    parked = _callback(service, intuit, owner, "3003")
    with pytest.raises(NotFound):
        service.complete_connection(OTHER_FIRM_OWNER, parked.handle)
    assert repo.get("firm-a") is None and repo.get("firm-b") is None


def test_a_non_owner_is_refused_before_the_handle_is_touched(service, intuit, owner, repo):
    parked = _callback(service, intuit, owner, "1001")
    with pytest.raises(Forbidden, match="role owner"):
        service.complete_connection(Caller("firm-a", "user-owner", "admin"), parked.handle)
    assert service.complete_connection(owner, parked.handle).change == "connected"


def test_a_replayed_handle_is_refused_and_changes_nothing(service, intuit, owner, repo, publisher):
    parked = _callback(service, intuit, owner, "1001")
    service.complete_connection(owner, parked.handle)
    before = repo.get("firm-a")

    with pytest.raises(BadRequest, match="unknown, already used or expired"):
        service.complete_connection(owner, parked.handle)

    assert repo.get("firm-a") == before
    assert [d["change"] for d in publisher.details()] == ["connected"]


def test_an_expired_handle_is_refused_revoked_and_stores_nothing(service, intuit, owner, repo, aws, clock):
    parked = _callback(service, intuit, owner, "1001")
    clock.advance(GRANT_TTL_SECONDS + 1)

    with pytest.raises(BadRequest, match="authorization has expired"):
        service.complete_connection(owner, parked.handle)

    assert "1001" not in intuit.current_rt
    _nothing_stored(repo, aws, "firm-a", "1001")


def test_a_different_company_through_a_handle_still_needs_accept(service, intuit, owner, repo):
    _connect(service, intuit, owner, "1001")
    outcome = _connect(service, intuit, owner, "2002")
    assert outcome.change == "switch_pending" and "ACCEPT" in outcome.message
    held = repo.get("firm-a")
    assert held.realm_id == "1001" and held.pending.realm_id == "2002"
    assert repo.firm_of_realm("2002") is None  # a pending company is not held until ACCEPT
    assert service.confirm_switch(owner, "ACCEPT").realm_id == "2002"
