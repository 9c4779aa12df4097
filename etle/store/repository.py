"""The ticket repository: add, find, review, export and sync tickets in any SQLAlchemy database.

:class:`TicketStore` is the only writer of the ticket tables.  Adding is idempotent on the dedupe
key (camera, source, run, track, rule) and on the ticket's stable ``uid``: the same track and
rule of one run never yields two tickets, even when two writers race, and a sync retry never
duplicates.  Every change of a ticket writes an entry to the append-only audit log
(``review_actions``) in the same transaction.  The schema is migrated to the newest revision
when a store opens (:mod:`etle.store.migrate`).

SQLite (the embedded default) runs in WAL mode with foreign keys, and every transaction starts
with ``BEGIN IMMEDIATE`` so DDL is transactional and writers queue on ``busy_timeout`` rather
than failing on lock upgrades.  PostgreSQL serves a central deployment.  Database failures
surface as :class:`etle.errors.StoreError` with a one-line message; the URL's password is never
shown.
"""

from __future__ import annotations

import builtins
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.models import (
    PENDING_REVIEW,
    Camera,
    EvidenceFile,
    Notice,
    PlateRead,
    ReviewAction,
    SiteKey,
    SyncState,
    Ticket,
    User,
)

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///etle.db"
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""Reference-code characters: digits and capitals without the look-alikes 0, O, 1 and I."""
REFERENCE_LENGTH = 6
PAYMENT_CODE_LENGTH = 12
"""Payment codes: 12 random characters of :data:`REFERENCE_ALPHABET` (60 bits; not derived
from the reference, so a reference printed on a letter does not give away the code)."""
PIPELINE_ACTOR = "system:pipeline"
_INSERT_ATTEMPTS = 5
_T = TypeVar("_T")


def new_reference(day: date, *, prefix: str = "ETLE", length: int = REFERENCE_LENGTH) -> str:
    """A random human-friendly reference such as ``ETLE-20261128-7KQ4MZ``."""
    code = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(length))
    return f"{prefix}-{day:%Y%m%d}-{code}"


def new_payment_code(length: int = PAYMENT_CODE_LENGTH) -> str:
    """A random payment code such as ``7KQ4MZ2HX9TB`` (issued when a ticket is confirmed or blocked)."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(length))


def normalise_payment_code(text: str) -> str:
    """A payment code as stored: capitals, without spaces or dashes (what a bank file may add)."""
    return "".join(text.split()).replace("-", "").upper()


def new_uid() -> str:
    """A stable identifier (32 hex digits) for a ticket or an audit entry."""
    return uuid.uuid4().hex


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------
# records


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
class EvidenceFileIn:
    """One file of an evidence bundle (``role``: overview, original, closeup, plate, clip, manifest)."""

    name: str
    sha256: str
    bytes: int
    role: str = ""
    pruned_at: datetime | None = None

    @classmethod
    def coerce(cls, value: EvidenceFileIn | Mapping[str, Any]) -> EvidenceFileIn:
        if isinstance(value, EvidenceFileIn):
            return value
        pruned = value.get("pruned_at")
        return cls(
            name=str(value["name"]), sha256=str(value["sha256"]), bytes=int(value["bytes"]),
            role=str(value.get("role", "")),
            pruned_at=datetime.fromisoformat(pruned) if isinstance(pruned, str) else pruned,
        )


@dataclass(frozen=True, slots=True)
class TicketIn:
    """A ticket to add.  ``occurred_at`` must be timezone-aware (it is stored as UTC).

    ``local_time`` is the camera-local ISO 8601 time with offset; its date dates the reference
    code (the UTC date of ``occurred_at`` where it does not parse).  ``evidence_path`` is where
    the bundle lies for this store; ``evidence_key`` is its path relative to the evidence root
    (what sync and verify use).  ``uid`` is the stable identity (generated when empty);
    ``chain_seq`` the bundle's place in the camera's manifest chain.  ``plate_colour`` and
    ``plate_category`` are the plate's background colour and the vehicle category it stands for
    (empty where unknown).  ``plate_candidates``
    accepts mappings with ``text``, ``confidence`` and ``frame_index``; ``evidence_files``
    mappings with ``name``, ``sha256``, ``bytes`` and ``role``.
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
    uid: str = ""
    bundle_id: str = ""
    evidence_key: str = ""
    chain_seq: int | None = None
    evidence_files: tuple[EvidenceFileIn, ...] = ()
    plate_colour: str = ""
    plate_category: str = ""

    def __post_init__(self) -> None:
        if not self.camera_id or not self.rule:
            raise ValueError("a ticket needs a camera_id and a rule")
        object.__setattr__(self, "occurred_at", _utc(self.occurred_at, "occurred_at"))
        object.__setattr__(
            self, "plate_candidates", tuple(PlateCandidate.coerce(c) for c in self.plate_candidates)
        )
        object.__setattr__(self, "evidence_files", tuple(EvidenceFileIn.coerce(f) for f in self.evidence_files))

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
    """A stored ticket: what was added plus its id, reference code, status and times.

    The owner fields come from the vehicle-registry lookup after approval
    (:meth:`TicketStore.record_owner_lookup`): ``registry_status`` is ``''`` before any lookup,
    then ``found``, ``not_found`` or ``unavailable``; ``registry_mismatch`` is a review flag
    (why the registered vehicle disagrees with the camera's), empty when there is none.
    """

    id: int
    reference: str
    status: str = PENDING_REVIEW
    created_at: datetime
    status_changed_at: datetime | None = None
    synced_at: datetime | None = None
    owner_name: str = ""
    owner_address: str = ""
    vehicle_make: str = ""
    vehicle_colour: str = ""
    registry_status: str = ""
    registry_checked_at: datetime | None = None
    registry_mismatch: str = ""
    payment_code: str = ""

    @property
    def needs_owner_review(self) -> bool:
        """Whether a person must look before a notice goes out (no automatic issuing): the
        registered vehicle disagrees with the camera's, or the registry does not know the plate."""
        return bool(self.registry_mismatch) or self.registry_status == REGISTRY_NOT_FOUND


@dataclass(frozen=True, slots=True)
class ActionView:
    """One audit-log entry of a ticket (``ticket_uid`` identifies the ticket across stores)."""

    id: int
    uid: str
    ticket_id: int
    ticket_uid: str
    action: str
    from_status: str | None
    to_status: str | None
    actor: str
    at: datetime
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlateReadView:
    rank: int
    text: str
    confidence: float
    frame_index: int
    source: str
    chosen: bool
    actor: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    username: str
    display_name: str
    role: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CameraIn:
    id: str
    name: str = ""
    location: str = ""
    lat: float | None = None
    lon: float | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A ticket with everything recorded about it: what export writes and sync transfers."""

    ticket: TicketView
    plate_reads: tuple[PlateReadView, ...]
    actions: tuple[ActionView, ...]
    camera: CameraIn | None = None


@dataclass(frozen=True, slots=True)
class NoticeIn:
    """A confirmation letter put into a batch for the post (see :meth:`TicketStore.send_notices`).

    ``addressee_name`` and ``addressee_address`` are what the letter prints, kept verbatim so the
    register shows where the letter went even if a later lookup changes the ticket's owner.
    """

    ticket_id: int
    notice_date: date
    deadline: date
    batch_file: str
    batch_sha256: str
    addressee_name: str
    addressee_address: str


@dataclass(frozen=True, slots=True)
class NoticeView:
    """One row of the notice register."""

    id: int
    ticket_id: int
    reference: str
    notice_date: date
    deadline: date
    batch_file: str
    batch_sha256: str
    addressee_name: str
    addressee_address: str
    created_at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class Approval:
    """A ticket with its latest approval: when and by whom (what a day's letters are made from)."""

    ticket: TicketView
    approved_at: datetime
    approver: str


def _notice_view(row: Notice) -> NoticeView:
    return NoticeView(
        id=row.id, ticket_id=row.ticket_id, reference=row.reference, notice_date=row.notice_date,
        deadline=row.deadline, batch_file=row.batch_file, batch_sha256=row.batch_sha256,
        addressee_name=row.addressee_name, addressee_address=row.addressee_address,
        created_at=row.created_at, actor=row.actor,
    )


_IN_FIELDS = tuple(f.name for f in fields(TicketIn))
_COLUMN_FIELDS = tuple(n for n in _IN_FIELDS if n != "evidence_files")
_OWNER_FIELDS = ("owner_name", "owner_address", "vehicle_make", "vehicle_colour", "registry_status",
                 "registry_checked_at", "registry_mismatch")
"""Ticket columns written by the registry lookup (revision 0004), not by the pipeline."""

REGISTRY_FOUND, REGISTRY_NOT_FOUND, REGISTRY_UNAVAILABLE = "found", "not_found", "unavailable"
REGISTRY_STATUSES = (REGISTRY_FOUND, REGISTRY_NOT_FOUND, REGISTRY_UNAVAILABLE)


def _to_view(row: Ticket) -> TicketView:
    values: dict[str, Any] = {name: getattr(row, name) for name in _COLUMN_FIELDS}
    values["plate_candidates"] = tuple(row.plate_candidates or ())
    values["uid"] = row.uid or ""
    values["evidence_files"] = tuple(
        EvidenceFileIn(name=f.name, sha256=f.sha256, bytes=f.bytes, role=f.role, pruned_at=f.pruned_at)
        for f in row.files
    )
    owner: dict[str, Any] = {name: getattr(row, name) for name in _OWNER_FIELDS}
    for name in _OWNER_FIELDS:
        if owner[name] is None and name != "registry_checked_at":
            owner[name] = ""
    return TicketView(
        **values, id=row.id, reference=row.reference, status=row.status, created_at=row.created_at,
        status_changed_at=row.status_changed_at, synced_at=row.synced_at, **owner,
        payment_code=row.payment_code or "",
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


def _action_view(row: ReviewAction, ticket_uid: str) -> ActionView:
    return ActionView(
        id=row.id, uid=row.uid, ticket_id=row.ticket_id, ticket_uid=ticket_uid, action=row.action,
        from_status=row.from_status, to_status=row.to_status, actor=row.actor, at=row.at, reason=row.reason,
        data=dict(row.data or {}),
    )


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy (see _sqlite_begin): the sqlite3 module's legacy
    # mode would run DDL outside transactions and upgrade read locks late.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _ticket_where(
    *,
    status: str | None = None,
    rule: str | None = None,
    camera: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    plate: str | None = None,
    run_ids: Sequence[str] | None = None,
) -> Select[tuple[Ticket]]:
    query = select(Ticket)
    if run_ids is not None:
        query = query.where(Ticket.run_id.in_(list(run_ids)))
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
    return query


class TicketStore:
    """Tickets in the database at ``url`` (any SQLAlchemy URL; SQLite gets WAL and foreign keys).

    The schema is migrated to the newest revision when needed (``create=False`` only checks that
    it is current).  Raises :class:`StoreError` when the URL is invalid, its driver is missing,
    or the database cannot be reached or migrated.
    """

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True, echo: bool = False,
                 connect_timeout_s: float = 10.0) -> None:
        try:
            parsed = make_url(url)
            self._url = parsed.render_as_string(hide_password=True)
            kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
            if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
                kwargs["connect_args"] = {"connect_timeout": max(1, int(connect_timeout_s))}
            self._engine: Engine = create_engine(parsed, **kwargs)
        except ArgumentError as exc:  # NoSuchModuleError (missing driver) is one too
            raise StoreError(f"invalid ticket database URL {url!r}: {_one_line(exc)}") from exc
        except ImportError as exc:
            raise StoreError(f"ticket database driver for {url!r} is not installed: {exc}") from exc
        if self._engine.dialect.name == "sqlite":
            database = parsed.database or ""
            if not create and database and database != ":memory:" and not database.startswith("file:"):
                from pathlib import Path

                if not Path(database).is_file():
                    self._engine.dispose()
                    raise StoreError(f"no ticket database at {database}")
            event.listen(self._engine, "connect", _sqlite_connect)
            event.listen(self._engine, "begin", _sqlite_begin)
        from etle.store import migrate

        try:
            if create:
                if not migrate.is_current(self._engine):
                    migrate.upgrade(self._engine)
            elif not migrate.is_current(self._engine):
                with self._engine.connect() as conn:
                    found = migrate.current_revision(conn)
                raise StoreError(
                    f"ticket database {self._url} has schema revision {found or 'none'}, etle needs "
                    f"{migrate.head_revision()}: open it once with migrations (etle db upgrade)"
                )
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise StoreError(f"cannot open ticket database {self._url}: {_one_line(exc)}") from exc
        except StoreError:
            self._engine.dispose()
            raise
        log.debug("ticket store opened: %s", self._url)

    def __repr__(self) -> str:
        return f"TicketStore({self._url!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        """The database URL without its password."""
        return self._url

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

    def _retrying(self, action: str, fn: Callable[[], _T]) -> _T:
        """``fn()``, retried when a racing writer made it violate a unique constraint (``fn``
        re-reads and skips what is already there), then :class:`StoreError`."""
        last = ""
        for _ in range(_INSERT_ATTEMPTS):
            try:
                return fn()
            except IntegrityError as exc:
                last = _one_line(exc)
                log.debug("%s: conflict with another writer (%s); retrying", action, last)
        raise StoreError(f"ticket database {self._url}: cannot {action} after {_INSERT_ATTEMPTS} conflicts: {last}")

    # -- helpers inside a session ------------------------------------------------------------

    def _ensure_camera(self, session: Session, camera: CameraIn) -> None:
        values = {
            "id": camera.id, "name": camera.name, "location": camera.location, "lat": camera.lat,
            "lon": camera.lon, "timezone": camera.timezone, "created_at": _now(),
        }
        dialect = self._engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = (sqlite_dialect.insert if dialect == "sqlite" else pg_dialect.insert)(Camera)
            session.execute(insert.values(**values).on_conflict_do_nothing(index_elements=["id"]))
        elif session.get(Camera, camera.id) is None:  # pragma: no cover - other databases
            session.add(Camera(**values))

    def _user_id(self, session: Session, actor: str) -> int | None:
        if not actor:
            raise lifecycle.TransitionError("an action needs an actor (a username or system:<component>)")
        if actor.startswith(lifecycle.SYSTEM_PREFIX):
            return None
        user = session.scalars(select(User).where(User.username == actor)).one_or_none()
        if user is None:
            raise lifecycle.TransitionError(f"unknown user {actor!r}: add it first (or use system:<component>)")
        if not user.active:
            raise lifecycle.TransitionError(f"user {actor!r} is deactivated")
        return user.id

    @staticmethod
    def _where_ref(id_or_reference: int | str) -> Any:
        if isinstance(id_or_reference, int) or str(id_or_reference).strip().isdigit():
            return Ticket.id == int(id_or_reference)
        text = str(id_or_reference).strip()
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
            return Ticket.uid == text
        return Ticket.reference == text.upper()

    def _row(self, session: Session, id_or_reference: int | str, *, lock: bool = False) -> Ticket:
        query = select(Ticket).where(self._where_ref(id_or_reference))
        if lock and self._engine.dialect.name == "postgresql":
            query = query.with_for_update()
        row = session.scalars(query).one_or_none()
        if row is None:
            raise StoreError(f"no ticket {id_or_reference!r} in {self._url}")
        return row

    # -- writing -----------------------------------------------------------------------------

    def find_duplicate(self, ticket: TicketIn) -> int | None:
        """The id of the stored ticket with the dedupe key (or the uid) of ``ticket``, if any."""
        camera_id, source, run_id, track_id, rule = ticket.dedupe_key
        with self._session("look up a ticket") as session:
            found = session.scalar(
                select(Ticket.id).where(
                    Ticket.camera_id == camera_id,
                    Ticket.source == source,
                    Ticket.run_id == run_id,
                    Ticket.track_id == track_id,
                    Ticket.rule == rule,
                )
            )
            if found is None and ticket.uid:
                found = session.scalar(select(Ticket.id).where(Ticket.uid == ticket.uid))
            return found

    def add_or_get(self, ticket: TicketIn, *, actor: str = PIPELINE_ACTOR) -> tuple[int, bool]:
        """``(id, True)`` for a new ticket, ``(existing id, False)`` for a duplicate key or uid.

        The new ticket gets its camera row (when missing), its plate reads, its evidence files
        and a ``create`` audit entry by ``actor``, all in one transaction.
        """
        values: dict[str, Any] = {name: getattr(ticket, name) for name in _COLUMN_FIELDS}
        values["plate_candidates"] = [c.as_dict() for c in ticket.plate_candidates]
        values["uid"] = ticket.uid or new_uid()
        last = ""
        for _ in range(_INSERT_ATTEMPTS):
            existing = self.find_duplicate(ticket)
            if existing is not None:
                log.debug("ticket for %s already stored as %d", ticket.dedupe_key, existing)
                return existing, False
            row = Ticket(reference=new_reference(ticket.reference_day), **values)
            row.created_at = _now()
            row.status_changed_at = row.created_at
            try:
                with self._session("add a ticket") as session:
                    self._ensure_camera(session, CameraIn(ticket.camera_id, ticket.camera_name, ticket.location))
                    session.add(row)
                    session.flush()
                    ticket_id = row.id
                    self._add_children(session, row, ticket)
                    session.add(ReviewAction(
                        uid=new_uid(), ticket_id=ticket_id, action=lifecycle.CREATE, from_status=None,
                        to_status=PENDING_REVIEW, actor=actor, user_id=self._user_id(session, actor),
                        at=row.created_at, reason="", data={},
                    ))
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

    @staticmethod
    def _add_children(session: Session, row: Ticket, ticket: TicketIn) -> None:
        chosen_done = False
        for rank, c in enumerate(ticket.plate_candidates):
            chosen = not chosen_done and bool(c.text) and c.text == ticket.plate_text
            chosen_done = chosen_done or chosen
            session.add(PlateRead(
                ticket_id=row.id, rank=rank, text=c.text, confidence=c.confidence, frame_index=c.frame_index,
                source="ocr", chosen=chosen, actor="", created_at=row.created_at,
            ))
        for f in ticket.evidence_files:
            session.add(EvidenceFile(
                ticket_id=row.id, name=f.name, role=f.role, sha256=f.sha256, bytes=f.bytes, pruned_at=f.pruned_at,
            ))

    def add(self, ticket: TicketIn) -> int:
        """Store ``ticket`` and return its id; a ticket with the same dedupe key returns that id."""
        return self.add_or_get(ticket)[0]

    def register_camera(self, camera: CameraIn) -> None:
        """Create or refresh the camera row (name, location, position, time zone)."""
        with self._session("register a camera") as session:
            self._ensure_camera(session, camera)
            row = session.get(Camera, camera.id)
            if row is not None:
                row.name, row.location, row.lat, row.lon, row.timezone = (
                    camera.name, camera.location, camera.lat, camera.lon, camera.timezone,
                )

    # -- users and review ---------------------------------------------------------------------

    def add_user(self, username: str, *, display_name: str = "", role: str = "reviewer") -> UserView:
        """Add a user; :class:`StoreError` when the username is taken or malformed."""
        name = username.strip()
        if not name or name.startswith(lifecycle.SYSTEM_PREFIX) or len(name) > 64:
            raise StoreError(f"invalid username {username!r}")
        row = User(username=name, display_name=display_name, role=role, active=True, created_at=_now())
        try:
            with self._session("add a user") as session:
                session.add(row)
        except IntegrityError as exc:
            raise StoreError(f"user {name!r} already exists") from exc
        return UserView(row.id, row.username, row.display_name, row.role, row.active, row.created_at)

    def users(self) -> builtins.list[UserView]:
        with self._session("list users") as session:
            return [UserView(u.id, u.username, u.display_name, u.role, u.active, u.created_at)
                    for u in session.scalars(select(User).order_by(User.username))]

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

    # -- notices (the letters' register) ---------------------------------------------------

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

    def camera_timezone(self, camera_id: str) -> str:
        """The camera's IANA time zone (``UTC`` when the camera row is unknown)."""
        with self._session("read a camera") as session:
            cam = session.get(Camera, camera_id)
            return (cam.timezone if cam is not None else "") or "UTC"

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

    @staticmethod
    def _plate_view(p: PlateRead) -> PlateReadView:
        return PlateReadView(p.rank, p.text, p.confidence, p.frame_index, p.source, p.chosen, p.actor, p.created_at)

    # -- reading -----------------------------------------------------------------------------

    def get(self, id_or_reference: int | str) -> TicketView | None:
        """The ticket with this id (int or digits), uid or reference code (case-insensitive)."""
        with self._session("read a ticket") as session:
            row = session.scalars(select(Ticket).where(self._where_ref(id_or_reference))).one_or_none()
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
        run_ids: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TicketView]:
        """Tickets matching every given filter, newest occurrence first.

        ``since`` is inclusive and ``until`` exclusive (both timezone-aware); ``plate`` matches a
        part of the plate text, ignoring case, spaces and dashes; ``run_ids``: tickets of these
        runs only (e.g. the segments of one clip in ``etle batch``).
        """
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit}, {offset}")
        query = _ticket_where(status=status, rule=rule, camera=camera, since=since, until=until, plate=plate,
                              run_ids=run_ids)
        query = query.order_by(Ticket.occurred_at.desc(), Ticket.id.desc()).limit(limit).offset(offset)
        with self._session("list tickets") as session:
            return [_to_view(row) for row in session.scalars(query)]

    def records(self, *, batch: int = 500, **filters: Any) -> Iterator[TicketRecord]:
        """Every matching ticket with its plate reads and audit log, oldest id first (streamed)."""
        last_id = 0
        while True:
            query = _ticket_where(**filters).where(Ticket.id > last_id).order_by(Ticket.id).limit(batch)
            with self._session("export tickets") as session:
                rows = builtins.list(session.scalars(query))
                out = [self._record(session, row) for row in rows]
            yield from out
            if len(rows) < batch:
                return
            last_id = rows[-1].id

    def record(self, id_or_reference: int | str) -> TicketRecord:
        with self._session("read a ticket") as session:
            return self._record(session, self._row(session, id_or_reference))

    def _record(self, session: Session, row: Ticket) -> TicketRecord:
        reads = tuple(self._plate_view(p) for p in session.scalars(
            select(PlateRead).where(PlateRead.ticket_id == row.id).order_by(PlateRead.id)))
        acts = tuple(_action_view(a, row.uid or "") for a in session.scalars(
            select(ReviewAction).where(ReviewAction.ticket_id == row.id).order_by(ReviewAction.at, ReviewAction.id)))
        cam = session.get(Camera, row.camera_id)
        camera = CameraIn(cam.id, cam.name, cam.location, cam.lat, cam.lon, cam.timezone) if cam else None
        return TicketRecord(ticket=_to_view(row), plate_reads=reads, actions=acts, camera=camera)

    def count_by_status(self) -> dict[str, int]:
        """``{status: number of tickets}`` for the statuses present."""
        with self._session("count tickets") as session:
            rows = session.execute(select(Ticket.status, func.count()).group_by(Ticket.status))
            return {status: int(n) for status, n in rows}

    def orphan_audit_ticket_ids(self) -> builtins.list[int]:
        """Ticket ids the audit log names that have no ticket row (a deleted ticket)."""
        query = (
            select(ReviewAction.ticket_id).distinct()
            .where(~select(Ticket.id).where(Ticket.id == ReviewAction.ticket_id).exists())
            .order_by(ReviewAction.ticket_id)
        )
        with self._session("check the audit log") as session:
            return [int(i) for i in session.scalars(query)]

    def count_matching(self, **filters: Any) -> int:
        """How many tickets match the filters of :meth:`list` (for pagination)."""
        query = select(func.count()).select_from(_ticket_where(**filters).subquery())
        with self._session("count tickets") as session:
            return int(session.scalar(query) or 0)

    def count(self) -> int:
        with self._session("count tickets") as session:
            return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)

    # -- site keys -----------------------------------------------------------------------------

    def register_site_key(self, key_id: str, public_key_b64: str, *, site: str = "") -> None:
        """Remember a manifest-signing public key (idempotent)."""
        self._retrying("register a site key", lambda: self._register_site_key(key_id, public_key_b64, site))

    def _register_site_key(self, key_id: str, public_key_b64: str, site: str) -> None:
        with self._session("register a site key") as session:
            found = session.get(SiteKey, key_id)
            if found is None:
                session.add(SiteKey(key_id=key_id, public_key=public_key_b64, site=site, created_at=_now()))
            elif found.public_key != public_key_b64:
                raise StoreError(f"site key {key_id} is already registered with different key material")

    def site_keys(self) -> dict[str, str]:
        """``{key_id: base64 public key}`` of every registered site key."""
        with self._session("read site keys") as session:
            return {k.key_id: k.public_key for k in session.scalars(select(SiteKey))}

    # -- retention -------------------------------------------------------------------------------

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

    # -- store-and-forward -------------------------------------------------------------------------

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
