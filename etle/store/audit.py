"""The review workflow and its audit trail: lifecycle transitions, plate corrections, and
reading a ticket's audit entries and plate reads.

:class:`AuditMixin` holds the :class:`etle.store.repository.TicketStore` methods that move
tickets through :mod:`etle.store.lifecycle` (each move writes its ``review_actions`` entry in
the same transaction; confirming or blocking issues the payment code), correct plates, and read
the audit log.  It builds on :class:`etle.store.tickets.TicketsMixin` (``get``, ``_plate_view``).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.base import _now, _one_line, log, new_payment_code, new_uid
from etle.store.models import PENDING_REVIEW, PlateRead, ReviewAction, Ticket
from etle.store.tickets import TicketsMixin
from etle.store.views import (
    REGISTRY_NOT_FOUND,
    ActionView,
    PlateReadView,
    TicketView,
    _action_view,
    _to_view,
    _utc,
)


class AuditMixin(TicketsMixin):
    """Lifecycle transitions, plate corrections and the audit log of a ticket."""

    def transition(
        self,
        id_or_reference: int | str,
        action: str,
        *,
        actor: str,
        reason: str = "",
        at: datetime | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> TicketView:
        """Apply a lifecycle ``action`` (``approve``, ``reject``, ``send_notice``, ``confirm``,
        ``pay``, ``block``) by ``actor`` and record it; :class:`TransitionError` when the ticket's
        status does not allow it (also when another writer changed it first)."""
        moment = _utc(at, "at") if at is not None else _now()
        try:
            with self._session(f"{action} a ticket") as session:
                row = self._row(session, id_or_reference, lock=True)
                before, after = self._transition_row(session, row, action, actor=actor, reason=reason,
                                                     moment=moment, data=data)
                ticket_id = row.id
        except IntegrityError as exc:  # pragma: no cover - uid collision
            raise StoreError(f"cannot record {action!r}: {_one_line(exc)}") from exc
        log.info("ticket %d: %s by %s (%s -> %s)", ticket_id, action, actor, before, after)
        view = self.get(ticket_id)
        assert view is not None
        return view

    def transition_many(
        self,
        moves: Sequence[tuple[int | str, str, str, Mapping[str, Any]]],
        *,
        actor: str,
        at: datetime | None = None,
    ) -> builtins.list[TicketView]:
        """Apply ``(ticket, action, reason, data)`` moves by ``actor`` in one transaction: all or
        nothing (a payment file is applied whole or not at all).  :class:`TransitionError` names
        the first ticket that cannot move; nothing is recorded then."""
        moment = _utc(at, "at") if at is not None else _now()
        ids: builtins.list[int] = []
        try:
            with self._session("apply transitions") as session:
                for ref, action, reason, data in moves:
                    row = self._row(session, ref, lock=True)
                    self._transition_row(session, row, action, actor=actor, reason=reason, moment=moment, data=data)
                    ids.append(row.id)
        except IntegrityError as exc:  # pragma: no cover - uid or payment code collision
            raise StoreError(f"cannot record transitions: {_one_line(exc)}") from exc
        log.info("%d transition(s) by %s", len(ids), actor)
        with self._session("read tickets") as session:
            rows = {r.id: r for r in session.scalars(select(Ticket).where(Ticket.id.in_(ids)))} if ids else {}
            return [_to_view(rows[i]) for i in ids]

    def _transition_row(self, session: Session, row: Ticket, action: str, *, actor: str, reason: str,
                        moment: datetime, data: Mapping[str, Any] | None) -> tuple[str, str]:
        """Move ``row`` by ``action`` inside ``session`` and write its audit entry; (before, after).

        One place for the lifecycle checks, so :meth:`send_notices` applies exactly the rules of
        :meth:`transition` while writing the notice register in the same transaction.
        """
        before = row.status
        after = lifecycle.next_status(before, action)
        if (action == "send_notice" and actor.startswith(lifecycle.SYSTEM_PREFIX)
                and (row.registry_mismatch or row.registry_status == REGISTRY_NOT_FOUND)):
            flag = row.registry_mismatch or "plate not in the vehicle registry"
            raise lifecycle.TransitionError(
                f"ticket {row.reference} is flagged by the registry lookup ({flag}): "
                f"a person must send its notice, never {actor}"
            )
        if action == "approve" and not row.plate_text:
            raise lifecycle.TransitionError(
                f"ticket {row.reference} has no confirmed plate (?): correct the plate from the "
                "evidence before approving it, or reject it"
            )
        user_id = self._user_id(session, actor)
        values: dict[str, Any] = {"status": after, "status_changed_at": moment}
        data = dict(data or {})
        if after in (lifecycle.CONFIRMED, lifecycle.BLOCKED) and not row.payment_code:
            # the owner pays with this code (etle.settlement); kept in the audit entry for sync
            values["payment_code"] = data["payment_code"] = new_payment_code()
        done = session.execute(
            update(Ticket).where(Ticket.id == row.id, Ticket.status == before)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise lifecycle.TransitionError(
                f"ticket {row.reference} changed while {action!r} was applied; reload and retry"
            )
        session.add(ReviewAction(
            uid=new_uid(), ticket_id=row.id, action=action, from_status=before, to_status=after,
            actor=actor, user_id=user_id, at=moment, reason=reason, data=data,
        ))
        return before, after

    def correct_plate(self, id_or_reference: int | str, text: str, *, actor: str, reason: str = "") -> TicketView:
        """Set the plate of a ticket under review to ``text`` (normalised) and record who did it."""
        plate = "".join(text.split()).replace("-", "").upper()
        if not plate:
            raise StoreError("a corrected plate must not be empty")
        with self._session("correct a plate") as session:
            row = self._row(session, id_or_reference, lock=True)
            if row.status != PENDING_REVIEW:
                raise lifecycle.TransitionError(
                    f"ticket {row.reference} is {row.status}: plates are corrected during review only"
                )
            user_id = self._user_id(session, actor)
            moment = _now()
            old = row.plate_text
            row.plate_text = plate
            session.add(PlateRead(
                ticket_id=row.id, rank=-1, text=plate, confidence=1.0, frame_index=-1, source="reviewer",
                chosen=True, actor=actor, created_at=moment,
            ))
            session.add(ReviewAction(
                uid=new_uid(), ticket_id=row.id, action=lifecycle.CORRECT_PLATE, from_status=row.status,
                to_status=row.status, actor=actor, user_id=user_id, at=moment, reason=reason,
                data={"plate_text": plate, "previous": old},
            ))
            ticket_id = row.id
        view = self.get(ticket_id)
        assert view is not None
        return view

    def actions(self, id_or_reference: int | str) -> builtins.list[ActionView]:
        """The audit log of a ticket, oldest first."""
        with self._session("read the audit log") as session:
            row = self._row(session, id_or_reference)
            rows = session.scalars(
                select(ReviewAction).where(ReviewAction.ticket_id == row.id).order_by(ReviewAction.at, ReviewAction.id)
            )
            return [_action_view(a, row.uid or "") for a in rows]

    def plate_reads(self, id_or_reference: int | str) -> builtins.list[PlateReadView]:
        with self._session("read plate reads") as session:
            row = self._row(session, id_or_reference)
            return [self._plate_view(p) for p in session.scalars(
                select(PlateRead).where(PlateRead.ticket_id == row.id).order_by(PlateRead.id))]

    def orphan_audit_ticket_ids(self) -> builtins.list[int]:
        """Ticket ids the audit log names that have no ticket row (a deleted ticket)."""
        query = (
            select(ReviewAction.ticket_id).distinct()
            .where(~select(Ticket.id).where(Ticket.id == ReviewAction.ticket_id).exists())
            .order_by(ReviewAction.ticket_id)
        )
        with self._session("check the audit log") as session:
            return [int(i) for i in session.scalars(query)]
