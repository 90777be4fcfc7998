"""Fault injection, limits, latency and the request log (the simulator's edge), over HTTP."""

from __future__ import annotations

import json
import threading

import pytest
import requests


@pytest.fixture
def limits_on(qbo_sim):
    """Turn Intuit's limits on for one test with small values, then off again."""

    def configure(**values):
        return qbo_sim.control.set_limits(enabled=True, **values)

    yield configure
    qbo_sim.control.set_limits(
        enabled=False,
        requests_per_minute=500,
        requests_per_second=10,
        concurrent=10,
        batch_per_minute=40,
        batch_per_minute_realm=120,
    )


def test_http_500_for_next_request_only(api, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("http_500", count=1, realm_id=qbo_company)
    failed = api.get(f"companyinfo/{qbo_company}")
    assert failed.status_code == 500
    error = failed.json()["Fault"]
    assert error["type"] == "SystemFault" and error["Error"][0]["code"] == "10000"
    assert api.get(f"companyinfo/{qbo_company}").status_code == 200


def test_http_503_unauthorized_and_throttle(api, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("http_503", count=1, realm_id=qbo_company)
    assert api.get("preferences").status_code == 503
    qbo_sim.control.inject_fault("unauthorized", count=1, realm_id=qbo_company)
    unauthorized = api.get("preferences")
    assert unauthorized.status_code == 401
    assert unauthorized.json()["fault"]["error"][0]["code"] == "3200"
    qbo_sim.control.inject_fault("throttle", count=2, realm_id=qbo_company)
    for _ in range(2):
        throttled = api.get("preferences")
        assert throttled.status_code == 429
        assert "ThrottleExceeded" in throttled.text and 'code="3001"' in throttled.text
    assert api.get("preferences").status_code == 200


def test_timeout_holds_then_answers_504(api, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("timeout", count=1, realm_id=qbo_company, hang_ms=50)
    response = api.get("preferences")
    assert response.status_code == 504
    log = qbo_sim.control.requests(realm_id=qbo_company, limit=1)[0]
    assert log["fault"] == "timeout" and log["duration_ms"] >= 50


def test_drop_after_commit_closes_connection_but_write_is_committed(api, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("drop_after_commit", count=1, realm_id=qbo_company, method="POST")
    # the response head arrives, then the connection closes mid-body
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        api.post("customer", {"DisplayName": "Ghost Write"}, requestid="rid-ghost")
    names = [c["DisplayName"] for c in qbo_sim.control.entities(qbo_company, "Customer")]
    assert names.count("Ghost Write") == 1
    # the retry with the same requestid gets the original answer instead of a second customer
    replay = api.post("customer", {"DisplayName": "Ghost Write"}, requestid="rid-ghost")
    assert replay.status_code == 200
    assert replay.json()["Customer"]["DisplayName"] == "Ghost Write"
    assert [c["DisplayName"] for c in qbo_sim.control.entities(qbo_company, "Customer")].count(
        "Ghost Write"
    ) == 1


def test_drop_after_commit_with_5xx_answer(api, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault("drop_after_commit", count=1, realm_id=qbo_company, response="http_502")
    response = api.post("customer", {"DisplayName": "Half Written"})
    assert response.status_code == 502
    assert any(c["DisplayName"] == "Half Written" for c in qbo_sim.control.entities(qbo_company, "Customer"))


def test_fault_filters_and_ratio(api, qbo_sim, qbo_company):
    qbo_sim.control.inject_fault(
        "http_500", ratio=1.0, realm_id=qbo_company, method="POST", path_regex="/customer$"
    )
    assert api.get("preferences").status_code == 200  # GET is not matched
    assert api.post("item", {"Name": "x"}).status_code == 400  # other path: a normal validation error
    assert api.post("customer", {"DisplayName": "A"}).status_code == 500
    assert api.post("customer", {"DisplayName": "B"}).status_code == 500
    assert qbo_sim.control._call("GET", "/_sim/faults")["faults"][0]["fired"] == 2
    qbo_sim.control.clear_faults()
    assert api.post("customer", {"DisplayName": "C"}).status_code == 200
    qbo_sim.control.inject_fault("http_500", count=1, realm_id="1")  # another realm: never fires here
    assert api.get("preferences").status_code == 200


def test_fault_body_validation(qbo_sim):
    from local.qbo_sim.client import SimControlError

    with pytest.raises(SimControlError) as bad_kind:
        qbo_sim.control.inject_fault("meteor")
    assert bad_kind.value.status == 400
    with pytest.raises(SimControlError):
        qbo_sim.control.inject_fault("http_500", ratio=2)
    with pytest.raises(SimControlError):
        qbo_sim.control.inject_fault("http_500", path_regex="(")


def test_rate_limit_per_minute_answers_429_xml(api, qbo_company, limits_on):
    limits_on(requests_per_minute=3)
    statuses = [api.get("preferences").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = api.get("preferences")
    assert throttled.headers["content-type"].startswith("application/xml")
    assert "message=ThrottleExceeded; errorCode=003001; statusCode=429" in throttled.text


def test_batch_limit_per_minute(api, limits_on):
    limits_on(batch_per_minute=1)
    body = {"BatchItemRequest": [{"bId": "q", "Query": "SELECT * FROM Item"}]}
    assert api.post("batch", body).status_code == 200
    assert api.post("batch", body).status_code == 429
    assert api.get("preferences").status_code == 200  # plain requests are not batch calls


def test_latency_injection(api, qbo_sim, qbo_company):
    qbo_sim.control.set_latency(fixed_ms=40, jitter_ms=0)
    try:
        assert api.get("preferences").status_code == 200
        assert qbo_sim.control.requests(realm_id=qbo_company, limit=1)[0]["duration_ms"] >= 40
    finally:
        qbo_sim.control.set_latency(0, 0)


def test_request_log_has_no_tokens_or_codes(qbo_sim, qbo_app, qbo_company):
    qbo_sim.control.set_consent(qbo_company, client_id=qbo_app.client_id)
    callback = qbo_sim.control.authorize(qbo_app.client_id, qbo_app.redirect_uri, state="secret-state")
    tokens = requests.post(
        f"{qbo_sim.url}/oauth2/v1/tokens/bearer",
        auth=(qbo_app.client_id, qbo_app.client_secret),
        data={
            "grant_type": "authorization_code",
            "code": callback["code"],
            "redirect_uri": qbo_app.redirect_uri,
        },
        timeout=10,
    ).json()
    requests.get(
        f"{qbo_sim.url}/v3/company/{qbo_company}/preferences",
        params={"minorversion": "75", "requestid": "log-1"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    log = qbo_sim.control.requests(limit=50)
    text = json.dumps(log)
    for secret in (tokens["access_token"], tokens["refresh_token"], callback["code"], qbo_app.client_secret):
        assert secret not in text
    mine = [e for e in log if e["realm_id"] == qbo_company]
    assert mine[-1]["path"].endswith("/preferences")
    assert mine[-1]["status"] == 200
    assert mine[-1]["client_id"] == qbo_app.client_id
    assert "state=***" in next(e["query"] for e in log if e["path"] == "/connect/oauth2")


def test_concurrent_limit_counts_requests_in_flight(api, qbo_sim, qbo_company, qbo_app, limits_on):
    limits_on(concurrent=1)
    qbo_sim.control.set_latency(fixed_ms=1000)
    results: list[int] = []
    slow = threading.Thread(target=lambda: results.append(api.get("preferences").status_code))
    try:
        slow.start()
        params = {"realm_id": qbo_company, "client_id": qbo_app.client_id}
        # wait until the first request holds its slot (a condition, not a timer)
        while qbo_sim.control._call("GET", "/_sim/limits", params=params)["in_flight"] != 1:
            assert slow.is_alive()
        second = requests.get(api.url("preferences"), headers=api.headers(), timeout=10)
        assert second.status_code == 429
    finally:
        qbo_sim.control.set_latency(0, 0)
        slow.join()
    assert results == [200]
