"""The registered owner of a ticket: the vehicle-registry lookup after approval.

Adds to ``tickets`` the owner's name and address and the registered vehicle's make and colour
(stored with the ticket, never in the evidence bundle), ``registry_status`` (``''`` not looked
up, ``found``, ``not_found``, ``unavailable``), ``registry_checked_at`` and
``registry_mismatch`` (why the registered vehicle disagrees with what the camera saw: a review
flag).  Text columns default to empty strings, so existing rows stay valid unchanged; an index
on (status, registry_status) finds approved tickets still waiting for their owner.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("owner_name", sa.String(256), nullable=False, server_default=""))
        batch.add_column(sa.Column("owner_address", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("vehicle_make", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("vehicle_colour", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("registry_status", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("registry_checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("registry_mismatch", sa.String(256), nullable=False, server_default=""))
    op.create_index("ix_tickets_status_registry", "tickets", ["status", "registry_status"])


def downgrade() -> None:
    op.drop_index("ix_tickets_status_registry", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in ("registry_mismatch", "registry_checked_at", "registry_status", "vehicle_colour",
                     "vehicle_make", "owner_address", "owner_name"):
            batch.drop_column(name)
