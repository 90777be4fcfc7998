"""The platform's "Snapshot Ready" (docs/events/snapshot.md): the answer to a run's "Snapshot Requested".

The announcement is proven before the run trusts it: it must parse (strict model), name the firm's latest run,
which must be waiting for a snapshot, and its manifest must read and validate under that run's prefix
(:meth:`qbsync.repositories.snapshots.SnapshotStore.manifest`). Only then is the waiting execution
resumed (:meth:`qbsync.initial_sync.runs.RunControl.snapshot_ready`, once: a repeated announcement changes
nothing). A refused announcement is answered with an
"Initial Sync Progress" whose ``error`` says what is wrong (never a value from the files), and the run keeps
waiting for a good one until the request's ``respond_by``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from qbsync.errors import BadRequest, DataError, QbsyncError
from qbsync.initial_sync.runs import RunControl, progress_event
from qbsync.models.snapshot import parse_snapshot_ready
from qbsync.repositories.initial_sync import WAITING_FOR_SNAPSHOT, InitialSyncRuns

__all__ = ["Accepted", "SnapshotIntake"]

logger = logging.getLogger("qbsync.initial_sync")


class Manifests(Protocol):
    def manifest(self, firm_id: str, run_id: str, manifest_key: str) -> Any: ...


class Publisher(Protocol):
    def publish(self, events: Any) -> Any: ...


@dataclass(frozen=True)
class Accepted:
    accepted: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reason": self.reason}


class SnapshotIntake:
    """Accepts or refuses "Snapshot Ready" announcements (module doc)."""

    def __init__(
        self, *, runs: InitialSyncRuns, control: RunControl, manifests: Manifests, publisher: Publisher
    ) -> None:
        self._runs = runs
        self._control = control
        self._manifests = manifests
        self._publisher = publisher

    def accept(self, detail: Mapping[str, Any] | None) -> Accepted:
        try:
            ready = parse_snapshot_ready(detail if isinstance(detail, Mapping) else {})
        except BadRequest as err:
            logger.error("malformed Snapshot Ready ignored", extra={"error": err.message})
            return Accepted(False, err.message)
        run = self._runs.latest(ready.firm_id)
        if run is None or run.ref.run_id != ready.run_id:
            logger.warning(
                "Snapshot Ready for a run that is not the firm's latest", extra={"firm_id": ready.firm_id}
            )
            return Accepted(False, "no such initial-sync run")
        if run.status != WAITING_FOR_SNAPSHOT:
            logger.info("Snapshot Ready for a run that does not wait for one", extra=run.ref.as_dict())
            return Accepted(False, f"the run is {run.status.replace('_', ' ')}")
        try:
            manifest = self._manifests.manifest(ready.firm_id, ready.run_id, ready.manifest_key)
        except DataError as err:
            reason = f"the snapshot was refused: {err.message}"
            logger.error("snapshot refused", extra={**run.ref.as_dict(), "error": err.message})
            self._tell(run, reason, ready.correlation_id or ready.event_id)
            return Accepted(False, reason)
        snapshot_id = str(getattr(manifest, "snapshot_id", ready.snapshot_id))
        resumed = self._control.snapshot_ready(
            run.ref, manifest_key=ready.manifest_key, snapshot_id=snapshot_id
        )
        logger.info("snapshot accepted", extra={**run.ref.as_dict(), "resumed": resumed})
        return Accepted(resumed, None if resumed else "already accepted")

    def _tell(self, run: Any, reason: str, correlation_id: str) -> None:
        try:
            self._publisher.publish([progress_event(run, correlation_id=correlation_id, error=reason)])
        except QbsyncError:
            logger.warning("the refusal could not be announced", extra=run.ref.as_dict())
