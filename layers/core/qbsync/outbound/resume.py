"""Resume a firm's paused work once its QuickBooks connection is ``connected`` again (PRODUCT.md A.6, E.2).

Work that reached the sync service while the firm was not connected is parked in
:class:`~qbsync.repositories.paused.PausedWork` (one item per record: the newest platform event and/or the
last SyncCommand). :meth:`PausedWorkResumer.resume` sends everything parked back to ``OutboundQueue``, where
it goes through the normal path (claim, dependencies, exactly-once write). The retry fan-out resumes
(``qbsync.wiring.paused_resumer``) on a "Connection Changed" event with status ``connected``; a sync worker
that finds the connection ``connected`` right after parking resumes the firm itself (the resume that follows
the reconnect may have run before its park).

Idempotent: an item is deleted only after its messages were sent, and only if nobody parked something newer
in between (:meth:`PausedWork.unpark <qbsync.repositories.paused.PausedWork.unpark>`, conditional on the
park ``token``); a message sent twice is harmless (the consumer answers ``stale`` / ``already_synced``).
Logs carry firm ids and counts only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from qbsync.adapters.sqs import MAX_BATCH_ENTRIES, SqsMessage
from qbsync.errors import QbsyncError
from qbsync.repositories.paused import ParkedWork, PausedWork

__all__ = ["PausedWorkResumer", "messages_of"]

logger = logging.getLogger("qbsync.outbound.resume")


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


def messages_of(work: ParkedWork, prefix: str) -> list[SqsMessage]:
    """The OutboundQueue messages that resume one parked record (the event first, then the command)."""
    out = []
    if work.event is not None:
        out.append(SqsMessage(body=work.event, id=f"{prefix}-e", correlation_id=_correlation(work.event)))
    if work.command is not None:
        out.append(SqsMessage(body=work.command, id=f"{prefix}-c", correlation_id=_correlation(work.command)))
    return out


def _correlation(body: str) -> str | None:
    """The correlation id of a parked body (an event's ``detail.correlation_id``, a command's own), for the
    message attribute; the body itself is sent as it was parked."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    detail = parsed.get("detail")
    value = detail.get("correlation_id") if isinstance(detail, dict) else parsed.get("correlation_id")
    return value if isinstance(value, str) and value else None


class PausedWorkResumer:
    """Sends a firm's parked work back to ``OutboundQueue`` (see the module doc).

    Args:
        paused: the parked work (:class:`~qbsync.repositories.paused.PausedWork`).
        sender: sends to ``OutboundQueue`` (``SqsSender``).
    """

    def __init__(self, paused: PausedWork, sender: Sender) -> None:
        self._paused = paused
        self._sender = sender

    def resume(self, firm_id: str) -> int:
        """Send every parked record of the firm back to ``OutboundQueue``; returns how many were sent.

        Records go in groups of at most 10 messages; each group's items are deleted once the group was
        sent (conditional on their token, so something parked meanwhile stays for the next resume).
        Idempotent: running it twice sends nothing the second time; a failure part-way leaves the unsent
        items parked and raises the sender's error (RetryableError / DataError, see ``SqsSender``).
        """
        items = self._paused.parked(firm_id)
        sent_records = 0
        kept = 0
        group: list[tuple[ParkedWork, list[SqsMessage]]] = []
        size = 0
        for index, work in enumerate(items):
            messages = messages_of(work, f"r{index}")
            if not messages:
                self._unpark(work)
                continue
            if size + len(messages) > MAX_BATCH_ENTRIES:
                done, stayed = self._send_group(group)
                sent_records, kept = sent_records + done, kept + stayed
                group, size = [], 0
            group.append((work, messages))
            size += len(messages)
        if group:
            done, stayed = self._send_group(group)
            sent_records, kept = sent_records + done, kept + stayed
        logger.info(
            "paused work resumed",
            extra={"firm_id": firm_id, "resumed": sent_records, "parked_again": kept},
        )
        return sent_records

    def _unpark(self, work: ParkedWork) -> bool:
        return self._paused.unpark(work.firm_id, work.entity_type, work.platform_id, work.token)

    def _send_group(self, group: list[tuple[ParkedWork, list[SqsMessage]]]) -> tuple[int, int]:
        messages = [m for _, ms in group for m in ms]
        try:
            self._sender.send_many(messages)
        except QbsyncError as err:
            sent = set(err.extra.get("sent_ids") or ())
            for work, ms in group:
                if all(m.id in sent for m in ms):
                    self._unpark(work)
            raise
        kept = 0
        for work, _ in group:
            if not self._unpark(work):
                kept += 1  # parked again while we sent it: the newer item stays for the next resume
        return len(group), kept
