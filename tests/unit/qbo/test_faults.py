"""Every form of QuickBooks Fault maps to the right typed error (QBO.md §3.2, §4)."""

from __future__ import annotations

import json

import pytest
import requests
from qbsync.errors import (
    ConfigurationError,
    DataError,
    QboObjectNotFound,
    QboValidationError,
    ReconnectRequired,
    RetryableError,
    ServiceUnavailable,
    StaleObject,
    Throttled,
    UncertainOutcome,
)
from qbsync.qbo.faults import (
    error_from_fault,
    error_from_response,
    parse_fault,
    parse_fault_json,
    parse_fault_object,
)
from requests.structures import CaseInsensitiveDict

REALM = "9130350000000001"


def make_response(status: int, body: str | dict | bytes = b"", headers: dict[str, str] | None = None):
    response = requests.Response()
    response.status_code = status
    if isinstance(body, dict):
        body = json.dumps(body)
    response._content = body.encode() if isinstance(body, str) else body
    response.headers = CaseInsensitiveDict(headers or {})
    response.encoding = "utf-8"
    return response


def json_fault(code: str, message: str, detail: str, element: str = "", fault_type: str = "ValidationFault"):
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": element}],
            "type": fault_type,
        },
        "time": "2026-03-02T10:11:12.345-08:00",
    }


XML_THROTTLE = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<IntuitResponse time="2026-03-02T10:11:12.345-08:00" xmlns="http://schema.intuit.com/finance/v3">
  <Fault type="SERVICE">
    <Error code="3001">
      <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>
      <Detail>The request limit was reached.  Try again later</Detail>
    </Error>
  </Fault>
</IntuitResponse>"""

TOKEN_FRAGMENT = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0-secret-part"
LOWER_CASE_401 = {
    "warnings": None,
    "intuitObject": None,
    "fault": {
        "error": [
            {
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": f"Token expired: {TOKEN_FRAGMENT}",
                "code": "3200",
                "element": None,
            }
        ],
        "type": "AUTHENTICATION",
    },
    "report": None,
    "queryResponse": None,
    "batchItemResponse": [],
    "requestId": None,
    "time": 1700000000000,
    "cdcresponse": [],
}


def test_validation_fault_keeps_code_detail_element_and_tid_but_not_detail_in_str():
    detail = "The name supplied already exists. : Id=1067"
    response = make_response(
        400,
        json_fault("6240", "Duplicate Name Exists Error", detail, "DisplayName"),
        {"intuit_tid": "1-abc-tid"},
    )
    err = error_from_response(response, realm_id=REALM, entity="Customer", is_write=True)
    assert type(err) is QboValidationError
    assert isinstance(err, DataError)
    assert err.qbo_code == "6240"
    assert err.qbo_detail == detail
    assert err.extra["element"] == "DisplayName"
    assert err.extra["qbo_status"] == 400
    assert err.intuit_tid == "1-abc-tid"
    assert err.realm_id == REALM and err.entity == "Customer"
    assert "Duplicate Name Exists Error" in str(err)
    # Detail may carry client data: not in the message nor in the loggable context
    assert "Id=1067" not in str(err)
    assert "Id=1067" not in repr(err.context())
    assert err.http_status == 422  # qbsync's own status, not QBO's


def test_duplicate_doc_number_detail_carries_txn_id():
    detail = "Duplicate Document Number Error : ... DocNumber=TD-10042 is assigned to TxnType=Invoice"
    detail += " with TxnId=6575"
    err = error_from_response(
        make_response(400, json_fault("6140", "Duplicate Document Number Error", detail)),
        realm_id=REALM,
        entity="Invoice",
    )
    assert isinstance(err, QboValidationError)
    assert "TxnId=6575" in (err.qbo_detail or "")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("610", QboObjectNotFound),
        ("5010", StaleObject),
        ("2500", QboValidationError),
        ("6200", QboValidationError),
    ],
)
def test_specific_codes(code, cls):
    err = error_from_response(make_response(400, json_fault(code, "msg", "detail")), realm_id=REALM)
    assert type(err) is cls
    assert err.qbo_code == code


def test_duplicate_request_id_is_an_uncertain_outcome():
    err = error_from_response(
        make_response(400, json_fault("600", "Duplicate Request ID", "dup")), realm_id=REALM, is_write=True
    )
    assert isinstance(err, UncertainOutcome)


def test_lower_case_401_is_reconnect_and_never_keeps_the_token_echo():
    response = make_response(
        401,
        LOWER_CASE_401,
        {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"', "intuit_tid": "t1"},
    )
    err = error_from_response(response, realm_id=REALM, entity="Invoice")
    assert isinstance(err, ReconnectRequired)
    assert err.qbo_code == "3200"
    assert err.qbo_detail is None
    for text in (str(err), repr(err.context()), repr(err.extra)):
        assert TOKEN_FRAGMENT not in text
    assert err.intuit_tid == "t1"


def test_xml_429_is_throttled_with_intuits_60_seconds():
    err = error_from_response(
        make_response(429, XML_THROTTLE, {"Content-Type": "application/xml"}), realm_id=REALM
    )
    assert isinstance(err, Throttled)
    assert isinstance(err, RetryableError)
    assert err.retry_after == 60
    assert err.qbo_code == "3001"
    assert err.extra["fault_type"] == "SERVICE"


def test_retry_after_header_wins_over_the_default():
    err = error_from_response(make_response(429, "", {"Retry-After": "7"}), realm_id=REALM)
    assert isinstance(err, Throttled)
    assert err.retry_after == 7


def test_403_with_xml_throttle_body_is_throttled():
    body = XML_THROTTLE.replace("statusCode=429", "statusCode=403")
    err = error_from_response(make_response(403, body), realm_id=REALM)
    assert isinstance(err, Throttled)


def test_403_json_with_code_003001_is_throttled():
    body = json_fault(
        "003001", "message=ThrottleExceeded; errorCode=003001; statusCode=403", "", "", "SERVICE"
    )
    err = error_from_response(make_response(403, body), realm_id=REALM)
    assert isinstance(err, Throttled)
    assert err.qbo_code == "3001"


def test_throttle_text_in_non_xml_non_json_body():
    err = error_from_response(make_response(403, "Error: ThrottleExceeded, slow down"), realm_id=REALM)
    assert isinstance(err, Throttled)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_non_json_5xx_read_vs_write(status):
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    read = error_from_response(make_response(status, html), realm_id=REALM, entity="Invoice")
    write = error_from_response(make_response(status, html), realm_id=REALM, entity="Invoice", is_write=True)
    assert type(read) is ServiceUnavailable
    assert type(write) is UncertainOutcome
    assert read.extra["qbo_status"] == status


def test_system_fault_json_500():
    body = json_fault(
        "10000", "An application error has occurred while processing your request", "x", "", "SystemFault"
    )
    assert isinstance(error_from_response(make_response(500, body), realm_id=REALM), ServiceUnavailable)
    assert isinstance(
        error_from_response(make_response(500, body), realm_id=REALM, is_write=True), UncertainOutcome
    )


def test_503_retry_after_is_kept():
    err = error_from_response(make_response(503, "", {"Retry-After": "3"}), realm_id=REALM)
    assert isinstance(err, ServiceUnavailable)
    assert err.retry_after == 3


def test_authorization_fault_is_reconnect():
    body = json_fault(
        "3100",
        "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
        "",
        fault_type="AuthorizationFault",
    )
    err = error_from_response(make_response(403, body), realm_id=REALM)
    assert isinstance(err, ReconnectRequired)
    assert err.qbo_code == "3100"


def test_404_without_fault_is_configuration():
    assert isinstance(
        error_from_response(make_response(404, "Not Found"), realm_id=REALM), ConfigurationError
    )


def test_400_without_body_is_validation_without_code():
    err = error_from_response(make_response(400, ""), realm_id=REALM)
    assert type(err) is QboValidationError
    assert err.qbo_code is None


def test_parse_fault_handles_multiple_errors_and_single_error_object():
    body = {
        "Fault": {
            "Error": [
                {"Message": "A", "Detail": "a", "code": "2020", "element": "CustomerRef"},
                {"Message": "B", "Detail": "b", "code": "2500", "element": "Line.ItemRef"},
            ],
            "type": "ValidationFault",
        }
    }
    parsed = parse_fault_json(body)
    assert parsed is not None
    assert [e.code for e in parsed.errors] == ["2020", "2500"]
    assert parsed.first is not None and parsed.first.element == "CustomerRef"
    single = parse_fault_object({"Error": {"Message": "M", "code": "0610"}, "type": "ValidationFault"})
    assert single is not None and single.errors[0].code == "610"


def test_parse_fault_of_responses_without_fault():
    assert parse_fault(make_response(200, {"Customer": {"Id": "1"}})) is None
    assert parse_fault(make_response(502, "<html>bad gateway</html>")) is None
    assert parse_fault(make_response(500, "{not json")) is None


def test_code_missing_is_taken_from_the_message():
    parsed = parse_fault_object(
        {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401"}]}
    )
    assert parsed is not None and parsed.errors[0].code == "3200"


def test_batch_item_fault_without_status():
    parsed = parse_fault_object(
        {"type": "ValidationFault", "Error": [{"Message": "Stale Object Error", "code": "5010"}]}
    )
    assert isinstance(error_from_fault(parsed, status=None, realm_id=REALM, entity="Invoice"), StaleObject)
    system = parse_fault_object({"type": "SystemFault", "Error": [{"Message": "boom", "code": "10000"}]})
    assert isinstance(error_from_fault(system, status=None, realm_id=REALM, is_write=True), UncertainOutcome)


def test_xml_entities_are_unescaped_and_not_expanded():
    body = (
        '<IntuitResponse><Fault type="ValidationFault"><Error code="6000" element="TxnDate">'
        "<Message>Business &amp; rule</Message><Detail>a &lt; b</Detail></Error></Fault></IntuitResponse>"
    )
    err = error_from_response(make_response(400, body), realm_id=REALM)
    assert isinstance(err, QboValidationError)
    assert err.qbo_code == "6000"
    assert err.qbo_detail == "a < b"
    assert err.extra["element"] == "TxnDate"
    assert "Business & rule" in str(err)
