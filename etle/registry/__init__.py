"""etle.registry: who owns the vehicle of an approved ticket.

In E-TLE the approved capture goes to the registered owner.  One interface,
:class:`Registry` with ``lookup(plate) -> LookupResult``, hides where the answer comes from:

* :class:`CsvRegistry` / :class:`SqliteRegistry` -- a file, for trials and offline sites (a
  fictitious trial registry ships as ``etle/data/registry_trial.csv``);
* :class:`HttpRegistry` -- a real registry service behind HTTP, with timeouts, bounded retries,
  a TTL cache, and an ``unavailable`` state instead of exceptions.

:func:`open_registry` picks one from a spec; :func:`vehicle_mismatch` compares the registered
vehicle with the one the camera saw; :func:`lookup_ticket` does both for a stored ticket and
records the answer with the ticket (:meth:`etle.store.TicketStore.record_owner_lookup`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from etle.config.settings import settings
from etle.errors import ConfigError
from etle.registry.base import (
    FOUND,
    NOT_FOUND,
    UNAVAILABLE,
    LookupResult,
    OwnerRecord,
    Registry,
    normalise_plate,
    record_from_mapping,
)
from etle.registry.http import HttpRegistry
from etle.registry.local import CsvRegistry, SqliteRegistry
from etle.registry.mismatch import vehicle_mismatch

if TYPE_CHECKING:
    from etle.store import TicketStore, TicketView

__all__ = [
    "FOUND",
    "NOT_FOUND",
    "REGISTRY_ACTOR",
    "TRIAL_REGISTRY",
    "UNAVAILABLE",
    "CsvRegistry",
    "HttpRegistry",
    "LookupResult",
    "OwnerRecord",
    "Registry",
    "SqliteRegistry",
    "lookup_ticket",
    "normalise_plate",
    "open_registry",
    "record_from_mapping",
    "vehicle_mismatch",
]

TRIAL_REGISTRY = Path(__file__).resolve().parent.parent / "data" / "registry_trial.csv"
"""The shipped registry of invented owners (``--registry trial``); never real people."""

REGISTRY_ACTOR = "system:registry"
"""The audit-log actor of lookups made by etle."""


def open_registry(
    spec: str | Path,
    *,
    timeout_s: float = 5.0,
    retries: int = 2,
    cache_ttl_s: float = 600.0,
    token: str | None = None,
) -> Registry:
    """The registry named by ``spec``: ``trial`` (the shipped fictitious one), a ``.csv`` file,
    ``sqlite:///path.db`` (table ``vehicles``), or an ``http(s)://`` base URL (``token``
    defaults to ``$ETLE_REGISTRY_TOKEN``).  :class:`ConfigError` for anything else or a bad file.
    """
    text = str(spec).strip()
    if not text:
        raise ConfigError("no vehicle registry given: pass --registry (or set ETLE_REGISTRY)")
    if text == "trial":
        return CsvRegistry(TRIAL_REGISTRY)
    lower = text.lower()
    if lower.startswith(("http://", "https://")):
        return HttpRegistry(text, timeout_s=timeout_s, retries=retries, cache_ttl_s=cache_ttl_s,
                            token=token if token is not None else settings().registry_token)
    if lower.startswith("sqlite:///"):
        return SqliteRegistry(text[len("sqlite:///"):])
    if lower.endswith(".csv"):
        return CsvRegistry(text.removeprefix("file://"))
    if lower.endswith((".db", ".sqlite", ".sqlite3")):
        return SqliteRegistry(text)
    raise ConfigError(
        f"vehicle registry {text!r}: not a .csv file, sqlite:///file.db or http(s):// URL (or 'trial')")


def lookup_ticket(
    store: TicketStore,
    registry: Registry,
    ticket: TicketView | int | str,
    *,
    actor: str = REGISTRY_ACTOR,
) -> tuple[LookupResult, str | None]:
    """Look up the owner of a stored ticket's plate and record the answer with the ticket.

    Returns the lookup and the mismatch reason (None when the vehicles agree or nothing was
    found).  A mismatch is stored as the ticket's review flag; the status never changes here.
    """
    from etle.store import TicketView

    from etle.errors import StoreError

    view = ticket if isinstance(ticket, TicketView) else store.get(ticket)
    if view is None:
        raise StoreError(f"no ticket {ticket!r}")
    if not normalise_plate(view.plate_text):
        raise StoreError(f"ticket {view.reference} has no plate to look up")
    result = registry.lookup(view.plate_text)
    mismatch = None
    if result.record is not None:
        mismatch = vehicle_mismatch(result.record, view.vehicle_label, view.plate_colour)
    store.record_owner_lookup(
        view.id, status=result.status, source=result.source, reason=result.reason,
        owner=result.record.as_dict() if result.record is not None else None,
        mismatch=mismatch or "", at=result.checked_at, actor=actor,
    )
    return result, mismatch
