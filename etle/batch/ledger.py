"""Done-markers of batch segments, in the central ticket database.

One row per finished segment (clip content hash + segment window), written by the worker after
every ticket of the segment is stored, so a batch run again (after a killed worker or driver)
skips finished segments and redoes only the others, whose tickets are found by their
deterministic identity instead of being added twice.

The tables ``batch_segments`` and ``batch_marks`` belong to ``etle batch`` alone: they are
created here when missing (not by the ticket schema's migrations) and nothing else reads or
writes them.
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


#: Where each track with a violation was, every half second of the clip, as its segment saw it
#: (its ticket where the segment kept one): tracks of two segments in the same place at the same
#: time are one vehicle (:func:`etle.batch.plan.repeats`).
batch_marks = Table(
    "batch_marks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("clip_sha256", String(64), nullable=False, index=True),
    Column("segment", String(64), nullable=False),
    Column("track_id", Integer, nullable=False),
    Column("ticket_id", Integer, nullable=True),
    Column("at_ms", Integer, nullable=False),  # the time in the clip, milliseconds
    Column("x1", Float, nullable=False),
    Column("y1", Float, nullable=False),
    Column("x2", Float, nullable=False),
    Column("y2", Float, nullable=False),
    UniqueConstraint("clip_sha256", "segment", "track_id", "at_ms", name="uq_batch_marks_place"),
)

Box4 = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class TrackPlaces:
    """One segment's track with a violation: its ticket (None when another segment keeps it)
    and its box at each mark time (ms)."""

    segment: str
    track_id: int
    ticket_id: int | None
    boxes: dict[int, Box4]


def write_marks(engine: Engine, clip_sha256: str, segment: str, tracks: dict[int, tuple[int | None, dict[int, Box4]]]) -> None:
    """Record ``{track id: (ticket id or None, {time ms: box})}`` of one segment, replacing what a
    killed attempt of it left."""
    try:
        with engine.begin() as conn:
            conn.execute(batch_marks.delete().where(batch_marks.c.clip_sha256 == clip_sha256,
                                                    batch_marks.c.segment == segment))
            rows = [{"clip_sha256": clip_sha256, "segment": segment, "track_id": track, "ticket_id": ticket,
                     "at_ms": at, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}
                    for track, (ticket, boxes) in tracks.items() for at, b in boxes.items()]
            if rows:
                conn.execute(batch_marks.insert(), rows)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record the batch track marks: {str(exc).splitlines()[0]}") from exc


def read_marks(engine: Engine, clip_sha256: str) -> list[TrackPlaces]:
    """Every marked track of one clip, segment by segment."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(batch_marks).where(batch_marks.c.clip_sha256 == clip_sha256)).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the batch track marks: {str(exc).splitlines()[0]}") from exc
    tracks: dict[tuple[str, int], TrackPlaces] = {}
    for r in rows:
        key = (r.segment, r.track_id)
        if key not in tracks:
            tracks[key] = TrackPlaces(r.segment, r.track_id, r.ticket_id, {})
        tracks[key].boxes[r.at_ms] = (r.x1, r.y1, r.x2, r.y2)
    return [tracks[k] for k in sorted(tracks)]


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
    """Create ``batch_segments`` and ``batch_marks`` when missing (two creators racing is fine)."""
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
