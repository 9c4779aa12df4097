"""Frame sources: a video file, a folder of videos, a folder of images, a live stream URL.

Decoding goes through PyAV (FFmpeg).  Each :class:`~etle.types.Frame` carries its index, its
presentation time in seconds from the container's PTS (never the wall clock), and the source's
wall-clock start.  Files are probed before any frame is handed out, so an empty, non-video or
truncated file fails up front with a :class:`~etle.errors.SourceError` instead of half-way
through a run.

Footage without timestamps: a recorder's raw export (``.h264`` / ``.265`` elementary streams, as
many DVRs and NVRs write them) carries frames but no PTS.  Its frames are timed by the frame
rate, ``index / rate``: the rate the caller gives (``etle run --frame-rate``), else the frame
duration the stream's header declares (H.264/HEVC timing information), else FFmpeg's guess;
:attr:`SourceInfo.timing` says which, so the run can say so.  A frame that lacks a PTS in a
timed file or stream is placed one frame after the one before it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import cv2
import numpy as np

from etle.errors import SourceError
from etle.types import Frame

log = logging.getLogger(__name__)

#: what dates a network stream read by ``etle run`` (the evidence manifest's ``extra.wall_start_origin``)
STREAM_ORIGIN = "time of connection"

#: what a folder's videos are known by: common containers, recorders' raw streams, MPEG program
#: and transport streams of DVD and AVCHD recorders (.vob, .mts, .m2ts), Windows and phone formats
#: (.asf, .wmv, .3gp), and Dahua's .dav (FFmpeg's dhav demuxer)
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".m4v", ".ts", ".webm", ".flv", ".mpg", ".mpeg", ".264", ".h264",
                            ".265", ".h265", ".hevc", ".mts", ".m2ts", ".vob", ".asf", ".wmv", ".3gp", ".dav"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
STREAM_RE = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp|srt)://", re.IGNORECASE)


def _quiet_ffmpeg() -> None:
    import av.logging

    av.logging.set_level(av.logging.PANIC)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What is known about a source before decoding it."""

    name: str
    kind: str  # 'file', 'images', 'stream'
    width: int
    height: int
    fps: float
    duration_s: float | None
    frame_count: int | None
    wall_start: datetime | None
    wall_start_origin: str  # where wall_start came from
    #: where the frames' times come from: ``container`` (the PTS), ``stream header`` (footage
    #: without timestamps, timed by the rate its header declares), ``given`` (footage without
    #: timestamps, timed by the caller's frame rate)
    timing: str = "container"
    #: a recording in several files run as one (etle.ingest.joined): each file and the time,
    #: from the source's start, at which it begins; empty for a single file
    parts: tuple[tuple[str, float], ...] = ()


class FrameSource(Protocol):
    info: SourceInfo

    def frames(self) -> Iterator[Frame]: ...


def _parse_creation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    if dt.year < 1990:  # many encoders write 1904/1970 placeholders
        return None
    return dt.astimezone(timezone.utc)


class VideoFileSource:
    """A recorded video file, decoded with PyAV; time from the container's PTS."""

    def __init__(
        self, path: str | Path, *, wall_start: datetime | None = None, max_seconds: float | None = None,
        frame_rate: float | None = None, start_origin: str = "given",
    ) -> None:
        """``frame_rate`` times the frames of a file without timestamps (ignored where the
        container has them; see :attr:`SourceInfo.timing`); ``start_origin`` says where a given
        ``wall_start`` comes from."""
        _quiet_ffmpeg()
        import av

        if frame_rate is not None and not frame_rate > 0:
            raise SourceError(f"{path}: frame rate must be above 0, not {frame_rate}")
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise SourceError(f"{self.path}: is a folder, not a video file")
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path}: file is empty (0 bytes)")
        self.max_seconds = max_seconds
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise SourceError(f"{self.path}: holds no video stream")
                stream = container.streams.video[0]
                width, height = stream.codec_context.width, stream.codec_context.height
                rate = stream.average_rate or stream.guessed_rate or Fraction(25)
                fps = float(rate)
                duration = float(container.duration / 1_000_000) if container.duration else None
                created = _parse_creation_time(container.metadata.get("creation_time") or stream.metadata.get("creation_time"))
                declared_frames = int(stream.frames or 0)  # read while the container is open
                last_pts, packets, packet_s = self._probe_packets(container, stream)
        except SourceError:
            raise
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SourceError(f"{self.path}: not a readable video ({_short(exc)})") from exc
        if not width or not height:
            raise SourceError(f"{self.path}: video stream has no picture size")
        if duration and last_pts is not None and last_pts < duration - max(1.0, 0.05 * duration):
            raise SourceError(
                f"{self.path}: file is truncated or damaged (data ends at {last_pts:.1f} s of {duration:.1f} s)"
            )
        if not packets:
            raise SourceError(f"{self.path}: video stream holds no frames")
        timing = "container"
        frame_count = declared_frames if declared_frames else (int(duration * fps) if duration else None)
        if last_pts is None:
            # frames without timestamps (a raw elementary stream): timed by the frame rate, one
            # packet a frame (FFmpeg's parser splits such a stream into frames)
            if frame_rate is not None:
                fps, timing = float(frame_rate), "given"
            else:
                fps = 1.0 / packet_s if packet_s else fps
                timing = "stream header"
            frame_count, duration = packets, packets / fps
        origin = start_origin
        #: the container's creation_time, whether or not it dates the frames
        self.creation_time = created
        if wall_start is None and created is not None:
            wall_start, origin = created, "container creation_time"
        elif wall_start is None:
            origin = "unknown"
        self.info = SourceInfo(
            name=str(self.path),
            kind="file",
            width=int(width),
            height=int(height),
            fps=fps,
            duration_s=duration,
            frame_count=frame_count,
            wall_start=wall_start,
            wall_start_origin=origin,
            timing=timing,
        )

    @staticmethod
    def _probe_packets(container, stream) -> tuple[float | None, int, float | None]:  # type: ignore[no-untyped-def]
        """Demux (no decode) to find where the data really ends (catches truncated files): the
        last packet's time (None: no packet has one), the packets that hold data, and the first
        such packet's duration in seconds (what a stream without timestamps declares a frame
        lasts; None where unknown)."""
        last = None
        packets = 0
        first_s = None
        tb = stream.time_base
        for packet in container.demux(stream):
            if not packet.size:
                continue
            packets += 1
            if first_s is None and packet.duration and packet.time_base:
                first_s = float(packet.duration * packet.time_base)
            if packet.pts is not None:
                t = float(packet.pts * tb)
                last = t if last is None else max(last, t)
        return last, packets, first_s

    def frames(self) -> Iterator[Frame]:
        import av

        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{self.path}: not a readable video ({_short(exc)})") from exc
        with container:
            stream = container.streams.video[0]
            # no threaded decoding: closing a PyAV container mid-stream with frame threads
            # running deadlocks (seen with PyAV 18 on an early stop); one thread decodes
            # 640x360 H.264 in ~2 ms a frame
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            index = 0
            dt = 1.0 / (self.info.fps or 25.0)
            untimed = self.info.timing != "container"
            pts = -dt
            try:
                for vf in container.decode(stream):
                    if untimed:
                        pts = index * dt
                    elif vf.pts is not None:
                        pts = float(vf.pts * stream.time_base) - start
                    else:  # one frame without a timestamp: one frame after the one before
                        pts = pts + dt
                    if self.max_seconds is not None and pts > self.max_seconds:
                        break
                    image = vf.to_ndarray(format="bgr24")
                    yield Frame(self.info.name, index, pts, image, self.info.wall_start)
                    index += 1
            except av.FFmpegError as exc:
                raise SourceError(f"{self.path}: decoding failed at frame {index} ({_short(exc)})") from exc


class ImageFolderSource:
    """A folder of still images, in name order; ``interval_s`` apart on the time axis."""

    def __init__(self, folder: str | Path, *, interval_s: float = 1.0, wall_start: datetime | None = None) -> None:
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise SourceError(f"{self.folder}: no images or videos found")
        first = cv2.imread(str(self.files[0]))
        if first is None:
            raise SourceError(f"{self.files[0]}: not a readable image")
        self.interval_s = interval_s
        self.info = SourceInfo(
            name=str(self.folder),
            kind="images",
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            fps=1.0 / interval_s,
            duration_s=len(self.files) * interval_s,
            frame_count=len(self.files),
            wall_start=wall_start,
            wall_start_origin="given" if wall_start else "unknown",
        )

    def frames(self) -> Iterator[Frame]:
        for i, p in enumerate(self.files):
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("skipping unreadable image %s", p)
                continue
            yield Frame(str(p), i, i * self.interval_s, image, self.info.wall_start)


class StreamSource:
    """A network stream (RTSP/HTTP/...).  Wall-clock start is the time of connection.

    Robust live handling (reconnects, bounded drop-oldest queues) is layered on top of this
    in the edge runner; this class opens, decodes and times frames.
    """

    def __init__(self, url: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0, max_seconds: float | None = None) -> None:
        _quiet_ffmpeg()
        import av

        self.url = url
        self.max_seconds = max_seconds
        self._options = {"rtsp_transport": "tcp"} if url.lower().startswith("rtsp") else {}
        self._timeout = (open_timeout_s, read_timeout_s)
        try:
            self._container = av.open(url, options=self._options, timeout=self._timeout)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{_redact(url)}: stream unreachable ({_short(exc)})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{_redact(url)}: stream holds no video")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        self.info = SourceInfo(
            name=_redact(url),
            kind="stream",
            width=int(stream.codec_context.width or 0),
            height=int(stream.codec_context.height or 0),
            fps=float(rate),
            duration_s=None,
            frame_count=None,
            wall_start=datetime.now(timezone.utc),
            wall_start_origin=STREAM_ORIGIN,
        )

    def frames(self) -> Iterator[Frame]:
        import av

        container = self._container
        stream = container.streams.video[0]
        first_pts: float | None = None
        index = 0
        dt = 1.0 / (self.info.fps or 25.0)
        pts = 0.0
        try:
            for vf in container.decode(stream):
                if vf.pts is None:
                    # a stream without timestamps (raw H.264 / MJPEG over HTTP or TCP), or one
                    # frame without one: one frame, as long as it declares, after the one before
                    frame_s = float(vf.duration * vf.time_base) if vf.duration and vf.time_base else dt
                    pts = pts + frame_s if index else 0.0
                else:
                    t = float(vf.pts * stream.time_base)
                    if first_pts is None:  # the first timestamp: after the frames before it, if any
                        first_pts = t - (pts + dt) if index else t
                    pts = t - first_pts
                if self.max_seconds is not None and pts > self.max_seconds:
                    break
                yield Frame(self.info.name, index, pts, vf.to_ndarray(format="bgr24"), self.info.wall_start)
                index += 1
        except av.FFmpegError as exc:
            raise SourceError(f"{self.info.name}: stream failed at frame {index} ({_short(exc)})") from exc
        finally:
            container.close()


def timing_note(info: SourceInfo, frame_rate: float | None = None) -> str | None:
    """A warning where a source's frames are not timed by its own timestamps (a raw recorder
    export: every time of a ticket, the red-light timing, speeds and the clip, then rests on the
    frame rate), or where ``frame_rate`` was given for a file that has its own; else None."""
    if info.timing == "stream header":
        return (f"{info.name}: no timestamps in the file (a raw video stream); frames timed at {info.fps:.3g} fps, "
                "the rate its header declares (pass --frame-rate if the recorder says otherwise)")
    if info.timing == "given":
        return f"{info.name}: no timestamps in the file; frames timed at {info.fps:.3g} fps (--frame-rate)"
    if frame_rate is not None and info.kind == "file":
        return f"{info.name}: --frame-rate ignored, the file has timestamps of its own"
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text[:160]


def _redact(url: str) -> str:
    """Hide credentials in a stream URL before it is logged or stored."""
    return re.sub(r"//[^/@]+@", "//***@", url)


def is_stream(spec: str) -> bool:
    return bool(STREAM_RE.match(spec))


def expand_sources(spec: str) -> list[str]:
    """One SOURCE argument -> the list of sources to run: a folder of videos becomes its videos."""
    if is_stream(spec):
        return [spec]
    p = Path(spec)
    if not p.exists():
        raise SourceError(f"{spec}: no such file or folder")
    if p.is_dir():
        videos = sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
        if videos:
            return videos
        if any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()):
            return [str(p)]
        raise SourceError(f"{spec}: no videos or images found in the folder")
    return [str(p)]


def open_source(
    spec: str,
    *,
    wall_start: datetime | None = None,
    max_seconds: float | None = None,
    image_interval_s: float = 1.0,
    frame_rate: float | None = None,
    start_origin: str = "given",
) -> FrameSource:
    """Open one source: a stream URL, a folder of images, or a video file (``frame_rate``: see
    :class:`VideoFileSource`)."""
    if is_stream(spec):
        src: FrameSource = StreamSource(spec, max_seconds=max_seconds)
        return src
    p = Path(spec)
    if p.is_dir():
        return ImageFolderSource(p, interval_s=image_interval_s, wall_start=wall_start)
    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
        raise SourceError(f"{spec}: a single image; pass the folder that holds it")
    return VideoFileSource(p, wall_start=wall_start, max_seconds=max_seconds, frame_rate=frame_rate, start_origin=start_origin)


def file_mtime_start(path: str | Path, duration_s: float | None) -> datetime | None:
    """A last-resort wall-clock start for footage without metadata: the file's mtime minus its length."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(mtime, tz=timezone.utc) - timedelta(seconds=duration_s or 0.0)


def synthetic_frames(images: Sequence[np.ndarray], fps: float = 10.0, source: str = "synthetic") -> Iterator[Frame]:
    """Frames from in-memory images (tests, demos)."""
    for i, img in enumerate(images):
        yield Frame(source, i, i / fps, img, None)
