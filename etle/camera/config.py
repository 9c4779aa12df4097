"""Camera configuration: one YAML file per camera, validated once at load.

The models are pydantic v2 with ``extra="forbid"``: a misspelt key is an error, never silently
ignored.  :func:`load_camera` reports every problem as a :class:`CameraConfigError` (a
:class:`~etle.errors.ConfigError`) whose one-line message names the file, the line and the
field, e.g. ``cam.yaml:12: rules.red_light.grace_s: Input should be greater than or equal to 0``.

Why the loader is hand-written around PyYAML: pydantic reports *where in the data* a value is
wrong (``loc``), YAML knows *where in the file* each value was written (node marks).  We compose
the document to nodes once, construct the Python data from the same nodes, and map each error's
``loc`` back to the node's line.  The loader also refuses duplicate keys (plain PyYAML keeps the
last one silently) and reads ``17:00:00`` as a string, not as the YAML 1.1 base-60 integer 61200.

Example (a complete file)::

    id: jambi-tugu-juang-n
    name: Tugu Juang, northern approach
    location: Jl. Sultan Thaha, Kota Jambi
    lat: -1.6101
    lon: 103.6131
    timezone: Asia/Jakarta
    start_time: 2025-03-01T07:30:00      # footage only; naive times are in `timezone`
    view_guard:
      reference: reference.mp4            # relative to this file
      reference_at_s: 2.0
    signal:
      type: fixed_plan
      anchor: "07:00:00"
      offset_s: 0
      phases:
        - {state: green, duration_s: 40}
        - {state: yellow, duration_s: 3}
        - {state: red, duration_s: 45}
    zones:
      stop_line:
        points: [[40, 150], [380, 170]]
        approach_side: [200, 220]
    rules:
      red_light: {line: stop_line, grace_s: 0.5}
      more_than_two: {}

The whole rule suite (each key enables one rule; every option has a default, a bound and a
description on its model below; zones are referred to by name)::

    signal: {type: mqtt, topic: atcs/jambi/tugu-juang/north, head: north}   # or type: http
    calibration:                          # ground plane for speeds: >= 4 road marks
      image_points: [[100, 400], [540, 400], [420, 200], [220, 200]]
      world_points: [[0, 0], [7, 0], [7, 30], [0, 30]]   # metres
    zones:
      stop_line: {points: [[80, 380], [560, 380]], approach_side: [320, 300]}
      zebra: {polygon: [[80, 385], [560, 385], [560, 430], [80, 430]]}
      lane_in: {polygon: [[220, 200], [420, 200], [540, 380], [100, 380]], direction: [0, 1]}
      busway: {polygon: [[420, 200], [470, 200], [600, 380], [540, 380]]}
    rules:
      red_light: {line: stop_line, grace_s: 0.3}
      stop_line: {zones: [zebra], grace_s: 2}
      wrong_way: {lanes: [lane_in], min_distance_px: 50, min_duration_s: 1}
      speeding: {limits_kmh: {lane_in: 50}, tolerance_kmh: 5}
      no_helmet: {threshold: 0.6}
      more_than_two: {}
      odd_even: {zone: lane_in, hours: ["06:00-10:00", "16:00-21:00"], holidays: [2025-03-31]}
      busway: {zones: [busway], min_dwell_s: 3}
      no_stopping: {zones: [busway], min_dwell_s: 60}
      invalid_plate: {registry: registry.csv}
      seatbelt: {model: seatbelt.onnx}    # a user's model: see etle.rules.crop_model
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, TypeVar, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from etle.errors import ConfigError
from etle.types import VEHICLE_LABELS

__all__ = [
    "CalibrationConfig",
    "CameraConfig",
    "CameraConfigError",
    "DriverModelOptions",
    "FixedPlanConfig",
    "HttpSignalConfig",
    "InvalidPlateOptions",
    "LineZone",
    "MoreThanTwoOptions",
    "MqttSignalConfig",
    "NoHelmetOptions",
    "NoStoppingOptions",
    "OddEvenOptions",
    "Phase",
    "PolygonZone",
    "RedLightOptions",
    "RestrictedLaneOptions",
    "RoiSignalConfig",
    "RulesConfig",
    "SpeedingOptions",
    "StopLineOptions",
    "ViewGuardConfig",
    "WrongWayOptions",
    "load_camera",
    "load_located",
]

Point = tuple[float, float]


def _three_points_each(polygons: tuple[tuple[Point, ...], ...], what: str) -> tuple[tuple[Point, ...], ...]:
    for poly in polygons:
        if len(poly) < 3:
            raise ValueError(f"each {what} polygon needs at least 3 points")
    return polygons
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d):([0-5]\d)$")
_SLUG = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"


class CameraConfigError(ConfigError):
    """A camera file is invalid; ``problems`` holds one line per error found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)


class _LocatedError(ValueError):
    """A cross-field error raised from a model validator, with the ``loc`` it belongs to."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------- view guard
class ViewGuardConfig(_Model):
    """Where the reference view comes from and how strictly the live view must match it."""

    reference: Path = Field(
        description="Image of the reference view, or a video (then see reference_at_s); "
        "relative paths are relative to the camera file."
    )
    reference_at_s: float | None = Field(
        default=None,
        ge=0,
        description="When `reference` is a video: the time of the reference frame.",
    )
    check_every_s: float = Field(
        default=0.5, gt=0, description="Full view comparison every this many seconds of pts."
    )
    min_similarity: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="Homography inliers as a fraction of the reference's features needed to match.",
    )
    min_inliers: int = Field(default=20, ge=4, description="And at least this many inliers.")
    max_shift: float = Field(
        default=0.03,
        gt=0,
        le=1,
        description="Largest mean displacement of the frame corners under the fitted homography, "
        "as a fraction of the image width (the view must be the same framing, not just the scene).",
    )
    resume_after_s: float = Field(
        default=1.0,
        ge=0,
        description="After a pause, the view must match this long before rules resume.",
    )
    cut_threshold: float = Field(
        default=0.08,
        gt=0,
        le=1,
        description="Mean grey difference (0..1) of a 32x18 thumbnail against the last checked "
        "frame that triggers an immediate check (scene cut, dissolve, pan).",
    )
    work_width: int = Field(
        default=320, ge=64, le=1920, description="Frames are compared downscaled to this width."
    )
    ignore: tuple[tuple[Point, ...], ...] = Field(
        default=(),
        description="Polygons (image px) to leave out of the comparison: burned-in clocks, logos.",
    )

    @field_validator("reference", mode="after")
    @classmethod
    def _resolve_reference(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        path = value.expanduser()
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        if not path.is_file():
            raise ValueError(f"reference file not found: {path}")
        return path

    @field_validator("ignore", mode="after")
    @classmethod
    def _polygons(cls, value: tuple[tuple[Point, ...], ...]) -> tuple[tuple[Point, ...], ...]:
        return _three_points_each(value, "ignore")

    @model_validator(mode="after")
    def _verify_reference_kind(self) -> "ViewGuardConfig":
        if self.reference_at_s is not None and self.reference.suffix.lower() in IMAGE_SUFFIXES:
            raise _LocatedError(("reference_at_s",), "only meaningful when reference is a video")
        return self

    @property
    def is_video(self) -> bool:
        return self.reference.suffix.lower() not in IMAGE_SUFFIXES


# -------------------------------------------------------------------------------------- signal
class Phase(_Model):
    state: Literal["red", "yellow", "green"] = Field(description="Lamp lit during this phase.")
    duration_s: float = Field(gt=0, description="Length of the phase in seconds.")


class FixedPlanConfig(_Model):
    """A fixed-time signal plan, repeated from an anchor."""

    type: Literal["fixed_plan"]
    anchor: str = Field(
        default="source_start",
        description="'source_start' (pts 0) or a time of day 'HH:MM:SS' in the camera timezone "
        "at which phase 0 starts (the plan restarts from there every day).",
    )
    phases: tuple[Phase, ...] = Field(min_length=1, description="Phases of one cycle, in order.")
    offset_s: float = Field(
        default=0.0, description="Seconds into the cycle at the anchor (shifts the plan)."
    )

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str) -> str:
        if value != "source_start" and not _TIME_OF_DAY.match(value):
            raise ValueError("must be 'source_start' or a time of day 'HH:MM:SS'")
        return value

    @property
    def anchor_time(self) -> time | None:
        if self.anchor == "source_start":
            return None
        h, m, s = (int(x) for x in self.anchor.split(":"))
        return time(h, m, s)

    @property
    def cycle_s(self) -> float:
        return sum(p.duration_s for p in self.phases)


class RoiSignalConfig(_Model):
    """The signal read from the traffic-light head in the image by the colour of the lit lamp."""

    type: Literal["roi"]
    polygon: tuple[Point, ...] = Field(
        min_length=3, description="Region of the signal head in image px."
    )
    debounce_s: float = Field(
        default=0.3, ge=0, description="A new colour must be stable this long before it counts."
    )
    min_fraction: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="Fraction of the region's pixels that must be lit in one colour.",
    )
    min_saturation: int = Field(default=90, ge=0, le=255, description="HSV S of a lit lamp pixel.")
    min_value: int = Field(default=160, ge=0, le=255, description="HSV V of a lit lamp pixel.")


_DEFAULT_STATE_MAP: dict[str, str] = {
    "red": "red",
    "r": "red",
    "merah": "red",
    "stop": "red",
    "yellow": "yellow",
    "amber": "yellow",
    "y": "yellow",
    "a": "yellow",
    "kuning": "yellow",
    "green": "green",
    "g": "green",
    "hijau": "green",
    "go": "green",
}


class _FeedConfig(_Model):
    """What the HTTP and MQTT signal feeds share: message reading and staleness."""

    head: str | None = Field(
        default=None,
        description="Signal head / group this camera enforces; messages naming another head "
        "(field `head`) are ignored.  None: every message counts.",
    )
    stale_after_s: float = Field(
        default=90.0,
        gt=0,
        description="A state older than this (frame time minus message time) is 'unknown': the "
        "controller must send at least this often (a heartbeat, or on every phase change when "
        "no phase is longer).",
    )
    clock_offset_s: float = Field(
        default=0.0,
        description="Added to the controller's message timestamps (corrects a controller clock "
        "that runs behind (positive) or ahead (negative) of the camera clock).",
    )
    state_map: dict[str, Literal["red", "yellow", "green"]] = Field(
        default_factory=lambda: dict(_DEFAULT_STATE_MAP),
        description="Controller state names (case-insensitive) -> lamp colour; names not listed "
        "read as 'unknown'.",
    )

    @field_validator("state_map")
    @classmethod
    def _lower(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().lower(): v for k, v in value.items()}


class HttpSignalConfig(_FeedConfig):
    """Signal state pushed by the signal controller over HTTP (POST a JSON message).

    Message: ``{"state": "red", "ts": 1741826400.25, "head": "north"}`` -- ``ts`` in epoch
    seconds or ISO 8601 (the receive time when absent), ``head`` optional; a plain-text body
    ``red`` works too.  ``GET`` on the same path returns the latest state.
    """

    type: Literal["http"]
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8089, ge=1, le=65535, description="TCP port to listen on.")
    path: str = Field(default="/signal", pattern=r"^/", description="URL path of the feed.")
    token_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding a bearer token the controller "
        "must send (Authorization: Bearer ...); None: no authentication (bind to localhost).",
    )


class MqttSignalConfig(_FeedConfig):
    """Signal state published by the signal controller (or an ATCS gateway) over MQTT."""

    type: Literal["mqtt"]
    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    topic: str = Field(min_length=1, description="Topic to subscribe to (wildcards allowed).")
    qos: Literal[0, 1, 2] = Field(default=1, description="Subscription QoS.")
    client_id: str = Field(default="", description="MQTT client id ('' = broker-assigned).")
    username: str | None = Field(default=None, description="Broker user name.")
    password_env: str | None = Field(
        default=None, description="Name of an environment variable holding the broker password."
    )
    tls: bool = Field(default=False, description="Connect with TLS (system CA certificates).")


SignalConfig = Annotated[
    Union[FixedPlanConfig, RoiSignalConfig, HttpSignalConfig, MqttSignalConfig],
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------------- calibration
class CalibrationConfig(_Model):
    """Ground-plane calibration: image points of road marks and their positions in metres.

    Four or more points on the road surface (lane-mark corners, stop-line ends, measured on
    site or from a survey), given as pixels and as metres in any flat coordinate frame; a
    homography maps the image to the road plane, from which the speeding rule measures speed.
    """

    image_points: tuple[Point, ...] = Field(min_length=4, description="Image px of the marks.")
    world_points: tuple[Point, ...] = Field(
        min_length=4, description="The same marks in metres (x, y) on the road plane, same order."
    )
    max_reprojection_m: float = Field(
        default=0.5,
        gt=0,
        description="Largest error allowed when the homography maps the image points back onto "
        "the world points (a mistyped point shows up here).",
    )

    @model_validator(mode="after")
    def _verify(self) -> "CalibrationConfig":
        if len(self.image_points) != len(self.world_points):
            raise _LocatedError(
                ("world_points",),
                f"{len(self.world_points)} world points for {len(self.image_points)} image points",
            )
        from etle.rules.speed import fit_homography

        try:
            fit_homography(self.image_points, self.world_points, max_error_m=self.max_reprojection_m)
        except ValueError as exc:
            raise _LocatedError(("image_points",), str(exc)) from None
        return self


# --------------------------------------------------------------------------------------- zones
class LineZone(_Model):
    """A (poly)line, e.g. a stop line, with the side vehicles approach from."""

    points: tuple[Point, ...] = Field(min_length=2, description="Line vertices in image px.")
    approach_side: Point | None = Field(
        default=None, description="Any point on the approach side of the line (image px)."
    )
    direction: Point | None = Field(
        default=None, description="Or: the direction of travel across the line, as a vector."
    )

    @model_validator(mode="after")
    def _verify_side(self) -> "LineZone":
        if (self.approach_side is None) == (self.direction is None):
            raise _LocatedError(
                ("approach_side",), "give exactly one of approach_side or direction"
            )
        for a, b in zip(self.points, self.points[1:], strict=False):
            if a == b:
                raise _LocatedError(("points",), "consecutive points must differ")
        if self.direction is not None and self.direction == (0.0, 0.0):
            raise _LocatedError(("direction",), "must not be the zero vector")
        if self.approach_side is not None:
            from etle.rules.geometry import polyline_side

            if polyline_side(self.points, self.approach_side) == 0:
                raise _LocatedError(("approach_side",), "lies on the line")
        return self


class PolygonZone(_Model):
    """An area (lane, box junction, crossing) for rules that test containment."""

    polygon: tuple[Point, ...] = Field(min_length=3, description="Polygon vertices in image px.")
    direction: Point | None = Field(
        default=None,
        description="For a lane: the permitted direction of travel, as an image vector "
        "(e.g. [0, -1] = up the picture); the wrong-way rule needs it.",
    )

    @model_validator(mode="after")
    def _verify_polygon(self) -> "PolygonZone":
        if self.direction is not None and self.direction == (0.0, 0.0):
            raise _LocatedError(("direction",), "must not be the zero vector")
        if _polygon_area(self.polygon) == 0:
            raise _LocatedError(("polygon",), "has zero area (points are collinear)")
        return self


def _polygon_area(points: tuple[Point, ...]) -> float:
    return abs(
        sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(points, points[1:] + points[:1], strict=True))
    ) / 2.0


def _zone_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "polygon" in value:
            return "polygon"
        return "line"
    if isinstance(value, (LineZone, PolygonZone)):
        return "polygon" if isinstance(value, PolygonZone) else "line"
    return None


Zone = Annotated[
    Union[Annotated[LineZone, Tag("line")], Annotated[PolygonZone, Tag("polygon")]],
    Discriminator(_zone_kind),
]


# --------------------------------------------------------------------------------------- rules
class RedLightOptions(_Model):
    line: str = Field(default="stop_line", description="Name of the line zone to enforce.")
    grace_s: float = Field(
        default=0.5,
        ge=0,
        description="Crossings within this long after red starts are not violations.",
    )
    min_displacement_px: float = Field(
        default=6.0,
        ge=0,
        description="The anchor must move at least this far across the line (hysteresis band "
        "of half this on each side), so jitter on the line is not a crossing.",
    )
    max_gap_s: float = Field(
        default=1.0, gt=0, description="Longest gap between two observations that still counts."
    )
    labels: tuple[str, ...] = Field(
        default=("car", "motorcycle", "bus", "truck"), min_length=1, description="Classes enforced."
    )
    anchor: Literal["bottom_center", "center"] = Field(
        default="bottom_center", description="Point of the box that must cross the line."
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = VEHICLE_LABELS | {"bicycle"}
        bad = sorted(set(value) - allowed)
        if bad:
            raise ValueError(f"unknown label(s) {bad}; allowed: {sorted(allowed)}")
        return value


class MoreThanTwoOptions(_Model):
    min_persons: int = Field(default=3, ge=2, description="Persons on one motorcycle that violate.")
    min_frames: int = Field(
        default=5, ge=1, description="Frames with that many riders needed within window_s."
    )
    window_s: float = Field(default=2.0, gt=0, description="Sliding window for min_frames.")
    min_overlap: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Fraction of a person's box inside the motorcycle box to count as a rider.",
    )


_LABELS_ALLOWED = VEHICLE_LABELS | {"bicycle"}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_PLATE = re.compile(r"^[A-Z0-9]{1,12}$")


def _existing_file(value: Path, info: ValidationInfo, what: str) -> Path:
    """A file path relative to the camera file's folder, which must exist."""
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    if not path.is_file():
        raise ValueError(f"{what} file not found: {path}")
    return path


def _check_labels(value: tuple[str, ...]) -> tuple[str, ...]:
    bad = sorted(set(value) - _LABELS_ALLOWED)
    if bad:
        raise ValueError(f"unknown label(s) {bad}; allowed: {sorted(_LABELS_ALLOWED)}")
    return value


def _normalise_plates(value: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for plate in value:
        norm = "".join(c for c in str(plate).upper() if c.isalnum())
        if not _PLATE.match(norm):
            raise ValueError(f"'{plate}' is not a plate number")
        out.append(norm)
    return tuple(out)


Labels = Annotated[tuple[str, ...], Field(min_length=1)]
Anchor = Literal["bottom_center", "center"]


class StopLineOptions(_Model):
    """Stopped past the stop line (on the zebra crossing or in the motorcycle box) while red."""

    zones: tuple[str, ...] = Field(
        min_length=1,
        description="Polygon zones a vehicle must not stop in while red (zebra crossing, "
        "motorcycle box, the area just past the stop line).",
    )
    grace_s: float = Field(
        default=2.0, ge=0, description="The signal must have been red this long when stopping."
    )
    min_stopped_s: float = Field(
        default=1.0, gt=0, description="Stopped inside a zone at least this long (red all along)."
    )
    max_motion_px: float = Field(
        default=4.0,
        gt=0,
        description="Stopped: the anchor stays within this radius of its mean over min_stopped_s.",
    )
    min_inside: float = Field(
        default=0.8, gt=0, le=1, description="Fraction of the stopped frames the anchor is inside."
    )
    max_gap_s: float = Field(default=1.0, gt=0, description="Longest gap between observations.")
    labels: Labels = Field(default=("car", "motorcycle", "bus", "truck"), description="Classes.")
    anchor: Anchor = Field(default="bottom_center", description="Point of the box tested.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v)


class WrongWayOptions(_Model):
    """Sustained movement against a lane's direction."""

    lanes: tuple[str, ...] = Field(
        min_length=1, description="Polygon zones with a `direction` (the permitted one)."
    )
    min_distance_px: float = Field(
        default=40.0, gt=0, description="Net movement against the lane direction needed (px)."
    )
    min_duration_s: float = Field(
        default=1.0, gt=0, description="Over at least this long, inside the lane."
    )
    max_angle_deg: float = Field(
        default=45.0,
        gt=0,
        lt=90,
        description="The net movement must be within this angle of the reverse direction (a "
        "vehicle turning across the lane is not going the wrong way).",
    )
    window_s: float = Field(
        default=3.0, gt=0, description="History kept per track (at least min_duration_s)."
    )
    max_step_px: float = Field(
        default=80.0,
        gt=0,
        description="A jump larger than this between two observations (a tracker id switch) "
        "restarts the track's history.",
    )
    labels: Labels = Field(default=("car", "motorcycle", "bus", "truck"), description="Classes.")
    anchor: Anchor = Field(default="bottom_center", description="Point of the box tracked.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v)

    @model_validator(mode="after")
    def _window(self) -> "WrongWayOptions":
        if self.window_s < self.min_duration_s:
            raise _LocatedError(("window_s",), "must be at least min_duration_s")
        return self


class SpeedingOptions(_Model):
    """Speed over a zone's limit, measured on the calibrated ground plane."""

    limits_kmh: dict[str, float] = Field(
        min_length=1, description="Polygon zone name -> speed limit in km/h in that zone."
    )
    tolerance_kmh: float = Field(
        default=5.0, ge=0, description="Tickets only above limit + tolerance (measurement error)."
    )
    window_s: float = Field(
        default=1.0, gt=0, description="Speed is the slope of a line fitted over this window."
    )
    min_span_s: float = Field(
        default=0.6, gt=0, description="The window must hold observations spanning this long."
    )
    min_points: int = Field(default=6, ge=3, description="And at least this many observations.")
    min_distance_m: float = Field(
        default=2.0, ge=0, description="And the vehicle must have moved at least this far."
    )
    max_plausible_kmh: float = Field(
        default=160.0,
        gt=0,
        description="Measured speeds above this are rejected as measurement errors (id "
        "switches, bad boxes): logged, never ticketed.",
    )
    max_residual_m: float = Field(
        default=1.0,
        gt=0,
        description="Rejected too when the positions stray this far from the fitted line.",
    )
    min_over: int = Field(
        default=3,
        ge=1,
        description="Consecutive measurements over limit + tolerance (in one zone) to ticket.",
    )
    labels: Labels = Field(default=("car", "motorcycle", "bus", "truck"), description="Classes.")
    anchor: Anchor = Field(
        default="bottom_center", description="Box point on the road surface (tracked)."
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v)

    @field_validator("limits_kmh")
    @classmethod
    def _limits(cls, value: dict[str, float]) -> dict[str, float]:
        for zone, limit in value.items():
            if not 0 < limit < 300:
                raise ValueError(f"limit for '{zone}' must be between 0 and 300 km/h")
        return value

    @model_validator(mode="after")
    def _span(self) -> "SpeedingOptions":
        if self.min_span_s > self.window_s:
            raise _LocatedError(("min_span_s",), "must not exceed window_s")
        return self


class NoHelmetOptions(_Model):
    """Riders and passengers of a motorcycle without a helmet (the rider is ticketed)."""

    model: Path | None = Field(
        default=None,
        description="Helmet classifier ONNX (classes helmet, no_helmet, background); default: "
        "the manifest's helmet-classifier.",
    )
    threshold: float = Field(
        default=0.6, gt=0, lt=1, description="Mean no-helmet probability of a head to count."
    )
    min_samples: int = Field(
        default=4, ge=1, description="Head classifications needed before a head can count."
    )
    max_samples: int = Field(
        default=15, ge=1, description="Classifications kept per person (the latest)."
    )
    every_n_frames: int = Field(
        default=3, ge=1, description="Classify each head at most every this many frames."
    )
    min_head_px: float = Field(
        default=14.0, gt=0, description="Smallest estimated head side (px) worth classifying."
    )
    max_background: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Crops the model calls 'not a head' with this probability are not samples.",
    )
    min_overlap: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Rider association, as in more_than_two (keep them equal).",
    )
    min_ride_frames: int = Field(
        default=10,
        ge=1,
        description="A person rides the motorcycle whose rider score, summed over the frames, is "
        "largest: at least this many frames' worth (times min_overlap) ...",
    )
    ride_margin: float = Field(
        default=1.5,
        ge=1,
        description="... and this many times the next motorcycle's (an ambiguous passenger gets "
        "no motorcycle until the footage settles it).",
    )
    zone: str | None = Field(
        default=None, description="Only motorcycles whose anchor is in this polygon zone."
    )

    @field_validator("model", mode="after")
    @classmethod
    def _resolve_model(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _existing_file(value, info, "model")

    @model_validator(mode="after")
    def _samples(self) -> "NoHelmetOptions":
        if self.max_samples < self.min_samples:
            raise _LocatedError(("max_samples",), "must be at least min_samples")
        return self


class OddEvenOptions(_Model):
    """Ganjil-genap: the plate's last digit must match the date's parity during active hours."""

    zone: str | None = Field(
        default=None, description="Polygon zone of the restricted road (None: whole picture)."
    )
    hours: tuple[str, ...] = Field(
        default=("06:00-10:00", "16:00-21:00"),
        min_length=1,
        description="Active windows 'HH:MM-HH:MM' in the camera timezone.",
    )
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        default=("mon", "tue", "wed", "thu", "fri"), min_length=1, description="Active weekdays."
    )
    holidays: tuple[date, ...] = Field(
        default=(), description="Dates (YYYY-MM-DD) on which the restriction does not apply."
    )
    labels: Labels = Field(
        default=("car", "truck", "bus", "motorcycle"),
        description="Classes considered (exempt_labels are then left out).",
    )
    exempt_labels: tuple[str, ...] = Field(
        default=("motorcycle", "bus"), description="Exempt vehicle classes."
    )
    exempt_colours: tuple[Literal["yellow", "red", "green", "white", "black"], ...] = Field(
        default=("yellow", "red"),
        description="Exempt plate colours (yellow: public transport, red: government).",
    )
    exempt_plates: tuple[str, ...] = Field(
        default=(), description="Listed exempt vehicles (emergency, electric, ...), by plate."
    )
    min_plate_confidence: float = Field(
        default=0.7, ge=0, le=1, description="Plate consensus confidence needed to judge."
    )

    @field_validator("labels", "exempt_labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v) if v else v
    @field_validator("exempt_plates")
    @classmethod
    def _plates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _normalise_plates(v)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for w in value:
            m = _HOURS.match(w)
            if not m:
                raise ValueError(f"'{w}' is not a window 'HH:MM-HH:MM'")
            if (int(m.group(1)), int(m.group(2))) >= (int(m.group(3)), int(m.group(4))):
                raise ValueError(f"'{w}' ends before it starts")
            if m.group(3) == "24" and m.group(4) != "00":
                raise ValueError(f"'{w}': 24 only as 24:00")
        return value


class RestrictedLaneOptions(_Model):
    """Busway: a vehicle of a class that is not allowed inside the lane for too long."""

    zones: tuple[str, ...] = Field(min_length=1, description="Polygon zones of the lane.")
    allowed_labels: tuple[str, ...] = Field(
        default=("bus",), description="Classes allowed in the lane."
    )
    exempt_plates: tuple[str, ...] = Field(
        default=(), description="Listed vehicles allowed in the lane (emergency), by plate."
    )
    min_dwell_s: float = Field(
        default=2.0, gt=0, description="Inside the lane this long (continuously) to violate."
    )
    max_gap_s: float = Field(
        default=1.0, gt=0, description="Longest gap in observations that keeps the dwell going."
    )
    labels: Labels = Field(default=("car", "motorcycle", "bus", "truck"), description="Classes.")
    anchor: Anchor = Field(default="bottom_center", description="Point of the box tested.")

    @field_validator("labels", "allowed_labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v) if v else v
    @field_validator("exempt_plates")
    @classmethod
    def _plates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _normalise_plates(v)


class NoStoppingOptions(_Model):
    """Illegal stopping / parking: stationary in a no-stopping zone for longer than allowed."""

    zones: tuple[str, ...] = Field(min_length=1, description="Polygon no-stopping zones.")
    min_dwell_s: float = Field(
        default=30.0, gt=0, description="Stationary inside a zone this long to violate."
    )
    max_motion_px: float = Field(
        default=8.0,
        gt=0,
        description="Stationary: the anchor stays within this radius of where the stop began.",
    )
    max_gap_s: float = Field(
        default=2.0, gt=0, description="Longest gap in observations that keeps the dwell going."
    )
    labels: Labels = Field(default=("car", "motorcycle", "bus", "truck"), description="Classes.")
    anchor: Anchor = Field(default="bottom_center", description="Point of the box tested.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v)


class InvalidPlateOptions(_Model):
    """Plates that fail the TNKB grammar or mismatch the registry: flagged for review only."""

    min_plate_confidence: float = Field(
        default=0.8, ge=0, le=1, description="Plate consensus confidence needed to flag."
    )
    min_reads: int = Field(default=3, ge=1, description="Plate reads behind the consensus.")
    check_grammar: bool = Field(default=True, description="Flag plates failing the grammar.")
    check_region: bool = Field(
        default=True, description="Flag plates whose region prefix is not in the table."
    )
    registry: Path | None = Field(
        default=None,
        description="CSV registry (columns plate, vehicle_type[, colour, status]); relative "
        "paths are relative to the camera file.",
    )
    flag_unregistered: bool = Field(
        default=False, description="Flag valid plates that are not in the registry."
    )
    labels: Labels = Field(default=("car", "motorcycle", "bus", "truck"), description="Classes.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v)

    @field_validator("registry", mode="after")
    @classmethod
    def _resolve_registry(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _existing_file(value, info, "registry")


class DriverModelOptions(_Model):
    """Seatbelt / phone use: a user-supplied ONNX crop model on the driver's part of a vehicle.

    No offline weights exist for these; the model contract is in ``etle.rules.crop_model``.
    """

    model: Path = Field(description="ONNX crop model (relative paths: to the camera file).")
    input_size: int | None = Field(
        default=None, ge=8, le=1024, description="Crop side when the model's input is dynamic."
    )
    positive_class: int = Field(default=1, ge=0, description="Output column of the violation.")
    mean: tuple[float, float, float] = Field(default=(0.0, 0.0, 0.0), description="RGB mean.")
    std: tuple[float, float, float] = Field(default=(1.0, 1.0, 1.0), description="RGB std.")
    channel_order: Literal["rgb", "bgr"] = Field(default="rgb", description="Channel order.")
    crop: tuple[float, float, float, float] = Field(
        default=(0.45, 0.1, 1.0, 0.6),
        description="Driver region as fractions (x1, y1, x2, y2) of the vehicle box (default: "
        "right-hand drive, upper right of a vehicle seen from the front).",
    )
    threshold: float = Field(default=0.7, gt=0, lt=1, description="Mean score to violate.")
    min_samples: int = Field(default=3, ge=1, description="Crops scored before deciding.")
    max_samples: int = Field(default=10, ge=1, description="Scores kept per vehicle.")
    every_n_frames: int = Field(default=3, ge=1, description="Score a vehicle every n frames.")
    min_crop_px: int = Field(default=24, ge=4, description="Smallest crop side to score.")
    labels: Labels = Field(default=("car", "truck", "bus"), description="Classes.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_labels(v)

    @field_validator("model", mode="after")
    @classmethod
    def _resolve_model(cls, value: Path, info: ValidationInfo) -> Path:
        return _existing_file(value, info, "model")

    @field_validator("crop")
    @classmethod
    def _crop(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = value
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError("need 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
        return value

    @model_validator(mode="after")
    def _samples(self) -> "DriverModelOptions":
        if self.max_samples < self.min_samples:
            raise _LocatedError(("max_samples",), "must be at least min_samples")
        return self


class RulesConfig(_Model):
    """Enabled rules: a key present enables the rule (``red_light: {}`` takes the defaults)."""

    red_light: RedLightOptions | None = None
    stop_line: StopLineOptions | None = None
    wrong_way: WrongWayOptions | None = None
    speeding: SpeedingOptions | None = None
    no_helmet: NoHelmetOptions | None = None
    more_than_two: MoreThanTwoOptions | None = None
    odd_even: OddEvenOptions | None = None
    busway: RestrictedLaneOptions | None = None
    no_stopping: NoStoppingOptions | None = None
    invalid_plate: InvalidPlateOptions | None = None
    seatbelt: DriverModelOptions | None = None
    phone_use: DriverModelOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _enable_empty(cls, data: Any) -> Any:
        # `red_light:` with nothing after it enables the rule with its defaults.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in cls.model_fields else v) for k, v in data.items()}
        return data


# -------------------------------------------------------------------------------------- camera
class CameraConfig(_Model):
    """One camera: identity, place, view guard, signal, zones and rules."""

    id: str = Field(pattern=_SLUG, max_length=64, description="Slug: lower case, digits, - or _.")
    name: str = Field(default="", description="Human-readable name.")
    location: str = Field(default="", description="Address or description of the place.")
    lat: float | None = Field(default=None, ge=-90, le=90, description="Latitude, WGS84 degrees.")
    lon: float | None = Field(
        default=None, ge=-180, le=180, description="Longitude, WGS84 degrees."
    )
    timezone: str = Field(default="Asia/Jakarta", description="IANA timezone of the camera.")
    start_time: datetime | None = Field(
        default=None,
        description="Recording start of footage, used when the file has none; naive times are in "
        "`timezone`.",
    )
    view_guard: ViewGuardConfig | None = Field(default=None, description="Reference-view guard.")
    signal: SignalConfig | None = Field(default=None, description="Traffic-signal source.")
    calibration: CalibrationConfig | None = Field(
        default=None, description="Ground-plane calibration (image px -> metres) for speeds."
    )
    zones: dict[str, Zone] = Field(default_factory=dict, description="Named lines and polygons.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Enabled rules.")
    overlays: tuple[tuple[Point, ...], ...] = Field(
        default=(),
        description="Polygons (image px) of text burned into the picture (clock, camera name, "
        "watermark): no plate is read there, and the view guard leaves them out.",
    )

    @field_validator("overlays", mode="after")
    @classmethod
    def _overlay_polygons(cls, value: tuple[tuple[Point, ...], ...]) -> tuple[tuple[Point, ...], ...]:
        return _three_points_each(value, "overlay")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone '{value}'") from None
        return value

    @field_validator("start_time", mode="after")
    @classmethod
    def _start_time(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        tz = info.data.get("timezone")
        if value is not None and value.tzinfo is None and tz is not None:
            return value.replace(tzinfo=ZoneInfo(tz))
        return value

    @model_validator(mode="after")
    def _verify(self) -> "CameraConfig":
        rules = self.rules
        if rules.red_light is not None:
            self._zone_ref(("rules", "red_light", "line"), rules.red_light.line, LineZone)
            if self.signal is None:
                raise _LocatedError(("rules", "red_light"), "needs a `signal` section")
        if rules.stop_line is not None:
            for i, name in enumerate(rules.stop_line.zones):
                self._zone_ref(("rules", "stop_line", "zones", i), name, PolygonZone)
            if self.signal is None:
                raise _LocatedError(("rules", "stop_line"), "needs a `signal` section")
        if rules.wrong_way is not None:
            for i, name in enumerate(rules.wrong_way.lanes):
                zone = self._zone_ref(("rules", "wrong_way", "lanes", i), name, PolygonZone)
                if zone.direction is None:  # type: ignore[union-attr]
                    raise _LocatedError(
                        ("rules", "wrong_way", "lanes", i),
                        f"zone '{name}' has no `direction` (the permitted direction of travel)",
                    )
        if rules.speeding is not None:
            for name in rules.speeding.limits_kmh:
                self._zone_ref(("rules", "speeding", "limits_kmh", name), name, PolygonZone)
            if self.calibration is None:
                raise _LocatedError(("rules", "speeding"), "needs a `calibration` section")
        if rules.no_helmet is not None and rules.no_helmet.zone is not None:
            self._zone_ref(("rules", "no_helmet", "zone"), rules.no_helmet.zone, PolygonZone)
        if rules.odd_even is not None and rules.odd_even.zone is not None:
            self._zone_ref(("rules", "odd_even", "zone"), rules.odd_even.zone, PolygonZone)
        if rules.busway is not None:
            for i, name in enumerate(rules.busway.zones):
                self._zone_ref(("rules", "busway", "zones", i), name, PolygonZone)
        if rules.no_stopping is not None:
            for i, name in enumerate(rules.no_stopping.zones):
                self._zone_ref(("rules", "no_stopping", "zones", i), name, PolygonZone)
        return self

    def _zone_ref(self, loc: tuple[str | int, ...], name: str, kind: type) -> "LineZone | PolygonZone":
        zone = self.zones.get(name)
        if zone is None:
            zones = ", ".join(sorted(self.zones)) or "none"
            raise _LocatedError(loc, f"no zone named '{name}' (zones: {zones})")
        if not isinstance(zone, kind):
            what = "a line" if kind is LineZone else "a polygon"
            raise _LocatedError(loc, f"zone '{name}' is not {what}")
        return zone

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of this configuration.

        The view-guard reference (and any model or registry file a rule names) enters as the
        SHA-256 of the file's bytes rather than as its path, so the hash does not depend on
        where the files lie but does change when the reference view or a model is replaced.
        """
        data = self.model_dump(mode="json")
        if self.view_guard is not None:
            data["view_guard"]["reference"] = "sha256:" + _file_sha256(self.view_guard.reference)
        # files named by rules (models, registries) enter by content too
        for rule, field in (("no_helmet", "model"), ("seatbelt", "model"), ("phone_use", "model"), ("invalid_plate", "registry")):
            opts = getattr(self.rules, rule)
            path = getattr(opts, field, None) if opts is not None else None
            if path is not None:
                data["rules"][rule][field] = "sha256:" + _file_sha256(path)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read (for the configuration hash): {exc.strerror}") from None
    return digest.hexdigest()


# -------------------------------------------------------------------------------------- loader
class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps ``HH:MM[:SS]`` as strings (YAML 1.1 reads 17:00:00 as 61200)."""


_Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _digit in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_digit, []).insert(
        0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}(?::\d{2})?$"))
    )


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _check_duplicates(node: yaml.Node, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise CameraConfigError([f"{where}:{_line(key)}: duplicate key '{key.value}'"])
                seen.add(key.value)
            _check_duplicates(value, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, where)


def _locate(root: yaml.Node, loc: tuple[str | int, ...]) -> tuple[int, str]:
    """Map a pydantic ``loc`` to (line, dotted field path) using the YAML nodes.

    Elements that are not keys of the current mapping (union tags such as ``fixed_plan``) are
    skipped; a missing trailing key (a required field left out) points at its parent mapping.
    """
    node = root
    parts: list[str] = []
    line = _line(root)  # the line of the key that led to `node` (of the node, at the root)
    for i, elem in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            if _is_tag(elem) and i + 1 < len(loc) and _has_key(node, loc[i + 1]):
                continue  # a union tag that is also a key name ('polygon'): the key comes next
            match = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and k.value == str(elem)
                ),
                None,
            )
            if match is None:
                if i + 1 < len(loc) and not isinstance(elem, int) and _has_key(node, loc[i + 1]):
                    continue  # a union tag, not written in the file
                parts.extend(str(e) for e in loc[i:] if not _is_tag(e))
                return line, ".".join(parts)
            parts.append(str(elem))
            key, node = match
            line = _line(key)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(elem, int) and elem < len(node.value)
        ):
            parts.append(str(elem))
            node = node.value[elem]
            line = _line(node)
        elif not _is_tag(elem):
            parts.append(str(elem))
    return line, ".".join(parts)


def _has_key(node: yaml.MappingNode, key: str | int) -> bool:
    return any(isinstance(k, yaml.ScalarNode) and k.value == str(key) for k, _ in node.value)


def _is_tag(elem: str | int) -> bool:
    """Pydantic's loc entries for union members: model names, tags and type names."""
    return isinstance(elem, str) and (
        elem in {"line", "polygon", "fixed_plan", "roi", "http", "mqtt"}
        or elem.startswith(("function-", "tagged-union["))
    )


def _message(err: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    located = (err.get("ctx") or {}).get("error")
    loc = tuple(err["loc"])
    if isinstance(located, _LocatedError):
        return loc + located.loc, located.message
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_invalid" and ctx.get("discriminator", "").startswith("'"):
        field = ctx["discriminator"].strip("'")
        expected = ctx.get("expected_tags")
        return loc + (field,), f"unknown {field} '{ctx.get('tag')}'; expected one of {expected}"
    if err["type"] == "union_tag_not_found":
        field = ctx.get("discriminator", "").strip("'")
        if field.isidentifier():
            return loc + (field,), "Field required"
        return loc, "must be a mapping with `points` (a line) or `polygon`"
    if err["type"] == "extra_forbidden":
        if len(loc) == 2 and loc[0] == "rules":
            known = ", ".join(sorted(RulesConfig.model_fields))
            msg = f"unknown rule '{loc[1]}'; known rules: {known}"
        else:
            msg = "unknown field"
    return loc, msg


def load_camera(path: str | Path) -> CameraConfig:
    """Read and validate a camera YAML file; raise :class:`CameraConfigError` naming file:line."""
    path = Path(path)
    return load_located(path, CameraConfig, what="camera file", context={"base_dir": path.parent})


_M = TypeVar("_M", bound=BaseModel)


def load_located(path: str | Path, model: type[_M], *, what: str, context: Mapping[str, Any] | None = None) -> _M:
    """Read a YAML file into the pydantic ``model``; every problem names ``file:line: field``.

    The camera file and the other YAML files etle reads (e.g. the ground truth of
    ``etle eval violations``) share it.  Raises :class:`CameraConfigError` (a :class:`ConfigError`).
    """
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CameraConfigError([f"{where}: {what} not found"]) from None
    except IsADirectoryError:
        raise CameraConfigError([f"{where}: is a directory, not a {what}"]) from None
    except UnicodeDecodeError as exc:
        raise CameraConfigError([f"{where}: not UTF-8 text ({exc.reason})"]) from None
    except OSError as exc:
        raise CameraConfigError([f"{where}: cannot read: {exc.strerror}"]) from None

    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise CameraConfigError([f"{where}:1: the file is empty"])
        _check_duplicates(root, where)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CameraConfigError([f"{where}{at}: invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise CameraConfigError(
            [f"{where}:{_line(root)}: the top level must be a mapping of fields"]
        )

    try:
        return model.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc, msg = _message(err)
            line, field = _locate(root, loc)
            problems.append(f"{where}:{line}: {field or '(top level)'}: {msg}")
        raise CameraConfigError(problems) from None
