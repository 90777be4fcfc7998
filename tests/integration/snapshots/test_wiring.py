"""build_snapshot_store() from a function's environment as template.yaml sets it (SNAPSHOT_BUCKET_NAME)."""

from __future__ import annotations

import pytest
from qbsync import wiring
from qbsync.errors import ConfigurationError

from local.platform_snapshot import export_snapshot


@pytest.fixture
def container(function_env):
    function_env("EntitySyncFunction")  # every function has the Globals environment
    wiring.reset()
    yield
    wiring.reset()


def test_the_built_store_reads_the_template_bucket(container, provisioned, s3, firm, run):
    store = wiring.build_snapshot_store()
    assert store.objects.bucket == provisioned.ref("SnapshotBucket")
    key = export_snapshot(s3, provisioned.ref("SnapshotBucket"), firm, run, [], snapshot_id="snap-w")
    manifest = store.manifest(firm, run, key)  # through the container's default S3 client
    assert manifest.snapshot_id == "snap-w"
    assert [f.count for f in manifest.files] == [0] * 6
    assert all(list(store.lines(manifest, f.record_type)) == [] for f in manifest.files)


def test_without_the_bucket_setting_it_is_a_configuration_error(container, monkeypatch):
    monkeypatch.delenv("SNAPSHOT_BUCKET_NAME")
    wiring.reset()
    with pytest.raises(ConfigurationError, match="SNAPSHOT_BUCKET_NAME"):
        wiring.build_snapshot_store()
