"""The "Connection Changed" events are valid ConnectionChanged models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from qbsync.connection.events import ConnectionEvents

from tests.unit.connection.support import RecordingPublisher


def test_event_carries_the_envelope_and_falls_back_to_a_fresh_correlation_id():
    publisher = RecordingPublisher()
    events = ConnectionEvents(
        publisher, clock=lambda: 1_800_000_000.0, correlation_id=lambda: "bad id/with slash"
    )

    events.publish(
        change="needs_reconnect", firm_id="f1", realm_id="123", status="needs_reconnect", reason="x" * 5000
    )

    [detail] = publisher.details()
    assert detail["firm_id"] == "f1" and detail["occurred_at"].startswith("2027-01-15")
    assert detail["correlation_id"] != "bad id/with slash" and len(detail["correlation_id"]) == 36
    assert len(detail["reason"]) == 1000 and detail["event_id"]


def test_unknown_change_is_refused():
    events = ConnectionEvents(RecordingPublisher(), clock=lambda: 0.0, correlation_id=lambda: "c1")
    with pytest.raises(ValidationError):
        events.publish(change="exploded", firm_id="f1", realm_id="123", status="connected")
