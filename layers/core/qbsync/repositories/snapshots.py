"""Reading the platform's snapshot of a firm (docs/events/snapshot.md) from the snapshot bucket.

:meth:`SnapshotStore.manifest` reads and checks ``manifest.json``; :meth:`SnapshotStore.lines` streams one
record type's JSON Lines file (chunked reads, never the whole file in memory) and checks, while streaming, its
sha256, its line count and its money total against the manifest; :meth:`SnapshotStore.read_lines` reads a
byte range of it again (a chunk of the initial sync, by the ``offset`` / ``length`` the streaming pass gave).

Each line becomes a :class:`SnapshotLine` holding the record type's Created event built from it through the
platform event models (:func:`qbsync.models.snapshot.created_event_type`), so a snapshot line passes the
same validation as a platform event. A line that does not (not JSON, a wrong field, a duplicate id, too
long) is not a failure of the snapshot: its :class:`SnapshotLine` has ``event=None`` and a ``problem`` naming
the fields, never values. What makes the whole snapshot unusable raises
:class:`~qbsync.errors.SnapshotInvalid`: a manifest that does not parse or is not of this run, a missing or
oversized file, a sha256 / count / total that differs (raised by the iterator of :meth:`lines` when it gets
there: a consumer must treat lines it already received as void).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from qbsync.adapters.s3 import DEFAULT_CHUNK_BYTES, S3Objects
from qbsync.errors import ObjectMissing, SnapshotInvalid
from qbsync.models.platform_events import PlatformEvent, _describe
from qbsync.models.snapshot import (
    MAX_FILE_BYTES,
    MAX_LINE_BYTES,
    MAX_MANIFEST_BYTES,
    MONEY_FIELD,
    SNAPSHOT_RECORD_TYPES,
    SnapshotFile,
    SnapshotLineBody,
    SnapshotManifest,
    created_event_type,
    run_prefix,
)
from qbsync.vocab import ID_CHARS, ID_MAX_LENGTH

__all__ = ["MAX_CHUNK_BYTES", "SnapshotLine", "SnapshotStore"]

#: the largest byte range :meth:`SnapshotStore.read_lines` reads at once
MAX_CHUNK_BYTES = 64 * 1024 * 1024
_ID = re.compile(rf"[{ID_CHARS}]{{1,{ID_MAX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class SnapshotLine:
    """One line of a snapshot file.

    ``line_no`` counts from 1; ``offset`` / ``length`` are the line's bytes in the file (newline included), so
    ``read_lines(manifest, record_type, offset, length, first_line_no=line_no)`` reads it again. ``event``:
    the record type's Created event built from the line (``firm_id`` of the manifest, ``event_id``
    ``snapshot:{snapshot_id}:{record_type}:{line_no}``, ``occurred_at`` the export time, ``correlation_id``
    ``snapshot:{snapshot_id}``, ``version`` and ``data`` of the line); None when the line does not parse,
    and then ``problem`` says why (field paths, never values). ``platform_id``: the line's ``data.id`` when it
    is a readable id, even on a bad line (so the problem can be shown on its record).
    """

    record_type: str
    line_no: int
    offset: int
    length: int
    version: int | None
    event: PlatformEvent | None
    problem: str | None
    platform_id: str | None


class SnapshotStore:
    """The snapshots in one bucket (the initial sync's ``SnapshotBucket``)."""

    def __init__(
        self,
        objects: S3Objects,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.objects = objects
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes

    # --- the manifest ------------------------------------------------------------------------------------

    def manifest(self, firm_id: str, run_id: str, manifest_key: str) -> SnapshotManifest:
        """The manifest of the run's snapshot, checked: of this firm and run, every key under
        ``snapshots/{firm_id}/{run_id}/``, every file present and at most :data:`MAX_FILE_BYTES`.

        Raises:
            SnapshotInvalid: naming the problem and the field, never a value.
        """
        prefix = run_prefix(firm_id, run_id)
        ids: dict[str, Any] = {"firm_id": firm_id, "run_id": run_id}
        if not isinstance(manifest_key, str) or not manifest_key.startswith(prefix):
            raise SnapshotInvalid(f"manifest_key: not under the run's prefix {prefix}", **ids)
        manifest = self._parse_manifest(manifest_key, ids)
        if (manifest.firm_id, manifest.run_id) != (firm_id, run_id):
            raise SnapshotInvalid(f"manifest: firm_id and run_id must be those of the run ({prefix})", **ids)
        for i, f in enumerate(manifest.files):
            if f.key == manifest_key:
                raise SnapshotInvalid(f"manifest: files[{i}].key is the manifest itself", **ids)
            try:
                size = self.objects.size(f.key)
            except ObjectMissing:
                raise SnapshotInvalid(f"manifest: files[{i}].key: no such object", **ids) from None
            if size > MAX_FILE_BYTES:
                raise SnapshotInvalid(
                    f"manifest: files[{i}] ({f.record_type}) is larger than {MAX_FILE_BYTES} bytes", **ids
                )
        return manifest

    def _parse_manifest(self, manifest_key: str, ids: dict[str, Any]) -> SnapshotManifest:
        try:
            size = self.objects.size(manifest_key)
        except ObjectMissing:
            raise SnapshotInvalid("manifest_key: no such object", **ids) from None
        if size > MAX_MANIFEST_BYTES:
            raise SnapshotInvalid(f"manifest: larger than {MAX_MANIFEST_BYTES} bytes", **ids)
        try:
            raw = json.loads(self.objects.get_text(manifest_key))
        except ObjectMissing:
            raise SnapshotInvalid("manifest_key: no such object", **ids) from None
        except (ValueError, RecursionError):
            raise SnapshotInvalid("manifest: not JSON (UTF-8)", **ids) from None
        try:
            return SnapshotManifest.model_validate(raw)
        except ValidationError as exc:
            raise SnapshotInvalid(f"manifest: {_describe(exc)}", **ids) from None

    # --- the lines -------------------------------------------------------------------------------------

    def lines(self, manifest: SnapshotManifest, record_type: str) -> Iterator[SnapshotLine]:
        """Every line of the file of ``record_type``, streamed (none when the manifest has no such file).

        Raises (from the iterator, when it gets there):
            SnapshotInvalid: more lines than the manifest's count, or at the end: a different sha256, fewer
                lines, or (when every line parsed) a different money total.
            ValueError: ``record_type`` is not a snapshot record type.
        """
        file = self._file(manifest, record_type)
        if file is None:
            return
        check = _FileCheck(manifest, file)
        chunks = (check.read(chunk) for chunk in self.objects.iter_chunks(file.key, self.chunk_bytes))
        for offset, length, raw in _split(chunks, self.max_line_bytes):
            line_no = check.next_line()
            yield check.counted(_build(manifest, record_type, line_no, offset, length, raw))
        check.finish()

    def read_lines(
        self, manifest: SnapshotManifest, record_type: str, offset: int, length: int, *, first_line_no: int
    ) -> list[SnapshotLine]:
        """The whole lines in bytes ``offset`` .. ``offset + length - 1`` of the file of ``record_type`` (a
        chunk: its ``offset`` is the first line's, ``length`` the sum of its lines'; ``first_line_no`` the
        first line's ``line_no``, which makes the event ids those :meth:`lines` gives).

        The file's sha256 is not checked here (a range is not the whole file): the range must begin and end on
        line boundaries and lie within the file and the manifest's count.

        Raises:
            SnapshotInvalid: the range does not fall on line boundaries of the file as it is now, or goes past
                its end or the manifest's count (the file changed since it was streamed, or a wrong range).
            ValueError: a negative offset, a length below 1 or above :data:`MAX_CHUNK_BYTES`, a
                ``first_line_no`` below 1, no file of ``record_type``.
        """
        file = self._file(manifest, record_type)
        if file is None:
            raise ValueError(f"the snapshot has no {record_type} file")
        if offset < 0 or not 1 <= length <= MAX_CHUNK_BYTES or first_line_no < 1:
            raise ValueError("invalid chunk: offset >= 0, 1 <= length <= MAX_CHUNK_BYTES, first_line_no >= 1")
        start = offset - 1 if offset else 0  # the byte before the range must end a line
        data = self.objects.get_range(file.key, start, offset + length - 1)
        if offset:
            if data[:1] != b"\n":
                raise self._invalid(manifest, file, "the chunk does not start at a line")
            data = data[1:]
        if len(data) != length:
            raise self._invalid(manifest, file, "the chunk goes past the end of the file")
        if not data.endswith(b"\n") and self.objects.size(file.key) != offset + length:
            raise self._invalid(manifest, file, "the chunk does not end at a line")
        out: list[SnapshotLine] = []
        for i, (at, size, raw) in enumerate(_split([data], self.max_line_bytes)):
            line_no = first_line_no + i
            if line_no > file.count:
                raise self._invalid(manifest, file, f"more lines than its count ({file.count})")
            out.append(_build(manifest, record_type, line_no, offset + at, size, raw))
        return out

    # --- internals ---------------------------------------------------------------------------------------

    @staticmethod
    def _file(manifest: SnapshotManifest, record_type: str) -> SnapshotFile | None:
        if record_type not in SNAPSHOT_RECORD_TYPES:
            raise ValueError(f"not a snapshot record type: {str(record_type)[:40]!r}")
        return manifest.file(record_type)

    @staticmethod
    def _invalid(manifest: SnapshotManifest, file: SnapshotFile, problem: str) -> SnapshotInvalid:
        return _invalid(manifest, file, problem)


def _invalid(manifest: SnapshotManifest, file: SnapshotFile, problem: str) -> SnapshotInvalid:
    return SnapshotInvalid(
        f"snapshot file of {file.record_type}: {problem}",
        firm_id=manifest.firm_id,
        run_id=manifest.run_id,
        snapshot_id=manifest.snapshot_id,
        record_type=file.record_type,
    )


class _FileCheck:
    """What streaming one file checks against its manifest entry: size, sha256, count, money total, and
    one line per record (a repeated id makes the later line a bad line)."""

    def __init__(self, manifest: SnapshotManifest, file: SnapshotFile) -> None:
        self.manifest = manifest
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0
        self.line_no = 0
        self.total = Decimal("0.00")
        self.all_parsed = True
        self.money = MONEY_FIELD.get(file.record_type)
        self.seen: dict[str, int] = {}

    def read(self, chunk: bytes) -> bytes:
        self.digest.update(chunk)
        self.size += len(chunk)
        if self.size > MAX_FILE_BYTES:
            raise _invalid(self.manifest, self.file, f"larger than {MAX_FILE_BYTES} bytes")
        return chunk

    def next_line(self) -> int:
        self.line_no += 1
        if self.line_no > self.file.count:
            raise _invalid(self.manifest, self.file, f"more lines than its count ({self.file.count})")
        return self.line_no

    def counted(self, line: SnapshotLine) -> SnapshotLine:
        if line.event is not None:
            first = self.seen.setdefault(line.event.record_id, line.line_no)
            if first != line.line_no:
                line = _duplicate(line, first)
        if line.event is None:
            self.all_parsed = False
        elif self.money:
            self.total += getattr(line.event.data, self.money)
        return line

    def finish(self) -> None:
        file = self.file
        if self.digest.hexdigest() != file.sha256:
            raise _invalid(self.manifest, file, "sha256 differs from the manifest's")
        if self.line_no != file.count:
            raise _invalid(self.manifest, file, f"{self.line_no} lines, the manifest's count is {file.count}")
        if self.all_parsed and file.total is not None and self.total != file.total:
            raise _invalid(self.manifest, file, "the money total of its lines differs from the manifest's")


def _split(chunks: Iterable[bytes], max_line: int) -> Iterator[tuple[int, int, bytes | None]]:
    """``(offset, length, bytes)`` of each line of a byte stream (length and bytes with the newline; the last
    line may have none). ``bytes`` is None for a line longer than ``max_line`` (its bytes are not kept)."""
    buf = bytearray()
    start = pos = 0
    too_long = False
    for chunk in chunks:
        i, n = 0, len(chunk)
        while i < n:
            j = chunk.find(b"\n", i)
            end = n if j < 0 else j + 1
            if not too_long:
                buf += chunk[i:end]
                if len(buf) > max_line:
                    too_long = True
                    buf.clear()
            pos += end - i
            i = end
            if j >= 0:
                yield start, pos - start, None if too_long else bytes(buf)
                buf.clear()
                too_long = False
                start = pos
    if pos > start:
        yield start, pos - start, None if too_long else bytes(buf)


def _build(
    manifest: SnapshotManifest, record_type: str, line_no: int, offset: int, length: int, raw: bytes | None
) -> SnapshotLine:
    def bad(problem: str, platform_id: str | None = None, version: int | None = None) -> SnapshotLine:
        return SnapshotLine(record_type, line_no, offset, length, version, None, problem, platform_id)

    if raw is None:
        return bad(f"line {line_no}: longer than the line limit (MAX_LINE_BYTES)")
    text = raw.strip()
    if not text:
        return bad(f"line {line_no}: empty")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return bad(f"line {line_no}: not JSON (UTF-8)")
    if not isinstance(obj, dict):
        return bad(f"line {line_no}: not a JSON object")
    platform_id = _readable_id(obj.get("data"))
    try:
        body = SnapshotLineBody.model_validate(obj)
    except ValidationError as exc:
        return bad(f"line {line_no}: {_describe(exc)}", platform_id)
    envelope: dict[str, Any] = {
        "firm_id": manifest.firm_id,
        "event_id": f"snapshot:{manifest.snapshot_id}:{record_type}:{line_no}",
        "occurred_at": manifest.exported_at,
        "correlation_id": f"snapshot:{manifest.snapshot_id}",
        "version": body.version,
        "data": body.data,
    }
    try:
        event = created_event_type(record_type).model_validate(envelope)
    except ValidationError as exc:
        return bad(f"line {line_no}: {_describe(exc)}", platform_id, body.version)
    return SnapshotLine(record_type, line_no, offset, length, body.version, event, None, event.record_id)


def _readable_id(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    value = data.get("id")
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    return None


def _duplicate(line: SnapshotLine, first: int) -> SnapshotLine:
    return SnapshotLine(
        line.record_type,
        line.line_no,
        line.offset,
        line.length,
        line.version,
        None,
        f"line {line.line_no}: data.id: the same record as line {first} (one line per record)",
        line.platform_id,
    )
