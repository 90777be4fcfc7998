"""Connection lifecycle on moto (in-process) with a fake Intuit: connect, replay, forgery, switch guard.

Connecting is two steps, as the platform drives it: the callback parks the proven grant under a handle,
the owner who started completes it (tests/unit/connection/test_completion.py covers that step's refusals).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from qbsync.auth import Caller
from qbsync.connection.service import ConnectionService
from qbsync.connection.state import StateClaims, StateSigner
from qbsync.errors import BadRequest, Conflict, Forbidden, NotFound, ReconnectRequired

from tests.unit.connection.conftest import SIGNING_KEY


def _state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def _connect(service: ConnectionService, intuit, caller: Caller, realm: str):
    state = _state_of(service.create_connect_url(caller).url)
    parked = service.complete_callback(code=intuit.issue_code(realm), state=state, realm_id=realm)
    return service.complete_connection(caller, parked.handle)


def test_first_connect_stores_encrypted_tokens_and_announces(service, intuit, owner, repo, aws, publisher):
    outcome = _connect(service, intuit, owner, "1001")

    assert outcome.change == "connected"
    stored = repo.get("firm-a")
    assert stored.status == "connected" and stored.realm_id == "1001"
    assert stored.tokens.refresh_token == intuit.current_rt["1001"]
    raw = aws["dynamodb"].get_item(
        TableName=aws["table_name"], Key={"pk": {"S": "FIRM#firm-a"}, "sk": {"S": "CONNECTION"}}
    )["Item"]
    assert intuit.current_rt["1001"].encode() not in raw["token_blob"]["B"]  # encrypted, not plain
    assert raw["gsi1pk"]["S"] == "REALM#1001" and raw["gsi2pk"]["S"] == "CONNSTATUS#connected"
    [event] = publisher.details()
    assert (
        event["change"] == "connected"
        and event["firm_id"] == "firm-a"
        and event["correlation_id"] == "corr-1"
    )
    assert "token" not in str(event).lower()


def test_connect_url_is_owner_only(service):
    with pytest.raises(Forbidden):
        service.create_connect_url(Caller("firm-a", "u2", "admin"))


def test_state_replay_is_refused(service, intuit, owner):
    state = _state_of(service.create_connect_url(owner).url)
    service.complete_callback(code=intuit.issue_code("1001"), state=state, realm_id="1001")

    with pytest.raises(BadRequest, match="already used"):
        service.complete_callback(code=intuit.issue_code("1001"), state=state, realm_id="1001")


def test_expired_state_is_refused(service, intuit, owner, clock):
    state = _state_of(service.create_connect_url(owner).url)
    clock.advance(601)
    with pytest.raises(BadRequest, match="expired"):
        service.complete_callback(code=intuit.issue_code("1001"), state=state, realm_id="1001")


def test_expired_record_is_refused_even_if_signature_time_is_valid(service, intuit, owner, clock, table):
    """moto never enforces TTL: the record's own expiry is checked (here the record outlives its state)."""
    state = _state_of(service.create_connect_url(owner).url)
    claims = StateSigner(SIGNING_KEY).verify(state, now=clock())
    # Re-sign with a later expiry (as if the key leaked): the stored nonce record still expires.
    forged = StateSigner(SIGNING_KEY).sign(
        StateClaims(claims.firm_id, claims.user_id, claims.nonce, claims.expires_at + 3600)
    )
    clock.advance(700)
    with pytest.raises(BadRequest, match="expired"):
        service.complete_callback(code=intuit.issue_code("1001"), state=forged, realm_id="1001")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-2] + ("AA" if not s.endswith("AA") else "BB"),  # signature changed
        lambda s: "eyJmIjoiZmlybS1iIn0" + s[s.index(".") :],  # payload swapped (other firm)
        lambda s: s.replace(".", ""),  # no signature
        lambda s: "",  # missing
    ],
)
def test_forged_or_tampered_state_is_refused(service, intuit, owner, mangle, repo):
    state = _state_of(service.create_connect_url(owner).url)
    with pytest.raises(BadRequest):
        service.complete_callback(code=intuit.issue_code("1001"), state=mangle(state), realm_id="1001")
    assert repo.get("firm-a") is None


def test_state_signed_with_another_key_is_refused(service, intuit, owner, clock):
    state = _state_of(service.create_connect_url(owner).url)
    claims = StateSigner(SIGNING_KEY).verify(state, now=clock())
    other = StateSigner("another-key-of-at-least-16-bytes").sign(claims)
    with pytest.raises(BadRequest, match="signature"):
        service.complete_callback(code=intuit.issue_code("1001"), state=other, realm_id="1001")


def test_state_rebound_to_another_firm_answers_404_and_keeps_the_owners_state(service, intuit, owner, clock):
    state = _state_of(service.create_connect_url(owner).url)
    claims = StateSigner(SIGNING_KEY).verify(state, now=clock())
    rebound = StateSigner(SIGNING_KEY).sign(StateClaims("firm-b", "user-b", claims.nonce, claims.expires_at))

    with pytest.raises(NotFound):
        service.complete_callback(code=intuit.issue_code("1001"), state=rebound, realm_id="1001")
    # The genuine state still works: the forged attempt did not burn it.
    parked = service.complete_callback(code=intuit.issue_code("1001"), state=state, realm_id="1001")
    assert service.complete_connection(owner, parked.handle).change == "connected"


def test_declined_consent_consumes_the_state(service, intuit, owner):
    state = _state_of(service.create_connect_url(owner).url)
    with pytest.raises(BadRequest, match="access_denied"):
        service.complete_callback(code=None, state=state, realm_id=None, error="access_denied")
    with pytest.raises(BadRequest, match="already used"):
        service.complete_callback(code=intuit.issue_code("1001"), state=state, realm_id="1001")


def test_rejected_code_is_a_clear_400(service, owner):
    state = _state_of(service.create_connect_url(owner).url)
    with pytest.raises(BadRequest, match="authorization code"):
        service.complete_callback(code="never-issued", state=state, realm_id="1001")


def test_same_realm_reconnect_keeps_realm_and_resets_status(service, intuit, owner, repo, publisher):
    _connect(service, intuit, owner, "1001")
    before = repo.get("firm-a")
    # the grant dies; a worker marks it
    intuit.current_rt.clear()
    service.token_provider("firm-a").mark_needs_reconnect("revoked in QBO")
    assert repo.get("firm-a").status == "needs_reconnect"

    outcome = _connect(service, intuit, owner, "1001")

    after = repo.get("firm-a")
    assert outcome.change == "reconnected"
    assert after.realm_id == "1001" and after.status == "connected" and after.reason is None
    assert after.token_version > before.token_version
    assert after.tokens.refresh_token == intuit.current_rt["1001"]
    assert [d["change"] for d in publisher.details()] == ["connected", "needs_reconnect", "reconnected"]


def test_company_switch_guard(service, intuit, owner, repo, publisher):
    _connect(service, intuit, owner, "1001")
    old_rt = repo.get("firm-a").tokens.refresh_token

    outcome = _connect(service, intuit, owner, "2002")

    assert outcome.change == "switch_pending"
    held = repo.get("firm-a")
    assert held.status == "pending_switch" and held.realm_id == "1001" and held.pending.realm_id == "2002"
    assert held.tokens.refresh_token == old_rt  # the current company keeps working meanwhile

    for text in ["", "accept", "ACCEPT ", "yes", "ACCEPTER"]:
        with pytest.raises(BadRequest, match="ACCEPT"):
            service.confirm_switch(owner, text)
    with pytest.raises(Forbidden):
        service.confirm_switch(Caller("firm-a", "u2", "admin"), "ACCEPT")
    assert repo.get("firm-a").realm_id == "1001"

    view = service.confirm_switch(owner, "ACCEPT")

    assert view.status == "connected" and view.realm_id == "2002" and view.pending_switch is None
    assert [a.realm_id for a in view.archived] == ["1001"]
    assert old_rt in intuit.revoked
    live = repo.get("firm-a")
    assert live.tokens.refresh_token == intuit.current_rt["2002"]
    assert repo.firm_of_realm("2002") == "firm-a" and repo.firm_of_realm("1001") is None
    switched = publisher.details("switched")
    assert switched[0]["previous_realm_id"] == "1001" and switched[0]["realm_id"] == "2002"
    with pytest.raises(Conflict):
        service.confirm_switch(owner, "ACCEPT")  # nothing pending any more


def test_returning_to_the_current_company_cancels_a_pending_switch(service, intuit, owner, repo):
    _connect(service, intuit, owner, "1001")
    _connect(service, intuit, owner, "2002")
    pending_rt = repo.get("firm-a").pending.tokens.refresh_token

    outcome = _connect(service, intuit, owner, "1001")

    assert outcome.change == "reconnected"
    current = repo.get("firm-a")
    assert current.status == "connected" and current.pending is None and current.realm_id == "1001"
    assert pending_rt in intuit.revoked


def test_disconnect_revokes_and_keeps_the_record(service, intuit, owner, repo, publisher):
    _connect(service, intuit, owner, "1001")
    rt = repo.get("firm-a").tokens.refresh_token
    with pytest.raises(Forbidden):
        service.disconnect(Caller("firm-a", "u2", "staff"))

    view = service.disconnect(owner)

    assert view.status == "disconnected" and view.realm_id == "1001"
    assert rt in intuit.revoked
    stored = repo.get("firm-a")
    assert stored.status == "disconnected" and stored.tokens is None
    assert publisher.details("disconnected")
    assert service.disconnect(owner).status == "disconnected"  # idempotent
    with pytest.raises(ReconnectRequired):
        service.token_provider("firm-a").access_token()


def test_other_firms_see_404(service, intuit, owner):
    _connect(service, intuit, owner, "1001")
    firm_b_owner = Caller("firm-b", "user-b", "owner")
    for call in (
        lambda: service.status(firm_b_owner),
        lambda: service.disconnect(firm_b_owner),
        lambda: service.confirm_switch(firm_b_owner, "ACCEPT"),
        lambda: service.check(firm_b_owner),
    ):
        with pytest.raises(NotFound):
            call()


def test_status_and_check(service, intuit, owner):
    _connect(service, intuit, owner, "1001")
    staff = Caller("firm-a", "u3", "staff")
    assert service.status(staff).status == "connected"
    with pytest.raises(Forbidden):
        service.check(staff)
    result = service.check(Caller("firm-a", "u4", "admin"))
    assert result.status == "connected" and result.company_name == "Company 1001"


def test_check_marks_needs_reconnect_when_the_grant_is_gone(service, intuit, owner, repo, publisher):
    _connect(service, intuit, owner, "1001")
    intuit.live_at.clear()
    intuit.current_rt.clear()  # the firm disabled the app in QBO

    with pytest.raises(ReconnectRequired):
        service.check(owner)

    assert repo.get("firm-a").status == "needs_reconnect"
    assert len(publisher.details("needs_reconnect")) == 1


def test_switch_from_a_dead_connection_never_revives_its_tokens(service, intuit, owner, repo):
    _connect(service, intuit, owner, "1001")
    intuit.current_rt.clear()
    service.token_provider("firm-a").mark_needs_reconnect("revoked")

    assert _connect(service, intuit, owner, "2002").change == "switch_pending"

    held = repo.get("firm-a")
    assert held.status == "pending_switch" and held.tokens is None  # the dead tokens are erased
    with pytest.raises(ReconnectRequired):
        service.token_provider("firm-a").access_token()
    assert service.confirm_switch(owner, "ACCEPT").realm_id == "2002"
    assert service.token_provider("firm-a").access_token() == repo.get("firm-a").tokens.access_token


def test_switch_after_disconnect_needs_accept(service, intuit, owner, repo):
    _connect(service, intuit, owner, "1001")
    service.disconnect(owner)

    assert _connect(service, intuit, owner, "2002").change == "switch_pending"
    assert repo.get("firm-a").realm_id == "1001"
    assert service.confirm_switch(owner, "ACCEPT").status == "connected"
    assert repo.get("firm-a").realm_id == "2002"


def test_confirm_still_works_when_the_old_grant_died_while_pending(service, intuit, owner, repo):
    _connect(service, intuit, owner, "1001")
    _connect(service, intuit, owner, "2002")
    del intuit.current_rt["1001"]
    service.token_provider("firm-a").mark_needs_reconnect("revoked while pending")
    assert repo.get("firm-a").status == "needs_reconnect"

    view = service.confirm_switch(owner, "ACCEPT")

    assert view.status == "connected" and view.realm_id == "2002"


def test_firms_of_realms_reads_every_realm_owner_at_once_and_falls_back_for_older_connections(
    service, intuit, owner, repo, aws
):
    _connect(service, intuit, owner, "1001")
    # a connection written before realm-owner items existed: only its gsi1 entry names the realm
    _connect(service, intuit, Caller("firm-b", "u-b", "owner"), "2002")
    aws["dynamodb"].delete_item(
        TableName=aws["table_name"], Key={"pk": {"S": "REALM#2002"}, "sk": {"S": "OWNER"}}
    )
    assert repo.firms_of_realms(["1001", "2002", "3003", "1001"]) == {
        "1001": "firm-a",
        "2002": "firm-b",
        "3003": None,
    }
    assert repo.firms_of_realms([]) == {}
