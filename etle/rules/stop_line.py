"""Stop-line encroachment (UU 22/2009 art. 287(1)): stopped past the stop line while red.

The places a vehicle must not wait in while the signal is red -- the zebra crossing, the
motorcycle box (for cars), the strip just past the stop line -- are polygon zones.  A track
violates when, over the last ``min_stopped_s`` of pts,

* it was *stopped*: every anchor point lies within ``max_motion_px`` of their mean (so a
  vehicle driving through the crossing, the red-light rule's case, is not "stopped"),
* its anchor was inside a zone in at least ``min_inside`` of those frames and is inside now,
* the signal was red all along, and had been red for ``grace_s`` when that stretch began (a
  vehicle caught on the crossing by the change to red is given time to clear it).

A vehicle waiting before the line is never inside a zone; one stopped in a zone on green is
not judged.  One violation per track (the engine drops repeats).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from pydantic import Field

from etle.geometry import Point
from etle.rules.base import PerTrackState, RedClock, RuleContext, RuleSpec, ZoneRef, anchor_point, inside_any, make_violation
from etle.rules.options import Anchor, Labels
from etle.schema import ConfigModel
from etle.types import FrameContext, Violation
from etle.zones import PolygonZone

__all__ = ["RULES", "StopLineOptions", "StopLineRule"]


class StopLineOptions(ConfigModel):
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


@dataclass(slots=True)
class _Track:
    seen: deque[tuple[float, float, float, str | None]] = field(default_factory=deque)  # pts, x, y, zone


class StopLineRule(PerTrackState):
    """Vehicles stopped inside stop-line zones (zebra crossing, motorcycle box) while red."""

    name = "stop_line"

    def __init__(
        self,
        zones: Sequence[tuple[str, Sequence[Point]]],
        *,
        grace_s: float = 2.0,
        min_stopped_s: float = 1.0,
        max_motion_px: float = 4.0,
        min_inside: float = 0.8,
        max_gap_s: float = 1.0,
        labels: Iterable[str] = ("car", "motorcycle", "bus", "truck"),
        anchor: str = "bottom_center",
    ) -> None:
        if not zones:
            raise ValueError("stop_line needs at least one zone")
        if min_stopped_s <= 0 or max_motion_px <= 0 or not 0 < min_inside <= 1:
            raise ValueError("need min_stopped_s > 0, max_motion_px > 0, 0 < min_inside <= 1")
        self._zones = tuple((n, tuple((float(x), float(y)) for x, y in poly)) for n, poly in zones)
        self._grace = grace_s
        self._stopped = min_stopped_s
        self._motion = max_motion_px
        self._min_inside = min_inside
        self._max_gap = max_gap_s
        self._labels = frozenset(labels)
        self._anchor = anchor
        self._red = RedClock(max_gap_s)
        self._tracks: dict[int, _Track] = {}

    @classmethod
    def from_config(cls, options: StopLineOptions, ctx: RuleContext) -> "StopLineRule":
        zones = ctx.polygons
        return cls(
            [(n, zones[n].polygon) for n in options.zones],
            grace_s=options.grace_s,
            min_stopped_s=options.min_stopped_s,
            max_motion_px=options.max_motion_px,
            min_inside=options.min_inside,
            max_gap_s=options.max_gap_s,
            labels=options.labels,
            anchor=options.anchor,
        )

    def reset(self) -> None:
        super().reset()
        self._red.reset()

    def update(self, ctx: FrameContext) -> list[Violation]:
        red_since = self._red.update(ctx)
        pts = ctx.frame.pts
        out: list[Violation] = []
        for obj in ctx.objects:
            if obj.label not in self._labels:
                continue
            p = anchor_point(obj.box, self._anchor)
            zone = inside_any(p, self._zones)
            st = self._tracks.get(obj.track_id)
            if st is None or (st.seen and (pts - st.seen[-1][0] > self._max_gap or pts < st.seen[-1][0])):
                st = self._tracks[obj.track_id] = _Track()
            st.seen.append((pts, p[0], p[1], zone))
            # keep one observation at or before the window start, so the window is known covered
            while len(st.seen) >= 2 and st.seen[1][0] <= pts - self._stopped:
                st.seen.popleft()
            if zone is None or red_since is None:
                continue
            start = pts - self._stopped
            if st.seen[0][0] > start + 1e-9:
                continue  # not observed for long enough yet
            if red_since > start - self._grace + 1e-9:
                continue  # red began too late (or after the vehicle stopped there)
            window = list(st.seen)  # the observations covering [start, pts]
            mx = sum(s[1] for s in window) / len(window)
            my = sum(s[2] for s in window) / len(window)
            spread = max(math.hypot(s[1] - mx, s[2] - my) for s in window)
            if spread > self._motion:
                continue
            inside = sum(1 for s in window if s[3] is not None) / len(window)
            if inside < self._min_inside:
                continue
            out.append(
                make_violation(
                    self.name,
                    ctx,
                    obj,
                    details={
                        "zone": zone,
                        "signal": ctx.signal.state if ctx.signal else None,
                        "signal_source": ctx.signal.source if ctx.signal else None,
                        "red_since_pts": round(red_since, 3),
                        "red_for_s": round(pts - red_since, 3),
                        "stopped_s": round(pts - window[0][0], 3),
                        "stopped_at": (round(mx, 1), round(my, 1)),
                        "motion_px": round(spread, 2),
                    },
                )
            )
        return out


RULES = (
    RuleSpec(
        "stop_line",
        StopLineOptions,
        StopLineRule.from_config,
        zones=(ZoneRef("zones", PolygonZone),),
        needs=("signal",),
    ),
)
