"""When an edge box removed a ticket's media because the central store holds them.

Adds ``tickets.offloaded_at``: set on an edge box (``etle edge``'s disk watch, ``etle evidence
offload``) when the pictures and clip of a ticket already synced to the central store were
removed locally to free disk space; the bundle keeps its ``manifest.json``, ``manifest.sig`` and an
``offloaded.json`` listing the removed files (:mod:`etle.evidence.offload`).  A local fact: the
central store's copy of the ticket never carries it.  Existing rows get NULL (nothing removed).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("offloaded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("offloaded_at")
