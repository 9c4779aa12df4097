"""Where evidence bundles are kept: a local folder (default) or S3-compatible object storage.

Both are addressed by *keys*: POSIX paths relative to the evidence root
(``<camera>/<YYYYMMDD>/<bundle>/<file>``), the same layout :class:`EvidenceWriter` writes.
Store-and-forward copies keys from an edge box's folder to the central location, and
:mod:`etle.evidence.verify` reads through this interface, so a central store on S3 is verified
the same way as a folder.

:func:`open_evidence_storage` takes a location: a path (or ``file://`` URL) or
``s3://bucket/prefix``.  The S3 adapter (:mod:`etle.evidence.s3`, boto3) is imported only when
used; it needs the ``s3`` extra.  Credentials and the endpoint come from boto3's usual
configuration (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``...) or ``ETLE_S3_ENDPOINT_URL``,
never from the location string.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from etle.errors import StoreError
from etle.evidence.objects import EvidenceStorage, StoredObject, check_key

__all__ = ["EvidenceStorage", "LocalEvidenceStorage", "StoredObject", "check_key", "open_evidence_storage"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class LocalEvidenceStorage:
    """Evidence in a folder; writes are temp-file + fsync + rename."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def __repr__(self) -> str:
        return f"LocalEvidenceStorage({self.location!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return str(self._path(key).resolve())

    def stat(self, key: str) -> StoredObject | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read evidence {key}: {exc.strerror or exc}") from exc
        return StoredObject(key, st.st_size) if os.path.isfile(self._path(key)) else None

    def sha256(self, key: str) -> str | None:
        digest = hashlib.sha256()
        try:
            with open(self._path(key), "rb") as fh:
                while block := fh.read(_CHUNK):
                    digest.update(block)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"cannot read evidence {key}: {exc.strerror or exc}") from exc
        return digest.hexdigest()

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read evidence {key}: {exc.strerror or exc}") from exc

    def _put(self, key: str, write: object) -> None:
        target = self._path(key)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                write(fh)  # type: ignore[operator]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write evidence {key} in {self.location}: {exc.strerror or exc}") from exc

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        def copy(fh: object) -> None:
            with open(path, "rb") as src:
                while block := src.read(_CHUNK):
                    fh.write(block)  # type: ignore[attr-defined]

        self._put(key, copy)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._put(key, lambda fh: fh.write(data))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete evidence {key}: {exc.strerror or exc}") from exc

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        base = self.root
        if not base.is_dir():
            return
        for folder, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel_folder = Path(folder).relative_to(base).as_posix()
            for name in sorted(names):
                if name.startswith("."):
                    continue
                key = name if rel_folder == "." else f"{rel_folder}/{name}"
                if key.startswith(prefix):
                    try:
                        size = (Path(folder) / name).stat().st_size
                    except OSError:
                        continue
                    yield StoredObject(key, size)


def open_evidence_storage(location: str | Path) -> EvidenceStorage:
    """The storage at ``location``: a folder path / ``file://`` URL, or ``s3://bucket[/prefix]``."""
    text = str(location)
    if text.startswith("s3://"):
        from etle.evidence.s3 import S3EvidenceStorage

        return S3EvidenceStorage.from_url(text)
    if "://" in text and not text.startswith("file://"):
        raise StoreError(f"unsupported evidence location {text!r}: use a folder or s3://bucket/prefix")
    return LocalEvidenceStorage(text.removeprefix("file://"))
