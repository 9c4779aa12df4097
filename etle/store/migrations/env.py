"""Alembic environment of the ticket database (run by :func:`etle.store.migrate.upgrade`).

The connection comes from ``config.attributes["connection"]`` (programmatic use, the normal
path); the ``sqlalchemy.url`` option serves the ``alembic`` command line for development.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from etle.store.models import Base

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # pragma: no cover - developer command line
    from etle.config.run import DEFAULT_DB

    engine = create_engine(config.get_main_option("sqlalchemy.url") or DEFAULT_DB)
    with engine.begin() as conn:
        _run(conn)
