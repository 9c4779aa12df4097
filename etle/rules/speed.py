"""Speeding (UU 22/2009 art. 287(5)): speed on a calibrated ground plane over a zone's limit.

**Calibration.**  Four or more marks on the road, given in image pixels and in metres, define
a homography from the image to the road plane (:func:`fit_homography`, a normalised DLT in
NumPy, least squares for more than four points).  The fit is refused when the points are
degenerate (three of four on a line), when it maps a calibration point more than
``max_error_m`` from its measured position (a mistyped point), or when the road plane's horizon
crosses the calibrated area.  Points beyond the horizon (sky) have no ground position.

**Speed.**  Each track's anchor (bottom centre of the box: where the vehicle meets the road) is
mapped to metres (boxes cut by the frame edge are skipped: their anchor is not the vehicle's); the speed is the slope of a least-squares line through the positions of the
last ``window_s`` of pts (a smoother than frame-to-frame differences, whose box jitter turns
into large speed noise).  A measurement counts only when the window spans ``min_span_s`` with
``min_points`` observations and the vehicle moved ``min_distance_m``.

**Implausible speeds** -- above ``max_plausible_kmh``, or with positions that stray more than
``max_residual_m`` from the fitted line (an id switch, a box that jumped) -- are logged and
rejected, never ticketed.  A vehicle is ticketed when ``min_over`` consecutive measurements
inside one zone exceed that zone's limit plus ``tolerance_kmh``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from pydantic import Field, field_validator, model_validator

from etle.geometry import Point, fit_homography, point_in_polygon
from etle.rules.base import PerTrackState, RuleContext, RuleSpec, ZoneRef, anchor_point, make_violation
from etle.rules.options import Anchor, Labels
from etle.schema import ConfigModel, LocatedError
from etle.types import FrameContext, Violation
from etle.zones import PolygonZone

__all__ = ["RULES", "GroundPlane", "SpeedingOptions", "SpeedingRule", "fit_homography"]

log = logging.getLogger(__name__)


class SpeedingOptions(ConfigModel):
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
            raise LocatedError(("min_span_s",), "must not exceed window_s")
        return self


class GroundPlane:
    """Image px -> road-plane metres through a homography."""

    def __init__(self, homography: np.ndarray) -> None:
        self.h = np.asarray(homography, np.float64)
        if self.h.shape != (3, 3):
            raise ValueError("homography must be 3x3")
        self._sign = 1.0

    @classmethod
    def from_points(
        cls, image_points: Sequence[Point], world_points: Sequence[Point], *, max_error_m: float = 0.5
    ) -> "GroundPlane":
        plane = cls(fit_homography(image_points, world_points, max_error_m=max_error_m))
        w0 = plane.h[2] @ np.array([*image_points[0], 1.0])
        plane._sign = 1.0 if w0 > 0 else -1.0
        return plane

    def to_world(self, p: Point) -> Point | None:
        """Metres of an image point, or None when it lies beyond the horizon."""
        v = self.h @ np.array([p[0], p[1], 1.0])
        if v[2] * self._sign <= 1e-12:
            return None
        return (float(v[0] / v[2]), float(v[1] / v[2]))


@dataclass(slots=True)
class _Track:
    seen: deque[tuple[float, float, float]] = field(default_factory=deque)  # pts, X m, Y m
    over: int = 0
    zone: str | None = None
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Measurement:
    speed_kmh: float
    span_s: float
    points: int
    distance_m: float
    residual_m: float


def measure(seen: Sequence[tuple[float, float, float]]) -> Measurement:
    """Least-squares speed through (pts, X, Y) observations."""
    arr = np.asarray(seen, np.float64)
    t = arr[:, 0] - arr[:, 0].mean()
    denom = float((t * t).sum())
    if denom <= 0:
        return Measurement(0.0, 0.0, len(seen), 0.0, 0.0)
    vx = float((t * (arr[:, 1] - arr[:, 1].mean())).sum() / denom)
    vy = float((t * (arr[:, 2] - arr[:, 2].mean())).sum() / denom)
    fx = arr[:, 1].mean() + vx * t
    fy = arr[:, 2].mean() + vy * t
    resid = float(np.sqrt((arr[:, 1] - fx) ** 2 + (arr[:, 2] - fy) ** 2).max())
    span = float(arr[-1, 0] - arr[0, 0])
    speed = math.hypot(vx, vy)
    return Measurement(speed * 3.6, span, len(seen), speed * span, resid)


class SpeedingRule(PerTrackState):
    """Speed above a zone's limit on a calibrated ground plane."""

    name = "speeding"

    def __init__(
        self,
        plane: GroundPlane,
        zones: Sequence[tuple[str, Sequence[Point], float]],
        *,
        tolerance_kmh: float = 5.0,
        window_s: float = 1.0,
        min_span_s: float = 0.6,
        min_points: int = 6,
        min_distance_m: float = 2.0,
        max_plausible_kmh: float = 160.0,
        max_residual_m: float = 1.0,
        min_over: int = 3,
        max_gap_s: float = 0.5,
        labels: Iterable[str] = ("car", "motorcycle", "bus", "truck"),
        anchor: str = "bottom_center",
    ) -> None:
        if not zones:
            raise ValueError("speeding needs at least one zone with a limit")
        if min_span_s > window_s:
            raise ValueError("min_span_s must not exceed window_s")
        self._plane = plane
        self._zones = tuple((n, tuple((float(x), float(y)) for x, y in poly), float(lim)) for n, poly, lim in zones)
        self._tol = tolerance_kmh
        self._window = window_s
        self._min_span = min_span_s
        self._min_points = min_points
        self._min_dist = min_distance_m
        self._max_kmh = max_plausible_kmh
        self._max_resid = max_residual_m
        self._min_over = min_over
        self._max_gap = max_gap_s
        self._labels = frozenset(labels)
        self._anchor = anchor
        self._tracks: dict[int, _Track] = {}
        self.rejected: int = 0  # implausible measurements seen (for logs and tests)

    @classmethod
    def from_config(cls, options: SpeedingOptions, ctx: RuleContext) -> "SpeedingRule":
        calibration, zones = ctx.calibration, ctx.polygons
        assert calibration is not None  # checked when the file was loaded
        plane = GroundPlane.from_points(
            calibration.image_points, calibration.world_points, max_error_m=calibration.max_reprojection_m
        )
        return cls(
            plane,
            [(n, zones[n].polygon, lim) for n, lim in options.limits_kmh.items()],
            tolerance_kmh=options.tolerance_kmh,
            window_s=options.window_s,
            min_span_s=options.min_span_s,
            min_points=options.min_points,
            min_distance_m=options.min_distance_m,
            max_plausible_kmh=options.max_plausible_kmh,
            max_residual_m=options.max_residual_m,
            min_over=options.min_over,
            labels=options.labels,
            anchor=options.anchor,
        )

    def _zone(self, p: Point) -> tuple[str, float] | None:
        for name, poly, limit in self._zones:
            if point_in_polygon(p, poly):
                return name, limit
        return None

    def update(self, ctx: FrameContext) -> list[Violation]:
        pts = ctx.frame.pts
        out: list[Violation] = []
        for obj in ctx.objects:
            if obj.label not in self._labels or obj.predicted:
                continue  # speed is fitted to observed positions only
            b = obj.box
            if b.x1 <= 1 or b.y1 <= 1 or b.x2 >= ctx.frame.width - 1 or b.y2 >= ctx.frame.height - 1:
                continue  # cut by the frame edge: its anchor is not where the vehicle is
            p = anchor_point(b, self._anchor)
            world = self._plane.to_world(p)
            st = self._tracks.get(obj.track_id)
            if st is not None and st.seen and (pts - st.seen[-1][0] > self._max_gap or pts < st.seen[-1][0]):
                st = None
            if world is None:
                self._tracks.pop(obj.track_id, None)
                continue
            if st is None:
                st = self._tracks[obj.track_id] = _Track()
            st.seen.append((pts, world[0], world[1]))
            while st.seen and st.seen[0][0] < pts - self._window - 1e-9:
                st.seen.popleft()
            zone = self._zone(p)
            if zone is None:
                st.over, st.zone = 0, None
                continue
            if len(st.seen) < self._min_points or st.seen[-1][0] - st.seen[0][0] < self._min_span - 1e-9:
                continue
            m = measure(st.seen)
            if m.distance_m < self._min_dist:
                st.over = 0
                continue
            if m.speed_kmh > self._max_kmh or m.residual_m > self._max_resid:
                st.rejected += 1
                self.rejected += 1
                st.over = 0
                if st.rejected == 1:
                    log.info(
                        "speeding: track %d: implausible measurement rejected at pts %.2f "
                        "(%.0f km/h, residual %.2f m)",
                        obj.track_id, pts, m.speed_kmh, m.residual_m,
                    )
                continue
            name, limit = zone
            if m.speed_kmh > limit + self._tol:
                st.over = st.over + 1 if st.zone == name else 1
            else:
                st.over = 0
            st.zone = name
            if st.over >= self._min_over:
                out.append(
                    make_violation(
                        self.name,
                        ctx,
                        obj,
                        details={
                            "speed_kmh": round(m.speed_kmh, 1),
                            "limit_kmh": limit,
                            "tolerance_kmh": self._tol,
                            "zone": name,
                            "span_s": round(m.span_s, 3),
                            "points": m.points,
                            "distance_m": round(m.distance_m, 2),
                            "residual_m": round(m.residual_m, 3),
                            "position_m": (round(world[0], 2), round(world[1], 2)),
                        },
                    )
                )
        return out


RULES = (
    RuleSpec(
        "speeding",
        SpeedingOptions,
        SpeedingRule.from_config,
        zones=(ZoneRef("limits_kmh", PolygonZone),),
        needs=("calibration",),
    ),
)
