"""Wrong-way driving (UU 22/2009 art. 287(1)): sustained movement against a lane's direction.

Each lane is a polygon zone with the permitted direction of travel (an image vector).  Per
track the rule keeps the anchor positions of the last ``window_s`` of pts.  A track violates
when, over the last ``min_duration_s`` (all of it inside one lane),

* the net movement against the lane direction is at least ``min_distance_px`` -- jitter of a
  parked or queued vehicle nets to nothing;
* the net movement is within ``max_angle_deg`` of the reverse direction -- a vehicle turning
  across the lane moves mostly sideways;
* both halves of the stretch (by time) move against the direction -- a single jump, or a
  vehicle that reversed briefly and drove on, is not sustained.

A jump of more than ``max_step_px`` between two observations (a tracker id switch onto another
vehicle) restarts the track's history.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from pydantic import Field, model_validator

from etle.geometry import Point, point_in_polygon
from etle.rules.base import PerTrackState, RuleContext, RuleSpec, ZoneRef, anchor_point, make_violation
from etle.rules.options import Anchor, Labels
from etle.schema import ConfigModel, LocatedError
from etle.types import FrameContext, Violation
from etle.zones import PolygonZone

__all__ = ["RULES", "WrongWayOptions", "WrongWayRule"]


class WrongWayOptions(ConfigModel):
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

    @model_validator(mode="after")
    def _window(self) -> "WrongWayOptions":
        if self.window_s < self.min_duration_s:
            raise LocatedError(("window_s",), "must be at least min_duration_s")
        return self


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    polygon: tuple[Point, ...]
    ux: float  # unit permitted direction
    uy: float


@dataclass(slots=True)
class _Track:
    seen: deque[tuple[float, float, float, str | None]] = field(default_factory=deque)


class WrongWayRule(PerTrackState):
    """Vehicles moving against the direction of the lane they are in, sustained."""

    name = "wrong_way"

    def __init__(
        self,
        lanes: Sequence[tuple[str, Sequence[Point], Point]],
        *,
        min_distance_px: float = 40.0,
        min_duration_s: float = 1.0,
        max_angle_deg: float = 45.0,
        window_s: float = 3.0,
        max_step_px: float = 80.0,
        max_gap_s: float = 1.0,
        labels: Iterable[str] = ("car", "motorcycle", "bus", "truck"),
        anchor: str = "bottom_center",
    ) -> None:
        if not lanes:
            raise ValueError("wrong_way needs at least one lane")
        if window_s < min_duration_s:
            raise ValueError("window_s must be at least min_duration_s")
        out = []
        for name, poly, (dx, dy) in lanes:
            norm = math.hypot(dx, dy)
            if norm == 0:
                raise ValueError(f"lane {name}: zero direction")
            out.append(Lane(name, tuple((float(x), float(y)) for x, y in poly), dx / norm, dy / norm))
        self._lanes = tuple(out)
        self._min_dist = min_distance_px
        self._min_dur = min_duration_s
        self._cos = math.cos(math.radians(max_angle_deg))
        self._window = window_s
        self._max_step = max_step_px
        self._max_gap = max_gap_s
        self._labels = frozenset(labels)
        self._anchor = anchor
        self._tracks: dict[int, _Track] = {}

    @classmethod
    def from_config(cls, options: WrongWayOptions, ctx: RuleContext) -> "WrongWayRule":
        zones = ctx.polygons
        lanes = []
        for n in options.lanes:
            z = zones[n]
            assert z.direction is not None  # checked when the file was loaded
            lanes.append((n, z.polygon, z.direction))
        return cls(
            lanes,
            min_distance_px=options.min_distance_px,
            min_duration_s=options.min_duration_s,
            max_angle_deg=options.max_angle_deg,
            window_s=options.window_s,
            max_step_px=options.max_step_px,
            labels=options.labels,
            anchor=options.anchor,
        )

    def _lane_of(self, p: Point) -> Lane | None:
        for lane in self._lanes:
            if point_in_polygon(p, lane.polygon):
                return lane
        return None

    def update(self, ctx: FrameContext) -> list[Violation]:
        pts = ctx.frame.pts
        out: list[Violation] = []
        for obj in ctx.objects:
            if obj.label not in self._labels:
                continue
            p = anchor_point(obj.box, self._anchor)
            lane = self._lane_of(p)
            st = self._tracks.get(obj.track_id)
            if st is not None and st.seen:
                lp, lx, ly, _ = st.seen[-1]
                if pts - lp > self._max_gap or pts < lp or math.hypot(p[0] - lx, p[1] - ly) > self._max_step:
                    st = None
            if st is None:
                st = self._tracks[obj.track_id] = _Track()
            st.seen.append((pts, p[0], p[1], lane.name if lane else None))
            while st.seen and st.seen[0][0] < pts - self._window:
                st.seen.popleft()
            if lane is None:
                continue
            v = self._judge(st, lane, pts)
            if v is not None:
                out.append(make_violation(self.name, ctx, obj, details=v))
        return out

    def _judge(self, st: _Track, lane: Lane, pts: float) -> dict[str, object] | None:
        # the latest stretch inside this lane
        run: list[tuple[float, float, float, str | None]] = []
        for s in reversed(st.seen):
            if s[3] != lane.name:
                break
            run.append(s)
        run.reverse()
        if len(run) < 3 or pts - run[0][0] < self._min_dur - 1e-9:
            return None
        # judge the latest min_duration_s of it (a vehicle that turned round is judged after)
        start = max(i for i, s in enumerate(run) if s[0] <= pts - self._min_dur + 1e-9)
        run = run[start:]
        if len(run) < 3:
            return None

        def against(a: tuple, b: tuple) -> float:  # progress against the lane direction, a -> b
            return -((b[1] - a[1]) * lane.ux + (b[2] - a[2]) * lane.uy)

        first, last = run[0], run[-1]
        dx, dy = last[1] - first[1], last[2] - first[2]
        dist = math.hypot(dx, dy)
        back = against(first, last)
        if back < self._min_dist or dist == 0 or back / dist < self._cos:
            return None
        mid_t = (first[0] + last[0]) / 2.0
        mid = min(run, key=lambda s: abs(s[0] - mid_t))
        if against(first, mid) <= 0.2 * back or against(mid, last) <= 0.2 * back:
            return None
        angle = math.degrees(math.acos(max(-1.0, min(1.0, back / dist))))
        return {
            "lane": lane.name,
            "against_px": round(back, 1),
            "duration_s": round(last[0] - first[0], 3),
            "angle_deg": round(angle, 1),
            "lane_direction": (round(lane.ux, 3), round(lane.uy, 3)),
            "from": (round(first[1], 1), round(first[2], 1)),
            "to": (round(last[1], 1), round(last[2], 1)),
        }


RULES = (
    RuleSpec(
        "wrong_way",
        WrongWayOptions,
        WrongWayRule.from_config,
        zones=(ZoneRef("lanes", PolygonZone, directed=True),),
    ),
)
