"""QboClient over a scripted network: request shape, retry rules, 401 handling, batch, CDC, queries."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
from qbsync.errors import (
    ConfigurationError,
    QboValidationError,
    ReconnectRequired,
    ServiceUnavailable,
    StaleObject,
    Throttled,
    UncertainOutcome,
)
from qbsync.qbo.client import BatchOperation, QboClient, deep_link, quote_literal
from qbsync.qbo.http import request_id_for

from tests.unit.qbo.conftest import Canned, ScriptedAdapter, all_log_text

REALM = "9130350000000001"
BASE = "https://qbo.example"
TOKEN_1 = "AT-first-very-secret-0001"
TOKEN_2 = "AT-second-very-secret-0002"


class FakeTokens:
    """A TokenSource double: hands out TOKEN_1, then TOKEN_2 after a 401 (or raises what it is told to)."""

    def __init__(self, refresh_error: Exception | None = None) -> None:
        self.current = TOKEN_1
        self.rejected: list[str] = []
        self.refresh_error = refresh_error

    def access_token(self) -> str:
        return self.current

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        self.rejected.append(rejected_token)
        if self.refresh_error is not None:
            raise self.refresh_error
        self.current = TOKEN_2
        return TOKEN_2


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(session: requests.Session, tokens: FakeTokens, sleeps: list[float]) -> QboClient:
    return QboClient(
        base_url=BASE,
        realm_id=REALM,
        tokens=tokens,
        session=session,
        sleep=sleeps.append,
        jitter=lambda: 1.0,  # full ceiling: sleeps are exactly min(cap, base*2^(n-1))
    )


def customer(cid: str = "58", sync: str = "0") -> dict:
    return {"Customer": {"Id": cid, "SyncToken": sync, "DisplayName": "Rivera & Sons LLC"}, "time": "x"}


FAULT_6240 = {
    "Fault": {
        "Error": [
            {
                "Message": "Duplicate Name Exists Error",
                "Detail": "The name supplied already exists. : Id=71",
                "code": "6240",
                "element": "",
            }
        ],
        "type": "ValidationFault",
    }
}
SERVER_ERROR = Canned(503, "<html>Service Unavailable</html>")
UNAUTHORIZED = Canned(
    401,
    {
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": f"Token expired: {TOKEN_1[:12]}",
                    "code": "3200",
                }
            ],
            "type": "AUTHENTICATION",
        }
    },
    {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
)


# ---------------------------------------------------------------------------- request shape


def test_read_sends_minorversion_auth_and_json_headers(client, adapter: ScriptedAdapter):
    adapter.queue(Canned(200, customer(), {"intuit_tid": "tid-1"}))
    assert client.read("Customer", "58")["DisplayName"] == "Rivera & Sons LLC"
    request = adapter.requests[0]
    assert request.method == "GET"
    assert adapter.path() == f"/v3/company/{REALM}/customer/58"
    assert adapter.query() == {"minorversion": "75"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN_1}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("qbsync/")
    assert adapter.timeouts[0] == (3.05, 25.0)


def test_create_sends_requestid_and_json_body(client, adapter):
    adapter.queue(Canned(200, customer()))
    rid = request_id_for(REALM, "Customer", "c-1", 1)
    created = client.create("Customer", {"DisplayName": "Rivera & Sons LLC"}, request_id=rid)
    assert created["Id"] == "58"
    assert adapter.requests[0].method == "POST"
    assert adapter.path() == f"/v3/company/{REALM}/customer"
    assert adapter.query() == {"minorversion": "75", "requestid": rid}
    assert adapter.requests[0].headers["Content-Type"] == "application/json"
    assert adapter.json() == {"DisplayName": "Rivera & Sons LLC"}


def test_minor_version_is_configurable(session, tokens, adapter):
    adapter.queue(Canned(200, {"Preferences": {"Id": "1"}, "time": "x"}))
    c = QboClient(base_url=BASE, realm_id=REALM, tokens=tokens, session=session, minor_version=76)
    assert c.preferences() == {"Id": "1"}
    assert adapter.query()["minorversion"] == "76"
    assert adapter.path() == f"/v3/company/{REALM}/preferences"


def test_update_is_sparse_by_default_and_needs_id_and_sync_token(client, adapter):
    adapter.queue(Canned(200, customer(sync="4")), Canned(200, customer(sync="5")))
    client.update("Customer", {"Id": "58", "SyncToken": "3", "DisplayName": "X"}, request_id="r-1")
    assert adapter.json() == {"Id": "58", "SyncToken": "3", "DisplayName": "X", "sparse": True}
    client.update(
        "Customer", {"Id": "58", "SyncToken": "4", "DisplayName": "X"}, request_id="r-2", sparse=False
    )
    assert adapter.json()["sparse"] is False
    with pytest.raises(ValueError):
        client.update("Customer", {"Id": "58", "DisplayName": "X"}, request_id="r-3")


def test_delete_and_void_forms(client, adapter):
    adapter.queue(
        Canned(200, {"Invoice": {"Id": "266", "status": "Deleted"}}),
        Canned(200, {"Invoice": {"Id": "267", "SyncToken": "2"}}),
        Canned(200, {"Payment": {"Id": "9", "SyncToken": "1"}}),
    )
    assert client.delete("Invoice", "266", "2", request_id="d-1")["status"] == "Deleted"
    assert adapter.query(0) == {"minorversion": "75", "requestid": "d-1", "operation": "delete"}
    assert adapter.json(0) == {"Id": "266", "SyncToken": "2"}
    client.void("Invoice", "267", "1", request_id="v-1")
    assert adapter.query(1)["operation"] == "void"
    client.void("Payment", "9", "0", request_id="v-2")
    assert adapter.query(2)["operation"] == "update" and adapter.query(2)["include"] == "void"
    assert adapter.json(2) == {"Id": "9", "SyncToken": "0", "sparse": True}


def test_company_info(client, adapter):
    adapter.queue(Canned(200, {"CompanyInfo": {"CompanyName": "Acme"}, "time": "x"}))
    assert client.company_info()["CompanyName"] == "Acme"
    assert adapter.path() == f"/v3/company/{REALM}/companyinfo/{REALM}"


def test_bad_arguments_are_rejected_before_any_request(client, adapter):
    with pytest.raises(ValueError):
        client.read("customer; DROP", "1")
    with pytest.raises(ValueError):
        client.read("Customer", "../1")
    with pytest.raises(ValueError):
        client.create("Customer", {"DisplayName": "x"}, request_id="x" * 51)
    with pytest.raises(ValueError):
        client.create("Customer", {}, request_id="ok")
    with pytest.raises(ValueError):
        QboClient(base_url=BASE, realm_id="", tokens=FakeTokens())
    with pytest.raises(ConfigurationError):
        QboClient(base_url="", realm_id=REALM, tokens=FakeTokens())
    assert adapter.requests == []


# ---------------------------------------------------------------------------- retries


def test_read_retries_5xx_with_capped_jittered_backoff(client, adapter, sleeps):
    adapter.queue(SERVER_ERROR, SERVER_ERROR, Canned(200, customer()))
    assert client.read("Customer", "58")["Id"] == "58"
    assert len(adapter.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_jitter_is_applied_to_the_backoff(session, tokens, adapter):
    sleeps: list[float] = []
    c = QboClient(
        base_url=BASE,
        realm_id=REALM,
        tokens=tokens,
        session=session,
        sleep=sleeps.append,
        jitter=lambda: 0.5,
        backoff_base=2,
        backoff_cap=5,
    )
    adapter.queue(SERVER_ERROR, SERVER_ERROR, SERVER_ERROR, Canned(200, customer()))
    c.read("Customer", "58")
    # d = 2, 4, min(5, 8)=5 → d/2 + 0.5*d/2
    assert sleeps == [1.5, 3.0, 3.75]


def test_read_gives_up_with_service_unavailable(client, adapter, sleeps):
    adapter.queue(*[SERVER_ERROR] * 4)
    with pytest.raises(ServiceUnavailable) as info:
        client.read("Customer", "58")
    assert len(adapter.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert info.value.extra["qbo_status"] == 503


def test_read_retries_connection_errors(client, adapter, sleeps):
    adapter.queue(
        requests.exceptions.ConnectionError("reset"),
        requests.exceptions.ReadTimeout(),
        Canned(200, customer()),
    )
    assert client.read("Customer", "58")["Id"] == "58"
    assert sleeps == [0.5, 1.0]


def test_write_retries_with_the_same_requestid(client, adapter, sleeps):
    adapter.queue(Canned(500, "oops"), requests.exceptions.ReadTimeout(), Canned(200, customer()))
    rid = request_id_for("write", 1)
    client.create("Customer", {"DisplayName": "X"}, request_id=rid)
    assert [adapter.query(i)["requestid"] for i in range(3)] == [rid, rid, rid]
    assert adapter.body(0) == adapter.body(2)
    assert sleeps == [0.5, 1.0]


def test_write_exhausted_after_sending_is_uncertain(client, adapter):
    adapter.queue(
        requests.exceptions.ReadTimeout(),
        SERVER_ERROR,
        requests.exceptions.ConnectTimeout(),
        requests.exceptions.ConnectTimeout(),
    )
    with pytest.raises(UncertainOutcome):
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-1")
    assert len(adapter.requests) == 4
    assert {adapter.query(i)["requestid"] for i in range(4)} == {"rid-1"}


def test_write_that_never_reached_the_server_is_service_unavailable(client, adapter):
    adapter.queue(*[requests.exceptions.ConnectTimeout()] * 4)
    with pytest.raises(ServiceUnavailable):
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-2")


def test_write_5xx_exhausted_is_uncertain(client, adapter):
    adapter.queue(*[SERVER_ERROR] * 4)
    with pytest.raises(UncertainOutcome):
        client.update("Customer", {"Id": "1", "SyncToken": "0", "DisplayName": "X"}, request_id="rid-3")


def test_unreadable_2xx_on_write_is_retried_then_replayed(client, adapter):
    adapter.queue(Canned(200, "<html>proxy</html>"), Canned(200, customer()))
    assert client.create("Customer", {"DisplayName": "X"}, request_id="rid-4")["Id"] == "58"
    assert adapter.query(0)["requestid"] == adapter.query(1)["requestid"] == "rid-4"


@pytest.mark.parametrize(
    ("canned", "cls"),
    [
        (Canned(400, FAULT_6240), QboValidationError),
        (
            Canned(
                400, {"Fault": {"Error": [{"Message": "Stale", "code": "5010"}], "type": "ValidationFault"}}
            ),
            StaleObject,
        ),
        (
            Canned(
                400,
                {
                    "Fault": {
                        "Error": [{"Message": "Duplicate Request ID", "code": "600"}],
                        "type": "ValidationFault",
                    }
                },
            ),
            UncertainOutcome,
        ),
        (
            Canned(
                403,
                {"Fault": {"Error": [{"Message": "denied", "code": "3100"}], "type": "AuthorizationFault"}},
            ),
            ReconnectRequired,
        ),
    ],
)
def test_client_errors_are_never_retried(client, adapter, sleeps, canned, cls):
    adapter.queue(canned)
    with pytest.raises(cls):
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-5")
    assert len(adapter.requests) == 1
    assert sleeps == []


def test_fault_inside_a_200_is_raised(client, adapter):
    adapter.queue(Canned(200, FAULT_6240))
    with pytest.raises(QboValidationError) as info:
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-6")
    assert info.value.qbo_code == "6240"
    assert "Id=71" in (info.value.qbo_detail or "")


def test_short_throttle_is_slept_in_process(client, adapter, sleeps):
    adapter.queue(Canned(429, "", {"Retry-After": "2"}), Canned(200, customer()))
    assert client.read("Customer", "58")["Id"] == "58"
    assert sleeps == [2.0]


def test_long_throttle_is_raised_for_the_queue_to_redeliver(client, adapter, sleeps):
    adapter.queue(
        Canned(
            429,
            '<IntuitResponse><Fault type="SERVICE"><Error code="3001"><Message>'
            "message=ThrottleExceeded; errorCode=003001; statusCode=429</Message></Error></Fault>"
            "</IntuitResponse>",
        )
    )
    with pytest.raises(Throttled) as info:
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-7")
    assert info.value.retry_after == 60
    assert len(adapter.requests) == 1
    assert sleeps == []


def test_throttle_cap_is_configurable(session, tokens, adapter):
    sleeps: list[float] = []
    c = QboClient(
        base_url=BASE,
        realm_id=REALM,
        tokens=tokens,
        session=session,
        sleep=sleeps.append,
        max_throttle_wait=60,
    )
    adapter.queue(Canned(429, ""), Canned(200, customer()))
    c.read("Customer", "58")
    assert sleeps == [60]


def test_throttle_on_the_last_attempt_is_raised(session, tokens, adapter):
    sleeps: list[float] = []
    c = QboClient(
        base_url=BASE, realm_id=REALM, tokens=tokens, session=session, sleep=sleeps.append, max_attempts=2
    )
    adapter.queue(Canned(429, "", {"Retry-After": "1"}), Canned(429, "", {"Retry-After": "1"}))
    with pytest.raises(Throttled):
        c.read("Customer", "58")
    assert sleeps == [1.0]


# ---------------------------------------------------------------------------- 401


def test_401_refreshes_once_and_retries_with_the_new_token(client, adapter, tokens, sleeps):
    adapter.queue(UNAUTHORIZED, Canned(200, customer()))
    assert client.read("Customer", "58")["Id"] == "58"
    assert tokens.rejected == [TOKEN_1]
    assert adapter.requests[1].headers["Authorization"] == f"Bearer {TOKEN_2}"
    assert sleeps == []


def test_401_on_a_write_keeps_the_requestid(client, adapter):
    adapter.queue(UNAUTHORIZED, Canned(200, customer()))
    client.create("Customer", {"DisplayName": "X"}, request_id="rid-8")
    assert adapter.query(0)["requestid"] == adapter.query(1)["requestid"] == "rid-8"


def test_second_401_is_reconnect_required(client, adapter, tokens):
    adapter.queue(UNAUTHORIZED, UNAUTHORIZED)
    with pytest.raises(ReconnectRequired) as info:
        client.read("Customer", "58")
    assert tokens.rejected == [TOKEN_1]
    assert len(adapter.requests) == 2
    assert info.value.qbo_code == "3200"


def test_refresh_failure_propagates(session, adapter, sleeps):
    tokens = FakeTokens(refresh_error=ReconnectRequired("invalid_grant"))
    c = QboClient(base_url=BASE, realm_id=REALM, tokens=tokens, session=session, sleep=sleeps.append)
    adapter.queue(UNAUTHORIZED)
    with pytest.raises(ReconnectRequired):
        c.read("Customer", "58")
    assert len(adapter.requests) == 1


def test_401_retry_does_not_use_up_attempts(session, tokens, adapter):
    c = QboClient(
        base_url=BASE, realm_id=REALM, tokens=tokens, session=session, sleep=lambda s: None, max_attempts=1
    )
    adapter.queue(UNAUTHORIZED, Canned(200, customer()))
    assert c.read("Customer", "58")["Id"] == "58"


# ---------------------------------------------------------------------------- logs


def test_logs_carry_context_but_never_tokens_or_bodies(client, adapter, caplog):
    caplog.set_level(logging.DEBUG)
    adapter.queue(UNAUTHORIZED, SERVER_ERROR, Canned(200, customer(), {"intuit_tid": "tid-9"}))
    client.create("Customer", {"DisplayName": "Jane Private Person"}, request_id="rid-9")
    text = all_log_text(caplog)
    for secret in (TOKEN_1, TOKEN_2, "Bearer", "Jane Private Person", "Rivera"):
        assert secret not in text
    records = [r for r in caplog.records if r.name == "qbsync.qbo"]
    assert [(r.status, r.attempt) for r in records] == [(401, 1), (503, 1), (200, 2)]
    assert records[-1].intuit_tid == "tid-9"
    assert records[-1].operation == "create" and records[-1].entity == "Customer"
    assert records[-1].realm_id == REALM
    assert isinstance(records[-1].elapsed_ms, float)


def test_query_text_is_not_logged(client, adapter, caplog):
    caplog.set_level(logging.DEBUG)
    adapter.queue(Canned(200, {"QueryResponse": {}, "time": "x"}))
    client.query(f"SELECT * FROM Customer WHERE DisplayName = {quote_literal('Jane Private')}")
    assert "Jane Private" not in all_log_text(caplog)


# ---------------------------------------------------------------------------- queries


def test_quote_literal_escapes_quotes_and_backslashes():
    assert quote_literal("O'Brien CPA") == "'O\\'Brien CPA'"
    assert quote_literal("a\\b") == "'a\\\\b'"
    with pytest.raises(ValueError):
        quote_literal(5)  # type: ignore[arg-type]


def test_query_posts_application_text(client, adapter):
    adapter.queue(
        Canned(200, {"QueryResponse": {"Customer": [{"Id": "1"}], "startPosition": 1, "maxResults": 1}}),
        Canned(200, {"QueryResponse": {}, "time": "x"}),
    )
    statement = "SELECT * FROM Customer WHERE DisplayName = 'O\\'Brien'"
    assert client.query(statement) == [{"Id": "1"}]
    assert adapter.requests[0].method == "POST"
    assert adapter.path(0).endswith("/query")
    assert adapter.requests[0].headers["Content-Type"] == "application/text"
    assert adapter.body(0).decode() == statement
    assert "requestid" not in adapter.query(0)
    assert client.query("SELECT * FROM Customer WHERE Id = '999'") == []


def _page(n: int, start: int) -> Canned:
    rows = [{"Id": str(start + i)} for i in range(n)]
    return Canned(
        200, {"QueryResponse": {"Account": rows, "startPosition": start, "maxResults": n} if n else {}}
    )


def test_query_all_pages_until_a_short_page(client, adapter):
    adapter.queue(_page(2, 1), _page(2, 3), _page(1, 5))
    rows = list(client.query_all("SELECT * FROM Account ORDERBY Id", page_size=2))
    assert [r["Id"] for r in rows] == ["1", "2", "3", "4", "5"]
    statements = [adapter.body(i).decode() for i in range(3)]
    assert statements == [
        "SELECT * FROM Account ORDERBY Id STARTPOSITION 1 MAXRESULTS 2",
        "SELECT * FROM Account ORDERBY Id STARTPOSITION 3 MAXRESULTS 2",
        "SELECT * FROM Account ORDERBY Id STARTPOSITION 5 MAXRESULTS 2",
    ]


def test_query_all_exact_multiple_ends_on_an_empty_page(client, adapter):
    adapter.queue(_page(2, 1), _page(0, 3))
    assert len(list(client.query_all("SELECT * FROM Account", page_size=2))) == 2
    assert len(adapter.requests) == 2


def test_query_all_validates_its_input(client):
    with pytest.raises(ValueError):
        list(client.query_all("SELECT * FROM Account MAXRESULTS 5"))
    with pytest.raises(ValueError):
        list(client.query_all("SELECT * FROM Account", page_size=1001))


def test_query_all_allows_paging_words_inside_literals(client, adapter):
    adapter.queue(_page(0, 1))
    assert list(client.query_all("SELECT * FROM Customer WHERE DisplayName = 'MAXRESULTS Inc'")) == []


def test_count(client, adapter):
    adapter.queue(Canned(200, {"QueryResponse": {"totalCount": 42}}))
    assert client.count("Payment", "TxnDate >= '2026-03-01'") == 42
    assert adapter.body().decode() == "SELECT count(*) FROM Payment WHERE TxnDate >= '2026-03-01'"


# ---------------------------------------------------------------------------- batch


def test_batch_maps_results_by_bid_and_types_item_faults(client, adapter):
    ops = [
        BatchOperation.create("c1", "Customer", {"DisplayName": "Lopez Tax Services"}),
        BatchOperation.update("u1", "Invoice", {"Id": "130", "SyncToken": "1", "PrivateNote": "qbsync:inv"}),
        BatchOperation.select("q1", "SELECT * FROM Item WHERE Name = 'Bookkeeping'"),
        BatchOperation.void("v1", "Invoice", "131", "0"),
        BatchOperation.delete("d1", "Invoice", "132", "3"),
    ]
    adapter.queue(
        Canned(
            200,
            {
                "BatchItemResponse": [
                    {
                        "bId": "q1",
                        "QueryResponse": {"Item": [{"Id": "21"}], "startPosition": 1, "maxResults": 1},
                    },
                    {"bId": "c1", "Fault": FAULT_6240["Fault"]},
                    {"bId": "u1", "Invoice": {"Id": "130", "SyncToken": "2"}},
                    {
                        "bId": "v1",
                        "Fault": {"type": "ValidationFault", "Error": [{"Message": "Stale", "code": "5010"}]},
                    },
                ],
                "time": "x",
            },
        )
    )
    results = client.batch(ops, request_id=request_id_for("batch", 1))
    assert [r.bid for r in results] == ["c1", "u1", "q1", "v1", "d1"]
    c1, u1, q1, v1, d1 = results
    assert isinstance(c1.error, QboValidationError) and c1.error.qbo_code == "6240" and not c1.ok
    assert "Id=71" in (c1.error.qbo_detail or "")
    assert u1.ok and u1.data == {"Id": "130", "SyncToken": "2"}
    assert q1.rows == [{"Id": "21"}]
    assert isinstance(v1.error, StaleObject)
    assert isinstance(d1.error, UncertainOutcome)  # not answered
    wire = adapter.json()["BatchItemRequest"]
    assert wire[0] == {"bId": "c1", "operation": "create", "Customer": {"DisplayName": "Lopez Tax Services"}}
    assert wire[1]["Invoice"]["sparse"] is True
    assert wire[2] == {"bId": "q1", "Query": "SELECT * FROM Item WHERE Name = 'Bookkeeping'"}
    assert wire[3] == {
        "bId": "v1",
        "operation": "update",
        "optionsData": "void",
        "Invoice": {"Id": "131", "SyncToken": "0", "sparse": True},
    }
    assert adapter.query()["requestid"] == request_id_for("batch", 1)
    assert adapter.path().endswith("/batch")
    # client data stays out of reprs
    assert "Lopez" not in repr(results)


def test_batch_limits(client, adapter):
    ops = [BatchOperation.select(f"q{i}", "SELECT * FROM Item") for i in range(31)]
    with pytest.raises(ValueError):
        client.batch(ops, request_id="r")
    with pytest.raises(ValueError):
        client.batch(ops[:2], request_id="x" * 37)
    with pytest.raises(ValueError):
        client.batch([ops[0], ops[0]], request_id="r")
    with pytest.raises(ValueError):
        client.batch([], request_id="r")
    with pytest.raises(ValueError):
        BatchOperation.select("b" * 11, "SELECT * FROM Item")
    with pytest.raises(ValueError):
        BatchOperation.create("c", "Customer", {})
    assert adapter.requests == []


def test_batch_5xx_is_retried_with_the_same_requestid(client, adapter):
    adapter.queue(SERVER_ERROR, Canned(200, {"BatchItemResponse": [{"bId": "q", "QueryResponse": {}}]}))
    results = client.batch([BatchOperation.select("q", "SELECT * FROM Item")], request_id="b-1")
    assert results[0].rows == []
    assert adapter.query(0)["requestid"] == adapter.query(1)["requestid"] == "b-1"


# ---------------------------------------------------------------------------- CDC


def test_cdc_splits_changed_and_deleted_and_returns_server_time(client, adapter):
    adapter.queue(
        Canned(
            200,
            {
                "CDCResponse": [
                    {
                        "QueryResponse": [
                            {
                                "Customer": [{"Id": "58", "SyncToken": "4"}],
                                "startPosition": 1,
                                "maxResults": 1,
                            },
                            {
                                "Invoice": [
                                    {"Id": "130"},
                                    {"Id": "266", "status": "Deleted", "domain": "QBO"},
                                ],
                                "startPosition": 1,
                                "maxResults": 2,
                            },
                            {},
                        ]
                    }
                ],
                "time": "2026-03-02T10:11:12.345-08:00",
            },
        )
    )
    since = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    result = client.cdc(["Customer", "Invoice", "Payment"], since)
    assert adapter.query() == {
        "minorversion": "75",
        "entities": "Customer,Invoice,Payment",
        "changedSince": "2026-03-01T08:00:00+00:00",
    }
    assert adapter.requests[0].method == "GET"
    assert result.changed["Customer"] == [{"Id": "58", "SyncToken": "4"}]
    assert result.changed["Invoice"] == [{"Id": "130"}]
    assert result.deleted["Invoice"] == [{"Id": "266", "status": "Deleted", "domain": "QBO"}]
    assert result.changed["Payment"] == [] and result.deleted["Payment"] == []
    assert result.time == datetime(2026, 3, 2, 18, 11, 12, 345000, tzinfo=UTC)
    assert result.object_count == 3 and not result.capped


def test_cdc_rejects_naive_times_and_empty_lists(client):
    with pytest.raises(ValueError):
        client.cdc(["Customer"], datetime(2026, 3, 1))
    with pytest.raises(ValueError):
        client.cdc([], datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(ValueError):
        client.cdc("Customer", datetime.now(UTC))


def test_cdc_without_time_is_an_error(client, adapter):
    adapter.queue(Canned(200, {"CDCResponse": []}))
    with pytest.raises(ServiceUnavailable):
        client.cdc(["Customer"], datetime.now(UTC))


# ---------------------------------------------------------------------------- deep links


def test_deep_links():
    assert (
        deep_link("https://app.qbo.intuit.com/", "Invoice", "130")
        == "https://app.qbo.intuit.com/app/invoice?txnId=130"
    )
    assert (
        deep_link("https://app.sandbox.qbo.intuit.com", "Customer", "58", realm_id=REALM)
        == f"https://app.sandbox.qbo.intuit.com/app/customerdetail?nameId=58&companyId={REALM}"
    )
    assert deep_link("https://h", "Payment", "9").endswith("/app/recvpayment?txnId=9")
    with pytest.raises(ValueError):
        deep_link("https://h", "TaxCode", "1")


def test_throttle_after_a_lost_write_is_flagged_maybe_applied(client, adapter):
    adapter.queue(requests.exceptions.ReadTimeout(), Canned(429, ""))
    with pytest.raises(Throttled) as info:
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-10")
    assert info.value.maybe_applied is True
    assert adapter.query(0)["requestid"] == adapter.query(1)["requestid"]


def test_a_refusal_after_a_sent_but_unanswered_write_is_flagged_maybe_applied(client, adapter):
    # the first create reached QuickBooks (read timeout: no answer); the resend is refused. Whoever handles
    # the refusal must keep the intent: the first attempt may have created the customer.
    adapter.queue(requests.exceptions.ReadTimeout(), Canned(400, FAULT_6240))
    with pytest.raises(QboValidationError) as info:
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-12")
    assert info.value.maybe_applied is True
    assert info.value.context()["maybe_applied"] is True
    assert adapter.query(0)["requestid"] == adapter.query(1)["requestid"]


def test_a_write_whose_answers_are_all_lost_is_uncertain_and_maybe_applied(client, adapter):
    adapter.queue(*[requests.exceptions.ReadTimeout() for _ in range(5)])
    with pytest.raises(UncertainOutcome) as info:
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-13")
    assert info.value.maybe_applied is True


def test_a_refusal_of_a_first_write_is_not_flagged(client, adapter):
    adapter.queue(Canned(400, FAULT_6240))
    with pytest.raises(QboValidationError) as info:
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-14")
    assert info.value.maybe_applied is False
    assert "maybe_applied" not in info.value.context()


def test_throttle_on_a_first_attempt_is_not_flagged(client, adapter):
    adapter.queue(Canned(429, ""))
    with pytest.raises(Throttled) as info:
        client.create("Customer", {"DisplayName": "X"}, request_id="rid-11")
    assert info.value.maybe_applied is False


def test_cdc_at_the_object_cap_is_flagged(client, adapter):
    rows = [{"Id": str(i)} for i in range(1000)]
    adapter.queue(
        Canned(
            200, {"CDCResponse": [{"QueryResponse": [{"Customer": rows}]}], "time": "2026-03-02T10:00:00Z"}
        )
    )
    result = client.cdc(["Customer"], datetime(2026, 3, 1, tzinfo=UTC))
    assert result.capped
    assert len(result.changed["Customer"]) == 1000
    assert result.time == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
