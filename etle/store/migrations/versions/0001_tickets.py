"""The first schema: the ``tickets`` table exactly as etle 0.1 created it with ``create_all``.

A database created by that code has no ``alembic_version`` table; :mod:`etle.store.migrate`
stamps it at this revision and upgrades it from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("camera_name", sa.String(256), nullable=False),
        sa.Column("location", sa.String(512), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_time", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("article", sa.String(64), nullable=True),
        sa.Column("fine", sa.Integer(), nullable=True),
        sa.Column("vehicle_label", sa.String(32), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("plate_text", sa.String(32), nullable=False),
        sa.Column("plate_confidence", sa.Float(), nullable=False),
        sa.Column("plate_candidates", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("evidence_path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("camera_id", "source", "run_id", "track_id", "rule", name="uq_tickets_dedupe"),
        sa.UniqueConstraint("reference"),
    )
    op.create_index("ix_tickets_status_occurred", "tickets", ["status", "occurred_at"])
    op.create_index("ix_tickets_camera_occurred", "tickets", ["camera_id", "occurred_at"])
    op.create_index("ix_tickets_occurred_at", "tickets", ["occurred_at"])
    op.create_index("ix_tickets_plate_text", "tickets", ["plate_text"])


def downgrade() -> None:
    op.drop_table("tickets")
