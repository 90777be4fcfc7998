"""Work parked while a firm's QuickBooks connection is not ``connected`` (PRODUCT.md A.5, A.6, E.2).

A platform event (or a :class:`~qbsync.models.commands.SyncCommand`) that reaches the sync service while the
firm is disconnected, needs a reconnect, is switching companies or was never connected is not left to SQS
redelivery (5 receives x 180 s, then the DLQ). The service parks it here and consumes the message; when the
connection is ``connected`` again, :meth:`PausedWork.resume` sends everything parked back to
``OutboundQueue``, where it goes through the normal path (claim, dependencies, exactly-once write).

One item per paused record in the sync-state table (docs/data-model.md, "paused work"):

=================  ===========================================================================================
attribute          meaning
=================  ===========================================================================================
``pk`` / ``sk``    ``FIRM#{firm_id}`` / ``PAUSED#{entity_type}#{platform_id}`` (the firm's partition: a firm
                   without a connection has no realm yet)
``event``          the newest parked platform event (EventBridge envelope, JSON text) and its ``version``;
``version``        a park of an older version never replaces it (conditional update)
``command``        the last parked SyncCommand (JSON text) for the record, if any (manual sync / resync asked
                   for while paused); kept beside the event, never replacing it
``token``          a fresh id on every park: the item is deleted only if it still holds what was sent
``parked_at``      epoch seconds of the last park; ``firm_id``, ``entity_type``, ``platform_id``
=================  ===========================================================================================

The backlog is bounded by the firm's records (one item per record, whatever the number of events).
:meth:`PausedWork.resume` is idempotent: an item is deleted only after its messages were sent, and only if
nobody parked something newer in between (condition on ``token``); a message sent twice is harmless (the
consumer answers ``stale`` / ``already_synced``). Logs carry firm ids and counts only.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from qbsync import vocab
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.adapters.sqs import MAX_BATCH_ENTRIES, SqsMessage
from qbsync.errors import Conflict, QbsyncError
from qbsync.models.commands import SyncCommand

__all__ = ["PAUSED_PREFIX", "ParkedWork", "PausedWork"]

logger = logging.getLogger("qbsync.repositories.paused")

PAUSED_PREFIX = "PAUSED#"


class Sender(Protocol):
    def send_many(self, messages: Iterable[SqsMessage]) -> Any: ...


def paused_key(firm_id: str, entity_type: str, platform_id: str) -> dict[str, str]:
    if entity_type not in vocab.RECORD_TYPES:
        raise ValueError(f"unknown entity_type {entity_type!r}")
    if not firm_id or not platform_id or "#" in firm_id or "#" in platform_id:
        raise ValueError("firm_id and platform_id are required and never contain '#'")
    return {"pk": f"FIRM#{firm_id}", "sk": f"{PAUSED_PREFIX}{entity_type}#{platform_id}"}


@dataclass(frozen=True)
class ParkedWork:
    """One parked record: its newest event and/or a command, and the token of the last park."""

    firm_id: str
    entity_type: str
    platform_id: str
    token: str
    version: int | None = None
    event: str | None = None
    command: str | None = None
    parked_at: float | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ParkedWork:
        version = item.get("version")
        return cls(
            firm_id=str(item["firm_id"]),
            entity_type=str(item["entity_type"]),
            platform_id=str(item["platform_id"]),
            token=str(item.get("token") or ""),
            version=None if version is None else int(version),
            event=item.get("event") if isinstance(item.get("event"), str) else None,
            command=item.get("command") if isinstance(item.get("command"), str) else None,
            parked_at=None if item.get("parked_at") is None else float(item["parked_at"]),
        )

    def messages(self, prefix: str) -> list[SqsMessage]:
        """The OutboundQueue messages that resume this record (the event first, then the command)."""
        out = []
        if self.event is not None:
            out.append(SqsMessage(body=self.event, id=f"{prefix}-e", correlation_id=_correlation(self.event)))
        if self.command is not None:
            out.append(
                SqsMessage(body=self.command, id=f"{prefix}-c", correlation_id=_correlation(self.command))
            )
        return out


def _correlation(body: str) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    detail = parsed.get("detail")
    value = detail.get("correlation_id") if isinstance(detail, dict) else parsed.get("correlation_id")
    return value if isinstance(value, str) and value else None


class PausedWork:
    """Parked work of the sync-state table (see the module doc).

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).
        sender: sends to ``OutboundQueue`` (``SqsSender``).
        clock: epoch seconds.
    """

    def __init__(self, table: DynamoTable, sender: Sender, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._sender = sender
        self._clock = clock

    # ------------------------------------------------------------------ parking

    def park_event(
        self,
        firm_id: str,
        entity_type: str,
        platform_id: str,
        *,
        version: int,
        envelope: Mapping[str, Any],
    ) -> str | None:
        """Park a platform event (its EventBridge envelope). Returns the park token, or None when an event
        of a newer version is parked already (this one is then not needed: it would be stale)."""
        token = uuid.uuid4().hex
        try:
            self._table.update(
                paused_key(firm_id, entity_type, platform_id),
                update=(
                    "SET #event = :event, #version = :version, #token = :token, parked_at = :now, "
                    "firm_id = :firm, entity_type = :type, platform_id = :pid"
                ),
                condition="attribute_not_exists(#version) OR #version <= :version",
                names={"#event": "event", "#version": "version", "#token": "token"},
                values={
                    ":event": json.dumps(dict(envelope), separators=(",", ":")),
                    ":version": version,
                    ":token": token,
                    ":now": Decimal(repr(float(self._clock()))),
                    ":firm": firm_id,
                    ":type": entity_type,
                    ":pid": platform_id,
                },
                return_values="NONE",
            )
        except Conflict:
            return None
        return token

    def park_command(self, command: SyncCommand) -> str:
        """Park a SyncCommand beside whatever event is parked for its record (the last command wins).

        Returns the park token."""
        token = uuid.uuid4().hex
        self._table.update(
            paused_key(command.firm_id, command.entity_type, command.platform_id),
            update=(
                "SET #command = :command, #token = :token, parked_at = :now, "
                "firm_id = :firm, entity_type = :type, platform_id = :pid"
            ),
            names={"#command": "command", "#token": "token"},
            values={
                ":command": command.model_dump_json(),
                ":token": token,
                ":now": Decimal(repr(float(self._clock()))),
                ":firm": command.firm_id,
                ":type": command.entity_type,
                ":pid": command.platform_id,
            },
            return_values="NONE",
        )
        return token

    def unpark(self, firm_id: str, entity_type: str, platform_id: str, token: str) -> bool:
        """Delete the parked item if it still holds the park ``token`` (nothing newer was parked since)."""
        try:
            self._table.delete(
                paused_key(firm_id, entity_type, platform_id),
                condition="#token = :token",
                names={"#token": "token"},
                values={":token": token},
            )
        except Conflict:
            return False
        return True

    # ------------------------------------------------------------------ reading and resuming

    def parked(self, firm_id: str) -> list[ParkedWork]:
        """Everything parked for the firm (strongly consistent)."""
        if not firm_id or "#" in firm_id:
            raise ValueError("invalid firm_id")
        return [
            ParkedWork.from_item(item)
            for item in self._table.query(
                key_condition="pk = :pk AND begins_with(sk, :prefix)",
                values={":pk": f"FIRM#{firm_id}", ":prefix": PAUSED_PREFIX},
                consistent=True,
            )
        ]

    def resume(self, firm_id: str) -> int:
        """Send every parked record of the firm back to ``OutboundQueue``; returns how many were sent.

        Records go in groups of at most 10 messages; each group's items are deleted once the group was
        sent (conditional on their token, so something parked meanwhile stays for the next resume).
        Idempotent: running it twice sends nothing the second time; a failure part-way leaves the unsent
        items parked and raises the sender's error (RetryableError / DataError, see ``SqsSender``).
        """
        items = self.parked(firm_id)
        sent_records = 0
        kept = 0
        group: list[tuple[ParkedWork, list[SqsMessage]]] = []
        size = 0
        for index, work in enumerate(items):
            messages = work.messages(f"r{index}")
            if not messages:
                self.unpark(work.firm_id, work.entity_type, work.platform_id, work.token)
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

    def _send_group(self, group: list[tuple[ParkedWork, list[SqsMessage]]]) -> tuple[int, int]:
        messages = [m for _, ms in group for m in ms]
        try:
            self._sender.send_many(messages)
        except QbsyncError as err:
            sent = set(err.extra.get("sent_ids") or ())
            for work, ms in group:
                if all(m.id in sent for m in ms):
                    self.unpark(work.firm_id, work.entity_type, work.platform_id, work.token)
            raise
        kept = 0
        for work, _ in group:
            if not self.unpark(work.firm_id, work.entity_type, work.platform_id, work.token):
                kept += 1  # parked again while we sent it: the newer item stays for the next resume
        return len(group), kept
