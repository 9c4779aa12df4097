"""One recording a recorder split into files, run as one source.

DVRs and NVRs write a camera's recording in files of a few minutes each (and export it so):
``ch01_20240115073000.mp4``, ``ch01_20240115073500.mp4``, ...  Run one by one, every file starts
with no tracks and, with a signal plan anchored at the source's start, with the plan's first
phase again: a vehicle that crosses the stop line while the recorder starts a new file is seen
before the line in one file and past it in the next, and is never ticketed; the bundled sample
cut in two at the red-light crossing gives no ticket where the whole recording gives one.

:func:`join_recordings` finds the files of a run that follow one another back to back -- each
dated by the recorder (the clock in its picture or its file name: :mod:`etle.clock.start`), the
same picture size, the next one starting where the one before ends, give or take
``JOIN_TOLERANCE_S`` -- and :class:`JoinedSource` gives their frames as one source: times
continue from the first file's start (each file's frames at its start's offset), frames that a
file repeats from the end of the one before are skipped, tracks and the signal plan run on
across the cut.  Each ticket's evidence names the file and the time within it that its frame
came from (:meth:`JoinedSource.part_of`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Collection, Iterator, Sequence

from etle.ingest.sources import FrameSource, SourceInfo
from etle.types import Frame

__all__ = ["JOIN_TOLERANCE_S", "JoinedSource", "join_recordings", "part_details", "part_of", "recording_label"]

log = logging.getLogger(__name__)

#: how far the next file's start may be from the end of the one before: a file name gives whole
#: seconds, and recorders start the next file a frame or two early or late
JOIN_TOLERANCE_S = 1.5


def part_of(info: SourceInfo, pts: float) -> tuple[str, float]:
    """The file a frame at ``pts`` of the source ``info`` came from, and its time in that file."""
    name, offset = info.name, 0.0
    for part, start in info.parts:
        if start <= pts + 1e-6:
            name, offset = part, start
    return name, pts - offset


def part_details(info: SourceInfo, pts: float) -> dict[str, object]:
    """For the evidence of a ticket whose frame is at ``pts`` of a recording run from several
    files: that frame's file (``part``) and time in it (``part_pts``), and every file (``parts``),
    for whoever goes back to the recorder's export.  Empty for a single file."""
    if not getattr(info, "parts", ()):
        return {}
    name, local = part_of(info, pts)
    return {"part": name, "part_pts": round(local, 3), "parts": [n for n, _ in info.parts]}


def recording_label(name: str, parts: Sequence[object]) -> str:
    """How a summary names a recording: its (first) file's name, and how many files follow it."""
    label = Path(name).name
    if len(parts) > 1:
        more = len(parts) - 1
        label += f" (+{more} file{'s' if more > 1 else ''})"
    return label


class JoinedSource:
    """Files of one recording, back to back, as one source (see the module docstring)."""

    def __init__(self, parts: Sequence[FrameSource], *, max_seconds: float | None = None) -> None:
        if len(parts) < 2:
            raise ValueError("a joined source needs two files or more")
        first = parts[0].info
        assert first.wall_start is not None
        self._parts = tuple(parts)
        self._offsets = tuple((p.info.wall_start - first.wall_start).total_seconds() for p in parts)  # type: ignore[operator]
        self.max_seconds = max_seconds
        last = parts[-1].info
        self.info = replace(
            first,
            duration_s=self._offsets[-1] + last.duration_s if last.duration_s is not None else None,
            frame_count=sum(p.info.frame_count or 0 for p in parts) or None,
            parts=tuple((p.info.name, off) for p, off in zip(parts, self._offsets)),
        )

    def frames(self) -> Iterator[Frame]:
        index = 0
        last = float("-inf")
        for part, offset in zip(self._parts, self._offsets):
            for f in part.frames():
                pts = offset + f.pts
                if pts <= last:  # the file repeats the end of the one before
                    continue
                if self.max_seconds is not None and pts > self.max_seconds:
                    return
                yield Frame(self.info.name, index, pts, f.image, self.info.wall_start)
                index += 1
                last = pts


def _follows(a: SourceInfo, b: SourceInfo) -> bool:
    if a.wall_start is None or b.wall_start is None or a.duration_s is None:
        return False
    if (a.width, a.height) != (b.width, b.height):
        return False
    gap = (b.wall_start - a.wall_start).total_seconds() - a.duration_s
    return abs(gap) <= JOIN_TOLERANCE_S


def join_recordings(sources: Sequence[FrameSource], dated_by: Collection[str], *,
                    max_seconds: float | None = None) -> list[FrameSource]:
    """``sources`` with every run of files that continue one another (see the module docstring)
    as one :class:`JoinedSource`, in the order of their starts; the others as they are, in their
    order, after them.  A file that could continue either of two runs (the same times in two
    cameras' files) joins neither, and neither run goes on past it.  Only files whose start came
    from one of ``dated_by`` (the origins the recorder itself wrote: its picture's clock, its file
    names; a container's creation_time is often the export's or a re-encode's, a file time the
    copy's) are joined."""
    def joinable(s: FrameSource) -> bool:
        return s.info.kind == "file" and s.info.wall_start is not None and s.info.wall_start_origin in dated_by

    dated = sorted((s for s in sources if joinable(s)), key=lambda s: s.info.wall_start)  # type: ignore[arg-type, return-value]
    rest = [s for s in sources if not joinable(s)]
    chains: list[list[FrameSource]] = []
    closed: set[int] = set()  # chains a later file could not be told apart for
    for s in dated:
        ends = [k for k, c in enumerate(chains) if k not in closed and _follows(c[-1].info, s.info)]
        if len(ends) == 1:
            chains[ends[0]].append(s)
            continue
        if len(ends) > 1:  # it could continue either (two cameras' files in one folder): join neither
            log.warning("%s could continue %s: not joined with any", Path(s.info.name).name,
                        " or ".join(Path(chains[k][-1].info.name).name for k in ends))
            closed.update(ends)
        chains.append([s])
    return [_joined(c, max_seconds) for c in chains] + rest


def _joined(run: list[FrameSource], max_seconds: float | None) -> FrameSource:
    if len(run) == 1:
        return run[0]
    names = [Path(s.info.name).name for s in run]
    log.warning("%s: one recording in %d files back to back (by their starts); run as one, tracks and signal "
                "plan going on across each cut (--no-join: each file on its own)",
                ", ".join(names) if len(names) <= 4 else f"{names[0]} ... {names[-1]}", len(run))
    return JoinedSource(run, max_seconds=max_seconds)
