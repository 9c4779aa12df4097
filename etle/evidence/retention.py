"""Retention: remove the pictures and clip of rejected tickets after a waiting period.

A rejected capture (wrong plate, emergency vehicle...) holds personal data with no legal use
once the rejection can no longer be contested, so its media go.  What makes the record stays:
the ticket row, its audit log, the bundle's ``manifest.json`` and ``manifest.sig`` (so the camera's
chain still verifies), plus a ``pruned.json`` that lists the removed files.  The order is
tombstone first, then the files, then the database record (with a ``prune_evidence`` audit
entry); a crash in between leaves a state :func:`prune_rejected` finishes on its next run and
``etle verify`` reports meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from etle.errors import StoreError
from etle.evidence.builder import MANIFEST_NAME, PRUNED_NAME, PUBLIC_DIR, SIGNATURE_NAME
from etle.evidence.storage import EvidenceStorage

log = logging.getLogger(__name__)

RETENTION_ACTOR = "system:retention"
DEFAULT_REJECTED_RETENTION = timedelta(days=90)
KEPT = frozenset({MANIFEST_NAME, SIGNATURE_NAME, PRUNED_NAME})


@dataclass(frozen=True, slots=True)
class PruneReport:
    tickets: int
    files: int
    bytes: int
    dry_run: bool
    references: tuple[str, ...]


def prune_rejected(
    store: object,
    storage: EvidenceStorage,
    *,
    older_than: timedelta = DEFAULT_REJECTED_RETENTION,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = RETENTION_ACTOR,
) -> PruneReport:
    """Remove the media of tickets rejected more than ``older_than`` ago (see the module doc).

    ``store`` is a :class:`etle.store.TicketStore`.  ``dry_run`` only counts.
    """
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    cutoff = moment - older_than
    n_tickets = n_files = n_bytes = 0
    refs: list[str] = []
    for ticket in store.prunable(cutoff):  # type: ignore[attr-defined]
        if not ticket.evidence_key:
            log.warning("ticket %s has no evidence key: skipped by retention", ticket.reference)
            continue
        media = [f for f in ticket.evidence_files if f.name not in KEPT]
        n_tickets += 1
        n_files += len(media)
        n_bytes += sum(f.bytes for f in media)
        refs.append(ticket.reference)
        if dry_run:
            continue
        tombstone = {
            "schema": "etle.pruned",
            "ticket_uid": ticket.uid,
            "reference": ticket.reference,
            "files": sorted(f.name for f in media),
            "at": moment.isoformat(timespec="seconds"),
            "reason": f"rejected ticket, retention {older_than.days} days",
        }
        data = (json.dumps(tombstone, indent=2) + "\n").encode()
        storage.put_bytes(f"{ticket.evidence_key}/{PRUNED_NAME}", data)
        for f in media:
            storage.delete(f"{ticket.evidence_key}/{f.name}")
        for obj in list(storage.list(f"{ticket.evidence_key}/{PUBLIC_DIR}/")):  # blurred copies go too
            storage.delete(obj.key)
        try:
            store.mark_pruned(ticket.id, [f.name for f in media], actor=actor,  # type: ignore[attr-defined]
                              reason=tombstone["reason"], at=moment, tombstone_sha256=hashlib.sha256(data).hexdigest())
        except StoreError:
            log.error("evidence of ticket %s removed but not yet recorded; the next run records it", ticket.reference)
            raise
        log.info("pruned %d files of rejected ticket %s", len(media), ticket.reference)
    return PruneReport(n_tickets, n_files, n_bytes, dry_run, tuple(refs))
