"""etle.store stage: the ticket database.

:mod:`etle.store.models` declares the tables; :mod:`etle.store.migrations` (Alembic, run on
open by :mod:`etle.store.migrate`) owns the schema; :mod:`etle.store.lifecycle` is the review
workflow as data; :mod:`etle.store.repository` holds :class:`TicketStore`, the repository the
pipeline, the review tools and store-and-forward write through (composed of one mixin per
concern on :mod:`etle.store.base`, its records in :mod:`etle.store.views`);
:mod:`etle.store.export` writes tickets as CSV or JSON.
"""

from etle.store.lifecycle import STATUSES, TRANSITIONS, TransitionError
from etle.store.models import PENDING_REVIEW, Base, Ticket
from etle.store.repository import (
    DEFAULT_URL,
    ActionView,
    CameraIn,
    EvidenceFileIn,
    NoticeIn,
    NoticeView,
    PlateCandidate,
    PlateReadView,
    TicketIn,
    TicketRecord,
    TicketStore,
    TicketView,
    UserView,
    new_reference,
    new_uid,
)


def open_store(url: str = DEFAULT_URL) -> TicketStore:
    """Open the ticket database at ``url``, creating or migrating its schema; StoreError when unusable."""
    return TicketStore(url)


__all__ = [
    "open_store",
    "DEFAULT_URL",
    "PENDING_REVIEW",
    "STATUSES",
    "TRANSITIONS",
    "ActionView",
    "Base",
    "CameraIn",
    "EvidenceFileIn",
    "NoticeIn",
    "NoticeView",
    "PlateCandidate",
    "PlateReadView",
    "Ticket",
    "TicketIn",
    "TicketRecord",
    "TicketStore",
    "TicketView",
    "TransitionError",
    "UserView",
    "new_reference",
    "new_uid",
]
