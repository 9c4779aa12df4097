"""Done-markers of batch segments, in the central ticket database.

One row per finished segment (clip content hash + segment window), written by the worker after
every ticket of the segment is stored, so a batch run again (after a killed worker or driver)
skips finished segments and redoes only the others, whose tickets are found by their
deterministic identity instead of being added twice.

The table ``batch_segments`` belongs to ``etle batch`` alone: it is created here when missing
(not by the ticket schema's migrations) and nothing else reads or writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, Engine, Float, Integer, MetaData, String, Table, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from etle.errors import StoreError

metadata = MetaData()

batch_segments = Table(
    "batch_segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("clip_sha256", String(64), nullable=False),
    Column("segment", String(64), nullable=False),  # Segment.key: the window in ms
    Column("source", String(1024), nullable=False, default=""),
    Column("frames", Integer, nullable=False, default=0),
    Column("tickets", Integer, nullable=False, default=0),
    Column("elapsed_s", Float, nullable=False, default=0.0),
    Column("worker", String(256), nullable=False, default=""),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("clip_sha256", "segment", name="uq_batch_segments_clip_segment"),
)


@dataclass(frozen=True, slots=True)
class SegmentDone:
    clip_sha256: str
    segment: str
    source: str = ""
    frames: int = 0
    tickets: int = 0
    elapsed_s: float = 0.0
    worker: str = ""


def ensure_table(engine: Engine) -> None:
    """Create ``batch_segments`` when missing (two creators racing is fine)."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except SQLAlchemyError:
        try:
            metadata.create_all(engine, checkfirst=True)  # the other creator won the race
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the batch_segments table: {str(exc).splitlines()[0]}") from exc


def done_segments(engine: Engine, clip_sha256s: list[str]) -> set[tuple[str, str]]:
    """``(clip hash, segment key)`` of every finished segment of these clips."""
    if not clip_sha256s:
        return set()
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(batch_segments.c.clip_sha256, batch_segments.c.segment).where(
                    batch_segments.c.clip_sha256.in_(clip_sha256s)
                )
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the batch done-markers: {str(exc).splitlines()[0]}") from exc
    return {(r[0], r[1]) for r in rows}


def mark_done(engine: Engine, done: SegmentDone) -> bool:
    """Record a finished segment; False when it was recorded already (idempotent)."""
    try:
        with engine.begin() as conn:
            conn.execute(batch_segments.insert().values(
                clip_sha256=done.clip_sha256, segment=done.segment, source=done.source[:1024], frames=done.frames,
                tickets=done.tickets, elapsed_s=done.elapsed_s, worker=done.worker[:256],
                finished_at=datetime.now(timezone.utc),
            ))
    except IntegrityError:
        return False
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record the batch done-marker: {str(exc).splitlines()[0]}") from exc
    return True
