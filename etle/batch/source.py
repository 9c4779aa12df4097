"""A time window of a video file, or of a recording in several files, as a frame source (what one
batch segment reads).

Frames keep the clip's own times (``pts`` from the clip's start) and, from the clip's start,
their index, so the detection stride, timestamps and evidence of a segment are those of the
same frames in a whole-clip run.  A window that does not start at 0 seeks to the key frame
before it and decodes from there (the index then comes from the time and the frame rate); in a
file without timestamps (a raw recorder export) it decodes from the first frame instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from etle.errors import SourceError
from etle.ingest.sources import SourceInfo, VideoFileSource, _quiet_ffmpeg, _short
from etle.types import Frame


class SegmentSource:
    """Frames of ``base`` (an opened :class:`VideoFileSource`) with ``start_s <= pts``, up to
    ``end_s`` (inclusive when ``inclusive_end``, else exclusive)."""

    def __init__(self, base: VideoFileSource, start_s: float, end_s: float, *, inclusive_end: bool = True) -> None:
        self.base = base
        self.start_s = float(start_s)
        self.end_s = float(end_s)
        self.inclusive_end = inclusive_end
        fps = base.info.fps or 25.0
        count = int(round((self.end_s - self.start_s) * fps)) + 1
        self.info: SourceInfo = replace(base.info, frame_count=count, duration_s=self.end_s - self.start_s)

    def _past_end(self, pts: float) -> bool:
        return pts > self.end_s if self.inclusive_end else pts >= self.end_s

    def frames(self) -> Iterator[Frame]:
        if self.start_s <= 0 or self.base.info.timing != "container":
            # from the start; a file without timestamps cannot be sought by time, so its later
            # segments decode from the first frame too and skip to their window
            half_frame = 0.5 / (self.base.info.fps or 25.0)
            for frame in self.base.frames():
                if self._past_end(frame.pts):
                    return
                if frame.pts >= self.start_s - half_frame:
                    yield frame
            return
        _quiet_ffmpeg()
        import av

        path = self.base.path
        try:
            container = av.open(str(path))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{path}: not a readable video ({_short(exc)})") from exc
        with container:
            stream = container.streams.video[0]
            tb = stream.time_base
            origin = float(stream.start_time * tb) if stream.start_time is not None else 0.0
            fps = self.base.info.fps or 25.0
            try:
                target = int((self.start_s + origin) / tb)
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except (av.FFmpegError, OverflowError) as exc:
                raise SourceError(f"{path}: cannot seek to {self.start_s:.1f} s ({_short(exc)})") from exc
            half_frame = 0.5 / fps
            try:
                for vf in container.decode(stream):
                    if vf.pts is None:
                        continue
                    pts = float(vf.pts * tb) - origin
                    if pts < self.start_s - half_frame:
                        continue
                    if self._past_end(pts):
                        return
                    index = int(round(pts * fps))
                    yield Frame(self.base.info.name, index, pts, vf.to_ndarray(format="bgr24"), self.base.info.wall_start)
            except av.FFmpegError as exc:
                raise SourceError(f"{path}: decoding failed after {self.start_s:.1f} s ({_short(exc)})") from exc


class JoinedSegmentSource:
    """A time window of a recording the recorder wrote in several files (etle.ingest.joined):
    ``parts`` are the files and the times, from the recording's start, at which each begins.
    Only the files the window overlaps are opened; each is read as a :class:`SegmentSource` of
    its own part of the window.  Frames carry the recording's times (and an index from them, as a
    later segment of one file does); a frame a file repeats from the one before is skipped."""

    def __init__(self, parts: tuple[tuple[str, float], ...], start_s: float, end_s: float, *,
                 wall_start: datetime | None, start_origin: str, inclusive_end: bool = True) -> None:
        from etle.ingest.joined import JOIN_TOLERANCE_S

        self.parts = parts
        self.start_s, self.end_s, self.inclusive_end = float(start_s), float(end_s), inclusive_end
        ends = [off for _, off in parts[1:]] + [float("inf")]
        self._open = [(VideoFileSource(name, wall_start=wall_start, start_origin=start_origin), off)
                      for (name, off), end in zip(parts, ends)
                      if off <= self.end_s and end + JOIN_TOLERANCE_S >= self.start_s]
        if not self._open:
            raise SourceError(f"{parts[0][0]}: no file of the recording holds {self.start_s:.1f}-{self.end_s:.1f} s")
        first = self._open[0][0].info
        self._fps = first.fps or 25.0
        count = int(round((self.end_s - self.start_s) * self._fps)) + 1
        self.info: SourceInfo = replace(first, name=parts[0][0], wall_start=wall_start, wall_start_origin=start_origin,
                                        frame_count=count, duration_s=self.end_s - self.start_s, parts=parts)

    def frames(self) -> Iterator[Frame]:
        last = float("-inf")
        for src, off in self._open:
            window = SegmentSource(src, max(0.0, self.start_s - off), self.end_s - off, inclusive_end=self.inclusive_end)
            for f in window.frames():
                pts = f.pts + off
                if pts <= last:
                    continue
                yield Frame(self.info.name, int(round(pts * self._fps)), pts, f.image, self.info.wall_start)
                last = pts
