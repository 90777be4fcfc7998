"""The queue-message contracts of qbsync.models.commands: strict, versioned, and safe in their errors."""

from __future__ import annotations

import json

import pytest
from qbsync.errors import BadRequest
from qbsync.models.commands import (
    RETRY_REQUEST_KIND,
    SYNC_COMMAND_KIND,
    RetryRequest,
    SyncCommand,
    parse_retry_request,
    parse_sync_command,
)
from qbsync.models.messages import parse_outbound_message


def _command(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "firm_id": "f_1",
        "entity_type": "invoice",
        "platform_id": "inv_9",
        "reason": "manual_sync",
        "request_id": "req-1",
    }
    body.update(overrides)
    return body


def test_sync_command_round_trips_through_json_and_is_recognised() -> None:
    command = SyncCommand.model_validate(_command(force=True, requested_by="u_7"))
    body = json.loads(command.model_dump_json())
    assert body["kind"] == SYNC_COMMAND_KIND
    assert parse_outbound_message(body) == command  # recognised as a command on OutboundQueue
    assert parse_sync_command(json.dumps(body)) == command
    assert parse_sync_command(body).force is True


def test_an_eventbridge_event_is_not_a_sync_command() -> None:
    # read as a platform event (and refused as one: its detail is empty), never as a command
    with pytest.raises(BadRequest) as caught:
        parse_outbound_message({"source": "platform", "detail-type": "Invoice Created", "detail": {}})
    assert getattr(caught.value, "what", None) == "platform event"
    with pytest.raises(BadRequest) as caught:
        parse_outbound_message(json.dumps("not a dict"))
    assert getattr(caught.value, "what", None) == "platform event"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"entity_type": "contact"}, "entity_type"),
        ({"platform_id": "has#hash"}, "platform_id"),
        ({"reason": "because"}, "reason"),
        ({"unexpected": 1}, "unexpected"),
        ({"kind": "qbsync.sync_record.v0"}, "kind"),
    ],
)
def test_bad_sync_commands_name_the_field_and_never_echo_values(
    overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_sync_command(_command(**overrides))
    assert field in caught.value.message
    for value in overrides.values():
        if isinstance(value, str):
            assert value not in caught.value.message


def test_a_sync_command_that_is_not_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not JSON"):
        parse_sync_command("{nope")


def test_retry_request_scopes_need_their_target() -> None:
    base = {"firm_id": "f_1", "request_id": "r-1", "requested_at": 1.0}
    assert parse_retry_request({**base, "scope": "all"}).kind == RETRY_REQUEST_KIND
    assert parse_retry_request({**base, "scope": "category", "category": "Invoices"}).category == "Invoices"
    assert parse_retry_request({**base, "scope": "error", "error_id": "e-1"}).error_id == "e-1"
    with pytest.raises(BadRequest, match="error_id"):
        parse_retry_request({**base, "scope": "error"})
    with pytest.raises(BadRequest, match="category"):
        parse_retry_request({**base, "scope": "category"})
    with pytest.raises(BadRequest, match="category"):
        parse_retry_request({**base, "scope": "category", "category": "Stuff"})
    assert isinstance(RetryRequest.model_validate({**base, "scope": "all"}), RetryRequest)


def test_replay_requests_name_one_record_or_a_window_of_one_realm() -> None:
    base = {"firm_id": "f_1", "request_id": "r-1", "requested_at": 1.0}
    one = parse_retry_request({**base, "scope": "record", "entity_type": "service", "platform_id": "svc-1"})
    assert (one.entity_type, one.platform_id) == ("service", "svc-1")
    window = {"realm_id": "9130351234567890", "window_from": 10.0, "window_to": 20.0}
    assert parse_retry_request({**base, "scope": "window", **window}).window_to == 20.0
    with pytest.raises(BadRequest, match="entity_type and platform_id"):
        parse_retry_request({**base, "scope": "record", "entity_type": "service"})
    with pytest.raises(BadRequest, match="window_from < window_to"):
        parse_retry_request({**base, "scope": "window", **window, "window_to": 10.0})
    with pytest.raises(BadRequest, match="realm_id"):
        parse_retry_request({**base, "scope": "window", **window, "realm_id": None})
    command = parse_sync_command(_command(reason="replay"))
    assert command.reason == "replay"


def test_commands_coerce_nothing() -> None:
    """Strict like the API bodies: "yes" is not true, a number is not an id, a string is not a time."""
    for overrides, where in (
        ({"force": "yes"}, "force"),
        ({"force": 1}, "force"),
        ({"platform_id": 9}, "platform_id"),
        ({"platform_id": "inv_9\n"}, "platform_id"),
    ):
        with pytest.raises(BadRequest) as caught:
            parse_sync_command(_command(**overrides))
        assert caught.value.message.startswith(f"SyncCommand: {where}: "), overrides
    retry = {"firm_id": "f_1", "request_id": "r-1", "scope": "all", "requested_at": "1767571200"}
    with pytest.raises(BadRequest) as caught:
        parse_retry_request(retry)
    assert caught.value.message == "RetryRequest: requested_at: Input should be a valid number"
    assert parse_retry_request({**retry, "requested_at": 1767571200}).requested_at == 1767571200.0
