"""SQLAlchemy table models of the ticket database.

Declared unbound (no engine here); :class:`etle.store.repository.TicketStore` binds them.
Times are stored in UTC: :class:`UTCDateTime` refuses naive datetimes on the way in and marks
values read back (SQLite keeps no offset) as UTC.

Migrations (Alembic), users, the audit log and the review lifecycle build on these tables.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

PENDING_REVIEW = "pending_review"
"""The status of a new ticket."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where UTC-aware is required")
        value = value.astimezone(timezone.utc)
        # SQLite has no time-zone type: store the UTC wall time without an offset.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Ticket(Base):
    """One violation awaiting (or after) review.  One per (camera, source, run, track, rule)."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("camera_id", "source", "run_id", "track_id", "rule", name="uq_tickets_dedupe"),
        Index("ix_tickets_status_occurred", "status", "occurred_at"),
        Index("ix_tickets_camera_occurred", "camera_id", "occurred_at"),
        Index("ix_tickets_plate_text", "plate_text"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    camera_id: Mapped[str] = mapped_column(String(128))
    camera_name: Mapped[str] = mapped_column(String(256), default="")
    location: Mapped[str] = mapped_column(String(512), default="")
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    local_time: Mapped[str] = mapped_column(String(64), default="")
    rule: Mapped[str] = mapped_column(String(64))
    article: Mapped[str | None] = mapped_column(String(64))
    fine: Mapped[int | None] = mapped_column(Integer)
    vehicle_label: Mapped[str] = mapped_column(String(32), default="")
    track_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str] = mapped_column(String(64), default="")
    frame_index: Mapped[int] = mapped_column(Integer, default=-1)
    plate_text: Mapped[str] = mapped_column(String(32), default="")
    plate_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    plate_candidates: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(32), default=PENDING_REVIEW)
    evidence_path: Mapped[str] = mapped_column(Text, default="")
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(timezone.utc))

    def __repr__(self) -> str:
        return f"Ticket(id={self.id!r}, reference={self.reference!r}, rule={self.rule!r}, status={self.status!r})"
