"""Seatbelt / phone use: the driver-crop rule with a fake model and with a real tiny ONNX model."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from fixtures.onnx_models import tiny_crop_model

from etle.camera.config import load_camera
from etle.rules.driver import DriverCropRule, driver_crop
from etle.rules.engine import RuleEngine, build_rules
from etle.types import Box, Frame, FrameContext, TrackedObject

START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)


CAR = TrackedObject(1, Box(100, 60, 300, 220), "car", 0.9)


class FakeModel:
    """Scores the mean red of the crop: the test paints the driver's region red for 'violation'."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def violation_scores(self, crops):
        self.sizes += [c.shape[:2] for c in crops]
        return np.array([float(c[..., 2].mean() / 255.0) for c in crops])


def image(red_driver: bool) -> np.ndarray:
    img = np.full((300, 400, 3), 60, np.uint8)
    if red_driver:
        x1, y1, x2, y2 = 100 + 0.45 * 200, 60 + 0.1 * 160, 100 + 1.0 * 200, 60 + 0.6 * 160
        img[int(y1) : int(y2), int(x1) : int(x2)] = (0, 0, 255)
    return img


def run(rule, img, n=30, obj=CAR):
    eng = RuleEngine([rule])
    out = []
    for i in range(n):
        out += eng.update(FrameContext(Frame("t", i, i / 10, img, wall_start=START), (obj,)))
    return out


def test_fires_when_the_model_sees_the_violation():
    model = FakeModel()
    out = run(DriverCropRule("seatbelt", model), image(True))
    assert len(out) == 1
    v = out[0]
    assert v.rule == "seatbelt" and v.track_id == 1 and v.details["score"] > 0.9
    # the crop is the configured fraction of the vehicle box
    assert model.sizes[0] == (80, 110)


def test_does_not_fire_when_the_model_does_not():
    assert run(DriverCropRule("phone_use", FakeModel()), image(False)) == []


def test_waits_for_min_samples_and_throttles():
    model = FakeModel()
    # scored at frames 0, 4 (two samples): not yet
    assert run(DriverCropRule("seatbelt", model, min_samples=3, every_n_frames=4), image(True), n=8) == []
    assert len(model.sizes) == 2
    # the third score comes at frame 8
    out = run(DriverCropRule("seatbelt", FakeModel(), min_samples=3, every_n_frames=4), image(True), n=9)
    assert len(out) == 1 and out[0].frame_index == 8


def test_small_vehicles_and_other_classes_are_skipped():
    model = FakeModel()
    tiny = TrackedObject(2, Box(10, 10, 40, 30), "car", 0.9)
    assert run(DriverCropRule("seatbelt", model, min_crop_px=24), image(True), obj=tiny) == []
    moto = TrackedObject(3, Box(100, 60, 300, 220), "motorcycle", 0.9)
    assert run(DriverCropRule("seatbelt", model), image(True), obj=moto) == []
    assert model.sizes == []


def test_driver_crop_clips_to_the_image():
    img = np.zeros((100, 100, 3), np.uint8)
    assert driver_crop(img, Box(80, 80, 180, 180), (0.45, 0.1, 1.0, 0.6)) is None
    crop = driver_crop(img, Box(50, 50, 150, 150), (0.0, 0.0, 1.0, 1.0))
    assert crop.shape == (50, 50, 3)


def test_a_model_returning_the_wrong_count_is_an_error():
    class Broken:
        def violation_scores(self, crops):
            return np.zeros(len(crops) + 1)

    with pytest.raises(ValueError, match="scores"):
        run(DriverCropRule("seatbelt", Broken()), image(True), n=1)


def test_enabled_from_the_camera_file_with_an_onnx_model(tmp_path: Path):
    """A user's ONNX model named in the camera file: red raises the 'violation' column."""
    tiny_crop_model(tmp_path / "seatbelt.onnx")
    cam = tmp_path / "cam.yaml"
    cam.write_text(
        "id: cam-1\n"
        "rules:\n"
        "  seatbelt:\n"
        "    model: seatbelt.onnx\n"
        "    threshold: 0.8\n"
        "  phone_use:\n"
        "    model: seatbelt.onnx\n"
        "    positive_class: 0\n"
        "    threshold: 0.8\n",
        encoding="utf-8",
    )
    eng = build_rules(load_camera(cam))
    assert [r.name for r in eng.rules] == ["seatbelt", "phone_use"]
    out = []
    for i in range(12):
        out += eng.update(FrameContext(Frame("t", i, i / 10, image(True), wall_start=START), (CAR,)))
    assert [v.rule for v in out] == ["seatbelt"]
