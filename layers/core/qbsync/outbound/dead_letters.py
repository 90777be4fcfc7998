"""A queue message that cannot be understood goes to its DLQ at once (issue 11; issue 14 for inbound).

Used for two queues, one :class:`DeadLetters` each (``qbsync.wiring``): ``OutboundQueue`` → ``OutboundDLQ``
(the entity-sync worker) and ``InboundQueue`` → ``InboundDLQ`` (the inbound worker; an inbound notice
names a realm, not a firm, so it is never attributed to a firm's log). The text below says it for
``OutboundQueue``; the inbound side is the same with its queue's 180 s visibility timeout.

SQS has no "move to the DLQ" call, and its redrive would take ``maxReceiveCount`` (5) receives at the
queue's visibility timeout (720 s): an hour of a message that can never succeed being received again. So
the entity-sync worker sends the raw body to the DLQ itself (:meth:`DeadLetters.park`), then reports the
message as done, which deletes it from ``OutboundQueue``.

Order: send first, then acknowledge. A crash (or a failed log write) after the send and before the delete
leaves the message on ``OutboundQueue``; it is received again and sent to the DLQ again: a duplicate in
the DLQ, which is harmless (a redrive of both is deduplicated by the platform event's version, the sync
being exactly once per record version). A send that fails raises: the message stays a batch-item failure
and comes back (after 5 receives SQS's own redrive parks it), so nothing is lost.

The DLQ message carries the body unchanged (a redrive sends exactly what the platform sent) and
redacted message attributes for the engineer: ``dead_letter_reason`` (``malformed``), ``detail_type``,
``firm_id``, ``event_id`` (when they could be read), ``problem`` (field paths and rules, never values),
``source_message_id`` and ``source_receive_count``. The firm's own view is
:class:`~qbsync.repositories.dead_letters.DeadLetterLog` (admin API ``GET /dead-letters``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from qbsync.adapters.sqs import SqsMessage
from qbsync.errors import MalformedMessage
from qbsync.repositories.dead_letters import DeadLetter, DeadLetterLog, attributable

__all__ = ["DeadLetterReceipt", "DeadLetters", "redacted_attributes"]

_ATTRIBUTE_MAX = 256
_DETAIL_TYPE = re.compile(r"^[A-Za-z][A-Za-z ]{0,63}$")


class Sender(Protocol):
    def send_many(self, messages: Iterable[Any]) -> Any: ...


@dataclass(frozen=True)
class DeadLetterReceipt:
    """What :meth:`DeadLetters.park` did: the redacted facts (for the log line) and whether the firm's log
    has it (``attributed``)."""

    detail_type: str
    firm_id: str | None
    event_id: str | None
    problem: str
    attributed: bool


def redacted_attributes(err: MalformedMessage) -> dict[str, str]:
    """``detail_type`` (as sent when it looks like one - "<Entity> <Action>" - else ``unknown``),
    ``firm_id``, ``event_id``, ``problem``: what may be shown of a malformed message. The problem text
    names field paths, never values (platform_events)."""
    raw_type = err.extra.get("detail_type")
    detail_type = raw_type if isinstance(raw_type, str) and _DETAIL_TYPE.match(raw_type) else "unknown"
    out = {"detail_type": detail_type, "problem": err.message[:_ATTRIBUTE_MAX]}
    event_id = err.extra.get("event_id")
    if attributable(err.firm_id, event_id):
        out["firm_id"] = str(err.firm_id)
        out["event_id"] = str(event_id)
    return out


class DeadLetters:
    """Sends a malformed message to its DLQ and notes it in the firm's dead-letter log (when attributable).

    Args:
        dlq: the DLQ's sender (``SqsSender`` of ``OutboundDLQ`` or ``InboundDLQ``). log: the firm-scoped
            log. clock: epoch seconds.
    """

    def __init__(self, *, dlq: Sender, log: DeadLetterLog, clock: Callable[[], float]) -> None:
        self._dlq = dlq
        self._log = log
        self._clock = clock

    def park(
        self, body: str, err: MalformedMessage, *, message_id: str, receive_count: int
    ) -> DeadLetterReceipt:
        """Send ``body`` unchanged to the DLQ, then log it for its firm (when attributable).

        Raises what the sender raises (``ServiceUnavailable``, ``Throttled``, ``InfrastructureError``, ...):
        the caller leaves the message on the queue. A failure of the log write after the send raises too
        (the message comes back and is sent again: a harmless duplicate, see the module doc).
        """
        facts = redacted_attributes(err)
        attributes = {
            "dead_letter_reason": "malformed",
            **facts,
            "source_message_id": message_id[:_ATTRIBUTE_MAX],
            "source_receive_count": str(receive_count),
        }
        self._dlq.send_many([SqsMessage(body=body, id="dead-letter", attributes=attributes)])
        attributed = "firm_id" in facts
        if attributed:
            self._log.record(
                DeadLetter(
                    firm_id=facts["firm_id"],
                    event_id=facts["event_id"],
                    detail_type=facts["detail_type"],
                    problem=err.message,
                    message_id=message_id,
                    dead_lettered_at=self._clock(),
                )
            )
        return DeadLetterReceipt(
            facts["detail_type"], facts.get("firm_id"), facts.get("event_id"), facts["problem"], attributed
        )
