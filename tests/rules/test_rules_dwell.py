"""Busway (restricted lane) and no-stopping: dwell timing on synthetic tracks."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etle.rules.dwell import NoStoppingRule, RestrictedLaneRule
from etle.rules.engine import RuleEngine
from etle.types import NO_PLATE, Box, Frame, FrameContext, PlateResult, TrackedObject

FPS = 10.0
IMAGE = np.zeros((300, 400, 3), np.uint8)
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
LANE = ((0.0, 100.0), (400.0, 100.0), (400.0, 160.0), (0.0, 160.0))  # horizontal bus lane


def veh(tid, x, y, label="car"):
    return TrackedObject(tid, Box(x - 20, y - 20, x + 20, y), label, 0.9)


def drive(rule, path, label="car", plates=None, tid=1, start=0, eng=None):
    eng = eng or RuleEngine([rule], forget_after_s=60.0)
    lookup = None if plates is None else (lambda t: plates.get(t, NO_PLATE))
    out = []
    for k, p in enumerate(path):
        i = start + k
        objs = () if p is None else (veh(tid, p[0], p[1], label),)
        out += eng.update(FrameContext(Frame("t", i, i / FPS, IMAGE, wall_start=START), objs, plates=lookup))
    return out


def along(y, n, x0=20.0, step=5.0):
    return [(x0 + step * k, y) for k in range(n)]


# ----------------------------------------------------------------------------- busway
def busway(**kw):
    kw.setdefault("min_dwell_s", 2.0)
    return RestrictedLaneRule([("busway", LANE)], **kw)


def test_car_driving_in_the_bus_lane_fires_once():
    out = drive(busway(), along(130, 40))
    assert len(out) == 1
    assert out[0].rule == "busway" and out[0].details["zone"] == "busway"
    assert out[0].details["dwell_s"] == pytest.approx(2.0)


def test_bus_in_the_bus_lane_passes():
    assert drive(busway(), along(130, 40), label="bus") == []


def test_crossing_the_lane_to_turn_passes():
    path = [(200, y) for y in np.linspace(60, 200, 20)]  # 0.7 s inside
    assert drive(busway(), path) == []


def test_next_to_the_lane_passes():
    assert drive(busway(), along(200, 60)) == []


def test_leaving_and_coming_back_restarts_the_clock():
    path = along(130, 15) + along(200, 10, x0=95) + along(130, 15, x0=145)
    assert drive(busway(), path) == []


def test_a_gap_restarts_the_clock():
    path = along(130, 15) + [None] * 15 + along(130, 15, x0=170)
    assert drive(busway(max_gap_s=1.0), path) == []


def test_listed_plates_are_exempt_once_read():
    rule = busway(exempt_plates=("B 1 AMB",))
    plates = {1: PlateResult("B1AMB", 0.9)}
    assert drive(rule, along(130, 40), plates=plates) == []
    # no plate read yet: the rule waits up to twice the dwell for one, then fires
    out = drive(busway(exempt_plates=("B1AMB",)), along(130, 50), plates={})
    assert len(out) == 1 and out[0].details["dwell_s"] >= 4.0


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 1.9))
def test_property_shorter_than_the_dwell_never_fires(seconds):
    n = int(seconds * FPS)
    assert drive(busway(min_dwell_s=2.0), along(130, n) + [None] * 30) == []


# ------------------------------------------------------------------------ no stopping
def no_stopping(**kw):
    kw.setdefault("min_dwell_s", 5.0)
    return NoStoppingRule([("red_kerb", LANE)], **kw)


def test_parked_in_a_no_stopping_zone_fires_once():
    out = drive(no_stopping(), [(200, 130)] * 80)
    assert len(out) == 1
    assert out[0].rule == "no_stopping" and out[0].details["stationary_s"] == pytest.approx(5.0)


def test_jitter_while_parked_still_counts():
    rng = np.random.default_rng(0)
    path = [(200 + rng.normal(0, 2), 130 + rng.normal(0, 2)) for _ in range(80)]
    assert len(drive(no_stopping(max_motion_px=8), path)) == 1


def test_slow_traffic_through_the_zone_does_not_fire():
    assert drive(no_stopping(), along(130, 80, step=1.5)) == []


def test_stopped_outside_the_zone_does_not_fire():
    assert drive(no_stopping(), [(200, 220)] * 80) == []


def test_short_stop_does_not_fire():
    path = [(200, 130)] * 30 + along(130, 30, x0=200)
    assert drive(no_stopping(), path) == []


def test_only_configured_labels():
    assert drive(no_stopping(labels=("car",)), [(200, 130)] * 80, label="motorcycle") == []


def test_dwell_rules_forget_tracks():
    rule = no_stopping()
    eng = RuleEngine([rule], forget_after_s=1.0)
    drive(rule, [(200, 130)] * 10, eng=eng)
    assert rule.tracked == 1
    drive(rule, [None] * 20, eng=eng, start=10)
    assert rule.tracked == 0
    lane = busway()
    drive(lane, along(130, 5))
    lane.reset()
    assert lane.tracked == 0


def test_rejects_no_zones():
    with pytest.raises(ValueError):
        NoStoppingRule([])
    with pytest.raises(ValueError):
        RestrictedLaneRule([])
