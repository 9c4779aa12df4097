"""Rules that time how long a vehicle stays in a zone.

* :class:`RestrictedLaneRule` (``busway``, UU 22/2009 art. 287(1)) -- a vehicle of a class not
  allowed in the lane (anything but buses, by default) inside the lane polygon continuously for
  ``min_dwell_s``: crossing the lane to turn takes less; listed plates (emergency vehicles)
  are exempt when the plate is read.
* :class:`NoStoppingRule` (``no_stopping``, art. 287(3)) -- a vehicle *stationary* in a
  no-stopping zone for ``min_dwell_s``: its anchor stays within ``max_motion_px`` of where the
  stop began (box jitter stays inside that radius, creeping traffic leaves it and restarts
  the clock).

Both count on pts only; a gap in the observations longer than ``max_gap_s`` (occlusion, a
missed detection run) restarts the clock, so a dwell is never bridged over what was not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from pydantic import Field

from etle.geometry import Point
from etle.rules.base import PerTrackState, RuleContext, RuleSpec, ZoneRef, anchor_point, inside_any, make_violation
from etle.rules.options import Anchor, LabelSet, Labels, Plates
from etle.schema import ConfigModel
from etle.types import FrameContext, Violation
from etle.zones import PolygonZone

__all__ = ["RULES", "NoStoppingOptions", "NoStoppingRule", "RestrictedLaneOptions", "RestrictedLaneRule"]


def _polys(zones: Sequence[tuple[str, Sequence[Point]]]) -> tuple[tuple[str, tuple[Point, ...]], ...]:
    if not zones:
        raise ValueError("at least one zone is needed")
    return tuple((n, tuple((float(x), float(y)) for x, y in poly)) for n, poly in zones)


@dataclass(slots=True)
class _Dwell:
    since: float
    last: float
    x: float
    y: float
    zone: str


class RestrictedLaneOptions(ConfigModel):
    """Busway: a vehicle of a class that is not allowed inside the lane for too long."""

    zones: tuple[str, ...] = Field(min_length=1, description="Polygon zones of the lane.")
    allowed_labels: LabelSet = Field(
        default=("bus",), description="Classes allowed in the lane."
    )
    exempt_plates: Plates = Field(
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


class RestrictedLaneRule(PerTrackState):
    """Vehicles of a class that is not allowed in a restricted (bus) lane, dwelling in it."""

    name = "busway"

    def __init__(
        self,
        zones: Sequence[tuple[str, Sequence[Point]]],
        *,
        allowed_labels: Iterable[str] = ("bus",),
        exempt_plates: Iterable[str] = (),
        min_dwell_s: float = 2.0,
        max_gap_s: float = 1.0,
        labels: Iterable[str] = ("car", "motorcycle", "bus", "truck"),
        anchor: str = "bottom_center",
    ) -> None:
        self._zones = _polys(zones)
        self._labels = frozenset(labels) - frozenset(allowed_labels)
        self._exempt = frozenset("".join(c for c in p.upper() if c.isalnum()) for p in exempt_plates)
        self._min_dwell = min_dwell_s
        self._max_gap = max_gap_s
        self._anchor = anchor
        self._tracks: dict[int, _Dwell] = {}

    @classmethod
    def from_config(cls, options: RestrictedLaneOptions, ctx: RuleContext) -> "RestrictedLaneRule":
        zones = ctx.polygons
        return cls(
            [(n, zones[n].polygon) for n in options.zones],
            allowed_labels=options.allowed_labels,
            exempt_plates=options.exempt_plates,
            min_dwell_s=options.min_dwell_s,
            max_gap_s=options.max_gap_s,
            labels=options.labels,
            anchor=options.anchor,
        )

    def update(self, ctx: FrameContext) -> list[Violation]:
        pts = ctx.frame.pts
        out: list[Violation] = []
        for obj in ctx.objects:
            if obj.label not in self._labels:
                self._tracks.pop(obj.track_id, None)
                continue
            p = anchor_point(obj.box, self._anchor)
            zone = inside_any(p, self._zones)
            if zone is None:
                self._tracks.pop(obj.track_id, None)
                continue
            st = self._tracks.get(obj.track_id)
            if st is None or pts - st.last > self._max_gap or pts < st.last:
                st = self._tracks[obj.track_id] = _Dwell(pts, pts, p[0], p[1], zone)
            st.last = pts
            dwell = pts - st.since
            if dwell < self._min_dwell:
                continue
            plate = ctx.plate(obj.track_id)
            if self._exempt:
                if plate.text in self._exempt:
                    continue
                if ctx.plates is not None and plate.empty and dwell < 2 * self._min_dwell:
                    continue  # give the plate stage time to read an exempt vehicle's plate
            out.append(
                make_violation(
                    self.name,
                    ctx,
                    obj,
                    details={
                        "zone": zone,
                        "dwell_s": round(dwell, 3),
                        "entered_pts": round(st.since, 3),
                        "plate": plate.text or None,
                    },
                )
            )
        return out


class NoStoppingOptions(ConfigModel):
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


class NoStoppingRule(PerTrackState):
    """Vehicles stationary in a no-stopping zone for longer than allowed."""

    name = "no_stopping"

    def __init__(
        self,
        zones: Sequence[tuple[str, Sequence[Point]]],
        *,
        min_dwell_s: float = 30.0,
        max_motion_px: float = 8.0,
        max_gap_s: float = 2.0,
        labels: Iterable[str] = ("car", "motorcycle", "bus", "truck"),
        anchor: str = "bottom_center",
    ) -> None:
        self._zones = _polys(zones)
        self._min_dwell = min_dwell_s
        self._radius = max_motion_px
        self._max_gap = max_gap_s
        self._labels = frozenset(labels)
        self._anchor = anchor
        self._tracks: dict[int, _Dwell] = {}

    @classmethod
    def from_config(cls, options: NoStoppingOptions, ctx: RuleContext) -> "NoStoppingRule":
        zones = ctx.polygons
        return cls(
            [(n, zones[n].polygon) for n in options.zones],
            min_dwell_s=options.min_dwell_s,
            max_motion_px=options.max_motion_px,
            max_gap_s=options.max_gap_s,
            labels=options.labels,
            anchor=options.anchor,
        )

    def update(self, ctx: FrameContext) -> list[Violation]:
        pts = ctx.frame.pts
        out: list[Violation] = []
        for obj in ctx.objects:
            if obj.label not in self._labels:
                continue
            p = anchor_point(obj.box, self._anchor)
            zone = inside_any(p, self._zones)
            if zone is None:
                self._tracks.pop(obj.track_id, None)
                continue
            st = self._tracks.get(obj.track_id)
            if (
                st is None
                or pts - st.last > self._max_gap
                or pts < st.last
                or math.hypot(p[0] - st.x, p[1] - st.y) > self._radius
            ):
                st = self._tracks[obj.track_id] = _Dwell(pts, pts, p[0], p[1], zone)
            st.last = pts
            dwell = pts - st.since
            if dwell >= self._min_dwell:
                out.append(
                    make_violation(
                        self.name,
                        ctx,
                        obj,
                        details={
                            "zone": st.zone,
                            "stationary_s": round(dwell, 3),
                            "stopped_pts": round(st.since, 3),
                            "stopped_at": (round(st.x, 1), round(st.y, 1)),
                        },
                    )
                )
        return out


RULES = (
    RuleSpec("busway", RestrictedLaneOptions, RestrictedLaneRule.from_config, zones=(ZoneRef("zones", PolygonZone),)),
    RuleSpec("no_stopping", NoStoppingOptions, NoStoppingRule.from_config, zones=(ZoneRef("zones", PolygonZone),)),
)
