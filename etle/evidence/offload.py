"""Offloading: an edge box removes the pictures and clip of tickets the central store already holds.

An edge box keeps every bundle until store-and-forward (:mod:`etle.sync`) has copied it to the
central store; ``synced_at`` is set only after each file was found there with the SHA-256 the
ticket recorded.  Over months its disk fills all the same.  :func:`offload_synced` frees space by
removing, oldest ticket first, the media of tickets that are synced (never of one that is not:
that copy is the only one), until a free-space target is reached.  What stays is what proves the
record: ``manifest.json`` and ``manifest.sig`` (so the camera's chain still verifies here), the
ticket row and its audit log, and an ``offloaded.json`` listing each removed file with its digest
and where the central copy lives.  The order is tombstone, then the files, then the database mark
(``tickets.offloaded_at``); a crash in between leaves a ticket that the next run finishes, and
``etle verify`` accepts a removed file only where the tombstone lists it and the database says the
ticket was synced and offloaded.

Nothing here is a ticket event: the ticket and its evidence are unchanged at the central store,
so no audit entry is written (the local removal is logged).  Written by hand because it is a
few lines over etle's own store and evidence layout, which no library knows.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from etle.evidence.builder import MANIFEST_NAME, OFFLOADED_NAME, PRUNED_NAME, PUBLIC_DIR, SIGNATURE_NAME
from etle.evidence.storage import EvidenceStorage

log = logging.getLogger(__name__)

KEPT = frozenset({MANIFEST_NAME, SIGNATURE_NAME, PRUNED_NAME, OFFLOADED_NAME})
GB = 1024 ** 3


@dataclass(frozen=True, slots=True)
class OffloadReport:
    """What one :func:`offload_synced` did (or, with ``dry_run``, would do)."""

    tickets: int
    files: int
    bytes: int
    dry_run: bool
    references: tuple[str, ...]
    #: free bytes after the run (estimated for a dry run); None where not measured
    free_bytes: int | None
    #: whether the free-space target was reached (always True without a target)
    reached: bool


def disk_free(path: Path | str) -> int:
    """Free bytes (for an unprivileged writer) on the file system holding ``path`` (or its
    nearest existing parent: an evidence folder not made yet)."""
    here = Path(path).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return shutil.disk_usage(here).free


def offloaded_names(folder: Path | str) -> frozenset[str]:
    """The files a bundle folder's ``offloaded.json`` lists (empty without one, or unreadable)."""
    try:
        entries = json.loads((Path(folder) / OFFLOADED_NAME).read_text(encoding="utf-8"))["files"]
        return frozenset(str(n) for n in entries)
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()


def offload_synced(
    store: object,
    storage: EvidenceStorage,
    *,
    free_target: int | None = None,
    free_bytes: Callable[[], int] | None = None,
    central: str = "",
    reason: str = "",
    now: datetime | None = None,
    dry_run: bool = False,
    batch: int = 100,
) -> OffloadReport:
    """Remove the media of synced tickets, oldest first, until ``free_bytes()`` reaches
    ``free_target`` (None: of every synced ticket).  ``store`` is a
    :class:`etle.store.TicketStore`; ``central`` names the central evidence location (recorded
    in each tombstone); ``dry_run`` only counts (and estimates the free space it would reach)."""
    if free_target is not None and free_bytes is None:
        raise ValueError("a free-space target needs free_bytes")
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    free = free_bytes() if free_bytes is not None else None
    removed_estimate = 0
    n_tickets = n_files = n_bytes = 0
    refs: list[str] = []
    after = 0

    def reached() -> bool:
        if free_target is None:
            return False
        assert free_bytes is not None
        have = (free or 0) + removed_estimate if dry_run else free_bytes()
        return have >= free_target

    while not reached():
        tickets = store.offloadable(limit=batch, after_id=after)  # type: ignore[attr-defined]
        if not tickets:
            break
        for ticket in tickets:
            after = ticket.id
            if reached():
                break
            if not ticket.evidence_key:
                continue
            media = [f for f in ticket.evidence_files if f.name not in KEPT and f.pruned_at is None]
            size = sum(f.bytes for f in media)
            n_tickets += 1
            n_files += len(media)
            n_bytes += size
            removed_estimate += size
            refs.append(ticket.reference)
            if dry_run:
                continue
            key = ticket.evidence_key
            tombstone = {
                "schema": "etle.offloaded",
                "ticket_uid": ticket.uid,
                "reference": ticket.reference,
                "files": {f.name: {"sha256": f.sha256, "bytes": f.bytes} for f in sorted(media, key=lambda f: f.name)},
                "central": central,
                "at": moment.isoformat(timespec="seconds"),
                "reason": reason or "disk space",
            }
            storage.put_bytes(f"{key}/{OFFLOADED_NAME}", (json.dumps(tombstone, indent=2) + "\n").encode())
            for f in media:
                storage.delete(f"{key}/{f.name}")
            for obj in list(storage.list(f"{key}/{PUBLIC_DIR}/")):  # blurred copies: derived, central has them too
                storage.delete(obj.key)
            store.mark_offloaded(ticket.id, at=moment)  # type: ignore[attr-defined]
            log.info("offloaded %d files (%.1f MB) of ticket %s: the central store holds them",
                     len(media), size / 1e6, ticket.reference)
    after_free = None
    if free_bytes is not None:
        after_free = (free or 0) + removed_estimate if dry_run else free_bytes()
    done = free_target is None or (after_free is not None and after_free >= free_target)
    return OffloadReport(n_tickets, n_files, n_bytes, dry_run, tuple(refs), after_free, done)
