"""Plane geometry: line sides, segment crossings, distances, point in polygon, homographies.

The bottom of the camera / rules layering: the zone models (:mod:`etle.zones`), the camera
file's checks (:mod:`etle.camera.config`) and the rules (:mod:`etle.rules`) all use it, and it
imports none of them.

Hand-written rather than taken from shapely: the rules need a handful of exact predicates on a
few points per track per frame (a shapely object per call costs more than the arithmetic), the
degenerate cases (touching, collinear, points on a boundary) must behave in one documented way,
and the package stays free of a GEOS dependency.  The tests check these functions against
properties with hypothesis (and against shapely where it happens to be installed).

Coordinates are image pixels, x right and y down; ``side`` signs are therefore those of the
cross product in that frame and carry no meaning beyond "same" or "opposite".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Point = tuple[float, float]

__all__ = [
    "Crossing",
    "Point",
    "cross",
    "fit_homography",
    "point_in_polygon",
    "point_segment_distance",
    "polyline_crossing",
    "polyline_distance",
    "polyline_side",
    "segment_intersection",
    "segments_intersect",
    "side",
]


def cross(o: Point, a: Point, b: Point) -> float:
    """Z of (a - o) x (b - o): its sign says which side of o->a the point b is on (0: on it)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def side(a: Point, b: Point, p: Point) -> int:
    """Which side of the infinite directed line a->b the point p is on: 1, -1 or 0 (on it)."""
    c = float(cross(a, b, p))
    return int(c > 0) - int(c < 0)


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    """p, known to be collinear with a-b, lies within the segment's bounding box."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether the closed segments p1-p2 and q1-q2 share a point (touching counts)."""
    d1, d2 = side(q1, q2, p1), side(q1, q2, p2)
    d3, d4 = side(p1, p2, q1), side(p1, p2, q2)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )


def segment_intersection(p1: Point, p2: Point, q1: Point, q2: Point) -> float | None:
    """Parameter t in [0, 1] of the first point of p1->p2 that lies on q1-q2, or None.

    The point itself is ``p1 + t * (p2 - p1)``.  Collinear overlaps give the first shared point.
    """
    if not segments_intersect(p1, p2, q1, q2):
        return None
    rx, ry = p2[0] - p1[0], p2[1] - p1[1]
    sx, sy = q2[0] - q1[0], q2[1] - q1[1]
    denom = rx * sy - ry * sx
    if denom != 0:
        t = ((q1[0] - p1[0]) * sy - (q1[1] - p1[1]) * sx) / denom
        return min(max(t, 0.0), 1.0)
    # Collinear (or p degenerate): the first of p1, q1, q2 along p that is on both segments.
    rr = rx * rx + ry * ry
    if rr == 0:
        return 0.0
    candidates = [0.0]
    for q in (q1, q2):
        candidates.append(((q[0] - p1[0]) * rx + (q[1] - p1[1]) * ry) / rr)
    inside = [
        t
        for t in candidates
        if 0.0 <= t <= 1.0 and _on_segment(q1, q2, (p1[0] + t * rx, p1[1] + t * ry))
    ]
    return min(inside) if inside else None


def point_segment_distance(p: Point, a: Point, b: Point) -> float:
    """Euclidean distance from p to the closed segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    ll = dx * dx + dy * dy
    if ll == 0:
        return math.hypot(p[0] - a[0], p[1] - a[1])
    t = min(max(((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / ll, 0.0), 1.0)
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


def _nearest_segment(points: Sequence[Point], p: Point) -> tuple[int, float]:
    best, best_d = 0, math.inf
    for i in range(len(points) - 1):
        d = point_segment_distance(p, points[i], points[i + 1])
        if d < best_d:
            best, best_d = i, d
    return best, best_d


def polyline_distance(points: Sequence[Point], p: Point) -> float:
    """Distance from p to the polyline through ``points`` (at least two)."""
    return _nearest_segment(points, p)[1]


def polyline_side(points: Sequence[Point], p: Point) -> int:
    """Side of p relative to the directed polyline: the side of its nearest segment (1, -1, 0).

    0 only when p lies on the polyline.  The sign is consistent along the polyline (left of
    every directed segment is the same side locally), which is what "approach side" needs.
    """
    i, d = _nearest_segment(points, p)
    if d == 0:
        return 0
    s = side(points[i], points[i + 1], p)
    if s == 0:  # beyond an end, on the extension of the nearest segment: ask the neighbour
        for j in (i - 1, i + 1):
            if 0 <= j < len(points) - 1:
                s = side(points[j], points[j + 1], p)
                if s:
                    break
    return s


@dataclass(frozen=True, slots=True)
class Crossing:
    """Where the move p->q first meets a polyline: segment index, fraction t of the move, point."""

    segment: int
    t: float
    point: Point


def polyline_crossing(points: Sequence[Point], p: Point, q: Point) -> Crossing | None:
    """The first point where the move p->q meets the polyline, or None when it does not."""
    best: Crossing | None = None
    for i in range(len(points) - 1):
        t = segment_intersection(p, q, points[i], points[i + 1])
        if t is not None and (best is None or t < best.t):
            pt = (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))
            best = Crossing(i, t, pt)
    return best


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """Whether p is inside the simple polygon (even-odd rule); points on the boundary are inside."""
    n = len(polygon)
    if n < 3:
        return False
    x, y = p
    inside = False
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if cross(a, b, p) == 0 and _on_segment(a, b, p):
            return True
        if (a[1] > y) != (b[1] > y):
            x_at = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x < x_at:
                inside = not inside
    return inside


def _normalise(points: np.ndarray) -> np.ndarray:
    """The similarity transform that moves points to mean 0, mean distance sqrt(2)."""
    mean = points.mean(axis=0)
    d = np.sqrt(((points - mean) ** 2).sum(axis=1)).mean()
    s = math.sqrt(2) / d if d > 0 else 1.0
    return np.array([[s, 0, -s * mean[0]], [0, s, -s * mean[1]], [0, 0, 1]])


def _degenerate(points: Sequence[Point]) -> bool:
    """Fewer than four points in general position (no three of them on one line)."""
    pts = [tuple(map(float, p)) for p in points]
    n = len(pts)
    scale = max(max(abs(c) for p in pts for c in p), 1.0)
    eps = 1e-9 * scale * scale
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                for m in range(k + 1, n):
                    quad = (pts[i], pts[j], pts[k], pts[m])
                    if all(
                        abs(cross(quad[a], quad[b], quad[c])) > eps
                        for a, b, c in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3))
                    ):
                        return False
    return True


def fit_homography(
    image_points: Sequence[Point], world_points: Sequence[Point], *, max_error_m: float = 0.5
) -> np.ndarray:
    """3x3 homography mapping image px to world metres; ``ValueError`` when unusable."""
    if len(image_points) != len(world_points):
        raise ValueError("need as many world points as image points")
    if len(image_points) < 4:
        raise ValueError("need at least 4 points")
    if _degenerate(image_points) or _degenerate(world_points):
        raise ValueError("the points are degenerate: four of them, no three on a line, are needed")
    src = np.asarray(image_points, np.float64)
    dst = np.asarray(world_points, np.float64)
    ts, td = _normalise(src), _normalise(dst)
    s = (ts @ np.c_[src, np.ones(len(src))].T).T
    d = (td @ np.c_[dst, np.ones(len(dst))].T).T
    rows = []
    for (x, y, _), (u, v, _) in zip(s, d, strict=True):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    hn = vt[-1].reshape(3, 3)
    h = np.linalg.inv(td) @ hn @ ts
    if abs(h[2, 2]) > 1e-12:
        h = h / h[2, 2]
    w = (h @ np.c_[src, np.ones(len(src))].T)[2]
    if not (np.all(w > 0) or np.all(w < 0)):
        raise ValueError("the road plane's horizon crosses the calibration points")
    mapped = (h @ np.c_[src, np.ones(len(src))].T)
    mapped = (mapped[:2] / mapped[2]).T
    err = np.sqrt(((mapped - dst) ** 2).sum(axis=1))
    worst = int(err.argmax())
    if err[worst] > max_error_m:
        raise ValueError(
            f"point {worst} {tuple(image_points[worst])} maps {err[worst]:.2f} m from its world "
            f"position {tuple(world_points[worst])} (max {max_error_m} m): check the points"
        )
    return h
