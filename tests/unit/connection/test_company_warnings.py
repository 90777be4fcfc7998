"""Nothing lands differently from what the firm sees without saying so (issue 11 item 4): a company with
custom transaction numbers off numbers every invoice itself, so completing the connection and the check
warn about it (one Preferences read), and the "Connection Changed" event carries the warning."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from qbsync.auth import Caller
from qbsync.errors import ServiceUnavailable

WARNING_CODE = "custom_txn_numbers_off"


def _connect(service, intuit, owner: Caller, realm: str):
    state = parse_qs(urlsplit(service.create_connect_url(owner).url).query)["state"][0]
    parked = service.complete_callback(code=intuit.issue_code(realm), state=state, realm_id=realm)
    return service.complete_connection(owner, parked.handle)


def test_connecting_a_company_with_custom_numbers_off_warns_in_the_answer_and_the_event(
    service, intuit, owner, publisher
):
    intuit.custom_txn_numbers = False

    outcome = _connect(service, intuit, owner, "1001")

    assert outcome.change == "connected"
    [warning] = outcome.warnings
    assert warning.code == WARNING_CODE
    assert "QuickBooks' own numbers" in warning.message
    assert "Settings > Account and settings > Sales > Custom transaction numbers" in warning.message
    [event] = publisher.details("connected")
    assert event["warnings"] == [warning.model_dump(mode="json")]
    assert intuit.preferences_reads == 1  # one read, no reference-data batch


def test_a_company_with_custom_numbers_on_carries_no_warning(service, intuit, owner, publisher):
    outcome = _connect(service, intuit, owner, "1001")

    assert outcome.warnings == []
    assert publisher.details("connected")[0]["warnings"] == []


def test_reconnecting_warns_too(service, intuit, owner, publisher):
    _connect(service, intuit, owner, "1001")
    intuit.custom_txn_numbers = False

    outcome = _connect(service, intuit, owner, "1001")

    assert outcome.change == "reconnected"
    assert [w.code for w in outcome.warnings] == [WARNING_CODE]
    assert [w["code"] for w in publisher.details("reconnected")[0]["warnings"]] == [WARNING_CODE]


def test_the_check_warns_and_follows_the_company(service, intuit, owner):
    _connect(service, intuit, owner, "1001")
    intuit.custom_txn_numbers = False
    assert [w.code for w in service.check(owner).warnings] == [WARNING_CODE]

    intuit.custom_txn_numbers = True  # the firm turned them on in QuickBooks
    assert service.check(owner).warnings == []


def test_preferences_that_cannot_be_read_never_block_the_connection(service, intuit, owner, repo):
    intuit.custom_txn_numbers = False
    intuit.preferences_failures.append(ServiceUnavailable("QuickBooks is down"))

    outcome = _connect(service, intuit, owner, "1001")

    assert outcome.change == "connected" and outcome.warnings == []
    assert repo.get("firm-a").status == "connected"
    assert [w.code for w in service.check(owner).warnings] == [WARNING_CODE]  # the check reads again
