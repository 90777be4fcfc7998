"""The resync's redrive of ``OutboundDLQ``: messages SQS parked after 5 failed receives go back, a few times.

The record sweep (:mod:`qbsync.reconcile.sweep`) runs again every record whose message reached the DLQ
*after* a claim: its event is stored on the record. A message that failed before any claim (DynamoDB or the
connection read down for over an hour, the batch's reads failing) left no record behind: only the DLQ holds
it, and without a redrive the platform's change is never applied. So each scheduled tick
(``CdcCatchUpFunction``'s ``CatchUpSchedule``, once for all firms: the DLQ is not per firm) moves such
messages back to ``OutboundQueue`` (:meth:`DeadLetterRedrive.run`), body unchanged, as an engineer's
``make redrive-dlq`` does. Safe: the outbound sync applies a record version once (``already_synced``,
``stale``), whatever the message.

What stays for the engineer (:func:`keep_reason`):

* ``malformed`` - a message the worker sent there itself (attribute ``dead_letter_reason``): it cannot be
  understood until a deploy or the platform's fix, and would come straight back;
* ``exhausted`` - a message already redriven :data:`MAX_REDRIVES` times (attribute
  ``qbsync_redrives``, carried on each redrive): what fails for hours is a bug or a long outage; the
  ``OutboundDLQAlarm`` keeps saying so.

Bounded: at most :data:`MAX_PER_RUN` messages a tick. Receive (hidden :data:`HIDE_SECONDS`), send, then
delete: a crash in between leaves a duplicate on ``OutboundQueue``, never a loss. A kept message is hidden
for :data:`HIDE_SECONDS` and then visible again, unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qbsync.adapters.sqs import CORRELATION_ATTRIBUTE, ReceivedMessage, SqsMessage

__all__ = [
    "HIDE_SECONDS",
    "MAX_PER_RUN",
    "MAX_REDRIVES",
    "REDRIVES_ATTRIBUTE",
    "DeadLetterRedrive",
    "RedriveReport",
    "keep_reason",
]

logger = logging.getLogger("qbsync.reconcile.redrive")

#: a message is redriven at most this many times by the schedule
MAX_REDRIVES = 3
#: how many times the schedule redrove a message (a message attribute it carries)
REDRIVES_ATTRIBUTE = "qbsync_redrives"
MAX_PER_RUN = 500
HIDE_SECONDS = 120
_RECEIVE = 10


def keep_reason(attributes: Mapping[str, str]) -> str | None:
    """Why a dead letter stays in the DLQ (``malformed``, ``exhausted``), or None to redrive it."""
    if attributes.get("dead_letter_reason"):
        return "malformed"
    try:
        redrives = int(attributes.get(REDRIVES_ATTRIBUTE) or 0)
    except ValueError:
        redrives = MAX_REDRIVES  # not ours to count: leave it to the engineer
    return "exhausted" if redrives >= MAX_REDRIVES else None


class DeadLetterQueue(Protocol):
    """``qbsync.adapters.sqs.SqsSender`` of ``OutboundDLQ``."""

    def receive(self, max_messages: int, *, visibility_seconds: int) -> list[ReceivedMessage]: ...

    def delete(self, receipt_handle: str) -> None: ...


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


@dataclass
class RedriveReport:
    """``moved`` back to OutboundQueue; ``kept`` per reason."""

    moved: int = 0
    kept: dict[str, int] = field(default_factory=dict)


class DeadLetterRedrive:
    """Moves ``OutboundDLQ``'s infrastructure dead letters back to ``OutboundQueue`` (see the module doc).

    Args:
        dlq: ``OutboundDLQ``; ``outbound``: ``OutboundQueue``.
    """

    def __init__(self, *, dlq: DeadLetterQueue, outbound: Sender) -> None:
        self._dlq = dlq
        self._outbound = outbound

    def run(self, request_id: str) -> RedriveReport:
        """One tick's redrive. Raises what SQS raises (the caller logs it: the fan-out is not stopped)."""
        report = RedriveReport()
        seen = 0
        while seen < MAX_PER_RUN:
            batch = self._dlq.receive(min(_RECEIVE, MAX_PER_RUN - seen), visibility_seconds=HIDE_SECONDS)
            if not batch:
                break
            seen += len(batch)
            for message in batch:
                why = keep_reason(message.attributes)
                if why is not None:
                    report.kept[why] = report.kept.get(why, 0) + 1
                    continue
                self._outbound.send_many([_again(message)])
                self._dlq.delete(message.receipt_handle)
                report.moved += 1
        logger.info(
            "dead letters redriven",
            extra={"request_id": request_id, "moved": report.moved, "kept": report.kept},
        )
        return report


def _again(message: ReceivedMessage) -> SqsMessage:
    attributes = {k: v for k, v in message.attributes.items() if k != CORRELATION_ATTRIBUTE}
    attributes[REDRIVES_ATTRIBUTE] = str(int(message.attributes.get(REDRIVES_ATTRIBUTE) or 0) + 1)
    return SqsMessage(
        body=message.body,
        id="redrive",
        correlation_id=message.attributes.get(CORRELATION_ATTRIBUTE),
        attributes=attributes,
    )
