"""SnapshotStore on moto's S3: the sample platform's export of a sample firm read back (every record once at
its newest version, counts and totals as in the manifest), and what a bad file, line or manifest does."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from qbsync.adapters.s3 import S3Objects
from qbsync.errors import SnapshotInvalid
from qbsync.models.platform_events import InvoiceCreated, PaymentCreated
from qbsync.models.snapshot import MONEY_FIELD, SNAPSHOT_RECORD_TYPES
from qbsync.repositories.snapshots import SnapshotLine, SnapshotStore
from qbsync.vocab import RECORD_TYPE_OF

from local.platform_snapshot import export_snapshot
from local.sample_firm import generate

TODAY = date(2026, 11, 23)
EXPORTED = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[3] / "events" / "snapshot"


def _event(detail_type: str, firm: str, n: int, version: int, data: dict) -> dict:
    return {
        "source": "platform",
        "detail-type": detail_type,
        "detail": {
            "firm_id": firm,
            "event_id": f"evt-extra-{n}",
            "occurred_at": "2026-11-20T10:00:00Z",
            "correlation_id": f"corr-extra-{n}",
            "version": version,
            "data": data,
        },
    }


@pytest.fixture(scope="module")
def history():
    """A small sample firm, plus later versions: an invoice updated twice, one voided, a fee and a refund
    deleted, a payment updated; a contact (not in a snapshot); all delivered out of order."""
    sample = generate("firm-snap", seed=11, today=TODAY, n_accounts=8, n_invoices=14)
    firm = sample.firm_id
    inv_a, inv_b = sample.records["Invoice"][2], sample.records["Invoice"][3]
    pay = sample.records["Payment"][0]
    fee, refund = sample.records["ProcessingFee"][0], (sample.records["Refund"] or [None])[0]
    extra = [
        _event("Invoice Updated", firm, 1, 2, {**inv_a, "memo": "second version"}),
        _event("Invoice Updated", firm, 2, 3, {**inv_a, "memo": "third version"}),
        _event("Invoice Voided", firm, 3, 2, {"id": inv_b["id"], "voided_on": "2026-11-21"}),
        _event("ProcessingFee Deleted", firm, 4, 2, {"id": fee["id"]}),
        _event("Payment Updated", firm, 5, 4, {**pay, "reference": "updated-ref"}),
        _event("Contact Created", firm, 6, 1, {"id": "ct-1", "display_name": "Someone"}),
    ]
    deleted = {("fee", fee["id"])}
    if refund is not None:
        extra.append(_event("Refund Deleted", firm, 7, 2, {"id": refund["id"]}))
        deleted.add(("refund", refund["id"]))
    events = [*sample.events, *extra]
    random.Random(3).shuffle(events)  # late and out-of-order deliveries: the version decides
    expected = {(RECORD_TYPE_OF[entity], r["id"]): r for entity, recs in sample.records.items() for r in recs}
    for k in deleted:
        expected.pop(k)
    versions = {k: 1 for k in expected}
    versions[("invoice", inv_a["id"])] = 3
    versions[("invoice", inv_b["id"])] = 2
    versions[("payment", pay["id"])] = 4
    expected[("invoice", inv_a["id"])] = {**inv_a, "memo": "third version"}
    expected[("invoice", inv_b["id"])] = {**inv_b, "status": "void"}
    expected[("payment", pay["id"])] = {**pay, "reference": "updated-ref"}
    return events, expected, versions


@pytest.fixture
def exported(s3, bucket, firm, run, history):
    events, _, _ = history
    events = [{**e, "detail": {**e["detail"], "firm_id": firm}} for e in events]
    return export_snapshot(s3, bucket, firm, run, events, snapshot_id="snap-test-1", exported_at=EXPORTED)


def _all_lines(store: SnapshotStore, manifest, record_type: str) -> list[SnapshotLine]:
    return list(store.lines(manifest, record_type))


def test_the_exported_sample_firm_reads_back_every_record_once_at_its_newest_version(
    store, firm, run, exported, history
):
    _, expected, versions = history
    manifest = store.manifest(firm, run, exported)
    assert (manifest.firm_id, manifest.run_id, manifest.snapshot_id) == (firm, run, "snap-test-1")
    assert manifest.exported_at == EXPORTED
    assert [f.record_type for f in manifest.files] == list(SNAPSHOT_RECORD_TYPES)
    seen: dict[tuple[str, str], SnapshotLine] = {}
    for record_type in SNAPSHOT_RECORD_TYPES:
        lines = _all_lines(store, manifest, record_type)
        file = manifest.file(record_type)
        assert file is not None and len(lines) == file.count
        assert [line.line_no for line in lines] == list(range(1, file.count + 1))
        assert all(line.problem is None and line.event is not None for line in lines)
        for line in lines:
            key = (record_type, line.platform_id)
            assert key not in seen, "a record twice"
            seen[key] = line
        if record_type in MONEY_FIELD:
            field = MONEY_FIELD[record_type]
            assert file.total == sum((getattr(x.event.data, field) for x in lines), Decimal("0.00"))
            mine = sum((Decimal(r[field]) for (t, _), r in expected.items() if t == record_type), Decimal(0))
            assert file.total == mine
    assert set(seen) == set(expected)
    for key, line in seen.items():
        assert line.version == versions[key] == line.event.version
        assert line.event.model_dump(mode="json")["data"] == expected[key]
        assert line.event.firm_id == firm
        assert line.event.event_id == f"snapshot:snap-test-1:{key[0]}:{line.line_no}"
        assert line.event.occurred_at == EXPORTED
    voided = [
        line for line in seen.values() if line.record_type == "invoice" and line.event.data.status == "void"
    ]
    assert len(voided) == 1 and isinstance(voided[0].event, InvoiceCreated)
    assert any(isinstance(line.event, PaymentCreated) for line in seen.values())


def test_a_ranged_read_of_each_chunk_gives_the_same_lines_as_streaming(store, firm, run, exported):
    manifest = store.manifest(firm, run, exported)
    for record_type in ("invoice", "payment", "client_account"):
        streamed = _all_lines(store, manifest, record_type)
        assert len(streamed) >= 4
        again: list[SnapshotLine] = []
        for i in range(0, len(streamed), 3):
            chunk = streamed[i : i + 3]
            offset = chunk[0].offset
            length = sum(line.length for line in chunk)
            assert chunk[-1].offset + chunk[-1].length == offset + length  # contiguous bytes
            again += store.read_lines(manifest, record_type, offset, length, first_line_no=chunk[0].line_no)
        assert again == streamed


def test_streaming_in_tiny_chunks_gives_the_same_lines(objects, firm, run, exported):
    default = SnapshotStore(objects)
    tiny = SnapshotStore(objects, chunk_bytes=7)
    manifest = default.manifest(firm, run, exported)
    assert _all_lines(tiny, manifest, "invoice") == _all_lines(default, manifest, "invoice")


def test_a_tampered_file_fails_the_sha256_check(store, objects, s3, bucket, firm, run, exported):
    manifest = store.manifest(firm, run, exported)
    key = manifest.file("service").key
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    at = body.index(b'"rate":"') + len(b'"rate":"')
    body[at] = ord("9") if body[at] != ord("9") else ord("8")  # same length, same count, another price
    objects.put_bytes(key, bytes(body))
    with pytest.raises(SnapshotInvalid, match="sha256 differs") as err:
        _all_lines(store, manifest, "service")
    assert err.value.extra["record_type"] == "service"


# --- hand-written snapshots ----------------------------------------------------------------------------


def _sample_line(record_type: str) -> dict:
    return json.loads((SAMPLES / f"{record_type}.jsonl").read_text(encoding="utf-8"))


def _write(objects, firm, run, record_type, lines: list[bytes], **file_overrides) -> str:
    body = b"".join(lines)
    prefix = f"snapshots/{firm}/{run}/"
    key = f"{prefix}{record_type}.jsonl"
    objects.put_bytes(key, body)
    entry = {
        "record_type": record_type,
        "key": key,
        "count": len(lines),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    if record_type in MONEY_FIELD:
        entry["total"] = "0.00"
    entry.update(file_overrides)
    manifest = {
        "format": "qbsync.snapshot/1",
        "firm_id": firm,
        "run_id": run,
        "snapshot_id": "snap-hand",
        "exported_at": "2026-12-07T09:00:00+01:00",
        "files": [entry],
    }
    objects.put_json(f"{prefix}manifest.json", manifest)
    return f"{prefix}manifest.json"


def _jsonl(*objs) -> list[bytes]:
    return [(o if isinstance(o, str) else json.dumps(o)).encode() + b"\n" for o in objs]


def _invoices(n: int) -> list[dict]:
    base = _sample_line("invoice")
    return [copy.deepcopy({**base, "data": {**base["data"], "id": f"inv-{i}"}}) for i in range(n)]


def test_a_line_with_a_bad_field_is_a_line_with_a_problem_not_a_failure(store, objects, firm, run):
    good = _invoices(3)
    bad = copy.deepcopy(good[1])
    bad["data"]["total"] = 633.88  # a JSON number
    bad["data"]["memo"] = "Private memo of Dana Reyes"
    raw = _jsonl(good[0], bad, good[2], "not json", [1, 2], {"version": "2", "data": {"id": "inv-9"}})
    manifest_key = _write(objects, firm, run, "invoice", raw, total="1267.76")
    manifest = store.manifest(firm, run, manifest_key)
    lines = _all_lines(store, manifest, "invoice")  # no raise: the total is not checked when a line is bad
    assert [line.problem is None for line in lines] == [True, False, True, False, False, False]
    second = lines[1]
    assert second.event is None and second.platform_id == "inv-1" and second.version == 3
    assert "data.total" in second.problem and "633.88" not in second.problem and "Dana" not in second.problem
    assert "not JSON" in lines[3].problem and lines[3].platform_id is None
    assert "not a JSON object" in lines[4].problem
    assert "version" in lines[5].problem and lines[5].platform_id == "inv-9" and lines[5].version is None
    assert [line.offset for line in lines] == [sum(len(r) for r in raw[:i]) for i in range(len(raw))]
    assert [line.length for line in lines] == [len(r) for r in raw]


def test_a_record_twice_makes_the_later_line_a_bad_line(store, objects, firm, run):
    one = _invoices(1)[0]
    manifest_key = _write(objects, firm, run, "invoice", _jsonl(one, {**one, "version": 2}), total="1267.76")
    lines = _all_lines(store, store.manifest(firm, run, manifest_key), "invoice")
    assert lines[0].event is not None
    assert lines[1].event is None and "the same record as line 1" in lines[1].problem
    assert lines[1].platform_id == one["data"]["id"]


def test_a_line_longer_than_the_limit_is_a_bad_line_and_reading_goes_on(objects, firm, run):
    store = SnapshotStore(objects, max_line_bytes=2000, chunk_bytes=100)
    big, small = _invoices(2)
    big["data"]["memo"] = "x" * 1000
    big["data"]["description_pad"] = "y" * 3000
    raw = _jsonl(big, small)
    manifest_key = _write(objects, firm, run, "invoice", raw, total="633.88")
    lines = _all_lines(store, store.manifest(firm, run, manifest_key), "invoice")
    assert "longer than the line limit" in lines[0].problem and lines[0].length == len(raw[0])
    assert lines[1].event is not None and lines[1].offset == len(raw[0])


@pytest.mark.parametrize(
    ("count", "total", "message"),
    [
        (2, "1267.76", "more lines than its count (2)"),
        (4, "1901.64", "3 lines, the manifest's count is 4"),
        (3, "1901.65", "money total"),
    ],
)
def test_count_and_total_are_checked_against_the_manifest(store, objects, firm, run, count, total, message):
    manifest_key = _write(objects, firm, run, "invoice", _jsonl(*_invoices(3)), count=count, total=total)
    manifest = store.manifest(firm, run, manifest_key)
    with pytest.raises(SnapshotInvalid) as err:
        _all_lines(store, manifest, "invoice")
    assert message in str(err.value)


def test_a_file_without_trailing_newline_and_a_type_without_file(store, objects, firm, run):
    raw = _jsonl(*_invoices(2))
    raw[-1] = raw[-1].rstrip(b"\n")
    manifest_key = _write(objects, firm, run, "invoice", raw, total="1267.76")
    manifest = store.manifest(firm, run, manifest_key)
    lines = _all_lines(store, manifest, "invoice")
    assert [line.event is not None for line in lines] == [True, True]
    assert (
        store.read_lines(manifest, "invoice", lines[1].offset, lines[1].length, first_line_no=2) == lines[1:]
    )
    assert _all_lines(store, manifest, "payment") == []
    with pytest.raises(ValueError, match="not a snapshot record type"):
        _all_lines(store, manifest, "contact")


def test_a_range_off_the_line_boundaries_is_invalid(store, objects, firm, run):
    manifest_key = _write(objects, firm, run, "invoice", _jsonl(*_invoices(3)), total="1901.64")
    manifest = store.manifest(firm, run, manifest_key)
    lines = _all_lines(store, manifest, "invoice")
    with pytest.raises(SnapshotInvalid, match="does not start at a line"):
        store.read_lines(manifest, "invoice", lines[1].offset + 1, lines[1].length - 1, first_line_no=2)
    with pytest.raises(SnapshotInvalid, match="does not end at a line"):
        store.read_lines(manifest, "invoice", lines[1].offset, lines[1].length - 1, first_line_no=2)
    with pytest.raises(SnapshotInvalid, match="past the end"):
        store.read_lines(manifest, "invoice", lines[2].offset, lines[2].length + 10, first_line_no=3)
    with pytest.raises(SnapshotInvalid, match="more lines than its count"):
        store.read_lines(manifest, "invoice", lines[2].offset, lines[2].length, first_line_no=4)
    with pytest.raises(ValueError):
        store.read_lines(manifest, "invoice", 0, 0, first_line_no=1)


def test_bad_manifests_are_snapshot_invalid_naming_the_problem(store, objects, firm, run):
    prefix = f"snapshots/{firm}/{run}/"
    with pytest.raises(SnapshotInvalid, match="not under the run's prefix"):
        store.manifest(firm, run, f"snapshots/{firm}/other-run/manifest.json")
    with pytest.raises(SnapshotInvalid, match="manifest_key: no such object"):
        store.manifest(firm, run, f"{prefix}manifest.json")
    objects.put_text(f"{prefix}manifest.json", "{not json")
    with pytest.raises(SnapshotInvalid, match="not JSON"):
        store.manifest(firm, run, f"{prefix}manifest.json")

    key = _write(objects, firm, run, "invoice", _jsonl(*_invoices(1)), total="633.88")
    good = json.loads(objects.get_text(key))
    for mutate, message in [
        (lambda m: m["files"][0].update(total=633.88), "manifest: files.0.total"),
        (lambda m: m.update(firm_id="firm-else"), "not under the run's prefix"),
        (lambda m: m["files"][0].update(key=f"{prefix}missing.jsonl"), "files[0].key: no such object"),
        (lambda m: m["files"][0].update(key=key), "files[0].key is the manifest itself"),
        (lambda m: m.update(secret="Dana Reyes"), "secret: Extra inputs are not permitted"),
    ]:
        manifest = copy.deepcopy(good)
        mutate(manifest)
        objects.put_json(key, manifest)
        with pytest.raises(SnapshotInvalid) as err:
            store.manifest(firm, run, key)
        assert message in str(err.value)
        assert "Dana" not in str(err.value) and "633.88" not in str(err.value)
    other = {**good, "firm_id": "firm-else", "files": []}
    objects.put_json(key, other)
    with pytest.raises(SnapshotInvalid, match="firm_id and run_id must be those of the run"):
        store.manifest(firm, run, key)


class _CountingObjects(S3Objects):
    """The real adapter, counting the chunks it has handed out."""

    chunks = 0

    def iter_chunks(self, key, chunk_bytes=1024 * 1024):
        for chunk in super().iter_chunks(key, chunk_bytes):
            self.chunks += 1
            yield chunk


def test_lines_are_streamed_not_read_whole(s3, bucket, firm, run):
    objects = _CountingObjects(bucket, client=s3)
    store = SnapshotStore(objects, chunk_bytes=4096)
    invoices = _invoices(400)
    manifest_key = _write(
        objects, firm, run, "invoice", _jsonl(*invoices), total=f"{Decimal('633.88') * 400:.2f}"
    )
    manifest = store.manifest(firm, run, manifest_key)
    size = objects.size(manifest.file("invoice").key)
    lines = store.lines(manifest, "invoice")
    first = next(lines)
    assert first.line_no == 1 and objects.chunks == 1  # one 4 KiB read for the first line, not the file
    rest = list(lines)
    assert len(rest) == 399 and objects.chunks == -(-size // 4096)
