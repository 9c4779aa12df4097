"""Tickets themselves: add (idempotent on the dedupe key and uid), cameras, and reading.

:class:`TicketsMixin` holds the :class:`etle.store.repository.TicketStore` methods that add a
ticket with its plate reads, evidence files and ``create`` audit entry, register cameras, and
find, list, count and read tickets as views or whole records (what export writes).
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.base import (
    _INSERT_ATTEMPTS,
    PIPELINE_ACTOR,
    StoreBase,
    _now,
    _one_line,
    log,
    new_reference,
    new_uid,
)
from etle.store.models import (
    PENDING_REVIEW,
    Camera,
    EvidenceFile,
    PlateRead,
    ReviewAction,
    Ticket,
)
from etle.store.views import (
    _COLUMN_FIELDS,
    CameraIn,
    PlateReadView,
    TicketIn,
    TicketRecord,
    TicketView,
    _action_view,
    _to_view,
    _utc,
)


def _ticket_where(
    *,
    status: str | None = None,
    rule: str | None = None,
    camera: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    plate: str | None = None,
    run_ids: Sequence[str] | None = None,
) -> Select[tuple[Ticket]]:
    query = select(Ticket)
    if run_ids is not None:
        query = query.where(Ticket.run_id.in_(list(run_ids)))
    if status is not None:
        query = query.where(Ticket.status == status)
    if rule is not None:
        query = query.where(Ticket.rule == rule)
    if camera is not None:
        query = query.where(Ticket.camera_id == camera)
    if since is not None:
        query = query.where(Ticket.occurred_at >= _utc(since, "since"))
    if until is not None:
        query = query.where(Ticket.occurred_at < _utc(until, "until"))
    if plate:
        needle = "".join(plate.split()).replace("-", "").upper()
        query = query.where(Ticket.plate_text.contains(needle, autoescape=True))
    return query


class TicketsMixin(StoreBase):
    """Adding, finding, listing and counting tickets; registering cameras."""

    def find_duplicate(self, ticket: TicketIn) -> int | None:
        """The id of the stored ticket with the dedupe key (or the uid) of ``ticket``, if any."""
        camera_id, source, run_id, track_id, rule = ticket.dedupe_key
        with self._session("look up a ticket") as session:
            found = session.scalar(
                select(Ticket.id).where(
                    Ticket.camera_id == camera_id,
                    Ticket.source == source,
                    Ticket.run_id == run_id,
                    Ticket.track_id == track_id,
                    Ticket.rule == rule,
                )
            )
            if found is None and ticket.uid:
                found = session.scalar(select(Ticket.id).where(Ticket.uid == ticket.uid))
            return found

    def add_or_get(self, ticket: TicketIn, *, actor: str = PIPELINE_ACTOR) -> tuple[int, bool]:
        """``(id, True)`` for a new ticket, ``(existing id, False)`` for a duplicate key or uid.

        The new ticket gets its camera row (when missing), its plate reads, its evidence files
        and a ``create`` audit entry by ``actor``, all in one transaction.
        """
        values: dict[str, Any] = {name: getattr(ticket, name) for name in _COLUMN_FIELDS}
        values["plate_candidates"] = [c.as_dict() for c in ticket.plate_candidates]
        values["uid"] = ticket.uid or new_uid()
        last = ""
        for _ in range(_INSERT_ATTEMPTS):
            existing = self.find_duplicate(ticket)
            if existing is not None:
                log.debug("ticket for %s already stored as %d", ticket.dedupe_key, existing)
                return existing, False
            row = Ticket(reference=new_reference(ticket.reference_day), **values)
            row.created_at = _now()
            row.status_changed_at = row.created_at
            try:
                with self._session("add a ticket") as session:
                    self._ensure_camera(session, CameraIn(ticket.camera_id, ticket.camera_name, ticket.location))
                    session.add(row)
                    session.flush()
                    ticket_id = row.id
                    self._add_children(session, row, ticket)
                    session.add(ReviewAction(
                        uid=new_uid(), ticket_id=ticket_id, action=lifecycle.CREATE, from_status=None,
                        to_status=PENDING_REVIEW, actor=actor, user_id=self._user_id(session, actor),
                        at=row.created_at, reason="", data={},
                    ))
            except IntegrityError as exc:
                # A racing writer stored the same key, or the reference code collided: re-check.
                last = _one_line(exc)
                log.debug("ticket insert conflict (%s); retrying", last)
                continue
            log.info("ticket %s (%d) added: %s track %d", row.reference, ticket_id, ticket.rule, ticket.track_id)
            return ticket_id, True
        raise StoreError(
            f"ticket database {self._url}: cannot add a ticket after {_INSERT_ATTEMPTS} conflicts: {last}"
        )

    @staticmethod
    def _add_children(session: Session, row: Ticket, ticket: TicketIn) -> None:
        chosen_done = False
        for rank, c in enumerate(ticket.plate_candidates):
            chosen = not chosen_done and bool(c.text) and c.text == ticket.plate_text
            chosen_done = chosen_done or chosen
            session.add(PlateRead(
                ticket_id=row.id, rank=rank, text=c.text, confidence=c.confidence, frame_index=c.frame_index,
                source="ocr", chosen=chosen, actor="", created_at=row.created_at,
            ))
        for f in ticket.evidence_files:
            session.add(EvidenceFile(
                ticket_id=row.id, name=f.name, role=f.role, sha256=f.sha256, bytes=f.bytes, pruned_at=f.pruned_at,
            ))

    def add(self, ticket: TicketIn) -> int:
        """Store ``ticket`` and return its id; a ticket with the same dedupe key returns that id."""
        return self.add_or_get(ticket)[0]

    def register_camera(self, camera: CameraIn) -> None:
        """Create or refresh the camera row (name, location, position, time zone)."""
        with self._session("register a camera") as session:
            self._ensure_camera(session, camera)
            row = session.get(Camera, camera.id)
            if row is not None:
                row.name, row.location, row.lat, row.lon, row.timezone = (
                    camera.name, camera.location, camera.lat, camera.lon, camera.timezone,
                )

    def camera_timezone(self, camera_id: str) -> str:
        """The camera's IANA time zone (``UTC`` when the camera row is unknown)."""
        with self._session("read a camera") as session:
            cam = session.get(Camera, camera_id)
            return (cam.timezone if cam is not None else "") or "UTC"

    @staticmethod
    def _plate_view(p: PlateRead) -> PlateReadView:
        return PlateReadView(p.rank, p.text, p.confidence, p.frame_index, p.source, p.chosen, p.actor, p.created_at)

    def get(self, id_or_reference: int | str) -> TicketView | None:
        """The ticket with this id (int or digits), uid or reference code (case-insensitive)."""
        with self._session("read a ticket") as session:
            row = session.scalars(select(Ticket).where(self._where_ref(id_or_reference))).one_or_none()
            return _to_view(row) if row is not None else None

    def list(
        self,
        *,
        status: str | None = None,
        rule: str | None = None,
        camera: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        plate: str | None = None,
        run_ids: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TicketView]:
        """Tickets matching every given filter, newest occurrence first.

        ``since`` is inclusive and ``until`` exclusive (both timezone-aware); ``plate`` matches a
        part of the plate text, ignoring case, spaces and dashes; ``run_ids``: tickets of these
        runs only (e.g. the segments of one clip in ``etle batch``).
        """
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit}, {offset}")
        query = _ticket_where(status=status, rule=rule, camera=camera, since=since, until=until, plate=plate,
                              run_ids=run_ids)
        query = query.order_by(Ticket.occurred_at.desc(), Ticket.id.desc()).limit(limit).offset(offset)
        with self._session("list tickets") as session:
            return [_to_view(row) for row in session.scalars(query)]

    def related(self, id_or_reference: int | str, *, limit: int = 20) -> builtins.list[TicketView]:
        """Other tickets of the same vehicle, newest occurrence first: the same plate (where the
        ticket has one), or the same track of the same run and camera (another rule broken on
        one passage).  What a reviewer checks for duplicates and repeat offences."""
        with self._session("find related tickets") as session:
            t = self._row(session, id_or_reference)
            same_passage = and_(Ticket.camera_id == t.camera_id, Ticket.source == t.source,
                                Ticket.run_id == t.run_id, Ticket.track_id == t.track_id)
            same = or_(same_passage, Ticket.plate_text == t.plate_text) if t.plate_text else same_passage
            query = (select(Ticket).where(same, Ticket.id != t.id)
                     .order_by(Ticket.occurred_at.desc(), Ticket.id.desc()).limit(limit))
            return [_to_view(row) for row in session.scalars(query)]

    def possible_duplicates(self, tickets: Sequence[TicketView], *, window_s: float) -> set[int]:
        """The ids among ``tickets`` (a page of a queue) that another ticket may duplicate: one of
        the same passage (camera, source, run, track), or of the same plate within ``window_s``."""
        if not tickets:
            return set()
        window = timedelta(seconds=window_s)
        passages = [and_(Ticket.camera_id == t.camera_id, Ticket.source == t.source, Ticket.run_id == t.run_id,
                         Ticket.track_id == t.track_id) for t in tickets]
        plated = [t for t in tickets if t.plate_text]
        near = [and_(Ticket.plate_text.in_(sorted({t.plate_text for t in plated})),
                     Ticket.occurred_at >= min(t.occurred_at for t in plated) - window,
                     Ticket.occurred_at <= max(t.occurred_at for t in plated) + window)] if plated else []
        query = select(Ticket.id, Ticket.camera_id, Ticket.source, Ticket.run_id, Ticket.track_id, Ticket.plate_text,
                       Ticket.occurred_at).where(or_(*passages, *near))
        with self._session("find possible duplicates") as session:
            rows = session.execute(query).all()
        found: set[int] = set()
        for t in tickets:
            for r in rows:
                if r.id == t.id:
                    continue
                if (r.camera_id, r.source, r.run_id, r.track_id) == (t.camera_id, t.source, t.run_id, t.track_id) or (
                        t.plate_text and r.plate_text == t.plate_text
                        and abs((_utc(r.occurred_at, "occurred_at") - t.occurred_at).total_seconds()) <= window_s):
                    found.add(t.id)
                    break
        return found

    def records(self, *, batch: int = 500, **filters: Any) -> Iterator[TicketRecord]:
        """Every matching ticket with its plate reads and audit log, oldest id first (streamed)."""
        last_id = 0
        while True:
            query = _ticket_where(**filters).where(Ticket.id > last_id).order_by(Ticket.id).limit(batch)
            with self._session("export tickets") as session:
                rows = builtins.list(session.scalars(query))
                out = self._records(session, rows)
            yield from out
            if len(rows) < batch:
                return
            last_id = rows[-1].id

    def record(self, id_or_reference: int | str) -> TicketRecord:
        with self._session("read a ticket") as session:
            return self._record(session, self._row(session, id_or_reference))

    def _records(self, session: Session, rows: Sequence[Ticket]) -> builtins.list[TicketRecord]:
        """:meth:`_record` of each row, with the plate reads, audit entries and cameras of all the
        rows read in three queries (not three per ticket: ``etle verify`` reads every ticket)."""
        if not rows:
            return []
        ids = [row.id for row in rows]
        reads: dict[int, builtins.list[PlateReadView]] = defaultdict(builtins.list)
        for p in session.scalars(select(PlateRead).where(PlateRead.ticket_id.in_(ids)).order_by(PlateRead.id)):
            reads[p.ticket_id].append(self._plate_view(p))
        uids = {row.id: row.uid or "" for row in rows}
        acts: dict[int, builtins.list[Any]] = defaultdict(builtins.list)
        for a in session.scalars(select(ReviewAction).where(ReviewAction.ticket_id.in_(ids))
                                 .order_by(ReviewAction.at, ReviewAction.id)):
            acts[a.ticket_id].append(_action_view(a, uids[a.ticket_id]))
        cams = {c.id: CameraIn(c.id, c.name, c.location, c.lat, c.lon, c.timezone) for c in session.scalars(
            select(Camera).where(Camera.id.in_(sorted({row.camera_id for row in rows}))))}
        return [TicketRecord(ticket=_to_view(row), plate_reads=tuple(reads.get(row.id, ())), actions=tuple(acts.get(row.id, ())),
                             camera=cams.get(row.camera_id)) for row in rows]

    def _record(self, session: Session, row: Ticket) -> TicketRecord:
        reads = tuple(self._plate_view(p) for p in session.scalars(
            select(PlateRead).where(PlateRead.ticket_id == row.id).order_by(PlateRead.id)))
        acts = tuple(_action_view(a, row.uid or "") for a in session.scalars(
            select(ReviewAction).where(ReviewAction.ticket_id == row.id).order_by(ReviewAction.at, ReviewAction.id)))
        cam = session.get(Camera, row.camera_id)
        camera = CameraIn(cam.id, cam.name, cam.location, cam.lat, cam.lon, cam.timezone) if cam else None
        return TicketRecord(ticket=_to_view(row), plate_reads=reads, actions=acts, camera=camera)

    def count_by_status(self) -> dict[str, int]:
        """``{status: number of tickets}`` for the statuses present."""
        with self._session("count tickets") as session:
            rows = session.execute(select(Ticket.status, func.count()).group_by(Ticket.status))
            return {status: int(n) for status, n in rows}

    def count_matching(self, **filters: Any) -> int:
        """How many tickets match the filters of :meth:`list` (for pagination)."""
        query = select(func.count()).select_from(_ticket_where(**filters).subquery())
        with self._session("count tickets") as session:
            return int(session.scalar(query) or 0)

    def count(self) -> int:
        with self._session("count tickets") as session:
            return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)
