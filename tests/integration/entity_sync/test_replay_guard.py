"""``POST /sync/replay`` of a record or a window has the error center's 3-minute guard, like a category
(PRODUCT.md J.5, E.4): the real admin API handler answers 429 ``too_many_requests`` with ``Retry-After``
and queues nothing; another record stays possible; a guard whose window ended lets the next one through."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from local.stack.provision import clients
from tests.fixtures.events import drain_queue
from tests.integration.api.conftest import AdminApi
from tests.integration.entity_sync.conftest import SyncStack, new_firm


def _replay(stack: SyncStack, firm: str, body: Any) -> Any:
    api = AdminApi(stack.resources, stack.sim, stack.realm_id, stack.client_id, stack.env)
    return api.call("POST", "/sync/replay", firm_id=firm, role="admin", body=body)


def _queued(stack: SyncStack) -> list[dict[str, Any]]:
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    return drain_queue(sqs, stack.env["RETRY_QUEUE_URL"])


def _throttled(answer: Any, what: str) -> None:
    assert answer.status == 429, answer.body
    body = answer.json()
    assert body["error"] == "too_many_requests" and what in body["message"], body
    assert 1 <= int(answer.headers["Retry-After"]) <= 180


def test_replaying_one_record_twice_within_3_minutes_is_throttled_per_record(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    _queued(stack)
    record = {"record": {"entity_type": "service", "platform_id": "svc-g1"}}

    first = _replay(stack, firm, record)
    again = _replay(stack, firm, record)
    other = _replay(stack, firm, {"record": {"entity_type": "service", "platform_id": "svc-g2"}})
    elsewhere = "firm-other-" + firm[-6:]
    stack.connect(elsewhere)
    other_firm = _replay(stack, elsewhere, record)

    assert first.status == 202 and first.json()["scope"] == "record", first.body
    _throttled(again, "service svc-g1")
    assert other.status == 202 and other_firm.status == 202  # per record, per firm
    queued = _queued(stack)
    assert sorted((q["firm_id"] == firm, q["platform_id"]) for q in queued) == [
        (False, "svc-g1"),
        (True, "svc-g1"),
        (True, "svc-g2"),
    ]
    # the guard item decides: once its window ended, the record replays again
    guard = {"pk": f"FIRM#{firm}", "sk": "RETRYREC#service#svc-g1"}
    held = stack.sync_table.get(guard)
    assert held is not None and held["subject"] == "service#svc-g1"
    now = time.time()
    stack.sync_table.put({**held, "until": now - 1})
    assert _replay(stack, firm, record).status == 202
    assert len(_queued(stack)) == 1


def test_replaying_a_window_twice_within_3_minutes_is_throttled_per_firm(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    _queued(stack)
    now = time.time()

    def window(start: float, end: float) -> dict[str, Any]:
        stamp = lambda t: datetime.fromtimestamp(t, UTC).isoformat()  # noqa: E731
        return {"window": {"from": stamp(start), "to": stamp(end)}}

    first = _replay(stack, firm, window(now - 3600, now - 60))
    shifted = _replay(stack, firm, window(now - 3599, now - 59))  # another window: the same firm's guard
    record = _replay(stack, firm, {"record": {"entity_type": "service", "platform_id": "svc-g3"}})

    assert first.status == 202 and first.json()["scope"] == "window", first.body
    _throttled(shifted, "time window")
    assert record.status == 202  # a record replay has its own guard
    assert sorted(q["scope"] for q in _queued(stack)) == ["record", "window"]
    # a bad window is refused before the guard: it does not take the firm's window
    assert _replay(stack, firm, window(now - 10, now - 20)).status == 400
