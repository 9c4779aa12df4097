"""The rule seam: one verb per frame, plus two ways to drop state.

A rule sees one :class:`~etle.types.FrameContext` at a time, in pts order, and returns the
violations it found in that frame.  It keeps per-track state only as long as the engine lets it:
``forget(track_id)`` drops one track (it ended), ``reset()`` drops every track's motion state
(the view changed, so positions before and after cannot be compared).

A rule module also declares how the camera file enables it: a :class:`RuleSpec` (its name in
``rules:``, its options model, the option fields that name zones, the camera sections it
needs, and how to build the rule), listed in the module's ``RULES`` and collected by
:mod:`etle.rules.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from etle.geometry import Point, point_in_polygon
from etle.types import Box, FrameContext, TrackedObject, Violation
from etle.zones import LineZone, PolygonZone

__all__ = [
    "PerTrackState",
    "Rule",
    "RedClock",
    "RuleContext",
    "RuleSpec",
    "ZoneRef",
    "anchor_point",
    "inside_any",
    "make_violation",
]


@runtime_checkable
class Rule(Protocol):
    """A violation rule driven frame by frame."""

    name: str

    def update(self, ctx: FrameContext) -> list[Violation]:
        """Violations seen in this frame (the engine drops repeats per track)."""
        ...

    def forget(self, track_id: int) -> None:
        """Drop everything kept about one track."""
        ...

    def reset(self) -> None:
        """Drop all per-track motion state (after a view change or a source restart)."""
        ...


class PerTrackState:
    """The bookkeeping most rules share: their state per track id in ``self._tracks``.

    ``forget`` drops one track's, ``reset`` every track's (a rule with more state extends
    ``reset``); ``tracked`` counts the tracks with state (for tests and memory checks).
    """

    _tracks: dict[int, Any]

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def reset(self) -> None:
        self._tracks.clear()

    @property
    def tracked(self) -> int:
        """Number of tracks with state (for tests and memory checks)."""
        return len(self._tracks)


def make_violation(
    rule: str,
    ctx: FrameContext,
    obj: TrackedObject,
    *,
    related: tuple[int, ...] = (),
    details: dict[str, object] | None = None,
) -> Violation:
    """A :class:`Violation` of ``obj`` in the frame of ``ctx``."""
    return Violation(
        rule=rule,
        track_id=obj.track_id,
        label=obj.label,
        frame_index=ctx.frame.index,
        pts=ctx.frame.pts,
        timestamp=ctx.frame.timestamp,
        box=obj.box,
        related_track_ids=related,
        details=details or {},
    )


def anchor_point(box: Box, anchor: str = "bottom_center") -> Point:
    """The point of a box a rule tests: ``bottom_center`` (ground contact) or ``center``."""
    x, y = box.bottom_center if anchor == "bottom_center" else box.center
    return (float(x), float(y))


def inside_any(p: Point, polygons: Iterable[tuple[str, Sequence[Point]]]) -> str | None:
    """The name of the first polygon containing ``p``, or None."""
    for name, poly in polygons:
        if point_in_polygon(p, poly):
            return name
    return None


class RedClock:
    """Since when the signal has been red, from the frames' signal states (pts only).

    ``red_since`` is the pts of the first red frame after a non-red one; after a gap in the
    frames longer than ``max_gap_s`` (or at the start of footage that opens on red) it is the
    first red frame seen, which can only make a rule more lenient.
    """

    def __init__(self, max_gap_s: float = 1.0) -> None:
        self._max_gap = max_gap_s
        self.red_since: float | None = None
        self._last: float | None = None

    def update(self, ctx: FrameContext) -> float | None:
        pts = ctx.frame.pts
        red = ctx.signal is not None and ctx.signal.is_red
        gap = self._last is not None and (pts - self._last > self._max_gap or pts < self._last)
        if not red:
            self.red_since = None
        elif self.red_since is None or gap:
            self.red_since = pts
        self._last = pts
        return self.red_since

    def red_for(self, pts: float) -> float:
        """How long the signal has been red at ``pts`` (0 when it is not red)."""
        return 0.0 if self.red_since is None else max(pts - self.red_since, 0.0)

    def reset(self) -> None:
        self.red_since = None
        self._last = None


# ------------------------------------------------------------------------------- registration
@dataclass(frozen=True, slots=True)
class ZoneRef:
    """An option field that names zones of the camera file.

    The field holds one name (``line: stop_line``), a list of names (``zones: [zebra]``) or a
    mapping keyed by names (``limits_kmh: {lane_in: 50}``).  Every name must be a zone of
    ``kind``; ``required=False``: the field may be None (no zone); ``directed``: each zone
    must have a ``direction``.
    """

    field: str
    kind: type[LineZone] | type[PolygonZone]
    required: bool = True
    directed: bool = False


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule is built from besides its options: the camera's zones, timezone and
    calibration, and the models injected by the caller (tests pass fakes)."""

    name: str  # the rule's key in the camera file
    zones: Mapping[str, LineZone | PolygonZone]
    tz: ZoneInfo
    calibration: Any = None
    helmet_classifier: Any = None
    head_detector: Any = None
    crop_models: Mapping[str, Any] = field(default_factory=dict)  # rule name -> model
    plate_registry: Any = None

    @property
    def polygons(self) -> dict[str, PolygonZone]:
        return {n: z for n, z in self.zones.items() if isinstance(z, PolygonZone)}


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule as the camera file knows it: ``rules.<name>`` holds ``options``."""

    name: str
    options: type[BaseModel]
    build: Callable[[Any, RuleContext], Rule]  # (options, context) -> the rule
    zones: tuple[ZoneRef, ...] = ()
    needs: tuple[str, ...] = ()  # camera sections the rule needs ("signal", "calibration")
    files: tuple[str, ...] = ()  # option fields naming files (hashed by content)
