"""Per-camera manifest chains: each bundle's manifest holds its sequence number and the SHA-256
of the camera's previous manifest, so a deleted, inserted, altered or reordered bundle breaks
the chain.

The chain head (``<root>/<camera>/chain-head.json``: the last sequence number and manifest
hash) tells a verifier where the chain should end, so deleting the newest bundles shows too.

Appending is serialised per camera by an exclusive ``flock`` on ``<root>/<camera>/.chain.lock``
(between threads and processes).  The protocol of :meth:`ManifestChain.extend`::

    with chain.extend(camera_id) as link:      # lock; read the head
        ... write the bundle with link.seq / link.prev_sha256, calling link.mark_pending(relpath)
        ... just before renaming it into place
        link.commit(manifest_sha256, relpath)  # the head moves on
        ... add the ticket; on failure remove the bundle and leave the block with the error,
        ... or call link.revert(): the head moves back

A crash between the rename and the head update leaves ``chain-pending.json``; the next
``extend`` finds the bundle the head never covered, and (since its ticket is only added after
the head moves) removes it before anything else is chained.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etle.errors import StoreError
from etle.evidence.folders import discard_bundle

log = logging.getLogger(__name__)

HEAD_NAME = "chain-head.json"
PENDING_NAME = "chain-pending.json"
LOCK_NAME = ".chain.lock"
GENESIS = "0" * 64
"""The ``prev_manifest_sha256`` of a camera's first manifest."""


def camera_folder(camera_id: str) -> str:
    """The folder name of a camera under the evidence root."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(camera_id)).strip("-") or "x"


def head_key(camera_id: str) -> str:
    """The storage key of a camera's chain head, relative to the evidence root."""
    return f"{camera_folder(camera_id)}/{HEAD_NAME}"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest link of a camera's chain."""

    camera_id: str
    seq: int
    manifest_sha256: str
    bundle: str  # relpath of the bundle

    def as_bytes(self) -> bytes:
        # Nothing unverifiable in it (no timestamp): every byte is checked by a verifier.
        body = {"camera_id": self.camera_id, "seq": self.seq, "manifest_sha256": self.manifest_sha256, "bundle": self.bundle}
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> ChainHead:
        """Raises ``ValueError`` when ``data`` is not a chain head (or not in its canonical form)."""
        try:
            body: dict[str, Any] = json.loads(data)
            head = cls(str(body["camera_id"]), int(body["seq"]), str(body["manifest_sha256"]), str(body["bundle"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a chain head: {exc}") from exc
        if head.as_bytes() != data:
            raise ValueError("not in canonical form (edited?)")
        return head


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ChainLink:
    """The next place in a camera's chain, held under the camera's lock (see the module doc)."""

    def __init__(self, chain: ManifestChain, camera_id: str, previous: ChainHead | None) -> None:
        self._chain = chain
        self.camera_id = camera_id
        self.previous = previous
        self.seq = (previous.seq if previous is not None else 0) + 1
        self.prev_sha256 = previous.manifest_sha256 if previous is not None else GENESIS
        self.committed: ChainHead | None = None

    def mark_pending(self, relpath: str) -> None:
        """Record the bundle about to be renamed into place (crash recovery)."""
        body = {"camera_id": self.camera_id, "seq": self.seq, "bundle": relpath}
        _write_atomic(self._chain.camera_dir(self.camera_id) / PENDING_NAME, json.dumps(body).encode())

    def commit(self, manifest_sha256: str, relpath: str) -> ChainHead:
        """Move the head to this link's bundle."""
        head = ChainHead(self.camera_id, self.seq, manifest_sha256, relpath)
        self._chain._write_head(head)
        self.committed = head
        return head

    def revert(self) -> None:
        """Move the head back to where it was before this link (its bundle is being removed)."""
        if self.committed is None:
            return
        self._chain._restore_head(self.camera_id, self.previous)
        self.committed = None


class ManifestChain:
    """The manifest chains of every camera under an evidence ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def camera_dir(self, camera_id: str) -> Path:
        return self.root / camera_folder(camera_id)

    def head(self, camera_id: str) -> ChainHead | None:
        path = self.camera_dir(camera_id) / HEAD_NAME
        try:
            return ChainHead.parse(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"chain head {path} is unreadable: {exc}") from exc

    def _write_head(self, head: ChainHead) -> None:
        try:
            _write_atomic(self.camera_dir(head.camera_id) / HEAD_NAME, head.as_bytes())
        except OSError as exc:
            raise StoreError(f"cannot write the chain head of camera {head.camera_id}: {exc}") from exc

    def _restore_head(self, camera_id: str, head: ChainHead | None) -> None:
        if head is not None:
            self._write_head(head)
            return
        try:
            (self.camera_dir(camera_id) / HEAD_NAME).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot reset the chain head of camera {camera_id}: {exc}") from exc

    def _recover(self, camera_id: str, head: ChainHead | None) -> None:
        pending_path = self.camera_dir(camera_id) / PENDING_NAME
        try:
            pending = json.loads(pending_path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", pending_path, exc)
            pending_path.unlink(missing_ok=True)
            return
        seq, relpath = int(pending.get("seq", 0)), str(pending.get("bundle", ""))
        current = head.seq if head is not None else 0
        if seq == current + 1 and relpath and (self.root / relpath).is_dir():
            log.warning("removing evidence bundle %s: written before a crash, never chained nor ticketed", relpath)
            discard_bundle(self.root / relpath)
        pending_path.unlink(missing_ok=True)

    @contextmanager
    def extend(self, camera_id: str) -> Iterator[ChainLink]:
        """Hold the camera's chain and yield its next link (see the module doc).

        Leaving the block with an exception reverts a committed link.
        """
        folder = self.camera_dir(camera_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / LOCK_NAME, "a+b")
        except OSError as exc:
            raise StoreError(f"cannot create evidence folder {folder} (chain of camera {camera_id}): {exc}") from exc
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                head = self.head(camera_id)
                self._recover(camera_id, head)
                link = ChainLink(self, camera_id, head)
                try:
                    yield link
                except BaseException:
                    link.revert()
                    raise
                finally:
                    (folder / PENDING_NAME).unlink(missing_ok=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
