"""The schedule's redrive of OutboundDLQ (qbsync.reconcile.redrive): what goes back, what stays, the bound."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from qbsync.adapters.sqs import ReceivedMessage
from qbsync.reconcile.redrive import (
    MAX_PER_RUN,
    MAX_REDRIVES,
    REDRIVES_ATTRIBUTE,
    DeadLetterRedrive,
    keep_reason,
)


@pytest.mark.parametrize(
    ("attributes", "kept"),
    [
        ({}, None),  # SQS parked it after 5 receives: no attribute of ours
        ({"correlation_id": "c-1"}, None),
        ({REDRIVES_ATTRIBUTE: str(MAX_REDRIVES - 1)}, None),
        ({REDRIVES_ATTRIBUTE: str(MAX_REDRIVES)}, "exhausted"),
        ({REDRIVES_ATTRIBUTE: "many"}, "exhausted"),
        ({"dead_letter_reason": "malformed", "problem": "data.amount"}, "malformed"),
    ],
)
def test_what_goes_back_and_what_stays_for_the_engineer(attributes: dict[str, str], kept: str | None) -> None:
    assert keep_reason(attributes) == kept


class _Dlq:
    def __init__(self, messages: list[ReceivedMessage]) -> None:
        self.visible = list(messages)
        self.deleted: list[str] = []
        self.received = 0

    def receive(self, max_messages: int, *, visibility_seconds: int) -> list[ReceivedMessage]:
        batch, self.visible = self.visible[:max_messages], self.visible[max_messages:]
        self.received += len(batch)
        return batch

    def delete(self, receipt_handle: str) -> None:
        self.deleted.append(receipt_handle)


class _Outbound:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_many(self, messages: Iterable[Any]) -> None:
        self.sent.extend(messages)


def _letter(i: int, **attributes: str) -> ReceivedMessage:
    return ReceivedMessage(
        body=f'{{"n": {i}}}', receipt_handle=f"h{i}", message_id=f"m{i}", attributes=attributes
    )


def test_a_dead_letter_goes_back_unchanged_counting_its_redrive_and_is_deleted_after_the_send() -> None:
    dlq, outbound = (
        _Dlq([_letter(1, correlation_id="c-1"), _letter(2, dead_letter_reason="malformed")]),
        _Outbound(),
    )
    report = DeadLetterRedrive(dlq=dlq, outbound=outbound).run("evt-1")
    assert (report.moved, report.kept) == (1, {"malformed": 1})
    (again,) = outbound.sent
    assert again.body == '{"n": 1}' and again.correlation_id == "c-1"
    assert again.attributes == {REDRIVES_ATTRIBUTE: "1"}
    assert dlq.deleted == ["h1"]  # the malformed one stays


def test_a_tick_moves_at_most_its_bound() -> None:
    dlq, outbound = _Dlq([_letter(i) for i in range(MAX_PER_RUN + 25)]), _Outbound()
    assert DeadLetterRedrive(dlq=dlq, outbound=outbound).run("evt-1").moved == MAX_PER_RUN
    assert dlq.received == MAX_PER_RUN and len(dlq.visible) == 25
