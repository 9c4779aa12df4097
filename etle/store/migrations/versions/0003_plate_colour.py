"""Plate colour and vehicle category on tickets.

Adds ``tickets.plate_colour`` (the plate's background colour: white, black, yellow, red, green,
white_blue) and ``tickets.plate_category`` (what it stands for: private, public_transport,
government, free_trade_zone, electric, ...; see ``etle/plate/data/categories_id.yaml``).  Both
are empty strings where unknown, so existing rows stay valid unchanged.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("plate_colour", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("plate_category", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("plate_category")
        batch.drop_column("plate_colour")
