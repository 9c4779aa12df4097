"""Evidence and ticket together: the one call the pipeline makes per violation.

:func:`record_violation` writes the bundle, then inserts the ticket that points at it.  Either
both exist afterwards or neither does: when the insert fails the new bundle is removed, the
camera's manifest chain is moved back, and the error is raised as :class:`StoreError`.  The
camera's chain stays held (locked) from the bundle to the ticket, so its links and the tickets'
``chain_seq`` agree.  A violation whose ticket already exists (same camera, source, run, track
and rule) writes nothing and returns the existing ticket's id.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from etle.errors import StoreError
from etle.evidence.builder import (
    FILE_ROLES,
    EvidenceBundle,
    EvidenceRequest,
    EvidenceWriter,
    discard_bundle,
    to_utc,
)
from etle.evidence.chain import ChainLink
from etle.store.repository import EvidenceFileIn, PlateCandidate, TicketIn, TicketStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcome of :func:`record_violation`.

    ``bundle`` is the bundle written now (``None`` when the ticket already existed);
    ``created`` tells whether the ticket is new.
    """

    bundle: EvidenceBundle | None
    ticket_id: int
    created: bool


def ticket_from_request(
    request: EvidenceRequest,
    bundle: EvidenceBundle | None = None,
    ticket_fields: Mapping[str, Any] | None = None,
) -> TicketIn:
    """The ticket of ``request`` (pointing at ``bundle`` when given), with ``ticket_fields``
    (e.g. ``run_id``, ``source``) overriding the derived values.  Unknown fields raise
    :class:`TypeError`."""
    v = request.violation
    cam = request.camera
    utc = to_utc(v.timestamp)
    plate = request.plate
    ticket = TicketIn(
        camera_id=cam.id,
        camera_name=cam.name,
        location=cam.location,
        occurred_at=utc,
        local_time=utc.astimezone(cam.zone).isoformat(timespec="milliseconds"),
        rule=v.rule,
        article=request.article,
        fine=request.fine,
        vehicle_label=v.label,
        track_id=v.track_id,
        source=request.key_frame.source,
        frame_index=v.frame_index,
        plate_text=plate.text,
        plate_confidence=plate.confidence,
        plate_colour=plate.colour or "",
        plate_category=plate.category or "",
        plate_candidates=tuple(
            PlateCandidate(text=c.text, confidence=c.confidence, frame_index=c.frame_index, char_conf=c.char_conf)
            for c in plate.candidates
        ),
    )
    if bundle is not None:
        ticket = with_bundle(ticket, bundle)
    return dataclasses.replace(ticket, **dict(ticket_fields or {}))


def with_bundle(ticket: TicketIn, bundle: EvidenceBundle) -> TicketIn:
    """``ticket`` pointing at ``bundle``: its path, key, id, chain place and every file's digest."""
    return dataclasses.replace(
        ticket,
        evidence_path=str(bundle.path.resolve()),
        evidence_key=bundle.relpath,
        bundle_id=bundle.bundle_id,
        manifest_sha256=bundle.manifest_sha256,
        chain_seq=bundle.chain_seq,
        evidence_files=tuple(
            EvidenceFileIn(name=name, sha256=d.sha256, bytes=d.bytes, role=FILE_ROLES.get(name, ""))
            for name, d in sorted(bundle.all_files().items())
        ),
    )


def record_violation(
    writer: EvidenceWriter,
    store: TicketStore,
    request: EvidenceRequest,
    ticket_fields: Mapping[str, Any] | None = None,
) -> Recorded:
    """Write the evidence bundle of ``request`` and add its ticket, consistently.

    ``ticket_fields`` overrides ticket values derived from the request (typically ``run_id``).
    Raises :class:`StoreError` when the bundle cannot be written or the ticket cannot be added;
    in the latter case the bundle is removed first.
    """
    draft = ticket_from_request(request, None, ticket_fields)
    existing = store.find_duplicate(draft)
    if existing is not None:
        log.info("violation %s of track %d already ticketed (%d)", draft.rule, draft.track_id, existing)
        return Recorded(bundle=None, ticket_id=existing, created=False)
    held: AbstractContextManager[ChainLink | None] = (
        writer.chain.extend(request.camera.id) if writer.chain is not None else nullcontext(None)
    )
    with held as link:
        bundle = writer.write(request, link=link)
        if link is not None:
            link.commit(bundle.manifest_sha256, bundle.relpath)
        ticket = with_bundle(draft, bundle)
        try:
            ticket_id, created = store.add_or_get(ticket)
        except BaseException as exc:
            _discard_quietly(bundle)
            if isinstance(exc, StoreError):
                raise
            if isinstance(exc, Exception):
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise StoreError(f"cannot add the ticket of {bundle.relpath}: {first}") from exc
            raise
        if not created:  # another writer stored the same violation between the check and the insert
            _discard_quietly(bundle)
            if link is not None:
                link.revert()
            return Recorded(bundle=None, ticket_id=ticket_id, created=False)
    return Recorded(bundle=bundle, ticket_id=ticket_id, created=True)


def _discard_quietly(bundle: EvidenceBundle) -> None:
    try:
        discard_bundle(bundle.path)
    except StoreError as exc:
        log.error("orphaned evidence bundle %s could not be removed: %s", bundle.path, exc)
