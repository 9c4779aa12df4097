"""The review workflow: cameras, users, plate reads, evidence files, the audit log, site keys.

Adds to ``tickets`` the stable ``uid`` store-and-forward syncs by, the evidence bundle's id and
key (its path relative to the evidence root), its position in the camera's manifest chain, and
lifecycle times; links tickets to ``cameras``.  Existing rows are backfilled: a camera row per
camera id, a uid per ticket, plate reads from ``plate_candidates``, and one ``create`` audit
entry per ticket (marked ``backfilled``).  ``review_actions`` is made append-only by triggers.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER review_actions_no_update BEFORE UPDATE ON review_actions "
    "BEGIN SELECT RAISE(ABORT, 'review_actions is append-only'); END",
    "CREATE TRIGGER review_actions_no_delete BEFORE DELETE ON review_actions "
    "BEGIN SELECT RAISE(ABORT, 'review_actions is append-only'); END",
)
_PG_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION etle_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$",
    "CREATE TRIGGER review_actions_append_only BEFORE UPDATE OR DELETE ON review_actions "
    "FOR EACH ROW EXECUTE FUNCTION etle_append_only()",
    "CREATE TRIGGER review_actions_no_truncate BEFORE TRUNCATE ON review_actions "
    "FOR EACH STATEMENT EXECUTE FUNCTION etle_append_only()",
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    cameras = op.create_table(
        "cameras",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("location", sa.String(512), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    rows = bind.execute(
        sa.text("SELECT camera_id, MAX(camera_name), MAX(location) FROM tickets GROUP BY camera_id")
    ).all()
    if rows:
        now = _now() if dialect != "sqlite" else _now().replace(tzinfo=None)
        op.bulk_insert(
            cameras,
            [{"id": r[0], "name": r[1] or "", "location": r[2] or "", "lat": None, "lon": None,
              "timezone": "UTC", "created_at": now} for r in rows],
        )

    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("uid", sa.String(32), nullable=True))
        batch.add_column(sa.Column("bundle_id", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("evidence_key", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("chain_seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("status_changed_at", TS, nullable=True))
        batch.add_column(sa.Column("synced_at", TS, nullable=True))
        batch.create_foreign_key("fk_tickets_camera", "cameras", ["camera_id"], ["id"])
    op.create_index("ix_tickets_uid", "tickets", ["uid"], unique=True)
    op.create_index("ix_tickets_synced_at", "tickets", ["synced_at"])
    op.create_index("ix_tickets_camera_chain", "tickets", ["camera_id", "chain_seq"])

    plate_reads = op.create_table(
        "plate_reads",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", name="fk_plate_reads_ticket"), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_plate_reads_ticket", "plate_reads", ["ticket_id"])
    op.create_index("ix_plate_reads_text", "plate_reads", ["text"])
    op.create_table(
        "evidence_files",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", name="fk_evidence_files_ticket"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("pruned_at", TS, nullable=True),
        sa.UniqueConstraint("ticket_id", "name", name="uq_evidence_files_ticket_name"),
    )
    actions = op.create_table(
        "review_actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", name="fk_review_actions_ticket"), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("to_status", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", name="fk_review_actions_user"), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_review_actions_ticket", "review_actions", ["ticket_id", "at"])
    op.create_table(
        "site_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "sync_state",
        sa.Column("target", sa.String(512), primary_key=True),
        sa.Column("last_action_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )

    # backfill what the old rows imply
    old = bind.execute(
        sa.text("SELECT id, plate_text, plate_candidates, status, created_at FROM tickets ORDER BY id")
    ).all()
    uids, reads, creates = [], [], []
    for tid, plate_text, candidates, status, created_at in old:
        uids.append({"tid": tid, "uid": uuid.uuid4().hex})
        if isinstance(candidates, str):
            candidates = json.loads(candidates or "[]")
        if isinstance(created_at, str):
            created_at = datetime.fromisoformat(created_at)
        for rank, c in enumerate(candidates or []):
            reads.append({
                "ticket_id": tid, "rank": rank, "text": str(c.get("text", "")), "confidence": float(c.get("confidence", 0.0)),
                "frame_index": int(c.get("frame_index", -1)), "source": "ocr", "chosen": c.get("text") == plate_text,
                "actor": "", "created_at": created_at,
            })
        creates.append({
            "uid": uuid.uuid4().hex, "ticket_id": tid, "action": "create", "from_status": None, "to_status": status,
            "actor": "system:migration-0002", "user_id": None, "at": created_at, "reason": "",
            "data": {"backfilled": True},
        })
    if uids:
        bind.execute(sa.text("UPDATE tickets SET uid = :uid WHERE id = :tid"), uids)
    if reads:
        op.bulk_insert(plate_reads, reads)
    if creates:
        op.bulk_insert(actions, creates)

    for statement in _SQLITE_TRIGGERS if dialect == "sqlite" else _PG_TRIGGERS if dialect == "postgresql" else ():
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS review_actions_no_update")
        op.execute("DROP TRIGGER IF EXISTS review_actions_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS review_actions_append_only ON review_actions")
        op.execute("DROP TRIGGER IF EXISTS review_actions_no_truncate ON review_actions")
        op.execute("DROP FUNCTION IF EXISTS etle_append_only()")
    for table in ("sync_state", "site_keys", "review_actions", "evidence_files", "plate_reads"):
        op.drop_table(table)
    op.drop_index("ix_tickets_camera_chain", "tickets")
    op.drop_index("ix_tickets_synced_at", "tickets")
    op.drop_index("ix_tickets_uid", "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_camera", type_="foreignkey")
        for column in ("synced_at", "status_changed_at", "chain_seq", "evidence_key", "bundle_id", "uid"):
            batch.drop_column(column)
    op.drop_table("users")
    op.drop_table("cameras")
