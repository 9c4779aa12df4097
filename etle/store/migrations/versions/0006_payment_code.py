"""The payment code of a ticket: what the owner quotes when paying the fine.

Adds ``tickets.payment_code``: a random code (12 characters of the reference alphabet) issued
when a ticket is confirmed or blocked (see :mod:`etle.settlement`), NULL before; a unique index
finds the ticket of a bank's payment record.  The code is also kept in the audit entry that
issued it, so store-and-forward replays it.  Existing rows get NULL (no code yet).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("payment_code", sa.String(16), nullable=True))
    op.create_index("ix_tickets_payment_code", "tickets", ["payment_code"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_tickets_payment_code", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("payment_code")
