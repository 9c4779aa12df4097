"""The driver's side of ``etle batch`` before anything runs (no Ray): which clips, with which
camera, cut into which segments, identified by which content hash."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from etle.batch.camera import CameraBundle, pack_camera
from etle.batch.plan import SegmentPlan, file_sha256, plan_segments
from etle.errors import EtleError, SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipJob:
    """One clip of a batch: its content hash, its camera (by content) and its segments."""

    clip: str
    sha256: str
    duration_s: float
    fps: float
    wall_start: datetime | None
    camera: CameraBundle | None
    plan: SegmentPlan
    #: where ``wall_start`` comes from (recorded in each ticket's evidence)
    wall_start_origin: str = "given"
    #: a recording in several files run as one (etle.ingest.joined): each file and the time, from
    #: the recording's start, at which it begins (``clip`` is the first); empty for one file
    parts: tuple[tuple[str, float], ...] = ()

    @property
    def name(self) -> str:
        return Path(self.clip).name


@dataclass(frozen=True)
class ClipFailure:
    """A clip that could not be planned or processed, with a one-line reason."""

    clip: str
    message: str


def expand(sources: list[str]) -> list[str]:
    """Every SOURCE as video files (a folder becomes its videos); duplicates once, in order."""
    from etle.ingest.sources import VIDEO_SUFFIXES, is_stream

    out: list[str] = []
    for spec in sources:
        if is_stream(spec):
            out.append(spec)  # refused per clip below
            continue
        p = Path(spec)
        if p.is_dir():
            out.extend(str(f.resolve()) for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
        else:
            out.append(str(p.resolve()) if p.exists() else spec)
    return list(dict.fromkeys(out))  # each clip once, in order


def camera_for(clip: str, camera: Path | None, camera_dir: Path | None) -> Path | None:
    """``camera`` for every clip, else ``<camera_dir>/<clip stem>.yaml`` where there is one."""
    if camera is not None:
        return camera
    if camera_dir is not None:
        path = camera_dir / f"{Path(clip).stem}.yaml"
        if path.is_file():
            return path
        log.warning("%s: no camera file %s: no rules run on it", Path(clip).name, path)
    return None


def plan_batch(
    sources: list[str],
    *,
    camera: Path | None = None,
    camera_dir: Path | None = None,
    start: datetime | None = None,
    max_seconds: float | None = None,
    segment_s: float = 300.0,
    overlap_s: float = 30.0,
    tail_s: float = 2.0,
    join: bool = True,
) -> tuple[list[ClipJob], list[ClipFailure]]:
    """Plan every clip; a clip that cannot be opened is a failure of that clip, not of the batch.
    With ``join``, the files of one camera that continue one another (a recording the recorder
    split into files, dated by its picture's clock or its file names: etle.ingest.joined) are
    planned as one recording.

    A bad ``camera`` (given for every clip) raises :class:`ConfigError` at once.
    """
    from etle.ingest.sources import VideoFileSource, is_stream, timing_note

    plan_segments(segment_s * 2.5, segment_s, overlap_s, tail_s)  # the options themselves: ConfigError now
    shared = pack_camera(camera) if camera is not None else None
    packed: dict[Path, CameraBundle] = {}
    jobs: list[ClipJob] = []
    failures: list[ClipFailure] = []
    daters: dict[Path, Any] = {}  # per camera file: its recordings' dater (etle.clock.start)
    opened: dict[Path | None, list[Any]] = {}  # per camera file: its clips, opened and dated
    bundles: dict[Path | None, CameraBundle | None] = {}
    clips = expand(sources)
    if not clips:
        raise SourceError("no video files in " + ", ".join(sources))
    if start is not None or camera is not None:
        from etle.camera.config import load_camera
        from etle.clock.start import one_recording

        if start is not None:
            one_recording("--start", clips)
        elif load_camera(camera).start_time is not None:  # type: ignore[arg-type]
            one_recording(f"the start_time of {Path(camera).name}", clips)  # type: ignore[arg-type]
    for clip in clips:
        try:
            if is_stream(clip):
                raise SourceError(f"{clip}: etle batch takes recorded files; run live streams with etle edge")
            if shared is not None:
                bundle, cam_file = shared, camera
            else:
                cam_file = camera_for(clip, None, camera_dir)
                bundle = None
                if cam_file is not None:
                    bundle = packed.get(cam_file) or pack_camera(cam_file)
                    packed[cam_file] = bundle
            cam_start = None
            cam = None
            if cam_file is not None:
                from etle.camera.config import load_camera

                cam = load_camera(cam_file)
                cam_start = cam.start_time
            src = VideoFileSource(clip, wall_start=start or cam_start)
            info = src.info
            note = timing_note(info)
            if note is not None:
                log.warning("%s", note)
            if start is None and cam_start is None and cam is not None:
                # the clock in the picture, then the file name, date the recording before its container does
                from etle.clock.start import RecordingDater

                dater = daters.setdefault(cam_file, RecordingDater(cam))  # type: ignore[arg-type]
                fix = dater.date(clip, creation_time=src.creation_time, duration_s=info.duration_s)
                if fix is not None:
                    src = VideoFileSource(clip, wall_start=fix.start, start_origin=fix.origin)
                    info = src.info
            opened.setdefault(cam_file, []).append(src)
            bundles[cam_file] = bundle
        except (EtleError, OSError) as exc:  # this clip or its camera file: the others go on
            failures.append(ClipFailure(clip, str(exc)))
    for cam_file, srcs in opened.items():
        if join and len(srcs) > 1:
            from etle.clock.names import NAME_ORIGIN
            from etle.clock.osd import OSD_ORIGIN
            from etle.ingest.joined import join_recordings

            srcs = join_recordings(srcs, {OSD_ORIGIN, NAME_ORIGIN})
        for src in srcs:
            try:
                jobs.append(_job(src, bundles[cam_file], max_seconds, segment_s, overlap_s, tail_s))
            except (EtleError, OSError) as exc:
                failures.append(ClipFailure(src.info.name, str(exc)))
    return jobs, failures


def _job(src: Any, bundle: CameraBundle | None, max_seconds: float | None, segment_s: float, overlap_s: float,
         tail_s: float) -> ClipJob:
    """The job of one opened, dated source (a file, or the files of one recording)."""
    from etle.ingest.sources import file_mtime_start

    info = src.info
    clip = info.name
    wall, origin = info.wall_start, info.wall_start_origin
    if wall is None:
        wall, origin = file_mtime_start(clip, info.duration_s), "file modification time"
        log.warning("%s: no recording time in the file or camera config; using the file time %s (pass --start)",
                    Path(clip).name, wall)
    duration = info.duration_s or ((info.frame_count or 0) / info.fps if info.fps else 0.0)
    if max_seconds is not None:
        duration = min(duration, max_seconds)
    plan = plan_segments(duration, segment_s, overlap_s, tail_s)
    if info.parts:  # the recording's identity: its files' contents and where each begins
        digest = hashlib.sha256("".join(f"{file_sha256(name)}@{offset:.3f};" for name, offset in info.parts).encode())
        sha = digest.hexdigest()
    else:
        sha = file_sha256(clip)
    return ClipJob(clip=clip, sha256=sha, duration_s=duration, fps=info.fps, wall_start=wall, camera=bundle, plan=plan,
                   wall_start_origin=origin, parts=info.parts)
