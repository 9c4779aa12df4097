"""A camera file fitted to footage of another size (etle.camera.fit): coordinates scaled with a
declared frame_size, another shape or points outside the frame refused in one line, and the
pipeline running the fitted camera on its own (tickets where the unscaled file gives none)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from etle.camera.config import CameraConfig, CameraConfigError, load_camera
from etle.camera.fit import NOT_IMAGE_POINTS, SCENE_PX_FIELDS, check_frame, fit_camera, image_points, is_point_field, size_hint
from etle.config.run import RunOptions
from etle.errors import ConfigError
from etle.runner import build_pipeline
from etle.signal.config import RoiSignalConfig
from tests.fixtures.scenes import CAMERA, CarDownTheRoad, make_source

FULL = """\
id: fit-cam
timezone: Asia/Jakarta
frame_size: [640, 360]
overlays:
  - [[400, 0], [640, 0], [640, 24]]
view_guard:
  reference: ref.png
  ignore: [[[0, 300], [100, 300], [100, 360]]]
signal: {type: roi, polygon: [[600, 20], [620, 20], [620, 60], [600, 60]]}
calibration:
  image_points: [[100, 300], [540, 300], [420, 120], [220, 120]]
  world_points: [[0, 0], [7, 0], [7, 30], [0, 30]]
zones:
  stop_line: {points: [[80, 250], [560, 250]], approach_side: [320, 200]}
  lane_in: {polygon: [[220, 120], [420, 120], [540, 340], [100, 340]], direction: [0, 1]}
rules:
  red_light: {line: stop_line, min_displacement_px: 6}
  wrong_way: {lanes: [lane_in], min_distance_px: 40, max_step_px: 80}
  no_helmet: {min_head_px: 14}
  speeding: {limits_kmh: {lane_in: 50}}
"""


@pytest.fixture
def full(tmp_path: Path) -> CameraConfig:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "ref.png"), rng.integers(0, 255, (360, 640, 3), dtype=np.uint8))
    path = tmp_path / "cam.yaml"
    path.write_text(FULL)
    return load_camera(path)


def test_every_image_point_and_picture_distance_is_scaled(full: CameraConfig) -> None:
    fitted = fit_camera(full, 1280, 720)
    assert fitted.frame_size == (1280, 720) and full.frame_size == (640, 360)  # the input is unchanged
    before, after = list(image_points(full)), list(image_points(fitted))
    assert [name for name, _ in before] == [name for name, _ in after]
    assert {name.split(".")[0] for name, _ in before} == {"overlays", "view_guard", "signal", "calibration", "zones"}
    for (name, (x, y)), (_, (x2, y2)) in zip(before, after):
        assert (x2, y2) == (2 * x, 2 * y), name
    assert fitted.zones["stop_line"].points == ((160.0, 500.0), (1120.0, 500.0))
    assert fitted.zones["lane_in"].direction == (0.0, 2.0)  # a vector keeps its direction
    assert fitted.calibration is not None and full.calibration is not None
    assert fitted.calibration.world_points == full.calibration.world_points  # metres stay metres
    assert isinstance(fitted.signal, RoiSignalConfig) and fitted.signal.polygon[0] == (1200.0, 40.0)
    assert fitted.rules.red_light.min_displacement_px == 12.0
    assert (fitted.rules.wrong_way.min_distance_px, fitted.rules.wrong_way.max_step_px) == (80.0, 160.0)
    assert fitted.rules.no_helmet.min_head_px == 14.0  # how large a head must be to judge it: not scaled


def test_same_size_and_no_size_leave_the_camera_as_it_is(full: CameraConfig, tmp_path: Path) -> None:
    assert fit_camera(full, 640, 360) is full
    assert check_frame(full, 640, 360) == []
    plain = full.model_copy(update={"frame_size": None})
    assert fit_camera(plain, 1280, 720) is plain  # taken as pixels of whatever the footage is
    assert "top-left quarter" in (size_hint(plain, 1280, 720) or "")
    assert size_hint(plain, 640, 360) is None and size_hint(full, 1280, 720) is None


def test_downscaled_footage_gets_smaller_coordinates(full: CameraConfig) -> None:
    fitted = fit_camera(full, 320, 180)
    assert fitted.zones["stop_line"].points == ((40.0, 125.0), (280.0, 125.0))
    assert fitted.rules.red_light.min_displacement_px == 3.0
    assert check_frame(fitted, 320, 180) == [] and check_frame(full, 320, 180) != []


def test_another_shape_is_refused(full: CameraConfig) -> None:
    with pytest.raises(CameraConfigError, match=r"drawn for 640x360 .* 480x360 .*another crop"):
        fit_camera(full, 480, 360)
    # rounding to the encoder's block size is the same picture
    assert fit_camera(full, 1920, 1088).frame_size == (1920, 1088)


def test_points_outside_the_frame_without_a_frame_size_are_refused(full: CameraConfig) -> None:
    plain = full.model_copy(update={"frame_size": None})
    with pytest.raises(CameraConfigError) as err:
        fit_camera(plain, 320, 180)
    message = str(err.value)
    assert "outside the 320x180 frame" in message and "frame_size" in message and "\n" not in message


def test_bad_frame_size_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text("id: bad\nframe_size: [640, 0]\n")
    with pytest.raises(CameraConfigError, match=r"cam.yaml:2: frame_size"):
        load_camera(path)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                _models(tp, seen)
            stack.extend(typing.get_args(tp))


def test_every_point_and_pixel_field_of_the_schema_has_a_decision() -> None:
    """A new field typed as a point, or a new option in pixels, must be decided on: an image
    point (scaled), not one (NOT_IMAGE_POINTS), a distance in the picture (SCENE_PX_FIELDS) or a
    crop size a model needs (not scaled).  This list fails the test until it is."""
    models: set[type[BaseModel]] = set()
    _models(CameraConfig, models)
    point_fields = {name for m in models for name, f in m.model_fields.items() if is_point_field(f.annotation)}
    assert point_fields == {"points", "approach_side", "direction", "polygon", "overlays", "ignore", "image_points",
                            "world_points"}
    assert NOT_IMAGE_POINTS <= point_fields
    px_fields = {name for m in models for name in m.model_fields if name.endswith("_px")}
    crop_sizes = {"min_head_px", "min_crop_px"}
    assert px_fields == SCENE_PX_FIELDS | crop_sizes


def _camera(tmp_path: Path, scale: float, frame_size: tuple[int, int] | None) -> Path:
    """The synthetic road's camera (tests.fixtures.scenes, 320x240 frames) drawn on a picture
    ``scale`` times the size."""
    text = CAMERA.format(state="red").replace("[[0, 120], [320, 120]]", f"[[0, {120 * scale:g}], [{320 * scale:g}, {120 * scale:g}]]")
    text = text.replace("[160, 20]", f"[{160 * scale:g}, {20 * scale:g}]")
    if frame_size is not None:
        text += f"frame_size: [{frame_size[0]}, {frame_size[1]}]\n"
    path = tmp_path / f"cam-{scale:g}-{frame_size}.yaml"
    path.write_text(text)
    return path


def _tickets(tmp_path: Path, camera: Path, name: str) -> list[tuple[str, int]]:
    options = RunOptions(out_dir=tmp_path / name, db_url=f"sqlite:///{tmp_path / name}.db", read_plates=False,
                         pre_s=1.0, post_s=1.0)
    pipeline, _ = build_pipeline(camera, options, detector=CarDownTheRoad())
    summary = pipeline.run_source(make_source())
    from etle.store import open_store

    store = open_store(options.db_url)
    try:
        return [(t.rule, t.track_id) for t in store.list(limit=10)] if summary.tickets else []
    finally:
        store.close()


def test_the_pipeline_runs_a_camera_drawn_at_half_size_on_full_size_frames(tmp_path: Path) -> None:
    as_drawn = _tickets(tmp_path, _camera(tmp_path, 1.0, None), "as-drawn")
    assert as_drawn and as_drawn[0][0] == "red_light"
    # drawn on a 160x120 snapshot and declared so: scaled to the 320x240 frames, the same ticket
    assert _tickets(tmp_path, _camera(tmp_path, 0.5, (160, 120)), "declared") == as_drawn
    # the same file without frame_size: its line lies in the top-left quarter, the car never crosses it
    assert _tickets(tmp_path, _camera(tmp_path, 0.5, None), "undeclared") == []


def test_the_pipeline_refuses_a_camera_of_another_shape_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="another crop") as err:
        _tickets(tmp_path, _camera(tmp_path, 1.0, (320, 180)), "crop")
    assert "\n" not in str(err.value)
    drawn_large = _camera(tmp_path, 2.0, None)  # points outside the 320x240 frames, no frame_size
    with pytest.raises(ConfigError, match="outside the 320x240 frame"):
        _tickets(tmp_path, drawn_large, "large")
