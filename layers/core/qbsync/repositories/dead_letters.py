"""The firm-scoped log of platform events qbsync could not understand and sent to ``OutboundDLQ`` (issue 11).

The message itself (the platform's event, with its client data) lives in the DLQ, which only an engineer
reads (``scripts/redrive_dlq.py``). This log holds what a firm may see of its own dead letters: the
redacted facts, never the payload. One item per event in the sync-state table (docs/data-model.md):

=====================  ======================================================================================
attribute              meaning
=====================  ======================================================================================
``pk`` / ``sk``        ``FIRM#{firm_id}`` / ``DEADLETTER#{event_id}``
``detail_type``        the event's DetailType when it is one the contract knows, else ``unknown``
``event_id``           the platform's event id
``problem``            what is wrong: field paths and rules (:class:`~qbsync.errors.MalformedMessage`),
                       never values
``message_id``         the SQS message id it had on ``OutboundQueue``
``dead_lettered_at``   epoch seconds; ``ttl``: 14 days later (the DLQ's retention: the message is gone then)
=====================  ======================================================================================

An event without a readable firm id or event id is in the DLQ only (no firm to show it to). A redrive
(``scripts/redrive_dlq.py``) clears the item of each message it moves back; an event that is still
malformed is logged again when it comes back to the DLQ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable

__all__ = ["DEAD_LETTER_PREFIX", "DEAD_LETTER_TTL_SECONDS", "DeadLetter", "DeadLetterLog"]

DEAD_LETTER_PREFIX = "DEADLETTER#"
#: OutboundDLQ's MessageRetentionPeriod (template.yaml)
DEAD_LETTER_TTL_SECONDS = 14 * 24 * 3600
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_PROBLEM_MAX = 1000


@dataclass(frozen=True)
class DeadLetter:
    firm_id: str
    event_id: str
    detail_type: str
    problem: str
    message_id: str | None
    dead_lettered_at: float

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DeadLetter:
        return cls(
            firm_id=str(item["firm_id"]),
            event_id=str(item["event_id"]),
            detail_type=str(item.get("detail_type") or "unknown"),
            problem=str(item.get("problem") or ""),
            message_id=item.get("message_id"),
            dead_lettered_at=float(item.get("dead_lettered_at") or 0),
        )


def attributable(firm_id: object, event_id: object) -> bool:
    """True when the ids can key a firm's item (both look like platform ids)."""
    return (
        isinstance(firm_id, str)
        and isinstance(event_id, str)
        and bool(_ID.match(firm_id))
        and bool(_ID.match(event_id))
    )


class DeadLetterLog:
    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def record(self, letter: DeadLetter) -> None:
        """Write (or overwrite: a redelivered event keeps one item) the firm's entry. Raises ValueError for
        ids that cannot key an item (:func:`attributable`)."""
        if not attributable(letter.firm_id, letter.event_id):
            raise ValueError("a dead letter needs a firm id and an event id")
        item: dict[str, Any] = {
            **_key(letter.firm_id, letter.event_id),
            "firm_id": letter.firm_id,
            "event_id": letter.event_id,
            "detail_type": letter.detail_type[:100],
            "problem": letter.problem[:_PROBLEM_MAX],
            "dead_lettered_at": int(letter.dead_lettered_at),
            "ttl": int(letter.dead_lettered_at) + DEAD_LETTER_TTL_SECONDS,
        }
        if letter.message_id:
            item["message_id"] = letter.message_id
        self._table.put(item)

    def list(self, firm_id: str, *, now: float) -> list[DeadLetter]:
        """The firm's dead letters still in the DLQ's retention (14 days), newest first."""
        items = self._table.query(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": f"FIRM#{firm_id}", ":prefix": DEAD_LETTER_PREFIX},
            consistent=True,
        )
        # moto never enforces TTL and DynamoDB deletes late: expired items are filtered here
        letters = [DeadLetter.from_item(i) for i in items if float(i.get("ttl") or 0) > now]
        letters.sort(key=lambda d: d.dead_lettered_at, reverse=True)
        return letters

    def count(self, firm_id: str, *, now: float, max_pages: int = 10) -> tuple[int, bool]:
        """How many of the firm's dead letters are still in the DLQ's retention: one ``Select=COUNT`` Query
        (at most ``max_pages`` pages of 1 MB; ``(count, complete)``, a lower bound when not complete)."""
        return self._table.count(
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": f"FIRM#{firm_id}", ":prefix": DEAD_LETTER_PREFIX, ":now": int(now)},
            names={"#ttl": "ttl"},
            filter_expression="#ttl > :now",
            max_pages=max_pages,
        )

    def clear(self, firm_id: str, event_id: str) -> None:
        """Forget the entry (its message was redriven). Nothing happens when there is none."""
        if attributable(firm_id, event_id):
            self._table.delete(_key(firm_id, event_id))


def _key(firm_id: str, event_id: str) -> dict[str, str]:
    return {"pk": f"FIRM#{firm_id}", "sk": f"{DEAD_LETTER_PREFIX}{event_id}"}
