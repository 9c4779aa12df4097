"""What each edge box last reported to the central store.

Adds ``site_status``: one row per site (the edge site file's ``site``), replaced at every
store-and-forward round (:mod:`etle.sync.forward`) with the box's health in brief (its cameras,
free disk, clock, tickets waiting to be pushed) and when it reported, so the central review app
shows which boxes are silent or in trouble (``/sites``).  Not part of any ticket's record.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_status",
        sa.Column("site", sa.String(128), primary_key=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("site_status")
