"""The initial sync's snapshot contract (docs/events/snapshot.md): how qbsync reads a firm's existing records.

qbsync asks with ``Snapshot Requested`` (:class:`SnapshotRequested`, source ``qbsync``); the platform writes
the snapshot into the bucket and prefix named there and answers ``Snapshot Ready`` (:class:`SnapshotReady`,
source ``platform``) naming its manifest. Under ``snapshots/{firm_id}/{run_id}/``:

* ``manifest.json`` - :class:`SnapshotManifest`: format, firm, run, snapshot id, export time and one
  :class:`SnapshotFile` per record type (key, line count, sha256, money total);
* one JSON Lines file per record type: each line ``{"version": <int >= 1>, "data": <the data of the record
  type's Created event>}`` (:class:`SnapshotLineBody`), the newest version of each record, one line each.

The limits (:data:`MAX_FILE_BYTES`, :data:`MAX_LINES_PER_FILE`, :data:`MAX_LINE_BYTES`,
:data:`MAX_MANIFEST_BYTES`) are part of the contract. :func:`parse_snapshot_ready` raises
:class:`~qbsync.errors.BadRequest` naming fields, never values, like
:func:`~qbsync.models.platform_events.parse_platform_event`. Reading the files is
:class:`qbsync.repositories.snapshots.SnapshotStore`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, ValidationError, model_validator

from qbsync.errors import BadRequest
from qbsync.models.common import EventModel, Id, Money
from qbsync.models.platform_events import (
    PLATFORM_EVENT_TYPES,
    PLATFORM_SOURCE,
    PlatformEvent,
    _describe,
)
from qbsync.models.qbsync_events import QbsyncEvent
from qbsync.vocab import ID_CHARS, RECORD_TYPE_INFO, SYNCABLE_TYPES, SyncableType

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_LINES_PER_FILE",
    "MAX_LINE_BYTES",
    "MAX_MANIFEST_BYTES",
    "MONEY_FIELD",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_RECORD_TYPES",
    "SnapshotFile",
    "SnapshotLineBody",
    "SnapshotManifest",
    "SnapshotReady",
    "SnapshotRequested",
    "created_event_type",
    "parse_snapshot_ready",
    "run_prefix",
]

SNAPSHOT_FORMAT = "qbsync.snapshot/1"
#: the record types a snapshot holds (contacts are not in it: contacts sync inbound)
SNAPSHOT_RECORD_TYPES: tuple[SyncableType, ...] = SYNCABLE_TYPES
#: the field of each record type's data that the file's ``total`` sums (accounts and services have none)
MONEY_FIELD: dict[str, str] = {"invoice": "total", "payment": "amount", "refund": "amount", "fee": "amount"}

#: the largest JSON Lines file qbsync reads (1 GiB: 100,000 invoices of 10 KB each fit ten times)
MAX_FILE_BYTES = 1024 * 1024 * 1024
#: the most lines one file may hold
MAX_LINES_PER_FILE = 500_000
#: the longest line, newline included (an invoice of 750 lines fits)
MAX_LINE_BYTES = 512 * 1024
#: the largest manifest
MAX_MANIFEST_BYTES = 64 * 1024

_KEY_PART = rf"[{ID_CHARS}]+"
#: an S3 key of a snapshot object: ``snapshots/<firm>/<run>/<name>``
KEY_PATTERN = rf"^snapshots/{_KEY_PART}/{_KEY_PART}/{_KEY_PART}$"
SnapshotKey = Annotated[str, Field(min_length=1, max_length=1024, pattern=KEY_PATTERN)]
#: short enough that ``snapshot:{snapshot_id}:{record_type}:{line_no}`` stays an Id (128 characters)
SnapshotId = Annotated[str, Field(min_length=1, max_length=64, pattern=rf"^[{ID_CHARS}]+$")]
BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the file's bytes")]
LineCount = Annotated[int, Field(strict=True, ge=0, le=MAX_LINES_PER_FILE)]


def run_prefix(firm_id: str, run_id: str) -> str:
    """``snapshots/{firm_id}/{run_id}/``: where a run's snapshot lives (every key of it starts so)."""
    return f"snapshots/{firm_id}/{run_id}/"


def created_event_type(record_type: str) -> type[PlatformEvent]:
    """The Created event class whose ``data`` a line of ``record_type`` holds (ValueError: not a snapshot
    record type)."""
    if record_type not in SNAPSHOT_RECORD_TYPES:
        raise ValueError(f"not a snapshot record type: {record_type[:40]!r}")
    return PLATFORM_EVENT_TYPES[f"{RECORD_TYPE_INFO[record_type].platform_entity} Created"]


class SnapshotFile(EventModel):
    """One JSON Lines file of the snapshot: every record of one type."""

    record_type: SyncableType
    key: SnapshotKey = Field(description="S3 key, under the run's prefix snapshots/{firm_id}/{run_id}/")
    count: LineCount = Field(description=f"lines in the file (at most {MAX_LINES_PER_FILE})")
    sha256: Sha256
    total: Money | None = Field(
        None,
        description="sum of the money field of every line (invoice total; payment, refund, fee amount); "
        "absent for client_account and service",
    )

    @model_validator(mode="after")
    def _total_when_money(self) -> SnapshotFile:
        has_money = self.record_type in MONEY_FIELD
        if has_money and self.total is None:
            raise ValueError(f"total is required for a {self.record_type} file")
        if not has_money and self.total is not None:
            raise ValueError(f"a {self.record_type} file has no total")
        return self


class SnapshotManifest(EventModel):
    """``manifest.json`` of a snapshot."""

    format: Literal["qbsync.snapshot/1"]
    firm_id: Id
    run_id: Id
    snapshot_id: SnapshotId = Field(description="the export's own id (unique per export)")
    exported_at: AwareDatetime = Field(description="when the platform read the records (RFC 3339, offset)")
    files: list[SnapshotFile] = Field(
        max_length=len(SNAPSHOT_RECORD_TYPES),
        description="at most one per record type; a type without records may be absent or have count 0",
    )

    @model_validator(mode="after")
    def _files_of_this_run(self) -> SnapshotManifest:
        prefix = run_prefix(self.firm_id, self.run_id)
        seen: set[str] = set()
        keys: set[str] = set()
        for i, f in enumerate(self.files):
            if f.record_type in seen:
                raise ValueError(f"files[{i}].record_type: a second file of {f.record_type}")
            if f.key in keys:
                raise ValueError(f"files[{i}].key: the same key as an earlier file")
            if not f.key.startswith(prefix):
                raise ValueError(f"files[{i}].key: not under the run's prefix {prefix}")
            seen.add(f.record_type)
            keys.add(f.key)
        return self

    def file(self, record_type: str) -> SnapshotFile | None:
        """The file of ``record_type``; None: the snapshot has no records of that type."""
        return next((f for f in self.files if f.record_type == record_type), None)


class SnapshotLineBody(EventModel):
    """One line of a snapshot file (the bytes of the line, parsed); ``data`` is validated as the ``data``
    of the record type's Created event (:func:`created_event_type`)."""

    version: int = Field(strict=True, ge=1, description="the record's version on the platform")
    data: dict[str, Any] = Field(description="the data of the record type's Created event")


class SnapshotRequested(QbsyncEvent):
    """qbsync asks the platform for a snapshot of the firm's records (the initial sync's RequestSnapshot).

    The platform writes it into ``bucket`` under ``prefix`` (``snapshots/{firm_id}/{run_id}/``), with a file
    for each of ``record_types``, and answers "Snapshot Ready" before ``respond_by``.
    """

    DETAIL_TYPE: ClassVar[str] = "Snapshot Requested"
    realm_id: Id
    run_id: Id
    bucket: BucketName
    prefix: str = Field(max_length=300, description="snapshots/{firm_id}/{run_id}/")
    record_types: list[SyncableType] = Field(min_length=1, max_length=len(SNAPSHOT_RECORD_TYPES))
    respond_by: AwareDatetime

    @model_validator(mode="after")
    def _prefix_of_this_run(self) -> SnapshotRequested:
        if self.prefix != run_prefix(self.firm_id, self.run_id):
            raise ValueError("prefix must be snapshots/{firm_id}/{run_id}/")
        if len(set(self.record_types)) != len(self.record_types):
            raise ValueError("record_types: each record type once")
        return self


class SnapshotReady(EventModel):
    """The platform's answer: the snapshot of ``run_id`` is written, its manifest is ``manifest_key``.

    The envelope is that of platform events (``firm_id``, ``event_id``, ``occurred_at`` with offset,
    ``correlation_id``), without ``version`` / ``data``: a snapshot is not a record.
    """

    DETAIL_TYPE: ClassVar[str] = "Snapshot Ready"
    SOURCE: ClassVar[str] = PLATFORM_SOURCE

    firm_id: Id
    event_id: Id
    occurred_at: AwareDatetime
    correlation_id: Id | None = None
    run_id: Id
    snapshot_id: SnapshotId
    manifest_key: SnapshotKey = Field(
        description="S3 key of manifest.json, under snapshots/{firm_id}/{run_id}/"
    )

    @model_validator(mode="after")
    def _manifest_of_this_run(self) -> SnapshotReady:
        if not self.manifest_key.startswith(run_prefix(self.firm_id, self.run_id)):
            raise ValueError("manifest_key: not under snapshots/{firm_id}/{run_id}/")
        return self


def parse_snapshot_ready(detail: Mapping[str, Any]) -> SnapshotReady:
    """Validate the detail of a "Snapshot Ready" event (a whole EventBridge event is unwrapped first, after
    checking its source and detail type).

    Raises:
        BadRequest: not a JSON object, not from the platform, not "Snapshot Ready", or a detail that does not
            match the model: the message lists field paths and what is wrong, never values; ``err.extra``
            has ``event_id``, ``firm_id`` and ``run_id`` when they are strings.
    """
    if not isinstance(detail, Mapping):
        raise BadRequest("Snapshot Ready: detail must be a JSON object")
    if "detail-type" in detail or "source" in detail:
        if detail.get("source") != PLATFORM_SOURCE:
            raise BadRequest(f"Snapshot Ready: event source must be {PLATFORM_SOURCE!r}")
        if detail.get("detail-type") != SnapshotReady.DETAIL_TYPE:
            raise BadRequest("Snapshot Ready: detail-type must be 'Snapshot Ready'")
        detail = detail.get("detail")  # type: ignore[assignment]
        if not isinstance(detail, Mapping):
            raise BadRequest("Snapshot Ready: detail must be a JSON object")
    ids = {k: v for k in ("event_id", "firm_id", "run_id") if isinstance(v := detail.get(k), str)}
    try:
        return SnapshotReady.model_validate(detail)
    except ValidationError as exc:
        # `from None`: the pydantic error repr embeds input values.
        raise BadRequest(
            f"Snapshot Ready: invalid detail: {_describe(exc)}",
            detail_type=SnapshotReady.DETAIL_TYPE,
            event_id=ids.get("event_id"),
            firm_id=ids.get("firm_id"),
            run_id=ids.get("run_id"),
        ) from None
