"""The motion gate: detections between stride frames when something crosses a rule line."""

from __future__ import annotations

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
    from fixtures.scenes import CarDownTheRoad, build, make_source

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
    pipe.config = pipe.config.model_copy(update={"detect_every": 3})
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
    pipe.config = pipe.config.model_copy(update={"detect_every": 3, "detect_on_motion": False})
    assert pipe.run_source(make_source(60)).motion_detections == 0 and len(Counting.calls) == 20


@pytest.mark.slow
def test_motion_gate_keeps_the_sample_red_light_ticket_on_a_stride() -> None:
    """The bundled sample at 4 detections/s: the grey car that runs the red light is seen by the
    COCO detector in a few frames only (0.2-0.6, top-down).  On the stride alone it is lost;
    the gate on the stop line detects it as it crosses and the ticket is kept.

    Measured on this project's CI machine (float detector; the int8 one misses this car at any
    rate there -- docs/accuracy.md).  Earlier this test used the Banjarmasin clip at 6/s with the
    int8 detector; on the current machine that car is no longer found at 6/s by either model.
    """
    import tempfile

    from conftest import require_model

    from etle.config.run import RunOptions
    from etle.config.settings import settings
    from etle.runner import run_sources

    require_model("vehicle-detector")
    repo = Path(__file__).resolve().parents[2]
    found = {}
    for gate in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            options = RunOptions(out_dir=Path(tmp) / "out", db_url=f"sqlite:///{tmp}/t.db", read_plates=False, detect_fps=4.0,
                                 detect_on_motion=gate, detector="vehicle-detector")
            (s,) = run_sources(
                str(repo / "sample_videos" / "intel_car_detection_parking.mp4"),
                repo / "examples" / "cameras" / "intel_car_detection_parking.yaml",
                options, settings().model_copy(update={"keys_dir": Path(tmp) / "keys"}), progress=False,
            )
        assert s.detect_every == 3
        found[gate] = (s.violations_by_rule.get("red_light", 0), s.motion_detections)
    assert found[False] == (0, 0), found  # the stride alone loses the crossing
    assert found[True][0] == 1 and found[True][1] > 0, found  # the gate's detections keep it
