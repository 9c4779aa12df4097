"""What every evidence store offers (:class:`EvidenceStorage`) and the keys it is addressed by.

The local folder (:mod:`etle.evidence.storage`) and the S3 adapter (:mod:`etle.evidence.s3`) both
build on this module, so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from etle.errors import StoreError


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    bytes: int


def check_key(key: str) -> str:
    """``key`` if it is a safe relative POSIX path (no ``..``, not absolute, not empty)."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("", ".", "..") for part in key.split("/")):
        raise StoreError(f"invalid evidence key {key!r}")
    return key


@runtime_checkable
class EvidenceStorage(Protocol):
    """A key -> bytes store for evidence files."""

    location: str

    def uri(self, key: str) -> str:
        """Where ``key`` lies, for people and for the ticket's ``evidence_path``."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The object at ``key`` (None when absent)."""
        ...

    def sha256(self, key: str) -> str | None:
        """The SHA-256 of the object at ``key``, computed from its content (None when absent)."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The object's content; :class:`StoreError` when absent or unreadable."""
        ...

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        """Store the file at ``path`` under ``key`` atomically (readers never see a partial object)."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix`` (a folder prefix ends with ``/``)."""
        ...
