"""The rule suite as a whole: articles for every rule, purity, one violation per vehicle and rule."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from etle.articles import article_for
from etle.camera.config import RulesConfig
from etle.rules.dwell import NoStoppingRule, RestrictedLaneRule
from etle.rules.engine import RuleEngine
from etle.rules.stop_line import StopLineRule
from etle.rules.wrong_way import WrongWayRule
from etle.types import Box, Frame, FrameContext, SignalState, TrackedObject

START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
IMAGE = np.zeros((240, 400, 3), np.uint8)
BOX = ((0.0, 0.0), (400.0, 0.0), (400.0, 240.0), (0.0, 240.0))


def test_every_rule_has_an_article_and_a_fine():
    for name in RulesConfig.model_fields:
        art = article_for(name)
        assert art is not None, name
        assert art.article and art.max_fine_idr > 0, name


def rules():
    return [
        StopLineRule([("all", BOX)], grace_s=0.0, min_stopped_s=0.5),
        NoStoppingRule([("all", BOX)], min_dwell_s=1.0),
        RestrictedLaneRule([("all", BOX)], min_dwell_s=1.0),
        WrongWayRule([("all", BOX, (0.0, 1.0))], min_distance_px=10, min_duration_s=0.5),
    ]


def contexts():
    out = []
    for i in range(60):
        y = 200 - 3 * i if i < 30 else 113  # up the picture, then stopped
        objs = (TrackedObject(1, Box(180, y - 20, 220, y), "car", 0.9), TrackedObject(2, Box(50, 100, 90, 130), "car", 0.9))
        out.append(FrameContext(Frame("t", i, i / 10, IMAGE, wall_start=START), objs, SignalState("red")))
    return out


def test_rules_are_pure_functions_of_the_frames():
    """The same frames give the same violations: no wall clock, no hidden global state."""
    runs = []
    for _ in range(2):
        eng = RuleEngine(rules())
        runs.append([(v.rule, v.track_id, v.frame_index, dict(v.details)) for c in contexts() for v in eng.update(c)])
    assert runs[0] == runs[1]
    assert {(r, t) for r, t, _, _ in runs[0]} == {
        ("stop_line", 1), ("stop_line", 2), ("no_stopping", 2), ("no_stopping", 1),
        ("busway", 1), ("busway", 2), ("wrong_way", 1),
    }


def test_one_violation_per_vehicle_and_rule():
    fired: list[tuple[str, int]] = []
    eng = RuleEngine(rules())
    for c in contexts():
        fired += [(v.rule, v.track_id) for v in eng.update(c)]
    # keep going long after: nothing fires twice
    for i, c in enumerate(contexts()):
        later = FrameContext(Frame("t", 100 + i, 10 + i / 10, IMAGE, wall_start=START), c.objects, c.signal)
        fired += [(v.rule, v.track_id) for v in eng.update(later)]
    assert len(fired) == len(set(fired))


def test_view_change_resets_every_rule():
    rs = rules()
    eng = RuleEngine(rs)
    for c in contexts()[:20]:
        eng.update(c)
    assert any(r.tracked for r in rs)
    c = contexts()[20]
    eng.update(FrameContext(c.frame, c.objects, c.signal, view_ok=False))
    assert all(r.tracked == 0 for r in rs)


def test_pipeline_gives_rules_the_plates_of_tracks():
    """Rules that judge plates see the plate stage's per-track consensus via FrameContext.plates."""
    from dataclasses import dataclass
    from typing import Iterator

    from etle.ingest.sources import SourceInfo
    from etle.config.run import RunOptions
    from etle.pipeline import Pipeline
    from etle.types import Detection, PlateRead, PlateResult

    @dataclass
    class Source:
        info: SourceInfo

        def frames(self) -> Iterator[Frame]:
            for i in range(20):
                yield Frame("s.mp4", i, i / 10, IMAGE, START)

    class Detector:
        def detect(self, image):  # type: ignore[no-untyped-def]
            return [Detection(Box(100, 100, 200, 180), "car", 0.9)]

    class Tracker:
        def update(self, dets, frame):  # type: ignore[no-untyped-def]
            return tuple(TrackedObject(7, d.box, d.label, d.confidence) for d in dets)

    class Plates:
        def process(self, frame, vehicles, priority=()):  # type: ignore[no-untyped-def]
            pass

        def result(self, track_id):  # type: ignore[no-untyped-def]
            read = PlateRead("B1237XY", 0.9)
            return PlateResult("B1237XY", 0.9, candidates=(read,) * 3, best=read)

    class PlateSpy:
        name = "spy"

        def __init__(self) -> None:
            self.seen: list[str] = []

        def update(self, ctx):  # type: ignore[no-untyped-def]
            self.seen += [ctx.plate(o.track_id).text for o in ctx.objects]
            return []

        def forget(self, track_id):  # type: ignore[no-untyped-def]
            pass

        def reset(self):  # type: ignore[no-untyped-def]
            pass

    spy = PlateSpy()
    info = SourceInfo("s.mp4", "file", 400, 240, 10.0, 2.0, 20, START, "given")
    pipe = Pipeline(
        detector=Detector(), tracker_factory=lambda fps: Tracker(), rules_factory=lambda: RuleEngine([spy]),
        plate_stage_factory=Plates, config=RunOptions(read_plates=True),
    )
    pipe.run_source(Source(info))
    assert spy.seen and set(spy.seen) == {"B1237XY"}
