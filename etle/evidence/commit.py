"""Evidence and ticket together: the one call the pipeline makes per violation.

:func:`record_violation` writes the bundle, then inserts the ticket that points at it.  Either
both exist afterwards or neither does: when the insert fails the new bundle is removed and the
error is raised as :class:`StoreError`.  A violation whose ticket already exists (same camera,
source, run, track and rule) writes nothing and returns the existing ticket's id.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etle.errors import StoreError
from etle.evidence.builder import (
    EvidenceBundle,
    EvidenceRequest,
    EvidenceWriter,
    discard_bundle,
    to_utc,
)
from etle.store.repository import PlateCandidate, TicketIn, TicketStore

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
        plate_candidates=tuple(
            PlateCandidate(text=c.text, confidence=c.confidence, frame_index=c.frame_index)
            for c in plate.candidates
        ),
        evidence_path=str(bundle.path.resolve()) if bundle is not None else "",
        manifest_sha256=bundle.manifest_sha256 if bundle is not None else "",
    )
    return dataclasses.replace(ticket, **dict(ticket_fields or {}))


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
    bundle = writer.write(request)
    ticket = dataclasses.replace(draft, evidence_path=str(bundle.path.resolve()), manifest_sha256=bundle.manifest_sha256)
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
        return Recorded(bundle=None, ticket_id=ticket_id, created=False)
    return Recorded(bundle=bundle, ticket_id=ticket_id, created=True)


def _discard_quietly(bundle: EvidenceBundle) -> None:
    try:
        discard_bundle(bundle.path)
    except StoreError as exc:
        log.error("orphaned evidence bundle %s could not be removed: %s", bundle.path, exc)
