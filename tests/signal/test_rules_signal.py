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


def _hsv_disc(img: np.ndarray, centre: tuple[int, int], radius: int, hue: int, sat: int, val: int) -> None:
    """Draw a filled disc of one HSV colour (OpenCV ranges) into a BGR image."""
    bgr = cv2.cvtColor(np.uint8([[[hue, sat, val]]]), cv2.COLOR_HSV2BGR)[0, 0]
    cv2.circle(img, centre, radius, tuple(int(c) for c in bgr), -1)


def overexposed(hue: int, y: int = 20) -> np.ndarray:
    """A lamp as a camera sees it in daylight: a white core in a pale coloured halo."""
    img = np.zeros((120, 160, 3), np.uint8)
    img[10:70, 120:150] = (60, 60, 60)
    _hsv_disc(img, (135, y), 9, hue, 70, 235)  # halo: pale (S 70 of 255)
    _hsv_disc(img, (135, y), 5, hue, 5, 255)  # core: white
    return img


@pytest.mark.parametrize("colour,hue", [("red", 175), ("red", 3), ("yellow", 18), ("green", 88)])
def test_roi_reads_an_overexposed_lamp_by_its_halo(colour, hue):
    assert RoiColourSignal(HEAD).classify(overexposed(hue))[0] == colour


def test_roi_a_yellow_lamp_with_a_red_edge_is_not_red():
    img = overexposed(18, y=40)
    _hsv_disc(img, (135, 40), 8, 2, 90, 180)  # the halo's outer ring looks red...
    _hsv_disc(img, (135, 40), 6, 18, 160, 250)  # ...the lamp itself is yellow
    assert RoiColourSignal(HEAD).classify(img)[0] == "yellow"
    even = overexposed(18, y=40)
    _hsv_disc(even, (135, 40), 9, 2, 160, 250)
    _hsv_disc(even, (135, 40), 6, 18, 160, 250)  # as much red as yellow: no colour wins by 2x
    assert RoiColourSignal(HEAD).classify(even)[0] == "unknown"


def test_roi_sunlit_foliage_and_sky_are_not_a_green_lamp():
    img = lamp(None)
    _hsv_disc(img, (125, 25), 8, 45, 200, 220)  # leaves behind the head
    _hsv_disc(img, (142, 55), 8, 110, 150, 240)  # sky
    assert RoiColourSignal(HEAD).classify(img)[0] == "unknown"


def test_roi_a_lamp_too_small_for_the_polygon_is_dark():
    img = lamp(None)
    cv2.circle(img, (135, 20), 1, (30, 30, 240), -1)  # 5 px in a 35 x 65 polygon
    assert RoiColourSignal(HEAD).classify(img)[0] == "unknown"
    assert RoiColourSignal(HEAD, min_fraction=0.001).classify(img)[0] == "red"


def test_roi_holds_the_colour_through_a_short_dark_spell():
    sig = RoiColourSignal(HEAD, debounce_s=0.3, hold_dark_s=1.0)
    fps = 10
    seq = ["red"] * 5 + [None] * 8 + ["red"] * 2 + [None] * 12
    states = [sig.state_at(frame(i / fps, lamp(c))).state for i, c in enumerate(seq)]
    assert states[3:15] == ["red"] * 12  # 0.8 s dark: held
    assert states[15:25] == ["red"] * 10  # dark again from 1.5 s: held until 2.5 s
    assert states[25:] == ["unknown"] * 2
    never = RoiColourSignal(HEAD, debounce_s=0.3, hold_dark_s=0)
    states = [never.state_at(frame(i / fps, lamp(c))).state for i, c in enumerate(seq)]
    assert states[9] == "unknown"  # without the hold, 0.3 s of dark is the debounce


def test_roi_a_change_of_colour_is_not_held_like_a_dark_spell():
    sig = RoiColourSignal(HEAD, debounce_s=0.3, hold_dark_s=5.0)
    seq = ["red"] * 5 + ["green"] * 5
    states = [sig.state_at(frame(i / 10, lamp(c))).state for i, c in enumerate(seq)]
    assert states[8] == "green"  # 0.3 s after the change, whatever the dark hold


def test_roi_config_carries_the_reader_options():
    cam = CameraConfig.model_validate({"id": "c", "signal": {"type": "roi", "polygon": HEAD, "hold_dark_s": 0.5,
                                                              "min_margin": 3, "min_saturation": 40}})
    sig = build_signal(cam)
    assert isinstance(sig, RoiColourSignal)
    assert (sig._hold_dark, sig._min_margin, sig._min_s) == (0.5, 3, 40)
    with pytest.raises(ValueError, match="min_margin"):
        CameraConfig.model_validate({"id": "c", "signal": {"type": "roi", "polygon": HEAD, "min_margin": 0.5}})


def test_roi_a_flickering_lamp_still_becomes_stable():
    """An LED lamp dark in every 4th frame at 12.5 fps: the dark frames do not restart the new
    colour's debounce (they did: a flickering lamp then never read as anything)."""
    sig = RoiColourSignal(HEAD, debounce_s=0.3, hold_dark_s=1.0)
    seq = [None if i % 4 == 3 else ("green" if i < 25 else "red") for i in range(50)]
    states = [sig.state_at(frame(i / 12.5, lamp(c))).state for i, c in enumerate(seq)]
    assert states[5:25] == ["green"] * 20
    first_red = states.index("red")
    assert 25 / 12.5 + 0.3 <= first_red / 12.5 <= 25 / 12.5 + 0.3 + 2 / 12.5
    assert states[first_red:] == ["red"] * (50 - first_red)
