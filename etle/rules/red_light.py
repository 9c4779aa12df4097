"""Red-light running (UU 22/2009 art. 287(2)): crossing the stop line while the signal is red.

A track violates when its anchor point (bottom centre of the box by default) goes from clearly
on the approach side of the stop line to clearly past it, the move actually crosses the drawn
line (not around its end), and at the moment of crossing the signal had been red for at least
``grace_s``.

Jitter: points within ``min_displacement_px / 2`` of the line are "on the line" and neither arm
nor fire, so an anchor wobbling around the line by less than that never crosses; a real
crossing therefore moves at least ``min_displacement_px``.

Time of the crossing: the last observation not yet past the line, or the interpolated crossing
between it and the first observation past the line.  "Red since" is the pts at which this rule
first saw red after a non-red state; when footage starts on red, or after a gap in the frames,
the red phase is counted from the first red frame seen, which can only make the rule more
lenient, never fire on a crossing whose timing it cannot support.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from pydantic import Field

from etle.geometry import (
    Point,
    polyline_crossing,
    polyline_distance,
    polyline_side,
    side,
)
from etle.rules.base import PerTrackState, RuleContext, RuleSpec, ZoneRef, make_violation
from etle.rules.options import LabelSet
from etle.schema import ConfigModel
from etle.types import Box, FrameContext, Violation
from etle.zones import LineZone

__all__ = ["RULES", "RedLightOptions", "RedLightRule"]

log = logging.getLogger(__name__)

APPROACH, ON_LINE, PAST = 1, 0, -1


@dataclass(slots=True)
class _Track:
    last_pts: float
    armed: Point | None = None  # last anchor clearly on the approach side, since the last crossing
    before: Point | None = None  # last anchor not clearly past the line ...
    before_pts: float = 0.0  # ... and its pts


def _approach_sign(
    points: Sequence[Point], approach_side: Point | None, direction: Point | None
) -> int:
    if approach_side is not None:
        s = polyline_side(points, approach_side)
    elif direction is not None:
        s = 0
        for a, b in zip(points, points[1:], strict=False):
            s = side(a, b, (a[0] - direction[0], a[1] - direction[1]))
            if s:
                break
    else:
        raise ValueError("give approach_side or direction")
    if s == 0:
        raise ValueError("the approach side is on the line (or the direction runs along it)")
    return s


class RedLightOptions(ConfigModel):
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
    labels: LabelSet = Field(
        default=("car", "motorcycle", "bus", "truck"), min_length=1, description="Classes enforced."
    )
    anchor: Literal["bottom_center", "center"] = Field(
        default="bottom_center", description="Point of the box that must cross the line."
    )


class RedLightRule(PerTrackState):
    """Red-light crossings of one stop line."""

    name = "red_light"

    def __init__(
        self,
        line: Sequence[Point],
        *,
        approach_side: Point | None = None,
        direction: Point | None = None,
        line_name: str = "stop_line",
        grace_s: float = 0.5,
        min_displacement_px: float = 6.0,
        max_gap_s: float = 1.0,
        labels: Iterable[str] = ("car", "motorcycle", "bus", "truck"),
        anchor: str = "bottom_center",
    ) -> None:
        if len(line) < 2:
            raise ValueError("a stop line needs at least two points")
        if anchor not in ("bottom_center", "center"):
            raise ValueError(f"unknown anchor {anchor!r}")
        self._line = tuple((float(x), float(y)) for x, y in line)
        self._sign = _approach_sign(self._line, approach_side, direction)
        self._line_name = line_name
        self._grace = grace_s
        self._band = min_displacement_px / 2.0
        self._max_gap = max_gap_s
        self._labels = frozenset(labels)
        self._anchor = anchor
        self._tracks: dict[int, _Track] = {}
        self._red_since: float | None = None
        self._signal_pts: float | None = None
        self._warned_no_signal = False

    @classmethod
    def from_config(cls, options: RedLightOptions, ctx: RuleContext) -> "RedLightRule":
        zone = ctx.zones[options.line]
        assert isinstance(zone, LineZone)  # checked when the file was loaded
        return cls(
            zone.points,
            approach_side=zone.approach_side,
            direction=zone.direction,
            line_name=options.line,
            grace_s=options.grace_s,
            min_displacement_px=options.min_displacement_px,
            max_gap_s=options.max_gap_s,
            labels=options.labels,
            anchor=options.anchor,
        )

    # --------------------------------------------------------------------------------- state
    def reset(self) -> None:
        super().reset()
        self._red_since = None
        self._signal_pts = None

    def classify(self, p: Point) -> int:
        """APPROACH (1), ON_LINE (0) or PAST (-1) for an anchor point."""
        if polyline_distance(self._line, p) < self._band:
            return ON_LINE
        s = polyline_side(self._line, p)
        if s == 0:
            return ON_LINE
        return APPROACH if s == self._sign else PAST

    def _anchor_of(self, box: Box) -> Point:
        x, y = box.bottom_center if self._anchor == "bottom_center" else box.center
        return (float(x), float(y))

    def _update_signal(self, ctx: FrameContext) -> None:
        pts = ctx.frame.pts
        red = ctx.signal is not None and ctx.signal.is_red
        if ctx.signal is None and not self._warned_no_signal:
            log.warning("red_light: frames carry no signal state; the rule cannot fire")
            self._warned_no_signal = True
        gap = self._signal_pts is not None and pts - self._signal_pts > self._max_gap
        if not red:
            self._red_since = None
        elif self._red_since is None or gap:
            self._red_since = pts
        self._signal_pts = pts

    # -------------------------------------------------------------------------------- update
    def update(self, ctx: FrameContext) -> list[Violation]:
        self._update_signal(ctx)
        pts = ctx.frame.pts
        out: list[Violation] = []
        for obj in ctx.objects:
            if obj.label not in self._labels:
                continue
            p = self._anchor_of(obj.box)
            where = self.classify(p)
            st = self._tracks.get(obj.track_id)
            if st is None or pts - st.last_pts > self._max_gap or pts < st.last_pts:
                st = self._tracks[obj.track_id] = _Track(last_pts=pts)
            st.last_pts = pts
            if where == APPROACH:
                st.armed, st.before, st.before_pts = p, p, pts
            elif where == ON_LINE:
                st.before, st.before_pts = p, pts
            elif st.armed is not None and st.before is not None:
                violation = self._crossed(ctx, obj, st, p)
                if violation is not None:
                    out.append(violation)
                st.armed = st.before = None
        return out

    def _crossed(self, ctx: FrameContext, obj, st: _Track, p: Point) -> Violation | None:
        pts = ctx.frame.pts
        assert st.armed is not None and st.before is not None
        crossing = polyline_crossing(self._line, st.before, p)
        if crossing is not None:
            at = crossing.point
            crossed_pts = st.before_pts + crossing.t * (pts - st.before_pts)
        else:
            around = polyline_crossing(self._line, st.armed, p)
            if around is None:
                return None  # went round the end of the line
            at, crossed_pts = around.point, st.before_pts
        signal = ctx.signal
        if signal is None or not signal.is_red or self._red_since is None:
            return None
        red_for = crossed_pts - self._red_since
        if red_for < self._grace:
            return None
        log.info(
            "red_light: track %d crossed %s at pts %.3f, red for %.2f s",
            obj.track_id,
            self._line_name,
            crossed_pts,
            red_for,
        )
        return make_violation(
            self.name,
            ctx,
            obj,
            details={
                "signal": signal.state,
                "signal_source": signal.source,
                "signal_confidence": signal.confidence,
                "red_since_pts": self._red_since,
                "red_for_s": round(red_for, 3),
                "line": self._line_name,
                "crossing_point": (round(at[0], 1), round(at[1], 1)),
                "crossing_pts": round(crossed_pts, 3),
            },
        )


RULES = (
    RuleSpec(
        "red_light",
        RedLightOptions,
        RedLightRule.from_config,
        zones=(ZoneRef("line", LineZone),),
        needs=("signal",),
    ),
)
