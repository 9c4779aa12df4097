"""The ticket repository: add, find and count tickets in any SQLAlchemy database.

:class:`TicketStore` is the only writer of the ``tickets`` table in the pipeline.  Adding is
idempotent on the dedupe key (camera, source, run, track, rule): the same track and rule of one
run never yields two tickets, even when two writers race.  Database failures surface as
:class:`etle.errors.StoreError` with a one-line message; the URL's password is never shown.
"""

from __future__ import annotations

import builtins
import logging
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from etle.errors import StoreError
from etle.store.models import PENDING_REVIEW, Base, Ticket

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///etle.db"
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""Reference-code characters: digits and capitals without the look-alikes 0, O, 1 and I."""
REFERENCE_LENGTH = 6
_INSERT_ATTEMPTS = 5


def new_reference(day: date, *, prefix: str = "ETLE", length: int = REFERENCE_LENGTH) -> str:
    """A random human-friendly reference such as ``ETLE-20261128-7KQ4MZ``."""
    code = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(length))
    return f"{prefix}-{day:%Y%m%d}-{code}"


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class PlateCandidate:
    """One plate read kept with the ticket."""

    text: str
    confidence: float
    frame_index: int = -1

    @classmethod
    def coerce(cls, value: PlateCandidate | Mapping[str, Any]) -> PlateCandidate:
        if isinstance(value, PlateCandidate):
            return value
        return cls(
            text=str(value["text"]),
            confidence=float(value["confidence"]),
            frame_index=int(value.get("frame_index", -1)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": self.confidence, "frame_index": self.frame_index}


@dataclass(frozen=True, slots=True)
class TicketIn:
    """A ticket to add.  ``occurred_at`` must be timezone-aware (it is stored as UTC).

    ``local_time`` is the camera-local ISO 8601 time with offset; its date dates the reference
    code (the UTC date of ``occurred_at`` where it does not parse).  ``evidence_path`` is the
    bundle's path relative to the evidence root.  ``plate_candidates`` accepts mappings with
    ``text``, ``confidence`` and ``frame_index``.
    """

    camera_id: str
    rule: str
    track_id: int
    occurred_at: datetime
    source: str = ""
    run_id: str = ""
    camera_name: str = ""
    location: str = ""
    local_time: str = ""
    article: str | None = None
    fine: int | None = None
    vehicle_label: str = ""
    frame_index: int = -1
    plate_text: str = ""
    plate_confidence: float = 0.0
    plate_candidates: tuple[PlateCandidate, ...] = ()
    evidence_path: str = ""
    manifest_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.camera_id or not self.rule:
            raise ValueError("a ticket needs a camera_id and a rule")
        object.__setattr__(self, "occurred_at", _utc(self.occurred_at, "occurred_at"))
        object.__setattr__(
            self, "plate_candidates", tuple(PlateCandidate.coerce(c) for c in self.plate_candidates)
        )

    @property
    def dedupe_key(self) -> tuple[str, str, str, int, str]:
        return (self.camera_id, self.source, self.run_id, self.track_id, self.rule)

    @property
    def reference_day(self) -> date:
        try:
            return datetime.fromisoformat(self.local_time).date()
        except ValueError:
            return self.occurred_at.date()


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketView(TicketIn):
    """A stored ticket: what was added plus its id, reference code, status and creation time."""

    id: int
    reference: str
    status: str = PENDING_REVIEW
    created_at: datetime


_IN_FIELDS = tuple(f.name for f in fields(TicketIn))


def _to_view(row: Ticket) -> TicketView:
    values: dict[str, Any] = {name: getattr(row, name) for name in _IN_FIELDS}
    values["plate_candidates"] = tuple(row.plate_candidates or ())
    return TicketView(
        **values, id=row.id, reference=row.reference, status=row.status, created_at=row.created_at
    )


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


class TicketStore:
    """Tickets in the database at ``url`` (any SQLAlchemy URL; SQLite gets WAL and foreign keys).

    The tables are created when missing (``create=False`` skips that, for migrated databases).
    Raises :class:`StoreError` when the URL is invalid, its driver is missing, or the database
    cannot be reached.
    """

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
            self._url = parsed.render_as_string(hide_password=True)
            self._engine: Engine = create_engine(parsed, echo=echo)
        except ArgumentError as exc:  # NoSuchModuleError (missing driver) is one too
            raise StoreError(f"invalid ticket database URL {url!r}: {_one_line(exc)}") from exc
        except ImportError as exc:
            raise StoreError(f"ticket database driver for {url!r} is not installed: {exc}") from exc
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
        try:
            if create:
                Base.metadata.create_all(self._engine)
            else:
                with self._engine.connect():
                    pass
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise StoreError(f"cannot open ticket database {self._url}: {_one_line(exc)}") from exc
        log.debug("ticket store opened: %s", self._url)

    def __repr__(self) -> str:
        return f"TicketStore({self._url!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> TicketStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"ticket database {self._url}: cannot {action}: {_one_line(exc)}") from exc

    # -- writing -----------------------------------------------------------------------------

    def find_duplicate(self, ticket: TicketIn) -> int | None:
        """The id of the stored ticket with the dedupe key of ``ticket``, if any."""
        camera_id, source, run_id, track_id, rule = ticket.dedupe_key
        with self._session("look up a ticket") as session:
            return session.scalar(
                select(Ticket.id).where(
                    Ticket.camera_id == camera_id,
                    Ticket.source == source,
                    Ticket.run_id == run_id,
                    Ticket.track_id == track_id,
                    Ticket.rule == rule,
                )
            )

    def add_or_get(self, ticket: TicketIn) -> tuple[int, bool]:
        """``(id, True)`` for a new ticket, ``(existing id, False)`` for a duplicate key."""
        values: dict[str, Any] = {name: getattr(ticket, name) for name in _IN_FIELDS}
        values["plate_candidates"] = [c.as_dict() for c in ticket.plate_candidates]
        last = ""
        for _ in range(_INSERT_ATTEMPTS):
            existing = self.find_duplicate(ticket)
            if existing is not None:
                log.debug("ticket for %s already stored as %d", ticket.dedupe_key, existing)
                return existing, False
            row = Ticket(reference=new_reference(ticket.reference_day), **values)
            try:
                with self._session("add a ticket") as session:
                    session.add(row)
                    session.flush()
                    ticket_id = row.id
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

    def add(self, ticket: TicketIn) -> int:
        """Store ``ticket`` and return its id; a ticket with the same dedupe key returns that id."""
        return self.add_or_get(ticket)[0]

    # -- reading -----------------------------------------------------------------------------

    def get(self, id_or_reference: int | str) -> TicketView | None:
        """The ticket with this id (int or digits) or reference code (case-insensitive)."""
        if isinstance(id_or_reference, int) or str(id_or_reference).strip().isdigit():
            where = Ticket.id == int(id_or_reference)
        else:
            where = Ticket.reference == str(id_or_reference).strip().upper()
        with self._session("read a ticket") as session:
            row = session.scalars(select(Ticket).where(where)).one_or_none()
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
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TicketView]:
        """Tickets matching every given filter, newest occurrence first.

        ``since`` is inclusive and ``until`` exclusive (both timezone-aware); ``plate`` matches a
        part of the plate text, ignoring case, spaces and dashes.
        """
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit}, {offset}")
        query = select(Ticket)
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
        query = query.order_by(Ticket.occurred_at.desc(), Ticket.id.desc()).limit(limit).offset(offset)
        with self._session("list tickets") as session:
            return [_to_view(row) for row in session.scalars(query)]

    def count_by_status(self) -> dict[str, int]:
        """``{status: number of tickets}`` for the statuses present."""
        with self._session("count tickets") as session:
            rows = session.execute(select(Ticket.status, func.count()).group_by(Ticket.status))
            return {status: int(n) for status, n in rows}
