"""Named zones of a camera's picture: lines (a stop line) and polygons (a lane, a crossing).

The camera file's ``zones`` section maps names to these models; rules name the zones they
use.  Below both :mod:`etle.camera` (which holds the zones of a camera) and :mod:`etle.rules`
(whose rules are built from them); imports neither.
"""

from __future__ import annotations

from typing import Annotated, Any, Mapping, Union

from pydantic import Discriminator, Field, Tag, model_validator

from etle.geometry import Point, polyline_side
from etle.schema import ConfigModel, LocatedError

__all__ = ["LineZone", "PolygonZone", "Zone", "three_points_each", "zone_ref"]


class LineZone(ConfigModel):
    """A (poly)line, e.g. a stop line, with the side vehicles approach from."""

    points: tuple[Point, ...] = Field(min_length=2, description="Line vertices in image px.")
    approach_side: Point | None = Field(
        default=None, description="Any point on the approach side of the line (image px)."
    )
    direction: Point | None = Field(
        default=None, description="Or: the direction of travel across the line, as a vector."
    )

    @model_validator(mode="after")
    def _verify_side(self) -> "LineZone":
        if (self.approach_side is None) == (self.direction is None):
            raise LocatedError(
                ("approach_side",), "give exactly one of approach_side or direction"
            )
        for a, b in zip(self.points, self.points[1:], strict=False):
            if a == b:
                raise LocatedError(("points",), "consecutive points must differ")
        if self.direction is not None and self.direction == (0.0, 0.0):
            raise LocatedError(("direction",), "must not be the zero vector")
        if self.approach_side is not None:
            if polyline_side(self.points, self.approach_side) == 0:
                raise LocatedError(("approach_side",), "lies on the line")
        return self


class PolygonZone(ConfigModel):
    """An area (lane, box junction, crossing) for rules that test containment."""

    polygon: tuple[Point, ...] = Field(min_length=3, description="Polygon vertices in image px.")
    direction: Point | None = Field(
        default=None,
        description="For a lane: the permitted direction of travel, as an image vector "
        "(e.g. [0, -1] = up the picture); the wrong-way rule needs it.",
    )

    @model_validator(mode="after")
    def _verify_polygon(self) -> "PolygonZone":
        if self.direction is not None and self.direction == (0.0, 0.0):
            raise LocatedError(("direction",), "must not be the zero vector")
        if _polygon_area(self.polygon) == 0:
            raise LocatedError(("polygon",), "has zero area (points are collinear)")
        return self


def _polygon_area(points: tuple[Point, ...]) -> float:
    return abs(
        sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(points, points[1:] + points[:1], strict=True))
    ) / 2.0


def _zone_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "polygon" in value:
            return "polygon"
        return "line"
    if isinstance(value, (LineZone, PolygonZone)):
        return "polygon" if isinstance(value, PolygonZone) else "line"
    return None


Zone = Annotated[
    Union[Annotated[LineZone, Tag("line")], Annotated[PolygonZone, Tag("polygon")]],
    Discriminator(_zone_kind),
]


def zone_ref(
    zones: Mapping[str, LineZone | PolygonZone],
    loc: tuple[str | int, ...],
    name: str,
    kind: type[LineZone] | type[PolygonZone],
) -> LineZone | PolygonZone:
    """The zone ``name`` of ``zones``, which must be a ``kind``; else a :class:`LocatedError` at ``loc``."""
    zone = zones.get(name)
    if zone is None:
        names = ", ".join(sorted(zones)) or "none"
        raise LocatedError(loc, f"no zone named '{name}' (zones: {names})")
    if not isinstance(zone, kind):
        what = "a line" if kind is LineZone else "a polygon"
        raise LocatedError(loc, f"zone '{name}' is not {what}")
    return zone


def three_points_each(polygons: tuple[tuple[Point, ...], ...], what: str) -> tuple[tuple[Point, ...], ...]:
    """``polygons`` unchanged when each has at least 3 points (for lists of areas to leave out)."""
    for poly in polygons:
        if len(poly) < 3:
            raise ValueError(f"each {what} polygon needs at least 3 points")
    return polygons
