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
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Union
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
    "CameraConfig",
    "CameraConfigError",
    "FixedPlanConfig",
    "LineZone",
    "MoreThanTwoOptions",
    "Phase",
    "PolygonZone",
    "RedLightOptions",
    "RoiSignalConfig",
    "RulesConfig",
    "ViewGuardConfig",
    "load_camera",
]

Point = tuple[float, float]
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
        for poly in value:
            if len(poly) < 3:
                raise ValueError("each ignore polygon needs at least 3 points")
        return value

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


SignalConfig = Annotated[Union[FixedPlanConfig, RoiSignalConfig], Field(discriminator="type")]


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


class RulesConfig(_Model):
    """Enabled rules: a key present enables the rule (``red_light: {}`` takes the defaults)."""

    red_light: RedLightOptions | None = None
    more_than_two: MoreThanTwoOptions | None = None

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
    zones: dict[str, Zone] = Field(default_factory=dict, description="Named lines and polygons.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Enabled rules.")

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
        red = self.rules.red_light
        if red is not None:
            zones = ", ".join(sorted(self.zones)) or "none"
            zone = self.zones.get(red.line)
            if zone is None:
                raise _LocatedError(
                    ("rules", "red_light", "line"),
                    f"no zone named '{red.line}' (zones: {zones})",
                )
            if not isinstance(zone, LineZone):
                raise _LocatedError(
                    ("rules", "red_light", "line"), f"zone '{red.line}' is not a line"
                )
            if self.signal is None:
                raise _LocatedError(("rules", "red_light"), "needs a `signal` section")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of this configuration.

        The view-guard reference enters as the SHA-256 of the file's bytes rather than as its
        path, so the hash does not depend on where the files lie but does change when the
        reference view is replaced.
        """
        data = self.model_dump(mode="json")
        if self.view_guard is not None:
            data["view_guard"]["reference"] = "sha256:" + _file_sha256(self.view_guard.reference)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read view_guard.reference: {exc.strerror}") from None
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
        elem in {"line", "polygon", "fixed_plan", "roi"}
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
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CameraConfigError([f"{where}: camera file not found"]) from None
    except IsADirectoryError:
        raise CameraConfigError([f"{where}: is a directory, not a camera file"]) from None
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
        return CameraConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc, msg = _message(err)
            line, field = _locate(root, loc)
            problems.append(f"{where}:{line}: {field or '(top level)'}: {msg}")
        raise CameraConfigError(problems) from None
