"""The INPAY# items of payments recorded in QuickBooks (qbsync.repositories.inbound_payments) on moto."""

from __future__ import annotations

from typing import Any

import pytest
from qbsync.repositories.inbound_payments import ANNOUNCED, IGNORED, REJECTED, InboundPayments, version_number

from tests.integration.repositories.conftest import T0, new_id

EVENT = {"detail_type": "Payment Received In QBO", "detail": {"event_id": "e-1"}}
HOLD = {"invoice_id": "inv-1", "qbo_invoice_id": "145", "amount": "10.00", "paid": False}


@pytest.fixture
def payments(table: Any) -> InboundPayments:
    return InboundPayments(table)


def _claim(payments: InboundPayments, firm: str, version: str, **kw: Any) -> Any:
    args: dict[str, Any] = {"final_state": ANNOUNCED, "events": [EVENT], "holds": [HOLD], "now": T0}
    args.update(kw)
    return payments.claim(firm, "123", "311", version=version, **args)


def test_a_version_is_claimed_once_and_never_after_a_newer_one(payments: InboundPayments) -> None:
    firm = new_id("f")
    claimed = _claim(payments, firm, "1")
    assert claimed is not None and claimed.state == "announcing"
    assert _claim(payments, firm, "1") is None  # the same version again (another delivery)
    assert _claim(payments, firm, "0") is None  # an older one
    state = payments.get(firm, "123", "311")
    assert state is not None and state.version == "1" and state.events == (EVENT,) and state.holds == (HOLD,)
    assert _claim(payments, firm, "2") is not None
    assert _claim(payments, firm, "deleted", events=[], final_state=IGNORED) is not None
    assert _claim(payments, firm, "3") is None  # nothing comes after a deletion


def test_finish_only_moves_the_claimed_version_out_of_announcing(payments: InboundPayments) -> None:
    firm = new_id("f")
    first = _claim(payments, firm, "1")
    assert first is not None
    newer = _claim(payments, firm, "2", final_state=REJECTED)
    assert newer is not None
    assert payments.finish(first, now=T0) is False  # version 2 was claimed meanwhile: left to it
    assert payments.finish(newer, now=T0) is True
    assert payments.finish(newer, now=T0) is False  # finished already
    state = payments.get(firm, "123", "311")
    assert state is not None and (state.version, state.state, state.final_state) == ("2", REJECTED, None)


def test_a_claim_without_events_rests_at_once(payments: InboundPayments) -> None:
    firm = new_id("f")
    claimed = _claim(payments, firm, "0", events=[], holds=[], final_state=IGNORED)
    assert claimed is not None and claimed.state == IGNORED
    state = payments.get(firm, "123", "311")
    assert state is not None and state.state == IGNORED and state.holds == ()


def test_versions_are_sync_tokens_or_deleted() -> None:
    assert version_number("0") < version_number("12") < version_number("deleted")
    with pytest.raises(ValueError):
        version_number("1a")
