"""Intuit webhooks from the simulator: payloads, signing, grouping, retries (injected clock and sender)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local.qbo_sim.webhooks import INTUIT_RETRY_DELAYS, WebhookDispatcher

TOKEN = "verifier-token-123"
URL = "https://hooks.example.com/qbo"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 18, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Receiver:
    """An injected ``send``: records requests and answers with scripted statuses (or raises)."""

    def __init__(self, *script: int | Exception) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, dict[str, str], bytes]] = []

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        self.calls.append((url, headers, body))
        outcome = self.script.pop(0) if self.script else 200
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def json(self, i: int = -1) -> object:
        return json.loads(self.calls[i][2])


def make(receiver: Receiver, clock: Clock, fmt: str = "classic", **kw: object) -> WebhookDispatcher:
    dispatcher = WebhookDispatcher(clock=clock, send=receiver, **kw)  # type: ignore[arg-type]
    dispatcher.configure_app("app1", url=URL, verifier_token=TOKEN, format=fmt)
    return dispatcher


def valid_signature(headers: dict[str, str], body: bytes, token: str = TOKEN) -> bool:
    expected = base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, headers["intuit-signature"])


def test_classic_payload_shape_and_signature() -> None:
    clock, rx = Clock(), Receiver()
    d = make(rx, clock)
    d.record_change("app1", "9341", "Invoice", "130", "Update", "2026-03-02T18:11:12.000Z")
    d.record_change("app1", "9341", "Customer", "58", "Merge", "2026-03-02T18:11:13.000Z", deleted_id="61")
    d.flush_now()
    assert len(rx.calls) == 1
    url, headers, body = rx.calls[0]
    assert url == URL
    assert headers["Content-Type"] == "application/json"
    assert valid_signature(headers, body)
    assert not valid_signature(headers, body, token="another-token")
    assert not valid_signature(headers, body + b" ")
    assert json.loads(body) == {
        "eventNotifications": [
            {
                "realmId": "9341",
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Invoice",
                            "id": "130",
                            "operation": "Update",
                            "lastUpdated": "2026-03-02T18:11:12.000Z",
                        },
                        {
                            "name": "Customer",
                            "id": "58",
                            "operation": "Merge",
                            "lastUpdated": "2026-03-02T18:11:13.000Z",
                            "deletedId": "61",
                        },
                    ]
                },
            }
        ]
    }


def test_cloudevents_payload_shape_and_signature() -> None:
    clock, rx = Clock(), Receiver()
    d = make(rx, clock, fmt="cloudevents")
    ops = ["Create", "Update", "Delete", "Merge", "Void", "Emailed"]
    for i, op in enumerate(ops):
        d.record_change("app1", "9341", "Invoice", str(100 + i), op, "2026-03-02T18:11:12.034Z")
    d.flush_now()
    _, headers, body = rx.calls[0]
    assert valid_signature(headers, body)
    events = json.loads(body)
    assert isinstance(events, list) and len(events) == 6
    assert [e["type"] for e in events] == [
        "qbo.invoice.created.v1",
        "qbo.invoice.updated.v1",
        "qbo.invoice.deleted.v1",
        "qbo.invoice.merged.v1",
        "qbo.invoice.voided.v1",
        "qbo.invoice.emailed.v1",
    ]
    first = events[0]
    assert first["specversion"] == "1.0"
    assert first["datacontenttype"] == "application/json"
    assert first["time"] == "2026-03-02T18:11:12.034Z"
    assert first["intuitentityid"] == "100"
    assert first["intuitaccountid"] == "9341"
    assert first["source"].startswith("intuit.")
    assert first["data"] == {}
    assert len({e["id"] for e in events}) == 6  # unique event ids
    assert [r["event_ids"] for r in d.deliveries()] == [[e["id"] for e in events]]


def test_cloudevents_split_at_100_per_post() -> None:
    clock, rx = Clock(), Receiver()
    d = make(rx, clock, fmt="cloudevents")
    for i in range(250):
        d.record_change("app1", "1", "Customer", str(i), "Create", "2026-03-02T18:00:00.000Z")
    d.flush_now()
    assert [len(json.loads(body)) for _, _, body in rx.calls] == [100, 100, 50]
    assert [json.loads(b)[0]["intuitentityid"] for _, _, b in rx.calls] == ["0", "100", "200"]


def test_grouping_window_per_app_and_realm() -> None:
    clock, rx = Clock(), Receiver()
    d = make(rx, clock, group_window_seconds=1.0)
    d.configure_app("app2", url="https://other.example.com/hook", verifier_token="tok2")
    d.record_change("app1", "r1", "Customer", "1", "Create", "t1")  # opens app1/r1 at t=0
    clock.advance(0.5)
    d.record_change("app1", "r1", "Customer", "2", "Create", "t2")  # joins app1/r1
    d.record_change("app1", "r2", "Customer", "3", "Create", "t3")  # opens app1/r2 at t=0.5
    d.record_change("app2", "r1", "Customer", "1", "Create", "t1")  # opens app2/r1 at t=0.5
    d.tick()  # what the background thread does on each poll
    assert rx.calls == []  # no window has closed yet
    clock.advance(0.5)
    d.tick()
    assert len(rx.calls) == 1
    url, _, body = rx.calls[0]
    notes = json.loads(body)["eventNotifications"]
    assert url == URL and len(notes) == 1 and notes[0]["realmId"] == "r1"  # one realm per notification
    assert [e["id"] for e in notes[0]["dataChangeEvent"]["entities"]] == ["1", "2"]
    clock.advance(0.5)
    d.tick()
    assert len(rx.calls) == 3
    later = {(c[0], json.loads(c[2])["eventNotifications"][0]["realmId"]): c for c in rx.calls[1:]}
    assert set(later) == {(URL, "r2"), ("https://other.example.com/hook", "r1")}
    app2_call = later[("https://other.example.com/hook", "r1")]
    assert valid_signature(app2_call[1], app2_call[2], token="tok2")
    assert not valid_signature(app2_call[1], app2_call[2])
    assert d.pending() == 0


def test_retry_on_500_then_success_with_same_bytes() -> None:
    clock, rx = Clock(), Receiver(500, 200)
    d = make(rx, clock)
    d.record_change("app1", "r1", "Invoice", "1", "Create", "t")
    d.flush_now()
    assert [r["outcome"] for r in d.deliveries()] == ["retry_scheduled"]
    assert d.deliveries()[0]["status"] == 500
    assert d.deliveries()[0]["next_attempt_in_seconds"] == 10
    d.flush_now()  # not due yet: nothing is sent
    assert len(rx.calls) == 1
    clock.advance(9.9)
    d.flush_now()
    assert len(rx.calls) == 1
    clock.advance(0.1)
    d.flush_now()
    assert len(rx.calls) == 2
    assert rx.calls[0][2] == rx.calls[1][2]
    assert [(r["attempt"], r["outcome"]) for r in d.deliveries()] == [
        (1, "retry_scheduled"),
        (2, "delivered"),
    ]
    assert d.pending() == 0


def test_connection_error_counts_as_failed_attempt() -> None:
    clock, rx = Clock(), Receiver(ConnectionError("refused"), 204)
    d = make(rx, clock)
    d.record_change("app1", "r1", "Invoice", "1", "Create", "t")
    d.flush_now()
    record = d.deliveries()[0]
    assert (record["status"], record["error"], record["outcome"]) == (
        None,
        "ConnectionError",
        "retry_scheduled",
    )
    d.flush_now(include_retries=True)  # the control API can force a retry without moving the clock
    assert d.deliveries()[-1]["outcome"] == "delivered"


def test_gives_up_after_the_schedule() -> None:
    clock = Clock()
    rx = Receiver(*([503] * (len(INTUIT_RETRY_DELAYS) + 1)))
    d = make(rx, clock)
    d.record_change("app1", "r1", "Invoice", "1", "Create", "t")
    d.flush_now()
    for delay in INTUIT_RETRY_DELAYS:
        clock.advance(delay)
        d.flush_now()
    records = d.deliveries()
    assert [r["attempt"] for r in records] == list(range(1, len(INTUIT_RETRY_DELAYS) + 2))
    assert [r["outcome"] for r in records] == ["retry_scheduled"] * len(INTUIT_RETRY_DELAYS) + ["gave_up"]
    assert d.pending() == 0
    clock.advance(10 * 86400)
    d.flush_now()
    assert len(rx.calls) == len(INTUIT_RETRY_DELAYS) + 1


def test_head_of_line_blocking_per_app() -> None:
    clock, rx = Clock(), Receiver(500)
    d = make(rx, clock, retry_delays=(5,))
    d.record_change("app1", "r1", "Invoice", "1", "Create", "t")
    d.flush_now()
    d.record_change("app1", "r2", "Invoice", "2", "Create", "t")
    d.flush_now()
    assert len(rx.calls) == 1  # the second notification waits behind the failing one
    clock.advance(5)
    d.flush_now()
    assert [json.loads(b)["eventNotifications"][0]["realmId"] for _, _, b in rx.calls] == ["r1", "r1", "r2"]


def test_deliveries_never_hold_the_token_or_signature() -> None:
    clock, rx = Clock(), Receiver()
    d = make(rx, clock)
    d.record_change("app1", "r1", "Invoice", "1", "Create", "t")
    d.flush_now()
    text = json.dumps(d.deliveries())
    assert TOKEN not in text
    assert rx.calls[0][1]["intuit-signature"] not in text
    record = d.deliveries()[0]
    assert {"url", "format", "status", "attempt", "entities", "time"} <= set(record)
    assert record["entities"] == 1 and record["format"] == "classic"


def test_bad_input_is_rejected() -> None:
    clock, rx = Clock(), Receiver()
    d = make(rx, clock)
    with pytest.raises(ValueError, match="operation"):
        d.record_change("app1", "r1", "Invoice", "1", "Created", "t")
    with pytest.raises(ValueError, match="no webhook endpoint"):
        d.record_change("unknown", "r1", "Invoice", "1", "Create", "t")
    with pytest.raises(ValueError, match="required"):
        d.record_change("app1", "", "Invoice", "1", "Create", "t")
    with pytest.raises(ValueError, match="format"):
        d.configure_app("app1", url=URL, verifier_token=TOKEN, format="xml")
    with pytest.raises(ValueError, match="required"):
        d.configure_app("app1", url="", verifier_token=TOKEN)


def test_remove_app_drops_pending() -> None:
    clock, rx = Clock(), Receiver()
    d = make(rx, clock)
    d.record_change("app1", "r1", "Invoice", "1", "Create", "t")
    d.remove_app("app1")
    d.flush_now()
    assert rx.calls == [] and d.pending() == 0


# ------------------------------------------------------------------ real HTTP (loopback receiver)


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    statuses: list[int]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(self.statuses.pop(0) if self.statuses else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_default_sender_posts_over_http_and_background_thread_delivers() -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Hook", (_Hook,), {"received": received, "statuses": [500]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clock = Clock()
    d = WebhookDispatcher(clock=clock, group_window_seconds=0)
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    d.configure_app("app1", url=url, verifier_token=TOKEN)
    try:
        d.record_change("app1", "r1", "Payment", "7", "Create", "t")
        d.flush_now()
        clock.advance(10)
        done = threading.Event()
        d.start()
        d.start()  # idempotent
        for _ in range(400):  # the thread polls the clock; wait for its delivery, not for time
            if any(r["outcome"] == "delivered" for r in d.deliveries()):
                done.set()
                break
            done.wait(0.01)
        d.stop()
        assert done.is_set()
        assert [r["status"] for r in d.deliveries()] == [500, 200]
        headers, body = received[-1]
        lowered = {k.lower(): v for k, v in headers.items()}
        assert valid_signature({"intuit-signature": lowered["intuit-signature"]}, body)
        assert json.loads(body)["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["id"] == "7"
    finally:
        d.stop()
        server.shutdown()
        server.server_close()


def test_default_sender_connection_refused_is_a_failed_attempt() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    clock = Clock()
    d = WebhookDispatcher(clock=clock)
    d.configure_app("app1", url=f"http://127.0.0.1:{port}/hook", verifier_token=TOKEN)
    d.record_change("app1", "r1", "Payment", "7", "Create", "t")
    d.flush_now()
    record = d.deliveries()[0]
    assert record["status"] is None and record["outcome"] == "retry_scheduled"
    assert record["error"] == "ConnectionError"


def test_lose_next_drops_notifications_of_that_realm_only_and_records_them() -> None:
    receiver, clock = Receiver(), Clock()
    dispatcher = make(receiver, clock)
    rule = dispatcher.lose_next(1, realm_id="r1")
    assert rule == {"id": 1, "count": 1, "lost": 0, "remaining": 1, "realm_id": "r1", "client_id": None}
    dispatcher.record_change("app1", "r1", "Invoice", "130", "Update", "2026-03-02T18:00:00.000Z")
    dispatcher.record_change("app1", "r2", "Invoice", "7", "Create", "2026-03-02T18:00:00.000Z")
    dispatcher.flush_now()
    # r2 still arrives; r1's notification was built and never sent
    assert [json.loads(body)["eventNotifications"][0]["realmId"] for _, _, body in receiver.calls] == ["r2"]
    lost = [d for d in dispatcher.deliveries() if d["outcome"] == "lost"]
    assert len(lost) == 1
    assert (lost[0]["realm_id"], lost[0]["attempt"], lost[0]["status"]) == ("r1", 0, None)
    assert lost[0]["changes"] == [{"name": "Invoice", "id": "130", "operation": "Update"}]
    assert dispatcher.losses() == [] and dispatcher.pending() == 0
    # never retried, even when retries are forced; the next change of r1 is delivered again
    dispatcher.flush_now(include_retries=True)
    dispatcher.record_change("app1", "r1", "Invoice", "130", "Update", "2026-03-02T18:00:05.000Z")
    dispatcher.flush_now()
    assert [json.loads(body)["eventNotifications"][0]["realmId"] for _, _, body in receiver.calls] == [
        "r2",
        "r1",
    ]


def test_lose_next_counts_posts_and_cloudevents_chunks() -> None:
    receiver, clock = Receiver(), Clock()
    dispatcher = make(receiver, clock, fmt="cloudevents")
    dispatcher.lose_next(1)
    for i in range(150):  # two POSTs: 100 + 50 events; the first is lost
        dispatcher.record_change("app1", "r1", "Customer", str(i), "Update", "2026-03-02T18:00:00.000Z")
    dispatcher.flush_now()
    assert [len(json.loads(body)) for _, _, body in receiver.calls] == [50]
    (lost,) = [d for d in dispatcher.deliveries() if d["outcome"] == "lost"]
    assert lost["entities"] == 100 and len(lost["event_ids"]) == 100
    assert lost["changes"][0] == {"name": "Customer", "id": "0", "operation": "Update"}


def test_lose_next_refuses_bad_arguments_and_clears() -> None:
    dispatcher = make(Receiver(), Clock())
    for bad in (0, -1, True, "2"):
        with pytest.raises(ValueError, match="count"):
            dispatcher.lose_next(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="realm_id"):
        dispatcher.lose_next(1, realm_id="")
    dispatcher.lose_next(3, client_id="app1")
    assert [r["remaining"] for r in dispatcher.losses()] == [3]
    dispatcher.clear_losses()
    assert dispatcher.losses() == []
