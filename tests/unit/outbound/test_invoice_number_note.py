"""The note an invoice carries when it lands without its platform number (issue 11 item 4), and the warning
the settings check and the connection give for the company
(``qbsync.connection.preflight.company_warnings``)."""

from __future__ import annotations

import pytest
from qbsync.connection.preflight import company_warnings, preference_warnings
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.outbound.mapping import Resolved, invoice_number_note, invoice_payload

from tests.unit.outbound.support import invoice, make_ref

OFF = make_ref(SalesFormsPrefs__CustomTxnNumbers=False)
ON = make_ref(SalesFormsPrefs__CustomTxnNumbers=True)


def test_custom_numbers_off_names_quickbooks_number_and_why() -> None:
    inv = invoice(number="PM-10042")
    assert invoice_number_note(inv, OFF, {"DocNumber": "1042"}) == (
        "QuickBooks numbered it 1042: custom transaction numbers are off in the company, so the platform's "
        "number PM-10042 was not sent"
    )


def test_the_firms_let_quickbooks_number_it_choice_is_named() -> None:
    note = invoice_number_note(invoice(), ON, {"DocNumber": "1001"}, qbo_numbers=True)
    assert note is not None and note.startswith("QuickBooks numbered it 1001: the firm chose 'Let QuickBooks")


def test_an_invoice_left_without_a_number_says_so() -> None:
    note = invoice_number_note(invoice(), ON, {"Id": "9"}, qbo_numbers=True)
    assert note is not None and note.startswith("QuickBooks left it without a number")


def test_no_note_when_the_platform_number_was_sent_or_is_what_quickbooks_chose() -> None:
    assert invoice_number_note(invoice(number="PM-1"), ON, {"DocNumber": "PM-1"}) is None
    assert invoice_number_note(invoice(number="1042"), OFF, {"DocNumber": "1042"}) is None


@pytest.mark.parametrize(("ref", "qbo_numbers"), [(OFF, False), (ON, False), (ON, True), (OFF, True)])
def test_a_note_exactly_when_the_payload_does_not_send_the_number(ref, qbo_numbers) -> None:
    inv = invoice(number="PM-10042")
    body = invoice_payload(
        inv,
        Resolved(customer_id="58", item_ids={"svc_1": "2"}),
        ref,
        FirmSyncSettings(),
        qbo_numbers=qbo_numbers,
    )
    note = invoice_number_note(inv, ref, {"DocNumber": "1001"}, qbo_numbers=qbo_numbers)
    assert ("DocNumber" in body) is (note is None)


def test_company_warnings_only_when_custom_numbers_are_off() -> None:
    [warning] = company_warnings(OFF)
    assert warning.code == "custom_txn_numbers_off"
    assert "Settings > Account and settings > Sales > Custom transaction numbers" in warning.message
    assert company_warnings(ON) == []
    assert [w.code for w in preference_warnings({"Preferences": {"SalesFormsPrefs": {}}})] == [
        "custom_txn_numbers_off"
    ]
    assert preference_warnings({"SalesFormsPrefs": {"CustomTxnNumbers": "true"}}) == []
