"""Segment planning and event ownership for ``etle batch`` (pure: no Ray, no models, no I/O).

A long recording is cut into segments of ``segment_s`` seconds.  Each segment *owns* the time
``[start, end)`` and *reads* a window widened by ``overlap_s`` on both sides, so that a vehicle
crossing a cut is seen whole by at least one segment and the tracker is warm when the owned part
begins.  Because neighbouring windows overlap, two segments can see the same violation; exactly
one of them keeps it, decided from what every segment can compute alike:

* an **event** is a violation of one rule by one track: the time the track was first seen in
  the segment (its start), whether that start is *truncated* (the track was already there when
  the segment's window opened, so its true start is unknown), and the violation's time ``pts``;
* its **owner** is the earliest segment whose window covers the event from its start to the
  violation plus the evidence clip after it (``tail_s``); for a truncated start, or when no
  window covers the whole track, the earliest segment whose window covers the violation plus
  its clip.

Every segment that sees the event at the same time computes the same owner (a truncated start
only widens the set of candidates by segments that come after the owner), and the owner did see
it, so a track crossing a cut is ticketed once and none is lost.  A rule that judges a track
over time can fire later in a window that opened on the vehicle; :func:`repeats` finds the
second ticket that leaves, for the driver to reject once the clip is done.  The identity of a ticket is deterministic
(:func:`ticket_uid`): clip content hash, segment window, rule and the segment's track id, so a
segment run again after a crash finds its tickets already stored instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from etle.errors import ConfigError
from etle.types import Box

#: a track first seen within this many seconds of its window's start was there before it opened
TRUNCATION_MARGIN_S = 1.0


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a recording: owns ``[start_s, end_s)``, reads ``[read_start_s, read_end_s]``.

    The last segment of a clip owns and reads up to and including ``end_s`` (the clip's end).
    """

    index: int
    start_s: float
    end_s: float
    read_start_s: float
    read_end_s: float
    last: bool

    @property
    def read_s(self) -> float:
        return self.read_end_s - self.read_start_s

    @property
    def key(self) -> str:
        """The window in milliseconds: what identifies the segment across runs."""
        return f"{round(self.read_start_s * 1000)}-{round(self.read_end_s * 1000)}"


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """The segments of one clip of ``duration_s`` seconds."""

    duration_s: float
    segment_s: float
    overlap_s: float
    tail_s: float
    segments: tuple[Segment, ...]

    def covers(self, seg: Segment, pts: float) -> bool:
        """Whether ``seg``'s window holds ``pts`` and the evidence clip after it."""
        if pts < seg.read_start_s:
            return False
        return pts <= seg.read_end_s if seg.last else pts + self.tail_s < seg.read_end_s

    def owner(self, event: "Event") -> int:
        """The index of the segment that keeps ``event`` (see the module docstring)."""
        for seg in self.segments:
            if not event.truncated and seg.read_start_s > event.start_s:
                break  # later windows open after the track's start
            if self.covers(seg, event.pts):
                return seg.index
        # no window covers the track from its start (the violation came late in a long track):
        # as for a truncated start, the earliest window covering the violation and its clip
        for seg in self.segments:
            if self.covers(seg, event.pts):
                return seg.index
        # a violation time no window covers (past the clip's end): the segment holding its time
        for seg in self.segments:
            if seg.read_start_s <= event.pts <= seg.read_end_s:
                return seg.index
        return self.segments[-1].index

    def keeps(self, seg: Segment, event: "Event") -> bool:
        return self.owner(event) == seg.index


@dataclass(frozen=True, slots=True)
class Event:
    """A violation as one segment saw it (see the module docstring)."""

    rule: str
    track_start_s: float
    pts: float
    truncated: bool

    @property
    def start_s(self) -> float:
        return self.track_start_s


def plan_segments(duration_s: float, segment_s: float = 300.0, overlap_s: float = 30.0, tail_s: float = 2.0) -> SegmentPlan:
    """Cut ``duration_s`` seconds into segments of ``segment_s`` with ``overlap_s`` either side.

    A clip no longer than ``segment_s`` plus a tenth is one segment (no cut for a few seconds).
    ``tail_s`` is the evidence clip after a violation (``--clip-after``): an owner must hold it.
    Raises :class:`ConfigError` for non-positive lengths or an overlap shorter than the tail.
    """
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ConfigError(f"cannot plan segments of a clip of {duration_s} s")
    if segment_s <= 0:
        raise ConfigError(f"--segment-seconds must be > 0, got {segment_s}")
    if overlap_s < 0:
        raise ConfigError(f"--overlap-seconds must be >= 0, got {overlap_s}")
    if tail_s < 0:
        raise ConfigError(f"the clip after a violation must be >= 0 s, got {tail_s}")
    if overlap_s and overlap_s <= tail_s:
        raise ConfigError(
            f"--overlap-seconds ({overlap_s}) must be longer than --clip-after ({tail_s}): the segment that keeps a "
            "violation near a cut must also hold its evidence clip"
        )
    duration_s = round(duration_s, 3)
    n = 1 if duration_s <= segment_s * 1.1 else math.ceil(duration_s / segment_s - 1e-9)
    if n > 1 and overlap_s == 0:
        raise ConfigError("--overlap-seconds must be > 0 when a clip is cut into segments")
    segments = []
    for i in range(n):
        start = i * segment_s
        end = duration_s if i == n - 1 else (i + 1) * segment_s
        segments.append(Segment(
            index=i, start_s=round(start, 3), end_s=round(end, 3),
            read_start_s=round(max(0.0, start - overlap_s), 3),
            read_end_s=round(duration_s if i == n - 1 else min(duration_s, end + overlap_s), 3),
            last=i == n - 1,
        ))
    return SegmentPlan(duration_s=duration_s, segment_s=segment_s, overlap_s=overlap_s, tail_s=tail_s, segments=tuple(segments))


def event_of(seg: Segment, rule: str, first_seen_s: float, pts: float, margin_s: float = TRUNCATION_MARGIN_S) -> Event:
    """The event of a violation at ``pts`` by a track first seen at ``first_seen_s`` in ``seg``.

    The first segment of a clip opens at the clip's start, so no start there is truncated.
    """
    truncated = seg.read_start_s > 0 and first_seen_s - seg.read_start_s <= margin_s
    return Event(rule=rule, track_start_s=first_seen_s, pts=pts, truncated=truncated)


@dataclass(frozen=True, slots=True)
class SeenEvent:
    """An event as a segment reported it (for :func:`dedupe`)."""

    segment: int
    event: Event
    track_id: int


def dedupe(plan: SegmentPlan, seen: Iterable[SeenEvent]) -> list[SeenEvent]:
    """The events the plan keeps: each segment's events it owns (what the workers write)."""
    by_index = {s.index: s for s in plan.segments}
    return [e for e in seen if plan.keeps(by_index[e.segment], e.event)]


def ticket_uid(clip_sha256: str, seg: Segment, rule: str, track_id: int) -> str:
    """The deterministic ticket identity (32 hex digits) of a segment's violation."""
    text = f"etle-batch:{clip_sha256}:{seg.key}:{rule}:{track_id}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


#: two boxes of one instant this much alike (intersection over union) are one vehicle
SAME_PLACE_IOU = 0.5

BoxTuple = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Kept:
    """A stored ticket of one clip, as :func:`repeats` sees it."""

    ticket_id: int
    segment: int
    rule: str
    plate: str  # "" = unread
    seconds: float  # the violation's time
    #: the vehicle its track belongs to across segments (:func:`vehicles`), None where unknown
    vehicle: int | None = None


def same_vehicle(a: Kept, b: Kept) -> bool:
    """The same read plate, or tracks of one vehicle (:func:`vehicles`)."""
    if a.plate and a.plate == b.plate:
        return True
    return a.vehicle is not None and a.vehicle == b.vehicle


def vehicles(tracks: Mapping[tuple[int, int], Mapping[int, BoxTuple]]) -> dict[tuple[int, int], int]:
    """Group ``(segment, track id)`` -> ``{time ms: box}`` into vehicles: two tracks of different
    segments that stand in the same place (IoU >= :data:`SAME_PLACE_IOU`) at a time both saw
    are one vehicle, and so is a chain of them (a vehicle seen by segments 1, 2 and 3 links the
    first and the third even where their windows share no frame).  Returns a group number per
    track (the smallest track key's index in sorted order)."""
    keys = sorted(tracks)
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(keys):
        for j in range(i + 1, len(keys)):
            b = keys[j]
            if a[0] == b[0]:
                continue  # two tracks of one segment are two tracks
            ta, tb = tracks[a], tracks[b]
            if any(Box(*ta[t]).iou(Box(*tb[t])) >= SAME_PLACE_IOU for t in ta.keys() & tb.keys()):
                ra, rb = root(i), root(j)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return {k: root(i) for i, k in enumerate(keys)}


def repeats(plan: SegmentPlan, tickets: Iterable[Kept]) -> list[tuple[Kept, Kept]]:
    """``(repeat, kept)`` pairs: tickets of one clip that repeat an earlier one of another segment.

    Ownership (:meth:`SegmentPlan.owner`) assumes every segment sees a violation at the same
    time.  A rule that judges a track over time (a missing helmet voted over frames, a stop held
    for a minute) fires later in a segment whose window opened while the vehicle was already
    there; when that later time lies past the previous window, both segments keep the same
    vehicle (and may read its plate differently).  No segment can tell alone, so the driver
    settles it once every segment of the clip is done: a ticket with the same rule as an earlier
    ticket of *another* segment, less than one window (``segment_s + 2 * overlap_s``) after it,
    is a repeat when the two are the same vehicle (:func:`same_vehicle`: the same read plate, or
    tracks that stood in the same place at the same time, :func:`vehicles`); the earliest is kept.  Two
    tracks of one segment are never merged here (the sequential run keeps them too).
    """
    window = plan.segment_s + 2 * plan.overlap_s
    by_rule: dict[str, list[Kept]] = {}
    for t in tickets:
        by_rule.setdefault(t.rule, []).append(t)
    out: list[tuple[Kept, Kept]] = []
    for group in by_rule.values():
        kept: list[Kept] = []
        for t in sorted(group, key=lambda k: (k.seconds, k.segment, k.ticket_id)):
            first = next((k for k in kept if k.segment != t.segment and t.seconds - k.seconds < window
                          and same_vehicle(k, t)), None)
            if first is not None:
                out.append((t, first))
            else:
                kept.append(t)
    return sorted(out, key=lambda pair: pair[0].ticket_id)


def run_id(clip_sha256: str, seg: Segment) -> str:
    """The ticket's ``run_id`` for a segment (part of the store's dedupe key)."""
    return f"batch:{clip_sha256[:16]}:{seg.key}"


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content (the clip identity)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def frames_in(seg: Segment, fps: float) -> int:
    """About how many frames ``seg`` reads (for the progress bar)."""
    return max(1, int(round(seg.read_s * fps)) + 1)


def total_frames(segments: Sequence[Segment], fps: float) -> int:
    return sum(frames_in(s, fps) for s in segments)
