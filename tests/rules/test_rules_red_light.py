"""Red light: synthetic tracks driven frame by frame through the rule engine."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from etle.rules.engine import RuleEngine
from etle.rules.red_light import RedLightRule
from etle.types import Box, Frame, FrameContext, SignalState, TrackedObject

FPS = 30.0
IMAGE = np.zeros((240, 400, 3), np.uint8)
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
# A horizontal stop line at y=100; traffic approaches from below (y > 100) moving up.
LINE = ((0.0, 100.0), (400.0, 100.0))


def car(track_id: int, x: float, bottom_y: float, label: str = "car") -> TrackedObject:
    return TrackedObject(track_id, Box(x - 20, bottom_y - 30, x + 20, bottom_y), label, 0.9)


def ctx(i: int, objects, signal: str | None = "red", view_ok: bool = True) -> FrameContext:
    frame = Frame("test", i, i / FPS, IMAGE, wall_start=START)
    state = None if signal is None else SignalState(signal)
    return FrameContext(frame, tuple(objects), state, view_ok)


def engine(**kw) -> RuleEngine:
    kw.setdefault("approach_side", (200.0, 200.0))
    return RuleEngine([RedLightRule(LINE, **kw)])


def drive(eng: RuleEngine, ys, *, signal="red", x=200.0, track_id=1, start=0, view=None):
    out = []
    for k, y in enumerate(ys):
        i = start + k
        s = signal(i) if callable(signal) else signal
        ok = True if view is None else view(i)
        out += eng.update(ctx(i, [car(track_id, x, y)] if y is not None else [], s, ok))
    return out


def straight(y0: float, y1: float, step: float = 4.0) -> list[float]:
    n = int(abs(y1 - y0) / step) + 1
    return list(np.linspace(y0, y1, n))


def test_crossing_on_red_fires_once_with_details():
    eng = engine(grace_s=0.5)
    # red from frame 0; the car starts at y=200 and crosses y=100 after 25 frames (~0.83 s)
    out = drive(eng, straight(200, 20))
    assert len(out) == 1
    v = out[0]
    assert (v.rule, v.track_id, v.label) == ("red_light", 1, "car")
    assert v.details["signal"] == "red"
    assert v.details["line"] == "stop_line"
    assert v.details["red_since_pts"] == 0.0
    assert v.details["red_for_s"] >= 0.5
    x, y = v.details["crossing_point"]
    assert x == pytest.approx(200) and y == pytest.approx(100)
    assert 0.7 < v.details["crossing_pts"] < 0.9
    assert v.pts == pytest.approx(v.frame_index / FPS)
    assert v.timestamp == START + (v.timestamp - START)


@pytest.mark.parametrize("state", ["green", "yellow", "unknown", None])
def test_crossing_on_non_red_does_not_fire(state):
    assert drive(engine(), straight(200, 20), signal=state) == []


def test_stopping_before_the_line_does_not_fire():
    ys = straight(200, 106) + [106.0] * 120
    assert drive(engine(), ys) == []


def test_jitter_around_the_line_does_not_fire():
    rng = np.random.default_rng(1)
    ys = straight(200, 104) + list(100 + rng.uniform(-2.9, 2.9, 300))
    assert drive(engine(min_displacement_px=6), ys) == []


def test_jitter_then_real_crossing_fires():
    rng = np.random.default_rng(2)
    ys = straight(200, 104) + list(100 + rng.uniform(-2.5, 2.5, 60)) + straight(100, 40)
    out = drive(engine(min_displacement_px=6), ys)
    assert len(out) == 1


def test_crossing_within_grace_does_not_fire():
    # red starts at frame 24 (0.8 s); the car crosses at ~0.83 s
    out = drive(
        engine(grace_s=0.5), straight(200, 20), signal=lambda i: "red" if i >= 24 else "green"
    )
    assert out == []


def test_red_since_counts_from_the_change_not_from_the_first_frame():
    # green for 2 s, then red; the car crosses 1 s into red -> violation, red_for ~ 1 s
    ys = [200.0] * 60 + [200.0] * 10 + straight(200, 20)
    out = drive(engine(grace_s=0.5), ys, signal=lambda i: "red" if i >= 60 else "green")
    assert len(out) == 1
    assert out[0].details["red_since_pts"] == pytest.approx(2.0)


def test_the_same_track_fires_once_even_when_it_crosses_again():
    ys = straight(200, 40) + straight(40, 200) + straight(200, 40)
    assert len(drive(engine(), ys)) == 1


def test_two_tracks_fire_once_each():
    eng = engine()
    out = []
    for i, y in enumerate(straight(200, 20)):
        out += eng.update(ctx(i, [car(1, 100, y), car(2, 300, y + 8)]))
    assert sorted(v.track_id for v in out) == [1, 2]


def test_track_first_seen_past_the_line_does_not_fire():
    assert drive(engine(), straight(90, 20)) == []


def test_track_born_on_the_line_does_not_fire():
    assert drive(engine(min_displacement_px=6), [101.0, 99.0] + straight(96, 20)) == []


def test_other_labels_are_ignored():
    eng = engine(labels=("car",))
    out = []
    for i, y in enumerate(straight(200, 20)):
        out += eng.update(ctx(i, [car(5, 200, y, label="person")]))
    assert out == []


def test_going_round_the_end_of_the_line_does_not_fire():
    rule = RedLightRule(((100.0, 100.0), (300.0, 100.0)), approach_side=(200.0, 200.0))
    eng = RuleEngine([rule])
    out = drive(eng, straight(200, 20), x=360.0)
    assert out == []


def test_no_fire_while_the_view_is_paused():
    ys = straight(200, 20)
    assert drive(engine(), ys, view=lambda i: not (15 <= i <= 40)) == []


def test_no_crossing_through_a_cut():
    # approach side before a 3-frame pause, far side after it: positions are not comparable
    ys = straight(200, 110) + [None] * 3 + straight(80, 20)
    pauses = set(range(len(straight(200, 110)), len(straight(200, 110)) + 3))
    eng = engine()
    out = []
    for i, y in enumerate(ys):
        objs = [] if y is None else [car(1, 200, y)]
        out += eng.update(ctx(i, objs, "red", view_ok=i not in pauses))
    assert out == []


def test_track_gap_longer_than_max_gap_does_not_fire():
    ys = straight(200, 110) + [None] * 60 + straight(80, 20)
    assert drive(engine(max_gap_s=1.0), ys) == []


def test_direction_instead_of_approach_point_and_a_polyline():
    line = ((0.0, 110.0), (200.0, 100.0), (400.0, 110.0))
    eng = RuleEngine([RedLightRule(line, direction=(0.0, -1.0))])
    assert len(drive(eng, straight(200, 20))) == 1
    # the opposite direction of travel is not a red-light crossing of this approach
    eng = RuleEngine([RedLightRule(line, direction=(0.0, -1.0))])
    assert drive(eng, straight(20, 200)) == []


def test_centre_anchor():
    eng = RuleEngine([RedLightRule(LINE, approach_side=(200.0, 200.0), anchor="center")])
    out = drive(eng, straight(200, 20))
    assert len(out) == 1
    # the box centre is 15 px above its bottom: it crosses y=100 when the bottom is at 115
    assert out[0].box.center[1] < 100


def test_bad_construction():
    with pytest.raises(ValueError):
        RedLightRule(LINE, approach_side=(200.0, 100.0))
    with pytest.raises(ValueError):
        RedLightRule(LINE)
    with pytest.raises(ValueError):
        RedLightRule(LINE, approach_side=(1.0, 200.0), anchor="top")
