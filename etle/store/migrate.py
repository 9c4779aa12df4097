"""Schema migrations, run programmatically when a store opens.

The Alembic scripts ship inside the package (:mod:`etle.store.migrations`), so an installed
etle migrates its own databases; no ``alembic.ini`` is needed.  :func:`upgrade` brings any
database to the newest revision in one transaction (PostgreSQL DDL is transactional; SQLite runs
under an explicit ``BEGIN`` too, see :mod:`etle.store.base`), serialised between processes
by an advisory lock (PostgreSQL) or a lock file (SQLite), so two pipelines opening a new
database at once do not both create it.  A database made by etle 0.1 (a ``tickets`` table and no
``alembic_version``) is stamped at the first revision and upgraded from there.
"""

from __future__ import annotations

import fcntl
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
_PG_LOCK_KEY = 0x45544C45  # "ETLE"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always has revisions
        raise RuntimeError("no migration scripts found")
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def is_current(engine: Engine) -> bool:
    """Whether the database at ``engine`` is at the newest revision (a cheap check)."""
    with engine.connect() as conn:
        return current_revision(conn) == head_revision()


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).with_name(f".{Path(database).name}.migrate-lock")
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the database at ``engine`` to ``revision``; return (revision before, after).

    Raises SQLAlchemy errors (the caller wraps them as :class:`StoreError`).
    """
    cfg = alembic_config()
    lock = _sqlite_file_lock(engine) if engine.dialect.name == "sqlite" else _null()
    with lock, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        before = current_revision(conn)
        if before is None and inspect(conn).has_table("tickets"):
            log.warning("ticket database has a tickets table without a schema version: taking it as revision %s",
                        FIRST_REVISION)
            cfg.attributes["connection"] = conn
            command.stamp(cfg, FIRST_REVISION)
            before = FIRST_REVISION
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = current_revision(conn)
    if before != after:
        log.info("ticket database migrated from %s to %s", before or "empty", after)
    return before, after or ""


@contextmanager
def _null() -> Iterator[None]:
    yield
