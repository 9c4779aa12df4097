"""After approval: owner lookups, the notice register, approvals and payments.

:class:`NoticesMixin` holds the :class:`etle.store.repository.TicketStore` methods that record
vehicle-registry lookups (:func:`_apply_lookup`, shared with sync), find tickets waiting for
their owner, record letters in the notice register (``send_notice`` in the same transaction),
list a day's approvals, and find tickets by payment code or waiting for confirmation (what
:mod:`etle.settlement` reads).  It builds on :class:`etle.store.audit.AuditMixin`
(``_transition_row``, ``get``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.audit import AuditMixin
from etle.store.base import _now, _one_line, log, new_uid, normalise_payment_code
from etle.store.models import PENDING_REVIEW, Notice, ReviewAction, Ticket
from etle.store.views import (
    REGISTRY_FOUND,
    REGISTRY_NOT_FOUND,
    REGISTRY_STATUSES,
    REGISTRY_UNAVAILABLE,
    Approval,
    NoticeIn,
    NoticeView,
    TicketView,
    _notice_view,
    _to_view,
    _utc,
)


def _apply_lookup(row: Ticket, data: Mapping[str, Any], at: datetime) -> None:
    """Set a ticket's owner columns from a ``registry_lookup`` audit entry's data.

    One function for the lookup itself and for replaying it from another store (sync), so both
    end in the same state.  ``found`` replaces the owner; ``not_found`` clears it; ``unavailable``
    changes nothing when an earlier answer is stored (a registry outage must not erase an owner)
    and otherwise marks the ticket as waiting for the registry.
    """
    status = str(data.get("status") or "")
    if status == REGISTRY_UNAVAILABLE and row.registry_status in (REGISTRY_FOUND, REGISTRY_NOT_FOUND):
        return
    owner = data.get("owner") if status == REGISTRY_FOUND else None
    owner = owner if isinstance(owner, Mapping) else {}
    row.owner_name = str(owner.get("owner_name") or "")[:256]
    row.owner_address = str(owner.get("owner_address") or "")
    row.vehicle_make = str(owner.get("make") or "")[:64]
    row.vehicle_colour = str(owner.get("vehicle_colour") or "")[:64]
    row.registry_status = status
    row.registry_checked_at = at
    row.registry_mismatch = str(data.get("mismatch") or "")[:256] if status == REGISTRY_FOUND else ""


class NoticesMixin(AuditMixin):
    """Owner lookups, the notice register, approvals and payment codes."""

    def record_owner_lookup(
        self,
        id_or_reference: int | str,
        *,
        status: str,
        actor: str,
        source: str = "",
        reason: str = "",
        owner: Mapping[str, Any] | None = None,
        mismatch: str = "",
        at: datetime | None = None,
    ) -> TicketView:
        """Record a vehicle-registry lookup of an approved ticket (see :mod:`etle.registry`).

        ``status`` is ``found`` (``owner``: the record's fields ``owner_name``, ``owner_address``,
        ``make``, ``vehicle_colour``, ...), ``not_found`` or ``unavailable`` (``reason`` says why).
        ``mismatch`` is the review flag when the registered vehicle disagrees with the camera's.
        The owner columns are set as :func:`_apply_lookup` says and a ``registry_lookup`` audit
        entry keeps the whole answer (it is what sync replays).  The status never changes: a
        flagged ticket waits for a person (:meth:`transition` refuses a system ``send_notice``).
        Lookups are made after approval only (:class:`TransitionError` before).
        """
        if status not in REGISTRY_STATUSES:
            raise ValueError(f"unknown registry status {status!r}; one of {REGISTRY_STATUSES}")
        if status == REGISTRY_FOUND and not owner:
            raise ValueError("a 'found' lookup needs the owner record")
        moment = _utc(at, "at") if at is not None else _now()
        data: dict[str, Any] = {"status": status, "registry": source}
        if reason:
            data["reason"] = reason
        if status == REGISTRY_FOUND:
            data["owner"] = {k: v for k, v in dict(owner or {}).items() if v not in (None, "")}
            if mismatch:
                data["mismatch"] = mismatch
        with self._session("record an owner lookup") as session:
            row = self._row(session, id_or_reference, lock=True)
            if row.status in (PENDING_REVIEW, lifecycle.REJECTED):
                raise lifecycle.TransitionError(
                    f"ticket {row.reference} is {row.status}: owners are looked up after approval only"
                )
            user_id = self._user_id(session, actor)
            _apply_lookup(row, data, moment)
            session.add(ReviewAction(
                uid=new_uid(), ticket_id=row.id, action=lifecycle.REGISTRY_LOOKUP, from_status=row.status,
                to_status=row.status, actor=actor, user_id=user_id, at=moment,
                reason=mismatch if status == REGISTRY_FOUND else reason, data=data,
            ))
            ticket_id = row.id
        log.info("ticket %d: registry lookup %s%s", ticket_id, status, f" (mismatch: {mismatch})" if mismatch else "")
        view = self.get(ticket_id)
        assert view is not None
        return view

    def awaiting_owner(self, *, status: str = lifecycle.APPROVED, again: bool = False,
                       limit: int = 1000) -> builtins.list[TicketView]:
        """Tickets in ``status`` with a plate and no registry answer yet (never looked up, or the
        registry was unavailable), oldest first; ``again`` includes those already answered."""
        query = select(Ticket).where(Ticket.status == status, Ticket.plate_text != "")
        if not again:
            query = query.where(Ticket.registry_status.in_(("", REGISTRY_UNAVAILABLE)))
        query = query.order_by(Ticket.occurred_at, Ticket.id).limit(limit)
        with self._session("find tickets awaiting their owner") as session:
            return [_to_view(r) for r in session.scalars(query)]

    def by_payment_codes(self, codes: Iterable[str]) -> dict[str, TicketView]:
        """``{payment code: ticket}`` for the codes that name a ticket (codes normalised)."""
        wanted = sorted({normalise_payment_code(c) for c in codes if c})
        found: dict[str, TicketView] = {}
        with self._session("find tickets by payment code") as session:
            for i in range(0, len(wanted), 500):
                for row in session.scalars(select(Ticket).where(Ticket.payment_code.in_(wanted[i:i + 500]))):
                    found[row.payment_code or ""] = _to_view(row)
        return found

    def awaiting_confirmation(self, *, limit: int = 100000) -> builtins.list[tuple[TicketView, NoticeView | None]]:
        """Every ``notice_sent`` ticket with its latest notice-register row (``None`` when it has
        none, e.g. a notice sent through :meth:`transition`), oldest notice first."""
        with self._session("find tickets awaiting confirmation") as session:
            rows = builtins.list(session.scalars(
                select(Ticket).where(Ticket.status == lifecycle.NOTICE_SENT).order_by(Ticket.id).limit(limit)))
            latest: dict[int, Notice] = {}
            ids = [r.id for r in rows]
            for i in range(0, len(ids), 500):
                for n in session.scalars(select(Notice).where(Notice.ticket_id.in_(ids[i:i + 500])).order_by(Notice.id)):
                    latest[n.ticket_id] = n
            out = [(_to_view(r), _notice_view(latest[r.id]) if r.id in latest else None) for r in rows]
        out.sort(key=lambda tn: (tn[1].deadline if tn[1] else date.max, tn[0].id))
        return out

    def send_notices(self, notices: Sequence[NoticeIn], *, actor: str,
                     at: datetime | None = None) -> builtins.list[NoticeView]:
        """Record letters produced for posting: each ticket takes ``send_notice`` (approved ->
        notice_sent, audited, with the lifecycle's rules: a ``system:`` actor is refused for a
        flagged ticket) and gets a row in the notice register.

        All or nothing, in one transaction: a batch file is either wholly registered or not at
        all, so a failure (a ticket another writer moved first) leaves nothing half-sent and the
        batch can simply be made again.  :class:`TransitionError` names the ticket that failed.
        """
        moment = _utc(at, "at") if at is not None else _now()
        rows: builtins.list[Notice] = []
        try:
            with self._session("record notices") as session:
                for n in notices:
                    row = self._row(session, n.ticket_id, lock=True)
                    self._transition_row(session, row, "send_notice", actor=actor, reason="", moment=moment, data={
                        "batch_file": n.batch_file, "batch_sha256": n.batch_sha256,
                        "notice_date": n.notice_date.isoformat(), "deadline": n.deadline.isoformat(),
                    })
                    notice = Notice(
                        ticket_id=row.id, reference=row.reference, notice_date=n.notice_date, deadline=n.deadline,
                        batch_file=n.batch_file[:256], batch_sha256=n.batch_sha256,
                        addressee_name=n.addressee_name[:256], addressee_address=n.addressee_address,
                        created_at=moment, actor=actor,
                    )
                    session.add(notice)
                    rows.append(notice)
                session.flush()
                views = [_notice_view(r) for r in rows]
        except IntegrityError as exc:  # pragma: no cover - uid collision
            raise StoreError(f"cannot record notices: {_one_line(exc)}") from exc
        log.info("%d notice(s) recorded by %s", len(views), actor)
        return views

    def notices(self, *, notice_date: date | None = None, ticket: int | str | None = None,
                limit: int = 10000) -> builtins.list[NoticeView]:
        """The notice register, oldest first; only one notice date or one ticket when given."""
        query = select(Notice)
        if notice_date is not None:
            query = query.where(Notice.notice_date == notice_date)
        with self._session("read the notice register") as session:
            if ticket is not None:
                query = query.where(Notice.ticket_id == self._row(session, ticket).id)
            return [_notice_view(r) for r in session.scalars(query.order_by(Notice.id).limit(limit))]

    def approvals_between(self, since: datetime, until: datetime) -> builtins.list[Approval]:
        """Tickets whose latest approval lies in [``since``, ``until``), whatever their status now
        (a day's letters must also see the tickets already sent, to list them as sent)."""
        lo, hi = _utc(since, "since"), _utc(until, "until")
        query = (select(ReviewAction).where(ReviewAction.action == "approve", ReviewAction.at >= lo)
                 .order_by(ReviewAction.at, ReviewAction.id))
        with self._session("find approvals") as session:
            latest: dict[int, ReviewAction] = {a.ticket_id: a for a in session.scalars(query)}
            chosen = {tid: a for tid, a in latest.items() if a.at < hi}
            if not chosen:
                return []
            tickets = {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(chosen)))}
            return [Approval(_to_view(tickets[tid]), a.at, a.actor)
                    for tid, a in sorted(chosen.items(), key=lambda kv: (kv[1].at, kv[0])) if tid in tickets]
