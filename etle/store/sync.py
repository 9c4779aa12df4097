"""Store-and-forward: what an edge store has not pushed yet, sync marks, and importing tickets
and audit entries received from another store.

:class:`SyncMixin` holds the :class:`etle.store.repository.TicketStore` methods that
:mod:`etle.sync` uses: unsynced tickets and their marks, the audit entries after a mark, and
the idempotent imports of whole ticket records and of audit entries (which are then applied to
the tickets: status, plate, owner lookup, payment code, pruned files).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.base import (
    _INSERT_ATTEMPTS,
    StoreBase,
    _now,
    _one_line,
    log,
    new_reference,
    new_uid,
)
from etle.store.models import (
    EvidenceFile,
    PlateRead,
    ReviewAction,
    SiteStatus,
    SyncState,
    Ticket,
    User,
)
from etle.store.notices import _apply_lookup
from etle.store.views import (
    _COLUMN_FIELDS,
    _OWNER_FIELDS,
    ActionView,
    CameraIn,
    SiteStatusView,
    TicketRecord,
    TicketView,
    _action_view,
    _to_view,
)


class SyncMixin(StoreBase):
    """Unsynced tickets, sync marks, and imports from another store."""

    def unsynced(self, *, limit: int = 100) -> builtins.list[TicketView]:
        """Tickets not yet pushed to the central store, in insertion order."""
        query = select(Ticket).where(Ticket.synced_at.is_(None)).order_by(Ticket.id).limit(limit)
        with self._session("find unsynced tickets") as session:
            return [_to_view(r) for r in session.scalars(query)]

    def unsynced_keys(self) -> builtins.list[tuple[str, str]]:
        """``(uid, camera_id)`` of every ticket not yet pushed to the central store."""
        with self._session("find unsynced tickets") as session:
            return [(uid or "", cam) for uid, cam in session.execute(
                select(Ticket.uid, Ticket.camera_id).where(Ticket.synced_at.is_(None)))]

    def camera_ids(self) -> builtins.list[str]:
        """The cameras that have tickets."""
        with self._session("list cameras") as session:
            return sorted(session.scalars(select(Ticket.camera_id).distinct()))

    def mark_synced(self, ticket_ids: Iterable[int], at: datetime | None = None) -> None:
        ids = builtins.list(ticket_ids)
        if not ids:
            return
        with self._session("mark tickets synced") as session:
            session.execute(
                update(Ticket).where(Ticket.id.in_(ids)).values(synced_at=at or _now())
                .execution_options(synchronize_session=False)
            )

    def sync_mark(self, target: str) -> int:
        with self._session("read the sync mark") as session:
            row = session.get(SyncState, target)
            return row.last_action_id if row is not None else 0

    def set_sync_mark(self, target: str, last_action_id: int) -> None:
        self._retrying("write the sync mark", lambda: self._set_sync_mark(target, last_action_id))

    def _set_sync_mark(self, target: str, last_action_id: int) -> None:
        with self._session("write the sync mark") as session:
            row = session.get(SyncState, target)
            if row is None:
                session.add(SyncState(target=target, last_action_id=last_action_id, updated_at=_now()))
            else:
                row.last_action_id, row.updated_at = last_action_id, _now()

    def report_site_status(self, site: str, data: dict[str, Any], *, at: datetime | None = None) -> None:
        """Keep ``data`` as what edge site ``site`` reports now (one row per site, replaced)."""
        self._retrying("record a site's report", lambda: self._report_site_status(site, data, at or _now()))

    def _report_site_status(self, site: str, data: dict[str, Any], at: datetime) -> None:
        with self._session("record a site's report") as session:
            row = session.get(SiteStatus, site)
            if row is None:
                session.add(SiteStatus(site=site, reported_at=at, data=data))
            else:
                row.reported_at, row.data = at, data

    def site_statuses(self) -> builtins.list[SiteStatusView]:
        """Every edge site's last report, by site name."""
        with self._session("read site reports") as session:
            return [SiteStatusView(r.site, r.reported_at, dict(r.data or {}))
                    for r in session.scalars(select(SiteStatus).order_by(SiteStatus.site))]

    def actions_after(self, action_id: int, *, limit: int = 500) -> builtins.list[ActionView]:
        """Audit entries with id greater than ``action_id``, in id order."""
        query = (
            select(ReviewAction, Ticket.uid).join(Ticket, Ticket.id == ReviewAction.ticket_id)
            .where(ReviewAction.id > action_id).order_by(ReviewAction.id).limit(limit)
        )
        with self._session("read the audit log") as session:
            return [_action_view(a, uid or "") for a, uid in session.execute(query)]

    def import_record(self, record: TicketRecord, *, evidence_path: str | None = None) -> tuple[int, bool]:
        """Insert a ticket received from another store unless its uid is here already.

        Keeps the uid, reference, times, status, plate reads, files and audit entries of the
        record (``evidence_path`` replaces the evidence location).  A reference code taken by a
        different ticket here is replaced by a new one, with a ``reassign_reference`` audit entry.
        Returns ``(id here, True when inserted)``.
        """
        t = record.ticket
        if not t.uid:
            raise StoreError(f"ticket {t.reference} has no uid and cannot be synced")
        for _ in range(_INSERT_ATTEMPTS):
            with self._session("import a ticket") as session:
                existing = session.scalar(select(Ticket.id).where(Ticket.uid == t.uid))
                if existing is None:
                    existing = session.scalar(select(Ticket.id).where(
                        Ticket.camera_id == t.camera_id, Ticket.source == t.source, Ticket.run_id == t.run_id,
                        Ticket.track_id == t.track_id, Ticket.rule == t.rule))
                    if existing is not None:
                        log.warning("ticket %s: same violation already stored here as %d under another uid",
                                    t.uid, existing)
                if existing is not None:
                    return existing, False
                taken = session.scalar(select(Ticket.uid).where(Ticket.reference == t.reference))
            reference = t.reference if taken is None else new_reference(t.reference_day)
            values = {name: getattr(t, name) for name in _COLUMN_FIELDS + _OWNER_FIELDS}
            values["plate_candidates"] = [c.as_dict() for c in t.plate_candidates]
            values["payment_code"] = t.payment_code or None
            if evidence_path is not None:
                values["evidence_path"] = evidence_path
            row = Ticket(reference=reference, status=t.status, created_at=t.created_at,
                         status_changed_at=t.status_changed_at, synced_at=None, **values)
            try:
                with self._session("import a ticket") as session:
                    self._ensure_camera(session, record.camera or CameraIn(t.camera_id, t.camera_name, t.location))
                    session.add(row)
                    session.flush()
                    for p in record.plate_reads:
                        session.add(PlateRead(ticket_id=row.id, rank=p.rank, text=p.text, confidence=p.confidence,
                                              frame_index=p.frame_index, source=p.source, chosen=p.chosen,
                                              actor=p.actor, created_at=p.created_at))
                    for f in t.evidence_files:
                        session.add(EvidenceFile(ticket_id=row.id, name=f.name, role=f.role, sha256=f.sha256,
                                                 bytes=f.bytes, pruned_at=f.pruned_at))
                    for a in record.actions:
                        self._insert_action(session, row.id, a)
                    if reference != t.reference:
                        session.add(ReviewAction(
                            uid=new_uid(), ticket_id=row.id, action=lifecycle.REASSIGN_REFERENCE,
                            from_status=row.status, to_status=row.status, actor="system:sync", user_id=None,
                            at=_now(), reason="reference code already used by another ticket here",
                            data={"previous": t.reference, "reference": reference},
                        ))
                        log.warning("ticket %s: reference %s taken here; reassigned %s", t.uid, t.reference, reference)
                    ticket_id = row.id
            except IntegrityError as exc:
                log.debug("ticket import conflict (%s); retrying", _one_line(exc))
                continue
            return ticket_id, True
        raise StoreError(f"ticket database {self._url}: cannot import ticket {t.uid} after {_INSERT_ATTEMPTS} conflicts")

    def _insert_action(self, session: Session, ticket_id: int, a: ActionView) -> None:
        user_id = None
        if not a.actor.startswith(lifecycle.SYSTEM_PREFIX):
            user_id = session.scalar(select(User.id).where(User.username == a.actor))
        session.add(ReviewAction(
            uid=a.uid, ticket_id=ticket_id, action=a.action, from_status=a.from_status, to_status=a.to_status,
            actor=a.actor, user_id=user_id, at=a.at, reason=a.reason, data=dict(a.data),
        ))

    def import_actions(self, actions: Sequence[ActionView]) -> tuple[int, int]:
        """Insert audit entries received from another store (skipping known uids) and apply them.

        Every entry's ticket must be here (by uid), else :class:`StoreError`.  A ticket's status
        becomes the target of its latest status-changing entry; ``correct_plate`` entries set the
        plate.  Returns ``(inserted, skipped)``.
        """
        return self._retrying("import audit entries", lambda: self._import_actions(actions))

    def _import_actions(self, actions: Sequence[ActionView]) -> tuple[int, int]:
        inserted = skipped = 0
        with self._session("import audit entries") as session:
            touched: dict[int, None] = {}
            for a in actions:
                if session.scalar(select(ReviewAction.id).where(ReviewAction.uid == a.uid)) is not None:
                    skipped += 1
                    continue
                ticket_id = session.scalar(select(Ticket.id).where(Ticket.uid == a.ticket_uid))
                if ticket_id is None:
                    raise StoreError(f"audit entry {a.uid}: ticket {a.ticket_uid} is not in {self._url}")
                self._insert_action(session, ticket_id, a)
                if a.action == lifecycle.CORRECT_PLATE and a.data.get("plate_text"):
                    session.add(PlateRead(ticket_id=ticket_id, rank=-1, text=str(a.data["plate_text"]), confidence=1.0,
                                          frame_index=-1, source="reviewer", chosen=True, actor=a.actor, created_at=a.at))
                if a.action == lifecycle.REGISTRY_LOOKUP:
                    target = session.get(Ticket, ticket_id)
                    if target is not None:
                        _apply_lookup(target, a.data, a.at)
                if a.data.get("payment_code") and a.action in ("confirm", "block"):
                    target = session.get(Ticket, ticket_id)
                    if target is not None and not target.payment_code:
                        target.payment_code = str(a.data["payment_code"])[:16]
                if a.action == lifecycle.PRUNE_EVIDENCE:
                    session.execute(
                        update(EvidenceFile).where(EvidenceFile.ticket_id == ticket_id,
                                                   EvidenceFile.name.in_([str(n) for n in a.data.get("files", [])]))
                        .values(pruned_at=a.at).execution_options(synchronize_session=False))
                touched[ticket_id] = None
                inserted += 1
            session.flush()
            for ticket_id in touched:
                self._apply_log(session, ticket_id)
        return inserted, skipped

    @staticmethod
    def _apply_log(session: Session, ticket_id: int) -> None:
        entries = builtins.list(session.scalars(
            select(ReviewAction).where(ReviewAction.ticket_id == ticket_id).order_by(ReviewAction.at, ReviewAction.id)))
        row = session.get(Ticket, ticket_id)
        assert row is not None
        moves = [a for a in entries if a.action not in lifecycle.NON_TRANSITION_ACTIONS and a.to_status]
        if moves:
            row.status, row.status_changed_at = moves[-1].to_status or row.status, moves[-1].at
        plates = [a for a in entries if a.action == lifecycle.CORRECT_PLATE and (a.data or {}).get("plate_text")]
        if plates:
            row.plate_text = str(plates[-1].data["plate_text"])
