"""Stop-line encroachment: synthetic tracks driven frame by frame through the rule engine."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etle.rules.engine import RuleEngine
from etle.rules.stop_line import StopLineRule
from etle.types import Box, Frame, FrameContext, SignalState, TrackedObject

FPS = 30.0
IMAGE = np.zeros((240, 400, 3), np.uint8)
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
# Stop line at y=100, traffic moves up the picture; the zebra crossing lies just past it.
ZEBRA = ((0.0, 60.0), (400.0, 60.0), (400.0, 98.0), (0.0, 98.0))


def car(tid: int, x: float, y: float, label: str = "car") -> TrackedObject:
    return TrackedObject(tid, Box(x - 20, y - 30, x + 20, y), label, 0.9)


def ctx(i: int, objects, signal: str | None) -> FrameContext:
    return FrameContext(Frame("t", i, i / FPS, IMAGE, wall_start=START), tuple(objects), SignalState(signal) if signal else None)


def engine(**kw) -> RuleEngine:
    kw.setdefault("grace_s", 1.0)
    kw.setdefault("min_stopped_s", 1.0)
    return RuleEngine([StopLineRule([("zebra", ZEBRA)], **kw)])


def drive(eng, ys, signal="red", x=200.0, start=0, tid=1, label="car"):
    out = []
    for k, y in enumerate(ys):
        i = start + k
        s = signal(i) if callable(signal) else signal
        out += eng.update(ctx(i, [car(tid, x, y, label)] if y is not None else [], s))
    return out


def approach_and_stop(stop_y: float, n_stop: int = 60) -> list[float]:
    return list(np.linspace(200, stop_y, 30)) + [stop_y] * n_stop


def test_stopped_on_the_crossing_while_red_fires_once():
    eng = engine()
    out = drive(eng, approach_and_stop(80.0))
    assert len(out) == 1
    v = out[0]
    assert v.rule == "stop_line" and v.track_id == 1
    assert v.details["zone"] == "zebra"
    assert v.details["stopped_s"] >= 1.0
    assert v.details["red_for_s"] >= 2.0
    # fires as soon as 1 s of stop is covered (frame 29 + 30)
    assert 59 <= v.frame_index <= 61


def test_stopped_before_the_line_does_not_fire():
    assert drive(engine(), approach_and_stop(120.0, 120)) == []


def test_stopped_on_the_crossing_on_green_does_not_fire():
    assert drive(engine(), approach_and_stop(80.0, 120), signal="green") == []


def test_unknown_signal_does_not_fire():
    assert drive(engine(), approach_and_stop(80.0, 120), signal="unknown") == []
    assert drive(engine(), approach_and_stop(80.0, 120), signal=None) == []


def test_driving_through_the_crossing_on_red_is_not_a_stop():
    # 4 px a frame straight through: that is the red-light rule's case, not this one
    assert drive(engine(), list(np.arange(200, -40, -4.0))) == []


def test_caught_on_the_crossing_by_the_change_to_red_gets_the_grace():
    # stopped in the crossing on green; red comes at frame 60; the vehicle clears it at 1.5 s of red
    ys = approach_and_stop(80.0, 75) + list(np.linspace(80, 20, 15))
    out = drive(engine(grace_s=2.0), ys, signal=lambda i: "green" if i < 60 else "red")
    assert out == []


def test_caught_on_the_crossing_and_staying_fires_after_the_grace():
    ys = approach_and_stop(80.0, 200)
    out = drive(engine(grace_s=2.0), ys, signal=lambda i: "green" if i < 60 else "red")
    assert len(out) == 1
    # red since frame 60, grace 2 s, then 1 s stopped within red
    assert out[0].frame_index >= 60 + 3 * FPS - 1
    assert out[0].details["red_for_s"] >= 3.0 - 1 / FPS


def test_jitter_while_stopped_still_counts_as_stopped():
    rng = np.random.default_rng(0)
    ys = list(np.linspace(200, 80, 30)) + list(80 + rng.uniform(-1.5, 1.5, 60))
    assert len(drive(engine(max_motion_px=4.0), ys)) == 1


def test_creeping_forward_is_not_stopped():
    ys = list(np.linspace(200, 96, 30)) + list(np.linspace(96, 62, 60))  # 0.57 px a frame
    assert drive(engine(max_motion_px=4.0), ys) == []


def test_only_configured_labels():
    assert drive(engine(labels=("car",)), approach_and_stop(80.0), label="motorcycle") == []


def test_gap_in_observations_restarts_the_stop():
    ys = approach_and_stop(80.0, 20) + [None] * 45 + [80.0] * 20
    assert drive(engine(), ys) == []


def test_state_is_forgotten_and_reset():
    rule = StopLineRule([("zebra", ZEBRA)])
    eng = RuleEngine([rule], forget_after_s=1.0)
    drive(eng, approach_and_stop(80.0, 10))
    assert rule.tracked == 1
    drive(eng, [None] * 40, start=40)
    assert rule.tracked == 0
    drive(eng, [80.0] * 5, start=100)
    rule.reset()
    assert rule.tracked == 0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        StopLineRule([])
    with pytest.raises(ValueError):
        StopLineRule([("z", ZEBRA)], min_inside=0)


@settings(max_examples=40, deadline=None)
@given(st.floats(101.0, 230.0), st.sampled_from(["red", "green", "yellow"]))
def test_property_never_fires_for_a_vehicle_stopped_before_the_line(stop_y, signal):
    assert drive(engine(grace_s=0.0), approach_and_stop(stop_y, 60), signal=signal) == []
