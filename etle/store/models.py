"""SQLAlchemy table models of the ticket database.

Declared unbound (no engine here); :class:`etle.store.repository.TicketStore` binds them.
Times are stored in UTC: :class:`UTCDateTime` refuses naive datetimes on the way in and marks
values read back (SQLite keeps no offset) as UTC.

The schema is owned by the Alembic migrations in :mod:`etle.store.migrations`; these models
must match the newest revision (a test compares them).  Tables:

- ``cameras``: the enforcement points tickets come from.
- ``tickets``: one violation each, with its lifecycle ``status`` (see :mod:`etle.store.lifecycle`),
  a stable ``uid`` (the identity store-and-forward syncs by) and its evidence bundle.
- ``plate_reads``: the plate candidates of a ticket, and reviewers' corrections.
- ``evidence_files``: every file of a ticket's evidence bundle with its SHA-256.
- ``review_actions``: the append-only audit log (creation, every status transition, plate
  corrections, evidence pruning), with who and when; database triggers refuse UPDATE and DELETE.
- ``users``: the people (and ``system:`` actors are not users) who act on tickets.
- ``site_keys``: public Ed25519 keys that sign evidence manifests (so a central store can verify).
- ``sync_state``: how far store-and-forward has pushed the audit log to each central store.
- ``notices``: the notice register, one row per confirmation letter produced for posting
  (revision 0005; append-only like the audit log).
- revision 0006 adds ``tickets.payment_code`` (unique; issued at confirmation or blocking).
- revision 0007 adds ``tickets.offloaded_at`` (an edge box removed the media of a synced ticket to
  free disk space; :mod:`etle.evidence.offload`).
- revision 0008 adds ``site_status``: what each edge box last reported to the central store.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

PENDING_REVIEW = "pending_review"
"""The status of a new ticket."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


class Camera(Base):
    """An enforcement point.  Rows are created (or refreshed) when a ticket of the camera is added."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    location: Mapped[str] = mapped_column(String(512), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who acts on tickets (reviewer, supervisor, admin)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[str] = mapped_column(String(32), default="reviewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    """One violation awaiting (or after) review.  One per (camera, source, run, track, rule)."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("camera_id", "source", "run_id", "track_id", "rule", name="uq_tickets_dedupe"),
        Index("ix_tickets_status_occurred", "status", "occurred_at"),
        Index("ix_tickets_camera_occurred", "camera_id", "occurred_at"),
        Index("ix_tickets_plate_text", "plate_text"),
        Index("ix_tickets_uid", "uid", unique=True),
        Index("ix_tickets_synced_at", "synced_at"),
        Index("ix_tickets_camera_chain", "camera_id", "chain_seq"),
        Index("ix_tickets_status_registry", "status", "registry_status"),
        Index("ix_tickets_payment_code", "payment_code", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    camera_id: Mapped[str] = mapped_column(String(128), ForeignKey("cameras.id", name="fk_tickets_camera"))
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0002: identity for sync, evidence location, chain position, lifecycle times
    uid: Mapped[str | None] = mapped_column(String(32))
    bundle_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    evidence_key: Mapped[str] = mapped_column(Text, default="", server_default="")
    chain_seq: Mapped[int | None] = mapped_column(Integer)
    status_changed_at: Mapped[datetime | None] = mapped_column()
    synced_at: Mapped[datetime | None] = mapped_column()
    # revision 0003: the plate's background colour and the vehicle category it stands for
    plate_colour: Mapped[str] = mapped_column(String(16), default="", server_default="")
    plate_category: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # revision 0004: the registered owner of an approved ticket (etle.registry); kept here, never
    # in the evidence bundle.  registry_status: '' (not looked up), found, not_found, unavailable;
    # registry_mismatch: why the registered vehicle disagrees with the camera's (a review flag).
    owner_name: Mapped[str] = mapped_column(String(256), default="", server_default="")
    owner_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    vehicle_make: Mapped[str] = mapped_column(String(64), default="", server_default="")
    vehicle_colour: Mapped[str] = mapped_column(String(64), default="", server_default="")
    registry_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    registry_checked_at: Mapped[datetime | None] = mapped_column()
    registry_mismatch: Mapped[str] = mapped_column(String(256), default="", server_default="")
    # revision 0006: the code the owner pays with, issued at confirmation (or blocking); NULL before
    payment_code: Mapped[str | None] = mapped_column(String(16))
    # revision 0007: when this box removed the ticket's pictures and clip, the central store holding
    # them (a local fact, never synced); NULL while the media are here
    offloaded_at: Mapped[datetime | None] = mapped_column()

    files: Mapped[list[EvidenceFile]] = relationship(
        back_populates="ticket", order_by="EvidenceFile.name", lazy="selectin"
    )

    def __repr__(self) -> str:
        return f"Ticket(id={self.id!r}, reference={self.reference!r}, rule={self.rule!r}, status={self.status!r})"


class PlateRead(Base):
    """A plate candidate of a ticket (``source='ocr'``) or a reviewer's correction (``'reviewer'``)."""

    __tablename__ = "plate_reads"
    __table_args__ = (Index("ix_plate_reads_ticket", "ticket_id"), Index("ix_plate_reads_text", "text"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id", name="fk_plate_reads_ticket"))
    rank: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    frame_index: Mapped[int] = mapped_column(Integer, default=-1)
    source: Mapped[str] = mapped_column(String(16), default="ocr")
    chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvidenceFile(Base):
    """One file of a ticket's evidence bundle.  ``pruned_at`` is set when retention removed it."""

    __tablename__ = "evidence_files"
    __table_args__ = (UniqueConstraint("ticket_id", "name", name="uq_evidence_files_ticket_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id", name="fk_evidence_files_ticket"))
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    pruned_at: Mapped[datetime | None] = mapped_column()

    ticket: Mapped[Ticket] = relationship(back_populates="files")


class ReviewAction(Base):
    """One entry of the append-only audit log of a ticket.

    ``action`` is ``create``, a transition (``approve``, ``reject``, ``send_notice``, ``confirm``,
    ``pay``, ``block``), ``correct_plate``, ``prune_evidence``, ``reassign_reference`` or
    ``registry_lookup``.
    ``actor`` is a username or a ``system:<component>`` name; ``user_id`` links the user row.
    """

    __tablename__ = "review_actions"
    __table_args__ = (Index("ix_review_actions_ticket", "ticket_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id", name="fk_review_actions_ticket"))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id", name="fk_review_actions_user"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SiteKey(Base):
    """A public key that signs evidence manifests (``key_id`` = first 16 hex of its SHA-256)."""

    __tablename__ = "site_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)  # base64 of the raw 32-byte Ed25519 key
    site: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncState(Base):
    """How far the audit log was pushed to one central store (``target`` = its password-free URL)."""

    __tablename__ = "sync_state"

    target: Mapped[str] = mapped_column(String(512), primary_key=True)
    last_action_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SiteStatus(Base):
    """What an edge box last reported at a store-and-forward round (revision 0008): its health in
    brief (``data``: status, cameras, disk, clock, pending tickets) and when."""

    __tablename__ = "site_status"

    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    reported_at: Mapped[datetime] = mapped_column()
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Notice(Base):
    """One confirmation letter produced for posting (the notice register, revision 0005).

    Kept apart from the audit log so the register can be listed per day and show the addressee
    exactly as printed (the owner columns of the ticket may change with a later lookup).
    Append-only: database triggers refuse UPDATE and DELETE.
    """

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_ticket", "ticket_id"), Index("ix_notices_notice_date", "notice_date"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id", name="fk_notices_ticket"))
    reference: Mapped[str] = mapped_column(String(32))
    notice_date: Mapped[date] = mapped_column()
    deadline: Mapped[date] = mapped_column()
    batch_file: Mapped[str] = mapped_column(String(256))
    batch_sha256: Mapped[str] = mapped_column(String(64))
    addressee_name: Mapped[str] = mapped_column(String(256))
    addressee_address: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
