"""The review actions the pages (:mod:`etle.web.routers.review`) and the JSON API
(:mod:`etle.web.routers.api`) share: approve, reject, correct the plate, reopen.

Each checks the actor's role and turns a refused transition into HTTP 409 (a store error: 400).
"""

from __future__ import annotations

import re

from fastapi import HTTPException

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.repository import TicketStore, TicketView
from etle.web.deps import Actor, need

REJECT_REASONS = ("wrong_plate", "occluded", "emergency", "not_violation", "duplicate", "other")
_PLATE = re.compile(r"^[A-Z0-9]{1,12}$")


def do_action(store: TicketStore, t: TicketView, actor: Actor, action: str, reason: str = "",
              plate: str = "") -> TicketView:
    need(actor, "reviewer")
    try:
        if action == "approve":
            return store.transition(t.id, "approve", actor=actor.username)
        if action == "reject":
            if reason not in REJECT_REASONS:
                raise HTTPException(400, "unknown reject reason")
            return store.transition(t.id, "reject", actor=actor.username, reason=reason,
                                    data={"reason_code": reason})
        if action == "plate":
            norm = "".join(plate.split()).replace("-", "").upper()
            if not _PLATE.fullmatch(norm):
                raise HTTPException(400, "a plate is 1-12 letters and digits")
            return store.correct_plate(t.id, norm, actor=actor.username, reason=reason)
    except lifecycle.TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from exc
    raise HTTPException(404, "unknown action")


def reject_reason(code: str, text: str) -> str:
    text = " ".join(text.split())[:500]
    if code == "other":
        return f"other: {text}" if text else "other"
    return code


def reopen(store: TicketStore, t: TicketView, actor: Actor, reason: str) -> TicketView:
    need(actor, "supervisor")
    try:
        return store.transition(t.id, "reopen", actor=actor.username, reason=" ".join(reason.split())[:500])
    except lifecycle.TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc
