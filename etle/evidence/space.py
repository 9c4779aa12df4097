"""Disk space for evidence: a clip left out, or a violation not recorded, before the disk is full.

An edge box writes evidence for months.  When its disk fills (the network down for weeks, so
nothing could be offloaded: :mod:`etle.evidence.offload`), a bundle write fails half-way, and the
ticket database on the same disk with it.  :class:`SpacePolicy` decides before each bundle from
the free space of the evidence folder's file system: below ``clip_min_free`` the bundle is written
without its clip (the clip is most of a bundle; the pictures, manifest and ticket still hold the
violation), below ``evidence_min_free`` nothing is written: ``etle run`` then stops with one line
(``stop``: a clerk frees space and runs again; tickets already written are kept and a rerun does
not duplicate them), ``etle edge`` logs and counts the violation as not recorded (``skip``: a live
camera cannot be replayed, and its worker must not die and restart on every violation).

:data:`COUNTS` holds what was left out in this process (a camera worker reports it).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from etle.errors import StoreError
from etle.evidence.offload import disk_free

log = logging.getLogger(__name__)

MB = 1024 ** 2

#: evidence left out in this process: bundles written without their clip, violations not recorded
COUNTS: dict[str, int] = {"clips_omitted": 0, "not_recorded": 0}


@dataclass(frozen=True, slots=True)
class SpaceDecision:
    """What to write: ``record`` the evidence at all, with its ``clip``; ``note`` says why not."""

    record: bool
    clip: bool
    free_bytes: int | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class SpacePolicy:
    """Free-space floors of the evidence folder's disk (bytes; 0: no floor)."""

    clip_min_free: int = 0
    evidence_min_free: int = 0
    on_full: Literal["stop", "skip"] = "stop"

    @property
    def active(self) -> bool:
        return bool(self.clip_min_free or self.evidence_min_free)

    def decide(self, root: Path | str) -> SpaceDecision:
        """The decision for the next bundle under ``root``; raises :class:`StoreError` below the
        evidence floor when ``on_full`` is ``stop``."""
        if not self.active:
            return SpaceDecision(True, True, None)
        free = disk_free(root)
        if self.evidence_min_free and free < self.evidence_min_free:
            note = (f"{free / MB:.0f} MB free on the evidence folder's disk ({root}), "
                    f"under the {self.evidence_min_free / MB:.0f} MB kept free")
            if self.on_full == "stop":
                raise StoreError(f"{note}: free space, then run again (tickets already written are kept, "
                                 "and a rerun does not duplicate them)")
            return SpaceDecision(False, False, free, note)
        if self.clip_min_free and free < self.clip_min_free:
            return SpaceDecision(True, False, free,
                                 f"clip left out: {free / MB:.0f} MB free, under {self.clip_min_free / MB:.0f} MB")
        return SpaceDecision(True, True, free)


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk or quota."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(seen):  # SQLite's SQLITE_FULL
            return True
        seen = seen.__cause__ or seen.__context__
    return False
