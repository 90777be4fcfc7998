"""S3Objects on moto's S3 (the SnapshotBucket of template.yaml); AWS failures through botocore's Stubber."""

from __future__ import annotations

import json
import secrets

import boto3
import pytest
from botocore.stub import Stubber
from qbsync.adapters.s3 import S3Objects
from qbsync.errors import ConfigurationError, ObjectMissing, ServiceUnavailable


@pytest.fixture
def key() -> str:
    return f"snapshots/f-{secrets.token_hex(3)}/r-1/file.jsonl"


def test_text_json_and_size_round_trip(objects, s3, bucket, key):
    objects.put_text(key, "héllo\nworld\n")
    assert objects.get_text(key) == "héllo\nworld\n"
    assert objects.size(key) == len("héllo\nworld\n".encode())
    objects.put_json(key + ".json", {"a": [1, "b"], "c": None})
    assert json.loads(objects.get_text(key + ".json")) == {"a": [1, "b"], "c": None}
    assert s3.head_object(Bucket=bucket, Key=key + ".json")["ContentType"] == "application/json"


def test_ranges_are_inclusive_and_cut_at_the_end(objects, key):
    objects.put_bytes(key, b"0123456789")
    assert objects.get_range(key, 0, 0) == b"0"
    assert objects.get_range(key, 3, 6) == b"3456"
    assert objects.get_range(key, 8, 100) == b"89"
    with pytest.raises(ValueError, match="outside"):
        objects.get_range(key, 10, 20)
    with pytest.raises(ValueError, match="invalid byte range"):
        objects.get_range(key, 5, 4)


@pytest.mark.parametrize("chunk_bytes", [1, 3, 1024 * 1024])
def test_iter_chunks_streams_the_object_in_pieces(objects, key, chunk_bytes):
    data = bytes(range(256)) * 5
    objects.put_bytes(key, data)
    chunks = list(objects.iter_chunks(key, chunk_bytes))
    assert b"".join(chunks) == data
    assert all(len(c) <= chunk_bytes for c in chunks)
    assert len(chunks) == -(-len(data) // chunk_bytes)


def test_a_missing_object_is_object_missing_naming_the_key(objects, key):
    for read in (objects.get_text, objects.size, lambda k: list(objects.iter_chunks(k))):
        with pytest.raises(ObjectMissing) as err:
            read(key)
        assert err.value.extra["key"] == key
        assert key in str(err.value)
    with pytest.raises(ObjectMissing):
        objects.get_range(key, 0, 10)


def test_a_missing_bucket_is_a_configuration_error(s3):
    missing = S3Objects(f"no-such-bucket-{secrets.token_hex(4)}", client=s3)
    with pytest.raises(ConfigurationError, match="no bucket"):
        missing.get_text("snapshots/a/b/c")
    with pytest.raises(ConfigurationError):
        missing.put_text("snapshots/a/b/c", "x")


def test_text_that_is_not_utf8_is_a_value_error(objects, key):
    objects.put_bytes(key, b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        objects.get_text(key)


def test_bad_arguments(objects, s3):
    with pytest.raises(ValueError, match="non-empty"):
        objects.get_text("")
    with pytest.raises(ValueError, match="chunk_bytes"):
        list(objects.iter_chunks("k", 0))
    with pytest.raises(ConfigurationError):
        S3Objects("", client=s3)


@pytest.mark.parametrize(
    ("code", "status"), [("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503)]
)
def test_throttling_and_5xx_are_service_unavailable(code, status):
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        stub.add_client_error("head_object", service_error_code=code, http_status_code=status)
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        objects = S3Objects("some-bucket", client=client)
        with pytest.raises(ServiceUnavailable) as err:
            objects.get_text("snapshots/a/b/c")
        assert err.value.extra["aws_error_code"] == code
        with pytest.raises(ServiceUnavailable):
            objects.size("snapshots/a/b/c")
        with pytest.raises(ServiceUnavailable):
            objects.put_text("snapshots/a/b/c", "x")
