"""Retention: finding rejected tickets whose evidence may be pruned, and recording the pruning;
finding synced tickets whose local media an edge box may remove, and recording that.

:class:`RetentionMixin` holds the :class:`etle.store.repository.TicketStore` methods that list
prunable tickets and mark their evidence files pruned (with a ``prune_evidence`` audit entry),
and those that list offloadable tickets and mark them offloaded (a local fact, no audit entry:
the ticket and its evidence are unchanged, at the central store).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.base import StoreBase, _now, new_uid
from etle.store.models import EvidenceFile, ReviewAction, Ticket
from etle.store.views import TicketView, _to_view, _utc


class RetentionMixin(StoreBase):
    """Prunable tickets and pruned evidence."""

    def prunable(self, before: datetime, *, limit: int = 1000) -> builtins.list[TicketView]:
        """Rejected tickets whose rejection is older than ``before`` and whose media is not pruned."""
        pruned_any = select(EvidenceFile.ticket_id).where(EvidenceFile.pruned_at.is_not(None))
        query = (
            select(Ticket)
            .where(Ticket.status == lifecycle.REJECTED, Ticket.status_changed_at < _utc(before, "before"),
                   Ticket.id.not_in(pruned_any))
            .order_by(Ticket.id).limit(limit)
        )
        with self._session("find prunable tickets") as session:
            return [_to_view(r) for r in session.scalars(query)]

    def mark_pruned(self, ticket_id: int, names: Sequence[str], *, actor: str, reason: str,
                    at: datetime | None = None, tombstone_sha256: str = "") -> None:
        """Record that retention removed ``names`` of the ticket's evidence (audit entry included)."""
        moment = _utc(at, "at") if at is not None else _now()
        with self._session("record pruned evidence") as session:
            row = self._row(session, ticket_id, lock=True)
            if row.status != lifecycle.REJECTED:
                raise lifecycle.TransitionError(f"ticket {row.reference} is {row.status}: only rejected evidence is pruned")
            user_id = self._user_id(session, actor)
            session.execute(
                update(EvidenceFile).where(EvidenceFile.ticket_id == row.id, EvidenceFile.name.in_(builtins.list(names)))
                .values(pruned_at=moment).execution_options(synchronize_session=False)
            )
            session.add(ReviewAction(
                uid=new_uid(), ticket_id=row.id, action=lifecycle.PRUNE_EVIDENCE, from_status=row.status,
                to_status=row.status, actor=actor, user_id=user_id, at=moment, reason=reason,
                data={"files": sorted(names), "tombstone_sha256": tombstone_sha256},
            ))

    def offloadable(self, *, limit: int = 100, after_id: int = 0) -> builtins.list[TicketView]:
        """Tickets synced to the central store whose media are still here, oldest first (by id,
        from ``after_id``): what an edge box may remove to free disk space."""
        query = (
            select(Ticket)
            .where(Ticket.synced_at.is_not(None), Ticket.offloaded_at.is_(None), Ticket.id > after_id)
            .order_by(Ticket.id).limit(limit)
        )
        with self._session("find offloadable tickets") as session:
            return [_to_view(r) for r in session.scalars(query)]

    def mark_offloaded(self, ticket_id: int, *, at: datetime | None = None) -> None:
        """Record that this store's copy of the ticket's media was removed (the central store has them)."""
        moment = _utc(at, "at") if at is not None else _now()
        with self._session("record offloaded evidence") as session:
            row = self._row(session, ticket_id, lock=True)
            if row.synced_at is None:
                raise StoreError(f"ticket {row.reference} is not synced: its media are the only copy")
            row.offloaded_at = moment
