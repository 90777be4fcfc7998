"""The snapshot bucket of template.yaml (``SnapshotBucket``) on the session's moto server."""

from __future__ import annotations

import secrets

import boto3
import pytest
from qbsync.adapters.s3 import S3Objects
from qbsync.repositories.snapshots import SnapshotStore


@pytest.fixture(scope="module")
def s3(provisioned):
    return boto3.client("s3", endpoint_url=provisioned.endpoint_url, region_name=provisioned.region)


@pytest.fixture(scope="module")
def bucket(provisioned) -> str:
    return provisioned.ref("SnapshotBucket")


@pytest.fixture
def objects(s3, bucket) -> S3Objects:
    return S3Objects(bucket, client=s3)


@pytest.fixture
def store(objects) -> SnapshotStore:
    return SnapshotStore(objects)


@pytest.fixture
def firm() -> str:
    return f"firm-{secrets.token_hex(4)}"


@pytest.fixture
def run() -> str:
    return f"run-{secrets.token_hex(4)}"
