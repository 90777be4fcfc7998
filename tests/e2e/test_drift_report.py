"""The drift report (issue 15 item 2) through the whole local stack, driven only from outside: the admin API
over HTTP, the platform's events on the bus, the accountant in the simulator. The edit is made under the
simulator's "lose this webhook" fault (as in test_cdc_catch_up), so only the report can find it.

1. The invoice syncs; the report is clean.
2. The accountant changes a line amount in QuickBooks; ``POST /drift/run`` reports an ``amount_mismatch``
   with was/now to the cent (and the customer's balance difference it explains) and opens its error (the
   invoice is "failed").
3. The firm fixes it with the error's Resync; QuickBooks is back to 605.00 and the next report is clean.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from local.qbo_sim.client import SimAccountant
from tests.e2e.test_cdc_catch_up import _edit_unnotified, _invoice
from tests.fixtures.firms import admin_jwt
from tests.fixtures.platform import (
    DEADLINE_SECONDS,
    StatusInbox,
    admin_api,
    connect_owner,
    put_on_bus,
    sample_event,
    untaxed_invoice_without_services,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def firm_id() -> str:
    return f"firm-e2e-drift-{secrets.token_hex(4)}"


def _report(local_stack: Any, token: str) -> dict[str, Any]:
    answer = admin_api(local_stack, token, "POST", "/drift/run")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_amount_changed_in_quickbooks_is_reported_and_fixed_by_resync(
    local_stack: Any, qbo_sim: Any, qbo_company: str, firm_id: str, status_inbox: StatusInbox
) -> None:
    connect_owner(local_stack, qbo_sim, firm_id, qbo_company)
    token = admin_jwt(local_stack, firm_id)
    deadline = time.monotonic() + 3 * DEADLINE_SECONDS
    put_on_bus(local_stack, sample_event("client_account_created", firm_id))
    put_on_bus(local_stack, untaxed_invoice_without_services(firm_id))
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    assert _report(local_stack, token)["findings"] == []

    _edit_unnotified(qbo_sim, SimAccountant.sign_in(qbo_sim.control, qbo_company), qbo_company, 125.0)
    report = _report(local_stack, token)

    kinds = {f["platform_id"]: f for f in report["findings"]}
    assert {(f["kind"], pid) for pid, f in kinds.items()} == {
        ("amount_mismatch", "inv-400"),
        ("balance_mismatch", "acct-100"),  # the customer's balance follows the invoice
    }
    finding = kinds["inv-400"]
    assert finding["new"] is True
    assert {"field": "total", "was": "605.00 USD", "now": "650.00 USD"} in finding["differences"]
    assert kinds["acct-100"]["explained_by"] == ["invoice#inv-400"]
    status_inbox.wait_for("Invoice", "inv-400", "failed", deadline)
    stored = admin_api(local_stack, token, "GET", "/drift")
    assert stored.status_code == 200 and stored.json()["report_id"] == report["report_id"]

    resync = admin_api(local_stack, token, "POST", f"/errors/{finding['error_id']}/resync")
    assert resync.status_code == 202, resync.text
    status_inbox.received.clear()
    status_inbox.wait_for("Invoice", "inv-400", "synced", deadline)
    assert float(_invoice(qbo_sim, qbo_company)["TotalAmt"]) == 605.0
    assert _report(local_stack, token)["findings"] == []
