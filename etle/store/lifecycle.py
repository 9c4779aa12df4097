"""The ticket lifecycle as data: statuses, the actions that move a ticket, and who may.

Written by hand from the E-TLE workflow (capture -> officer review -> confirmation letter ->
owner confirms -> payment, or the registration is blocked until paid)::

    pending_review -> approved | rejected
    approved       -> notice_sent | pending_review  (reopen, by a supervisor)
    rejected       -> pending_review               (reopen, by a supervisor)
    notice_sent    -> confirmed | blocked      (no confirmation by day 8)
    confirmed      -> paid | blocked           (no payment by day 15)
    blocked        -> paid                     (blocked until paid)

:data:`TRANSITIONS` is the single source of truth; :meth:`TicketStore.transition` refuses
anything else with :class:`TransitionError`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from etle.errors import StoreError
from etle.store.models import PENDING_REVIEW

APPROVED: Final = "approved"
REJECTED: Final = "rejected"
NOTICE_SENT: Final = "notice_sent"
CONFIRMED: Final = "confirmed"
PAID: Final = "paid"
BLOCKED: Final = "blocked"

STATUSES: Final = (PENDING_REVIEW, APPROVED, REJECTED, NOTICE_SENT, CONFIRMED, PAID, BLOCKED)
FINAL_STATUSES: Final = frozenset({REJECTED, PAID})

TRANSITIONS: Final = MappingProxyType(
    {
        PENDING_REVIEW: MappingProxyType({"approve": APPROVED, "reject": REJECTED}),
        APPROVED: MappingProxyType({"send_notice": NOTICE_SENT, "reopen": PENDING_REVIEW}),
        NOTICE_SENT: MappingProxyType({"confirm": CONFIRMED, "block": BLOCKED}),
        CONFIRMED: MappingProxyType({"pay": PAID, "block": BLOCKED}),
        BLOCKED: MappingProxyType({"pay": PAID}),
        REJECTED: MappingProxyType({"reopen": PENDING_REVIEW}),
        PAID: MappingProxyType({}),
    }
)
"""``{status: {action: next status}}``."""

CREATE: Final = "create"
CORRECT_PLATE: Final = "correct_plate"
PRUNE_EVIDENCE: Final = "prune_evidence"
REASSIGN_REFERENCE: Final = "reassign_reference"
REGISTRY_LOOKUP: Final = "registry_lookup"
"""The owner of an approved ticket was looked up in the vehicle registry (see :mod:`etle.registry`)."""
NON_TRANSITION_ACTIONS: Final = frozenset({CREATE, CORRECT_PLATE, PRUNE_EVIDENCE, REASSIGN_REFERENCE, REGISTRY_LOOKUP})

SYSTEM_PREFIX: Final = "system:"
"""Actors named ``system:<component>`` (the pipeline, the notice scheduler) need no user row."""


class TransitionError(StoreError):
    """A ticket cannot take this action now (wrong status, unknown action, lost a race)."""


def next_status(status: str, action: str) -> str:
    """The status after ``action`` on a ticket in ``status``; :class:`TransitionError` if not allowed."""
    allowed = TRANSITIONS.get(status)
    if allowed is None:
        raise TransitionError(f"unknown ticket status {status!r}")
    if action not in allowed:
        options = ", ".join(sorted(allowed)) or "none (final status)"
        raise TransitionError(f"cannot {action!r} a ticket in status {status!r}; allowed: {options}")
    return allowed[action]


def action_for(status: str, to_status: str) -> str:
    """The action that moves a ticket from ``status`` to ``to_status``."""
    for action, target in TRANSITIONS.get(status, {}).items():
        if target == to_status:
            return action
    raise TransitionError(f"no transition from {status!r} to {to_status!r}")
