"""The work-queue bodies (qbsync.models.messages): every shape each queue carries is parsed into its typed
value, and every body that cannot be understood is refused with one typed error that names fields, never
values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qbsync.errors import BadRequest, MalformedMessage
from qbsync.models.commands import RETRY_REQUEST_KIND, SYNC_COMMAND_KIND, RetryRequest, SyncCommand
from qbsync.models.messages import (
    ConnectionChangedMessage,
    parse_outbound_message,
    parse_retry_message,
)
from qbsync.models.platform_events import PLATFORM_EVENT_TYPES, PlatformEvent, parse_platform_event

ROOT = Path(__file__).resolve().parents[3]
PLATFORM_SAMPLES = sorted((ROOT / "events" / "platform").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _command(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": SYNC_COMMAND_KIND,
        "firm_id": "f_1",
        "entity_type": "invoice",
        "platform_id": "inv_9",
        "reason": "resync_error",
        "request_id": "req-1",
    }
    body.update(overrides)
    return body


def _request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": RETRY_REQUEST_KIND,
        "firm_id": "f_1",
        "request_id": "r-1",
        "scope": "all",
        "requested_at": 1.0,
    }
    body.update(overrides)
    return body


def _connection_changed(**detail: Any) -> dict[str, Any]:
    event = _load(ROOT / "events" / "qbsync" / "connection_changed.json")
    event["detail"].update(detail)
    return event


# --- OutboundQueue ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", PLATFORM_SAMPLES, ids=lambda p: p.stem)
def test_every_platform_event_is_parsed_as_its_model(sample: Path) -> None:
    raw = _load(sample)
    for body in (json.dumps(raw), json.dumps(raw).encode(), raw):  # text, bytes, or already decoded
        parsed = parse_outbound_message(body)
        assert isinstance(parsed, PlatformEvent)
        assert type(parsed) is PLATFORM_EVENT_TYPES[raw["detail-type"]]
        assert parsed == parse_platform_event(raw)


def test_a_sync_command_is_parsed_as_a_command() -> None:
    parsed = parse_outbound_message(json.dumps(_command(force=True, correlation_id="c-1")))
    assert isinstance(parsed, SyncCommand)
    assert (parsed.platform_id, parsed.force, parsed.correlation_id) == ("inv_9", True, "c-1")
    assert parse_outbound_message(SyncCommand(**_command()).model_dump_json()) == SyncCommand(**_command())


@pytest.mark.parametrize(
    ("body", "what", "message"),
    [
        ("not json", "platform event", "the SQS message body is not JSON"),
        ("", "platform event", "the SQS message body is not JSON"),
        (None, "platform event", "the SQS message body is not JSON"),
        ("[1, 2]", "platform event", "the SQS message body is not a JSON object"),
        ('"text"', "platform event", "the SQS message body is not a JSON object"),
        ("null", "platform event", "the SQS message body is not a JSON object"),
        ("{}", "platform event", "event source must be 'platform'"),
        ('{"source": "platform"}', "platform event", "event has no detail-type"),
        ('{"source": "platform", "detail-type": "Invoice Paid"}', "platform event", "unknown platform event"),
        ('{"source": "platform", "detail-type": "Invoice Sent"}', "platform event", "detail must be"),
        (
            '{"source": "platform", "detail-type": "Invoice Sent", "detail": {"firm_id": "firm-1"}}',
            "platform event",
            "Invoice Sent: invalid detail",
        ),
        (json.dumps({"kind": SYNC_COMMAND_KIND}), "sync command", "SyncCommand: "),
        (json.dumps(_command(entity_type="contact")), "sync command", "entity_type"),
        (json.dumps(_command(surprise=1)), "sync command", "surprise"),
        # another version of the command is not a command: it is read as an event and refused
        (json.dumps(_command(kind="qbsync.sync_record.v2")), "platform event", "event source"),
    ],
)
def test_outbound_bodies_that_cannot_be_understood_are_refused(body: Any, what: str, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_outbound_message(body)
    assert isinstance(caught.value, BadRequest)  # the same code and status as before: bad_request
    assert caught.value.code == "bad_request"
    assert caught.value.what == what
    assert message in caught.value.message


def test_a_refused_event_keeps_the_context_of_its_parse_and_never_its_values() -> None:
    raw = _load(ROOT / "events" / "platform" / "client_account_created.json")
    raw["detail"]["data"]["account_type"] = "secret-person-name"
    with pytest.raises(MalformedMessage) as caught:
        parse_outbound_message(json.dumps(raw))
    err = caught.value
    assert "data.account_type" in err.message
    assert err.context()["detail_type"] == "ClientAccount Created"
    assert err.context()["event_id"] == raw["detail"]["event_id"]
    assert err.firm_id == raw["detail"]["firm_id"]
    assert "secret-person-name" not in f"{err.message} {err.context()}"
    assert err.__cause__ is None and err.__suppress_context__  # no pydantic error (with inputs) chained


def test_a_refused_command_never_echoes_values() -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_outbound_message(_command(platform_id="secret#name"))
    assert "platform_id" in caught.value.message
    assert "secret" not in caught.value.message


# --- RetryQueue ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"scope": "all"},
        {"scope": "category", "category": "Invoices"},
        {"scope": "error", "error_id": "e-1", "correlation_id": "c-1", "requested_by": "u-1"},
    ],
)
def test_every_retry_request_scope_is_parsed_as_a_request(overrides: dict[str, Any]) -> None:
    body = _request(**overrides)
    for form in (json.dumps(body), body):
        parsed = parse_retry_message(form)
        assert isinstance(parsed, RetryRequest)
        assert parsed == RetryRequest.model_validate(body)


@pytest.mark.parametrize(
    ("status", "connected"),
    [("connected", True), ("needs_reconnect", False), ("disconnected", False), ("pending_switch", False)],
)
def test_a_connection_changed_event_is_parsed_with_its_firm_and_status(status: str, connected: bool) -> None:
    parsed = parse_retry_message(json.dumps(_connection_changed(firm_id="firm-9", status=status)))
    assert parsed == ConnectionChangedMessage("firm-9", status)
    assert isinstance(parsed, ConnectionChangedMessage) and parsed.connected is connected


def test_a_connection_changed_event_without_a_status_text_is_not_connected() -> None:
    event = _connection_changed()
    del event["detail"]["status"]
    assert parse_retry_message(event) == ConnectionChangedMessage("firm-0001", None)
    event["detail"]["status"] = 1
    parsed = parse_retry_message(event)
    assert isinstance(parsed, ConnectionChangedMessage) and not parsed.connected
    # only firm_id and status are read: a minimal event is enough
    minimal = {"source": "qbsync", "detail-type": "Connection Changed", "detail": {"firm_id": "f"}}
    assert parse_retry_message(minimal) == ConnectionChangedMessage("f", None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "the RetryQueue message body is not JSON"),
        (None, "the RetryQueue message body is not JSON"),
        ('["a", "list"]', "the RetryQueue message is not a JSON object"),
        ("3", "the RetryQueue message is not a JSON object"),
        ('{"hello": "world"}', "neither a retry request nor a Connection Changed event"),
        (json.dumps(_load(ROOT / "events" / "platform" / "invoice_sent.json")), "neither a retry request"),
        (json.dumps({**_connection_changed(), "source": "platform"}), "neither a retry request"),
        (json.dumps({**_connection_changed(), "detail-type": "Sync Status Changed"}), "neither a retry"),
        (json.dumps(_command()), "neither a retry request"),  # a sync command on the wrong queue
        (json.dumps({**_connection_changed(), "detail": "text"}), "Connection Changed: detail is not an"),
        (json.dumps({**_connection_changed(), "detail": {"status": "connected"}}), "firm_id is missing"),
        (json.dumps(_connection_changed(firm_id="")), "detail.firm_id is missing"),
        (json.dumps(_connection_changed(firm_id=7)), "detail.firm_id is missing"),
        (json.dumps(_request(scope="category")), "RetryRequest: "),
        (json.dumps(_request(scope="error")), "error_id"),
        (json.dumps(_request(scope="category", category="Stuff")), "category"),
        (json.dumps(_request(extra=1)), "extra"),
        (json.dumps({k: v for k, v in _request().items() if k != "requested_at"}), "requested_at"),
    ],
)
def test_retry_bodies_that_cannot_be_understood_are_refused(body: Any, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_retry_message(body)
    assert caught.value.what == "retry message"
    assert caught.value.code == "bad_request"
    assert message in caught.value.message


# ------------------------------------------------------------------ InboundQueue


def _notice_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": "qbo_changes",
        "realm_id": "9130350",
        "source": "webhook_classic",
        "received_at": "2026-12-07T01:00:00Z",
        "notification_id": "n-1",
        "changes": [
            {"entity": "Payment", "id": "41", "operation": "Create", "last_updated": "2026-12-07T00:59:58Z"}
        ],
    }
    body.update(overrides)
    return body


def test_inbound_notice_round_trips_through_its_body() -> None:
    from qbsync.models.messages import EntityChange, InboundNotice, parse_inbound_message

    notice = InboundNotice(
        "9130350",
        (
            EntityChange("Payment", "41", "Create", "2026-12-07T00:59:58Z"),
            EntityChange("Customer", "7", "Merge", None, "6"),
        ),
        "webhook_cloudevents",
        "2026-12-07T01:00:00Z",
        "n-1",
    )
    assert parse_inbound_message(notice.body()) == notice


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"kind": "sync_command"}, "kind"),
        ({"realm_id": 9130350}, "realm_id"),
        ({"changes": []}, "changes"),
        ({"changes": [{"entity": "Payment", "id": "41"} for _ in range(501)]}, "changes"),
        ({"changes": [{"entity": "Payment", "id": "41", "operation": "Created"}]}, "changes[0].operation"),
        ({"changes": [{"entity": "Payment", "id": 41, "operation": "Create"}]}, "changes[0].id"),
        ({"changes": ["Payment"]}, "changes[0]"),
        ({"notification_id": ""}, "notification_id"),
    ],
)
def test_inbound_notice_refuses_what_it_cannot_read_naming_the_field(overrides: dict, names: str) -> None:
    from qbsync.errors import MalformedMessage
    from qbsync.models.messages import parse_inbound_message

    with pytest.raises(MalformedMessage) as caught:
        parse_inbound_message(json.dumps(_notice_body(**overrides)))
    assert caught.value.message.startswith(names)


def test_inbound_notice_refuses_non_json() -> None:
    from qbsync.errors import MalformedMessage
    from qbsync.models.messages import parse_inbound_message

    with pytest.raises(MalformedMessage, match="not JSON"):
        parse_inbound_message("{not json")
