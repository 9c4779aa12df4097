"""Signal sources: a fixed plan (from pts or a time of day) and the lit lamp's colour."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from etle.camera.config import CameraConfig, Phase
from etle.signal.source import FixedPlanSignal, RoiColourSignal, build_signal
from etle.types import Frame

BLACK = np.zeros((120, 160, 3), np.uint8)
PLAN = (
    Phase(state="green", duration_s=10),
    Phase(state="yellow", duration_s=2),
    Phase(state="red", duration_s=8),
)
JAKARTA = ZoneInfo("Asia/Jakarta")


def frame(pts: float, image=BLACK, wall_start=None, index: int = 0) -> Frame:
    return Frame("t", index, pts, image, wall_start=wall_start)


@pytest.mark.parametrize(
    "pts,state",
    [
        (0, "green"),
        (9.99, "green"),
        (10, "yellow"),
        (11.9, "yellow"),
        (12, "red"),
        (19.9, "red"),
        (20, "green"),
        (32.5, "red"),
        (2000 * 20 + 13, "red"),
    ],
)
def test_plan_from_source_start(pts, state):
    assert FixedPlanSignal(PLAN).state_at(frame(pts)).state == state


def test_plan_offset_shifts_the_cycle():
    sig = FixedPlanSignal(PLAN, offset_s=12)  # at pts 0 the plan is 12 s in: red
    assert sig.state_at(frame(0)).state == "red"
    assert sig.state_at(frame(8)).state == "green"
    assert sig.state_at(frame(0)).source == "plan"


def test_plan_anchored_at_a_time_of_day_in_the_camera_timezone():
    sig = FixedPlanSignal(PLAN, anchor="07:00:00", tz=JAKARTA)
    # 07:00:12 WIB is 00:00:12 UTC: red
    start = datetime(2025, 3, 1, 0, 0, 0, tzinfo=timezone.utc)
    assert sig.state_at(frame(12.5, wall_start=start)).state == "red"
    assert sig.state_at(frame(5, wall_start=start)).state == "green"
    # before 07:00 local it counts from yesterday's 07:00: 86390 s in, 86390 % 20 = 10
    early = datetime(2025, 3, 1, 6, 59, 50, tzinfo=JAKARTA)
    assert sig.state_at(frame(0, wall_start=early)).state == "yellow"
    assert sig.state_at(frame(2, wall_start=early)).state == "red"
    assert sig.state_at(frame(10, wall_start=early)).state == "green"  # 07:00:00: restart


def test_plan_restarts_at_the_anchor_every_day():
    # an 11 s cycle does not divide a day: at 06:59:58 the plan is 86398 % 11 = 4 s into its cycle
    # (counting back from today's 07:00 would give 9 s: green)
    plan = (Phase(state="red", duration_s=5), Phase(state="green", duration_s=6))
    sig = FixedPlanSignal(plan, anchor="07:00:00", tz=JAKARTA)
    t = datetime(2025, 3, 1, 6, 59, 58, tzinfo=JAKARTA)
    assert sig.state_at(frame(0, wall_start=t)).state == "red"
    assert sig.state_at(frame(1.5, wall_start=t)).state == "green"  # 4 + 1.5 = 5.5 s in
    assert sig.state_at(frame(2, wall_start=t)).state == "red"  # 07:00:00, restarted
    assert sig.state_at(frame(7, wall_start=t)).state == "green"


def test_plan_anchored_at_a_time_of_day_is_unknown_without_a_wall_clock():
    sig = FixedPlanSignal(PLAN, anchor="07:00:00", tz=JAKARTA)
    s = sig.state_at(frame(12.5))
    assert s.state == "unknown" and s.confidence == 0.0


def lamp(colour: str | None) -> np.ndarray:
    img = np.zeros((120, 160, 3), np.uint8)
    img[10:70, 120:150] = (40, 40, 40)  # the signal head
    bgr = {"red": (30, 30, 240), "yellow": (20, 200, 240), "green": (140, 230, 40)}
    if colour is not None:
        y = {"red": 20, "yellow": 40, "green": 60}[colour]
        cv2.circle(img, (135, y), 8, bgr[colour], -1)
    return img


HEAD = ((118, 8), (152, 8), (152, 72), (118, 72))


@pytest.mark.parametrize("colour", ["red", "yellow", "green"])
def test_roi_classifies_the_lit_lamp(colour):
    sig = RoiColourSignal(HEAD)
    assert sig.classify(lamp(colour))[0] == colour
    assert sig.classify(lamp(None))[0] == "unknown"


def test_roi_debounces_on_pts():
    sig = RoiColourSignal(HEAD, debounce_s=0.3)
    states = []
    for i in range(30):  # 1 s at 30 fps: red until 0.5 s, then green
        states.append(sig.state_at(frame(i / 30, lamp("red" if i < 15 else "green"))).state)
    assert states[0] == "unknown"  # nothing stable yet
    assert states[9] == "red"  # 0.3 s of red
    assert states[15:24] == ["red"] * 9  # green not yet stable
    assert states[24] == "green"
    assert sig.state_at(frame(1.0, lamp("green"))).source == "roi"


def test_roi_ignores_a_flicker_shorter_than_the_debounce():
    sig = RoiColourSignal(HEAD, debounce_s=0.3)
    seq = ["red"] * 15 + [None] * 3 + ["red"] * 15
    states = [sig.state_at(frame(i / 30, lamp(c))).state for i, c in enumerate(seq)]
    assert states[10:] == ["red"] * (len(seq) - 10)


def test_roi_outside_the_image_is_unknown():
    sig = RoiColourSignal(((500, 500), (600, 500), (600, 600)), debounce_s=0)
    assert sig.state_at(frame(0, lamp("red"))).state == "unknown"


def test_build_signal_from_config():
    base = {"id": "cam-1"}
    assert build_signal(CameraConfig.model_validate(base)) is None
    plan = CameraConfig.model_validate(
        {**base, "signal": {"type": "fixed_plan", "phases": [{"state": "red", "duration_s": 5}]}}
    )
    assert isinstance(build_signal(plan), FixedPlanSignal)
    roi = CameraConfig.model_validate({**base, "signal": {"type": "roi", "polygon": HEAD}})
    sig = build_signal(roi)
    assert isinstance(sig, RoiColourSignal)
    assert sig.state_at(frame(0, lamp("red"))).state in ("unknown", "red")


def test_the_plan_uses_frame_time_only():
    sig = FixedPlanSignal(PLAN, anchor="07:00:00", tz=JAKARTA)
    start = datetime(2020, 1, 1, 7, 0, 0, tzinfo=JAKARTA)
    a = [sig.state_at(frame(t, wall_start=start)).state for t in range(40)]
    b = [sig.state_at(frame(t, wall_start=start + timedelta(days=3))).state for t in range(40)]
    assert a == b
