"""etle.store stage: the ticket database.

:mod:`etle.store.models` declares the tables; :mod:`etle.store.repository` holds
:class:`TicketStore`, the repository the pipeline writes through.
"""

from etle.store.models import PENDING_REVIEW, Base, Ticket
from etle.store.repository import (
    DEFAULT_URL,
    PlateCandidate,
    TicketIn,
    TicketStore,
    TicketView,
    new_reference,
)



def open_store(url: str = DEFAULT_URL) -> TicketStore:
    """Open (and create when new) the ticket database at ``url``; StoreError when unusable."""
    return TicketStore(url)


__all__ = [
    "open_store",
    "DEFAULT_URL",
    "PENDING_REVIEW",
    "Base",
    "PlateCandidate",
    "Ticket",
    "TicketIn",
    "TicketStore",
    "TicketView",
    "new_reference",
]
