"""A camera file fitted to the frame size of the video it runs on.

Every coordinate of a camera file (zones, overlays, the lamp's region, calibration marks, the
view guard's ignored areas) is a pixel of the picture it was drawn on.  Footage of the same
camera often comes at another size -- the recorder exports 1280x720 where the zones were drawn
on a 640x360 snapshot, a camera's firmware resets to 1080p -- and a zone then covers the wrong
part of the picture: tickets are silently missed or, worse, given for the wrong place.

* A camera file that declares ``frame_size: [w, h]`` is scaled to a video of the same shape
  (aspect ratio within :data:`ASPECT_TOLERANCE`): every image point, and every rule threshold
  that is a distance in the picture (:data:`SCENE_PX_FIELDS`), is multiplied by the ratio of the
  sizes.  Thresholds that say how large a crop must be for a model to judge it (``min_head_px``,
  ``min_crop_px``) are not scaled: a small head stays too small whatever the camera file says.
* A video of another shape is refused (:class:`CameraConfigError`): a crop or a letterbox moves
  the picture under the zones, and no scaling puts them back.
* A camera file without ``frame_size`` takes its coordinates as pixels of whatever the video is;
  a point outside the frame (a file drawn for a larger picture) is refused.

The evidence of a ticket records the hash of the configuration it was judged with
(:meth:`CameraConfig.config_hash`): for fitted footage that is the fitted configuration, whose
``frame_size`` is the footage's.

Hand-written: this is the camera file's own schema, which no library knows.  Which fields hold
image points is read from the models' annotations (any field typed with
:data:`etle.geometry.Point`), so a new zone or section is scaled without being listed here; the
points that are not image pixels (:data:`NOT_IMAGE_POINTS`) are listed, and a test checks that
every point field of the schema is one or the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, get_args

from pydantic import BaseModel

from etle.camera.config import CameraConfig, CameraConfigError
from etle.geometry import Point

__all__ = [
    "ASPECT_TOLERANCE", "NOT_IMAGE_POINTS", "SCENE_PX_FIELDS", "check_frame", "fit_camera", "image_points",
    "is_point_field", "size_hint",
]

ASPECT_TOLERANCE = 0.02
"""Largest relative difference of width / height between the drawn picture and the video that
still counts as the same picture at another resolution (encoders round sizes to 2, 8 or 16 px)."""

EDGE_TOLERANCE_PX = 2.0
"""How far outside the frame a point may lie without a ``frame_size`` (a point on the edge
clicked a pixel beyond it)."""

SCENE_PX_FIELDS = frozenset({"min_displacement_px", "max_motion_px", "min_distance_px", "max_step_px"})
"""Rule options that are distances in the picture (how far a vehicle moved): scaled with it."""

NOT_IMAGE_POINTS = frozenset({"world_points"})
"""Point fields that are not image pixels (the calibration's marks in metres): never scaled."""


def is_point_field(annotation: Any) -> bool:
    """Whether a field's type holds :data:`~etle.geometry.Point` values (a point, a polygon, a
    list of polygons, optional or not)."""
    if annotation == Point:
        return True
    return any(is_point_field(a) for a in get_args(annotation))


def _scale_points(value: Any, sx: float, sy: float) -> Any:
    if value is None:
        return None
    if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return (float(value[0]) * sx, float(value[1]) * sy)
    return tuple(_scale_points(v, sx, sy) for v in value)


def _scaled(model: BaseModel, sx: float, sy: float) -> BaseModel:
    """A copy of ``model`` with its image points and picture distances scaled (recursively)."""
    s = math.sqrt(sx * sy)
    update: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None or name in NOT_IMAGE_POINTS:
            continue
        if isinstance(value, BaseModel):
            update[name] = _scaled(value, sx, sy)
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            update[name] = {k: _scaled(v, sx, sy) for k, v in value.items()}
        elif isinstance(value, tuple) and value and all(isinstance(v, BaseModel) for v in value):
            update[name] = tuple(_scaled(v, sx, sy) for v in value)
        elif is_point_field(field.annotation):
            update[name] = _scale_points(value, sx, sy)
        elif name in SCENE_PX_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
            update[name] = float(value) * s
    return model.model_copy(update=update)


def image_points(model: BaseModel, where: str = "") -> Iterator[tuple[str, Point]]:
    """Every image point of ``model`` (a camera config or one of its sections) with the dotted
    name of its field, e.g. ``("zones.stop_line.points", (40.0, 150.0))``; vectors
    (``direction``) are not points and are left out."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{where}.{name}" if where else name
        if value is None or name in NOT_IMAGE_POINTS or name == "direction":
            continue
        if isinstance(value, BaseModel):
            yield from image_points(value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    yield from image_points(v, f"{path}.{k}")
        elif isinstance(value, tuple) and value and all(isinstance(v, BaseModel) for v in value):
            for k, v in enumerate(value):
                yield from image_points(v, f"{path}.{k}")
        elif is_point_field(field.annotation):
            yield from ((path, p) for p in _flat_points(value))


def _flat_points(value: Any) -> Iterator[Point]:
    if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        yield (float(value[0]), float(value[1]))
        return
    for v in value:
        yield from _flat_points(v)


def _outside(camera: CameraConfig, width: int, height: int) -> list[str]:
    """One line per field with image points outside a ``width`` x ``height`` frame."""
    bad: dict[str, list[Point]] = {}
    tol = EDGE_TOLERANCE_PX
    for path, (x, y) in image_points(camera):
        if not (-tol <= x <= width + tol and -tol <= y <= height + tol):
            bad.setdefault(path, []).append((x, y))
    return [f"{path} has points outside the {width}x{height} frame: "
            f"{', '.join(f'[{x:g}, {y:g}]' for x, y in pts[:3])}" for path, pts in bad.items()]


def check_frame(camera: CameraConfig, width: int, height: int) -> list[str]:
    """Why ``camera`` cannot run on ``width`` x ``height`` frames as it is (empty: it can):
    a declared ``frame_size`` that differs (fit it first, :func:`fit_camera`), or points outside
    the frame."""
    if width <= 0 or height <= 0:
        return []  # a source that does not know its size yet: nothing to check against
    if camera.frame_size is not None and tuple(camera.frame_size) != (width, height):
        fw, fh = camera.frame_size
        return [f"camera '{camera.id}' is drawn for {fw}x{fh} frames, the video is {width}x{height}"]
    return _outside(camera, width, height)


def size_hint(camera: CameraConfig, width: int, height: int) -> str | None:
    """A warning for a camera file without ``frame_size`` whose points all lie in the top-left
    quarter of ``width`` x ``height`` frames: most likely drawn on a picture half the size (the
    zones then cover the wrong part of this one); None otherwise."""
    if camera.frame_size is not None or width <= 0 or height <= 0:
        return None
    pts = [p for _, p in image_points(camera)]
    if len(pts) < 2:
        return None
    if max(x for x, _ in pts) <= width / 2 and max(y for _, y in pts) <= height / 2:
        return (f"camera '{camera.id}': every point of its file lies in the top-left quarter of these {width}x{height} "
                "frames: drawn on a smaller picture? declare the size it was drawn on as frame_size: [width, height]")
    return None


def fit_camera(camera: CameraConfig, width: int, height: int) -> CameraConfig:
    """``camera`` for ``width`` x ``height`` frames (see the module docstring): itself when it
    fits, scaled when it declares a ``frame_size`` of the same shape; else a
    :class:`CameraConfigError` that says what to do."""
    if width <= 0 or height <= 0:
        return camera
    if camera.frame_size is None or tuple(camera.frame_size) == (width, height):
        problems = _outside(camera, width, height)
        if problems:
            raise CameraConfigError([
                f"camera '{camera.id}': {p} (drawn for a larger picture? declare the size it was drawn on as "
                "frame_size: [width, height] and it is scaled to each video)" for p in problems])
        return camera
    fw, fh = camera.frame_size
    drawn, video = fw / fh, width / height
    if abs(video / drawn - 1.0) > ASPECT_TOLERANCE:
        raise CameraConfigError([
            f"camera '{camera.id}' is drawn for {fw}x{fh} frames (aspect {drawn:.3f}) and the video is "
            f"{width}x{height} (aspect {video:.3f}): another crop of the picture, not another resolution; "
            "draw the zones on this footage (etle zones preview shows them) and set frame_size to its size"])
    fitted = _scaled(camera, width / fw, height / fh)
    assert isinstance(fitted, CameraConfig)
    return fitted.model_copy(update={"frame_size": (width, height)})
