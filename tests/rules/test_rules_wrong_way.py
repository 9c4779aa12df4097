"""Wrong way: synthetic tracks in a lane whose permitted direction is down the picture."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etle.rules.engine import RuleEngine
from etle.rules.wrong_way import WrongWayRule
from etle.types import Box, Frame, FrameContext, TrackedObject

FPS = 25.0
IMAGE = np.zeros((400, 400, 3), np.uint8)
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
LANE = ((100.0, 0.0), (300.0, 0.0), (300.0, 400.0), (100.0, 400.0))
DOWN = (0.0, 1.0)


def car(tid: int, x: float, y: float) -> TrackedObject:
    return TrackedObject(tid, Box(x - 15, y - 20, x + 15, y), "car", 0.9)


def engine(**kw) -> RuleEngine:
    return RuleEngine([WrongWayRule([("lane", LANE, DOWN)], **kw)])


def drive(eng, path, start=0, tid=1):
    out = []
    for k, p in enumerate(path):
        i = start + k
        objs = [] if p is None else [car(tid, p[0], p[1])]
        out += eng.update(FrameContext(Frame("t", i, i / FPS, IMAGE, wall_start=START), tuple(objs)))
    return out


def line(a, b, n):
    return [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t) for t in np.linspace(0, 1, n)]


def test_driving_up_a_down_lane_fires_once():
    out = drive(engine(), line((200, 350), (200, 50), 75))  # 3 s, 4 px a frame
    assert len(out) == 1
    v = out[0]
    assert v.rule == "wrong_way" and v.details["lane"] == "lane"
    assert v.details["against_px"] >= 40
    assert v.details["duration_s"] >= 1.0
    assert v.details["angle_deg"] < 5


def test_driving_with_the_lane_does_not_fire():
    assert drive(engine(), line((200, 50), (200, 350), 75)) == []


def test_jitter_of_a_stopped_vehicle_does_not_fire():
    rng = np.random.default_rng(1)
    path = [(200 + rng.normal(0, 4), 200 + rng.normal(0, 4)) for _ in range(150)]
    assert drive(engine(), path) == []


def test_turning_across_the_lane_does_not_fire():
    # mostly sideways with some upward drift: 60 degrees off the reverse direction
    dx, dy = math.sin(math.radians(60)), -math.cos(math.radians(60))
    path = [(110 + 2.5 * k * dx, 300 + 2.5 * k * dy) for k in range(75)]
    assert drive(engine(min_distance_px=30), path) == []


def test_a_u_turn_is_judged_on_the_sustained_part_only():
    # down the lane, a tight U-turn, then back up: only the sustained upward part counts
    down = line((150, 100), (150, 250), 30)
    turn = [(150 + 25 * (1 - math.cos(a)), 250 + 25 * math.sin(a)) for a in np.linspace(0, math.pi, 12)]
    up = line((200, 250), (200, 60), 50)
    assert len(drive(engine(), down + turn + up)) == 1


def test_a_short_reverse_does_not_fire():
    # backs up 20 px (parking manoeuvre) then drives on
    path = line((200, 100), (200, 80), 15) + line((200, 80), (200, 300), 40)
    assert drive(engine(), path) == []


def test_too_short_in_time_does_not_fire():
    assert drive(engine(min_duration_s=2.0), line((200, 350), (200, 250), 30)) == []


def test_outside_the_lane_does_not_fire():
    assert drive(engine(), line((50, 350), (50, 50), 75)) == []


def test_an_id_switch_jump_restarts_the_history():
    # a track that jumps 150 px up at once (the id moved to another car) must not count the jump
    path = [(200, 300)] * 20 + [(200, 150)] * 20
    assert drive(engine(max_step_px=80), path) == []


def test_gap_restarts_the_history():
    path = line((200, 350), (200, 310), 10) + [None] * 40 + line((200, 150), (200, 110), 10)
    assert drive(engine(), path) == []


def test_state_is_bounded_and_forgotten():
    rule = WrongWayRule([("lane", LANE, DOWN)], window_s=1.0)
    eng = RuleEngine([rule], forget_after_s=1.0)
    drive(eng, line((200, 50), (200, 350), 200))
    assert len(rule._tracks[1].seen) <= FPS * 1.0 + 2
    drive(eng, [None] * 40, start=200)
    assert rule.tracked == 0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        WrongWayRule([])
    with pytest.raises(ValueError):
        WrongWayRule([("l", LANE, (0.0, 0.0))])
    with pytest.raises(ValueError):
        WrongWayRule([("l", LANE, DOWN)], window_s=0.5, min_duration_s=1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.floats(0.0, 2 * math.pi),
    st.floats(1.0, 6.0),
    st.integers(0, 2**31 - 1),
)
def test_property_never_fires_when_moving_with_the_lane(angle, speed, seed):
    """Any path whose every step has a non-negative component along the lane never fires."""
    rng = np.random.default_rng(seed)
    vx, vy = math.cos(angle) * speed, abs(math.sin(angle)) * speed  # vy >= 0: with the lane
    x, y, path = 200.0, 20.0, []
    for _ in range(80):
        x = min(max(x + vx + rng.normal(0, 0.5), 105), 295)
        y = y + vy + abs(rng.normal(0, 0.5))
        path.append((x, y))
    assert drive(engine(), path) == []


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 35.0), st.floats(2.0, 6.0))
def test_property_fires_for_sustained_reverse_within_the_angle(angle_deg, speed):
    a = math.radians(angle_deg)
    path = [(200 + k * speed * math.sin(a), 380 - k * speed * math.cos(a)) for k in range(60)]
    path = [p for p in path if 100 < p[0] < 300 and 0 < p[1] < 400]
    assert len(drive(engine(max_angle_deg=45), path)) == 1
