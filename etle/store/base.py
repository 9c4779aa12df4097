"""The ticket store's foundation: engine, transactions and the helpers every part shares.

:class:`StoreBase` opens the engine (migrating the schema, see :mod:`etle.store.migrate`) and
holds the one transaction handling of :class:`etle.store.repository.TicketStore`: ``_session``
(one transaction, database failures as :class:`etle.errors.StoreError` with a one-line message)
and ``_retrying`` (re-run on a unique-constraint race), plus the in-session helpers ``_row``,
``_where_ref``, ``_user_id`` and ``_ensure_camera``.  The concern mixins of
:mod:`etle.store.tickets`, :mod:`etle.store.users`, :mod:`etle.store.audit`,
:mod:`etle.store.keys`, :mod:`etle.store.notices`, :mod:`etle.store.retention` and
:mod:`etle.store.sync` build on it.

SQLite (the embedded default) runs in WAL mode with foreign keys, and every transaction starts
with ``BEGIN IMMEDIATE`` (the connect and begin hooks here) so DDL is transactional and writers
queue on ``busy_timeout`` rather than failing on lock upgrades.  Also the store's constants and
the generators of reference codes, payment codes and uids.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Any, Self, TypeVar

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from etle.config.run import DEFAULT_DB
from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.models import Camera, Ticket, User
from etle.store.views import CameraIn

log = logging.getLogger("etle.store.repository")
"""The store's one logger, under the name it had before the split (``etle.store.repository``)."""

DEFAULT_URL = DEFAULT_DB
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


SQLITE_BUSY_TIMEOUT_S = 30.0


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy (see _sqlite_begin): the sqlite3 module's legacy
    # mode would run DDL outside transactions and upgrade read locks late.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # The busy timeout first: switching a new database to WAL needs a lock that another
        # process may hold (a second camera worker migrating the same new file), and without
        # the timeout the switch fails at once with "database is locked".
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _sqlite_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_wal(cursor: Any) -> None:
    """Switch to WAL, waiting out a lock held by another connection (up to the busy timeout):
    SQLite may answer the journal-mode switch with SQLITE_BUSY without calling the busy handler."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class StoreBase:
    """The engine and transaction handling of :class:`etle.store.repository.TicketStore` (see
    there for the arguments and errors); the concern mixins build on it."""

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

    def __enter__(self) -> Self:
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
