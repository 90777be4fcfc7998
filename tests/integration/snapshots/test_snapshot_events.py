"""The request and the answer on qbsync's bus (moto EventBridge): "Snapshot Requested" as the platform's
subscription receives it, and the sample platform's "Snapshot Ready" as qbsync parses it, down to the
manifest it names."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from qbsync.adapters.eventbridge import EventPublisher
from qbsync.models.snapshot import SNAPSHOT_RECORD_TYPES, SnapshotRequested, parse_snapshot_ready, run_prefix

from local.platform_snapshot import announce_snapshot, export_snapshot
from local.stack.provision import clients
from tests.fixtures.events import EventCapture, drain_queue


@pytest.fixture(scope="module")
def aws(provisioned):
    return clients(provisioned.endpoint_url, provisioned.region)


@pytest.fixture(scope="module")
def bus(provisioned) -> str:
    return provisioned.get_att("EventBus", "Name")


@pytest.fixture(scope="module")
def snapshot_ready_events(aws, bus):
    """What a rule of ``source: platform``, ``Snapshot Ready`` on the bus receives (qbsync's side)."""
    suffix = secrets.token_hex(4)
    url = aws["sqs"].create_queue(QueueName=f"snapshot-ready-{suffix}")["QueueUrl"]
    arn = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"capture-snapshot-ready-{suffix}"
    pattern = {"source": ["platform"], "detail-type": ["Snapshot Ready"]}
    aws["events"].put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
    aws["events"].put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])
    capture = EventCapture(aws["sqs"], aws["events"], bus, rule, url)
    yield capture
    capture.close()


def test_snapshot_requested_reaches_the_platforms_subscription(qbsync_events, aws, bus, bucket, firm, run):
    capture = qbsync_events("Snapshot Requested")
    capture.drain()
    request = SnapshotRequested(
        firm_id=firm,
        correlation_id="corr-conn-1",
        realm_id="9341453050298755",
        run_id=run,
        bucket=bucket,
        prefix=run_prefix(firm, run),
        record_types=list(SNAPSHOT_RECORD_TYPES),
        respond_by=datetime.now(UTC) + timedelta(hours=1),
    )
    EventPublisher(bus, client=aws["events"]).publish([request])
    (got,) = capture.drain()
    assert (got["source"], got["detail-type"]) == ("qbsync", "Snapshot Requested")
    assert SnapshotRequested.model_validate(got["detail"]) == request


def test_the_sample_platforms_answer_names_a_manifest_qbsync_reads(
    snapshot_ready_events, aws, bus, s3, bucket, store, firm, run
):
    drain_queue(aws["sqs"], snapshot_ready_events.url)
    key = export_snapshot(s3, bucket, firm, run, [], snapshot_id="snap-bus-1")
    event_id = announce_snapshot(aws["events"], bus, firm, run, key, "snap-bus-1", correlation_id="corr-1")
    (got,) = snapshot_ready_events.drain()
    ready = parse_snapshot_ready(got)  # the whole EventBridge event, as a rule target receives it
    assert (ready.firm_id, ready.run_id, ready.event_id, ready.manifest_key) == (firm, run, event_id, key)
    manifest = store.manifest(ready.firm_id, ready.run_id, ready.manifest_key)
    assert manifest.snapshot_id == ready.snapshot_id == "snap-bus-1"
