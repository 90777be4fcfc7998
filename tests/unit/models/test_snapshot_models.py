"""The snapshot contract's models: committed samples and schemas agree with them, and bad manifests and
"Snapshot Ready" details are refused naming the field, never the value."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError
from qbsync.errors import BadRequest
from qbsync.models.platform_events import InvoiceCreated, ProcessingFeeCreated, _describe
from qbsync.models.snapshot import (
    SNAPSHOT_RECORD_TYPES,
    SnapshotLineBody,
    SnapshotManifest,
    SnapshotReady,
    SnapshotRequested,
    created_event_type,
    parse_snapshot_ready,
)

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "events"
SCHEMAS = ROOT / "docs" / "events"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _validator(path: Path) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_load(path), format_checker=jsonschema.FormatChecker())


def _manifest() -> dict:
    return _load(SAMPLES / "snapshot" / "manifest.json")


def _ready() -> dict:
    return _load(SAMPLES / "snapshot" / "snapshot_ready.json")


def test_the_samples_validate_against_their_schemas_and_models():
    manifest = _manifest()
    _validator(SCHEMAS / "snapshot" / "manifest.schema.json").validate(manifest)
    assert SnapshotManifest.model_validate(manifest).model_dump(mode="json", exclude_none=True) == manifest

    ready = _ready()
    _validator(SCHEMAS / "platform" / "snapshot_ready.schema.json").validate(ready["detail"])
    assert parse_snapshot_ready(ready["detail"]).model_dump(mode="json") == ready["detail"]

    requested = _load(SAMPLES / "snapshot" / "snapshot_requested.json")
    assert (requested["source"], requested["detail-type"]) == ("qbsync", "Snapshot Requested")
    _validator(SCHEMAS / "qbsync" / "snapshot_requested.schema.json").validate(requested["detail"])
    model = SnapshotRequested.model_validate(requested["detail"])
    assert model.model_dump(mode="json") == requested["detail"]


@pytest.mark.parametrize("record_type", SNAPSHOT_RECORD_TYPES)
def test_every_sample_line_is_its_created_events_data(record_type):
    text = (SAMPLES / "snapshot" / f"{record_type}.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 1
    line = json.loads(text)
    _validator(SCHEMAS / "snapshot" / "line.schema.json").validate(line)
    body = SnapshotLineBody.model_validate(line)
    cls = created_event_type(record_type)
    event = cls.model_validate(
        {"firm_id": "f", "event_id": "e", "occurred_at": "2026-03-02T12:00:00Z", "correlation_id": "c"}
        | {"version": body.version, "data": body.data}
    )
    assert event.model_dump(mode="json")["data"] == line["data"]


def test_created_event_type_per_record_type():
    assert created_event_type("invoice") is InvoiceCreated
    assert created_event_type("fee") is ProcessingFeeCreated
    with pytest.raises(ValueError, match="not a snapshot record type"):
        created_event_type("credit_memo")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.update(format="qbsync.snapshot/2"), "format"),
        (lambda m: m.update(exported_at="2026-03-02T12:00:00"), "exported_at"),
        (lambda m: m.update(snapshot_id="s" * 65), "snapshot_id"),
        (lambda m: m.update(extra="x"), "extra: Extra inputs are not permitted"),
        (lambda m: m["files"][0].update(record_type="contact"), "files.0.record_type"),
        (lambda m: m["files"][0].update(count="1"), "files.0.count"),
        (lambda m: m["files"][0].update(count=True), "files.0.count"),
        (lambda m: m["files"][0].update(count=-1), "files.0.count"),
        (lambda m: m["files"][0].update(count=500_001), "files.0.count"),
        (lambda m: m["files"][0].update(sha256="ABC"), "files.0.sha256"),
        (lambda m: m["files"][2].update(total=633.88), "files.2.total"),
        (lambda m: m["files"][2].update(total="633.8"), "files.2.total"),
        (lambda m: m["files"][2].pop("total"), "total is required for a invoice file"),
        (lambda m: m["files"][0].update(total="1.00"), "a client_account file has no total"),
        (lambda m: m["files"][1].update(record_type="client_account"), "files[1].record_type"),
        (lambda m: m["files"][1].update(key=m["files"][0]["key"]), "files[1].key"),
        (
            lambda m: m["files"][0].update(key="snapshots/firm-0002/run-01/client_account.jsonl"),
            "files[0].key: not under the run's prefix",
        ),
        (lambda m: m["files"][0].update(key="elsewhere/x.jsonl"), "files.0.key"),
        (lambda m: m.update(files=m["files"] * 2), "files"),
    ],
)
def test_bad_manifests_are_refused_naming_the_field(mutate, message):
    manifest = copy.deepcopy(_manifest())
    mutate(manifest)
    with pytest.raises(ValidationError) as err:
        SnapshotManifest.model_validate(manifest)
    assert message in _describe(err.value)  # what SnapshotStore says (names, never values)


def test_a_manifest_may_leave_out_record_types_without_records():
    manifest = _manifest()
    manifest["files"] = [f for f in manifest["files"] if f["record_type"] != "refund"]
    model = SnapshotManifest.model_validate(manifest)
    assert model.file("refund") is None
    assert model.file("invoice") is not None and model.file("invoice").count == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("run_id"), "run_id: Field required"),
        (lambda d: d.update(occurred_at="yesterday"), "occurred_at"),
        (lambda d: d.update(manifest_key="snapshots/firm-0001/other-run/manifest.json"), "manifest_key"),
        (lambda d: d.update(manifest_key="../manifest.json"), "manifest_key"),
        (lambda d: d.update(firm_id="firm 1"), "firm_id"),
        (lambda d: d.update(version=1), "version: Extra inputs are not permitted"),
    ],
)
def test_bad_snapshot_ready_is_a_bad_request_naming_the_field_not_the_value(mutate, message):
    detail = copy.deepcopy(_ready()["detail"])
    mutate(detail)
    with pytest.raises(BadRequest) as err:
        parse_snapshot_ready(detail)
    assert message in str(err.value)
    assert err.value.http_status == 400
    for value in ("yesterday", "other-run", "firm 1"):
        assert value not in str(err.value)


def test_snapshot_ready_as_a_whole_eventbridge_event():
    event = _ready()
    assert isinstance(parse_snapshot_ready(event), SnapshotReady)
    with pytest.raises(BadRequest, match="source must be 'platform'"):
        parse_snapshot_ready({**event, "source": "qbsync"})
    with pytest.raises(BadRequest, match="detail-type must be 'Snapshot Ready'"):
        parse_snapshot_ready({**event, "detail-type": "Invoice Created"})
    with pytest.raises(BadRequest, match="detail must be a JSON object"):
        parse_snapshot_ready({**event, "detail": "x"})
    with pytest.raises(BadRequest, match="detail must be a JSON object"):
        parse_snapshot_ready(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_snapshot_requested_names_the_runs_prefix_and_each_type_once():
    detail = _load(SAMPLES / "snapshot" / "snapshot_requested.json")["detail"]
    with pytest.raises(ValidationError, match="prefix must be"):
        SnapshotRequested.model_validate({**detail, "prefix": "snapshots/firm-0001/"})
    with pytest.raises(ValidationError, match="each record type once"):
        SnapshotRequested.model_validate({**detail, "record_types": ["invoice", "invoice"]})
    with pytest.raises(ValidationError, match="record_types"):
        SnapshotRequested.model_validate({**detail, "record_types": []})
    with pytest.raises(ValidationError, match="bucket"):
        SnapshotRequested.model_validate({**detail, "bucket": "Not_A_Bucket"})
    fresh = SnapshotRequested(
        firm_id="firm-0001",
        correlation_id="corr-1",
        realm_id="123",
        run_id="run-9",
        bucket="snapshots-bucket",
        prefix="snapshots/firm-0001/run-9/",
        record_types=["invoice"],
        respond_by="2026-03-03T11:59:00Z",  # type: ignore[arg-type]
    )
    assert fresh.event_id and fresh.occurred_at.tzinfo is not None


@pytest.mark.parametrize("version", ["1", 1.0, True, 0])
def test_a_line_version_is_a_strict_positive_integer(version):
    with pytest.raises(ValidationError, match="version"):
        SnapshotLineBody.model_validate({"version": version, "data": {}})
