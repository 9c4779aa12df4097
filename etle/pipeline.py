"""The composition root: one place that wires the stages together and runs a source.

ingest -> view guard -> detect -> track -> signal -> rules -> plates -> evidence -> store.

Every stage is injected (tests pass fakes); :func:`build_pipeline` assembles the real ones from a
camera file and :class:`etle.config.run.RunOptions`.  State that belongs to one source (tracks, rule memory,
view guard, signal debouncing) is created fresh per source by :meth:`Pipeline.run_source`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Protocol, Sequence

import numpy as np

from etle.config.run import RunOptions, StageOptions
from etle.evidence.ring import DEFAULT_MAX_FRAMES, FrameRing
from etle.types import VEHICLE_LABELS, Detection, Frame, FrameContext, PlateResult, SignalState, TrackedObject, Violation

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- the stages
# What the pipeline asks of each stage: the real ones are assembled by etle.runner.build_pipeline,
# tests pass fakes.  A stage made per source comes from a factory (its state belongs to a source).


class DetectorStage(Protocol):
    """Vehicles and people in a BGR image (:mod:`etle.detect`)."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


class Tracker(Protocol):
    """Tracks from detections (:mod:`etle.track`); ``predict(frame)`` between detector runs is
    optional (a tracker without it keeps the last objects on a stride)."""

    def update(self, detections: Sequence[Detection], frame: Frame) -> tuple[TrackedObject, ...]: ...


class ViewGuardStage(Protocol):
    """Whether the camera still sees its reference view (:mod:`etle.viewguard`); rules pause
    while ``update(frame).ok`` is false."""

    def update(self, frame: Frame) -> Any: ...


class SignalStage(Protocol):
    """The traffic light's state at a frame (:mod:`etle.signal`)."""

    def state_at(self, frame: Frame) -> SignalState: ...


class RuleStage(Protocol):
    """The violations a frame completes (:class:`etle.rules.engine.RuleEngine`)."""

    def update(self, ctx: FrameContext) -> list[Violation]: ...


class PlateStageProtocol(Protocol):
    """Reads the plates of a frame's vehicles, tracks in ``priority`` first, and gives each track's
    consensus (:class:`etle.plate.stage.PlateStage`)."""

    def process(self, frame: Frame, vehicles: Sequence[TrackedObject], priority: Collection[int] = ()) -> Any: ...

    def result(self, track_id: int) -> PlateResult: ...


class MotionStage(Protocol):
    """Whether something moves across a rule line (:class:`etle.detect.motion.MotionGate`)."""

    empty: bool

    def moving(self, image: np.ndarray) -> bool: ...


def agreeing_frames(plate: PlateResult) -> int:
    """How many distinct frames gave a read spelling the plate's text exactly."""
    return len({c.frame_index for c in plate.candidates if c.text == plate.text})


def accept_plate(plate: PlateResult, min_confidence: float, min_agreement: int = 0, char_majority: float = 0.0) -> PlateResult:
    """The plate a ticket shows: the consensus text when confident enough, read alike from at
    least ``min_agreement`` distinct frames and, at every character, by more than
    ``char_majority`` of the reads that cover it (:func:`etle.plate.consensus.character_agreement`;
    0 leaves that check out), else unread (``?``; candidates, colour and category stay for the
    reviewer)."""
    if not plate.text:
        return plate
    if plate.confidence < min_confidence or agreeing_frames(plate) < min_agreement:
        return replace(plate, text="")
    if char_majority > 0:
        from etle.plate.consensus import character_agreement

        if character_agreement(plate.text, plate.candidates) <= char_majority:
            return replace(plate, text="")
    return plate


def detect_stride(cfg: StageOptions, source_fps: float) -> int:
    """Frames between two detector runs for a source of ``source_fps``."""
    if cfg.detect_every > 0:
        return cfg.detect_every
    if cfg.detect_fps <= 0 or source_fps <= 0:
        return 1
    return max(1, int(round(source_fps / cfg.detect_fps)))


@dataclass(frozen=True)
class RunSummary:
    """What one source produced."""

    source: str
    frames: int
    video_seconds: float
    elapsed_s: float
    tracks: int
    violations: int
    tickets: int
    view_pauses: int
    stage_ms: Mapping[str, float] = field(default_factory=dict)
    ticket_ids: tuple[int, ...] = ()
    evidence_paths: tuple[str, ...] = ()
    plates: Mapping[int, str] = field(default_factory=dict)  # track -> the plate a ticket would print (accept_plate)
    #: track -> its plate consensus where that is confident enough but a ticket would show ``?``
    #: (the reads do not agree enough: accept_plate); for the clerk, never for a ticket
    unconfirmed_plates: Mapping[int, str] = field(default_factory=dict)
    violations_by_rule: Mapping[str, int] = field(default_factory=dict)
    detect_every: int = 1
    detections: int = 0  # frames the detector ran on (stride + motion)
    motion_detections: int = 0  # of which off the stride, asked for by the motion gate
    #: frames of another size than the source began with, resized to it (etle.ingest.conform)
    resized_frames: int = 0
    #: the files of a recording run as one (etle.ingest.joined); empty for a single file
    parts: tuple[str, ...] = ()

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class _Pending:
    violation: Violation
    key_frame: Frame
    key_objects: tuple[TrackedObject, ...]
    clip: list[tuple[Frame, tuple[TrackedObject, ...]]]
    #: (pts, signal state) of every clip frame, when the camera has a signal
    signals: list[tuple[float, str]] = field(default_factory=list)


def signal_timeline(samples: Sequence[tuple[float, str]], source: str = "") -> dict[str, Any] | None:
    """Runs of equal signal state over a clip: ``{"source", "segments": [[start, end, state], ...]}``.

    Recorded with a violation (``details["signal_timeline"]``, so it is in the signed manifest)
    and drawn under the evidence overview: the officer sees the lamp's state before, at and
    after the crossing, not only at the key frame.
    """
    segments: list[list[Any]] = []
    for pts, state in samples:
        if segments and segments[-1][2] == state:
            segments[-1][1] = round(pts, 3)
        else:
            if segments:
                segments[-1][1] = round(pts, 3)  # a run lasts until the next state is seen
            segments.append([round(pts, 3), round(pts, 3), state])
    return {"source": source, "segments": segments} if segments else None


class _Timer:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    def __call__(self, stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.total[stage] += time.perf_counter() - t0


class Pipeline:
    """Runs sources through injected stages.  See :func:`build_pipeline` for the real ones."""

    def __init__(
        self,
        *,
        detector: DetectorStage,
        tracker_factory: Callable[..., Tracker],  # (updates per second[, fastest rate]) -> tracker
        rules_factory: Callable[[], RuleStage] | None = None,
        guard_factory: Callable[[], ViewGuardStage] | None = None,
        signal_factory: Callable[[], SignalStage] | None = None,
        plate_stage_factory: Callable[[], PlateStageProtocol] | None = None,
        sink: "ViolationSink | None" = None,
        config: RunOptions = RunOptions(),
        motion_factory: Callable[[tuple[int, int]], MotionStage | None] | None = None,
        frame_check: Callable[[int, int], Sequence[str]] | None = None,
        refit: "Callable[[int, int], Pipeline] | None" = None,
    ) -> None:
        self.detector = detector
        self.tracker_factory = tracker_factory
        self.rules_factory = rules_factory
        self.guard_factory = guard_factory
        self.signal_factory = signal_factory
        self.plate_stage_factory = plate_stage_factory
        #: ``(width, height) -> MotionGate`` for the camera's lines (None: no camera, no lines)
        self.motion_factory = motion_factory
        self.sink = sink
        self.config = config
        #: ``(width, height) -> problems``: why the camera's coordinates do not fit frames of
        #: that size (etle.camera.fit.check_frame); empty when they do
        self.frame_check = frame_check
        #: ``(width, height) -> Pipeline``: the same pipeline with the camera fitted to that size
        self.refit = refit

    def with_detector(self, detector: DetectorStage) -> "Pipeline":
        """The same stages with another detector (a stream of a shared, batching detector).
        ``run_source`` keeps its state per call, so pipelines sharing stages run side by side."""
        return Pipeline(
            detector=detector, tracker_factory=self.tracker_factory, rules_factory=self.rules_factory,
            guard_factory=self.guard_factory, signal_factory=self.signal_factory,
            plate_stage_factory=self.plate_stage_factory, sink=self.sink, config=self.config,
            motion_factory=self.motion_factory, frame_check=self.frame_check,
            refit=(lambda w, h: self.refit(w, h).with_detector(detector)) if self.refit is not None else None,  # type: ignore[misc]
        )

    def run_source(
        self,
        source: Any,
        progress: Callable[[Frame], None] | None = None,
        *,
        stop: Any | None = None,
        on_record: Callable[[Violation, int, Path], None] | None = None,
    ) -> RunSummary:
        """Run one source to its end (or until ``stop`` -- a ``threading.Event`` -- is set).

        On stop, violations already seen still get their evidence and ticket (with the frames
        collected so far), so a graceful shutdown loses nothing and writes nothing half-way.
        ``on_record(violation, ticket_id, evidence_path)`` is called after each new ticket.
        """
        cfg = self.config
        info = source.info
        problems = list(self.frame_check(info.width, info.height)) if self.frame_check is not None else []
        if problems:
            if self.refit is not None:  # the camera file declares the size it was drawn on
                log.info("%s: %dx%d frames; camera coordinates scaled to them", info.name, info.width, info.height)
                return self.refit(info.width, info.height).run_source(source, progress, stop=stop, on_record=on_record)
            from etle.errors import ConfigError

            raise ConfigError(f"{info.name}: {problems[0]}")
        stride = detect_stride(cfg, info.fps)
        rules = self.rules_factory() if self.rules_factory else None
        guard = self.guard_factory() if self.guard_factory else None
        signal = self.signal_factory() if self.signal_factory else None
        # the lamp's box when the signal is read from the picture: drawn enlarged in the evidence
        signal_region = getattr(signal, "region", None)
        plates = self.plate_stage_factory() if (self.plate_stage_factory and cfg.read_plates) else None
        gate = None
        if stride > 1 and cfg.detect_on_motion and self.motion_factory is not None:
            gate = self.motion_factory((info.width, info.height))
            if gate is not None and getattr(gate, "empty", False):
                gate = None
        detections = motion_detections = 0
        # with a motion gate, updates come at up to the source rate between stride frames
        tracker = self.tracker_factory(info.fps / stride, info.fps) if gate is not None else self.tracker_factory(info.fps / stride)
        predict = getattr(tracker, "predict", None)
        timer = _Timer()
        # the frames of the last pre_s seconds, for the clip before a violation (bounded in time
        # and, for any frame rate, in count)
        ring = FrameRing(max(cfg.pre_s, 1e-6), max_frames=max(DEFAULT_MAX_FRAMES, int(cfg.pre_s * (info.fps or 30.0) * 2) + 2))
        signal_ring: deque[tuple[float, str]] = deque()  # (pts, state) over the same pre_s window
        signal_source = ""
        pending: list[_Pending] = []
        tickets: list[int] = []
        evidence: list[str] = []
        seen_tracks: set[int] = set()
        by_rule: dict[str, int] = defaultdict(int)
        n_viol = 0
        view_pauses = 0
        was_ok = True
        frames = 0
        last_pts = 0.0
        objects: tuple[TrackedObject, ...] = ()
        started = time.perf_counter()

        def finish(p: _Pending) -> None:
            plate = plates.result(p.violation.track_id) if plates is not None else PlateResult("", 0.0)
            plate = accept_plate(plate, cfg.min_plate_confidence, cfg.min_plate_agreement, cfg.plate_char_majority)
            violation = p.violation
            timeline = signal_timeline(p.signals, signal_source)
            if timeline is not None and "signal_timeline" not in violation.details:
                violation = replace(violation, details={**violation.details, "signal_timeline": timeline})
            if (signal_region is not None and timeline is not None and "signal" in violation.details  # judged on the signal
                    and "signal_region" not in violation.details):
                violation = replace(violation, details={**violation.details, "signal_region": list(signal_region)})
            if self.sink is not None:
                res = timer("evidence", self.sink.record, violation, p.key_frame, p.key_objects, tuple(p.clip), plate, info)
                if res is not None:
                    tid, path = res
                    tickets.append(tid)
                    evidence.append(str(path))
                    if on_record is not None:
                        try:
                            on_record(violation, tid, path)
                        except Exception:  # a listener must never break the pipeline
                            log.exception("ticket listener failed for ticket %d", tid)

        frame_iter = source.frames()
        if cfg.prefetch > 0 and not getattr(source, "live", False):
            from etle.ingest.prefetch import prefetch

            frame_iter = prefetch(frame_iter, cfg.prefetch)
        conform = None
        if info.width > 0 and info.height > 0:
            from etle.camera.fit import ASPECT_TOLERANCE
            from etle.ingest.conform import SizeConformer

            conform = SizeConformer(info.name, info.width, info.height, aspect_tolerance=ASPECT_TOLERANCE)
        view_was_ok = True
        for frame in frame_iter:
            if stop is not None and stop.is_set():
                log.info("%s: stop requested at %.2f s; finishing pending evidence", info.name, last_pts)
                break
            if conform is not None:  # a frame of another size than the source began with
                frame = conform(frame)
            frames += 1
            last_pts = frame.pts
            detect_now = frames == 1 or frame.index % stride == 0
            if gate is not None and timer("motion", gate.moving, frame.image) and not detect_now:
                detect_now = True
                motion_detections += 1
            detections += int(detect_now)
            if guard is not None and detect_now:  # the view is checked when the detector runs
                status = timer("view_guard", guard.update, frame)
                guard_ok = bool(status.ok)
                if was_ok and not guard_ok:
                    log.info("%s: view differs from the reference at %.2f s: rules paused", info.name, frame.pts)
                elif guard_ok and not was_ok:
                    log.info("%s: view matches the reference again at %.2f s: rules resumed", info.name, frame.pts)
                was_ok = guard_ok
            # rules run on the reference view, in the shape the camera's coordinates fit
            view_ok = was_ok and (conform is None or conform.ok)
            if view_was_ok and not view_ok:
                view_pauses += 1
            view_was_ok = view_ok
            if detect_now:
                dets = timer("detect", self.detector.detect, frame.image)
                objects = timer("track", tracker.update, dets, frame)
            elif predict is not None:
                objects = timer("track", predict, frame)
            seen_tracks.update(o.track_id for o in objects)
            state = timer("signal", signal.state_at, frame) if signal is not None else None
            violations: list[Violation] = []
            if rules is not None:
                ctx = FrameContext(
                    frame=frame, objects=objects, signal=state, view_ok=view_ok,
                    plates=plates.result if plates is not None else None,
                )
                violations = timer("rules", rules.update, ctx)
            if plates is not None and detect_now:  # plates are read on observed boxes only
                vehicles = [o for o in objects if o.label in VEHICLE_LABELS and not o.predicted]
                # a ticket waiting for these plates puts its track first
                urgent = frozenset(p.violation.track_id for p in pending)
                timer("plate", plates.process, frame, vehicles, urgent)
            ring.push(frame, objects)
            if state is not None:
                signal_source = state.source
                signal_ring.append((frame.pts, state.state))
                while signal_ring and frame.pts - signal_ring[0][0] > cfg.pre_s:
                    signal_ring.popleft()
            for v in violations:
                n_viol += 1
                by_rule[v.rule] += 1
                log.info("%s: %s by track %d at %.2f s", info.name, v.rule, v.track_id, v.pts)
                pending.append(_Pending(v, frame, objects, list(ring.snapshot()), list(signal_ring)))
            still: list[_Pending] = []
            for p in pending:
                if p.key_frame is not frame:
                    p.clip.append((frame, objects))
                    if state is not None:
                        p.signals.append((frame.pts, state.state))
                if frame.pts - p.violation.pts >= cfg.post_s:
                    finish(p)
                else:
                    still.append(p)
            pending = still
            if progress is not None:
                progress(frame)
        for p in pending:
            finish(p)
        elapsed = time.perf_counter() - started
        plate_texts: dict[int, str] = {}
        unconfirmed: dict[int, str] = {}
        if plates is not None:
            for tid in sorted(seen_tracks):
                consensus = plates.result(tid)
                r = accept_plate(consensus, cfg.min_plate_confidence, cfg.min_plate_agreement, cfg.plate_char_majority)
                if r.text:
                    plate_texts[tid] = r.text
                elif consensus.text and consensus.confidence >= cfg.min_plate_confidence:
                    unconfirmed[tid] = consensus.text
        return RunSummary(
            source=info.name,
            frames=frames,
            video_seconds=last_pts,
            elapsed_s=elapsed,
            tracks=len(seen_tracks),
            violations=n_viol,
            tickets=len(tickets),
            view_pauses=view_pauses,
            stage_ms={k: v * 1000.0 / max(frames, 1) for k, v in timer.total.items()},
            ticket_ids=tuple(tickets),
            evidence_paths=tuple(evidence),
            plates=plate_texts,
            unconfirmed_plates=unconfirmed,
            violations_by_rule=dict(by_rule),
            detect_every=stride,
            detections=detections,
            motion_detections=motion_detections,
            resized_frames=conform.resized if conform is not None else 0,
            parts=tuple(name for name, _ in getattr(info, "parts", ())),
        )


class ViolationSink(Protocol):
    """Turns a violation (with its frames and plate) into evidence + a ticket."""

    def record(
        self,
        violation: Violation,
        key_frame: Frame,
        key_objects: tuple[TrackedObject, ...],
        clip: tuple[tuple[Frame, tuple[TrackedObject, ...]], ...],
        plate: PlateResult,
        source_info: Any,
    ) -> tuple[int, Path] | None: ...
