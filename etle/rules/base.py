"""The rule seam: one verb per frame, plus two ways to drop state.

A rule sees one :class:`~etle.types.FrameContext` at a time, in pts order, and returns the
violations it found in that frame.  It keeps per-track state only as long as the engine lets it:
``forget(track_id)`` drops one track (it ended), ``reset()`` drops every track's motion state
(the view changed, so positions before and after cannot be compared).
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence, runtime_checkable

from etle.rules.geometry import Point, point_in_polygon
from etle.types import Box, FrameContext, TrackedObject, Violation

__all__ = ["Rule", "RedClock", "anchor_point", "inside_any", "make_violation"]


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
