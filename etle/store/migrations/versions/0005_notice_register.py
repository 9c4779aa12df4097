"""The notice register: every confirmation letter produced for posting.

Adds ``notices``: one row per letter put into a batch for the post (``etle letters batch``),
with the ticket, its reference, the notice date and confirmation deadline printed on it, the
batch file's name and SHA-256, and the addressee exactly as printed (name and address), who
made it and when.  It is the answer to "was this owner notified, when, at which address, and
which file holds the letter"; like the audit log it is append-only (triggers refuse UPDATE and
DELETE), because a letter once sent stays sent.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER notices_no_update BEFORE UPDATE ON notices "
    "BEGIN SELECT RAISE(ABORT, 'notices is append-only'); END",
    "CREATE TRIGGER notices_no_delete BEFORE DELETE ON notices "
    "BEGIN SELECT RAISE(ABORT, 'notices is append-only'); END",
)
_PG_TRIGGERS = (  # etle_append_only() comes from revision 0002
    "CREATE TRIGGER notices_append_only BEFORE UPDATE OR DELETE ON notices "
    "FOR EACH ROW EXECUTE FUNCTION etle_append_only()",
    "CREATE TRIGGER notices_no_truncate BEFORE TRUNCATE ON notices "
    "FOR EACH STATEMENT EXECUTE FUNCTION etle_append_only()",
)


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", name="fk_notices_ticket"), nullable=False),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("notice_date", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("batch_file", sa.String(256), nullable=False),
        sa.Column("batch_sha256", sa.String(64), nullable=False),
        sa.Column("addressee_name", sa.String(256), nullable=False),
        sa.Column("addressee_address", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
    )
    op.create_index("ix_notices_ticket", "notices", ["ticket_id"])
    op.create_index("ix_notices_notice_date", "notices", ["notice_date"])
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_TRIGGERS if dialect == "sqlite" else _PG_TRIGGERS if dialect == "postgresql" else ():
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS notices_no_update")
        op.execute("DROP TRIGGER IF EXISTS notices_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS notices_append_only ON notices")
        op.execute("DROP TRIGGER IF EXISTS notices_no_truncate ON notices")
    op.drop_index("ix_notices_notice_date", table_name="notices")
    op.drop_index("ix_notices_ticket", table_name="notices")
    op.drop_table("notices")
