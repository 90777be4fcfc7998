"""Refresh races, revocation, company switch, disconnect and keep-alive on moto + the simulator."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from qbsync import wiring
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.kms import TokenCipher
from qbsync.connection.tokens import TokenProvider
from qbsync.errors import ReconnectRequired
from qbsync.qbo.client import QboClient
from qbsync.qbo.oauth import IntuitOAuthClient
from qbsync.repositories.connections import ConnectionsRepository, Tokens

from tests.integration.connection.conftest import KEEPALIVE, LambdaContext, new_firm, sample

TOKEN_PATH = "/oauth2/v1/tokens/bearer"


class Static:
    """A token source that hands out one token (to prove a token works at the simulator)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise ReconnectRequired("the token was rejected")


def oauth(stack) -> IntuitOAuthClient:
    return IntuitOAuthClient(
        discovery_url=f"{stack.sim.url}/.well-known/openid_configuration",
        client_id=stack.app.client_id,
        client_secret=stack.app.client_secret,
    )


def token_calls(stack) -> int:
    return sum(1 for r in stack.sim.control.requests(limit=5000) if r["path"] == TOKEN_PATH)


def repo() -> ConnectionsRepository:
    return wiring.connection_service().connections


def expire_soon(repository: ConnectionsRepository, firm: str, seconds: float = 60) -> None:
    """Make the stored access token look about to expire (as if an hour had passed)."""
    current = repository.get(firm)
    t = current.tokens
    soon = Tokens(
        t.access_token,
        t.refresh_token,
        time.time() + seconds,
        t.refresh_expires_at,
        t.refresh_hard_expires_at,
    )
    repository.save_refreshed_tokens(current, soon, now=time.time())


def test_concurrent_refresh_hits_the_simulator_once(stack, qbo_company, provisioned):
    firm = new_firm()
    assert stack.connect(firm, qbo_company).status == 200
    # Truly concurrent workers: the local moto server applies each DynamoDB request atomically, as
    # DynamoDB does (local.stack.moto._AtomicDynamoDB); the code under test is the production code.
    ddb = boto3.client("dynamodb")
    repository = ConnectionsRepository(
        DynamoTable(provisioned.ref("SyncStateTable"), client=ddb), TokenCipher(provisioned.ref("TokenKey"))
    )
    expire_soon(repository, firm)
    before_rt = repository.get(firm).tokens.refresh_token
    calls_before = token_calls(stack)
    workers = 8
    barrier = threading.Barrier(workers)
    client = oauth(stack)

    def work(_i: int) -> str:
        provider = TokenProvider(
            firm,
            repository,
            client,
            time.time,
            sleep=lambda _s: threading.Event().wait(0.02),
            wait_attempts=250,
        )
        barrier.wait()
        return provider.access_token()

    with ThreadPoolExecutor(workers) as pool:
        tokens = set(pool.map(work, range(workers)))

    assert token_calls(stack) - calls_before == 1  # exactly one refresh reached Intuit
    stored = repository.get(firm)
    assert tokens == {stored.tokens.access_token}
    assert stored.tokens.refresh_token != before_rt  # the simulator rotated it and the new one was kept
    info = QboClient(base_url=stack.sim.url, realm_id=qbo_company, tokens=Static(stored.tokens.access_token))
    assert info.company_info()["CompanyName"]
    # no lost refresh token: the next refresh (forced, as after a 401) works and rotates again
    provider = TokenProvider(firm, repository, client, time.time)
    fresh = provider.refresh_after_unauthorized(stored.tokens.access_token)
    assert fresh != stored.tokens.access_token
    assert repository.get(firm).status == "connected"


def test_revoked_in_qbo_leads_to_needs_reconnect_and_an_event(stack, qbo_company):
    firm = new_firm()
    assert stack.connect(firm, qbo_company).status == 200
    stack.connection_events()
    stack.sim.control.revoke_tokens(qbo_company, client_id=stack.app.client_id)  # firm disabled the app

    checked = stack.api.call("POST", "/connection/check", bearer=stack.api.token(firm))

    assert checked.status == 409 and checked.json()["error"] == "reconnect_required"
    view = stack.api.call("GET", "/connection", bearer=stack.api.token(firm)).json()
    assert view["status"] == "needs_reconnect" and view["reason"]
    events = stack.connection_events()
    assert [e["change"] for e in events] == ["needs_reconnect"]
    assert events[0]["firm_id"] == firm and events[0]["realm_id"] == qbo_company

    # reconnecting the same company resumes: same realm, connected again
    page = stack.connect(firm, qbo_company)
    assert page.status == 200 and page.json()["change"] == "reconnected"
    view = stack.api.call("GET", "/connection", bearer=stack.api.token(firm)).json()
    assert view["status"] == "connected" and view["realm_id"] == qbo_company and view["reason"] is None
    assert [e["change"] for e in stack.connection_events()] == ["reconnected"]


@pytest.fixture
def second_company(qbo_sim):
    realm = qbo_sim.control.create_company(company_name="Other Co")["realm_id"]
    yield realm
    qbo_sim.control.delete_company(realm)


def test_company_switch_guard(stack, qbo_company, second_company):
    firm = new_firm()
    owner = stack.api.token(firm)
    assert stack.connect(firm, qbo_company).status == 200
    old_rt = repo().get(firm).tokens.refresh_token

    page = stack.connect(firm, second_company)

    assert page.status == 200 and page.json()["change"] == "switch_pending" and "ACCEPT" in page.body
    view = stack.api.call("GET", "/connection", bearer=owner).json()
    assert view["status"] == "pending_switch" and view["realm_id"] == qbo_company
    assert view["pending_switch"]["realm_id"] == second_company
    for body in (None, {}, {"confirmation": "accept"}, {"confirmation": "OK"}):
        refused = stack.api.call("POST", "/connection/confirm-switch", bearer=owner, body=body)
        assert refused.status == 400, refused.body
    admin = stack.api.token(firm, role="admin")
    assert (
        stack.api.call(
            "POST", "/connection/confirm-switch", bearer=admin, body={"confirmation": "ACCEPT"}
        ).status
        == 403
    )
    assert repo().get(firm).realm_id == qbo_company

    done = stack.api.call("POST", "/connection/confirm-switch", bearer=owner, body={"confirmation": "ACCEPT"})

    assert done.status == 200, done.body
    view = done.json()
    assert (
        view["status"] == "connected"
        and view["realm_id"] == second_company
        and view["pending_switch"] is None
    )
    assert [a["realm_id"] for a in view["archived"]] == [qbo_company]
    with pytest.raises(ReconnectRequired):
        oauth(stack).refresh(old_rt)  # the old company's grant was revoked at Intuit
    assert stack.api.call("POST", "/connection/check", bearer=owner).json()["realm_id"] == second_company
    changes = [(e["change"], e["realm_id"]) for e in stack.connection_events()]
    assert changes[-2:] == [("switch_pending", second_company), ("switched", second_company)]


def test_disconnect_revokes_at_the_simulator(stack, qbo_company):
    firm = new_firm()
    owner = stack.api.token(firm)
    assert stack.connect(firm, qbo_company).status == 200
    rt = repo().get(firm).tokens.refresh_token

    result = stack.api.call("POST", "/connection/disconnect", bearer=owner)

    assert result.status == 200 and result.json()["status"] == "disconnected"
    with pytest.raises(ReconnectRequired):
        oauth(stack).refresh(rt)  # old RT → invalid_grant
    assert repo().get(firm).tokens is None
    assert stack.connection_events()[-1]["change"] == "disconnected"
    checked = stack.api.call("POST", "/connection/check", bearer=owner)
    assert checked.status == 409 and checked.json()["error"] == "reconnect_required"
    # reconnecting the same company later is allowed without ACCEPT
    assert stack.connect(firm, qbo_company).json()["change"] == "reconnected"


def test_keepalive_refreshes_due_tokens_and_isolates_dead_ones(
    stack, qbo_company, second_company, function_env
):
    alive, dead, idle_but_recent = new_firm(), new_firm(), new_firm()
    third_company = stack.sim.control.create_company(company_name="Third Co")["realm_id"]  # one firm each
    assert stack.connect(alive, qbo_company).status == 200
    assert stack.connect(dead, second_company).status == 200
    assert stack.connect(idle_but_recent, third_company).status == 200
    repository = repo()
    expire_soon(repository, alive)
    expire_soon(repository, dead)
    alive_before = repository.get(alive)
    untouched_before = repository.get(idle_but_recent)
    stack.sim.control.revoke_tokens(second_company, client_id=stack.app.client_id)
    stack.connection_events()

    function_env("TokenKeepAliveFunction")
    counts = KEEPALIVE.lambda_handler(sample("token_keepalive_schedule.json"), LambdaContext())

    assert counts["candidates"] == 2 and counts["refreshed"] == 1 and counts["needs_reconnect"] == 1
    assert counts["failed"] == 0
    alive_after = repository.get(alive)
    assert alive_after.token_version == alive_before.token_version + 1 and alive_after.status == "connected"
    assert repository.get(dead).status == "needs_reconnect"
    assert repository.get(idle_but_recent).token_version == untouched_before.token_version
    assert [(e["change"], e["firm_id"]) for e in stack.connection_events()] == [("needs_reconnect", dead)]
    stack.sim.control.delete_company(third_company)


class CountingCipher:
    """The real KMS cipher, counting the Decrypt calls that reach KMS."""

    def __init__(self, key_id: str) -> None:
        self._kms = TokenCipher(key_id)
        self.decrypts = 0

    def encrypt(self, plaintext: bytes, context):  # type: ignore[no-untyped-def]
        return self._kms.encrypt(plaintext, context)

    def decrypt(self, blob: bytes, context):  # type: ignore[no-untyped-def]
        self.decrypts += 1
        return self._kms.decrypt(blob, context)


class CountingTable(DynamoTable):
    """The real table adapter, counting GetItem calls."""

    gets = 0

    def get(self, key, *, consistent: bool = False):  # type: ignore[no-untyped-def,override]
        self.gets += 1
        return super().get(key, consistent=consistent)


def test_a_token_blob_is_decrypted_once_per_container_and_again_after_a_refresh(
    stack, qbo_company, provisioned
):
    firm = new_firm()
    assert stack.connect(firm, qbo_company).status == 200
    cipher = CountingCipher(provisioned.ref("TokenKey"))
    repository = ConnectionsRepository(DynamoTable(provisioned.ref("SyncStateTable")), cipher)

    first, second = repository.get(firm), repository.get(firm)
    assert first.tokens.access_token == second.tokens.access_token
    assert cipher.decrypts == 1

    expire_soon(repository, firm)  # new tokens sealed: a new blob
    third = repository.get(firm)
    assert cipher.decrypts == 2
    assert third.tokens.access_expires_at < first.tokens.access_expires_at
    # the blob is bound to its firm: another repository (another container) decrypts it for itself
    other = CountingCipher(provisioned.ref("TokenKey"))
    ConnectionsRepository(DynamoTable(provisioned.ref("SyncStateTable")), other).get(firm)
    assert other.decrypts == 1


def test_remembered_access_token_skips_the_connection_read_until_qbo_refuses_it(
    stack, qbo_company, provisioned
):
    from qbsync.connection.tokens import AccessTokens

    firm = new_firm()
    assert stack.connect(firm, qbo_company).status == 200
    table = CountingTable(provisioned.ref("SyncStateTable"))
    repository = ConnectionsRepository(table, TokenCipher(provisioned.ref("TokenKey")))
    remembered = AccessTokens()
    client = oauth(stack)

    def provider() -> TokenProvider:  # one per QBO client, as RealmClients builds them
        return TokenProvider(firm, repository, client, time.time, realm_id=qbo_company, remembered=remembered)

    token = provider().access_token()
    reads = table.gets
    assert [provider().access_token() for _ in range(5)] == [token] * 5
    assert table.gets == reads  # no connection read while the remembered token is valid

    # QBO refuses it (401): it is forgotten, the connection is read and a refresh gives a new one
    fresh = provider().refresh_after_unauthorized(token)
    assert fresh != token
    assert provider().access_token() == fresh
    assert repository.get(firm).tokens.access_token == fresh
    # a token about to expire is not handed out: the provider reads and refreshes
    expire_soon(repository, firm)
    remembered.put(firm, qbo_company, repository.get(firm).tokens)
    calls = token_calls(stack)
    refreshed = provider().access_token()
    assert refreshed != fresh and token_calls(stack) == calls + 1
    # another realm of the firm (after a switch) is never served the remembered token
    assert remembered.get(firm, "another-realm", valid_after=time.time()) is None


def test_disconnect_forgets_the_remembered_token(stack, qbo_company):
    firm = new_firm()
    assert stack.connect(firm, qbo_company).status == 200
    service = wiring.connection_service()
    token = service.token_provider(firm, qbo_company).access_token()
    assert service.token_provider(firm, qbo_company).access_token() == token
    assert (
        stack.api.call("POST", "/connection/disconnect", bearer=stack.api.token(firm, role="owner")).status
        == 200
    )
    with pytest.raises(ReconnectRequired):
        service.token_provider(firm, qbo_company).access_token()
