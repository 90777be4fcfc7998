"""See and redrive ``OutboundDLQ`` (issue 11; docs/operations.md, "Dead letters"). For engineers.

    python scripts/redrive_dlq.py list     [--dlq-url URL] [--max 100]
    python scripts/redrive_dlq.py redrive  [--dlq-url URL] [--target-url URL] [--max N] [--sync-table NAME]

(``make dead-letters`` / ``make redrive-dlq``.) The queue URLs default to ``OUTBOUND_DLQ_URL`` and
``OUTBOUND_QUEUE_URL``, the table to ``SYNC_TABLE_NAME`` (the functions' own variables; boto3 reads region,
credentials and ``AWS_ENDPOINT_URL`` - moto locally - from the environment).

``list`` prints the count and, per message, only its redacted attributes (reason, detail type, firm id,
event id, the problem's field paths, receive count, when it arrived) - never the body, which holds the
platform's client data. It hides each message for 30 s while reading and makes it visible again after.

``redrive`` moves messages back to ``OutboundQueue`` once the contract (or whatever failed) is fixed:
receive, send the body unchanged, and only then delete it from the DLQ, so a crash in between leaves a
duplicate on OutboundQueue, never a loss (a redelivered event is applied once: the sync is exactly once per
record version). It moves at most ``--max`` messages, by default the number the DLQ held when it started,
so an event that is still malformed - and goes straight back to the DLQ - is not redriven in a loop. It
clears the firm's dead-letter entry (admin API ``GET /dead-letters``) of each message it moved.

Moto has no ``StartMessageMoveTask`` (LOCAL-AWS.md), hence receive/send/delete; on AWS the console's "Start
DLQ redrive" does the same move (it does not clear the firms' entries: they expire with the DLQ's 14 days).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import boto3

SHOWN_ATTRIBUTES = (
    "dead_letter_reason",
    "detail_type",
    "firm_id",
    "event_id",
    "problem",
    "source_receive_count",
)
_LIST_HIDE_SECONDS = 30
_MOVE_HIDE_SECONDS = 120


def _attrs(message: dict[str, Any]) -> dict[str, str]:
    return {
        k: v["StringValue"]
        for k, v in (message.get("MessageAttributes") or {}).items()
        if k in SHOWN_ATTRIBUTES and "StringValue" in v
    }


def depth(sqs: Any, queue_url: str) -> int:
    """ApproximateNumberOfMessages of the queue (visible messages)."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def _receive(sqs: Any, queue_url: str, count: int, hide: int) -> list[dict[str, Any]]:
    return list(
        sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            VisibilityTimeout=hide,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
    )


def list_dead_letters(sqs: Any, dlq_url: str, *, max_messages: int = 100) -> dict[str, Any]:
    """``{"count": N, "messages": [redacted attributes, ...]}`` (at most ``max_messages`` listed)."""
    shown: list[dict[str, Any]] = []
    handles: list[str] = []
    while len(shown) < max_messages:
        batch = _receive(sqs, dlq_url, max_messages - len(shown), _LIST_HIDE_SECONDS)
        if not batch:
            break
        for m in batch:
            handles.append(m["ReceiptHandle"])
            shown.append(
                {
                    "message_id": m["MessageId"],
                    "sent_at": m.get("Attributes", {}).get("SentTimestamp"),
                    "receive_count": m.get("Attributes", {}).get("ApproximateReceiveCount"),
                    **_attrs(m),
                }
            )
    for start in range(0, len(handles), 10):  # visible again: listing moves nothing
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=entries)
    return {"count": max(depth(sqs, dlq_url), len(shown)), "messages": shown}


def redrive(
    sqs: Any,
    dlq_url: str,
    target_url: str,
    *,
    max_messages: int | None = None,
    cleared: Callable[[str, str], None] | None = None,
) -> dict[str, int]:
    """Move up to ``max_messages`` (default: the DLQ's depth now) to ``target_url``: send, then delete.

    ``cleared(firm_id, event_id)`` is called for each moved message that names its firm and event.
    Returns ``{"moved": n, "failed": n}``; a message whose send failed stays in the DLQ (visible again after
    its hide time).
    """
    budget = depth(sqs, dlq_url) if max_messages is None else max_messages
    moved = failed = 0
    while moved + failed < budget:
        batch = _receive(sqs, dlq_url, budget - moved - failed, _MOVE_HIDE_SECONDS)
        if not batch:
            break
        by_id = {str(i): m for i, m in enumerate(batch)}
        sent = sqs.send_message_batch(
            QueueUrl=target_url,
            Entries=[{"Id": i, "MessageBody": m["Body"]} for i, m in by_id.items()],
        )
        ok = [by_id[s["Id"]] for s in sent.get("Successful", [])]
        failed += len(batch) - len(ok)
        if ok:  # only what the target accepted leaves the DLQ
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ok)],
            )
        for m in ok:
            attrs = _attrs(m)
            if cleared is not None and "firm_id" in attrs and "event_id" in attrs:
                cleared(attrs["firm_id"], attrs["event_id"])
        moved += len(ok)
    return {"moved": moved, "failed": failed}


def _dead_letter_log(table_name: str | None) -> Callable[[str, str], None] | None:
    if not table_name:
        return None
    from qbsync.adapters.dynamodb import DynamoTable
    from qbsync.repositories.dead_letters import DeadLetterLog

    return DeadLetterLog(DynamoTable(table_name)).clear


def main(argv: Sequence[str] | None = None, *, sqs: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", choices=["list", "redrive"])
    parser.add_argument("--dlq-url", default=os.environ.get("OUTBOUND_DLQ_URL"))
    parser.add_argument("--target-url", default=os.environ.get("OUTBOUND_QUEUE_URL"))
    parser.add_argument("--sync-table", default=os.environ.get("SYNC_TABLE_NAME"))
    parser.add_argument("--max", type=int, default=None, help="messages to list (100) / to move (the depth)")
    args = parser.parse_args(argv)
    if not args.dlq_url:
        parser.error("--dlq-url (or OUTBOUND_DLQ_URL) is required")
    client = sqs if sqs is not None else boto3.client("sqs")
    if args.command == "list":
        result: dict[str, Any] = list_dead_letters(client, args.dlq_url, max_messages=args.max or 100)
    else:
        if not args.target_url:
            parser.error("--target-url (or OUTBOUND_QUEUE_URL) is required")
        result = redrive(
            client,
            args.dlq_url,
            args.target_url,
            max_messages=args.max,
            cleared=_dead_letter_log(args.sync_table),
        )
    print(json.dumps(result, indent=2))
    return 0 if result.get("failed", 0) == 0 else 1


if __name__ == "__main__":
    sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "layers", "core")]
    sys.exit(main())
