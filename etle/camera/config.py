"""Camera configuration: one YAML file per camera, validated once at load.

The models are pydantic v2 with ``extra="forbid"``: a misspelt key is an error, never silently
ignored.  :func:`load_camera` reports every problem as a :class:`CameraConfigError` (a
:class:`~etle.errors.ConfigError`) whose one-line message names the file, the line and the
field, e.g. ``cam.yaml:12: rules.red_light.grace_s: Input should be greater than or equal to 0``.

This module holds the camera itself (identity, place, calibration) and the loader; the sections
come from the stages that own them: ``zones`` from :mod:`etle.zones`, ``signal`` from
:mod:`etle.signal.config`, ``view_guard`` from :mod:`etle.viewguard.config`, and ``rules`` from
:mod:`etle.rules.registry` (each rule module declares its options model and the zones and
sections it needs).

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
    clock: {date_order: dmy}              # else the clock in the picture dates a recording (OSD)
    frame_size: [640, 360]                # the picture the coordinates below were drawn on
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
description on its model in its rule module, e.g. ``etle.rules.red_light.RedLightOptions``; zones
are referred to by name)::

    signal: {type: mqtt, topic: atcs/jambi/tugu-juang/north, head: north}   # or type: http
    calibration:                          # ground plane for speeds: >= 4 road marks
      image_points: [[100, 400], [540, 400], [420, 200], [220, 200]]
      world_points: [[0, 0], [7, 0], [7, 30], [0, 30]]   # metres
    zones:
      stop_line: {points: [[80, 380], [560, 380]], approach_side: [320, 300]}
      zebra: {polygon: [[80, 385], [560, 385], [560, 430], [80, 430]]}
      lane_in: {polygon: [[220, 200], [420, 200], [540, 380], [100, 380]], direction: [0, 1]}
      busway: {polygon: [[420, 200], [470, 200], [600, 380], [540, 380]]}
    detect_tiles: [stop_line, zebra]      # a frame larger than the detector's input: these areas
                                          # are also detected at full resolution (etle.detect.tiles)
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
      seatbelt: {model: seatbelt.onnx}    # a user's model: see etle.models.crop
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from etle.errors import ConfigError
from etle.geometry import Point, fit_homography
from etle.rules.registry import RulesConfig, file_fields, verify_rules
from etle.schema import ConfigModel, LocatedError
from etle.signal.config import (
    FixedPlanConfig,
    HttpSignalConfig,
    MqttSignalConfig,
    Phase,
    RoiSignalConfig,
    SignalConfig,
)
from etle.viewguard.config import ViewGuardConfig
from etle.zones import LineZone, PolygonZone, Zone, three_points_each

__all__ = [
    "CalibrationConfig",
    "CameraConfig",
    "CameraConfigError",
    "FixedPlanConfig",
    "HttpSignalConfig",
    "LineZone",
    "MqttSignalConfig",
    "Phase",
    "PolygonZone",
    "RoiSignalConfig",
    "RulesConfig",
    "ViewGuardConfig",
    "load_camera",
    "load_located",
]

_SLUG = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"


class CameraConfigError(ConfigError):
    """A camera file is invalid; ``problems`` holds one line per error found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)


# --------------------------------------------------------------------------------- calibration
class CalibrationConfig(ConfigModel):
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
            raise LocatedError(
                ("world_points",),
                f"{len(self.world_points)} world points for {len(self.image_points)} image points",
            )
        try:
            fit_homography(self.image_points, self.world_points, max_error_m=self.max_reprojection_m)
        except ValueError as exc:
            raise LocatedError(("image_points",), str(exc)) from None
        return self


class ClockConfig(ConfigModel):
    """The date and time the camera burns into its picture (OSD), read to date recordings."""

    read: bool = Field(
        default=True,
        description="Date a recording by the clock in its picture where nothing else does (no "
        "--start, no start_time): it comes before the container's creation_time and the file's "
        "modification time (etle.clock.osd).",
    )
    date_order: Literal["ymd", "dmy", "mdy"] | None = Field(
        default=None,
        description="Order of day, month and year in the OSD's date where the text leaves it open "
        "(03-04-2025); without it such a date is used only when a weekday beside it settles it.",
    )


# -------------------------------------------------------------------------------------- camera
class CameraConfig(ConfigModel):
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
    frame_size: tuple[int, int] | None = Field(
        default=None,
        description="Width and height (px) of the picture the coordinates of this file were drawn "
        "on. Footage of another size with the same shape gets every coordinate scaled to it "
        "(etle.camera.fit); footage of another shape is refused. Without it, coordinates are "
        "pixels of whatever size the footage is, and a point outside its frame is refused.",
    )
    view_guard: ViewGuardConfig | None = Field(default=None, description="Reference-view guard.")
    signal: SignalConfig | None = Field(default=None, description="Traffic-signal source.")
    calibration: CalibrationConfig | None = Field(
        default=None, description="Ground-plane calibration (image px -> metres) for speeds."
    )
    zones: dict[str, Zone] = Field(default_factory=dict, description="Named lines and polygons.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Enabled rules.")
    detect_tiles: tuple[str, ...] = Field(
        default=(),
        description="Zones where small vehicles matter (e.g. the stop line, the crossing): where the "
        "frame is larger than the detector's input, the area around each is also detected at the "
        "camera's resolution (etle.detect.tiles).",
    )
    clock: ClockConfig = Field(default_factory=ClockConfig, description="The clock in the picture (OSD).")
    overlays: tuple[tuple[Point, ...], ...] = Field(
        default=(),
        description="Polygons (image px) of text burned into the picture (clock, camera name, "
        "watermark): no plate is read there, and the view guard leaves them out.",
    )

    @field_validator("overlays", mode="after")
    @classmethod
    def _overlay_polygons(cls, value: tuple[tuple[Point, ...], ...]) -> tuple[tuple[Point, ...], ...]:
        return three_points_each(value, "overlay")

    @field_validator("frame_size", mode="after")
    @classmethod
    def _frame_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (value[0] <= 0 or value[1] <= 0):
            raise ValueError("width and height must be positive")
        return value

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
        for k, name in enumerate(self.detect_tiles):
            if name not in self.zones:
                names = ", ".join(sorted(self.zones)) or "none"
                raise LocatedError(("detect_tiles", k), f"no zone named '{name}' (zones: {names})")
        verify_rules(self)  # the zones and sections each enabled rule declares it needs
        return self

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
        for rule, field in file_fields():
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
    if isinstance(located, LocatedError):
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
