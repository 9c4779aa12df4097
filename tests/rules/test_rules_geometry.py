"""Property tests of the hand-written geometry (and a cross-check against shapely if present)."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from etle.geometry import (
    point_in_polygon,
    point_segment_distance,
    polyline_crossing,
    polyline_distance,
    polyline_side,
    segment_intersection,
    segments_intersect,
    side,
)

coord = st.integers(min_value=-500, max_value=500).map(float)
point = st.tuples(coord, coord)


@given(point, point, point)
def test_side_is_antisymmetric_and_zero_on_endpoints(a, b, p):
    assert side(a, b, p) == -side(b, a, p)
    assert side(a, b, a) == 0 and side(a, b, b) == 0


@given(point, point, point, point)
def test_intersection_is_symmetric(p1, p2, q1, q2):
    r = segments_intersect(p1, p2, q1, q2)
    assert r == segments_intersect(q1, q2, p1, p2) == segments_intersect(p2, p1, q2, q1)


@given(point, point, point, point)
def test_intersection_point_lies_on_both_segments(p1, p2, q1, q2):
    t = segment_intersection(p1, p2, q1, q2)
    assert (t is not None) == segments_intersect(p1, p2, q1, q2)
    if t is not None:
        assert 0.0 <= t <= 1.0
        x = (p1[0] + t * (p2[0] - p1[0]), p1[1] + t * (p2[1] - p1[1]))
        scale = 1.0 + max(abs(v) for v in (*p1, *p2, *q1, *q2))
        assert point_segment_distance(x, q1, q2) <= 1e-9 * scale * 10
        assert point_segment_distance(x, p1, p2) <= 1e-9 * scale * 10


@given(point, point, point, point)
def test_orientation_decides_crossing(p1, p2, q1, q2):
    proper = side(q1, q2, p1) * side(q1, q2, p2) < 0 and side(p1, p2, q1) * side(p1, p2, q2) < 0
    apart = side(q1, q2, p1) * side(q1, q2, p2) > 0 or side(p1, p2, q1) * side(p1, p2, q2) > 0
    if proper:
        assert segments_intersect(p1, p2, q1, q2)
    if apart:
        assert not segments_intersect(p1, p2, q1, q2)


@given(point, point, point)
def test_segment_distance_bounds(p, a, b):
    d = point_segment_distance(p, a, b)
    assert d >= 0
    assert d <= math.dist(p, a) + 1e-9 and d <= math.dist(p, b) + 1e-9
    assert point_segment_distance(a, a, b) == 0


@given(st.lists(point, min_size=2, max_size=6, unique=True), point, point)
def test_polyline_crossing_point_is_on_the_line(line, p, q):
    c = polyline_crossing(line, p, q)
    if c is not None:
        scale = 1.0 + max(abs(v) for pt in (*line, p, q) for v in pt)
        assert polyline_distance(line, c.point) <= 1e-8 * scale
        assert 0 <= c.segment < len(line) - 1


@given(
    point,
    point,
    st.floats(0.05, 0.95),
    st.tuples(st.integers(-50, 50), st.integers(-50, 50)),
    st.floats(0.1, 5.0),
    st.floats(0.1, 5.0),
)
def test_a_move_through_a_line_crosses_it_and_changes_side(a, b, s, d, k1, k2):
    assume(a != b)
    assume(abs(side((0, 0), (b[0] - a[0], b[1] - a[1]), (float(d[0]), float(d[1])))) > 0)
    m = (a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1]))
    p = (m[0] - k1 * d[0], m[1] - k1 * d[1])
    q = (m[0] + k2 * d[0], m[1] + k2 * d[1])
    c = polyline_crossing([a, b], p, q)
    assert c is not None
    assert math.dist(c.point, m) <= 1e-6 * (1 + math.dist(p, q) + math.dist(a, b))
    sp, sq = polyline_side([a, b], p), polyline_side([a, b], q)
    assert sp == -sq != 0


@given(coord, coord, st.integers(1, 300), st.integers(1, 300), point)
def test_point_in_rectangle(x, y, w, h, p):
    rect = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    expected = x <= p[0] <= x + w and y <= p[1] <= y + h
    assert point_in_polygon(p, rect) == expected
    assert point_in_polygon(p, list(reversed(rect))) == expected


@given(st.lists(point, min_size=3, max_size=8), point, coord, coord)
def test_point_in_polygon_is_translation_invariant(poly, p, dx, dy):
    moved = [(x + dx, y + dy) for x, y in poly]
    assert point_in_polygon(p, poly) == point_in_polygon((p[0] + dx, p[1] + dy), moved)


def test_polygon_vertices_and_edges_are_inside():
    tri = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]
    assert point_in_polygon((0.0, 0.0), tri)
    assert point_in_polygon((5.0, 5.0), tri)
    assert not point_in_polygon((5.1, 5.1), tri)
    assert not point_in_polygon((1.0, 1.0), tri[:2])


@settings(max_examples=300)
@given(st.lists(point, min_size=3, max_size=7, unique=True), point)
def test_point_in_polygon_matches_shapely(poly, p):
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import Point, Polygon

    shape = Polygon(poly)
    assume(shape.is_valid and shape.area > 0)
    expected = shape.covers(Point(p))
    assert point_in_polygon(p, poly) == expected, shapely.__version__


@settings(max_examples=300)
@given(point, point, point, point)
def test_segments_intersect_matches_shapely(p1, p2, q1, q2):
    pytest.importorskip("shapely")
    from shapely.geometry import LineString

    assume(p1 != p2 and q1 != q2)
    assert segments_intersect(p1, p2, q1, q2) == LineString([p1, p2]).intersects(
        LineString([q1, q2])
    )
