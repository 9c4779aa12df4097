"""What one batch worker does with a segment (no Ray here: :mod:`etle.batch.ray_backend` wraps
:class:`SegmentProcessor` in an actor, and tests call it directly).

A processor loads the models once (the vehicle detector; the plate detector and reader and the
rule set once per camera) and then runs segment after segment through :class:`etle.pipeline.Pipeline`
with a sink of its own, :class:`BatchSink`, which

* keeps only the violations its segment owns (:meth:`etle.batch.plan.SegmentPlan.owner`, from
  the first time each track was seen in the segment);
* gives each ticket its deterministic identity (:func:`etle.batch.plan.ticket_uid`) and writes
  nothing for one already stored (a segment run again after a crash);
* writes the evidence bundle in a scratch folder, uploads its files to the central evidence
  store (:mod:`etle.evidence.storage`: a folder or ``s3://``), and only then adds the ticket,
  pointing at the central copy, to the central database.

After the segment's last ticket, the done-marker is written (:mod:`etle.batch.ledger`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from etle import __version__
from etle.batch.camera import CameraBundle, unpack_camera
from etle.batch.ledger import SegmentDone, mark_done, write_marks
from etle.config.run import Device, RunOptions, StageOptions
from etle.batch.plan import Segment, SegmentPlan, event_of, run_id, ticket_uid
from etle.errors import EtleError, StoreError
from etle.ingest.joined import part_details
from etle.types import Frame, PlateResult, TrackedObject, Violation

log = logging.getLogger(__name__)


class BatchOptions(StageOptions):
    """How every segment of a batch runs: ``etle run``'s stage options
    (:class:`etle.config.run.StageOptions`), with one ONNX Runtime thread per worker (each worker
    holds one CPU of the cluster)."""

    threads: int = Field(1, ge=1)
    device: Device = "cpu"


@dataclass(frozen=True)
class SegmentTask:
    """One segment of one clip, with everything a worker needs (the camera by content)."""

    clip: str
    clip_sha256: str
    wall_start: datetime | None
    plan: SegmentPlan
    segment: Segment
    camera: CameraBundle | None
    wall_start_origin: str = "given"
    #: a recording in several files (ClipJob.parts); empty for one file
    parts: tuple[tuple[str, float], ...] = ()

    @property
    def label(self) -> str:
        return f"{Path(self.clip).name}[{self.segment.index + 1}/{len(self.plan.segments)}]"


@dataclass(frozen=True)
class SegmentResult:
    """What a worker reports for a segment."""

    clip: str
    clip_sha256: str
    segment: str
    frames: int
    #: seconds of video the segment owns (its overlap with neighbours not counted twice)
    video_s: float
    elapsed_s: float
    tickets_new: int
    tickets_present: int
    not_owned: int
    violations: int
    #: milliseconds spent per stage over the whole segment
    stage_total_ms: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    #: CPU seconds the worker's process used for the segment (all its threads: decode, inference)
    cpu_s: float = 0.0


#: the track places a segment keeps: one box per track every MARK_STEP_S of the clip's time
MARK_STEP_S = 0.5


class TrackMarks:
    """Where each track was, on a grid of the clip's time (every ``MARK_STEP_S``): the box on
    the frame nearest each grid time, within half a step.  Neighbouring segments read the same
    frames where their windows overlap, so their tracks of one vehicle stand in the same place
    at the same grid times (:func:`etle.batch.plan.repeats`)."""

    def __init__(self, step_s: float = MARK_STEP_S) -> None:
        self.step_s = step_s
        self._best: dict[int, dict[int, tuple[float, tuple[float, float, float, float]]]] = {}  # track -> grid ms -> (|dt|, box)

    def note(self, objects: tuple[TrackedObject, ...], pts: float) -> None:
        k = round(pts / self.step_s)
        dt = abs(pts - k * self.step_s)
        at = round(k * self.step_s * 1000)
        for o in objects:
            held = self._best.setdefault(o.track_id, {}).get(at)
            if held is None or dt < held[0]:
                self._best[o.track_id][at] = (dt, (o.box.x1, o.box.y1, o.box.x2, o.box.y2))

    def of(self, track_id: int) -> dict[int, tuple[float, float, float, float]]:
        return {at: box for at, (_, box) in self._best.get(track_id, {}).items()}


class _FirstSeen:
    """A tracker wrapper that notes when each track id first appears (and its place at the cuts)."""

    def __init__(self, inner: Any, seen: dict[int, float], marks: TrackMarks | None = None) -> None:
        self.inner = inner
        self.seen = seen
        self.marks = marks

    def _note(self, objects: tuple[TrackedObject, ...], frame: Frame) -> tuple[TrackedObject, ...]:
        for o in objects:
            self.seen.setdefault(o.track_id, frame.pts)
        if self.marks is not None:
            self.marks.note(objects, frame.pts)
        return objects

    def update(self, detections: Any, frame: Frame) -> tuple[TrackedObject, ...]:
        return self._note(self.inner.update(detections, frame), frame)


class _FirstSeenPredicting(_FirstSeen):
    def predict(self, frame: Frame) -> tuple[TrackedObject, ...]:
        return self._note(self.inner.predict(frame), frame)


def first_seen_factory(base: Callable[..., Any], seen: dict[int, float], marks: TrackMarks | None = None) -> Callable[..., Any]:
    def make(*args: Any) -> Any:
        inner = base(*args)
        cls = _FirstSeenPredicting if callable(getattr(inner, "predict", None)) else _FirstSeen
        return cls(inner, seen, marks)

    return make


class BatchSink:
    """The sink of one segment (see the module docstring)."""

    def __init__(
        self, *, base: Any, writer: Any, storage: Any, task: SegmentTask, first_seen: dict[int, float],
    ) -> None:
        self.base = base  # the EvidenceSink build_pipeline made: store, camera, models, zones
        self.writer = writer
        self.storage = storage
        self.task = task
        self.first_seen = first_seen
        self.present = 0
        self.not_owned = 0
        self.tickets: dict[int, int] = {}  # ticket id -> track id, new or found again
        self.violators: set[int] = set()  # tracks with a violation here, kept or not

    def record(
        self,
        violation: Violation,
        key_frame: Frame,
        key_objects: tuple[TrackedObject, ...],
        clip: tuple[tuple[Frame, tuple[TrackedObject, ...]], ...],
        plate: PlateResult,
        source_info: Any,
    ) -> tuple[int, Path] | None:
        from etle.articles import article_for
        from etle.evidence.builder import EvidenceRequest, discard_bundle
        from etle.evidence.commit import ticket_from_request, with_bundle

        task, seg = self.task, self.task.segment
        self.violators.add(violation.track_id)
        start = self.first_seen.get(violation.track_id, violation.pts)
        event = event_of(seg, violation.rule, start, violation.pts)
        owner = task.plan.owner(event)
        if owner != seg.index:
            self.not_owned += 1
            log.info("%s: %s by track %d at %.2f s (seen from %.2f s) belongs to segment %d",
                     task.label, violation.rule, violation.track_id, violation.pts, start, owner + 1)
            return None
        base = self.base
        violation = base.with_picture_clock(violation, key_frame)
        art = article_for(violation.rule)
        request = EvidenceRequest(
            violation=violation, camera=base.camera, key_frame=key_frame, key_objects=key_objects, clip=clip,
            plate=plate, article=art.article if art else None, fine=art.max_fine_idr if art else None,
            models=base.models, software_version=__version__,
            config_hash=base.camera_cfg.config_hash() if base.camera_cfg is not None else None,
            extra={"source": source_info.name, "wall_start_origin": source_info.wall_start_origin,
                   "clip_sha256": task.clip_sha256, "batch_segment": seg.key, **part_details(source_info, key_frame.pts)},
            zones=base.zones or None,
        )
        fields = {"source": source_info.name, "run_id": run_id(task.clip_sha256, seg),
                  "uid": ticket_uid(task.clip_sha256, seg, violation.rule, violation.track_id)}
        draft = ticket_from_request(request, None, fields)
        store = base.store
        existing = store.find_duplicate(draft)
        if existing is not None:
            self.present += 1
            self.tickets[existing] = violation.track_id
            log.info("%s: ticket of track %d / %s already stored (%d)", task.label, violation.track_id, violation.rule, existing)
            return None
        bundle = self.writer.write(request)
        uploaded: list[str] = []
        try:
            for name, digest in sorted(bundle.all_files().items()):
                key = f"{bundle.relpath}/{name}"
                self.storage.put_file(key, bundle.path / name, digest.sha256)
                uploaded.append(key)
            ticket = replace(with_bundle(draft, bundle), evidence_path=self.storage.uri(bundle.relpath))
            ticket_id, created = store.add_or_get(ticket)
        except BaseException:
            self._forget(uploaded)
            raise
        finally:
            try:
                discard_bundle(bundle.path)
            except StoreError as exc:  # scratch only: the central copy is what counts
                log.warning("scratch bundle %s not removed: %s", bundle.path, exc)
        self.tickets[ticket_id] = violation.track_id
        if not created:  # a racing writer stored the same identity between the check and the insert
            self._forget(uploaded)
            self.present += 1
            return None
        return ticket_id, Path(ticket.evidence_path)

    def _forget(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.storage.delete(key)
            except EtleError as exc:
                log.error("orphaned evidence %s could not be removed: %s", key, exc)


class SegmentProcessor:
    """Holds the models of one worker and runs segments (see the module docstring)."""

    def __init__(self, db_url: str, evidence: str, options: BatchOptions, *, scratch: Path | None = None) -> None:
        self.db_url = db_url
        self.evidence = evidence
        self.options = options
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="etle-batch-"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        if options.threads > 0:
            os.environ.setdefault("ETLE_THREADS", str(options.threads))
        self._device_error: EtleError | None = None
        if options.device != "cpu":
            from etle.onnxrt import set_device

            try:
                set_device(options.device)
            except EtleError as exc:  # reported with the first segment (the actor itself must start)
                self._device_error = exc
        self._detector: Any = None
        self._pipelines: dict[tuple[str, tuple[int, int] | None], tuple[Any, Any]] = {}
        self._store: Any = None
        self._storage: Any = None
        self.loads = 0  # how many times models were loaded (once per camera)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _central(self) -> tuple[Any, Any]:
        if self._store is None:
            from etle.store import open_store

            self._store = open_store(self.db_url)
        if self._storage is None:
            from etle.evidence.storage import open_evidence_storage

            self._storage = open_evidence_storage(self.evidence)
        return self._store, self._storage

    def _pipeline(self, camera: CameraBundle | None, frame_size: tuple[int, int] | None = None) -> tuple[Any, Any]:
        """The base pipeline of a camera file fitted to ``frame_size`` (etle.camera.fit), built
        once per camera and size."""
        key = (camera.sha256 if camera is not None else "", frame_size)
        if key in self._pipelines:
            return self._pipelines[key]
        from etle.runner import build_pipeline

        camera_path = unpack_camera(camera, self.scratch / "cameras" / key[0][:16]) if camera is not None else None
        options = RunOptions.of(self.options, out_dir=self.scratch / "base", db_url=self.db_url)
        pipeline, cfg = build_pipeline(camera_path, options, detector=self._detector, frame_size=frame_size)
        from etle.detect.tiles import untiled

        self._detector = untiled(pipeline.detector)  # the next camera's tiles are its own
        self.loads += 1
        self._pipelines[key] = (pipeline, cfg)
        return pipeline, cfg

    def process(self, task: SegmentTask, progress: Callable[[int], None] | None = None) -> SegmentResult:
        """Run one segment to its end and record its done-marker; typed errors for bad input."""
        from etle.batch.source import JoinedSegmentSource, SegmentSource
        from etle.evidence.builder import EvidenceWriter
        from etle.ingest.sources import VideoFileSource
        from etle.pipeline import Pipeline

        if self._device_error is not None:
            raise self._device_error
        seg = task.segment
        store, storage = self._central()
        src: SegmentSource | JoinedSegmentSource
        if task.parts:
            src = JoinedSegmentSource(task.parts, seg.read_start_s, seg.read_end_s, wall_start=task.wall_start,
                                      start_origin=task.wall_start_origin, inclusive_end=seg.last)
        else:
            src = SegmentSource(VideoFileSource(task.clip, wall_start=task.wall_start, start_origin=task.wall_start_origin),
                                seg.read_start_s, seg.read_end_s,
                                inclusive_end=seg.last)
        size = (src.info.width, src.info.height)
        base, _ = self._pipeline(task.camera, size if min(size) > 0 else None)
        first_seen: dict[int, float] = {}
        marks = TrackMarks()
        sink = None
        if base.sink is not None:
            base_sink = base.sink
            writer = EvidenceWriter(self.scratch / "evidence", signer=base_sink.writer.signer, chained=False)
            sink = BatchSink(base=base_sink, writer=writer, storage=storage, task=task, first_seen=first_seen)
        pipeline = Pipeline(
            detector=base.detector, tracker_factory=first_seen_factory(base.tracker_factory, first_seen, marks),
            rules_factory=base.rules_factory, guard_factory=base.guard_factory, signal_factory=base.signal_factory,
            plate_stage_factory=base.plate_stage_factory, sink=sink, config=base.config, motion_factory=base.motion_factory,
            frame_check=base.frame_check,  # fitted to this size above: a mismatch is an error, not a refit
        )
        pending = [0]
        last = [time.monotonic()]

        def tick(_frame: Frame) -> None:
            pending[0] += 1
            now = time.monotonic()
            if progress is not None and now - last[0] >= 0.5:
                progress(pending[0])
                pending[0] = 0
                last[0] = now

        cpu0 = time.process_time()
        summary = pipeline.run_source(src, progress=tick)
        cpu_s = time.process_time() - cpu0
        if progress is not None and pending[0]:
            progress(pending[0])
        if sink is not None:  # before the done-marker: a finished segment always has its marks
            owner = {track: tid for tid, track in sink.tickets.items()}
            write_marks(store.engine, task.clip_sha256, seg.key,
                        {track: (owner.get(track), marks.of(track)) for track in sink.violators})
        mark_done(store.engine, SegmentDone(
            clip_sha256=task.clip_sha256, segment=seg.key, source=task.clip, frames=summary.frames,
            tickets=summary.tickets, elapsed_s=summary.elapsed_s, worker=self.worker,
        ))
        return SegmentResult(
            clip=task.clip, clip_sha256=task.clip_sha256, segment=seg.key, frames=summary.frames,
            video_s=seg.end_s - seg.start_s, elapsed_s=summary.elapsed_s,
            tickets_new=summary.tickets, tickets_present=sink.present if sink else 0,
            not_owned=sink.not_owned if sink else 0, violations=summary.violations,
            stage_total_ms={k: v * summary.frames for k, v in summary.stage_ms.items()}, worker=self.worker,
            cpu_s=cpu_s,
        )
