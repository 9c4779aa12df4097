"""S3-compatible evidence storage (AWS S3, MinIO, Ceph RGW...) through boto3.

Imported only when an ``s3://`` location is used (see :mod:`etle.evidence.storage`); boto3
comes with the ``s3`` extra.  Each object is uploaded in one ``PutObject`` (atomic for readers)
with an ``x-amz-checksum-sha256`` the server checks, and its SHA-256 in the object metadata;
:meth:`S3EvidenceStorage.sha256` still hashes the content it downloads, so verification never
trusts metadata.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etle.errors import MissingDependencyError, StoreError
from etle.evidence.objects import StoredObject, check_key

log = logging.getLogger(__name__)

ENDPOINT_ENV = "ETLE_S3_ENDPOINT_URL"
_CHUNK = 1 << 20


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise MissingDependencyError("boto3", "s3", "S3 evidence storage") from exc
    return boto3


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class S3EvidenceStorage:
    """Evidence in ``bucket`` under ``prefix`` (``client``: a boto3 S3 client, made when omitted)."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, endpoint_url: str | None = None) -> None:
        if not bucket:
            raise StoreError("an S3 evidence location needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        boto3 = _boto3()
        if client is None:
            client = boto3.client("s3", endpoint_url=endpoint_url or os.environ.get(ENDPOINT_ENV) or None)
        self._client = client
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors: tuple[type[BaseException], ...] = (BotoCoreError, ClientError)
        self.location = f"s3://{bucket}/{self.prefix}"

    def __repr__(self) -> str:
        return f"S3EvidenceStorage({self.location!r})"

    @classmethod
    def from_url(cls, url: str, *, client: Any = None) -> S3EvidenceStorage:
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        return cls(bucket, prefix, client=client)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, action: str, key: str, exc: BaseException) -> StoreError:
        return StoreError(f"S3 {self.location}: cannot {action} {key}: {_one_line(exc)}")

    @staticmethod
    def _missing(exc: BaseException) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self._errors as exc:
            if self._missing(exc):
                return None
            raise self._fail("read", key, exc) from exc
        return StoredObject(key, int(head["ContentLength"]))

    def sha256(self, key: str) -> str | None:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            digest = hashlib.sha256()
            while block := body.read(_CHUNK):
                digest.update(block)
        except self._errors as exc:
            if self._missing(exc):
                return None
            raise self._fail("read", key, exc) from exc
        return digest.hexdigest()

    def read_bytes(self, key: str) -> bytes:
        try:
            return bytes(self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except self._errors as exc:
            raise self._fail("read", key, exc) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        digest = hashlib.sha256(data)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data,
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
                Metadata={"sha256": digest.hexdigest()},
            )
        except self._errors as exc:
            raise self._fail("write", key, exc) from exc

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreError(f"{path} does not have the sha256 it is uploaded with")
        self.put_bytes(key, data)

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except self._errors as exc:
            if not self._missing(exc):
                raise self._fail("delete", key, exc) from exc

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])[len(self.prefix):]
                    if any(part.startswith(".") for part in key.split("/")):
                        continue
                    yield StoredObject(key, int(item["Size"]))
        except self._errors as exc:
            raise self._fail("list", prefix or "/", exc) from exc
