"""S3 adapter of one bucket (the initial sync's ``SnapshotBucket``): read whole objects, byte ranges and
streams; write JSON and text.

Errors (``translate`` of :mod:`qbsync.adapters._aws`, the one translation):

* :class:`~qbsync.errors.ObjectMissing` (a ``DataError``) - no object under that key (``err.extra["key"]``);
* :class:`~qbsync.errors.ServiceUnavailable` - throttling (S3's ``SlowDown`` is a 503), 5xx, network failures,
  a stream cut while reading;
* :class:`~qbsync.errors.ConfigurationError` - no such bucket, access denied;
* ``ValueError`` - bad arguments (an empty key, a range that is empty or starts beyond the object's end).

Messages name the bucket and key (never object contents).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qbsync.adapters._aws import default_client, error_code, translate
from qbsync.errors import ConfigurationError, ObjectMissing, QbsyncError, ServiceUnavailable

__all__ = ["DEFAULT_CHUNK_BYTES", "S3Objects"]

#: bytes per read of a stream
DEFAULT_CHUNK_BYTES = 1024 * 1024
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET = frozenset({"NoSuchBucket"})


class S3Objects:
    """The objects of one bucket.

    Args:
        bucket: the bucket name (:func:`qbsync.settings.get_initial_sync_settings`).
        client: a boto3 S3 client; default: the container-wide lazy client.
    """

    def __init__(self, bucket: str, client: Any = None) -> None:
        if not bucket:
            raise ConfigurationError("S3Objects needs a bucket name")
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client("s3")
        return self._client

    # --- reads ---------------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        """The whole object."""
        body = self._get(key, "GetObject")["Body"]
        return self._read(body, key)

    def get_text(self, key: str) -> str:
        """The whole object as UTF-8 text (:class:`~qbsync.errors.ObjectMissing` when absent; ``ValueError``
        when it is not UTF-8)."""
        data = self.get_bytes(key)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"s3://{self.bucket}/{key} is not UTF-8 text") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive (an HTTP range); an ``end`` past the object's end is cut."""
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range {start}-{end}")
        body = self._get(key, "GetObject (range)", Range=f"bytes={start}-{end}")["Body"]
        return self._read(body, key)

    def iter_chunks(self, key: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
        """The object in chunks of at most ``chunk_bytes``, read as they arrive (never the whole object in
        memory)."""
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        body = self._get(key, "GetObject (stream)")["Body"]
        try:
            while True:
                try:
                    chunk = body.read(chunk_bytes)
                except (BotoCoreError, OSError) as exc:
                    raise self._stream_error(exc, key) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def size(self, key: str) -> int:
        """The object's size in bytes (HEAD)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "HeadObject", key) from exc
        return int(head["ContentLength"])

    # --- writes --------------------------------------------------------------------------------------

    def put_text(self, key: str, text: str, *, content_type: str = "text/plain; charset=utf-8") -> None:
        self.put_bytes(key, text.encode("utf-8"), content_type=content_type)

    def put_json(self, key: str, obj: Any) -> None:
        """``obj`` as compact JSON (``TypeError`` when it is not JSON-serialisable)."""
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        self.put_text(key, text, content_type="application/json")

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "PutObject", key) from exc

    # --- internals -----------------------------------------------------------------------------------

    @staticmethod
    def _key(key: str) -> str:
        if not key or not isinstance(key, str):
            raise ValueError("an S3 key must be a non-empty string")
        return key

    def _get(self, key: str, operation: str, **kwargs: Any) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and error_code(exc) == "InvalidRange":
                raise ValueError(f"byte range outside s3://{self.bucket}/{key}") from exc
            raise self._error(exc, operation, key) from exc

    def _read(self, body: Any, key: str) -> bytes:
        try:
            return bytes(body.read())
        except (BotoCoreError, OSError) as exc:
            raise self._stream_error(exc, key) from exc
        finally:
            body.close()

    def _error(self, exc: Exception, operation: str, key: str) -> QbsyncError:
        where = f"s3://{self.bucket}/{key}"
        if isinstance(exc, ClientError):
            code = error_code(exc)
            if code in _MISSING:
                return ObjectMissing(f"S3 {operation}: no object {where}", key=key, bucket=self.bucket)
            if code in _NO_BUCKET:
                return ConfigurationError(f"S3 {operation}: no bucket {self.bucket}", aws_error_code=code)
        return translate(exc, service="S3", operation=operation, resource=where)

    def _stream_error(self, exc: Exception, key: str) -> QbsyncError:
        if isinstance(exc, BotoCoreError):
            where = f"s3://{self.bucket}/{key}"
            return translate(exc, service="S3", operation="GetObject (read)", resource=where)
        where = f"s3://{self.bucket}/{key}"
        return ServiceUnavailable(f"S3 GetObject (read) on {where}: stream failed ({type(exc).__name__})")
