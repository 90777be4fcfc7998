"""A record held back by the realm's request budget comes back in seconds, not after OutboundQueue's
720 s visibility timeout: the handler sets its message's visibility to the limiter's retry-after.

Real pieces: the OutboundQueue on moto (a real receive, a real receipt handle), the handler, the service,
the shared limiter counters in the sync-state table, the simulator. The budget is used up the way another
container would use it: the counters of every short window of the coming 30 s are at their limit.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from qbsync.models.record_key import RecordKey
from qbsync.qbo.ratelimit import RateLimits
from qbsync.repositories.rate_windows import rate_key

from local.stack.provision import clients
from tests.integration.entity_sync.conftest import SyncStack, new_firm, platform_event, sqs_record


def _receive(stack: SyncStack, wait: int) -> list[dict[str, Any]]:
    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    return list(
        sqs.receive_message(
            QueueUrl=stack.env["OUTBOUND_QUEUE_URL"],
            MaxNumberOfMessages=1,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
    )


def _as_record(message: dict[str, Any]) -> dict[str, Any]:
    record = sqs_record(message["Body"], message_id=message["MessageId"])
    record["receiptHandle"] = message["ReceiptHandle"]
    record["attributes"]["ApproximateReceiveCount"] = message["Attributes"]["ApproximateReceiveCount"]
    return record


def test_a_throttled_record_comes_back_within_seconds(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    limits = RateLimits()
    # another container uses every short window of the next 30 s (far more than the 10 s wait bound)
    used: dict[int, dict[str, Any]] = {}
    now = time.time()
    for step in range(int(30 / limits.window_seconds)):
        at = now + step * limits.window_seconds
        minute = math.floor(at / 60)
        window = math.floor((at - minute * 60) / limits.window_seconds)
        item = used.setdefault(minute, {**rate_key(stack.realm_id, minute), "count": 0})
        item[f"s{window}"] = limits.per_window
        item["count"] += limits.per_window
    stack.sync_table.batch_write(puts=list(used.values()))

    sqs = clients(stack.resources.endpoint_url, stack.resources.region)["sqs"]
    sqs.send_message(
        QueueUrl=stack.env["OUTBOUND_QUEUE_URL"],
        MessageBody=json.dumps(platform_event("client_account_created", firm)),
    )
    (message,) = _receive(stack, wait=5)
    response = stack.deliver_records([_as_record(message)])
    assert response == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert stack.sim.control.requests(realm_id=stack.realm_id) == []  # the limiter held every call back
    held = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert held is None or held.status != "synced"
    # the other container is done
    stack.sync_table.batch_write(deletes=[rate_key(stack.realm_id, m) for m in used])

    # the queue would keep it invisible for 720 s; the handler asked for about a second
    deadline = time.monotonic() + 60
    again: list[dict[str, Any]] = []
    while not again and time.monotonic() < deadline:
        again = _receive(stack, wait=1)
    assert again, "the throttled message did not come back early"
    assert again[0]["MessageId"] == message["MessageId"]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"

    assert stack.deliver_records([_as_record(again[0])]) == {"batchItemFailures": []}
    record = stack.records.get(RecordKey(firm, stack.realm_id, "client_account", "acct-100"))
    assert record is not None and record.status == "synced"
    assert [c["DisplayName"] for c in stack.entities("Customer") if c["Id"] == record.qbo_id] == [
        "Harbour Bakery LLC"
    ]
