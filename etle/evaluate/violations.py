"""``etle eval violations``: the tickets etle writes on real clips against labelled events.

A *truth file* (YAML, validated with file:line errors) lists clips.  Each clip names its video
and camera file, the time windows that count, and the events a person sees in the frames::

    version: 1
    tolerance_s: 1.0                 # slack around every event window
    clips:
      - name: banjarmasin
        video: ../../../shared/data/videos/id_dishub_banjarmasin_stopline.mp4
        camera: ../../examples/cameras/id_dishub_banjarmasin_stopline.yaml
        windows: [[0.0, 9.6]]         # seconds of video that are scored (default: all)
        rules: [red_light, stop_line] # rules scored here (default: the camera's rules)
        events:
          - rule: red_light
            t: [1.0, 2.4]             # the violation happens within this window
            at: 1.6                   # a moment the vehicle is clearly visible ...
            point: [262, 150]         # ... and a pixel on it then (frame coordinates)
            label: car
            plate: DA1234AB           # only where a person can read it
            note: dark car crosses the line in the red phase
          - rule: stop_line
            t: [0, 9.6]
            at: 4.0
            point: [180, 160]
            uncertain: true           # not scored either way

Paths are relative to the truth file.  The matching rules (also in ``docs/accuracy.md``):

1. A ticket is *scored* when its rule is scored on the clip and its time (the violation's frame
   time) lies inside a counted window.  Other tickets are listed, not scored.
2. A ticket *matches* an event when the rules are equal, the ticket time lies in the event's
   window widened by ``tolerance_s`` on each side, and the ticket's vehicle is the event's
   vehicle: the ticket's track, at its observation nearest to ``at`` (no further than
   ``max_gap_s``), has a box containing ``point`` (boxes grown by ``box_margin`` of their size).
   For an event marked ``stationary`` (the vehicle stands at ``point`` all through the window)
   the track's observation nearest to the ticket's own time is taken instead.
3. Matching is one to one, closest in time first.  A matched certain event is a true positive;
   a ticket matched to an ``uncertain`` event is ignored; a scored ticket matched to nothing is a
   false positive; a certain event inside a counted window matched by no ticket is a miss.
4. Plates: on true positives whose event has a ``plate``, the ticket's plate is *exact* (equal
   after normalisation), *unread* (``?``: the consensus did not hold, candidates kept for the
   officer) or *wrong* (a confident, different plate -- the costly case).

The pipeline is the one ``etle run`` builds (:func:`etle.runner.build_pipeline`), with its
evidence and tickets written to a scratch folder and database; the evaluation only watches the
tracker's boxes and the sink's tickets.  Matching and scoring are pure functions.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from etle.config.run import StageOptions
from etle.types import Box, Frame, PlateResult, TrackedObject, Violation

__all__ = [
    "ClipResult",
    "EvalOptions",
    "Outcome",
    "RuleScore",
    "TicketObs",
    "TruthClip",
    "TruthEvent",
    "TruthFile",
    "evaluate_clip",
    "evaluate_truth",
    "load_truth",
    "match_clip",
    "run_clip",
    "report_dict",
    "score",
    "select_clips",
]

Point = tuple[float, float]


def _rule_names() -> tuple[str, ...]:
    from etle.camera.config import RulesConfig

    return tuple(RulesConfig.model_fields)


def share(part: int, whole: int) -> float | None:
    """``part / whole``, None when nothing was counted (precision and recall of a scorer)."""
    return part / whole if whole else None


def normalise_plate(text: str) -> str:
    """Upper case, letters and digits only (``"R 5154 WP"`` -> ``"R5154WP"``)."""
    return re.sub(r"[^0-9A-Z]", "", text.upper())


# ------------------------------------------------------------------------------ the truth file
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TruthEvent(_Model):
    """One violation a person sees in the frames."""

    rule: str = Field(description="the rule that should fire (a camera-file rule name)")
    t: tuple[float, float] = Field(description="seconds of video within which the violation happens")
    at: float | None = Field(None, description="a moment the vehicle is clearly visible (default: the window's middle)")
    point: Point = Field(description="a pixel on the vehicle at `at` (frame coordinates)")
    label: str | None = Field(None, description="the vehicle's class, for the record (not matched)")
    plate: str | None = Field(None, description="the registration where a person can read it")
    uncertain: bool = Field(False, description="not scored: a ticket for it is neither right nor wrong")
    stationary: bool = Field(
        False,
        description="the vehicle stands at `point` throughout the window (a queue at a red light): "
        "a ticket's track matches at its observation nearest to the ticket's own time, so that a "
        "track that began after `at` (the tracker lost and found the vehicle) still matches",
    )
    note: str = ""

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, v: str) -> str:
        if v not in _rule_names():
            raise ValueError(f"unknown rule '{v}'; known: {', '.join(_rule_names())}")
        return v

    @field_validator("t")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 <= v[0] <= v[1]):
            raise ValueError("must be [start, end] seconds with 0 <= start <= end")
        return v

    @field_validator("plate")
    @classmethod
    def _plate(cls, v: str | None) -> str | None:
        if v is None:
            return None
        n = normalise_plate(v)
        if not n:
            raise ValueError("a plate needs letters or digits")
        return n

    @property
    def moment(self) -> float:
        return self.at if self.at is not None else (self.t[0] + self.t[1]) / 2.0


class TruthClip(_Model):
    """One clip: where it is, which camera file runs on it, what counts and what happens."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    video: Path
    camera: Path
    windows: tuple[tuple[float, float], ...] | None = Field(None, description="counted seconds; default the whole clip")
    rules: tuple[str, ...] | None = Field(None, description="rules scored here; default the camera's enabled rules")
    max_seconds: float | None = Field(None, gt=0, description="process only the first seconds")
    note: str = ""
    events: tuple[TruthEvent, ...] = ()

    @field_validator("rules")
    @classmethod
    def _rules(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            bad = [r for r in v if r not in _rule_names()]
            if bad:
                raise ValueError(f"unknown rule(s) {', '.join(bad)}; known: {', '.join(_rule_names())}")
        return v

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: tuple[tuple[float, float], ...] | None) -> tuple[tuple[float, float], ...] | None:
        for a, b in v or ():
            if not (0 <= a < b):
                raise ValueError("each window must be [start, end] seconds with 0 <= start < end")
        return v

    def counted(self, t: float) -> bool:
        return self.windows is None or any(a <= t <= b for a, b in self.windows)

    def overlaps(self, window: tuple[float, float]) -> bool:
        return self.windows is None or any(window[0] <= b and a <= window[1] for a, b in self.windows)


class TruthFile(_Model):
    version: Literal[1] = 1
    tolerance_s: float = Field(1.0, ge=0, description="slack on each side of an event window")
    max_gap_s: float = Field(0.5, gt=0, description="largest time between `at` and the track's nearest box")
    box_margin: float = Field(0.1, ge=0, le=1, description="boxes grown by this share of their size before the point test")
    note: str = Field("", description="how the file was labelled and what it judges (shown in docs/accuracy.md)")
    clips: tuple[TruthClip, ...]

    @model_validator(mode="after")
    def _unique(self) -> "TruthFile":
        names = [c.name for c in self.clips]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"clip names must be unique: {', '.join(dup)}")
        return self


def load_truth(path: str | Path) -> TruthFile:
    """Read a truth file (errors name file:line: field) with paths made relative to it."""
    from etle.camera.config import load_located

    path = Path(path)
    truth = load_located(path, TruthFile, what="truth file")
    base = path.resolve().parent
    clips = tuple(
        c.model_copy(update={"video": (base / c.video) if not c.video.is_absolute() else c.video,
                             "camera": (base / c.camera) if not c.camera.is_absolute() else c.camera})
        for c in truth.clips
    )
    return truth.model_copy(update={"clips": clips})


# ------------------------------------------------------------------------------------ matching
@dataclass(frozen=True)
class TicketObs:
    """A ticket the pipeline wrote, with what the evaluation needs to place it."""

    rule: str
    track_id: int
    pts: float
    label: str
    box: Box
    plate: str = ""  # "" = unread ("?")
    plate_confidence: float = 0.0
    candidates: tuple[str, ...] = ()
    #: the track's boxes by time (observed boxes, else predicted ones)
    track: tuple[tuple[float, Box], ...] = ()

    def box_near(self, t: float, max_gap_s: float) -> Box | None:
        """The track's box nearest in time to ``t`` (the violation box when no history)."""
        points = self.track or ((self.pts, self.box),)
        pts, box = min(points, key=lambda p: abs(p[0] - t))
        return box if abs(pts - t) <= max_gap_s else None


def _contains(box: Box, point: Point, margin: float) -> bool:
    mx, my = margin * box.width, margin * box.height
    return box.x1 - mx <= point[0] <= box.x2 + mx and box.y1 - my <= point[1] <= box.y2 + my


def _matches(ticket: TicketObs, event: TruthEvent, truth: TruthFile) -> bool:
    if ticket.rule != event.rule:
        return False
    if not (event.t[0] - truth.tolerance_s <= ticket.pts <= event.t[1] + truth.tolerance_s):
        return False
    moment = ticket.pts if event.stationary else event.moment
    box = ticket.box_near(moment, truth.max_gap_s)
    return box is not None and _contains(box, event.point, truth.box_margin)


Kind = Literal["tp", "fp", "fn", "ignored", "outside"]


@dataclass(frozen=True)
class Outcome:
    """One line of a clip's report: a ticket, an event, or both (a match)."""

    kind: Kind
    rule: str
    ticket: TicketObs | None = None
    event: TruthEvent | None = None

    @property
    def plate_status(self) -> str | None:
        """exact / unread / wrong for true positives with a labelled plate, else None."""
        if self.kind != "tp" or self.event is None or self.event.plate is None or self.ticket is None:
            return None
        if not self.ticket.plate:
            return "unread"
        return "exact" if normalise_plate(self.ticket.plate) == self.event.plate else "wrong"


@dataclass(frozen=True)
class ClipResult:
    clip: str
    rules: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    frames: int = 0
    seconds: float = 0.0
    elapsed_s: float = 0.0


def match_clip(clip: TruthClip, tickets: Sequence[TicketObs], truth: TruthFile, scored_rules: Iterable[str]) -> tuple[Outcome, ...]:
    """Match a clip's tickets to its events (see the module docstring for the rules)."""
    scored = set(scored_rules)
    pairs = []
    for i, tk in enumerate(tickets):
        for j, ev in enumerate(clip.events):
            if _matches(tk, ev, truth):
                mid = (ev.t[0] + ev.t[1]) / 2.0
                inside = 0.0 if ev.t[0] <= tk.pts <= ev.t[1] else 1.0
                pairs.append((inside, abs(tk.pts - mid), i, j))
    pairs.sort()
    t_used: dict[int, int] = {}
    e_used: set[int] = set()
    for _, _, i, j in pairs:
        if i in t_used or j in e_used:
            continue
        t_used[i] = j
        e_used.add(j)
    out: list[Outcome] = []
    for i, tk in enumerate(tickets):
        if i in t_used:
            ev = clip.events[t_used[i]]
            out.append(Outcome("ignored" if ev.uncertain else "tp", tk.rule, tk, ev))
        elif tk.rule in scored and clip.counted(tk.pts):
            out.append(Outcome("fp", tk.rule, tk, None))
        else:
            out.append(Outcome("outside", tk.rule, tk, None))
    for j, ev in enumerate(clip.events):
        if j in e_used or ev.uncertain or ev.rule not in scored or not clip.overlaps(ev.t):
            continue
        out.append(Outcome("fn", ev.rule, None, ev))
    return tuple(sorted(out, key=lambda o: (o.rule, o.ticket.pts if o.ticket else o.event.t[0] if o.event else 0.0)))


@dataclass(frozen=True)
class RuleScore:
    rule: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    ignored: int = 0
    plates_labelled: int = 0
    plates_exact: int = 0
    plates_unread: int = 0
    plates_wrong: int = 0

    @property
    def precision(self) -> float | None:
        return share(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return share(self.tp, self.tp + self.fn)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["precision"] = self.precision
        d["recall"] = self.recall
        return d


def score(results: Sequence[ClipResult]) -> dict[str, RuleScore]:
    """Per-rule totals over clips (rules scored somewhere, even with no event, are listed)."""
    acc: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for res in results:
        for rule in res.rules:
            acc[rule]  # noqa: B018 -- listed even when nothing happened
        for o in res.outcomes:
            if o.kind == "outside":
                continue
            acc[o.rule][o.kind] += 1
            status = o.plate_status
            if status is not None:
                acc[o.rule]["plates_labelled"] += 1
                acc[o.rule][f"plates_{status}"] += 1
    return {rule: RuleScore(rule, **dict(v)) for rule, v in sorted(acc.items())}


# ------------------------------------------------------------------------------- running clips
class EvalOptions(StageOptions):
    """How the pipeline runs for the evaluation: ``etle run``'s stage options
    (:class:`etle.config.run.StageOptions`; ``profile`` names the fast or default one), and
    where each clip's evidence is kept (default: a scratch folder, removed)."""

    out_dir: Path | None = None


class _RecordingTracker:
    """Wraps the real tracker and remembers every track's boxes by frame time."""

    def __init__(self, inner: Any, history: dict[int, list[tuple[float, Box, bool]]]) -> None:
        self._inner = inner
        self._history = history
        if hasattr(inner, "predict"):
            self.predict = self._predict

    def _keep(self, objects: tuple[TrackedObject, ...], frame: Frame) -> tuple[TrackedObject, ...]:
        for o in objects:
            self._history[o.track_id].append((frame.pts, o.box, bool(getattr(o, "predicted", False))))
        return objects

    def update(self, detections: Any, frame: Frame) -> tuple[TrackedObject, ...]:
        return self._keep(self._inner.update(detections, frame), frame)

    def _predict(self, frame: Frame) -> tuple[TrackedObject, ...]:
        return self._keep(self._inner.predict(frame), frame)


class _RecordingSink:
    """Passes every ticket to the real sink and keeps its violation and plate."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seen: list[tuple[Violation, PlateResult]] = []

    def record(self, violation: Violation, key_frame: Frame, key_objects: Any, clip: Any, plate: PlateResult, source_info: Any) -> Any:
        res = self._inner.record(violation, key_frame, key_objects, clip, plate, source_info)
        if res is not None:
            self.seen.append((violation, plate))
        return res


class _DropUnsignedWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("no site key")


def _track_points(history: Sequence[tuple[float, Box, bool]]) -> tuple[tuple[float, Box], ...]:
    observed = [(t, b) for t, b, predicted in history if not predicted]
    return tuple(observed or [(t, b) for t, b, _ in history])


def run_clip(clip: TruthClip, options: EvalOptions, progress: Callable[[Frame], None] | None = None, *,
             detector: Any = None) -> tuple[list[TicketObs], Any]:
    """Run ``etle run``'s pipeline on one clip; the tickets it wrote and the run summary.
    ``detector`` replaces the vehicle detector ``options`` name (one loaded once for several
    clips; see :func:`etle.runner.build_pipeline`)."""
    from etle.camera.config import load_camera
    from etle.errors import SourceError
    from etle.ingest.sources import open_source
    from etle.config.run import RunOptions
    from etle.config.settings import settings
    from etle.runner import _tracker_factory, build_pipeline

    if not clip.video.is_file():
        raise SourceError(f"{clip.name}: video not found: {clip.video}")
    with tempfile.TemporaryDirectory(prefix="etle-eval-") as scratch:
        out_dir = (options.out_dir / clip.name) if options.out_dir is not None else Path(scratch) / "out"
        db = Path(scratch) / "tickets.db"
        runner_log = logging.getLogger("etle.runner")
        unsigned = _DropUnsignedWarning()  # the scratch run is unsigned on purpose; other warnings stay
        runner_log.addFilter(unsigned)
        camera = load_camera(clip.camera) if clip.camera is not None else None
        wall = camera.start_time if camera is not None else None
        src = open_source(str(clip.video), wall_start=wall, max_seconds=clip.max_seconds)
        if src.info.wall_start is None:
            from datetime import datetime, timezone

            src = open_source(str(clip.video), wall_start=datetime(2000, 1, 1, tzinfo=timezone.utc), max_seconds=clip.max_seconds)
        try:
            run = RunOptions.of(options, out_dir=out_dir, db_url=f"sqlite:///{db}", max_seconds=clip.max_seconds)
            env = settings().model_copy(update={"keys_dir": Path(scratch) / "no-keys"})
            # the camera fitted to the clip's frame size (etle.camera.fit), as `etle run` does
            pipeline, camera = build_pipeline(camera, run, env, detector=detector, frame_size=(src.info.width, src.info.height))
        finally:
            runner_log.removeFilter(unsigned)
        pipeline.refit = None  # the recording stages below are this pipeline's: no other is built
        history: dict[int, list[tuple[float, Box, bool]]] = defaultdict(list)
        pipeline.tracker_factory = lambda *a: _RecordingTracker(_tracker_factory(*a), history)
        sink = _RecordingSink(pipeline.sink)
        pipeline.sink = sink
        summary = pipeline.run_source(src, progress=progress)
        tickets = [
            TicketObs(
                rule=v.rule, track_id=v.track_id, pts=float(v.pts), label=v.label, box=v.box,
                plate=plate.text, plate_confidence=float(plate.confidence),
                candidates=tuple(dict.fromkeys(c.text for c in plate.candidates if c.text)),
                track=_track_points(history.get(v.track_id, ())),
            )
            for v, plate in sink.seen
        ]
    return tickets, summary


def scored_rules_of(clip: TruthClip) -> tuple[str, ...]:
    """The clip's scored rules: its own list, else the rules its camera file enables."""
    if clip.rules is not None:
        return clip.rules
    from etle.camera.config import load_camera

    cam = load_camera(clip.camera)
    return tuple(name for name in _rule_names() if getattr(cam.rules, name, None) is not None)


def evaluate_clip(truth: TruthFile, clip: TruthClip, options: EvalOptions,
                  progress: Callable[[Frame], None] | None = None, *, detector: Any = None) -> ClipResult:
    """Run one clip and match its tickets to its events (``detector``: as for :func:`run_clip`)."""
    rules = scored_rules_of(clip)
    tickets, summary = run_clip(clip, options, progress, detector=detector)
    return ClipResult(
        clip=clip.name, rules=rules, outcomes=match_clip(clip, tickets, truth, rules),
        frames=summary.frames, seconds=summary.video_seconds, elapsed_s=summary.elapsed_s,
    )


def select_clips(truth: TruthFile, only: Sequence[str] = ()) -> tuple[TruthClip, ...]:
    """The clips named in ``only`` (all when empty); an unknown name is a ConfigError."""
    from etle.errors import ConfigError

    names = {c.name for c in truth.clips}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ConfigError(f"no clip named {', '.join(unknown)} in the truth file; clips: {', '.join(sorted(names))}")
    return tuple(c for c in truth.clips if not only or c.name in only)


def evaluate_truth(truth: TruthFile, options: EvalOptions, *, only: Sequence[str] = (), detector: Any = None) -> list[ClipResult]:
    """Run and match every clip of ``truth`` (or the ``only`` ones); ``detector``: as for :func:`run_clip`."""
    return [evaluate_clip(truth, clip, options, detector=detector) for clip in select_clips(truth, only)]


# ------------------------------------------------------------------------------------- report
def _obs_dict(t: TicketObs | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "track_id": t.track_id, "pts": round(t.pts, 3), "label": t.label,
        "box": [round(v, 1) for v in (t.box.x1, t.box.y1, t.box.x2, t.box.y2)],
        "plate": t.plate or "?", "plate_confidence": round(t.plate_confidence, 3), "candidates": list(t.candidates),
    }


def _event_dict(e: TruthEvent | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"t": list(e.t), "at": e.moment, "point": list(e.point), "label": e.label, "plate": e.plate,
            "uncertain": e.uncertain, "note": e.note}


def report_dict(truth_path: Path, truth: TruthFile, options: EvalOptions, results: Sequence[ClipResult]) -> dict[str, Any]:
    """The JSON report: options, per-rule scores, per-clip outcomes."""
    scores = score(results)
    total = RuleScore("all", *(sum(getattr(s, f) for s in scores.values()) for f in
                               ("tp", "fp", "fn", "ignored", "plates_labelled", "plates_exact", "plates_unread", "plates_wrong")))
    return {
        "kind": "violations",
        "truth": str(truth_path),
        "profile": options.profile,
        "options": {"detector": options.detector, "detect_fps": options.detect_fps, "reader": options.reader,
                    "plate_detector": options.plate_detector, "read_plates": options.read_plates,
                    "country": options.country, "detect_on_motion": options.detect_on_motion},
        "matching": {"tolerance_s": truth.tolerance_s, "max_gap_s": truth.max_gap_s, "box_margin": truth.box_margin},
        "rules": {rule: s.as_dict() for rule, s in scores.items()},
        "total": total.as_dict(),
        "clips": [
            {
                "clip": r.clip, "rules": list(r.rules), "frames": r.frames, "seconds": round(r.seconds, 2),
                "fps": round(r.frames / r.elapsed_s, 1) if r.elapsed_s > 0 else None,
                "outcomes": [
                    {"kind": o.kind, "rule": o.rule, "plate_status": o.plate_status,
                     "ticket": _obs_dict(o.ticket), "event": _event_dict(o.event)}
                    for o in r.outcomes
                ],
            }
            for r in results
        ],
    }


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def rule_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """The per-rule table rows of a report (the CLI and docs/accuracy.md share them)."""
    rows = []
    for rule, s in report["rules"].items():
        plates = f"{s['plates_exact']}/{s['plates_labelled']} exact, {s['plates_unread']} ?, {s['plates_wrong']} wrong" if s["plates_labelled"] else "-"
        rows.append([rule, str(s["tp"]), str(s["fp"]), str(s["fn"]), str(s["ignored"]),
                     fmt_ratio(s["precision"]), fmt_ratio(s["recall"]), plates])
    return rows


RULE_HEADER = ["rule", "TP", "FP", "missed", "ignored", "precision", "recall", "plates (TP with a readable plate)"]

