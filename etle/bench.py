"""``etle bench``: the pipeline against a naive baseline, clip by clip, in one run.

For each clip, two jobs run one after the other, each in a fresh process (so that each one's
peak memory is its own and neither warms the other's caches):

* **etle** -- the real pipeline as an edge box runs it (:func:`etle.runner.run_sources` with the
  camera file ``<camera-dir>/<clip stem>.yaml`` when there is one, so rules, evidence and
  tickets are part of the figures; the int8 detector on a stride with tracks predicted in
  between; decoding in its own thread; plates read for selected tracks on selected frames).
* **baseline** -- the loop most public projects use: ultralytics ``YOLO.track(persist=True)``
  on every frame (the fp32 detector, ultralytics' ByteTrack), and for every vehicle in every
  frame the plate detector (through ultralytics) and the OCR reader (the same reader as etle,
  so that the comparison is about the work done, not the OCR model).  A track's plate is its
  most confident read at or above the same minimum confidence etle accepts.

Each job reports frames, fps, per-stage milliseconds per frame, peak RSS (``ru_maxrss`` of its
process), tracks, plates read and distinct plate texts, and tickets (etle only: the baseline has
no rules).  A plate counts as read when it is a complete registration under the plate grammar
(``--country``, default ``id``) at the accepted confidence: for etle, a plate its tickets would
print (the per-track consensus through every acceptance gate of :func:`etle.pipeline.accept_plate`:
confidence, exact agreement from two frames, a majority at every character), and for
the baseline the most confident such read of the track (grammar-checked for it too, so that
single letters read off a mudguard do not count for either side).  Figures depend on the machine: this is a
benchmark, never a test.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from etle.config.run import DEFAULT_DETECTOR, FAST_DETECT_FPS, RunOptions, StageOptions, fast_detector
from etle.errors import EtleError

log = logging.getLogger(__name__)

#: what the baseline tracks (the same classes as etle) and reads plates of
BASELINE_KEEP = frozenset({"person", "bicycle", "car", "motorcycle", "bus", "truck"})


class BenchOptions(StageOptions):
    """How ``etle bench`` runs each side: etle with ``etle run``'s stage options in the fast
    (edge) profile by default, the baseline with ``baseline_detector``; both read plates with
    ``reader`` in ``country``'s format and stop after ``max_seconds``."""

    detector: str = Field(default_factory=fast_detector)
    detect_fps: float = Field(FAST_DETECT_FPS, ge=0)
    max_seconds: float | None = Field(None, ge=0)
    camera_dir: Path | None = Path("examples/cameras")
    baseline_detector: str = DEFAULT_DETECTOR


@dataclass(frozen=True)
class BenchResult:
    """One side of one clip."""

    clip: str
    mode: str  # "etle" or "baseline"
    frames: int
    video_s: float
    elapsed_s: float
    peak_rss_mb: float
    tracks: int
    plates_read: int
    distinct_plates: int
    tickets: int | None
    stage_ms: dict[str, float] = field(default_factory=dict)
    detect_every: int = 1
    detections: int = 0  # frames the detector ran on (etle: stride + motion gate)
    plates: dict[str, str] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def realtime(self) -> float:
        """Processing speed as a multiple of the clip's own frame rate."""
        src_fps = self.frames / self.video_s if self.video_s > 0 else 0.0
        return self.fps / src_fps if src_fps > 0 else 0.0


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def camera_for(clip: Path, camera_dir: Path | None) -> Path | None:
    """``camera_dir/<clip stem>.yaml`` when it exists."""
    if camera_dir is None:
        return None
    cam = camera_dir / f"{clip.stem}.yaml"
    return cam if cam.is_file() else None


# ----------------------------------------------------------------------------------------------
# the two sides (each runs inside its own process)


def run_etle(clip: Path, opts: BenchOptions, progress: Callable[[int], None] | None = None) -> BenchResult:
    """The etle pipeline on ``clip`` (evidence and tickets into a temporary folder)."""
    from etle.config.settings import settings
    from etle.runner import run_sources

    count = 0

    def on_frame(_frame: Any) -> None:
        nonlocal count
        count += 1
        if progress is not None and count % 15 == 0:
            progress(count)

    with tempfile.TemporaryDirectory(prefix="etle-bench-") as tmp:
        options = RunOptions.of(opts, out_dir=Path(tmp) / "out", db_url=f"sqlite:///{tmp}/bench.db", max_seconds=opts.max_seconds)
        env = settings().model_copy(update={"keys_dir": Path(tmp) / "no-keys"})
        summaries = run_sources(str(clip), camera_for(clip, opts.camera_dir), options, env, progress=False, frame_callback=on_frame)
    s = summaries[0]
    from etle.plate.tnkb import get_format

    fmt = get_format(opts.country)
    texts = {str(k): v for k, v in s.plates.items() if fmt.is_valid(v)}
    return BenchResult(
        clip=clip.name, mode="etle", frames=s.frames, video_s=s.video_seconds, elapsed_s=s.elapsed_s,
        peak_rss_mb=peak_rss_mb(), tracks=s.tracks, plates_read=len(texts), distinct_plates=len(set(texts.values())),
        tickets=s.tickets, stage_ms=dict(s.stage_ms), detect_every=s.detect_every, detections=s.detections, plates=texts,
    )


def run_baseline(clip: Path, opts: BenchOptions, progress: Callable[[int], None] | None = None) -> BenchResult:
    """The naive loop (see the module docstring) on ``clip``."""
    import numpy as np

    from etle.detect.ultralytics_adapter import UltralyticsDetector, UltralyticsTracker
    from etle.ingest.sources import open_source
    from etle.models import registry
    from etle.plate.readers import load_reader
    from etle.plate.stage import best_plate
    from etle.types import VEHICLE_LABELS

    tracker = UltralyticsTracker(registry.resolve(opts.baseline_detector), keep=BASELINE_KEEP)
    plate_path = registry.resolve("plate-detector")
    from etle.models.registry import plate_detector_imgsz

    plates_model = UltralyticsDetector(plate_path, imgsz=plate_detector_imgsz(), label="license_plate")
    from etle.plate.tnkb import get_format

    fmt = get_format(opts.country)
    reader = load_reader(opts.reader, country=opts.country)
    source = open_source(str(clip), max_seconds=opts.max_seconds)
    total: dict[str, float] = defaultdict(float)
    best: dict[int, tuple[float, str]] = {}
    tracks: set[int] = set()
    frames = 0
    last_pts = 0.0
    started = time.perf_counter()
    for frame in source.frames():
        frames += 1
        last_pts = frame.pts
        t0 = time.perf_counter()
        objects = tracker.track(frame.image)
        total["detect+track"] += time.perf_counter() - t0
        for tid, det in objects:
            tracks.add(tid)
            if det.label not in VEHICLE_LABELS:
                continue
            x1, y1, x2, y2 = det.box.clip(frame.width, frame.height).as_int()
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            crop = frame.image[y1:y2, x1:x2]
            t0 = time.perf_counter()
            plate = best_plate(plates_model.detect(crop), crop.shape)
            total["plate_detect"] += time.perf_counter() - t0
            if plate is None:
                continue
            px1, py1, px2, py2 = plate.box.clip(crop.shape[1], crop.shape[0]).as_int()
            if px2 - px1 < 4 or py2 - py1 < 4:
                continue
            t0 = time.perf_counter()
            read = reader.read(np.ascontiguousarray(crop[py1:py2, px1:px2]))
            total["ocr"] += time.perf_counter() - t0
            if read is None or read.confidence < opts.min_plate_confidence or not fmt.is_valid(read.text):
                continue
            if tid not in best or read.confidence > best[tid][0]:
                best[tid] = (read.confidence, read.text)
        if progress is not None and frames % 15 == 0:
            progress(frames)
    elapsed = time.perf_counter() - started
    texts = {str(k): v[1] for k, v in sorted(best.items())}
    return BenchResult(
        clip=clip.name, mode="baseline", frames=frames, video_s=last_pts, elapsed_s=elapsed,
        peak_rss_mb=peak_rss_mb(), tracks=len(tracks), plates_read=len(texts),
        distinct_plates=len(set(texts.values())), tickets=None,
        stage_ms={k: v * 1000.0 / max(frames, 1) for k, v in total.items()}, detect_every=1, plates=texts,
    )


_JOBS: dict[str, Callable[..., BenchResult]] = {"etle": run_etle, "baseline": run_baseline}


def _child(conn: Any, mode: str, clip: str, opts: BenchOptions, threads: int | None) -> None:
    """Process entry point: run one job, send progress and then the result (or the error)."""
    if threads:
        os.environ["ETLE_THREADS"] = str(threads)
    logging.basicConfig(level=logging.ERROR)  # the unsigned-evidence warning etc. are noise here
    try:
        res = _JOBS[mode](Path(clip), opts, lambda n: conn.send(("progress", n)))
        conn.send(("result", asdict(res)))
    except EtleError as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:  # reported to the parent, which turns it into one line
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def run_job(
    mode: str, clip: Path, opts: BenchOptions, *, progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> BenchResult:
    """Run one side of one clip in a fresh (spawned) process and return its figures."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, mode, str(clip), opts, threads), name=f"etle-bench-{mode}")
    proc.start()
    child.close()
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        while True:
            try:
                kind, payload = parent.recv()
            except EOFError:
                break
            if kind == "progress" and progress is not None:
                progress(int(payload))
            elif kind == "result":
                result = payload
            elif kind == "error":
                error = str(payload)
    finally:
        proc.join()
    if error is not None:
        raise EtleError(f"{mode} on {clip.name}: {error.splitlines()[0]}")
    if result is None:
        raise EtleError(f"{mode} on {clip.name}: the benchmark process died (exit code {proc.exitcode})")
    return BenchResult(**result)


@dataclass(frozen=True)
class Comparison:
    """etle against the baseline on one clip."""

    etle: BenchResult
    baseline: BenchResult | None

    @property
    def speedup(self) -> float | None:
        if self.baseline is None or self.baseline.fps <= 0:
            return None
        return self.etle.fps / self.baseline.fps


def clips_in(path: Path, suffixes: Sequence[str]) -> list[Path]:
    """The video files of a folder (sorted), or the one file given."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
