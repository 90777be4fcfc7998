"""Work parked while a firm's QuickBooks connection is not ``connected`` (PRODUCT.md A.5, A.6, E.2).

A platform event (or a :class:`~qbsync.models.commands.SyncCommand`) that reaches the sync service while the
firm is disconnected, needs a reconnect, is switching companies or was never connected is not left to SQS
redelivery (5 receives x 180 s, then the DLQ). The service parks it here and consumes the message; when the
connection is ``connected`` again, :mod:`qbsync.outbound.resume` sends everything parked back to
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
:meth:`PausedWork.unpark` deletes an item only if nobody parked something newer since it was read
(condition on ``token``), which makes the resume idempotent (:mod:`qbsync.outbound.resume`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from qbsync import vocab
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict
from qbsync.models.commands import SyncCommand

__all__ = ["PAUSED_PREFIX", "ParkedWork", "PausedWork"]

PAUSED_PREFIX = "PAUSED#"


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


class PausedWork:
    """Parked work of the sync-state table (see the module doc).

    Args:
        table: the sync-state table (``SYNC_TABLE_NAME``).
        clock: epoch seconds.
    """

    def __init__(self, table: DynamoTable, clock: Callable[[], float] = time.time) -> None:
        self._table = table
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

    # ------------------------------------------------------------------ reading

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
