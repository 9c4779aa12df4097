"""A time window of a video file as a frame source (what one batch segment reads).

Frames keep the clip's own times (``pts`` from the clip's start) and, from the clip's start,
their index, so the detection stride, timestamps and evidence of a segment are those of the
same frames in a whole-clip run.  A window that does not start at 0 seeks to the key frame
before it and decodes from there (the index then comes from the time and the frame rate); in a
file without timestamps (a raw recorder export) it decodes from the first frame instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

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
