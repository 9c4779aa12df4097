"""Frozen records that flow between the pipeline stages.

Every stage takes these and returns new ones; none mutates its input.  Images are NumPy
arrays marked read-only when a :class:`Frame` is built, so an accidental in-place draw on a
shared frame raises instead of corrupting evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

#: COCO class names the pipeline cares about (the detector may emit others; they are dropped).
VEHICLE_LABELS: frozenset[str] = frozenset({"car", "motorcycle", "bus", "truck"})
TRACKED_LABELS: frozenset[str] = VEHICLE_LABELS | {"person", "bicycle"}


def _readonly(image: np.ndarray) -> np.ndarray:
    if image.flags.writeable:
        image = image.view()
        image.flags.writeable = False
    return image


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixel coordinates (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if not (self.x2 >= self.x1 and self.y2 >= self.y1):
            raise ValueError(f"Box needs x2>=x1 and y2>=y1, got {self.as_tuple()}")

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    @property
    def bottom_center(self) -> tuple[float, float]:
        """The ground contact point of a vehicle seen from above/side: the usual anchor."""
        return ((self.x1 + self.x2) / 2.0, self.y2)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def as_int(self) -> tuple[int, int, int, int]:
        return (int(round(self.x1)), int(round(self.y1)), int(round(self.x2)), int(round(self.y2)))

    def clip(self, width: int, height: int) -> "Box":
        return Box(
            min(max(self.x1, 0.0), float(width)),
            min(max(self.y1, 0.0), float(height)),
            min(max(self.x2, 0.0), float(width)),
            min(max(self.y2, 0.0), float(height)),
        )

    def expand(self, fraction: float) -> "Box":
        """Grow the box by ``fraction`` of its size on every side (negative shrinks)."""
        dx, dy = self.width * fraction, self.height * fraction
        return Box(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)

    def offset(self, dx: float, dy: float) -> "Box":
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def intersection(self, other: "Box") -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return max(w, 0.0) * max(h, 0.0)

    def iou(self, other: "Box") -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture of a source.

    ``pts`` is the presentation time in seconds from the start of the source, taken from the
    container (never the wall clock); ``wall_start`` is the wall-clock time at which the source
    started (file metadata, the user's ``--start`` or, for live streams, the time of connection).
    """

    source: str
    index: int
    pts: float
    image: np.ndarray = field(repr=False, compare=False)
    wall_start: datetime | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"Frame.image must be HxWx3 BGR, got shape {self.image.shape}")
        object.__setattr__(self, "image", _readonly(self.image))

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def timestamp(self) -> datetime:
        """Wall-clock time of this frame: ``wall_start + pts`` (UTC epoch + pts when unknown)."""
        start = self.wall_start or datetime(1970, 1, 1, tzinfo=timezone.utc)
        return start + timedelta(seconds=self.pts)


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector output in frame coordinates."""

    box: Box
    label: str
    confidence: float


@dataclass(frozen=True, slots=True)
class TrackedObject:
    """A detection with the id the tracker gave it; ids are stable along one track.

    ``predicted`` is true on frames where the detector did not run (detection stride) and the box
    is the tracker's motion estimate rather than an observation: rules that measure (speed) or
    look at pixels (helmets, plates) use observed boxes only.
    """

    track_id: int
    box: Box
    label: str
    confidence: float
    predicted: bool = False


@dataclass(frozen=True, slots=True)
class SignalState:
    """Traffic-signal state at one instant: 'red', 'yellow', 'green' or 'unknown'."""

    state: str
    source: str = "plan"
    confidence: float = 1.0

    @property
    def is_red(self) -> bool:
        return self.state == "red"


@dataclass(frozen=True, slots=True)
class FrameContext:
    """What the rules see for one frame: the tracked objects, the signal, the view state.

    ``plates`` is a read-only lookup of a track's plate so far (the plate stage's per-track
    consensus, as of the previous frame), for the rules that judge plates (odd-even, invalid
    plate, exempt vehicles); None when plates are not read.
    """

    frame: Frame
    objects: tuple[TrackedObject, ...]
    signal: SignalState | None = None
    view_ok: bool = True
    plates: Callable[[int], "PlateResult"] | None = field(default=None, compare=False, repr=False)

    def by_id(self) -> Mapping[int, TrackedObject]:
        return MappingProxyType({o.track_id: o for o in self.objects})

    def plate(self, track_id: int) -> "PlateResult":
        """The plate of a track so far (``NO_PLATE`` when plates are not read or none yet)."""
        if self.plates is None:
            return NO_PLATE
        return self.plates(track_id) or NO_PLATE


def _frozen_mapping(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class Violation:
    """A rule fired for one track.  The rule engine guarantees one per (track, rule)."""

    rule: str
    track_id: int
    label: str
    frame_index: int
    pts: float
    timestamp: datetime
    box: Box
    related_track_ids: tuple[int, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", _frozen_mapping(self.details))


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One OCR read of one plate crop.

    ``text`` is the normalised registration (upper case, no spaces, e.g. ``R5154WP``);
    ``raw`` is what the reader returned.  ``box`` is the plate in frame coordinates.
    """

    text: str
    confidence: float
    raw: str = ""
    frame_index: int = -1
    box: Box | None = None
    validity: str | None = None  # the 'MM.YY' line of Indonesian plates, when read
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)  # the plate pixels
    colour: str | None = None  # plate background (white, black, yellow, red, green, white_blue)
    category: str | None = None  # what the colour stands for (private, public_transport, ...)
    #: per character of ``text``, the recogniser's probability of it (empty when the reader gives none)
    char_conf: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class PlateResult:
    """The chosen plate of a track, with the reads it was chosen from."""

    text: str
    confidence: float
    candidates: tuple[PlateRead, ...] = ()
    best: PlateRead | None = None
    colour: str | None = None  # weighted vote of the reads' colours
    category: str | None = None  # the vehicle category of that colour (etle.plate.tnkb.category_of)

    @property
    def empty(self) -> bool:
        return not self.text


NO_PLATE = PlateResult(text="", confidence=0.0)
