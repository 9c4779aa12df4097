"""The motion gate: detections between stride frames when something crosses a rule line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from etle.detect.motion import MotionGate

W, H = 320, 180
LINE = [(40.0, 120.0), (280.0, 120.0)]


def scene(car_y: int | None) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    img[::16, :, :] = 110  # road texture that does not move
    if car_y is not None:
        img[car_y : car_y + 30, 140:190] = (20, 20, 60)  # darker than the road
    return img


def test_first_frame_and_a_still_scene_are_not_motion() -> None:
    gate = MotionGate([LINE], (W, H))
    assert not gate.moving(scene(None))
    assert not gate.moving(scene(None))
    assert gate.triggers == 0


def test_a_vehicle_crossing_the_line_is_motion() -> None:
    gate = MotionGate([LINE], (W, H))
    gate.moving(scene(95))
    assert gate.moving(scene(105))  # its box moves over the band around y=120
    assert gate.triggers == 1


def test_motion_away_from_the_lines_is_not() -> None:
    gate = MotionGate([LINE], (W, H))
    gate.moving(scene(5))
    assert not gate.moving(scene(15))  # far above the line


def test_no_lines_never_fires_and_input_is_untouched() -> None:
    gate = MotionGate([], (W, H))
    assert gate.empty
    img = scene(100)
    before = img.copy()
    assert not gate.moving(img) and not gate.moving(scene(110))
    assert np.array_equal(img, before)
    with pytest.raises(ValueError):
        MotionGate([LINE], (0, H))


def test_large_frames_are_watched_at_a_small_size() -> None:
    gate = MotionGate([[(400.0, 700.0), (1500.0, 700.0)]], (1920, 1080), width=160)
    assert gate.size == (160, 90)
    a = np.zeros((1080, 1920, 3), np.uint8)
    b = a.copy()
    b[640:760, 800:1100] = 255
    gate.moving(a)
    assert gate.moving(b)


def test_pipeline_detects_off_the_stride_while_the_gate_fires(tmp_path: Path) -> None:
    from test_pipeline import CarDownTheRoad, build, make_source

    class Counting(CarDownTheRoad):
        calls: list[int] = []

        def detect(self, image):  # type: ignore[no-untyped-def]
            Counting.calls.append(1)
            return super().detect(image)

    class FiresOnFrames:
        empty = False

        def __init__(self, frames: set[int]) -> None:
            self.frames, self.i = frames, -1

        def moving(self, image):  # type: ignore[no-untyped-def]
            self.i += 1
            return self.i in self.frames

    pipe, _ = build(tmp_path, "red", Counting(speed=12.0))
    pipe.config = dataclasses.replace(pipe.config, detect_every=3)
    rates: list[tuple[float, ...]] = []
    inner = pipe.tracker_factory

    def factory(*rate: float):  # type: ignore[no-untyped-def]
        rates.append(rate)
        return inner(rate[0])

    pipe.tracker_factory = factory
    pipe.motion_factory = lambda size: FiresOnFrames({10, 11, 13})
    summary = pipe.run_source(make_source(60))
    # 20 stride frames (0, 3, ... 57) + frames 10, 11, 13 off the stride
    assert len(Counting.calls) == 23 and summary.detections == 23 and summary.motion_detections == 3
    assert rates and len(rates[-1]) == 2 and rates[-1][1] > rates[-1][0]  # lost tracks kept at the fastest rate
    assert summary.tickets == 1
    # the gate is not built when there is no stride, or when the run turns it off
    Counting.calls.clear()
    pipe.config = dataclasses.replace(pipe.config, detect_every=3, detect_on_motion=False)
    assert pipe.run_source(make_source(60)).motion_detections == 0 and len(Counting.calls) == 20


@pytest.mark.slow
def test_fast_profile_keeps_the_banjarmasin_red_light_ticket(shared_data: Path, tmp_path: Path) -> None:
    """int8 detector at 6/s: the car that runs the red light is detected in a few frames only; the
    motion gate on the stop line detects it as it crosses (without the gate it was lost)."""
    from conftest import require_model

    from etle.runner import run_sources

    require_model("vehicle-detector-int8")
    clip = shared_data / "videos" / "id_dishub_banjarmasin_stopline.mp4"
    camera = Path(__file__).resolve().parents[1] / "examples" / "cameras" / "id_dishub_banjarmasin_stopline.yaml"
    (s,) = run_sources(
        str(clip), camera_path=camera, out_dir=tmp_path / "out", db_url=f"sqlite:///{tmp_path}/t.db",
        read_plates=False, detect_fps=6.0, detector_model="vehicle-detector-int8", max_seconds=6.0,
        progress=False, keys_dir=tmp_path / "keys",
    )
    assert s.detect_every == 5 and s.motion_detections > 0
    assert s.violations_by_rule.get("red_light") == 1
