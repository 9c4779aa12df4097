"""Speeding: ground-plane calibration (property tests) and synthetic tracks with known speeds."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from etle.rules.engine import RuleEngine
from etle.rules.speed import GroundPlane, SpeedingRule, fit_homography, measure
from etle.types import Box, Frame, FrameContext, TrackedObject

IMAGE = np.zeros((480, 640, 3), np.uint8)
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)

# A synthetic camera: world (X across, Y along the road, metres) seen in perspective.
H_TRUE = np.array([[20.0, -3.0, 320.0], [0.0, -1.0, 470.0], [0.0, 0.02, 1.0]])  # world -> image
H_INV = np.linalg.inv(H_TRUE)


def to_image(x: float, y: float) -> tuple[float, float]:
    v = H_TRUE @ np.array([x, y, 1.0])
    return float(v[0] / v[2]), float(v[1] / v[2])


WORLD = [(-3.5, 0.0), (3.5, 0.0), (3.5, 30.0), (-3.5, 30.0), (0.0, 15.0)]
IMG = [to_image(*p) for p in WORLD]
ZONE = (to_image(-4, -2), to_image(4, -2), to_image(4, 40), to_image(-4, 40))


def plane() -> GroundPlane:
    return GroundPlane.from_points(IMG, WORLD)


def vehicle(tid: int, x: float, y: float, label: str = "car") -> TrackedObject:
    u, v = to_image(x, y)
    return TrackedObject(tid, Box(u - 20, v - 25, u + 20, v), label, 0.9)


def engine(**kw) -> RuleEngine:
    kw.setdefault("tolerance_kmh", 5.0)
    return RuleEngine([SpeedingRule(plane(), [("road", ZONE, 50.0)], **kw)])


def drive(eng, positions, times, tid=1, label="car"):
    out = []
    for i, (p, t) in enumerate(zip(positions, times, strict=True)):
        objs = [] if p is None else [vehicle(tid, p[0], p[1], label)]
        out += eng.update(FrameContext(Frame("t", i, t, IMAGE, wall_start=START), tuple(objs)))
    return out


def at_speed(kmh: float, fps: float = 25.0, seconds: float = 1.6, y0: float = 2.0, x: float = 0.0):
    v = kmh / 3.6
    n = int(seconds * fps)
    times = [i / fps for i in range(n)]
    return [(x, y0 + v * t) for t in times], times


# --------------------------------------------------------------------------- calibration
def test_fit_recovers_the_mapping():
    h = fit_homography(IMG, WORLD)
    for (u, v), (x, y) in zip(IMG, WORLD, strict=True):
        p = h @ np.array([u, v, 1.0])
        assert p[0] / p[2] == pytest.approx(x, abs=1e-6)
        assert p[1] / p[2] == pytest.approx(y, abs=1e-6)
    assert plane().to_world(to_image(1.0, 12.0)) == pytest.approx((1.0, 12.0), abs=1e-6)


def test_fit_refuses_degenerate_points():
    with pytest.raises(ValueError, match="degenerate"):
        fit_homography([(0, 0), (10, 0), (20, 0), (30, 0)], [(0, 0), (1, 0), (2, 0), (3, 1)])
    with pytest.raises(ValueError, match="at least 4"):
        fit_homography([(0, 0), (10, 0), (0, 10)], [(0, 0), (1, 0), (0, 1)])


def test_fit_refuses_a_mistyped_point():
    world = list(WORLD)
    world[4] = (0.0, 18.0)  # 3 m off
    with pytest.raises(ValueError, match="maps .* m from its world position"):
        fit_homography(IMG, world)


def test_points_beyond_the_horizon_have_no_ground_position():
    p = plane()
    # the horizon of H_TRUE: image row where w -> 0 (world Y -> infinity); above it is sky
    horizon_v = to_image(0.0, 1e7)[1]
    assert p.to_world((320.0, horizon_v - 40)) is None
    assert p.to_world((320.0, horizon_v + 40)) is not None


@st.composite
def homographies(draw):
    """A well-conditioned world->image homography looking at a road."""
    f = draw(st.floats(8.0, 40.0))
    tilt = draw(st.floats(0.0, 0.04))
    skew = draw(st.floats(-5.0, 5.0))
    cx = draw(st.floats(200.0, 440.0))
    cy = draw(st.floats(380.0, 470.0))
    return np.array([[f, skew, cx], [0.0, -f * draw(st.floats(0.05, 0.3)), cy], [0.0, tilt, 1.0]])


@settings(max_examples=60, deadline=None)
@given(homographies(), st.lists(st.tuples(st.floats(-6, 6), st.floats(0, 40)), min_size=4, max_size=8, unique=True))
def test_property_fit_inverts_any_camera(h_true, world):
    def proj(p):
        v = h_true @ np.array([p[0], p[1], 1.0])
        return (float(v[0] / v[2]), float(v[1] / v[2]))

    # general position: no three points on (or near) a line
    from etle.geometry import _degenerate

    assume(not _degenerate(world))
    areas = [
        abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
        for i, a in enumerate(world) for j, b in enumerate(world[i + 1 :]) for c in world[i + j + 2 :]
    ]
    assume(min(areas) > 1.0)
    image = [proj(p) for p in world]
    gp = GroundPlane.from_points(image, world, max_error_m=1e-3)
    for p, q in zip(world, image, strict=True):
        assert gp.to_world(q) == pytest.approx(p, abs=1e-4)
    # and any other ground point maps back to itself
    assert gp.to_world(proj((1.0, 10.0))) == pytest.approx((1.0, 10.0), abs=1e-4)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.1, 60.0), st.floats(-5.0, 5.0), st.floats(-5.0, 5.0), st.integers(5, 40))
def test_property_measure_recovers_constant_velocity(speed, vx_dir, vy_dir, n):
    norm = math.hypot(vx_dir, vy_dir)
    assume(norm > 0.1)
    ux, uy = vx_dir / norm, vy_dir / norm
    obs = [(i * 0.04, 3 + ux * speed * i * 0.04, 7 + uy * speed * i * 0.04) for i in range(n)]
    m = measure(obs)
    assert m.speed_kmh == pytest.approx(speed * 3.6, rel=1e-6)
    assert m.residual_m == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------------- rule
def test_speeding_car_fires_once_with_its_speed():
    pos, times = at_speed(72.0)
    out = drive(engine(), pos, times)
    assert len(out) == 1
    v = out[0]
    assert v.rule == "speeding" and v.details["zone"] == "road" and v.details["limit_kmh"] == 50.0
    assert v.details["speed_kmh"] == pytest.approx(72.0, abs=0.5)


def test_under_the_limit_plus_tolerance_does_not_fire():
    pos, times = at_speed(54.0)
    assert drive(engine(tolerance_kmh=5.0), pos, times) == []


def test_irregular_frame_times_give_the_right_speed():
    rng = np.random.default_rng(3)
    times = list(np.cumsum(rng.uniform(0.02, 0.07, 40)))
    pos = [(0.0, 2.0 + 25.0 * t) for t in times]  # 90 km/h
    out = drive(engine(), pos, times)
    assert len(out) == 1 and out[0].details["speed_kmh"] == pytest.approx(90.0, abs=0.5)


def test_box_jitter_is_smoothed():
    rng = np.random.default_rng(4)
    pos, times = at_speed(40.0, seconds=3.0)
    noisy = [(x + rng.normal(0, 0.15), y + rng.normal(0, 0.15)) for x, y in pos]
    assert drive(engine(), noisy, times) == []
    pos, times = at_speed(80.0, seconds=3.0)
    noisy = [(x + rng.normal(0, 0.15), y + rng.normal(0, 0.15)) for x, y in pos]
    out = drive(engine(), noisy, times)
    assert len(out) == 1 and out[0].details["speed_kmh"] == pytest.approx(80.0, abs=4.0)


def test_stationary_jitter_is_not_a_speed():
    rng = np.random.default_rng(5)
    times = [i / 25 for i in range(100)]
    pos = [(rng.normal(0, 0.3), 10 + rng.normal(0, 0.3)) for _ in times]
    assert drive(engine(), pos, times) == []


def test_implausible_speed_is_rejected_not_ticketed():
    rule = SpeedingRule(plane(), [("road", ZONE, 50.0)], max_plausible_kmh=160.0)
    pos, times = at_speed(200.0, seconds=0.72, y0=1.0)
    out = drive(RuleEngine([rule]), pos, times)
    assert out == [] and rule.rejected > 0


def test_an_id_switch_jump_is_rejected_not_ticketed():
    rule = SpeedingRule(plane(), [("road", ZONE, 50.0)])
    times = [i / 25 for i in range(40)]
    pos = [(0.0, 5.0 + 0.3 * i) if i < 20 else (0.0, 25.0 + 0.3 * i) for i in range(40)]  # 20 m jump
    assert drive(RuleEngine([rule]), pos, times) == []
    assert rule.rejected > 0


def test_outside_the_zone_does_not_fire():
    pos, times = at_speed(100.0, x=0.0)
    zone = (to_image(-4, 50), to_image(4, 50), to_image(4, 60), to_image(-4, 60))
    eng = RuleEngine([SpeedingRule(plane(), [("far", zone, 50.0)])])
    assert drive(eng, pos, times) == []


def test_limit_per_zone():
    near = (to_image(-4, -2), to_image(4, -2), to_image(4, 15), to_image(-4, 15))
    far = (to_image(-4, 15), to_image(4, 15), to_image(4, 40), to_image(-4, 40))
    eng = RuleEngine([SpeedingRule(plane(), [("near", near, 30.0), ("far", far, 80.0)])])
    pos, times = at_speed(60.0, seconds=2.0)
    out = drive(eng, pos, times)
    assert len(out) == 1 and out[0].details["zone"] == "near"


def test_only_configured_labels():
    eng = RuleEngine([SpeedingRule(plane(), [("road", ZONE, 50.0)], labels=("car",))])
    pos, times = at_speed(100.0)
    assert drive(eng, pos, times, label="bus") == []


def test_state_is_bounded_and_forgotten():
    rule = SpeedingRule(plane(), [("road", ZONE, 50.0)], window_s=0.5, min_span_s=0.4)
    eng = RuleEngine([rule], forget_after_s=1.0)
    pos, times = at_speed(20.0, seconds=4.0)
    drive(eng, pos, times)
    assert len(rule._tracks[1].seen) <= 0.5 * 25 + 2
    eng.update(FrameContext(Frame("t", 999, 10.0, IMAGE, wall_start=START), ()))
    assert rule.tracked == 0


def test_boxes_cut_by_the_frame_edge_are_not_measured():
    rule = SpeedingRule(plane(), [("road", ZONE, 50.0)])
    eng = RuleEngine([rule])
    pos, times = at_speed(90.0)
    for i, ((x, y), t) in enumerate(zip(pos, times, strict=True)):
        u, v = to_image(x, y)
        box = Box(0, v - 25, u + 20, v)  # the left edge of the box is the frame's
        eng.update(FrameContext(Frame("t", i, t, IMAGE, wall_start=START), (TrackedObject(1, box, "car", 0.9),)))
    assert rule.tracked == 0


def test_predicted_boxes_between_detections_are_not_measured():
    """On a detection stride the tracker's predicted boxes carry no new information: speeds are
    fitted to observed positions only."""
    from dataclasses import replace

    pos, times = at_speed(90.0)
    only_predicted = engine()
    out = []
    for i, (p, t) in enumerate(zip(pos, times, strict=True)):
        obj = replace(vehicle(1, p[0], p[1]), predicted=True)
        out += only_predicted.update(FrameContext(Frame("t", i, t, IMAGE, wall_start=START), (obj,)))
    assert out == []  # never measured from predictions
    every_third = engine()
    for i, (p, t) in enumerate(zip(pos, times, strict=True)):
        obj = vehicle(1, p[0], p[1]) if i % 3 == 0 else replace(vehicle(1, p[0], p[1]), predicted=True)
        out += every_third.update(FrameContext(Frame("t", i, t, IMAGE, wall_start=START), (obj,)))
    assert [v.rule for v in out] == ["speeding"]  # observations every 3rd frame still measure it
    assert out[0].details["speed_kmh"] == pytest.approx(90.0, abs=1.0)
