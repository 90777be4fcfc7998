"""Issue 11 item 4 through the whole local stack, driven only from outside: nothing lands differently from
what the firm sees without saying so.

- A company with custom transaction numbers off: completing the connection, ``POST /connection/check`` and
  ``GET /settings/check`` warn before the first invoice; the invoice then synced carries QuickBooks' own
  number, and its record (``GET /sync/records/invoice/{id}``) and its "Sync Status Changed: synced" event
  say so.
- An account whose only activity will not sync (a draft invoice) under "accounts with activity": skipped
  with a reason that says why, visible through ``GET /sync/records/client_account/{id}``.

Platform events go on qbsync's bus (``PlatformEventsRule`` → ``OutboundQueue`` → ``EntitySyncFunction``);
the test waits on qbsync's own "Sync Status Changed" events under one deadline: no sleeps.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import requests

from tests.fixtures.firms import admin_jwt, authorize_through_stack, complete_through_stack, handle_of
from tests.fixtures.platform import (
    DEADLINE_SECONDS,
    StatusInbox,
    put_on_bus,
    sample_event,
    untaxed_invoice_without_services,
)

pytestmark = pytest.mark.e2e

CUSTOM_NUMBERS_OFF = "custom_txn_numbers_off"


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-landed-{secrets.token_hex(4)}"


def _api(stack: Any, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs
    )


def _connect(stack: Any, qbo_sim: Any, token: str, realm_id: str) -> dict[str, Any]:
    completed = complete_through_stack(
        stack, token, handle_of(authorize_through_stack(stack, qbo_sim, token, realm_id))
    )
    assert completed.status_code == 200, completed.text
    return completed.json()


def test_custom_numbers_off_is_warned_before_the_first_invoice_and_shown_on_it(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    qbo_sim.control.set_preferences(qbo_company, custom_txn_numbers=False)
    token = admin_jwt(local_stack, firm_id)

    completed = _connect(local_stack, qbo_sim, token, qbo_company)
    assert completed["change"] == "connected"
    [warning] = completed["warnings"]
    assert warning["code"] == CUSTOM_NUMBERS_OFF
    assert "Settings > Account and settings > Sales > Custom transaction numbers" in warning["message"]

    check = _api(local_stack, token, "POST", "/connection/check")
    assert check.status_code == 200, check.text
    assert [w["code"] for w in check.json()["warnings"]] == [CUSTOM_NUMBERS_OFF]
    settings = _api(local_stack, token, "GET", "/settings/check")
    assert settings.status_code == 200, settings.text
    assert settings.json()["ok"] is True
    assert [w["code"] for w in settings.json()["warnings"]] == [CUSTOM_NUMBERS_OFF]

    deadline = time.monotonic() + DEADLINE_SECONDS
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    status_inbox.wait_for("ClientAccount", "acct-100", "skipped", deadline)  # no activity yet
    invoice_event = untaxed_invoice_without_services(firm_id)
    platform_number = invoice_event["detail"]["data"]["number"]
    put_on_bus(local_stack, invoice_event)
    synced = status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)

    [invoice] = [i for i in qbo_sim.control.entities(qbo_company, "Invoice") if i["Id"] == synced["qbo_id"]]
    quickbooks_number = invoice["DocNumber"]
    assert quickbooks_number != platform_number and quickbooks_number.isdigit()
    expected = (
        f"QuickBooks numbered it {quickbooks_number}: custom transaction numbers are off in the company, so "
        f"the platform's number {platform_number} was not sent"
    )
    assert synced["note"] == expected
    record = _api(local_stack, token, "GET", "/sync/records/invoice/inv-400")
    assert record.status_code == 200, record.text
    assert record.json()["status"] == "synced" and record.json()["note"] == expected


def test_an_account_whose_only_invoice_is_a_draft_says_why_it_is_skipped(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    token = admin_jwt(local_stack, firm_id)
    _connect(local_stack, qbo_sim, token, qbo_company)  # default settings: accounts with activity
    deadline = time.monotonic() + DEADLINE_SECONDS

    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    status_inbox.wait_for("ClientAccount", "acct-100", "skipped", deadline)
    draft = untaxed_invoice_without_services(firm_id)
    draft["detail"]["data"]["status"] = "draft"
    put_on_bus(local_stack, draft)
    status_inbox.wait_for("Invoice", "inv-400", "skipped", deadline)

    # the account's reason is rewritten by the invoice's worker before it announces the invoice skipped
    record = _api(local_stack, token, "GET", "/sync/records/client_account/acct-100")
    assert record.status_code == 200, record.text
    assert record.json()["status"] == "skipped"
    assert record.json()["skip_reason"] == (
        "no_activity: no invoices or payments that sync: 1 draft invoice. The client account syncs by itself "
        "once one of its invoices or payments does"
    )
    invoice = _api(local_stack, token, "GET", "/sync/records/invoice/inv-400").json()
    assert (invoice["status"], invoice["skip_reason"]) == ("skipped", "draft invoices are not synced")
