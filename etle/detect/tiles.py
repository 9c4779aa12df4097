"""Zone tiles: the vehicle detector also looks at the camera zones where small vehicles matter at
the camera's own resolution.

A detector with a 640-pixel input sees a 1920 x 1080 frame shrunk three times: a motorcycle
waiting 40 m away at the stop line is then a dozen pixels and often missed.  A camera file can
name zones (``detect_tiles``, e.g. the stop line and the crossing) whose surroundings are cut out
of the full frame in tiles of the detector's input size (:func:`zone_tiles`; a stop line across
the picture gives a row of overlapping tiles) and detected as well, each at the camera's
resolution, in the same batch as the full frame.  What a tile finds is added to the full frame's
detections unless the full frame found the same object (:func:`merge`); an object cut by a
tile's inner edge is left to the full frame.

A tile is only taken where it gains resolution: where the detector sees the tile at least
``MIN_GAIN`` times larger than in the full frame.  Enlarging a crop beyond the camera's pixels
adds no detail: on the 400 x 224 Banjarmasin clip (enlarged to 640 x 384 already in the full
frame) a crop of its stop-line area found fewer vehicles than the full frame.  So a frame the
detector does not shrink, as in every shared clip, runs exactly as without tiles.

Written here rather than with SAHI (the sliced-inference library): SAHI slices the whole frame on
a grid and runs its own model wrappers one slice at a time, while these tiles are a camera's
zones, run as one batch with the frame through etle's detector protocol (ONNX Runtime,
:class:`etle.detect.batching.BatchingDetector`), and merged by the rules above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from etle.geometry import Point
from etle.types import Box, Detection

__all__ = ["DEFAULT_INPUT", "MIN_GAIN", "TiledDetector", "gain", "merge", "planned_tiles", "tile_zones", "untiled", "zone_areas", "zone_tiles"]

#: A tile is run only when the detector sees it at least this many times larger than in the frame.
MIN_GAIN = 1.25
#: Margin added around a zone's bounding box, as a fraction of the frame's shorter side (about a
#: waiting motorcycle's height near the stop line: vehicles stand partly outside a zone drawn on
#: the road).
MARGIN = 0.1
#: Overlap of neighbouring tiles of one area, as a fraction of the tile side.
OVERLAP = 0.2
#: Smallest margin, in pixels.
MIN_MARGIN_PX = 32
#: The detector input assumed when the detector does not say (YOLOv8's 640 x 640).
DEFAULT_INPUT = (640, 640)
#: A tile detection whose box comes this close (px) to an inner edge of its tile is cut there.
EDGE_PX = 2.0


def _bounds(points: Iterable[Point]) -> tuple[float, float, float, float]:
    xs, ys = zip(*points, strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def zone_areas(zones: Sequence[Sequence[Point]], width: int, height: int) -> list[Box]:
    """The area around each zone (its points: a line's vertices or a polygon's corners) in a
    ``width`` x ``height`` frame, in whole pixels inside it: the zone's bounding box grown by
    ``MARGIN`` of the frame's shorter side (at least ``MIN_MARGIN_PX``); two areas whose joint box has no
    more pixels than both together (they overlap that much) become that one area."""
    areas: list[Box] = []
    m = max(MARGIN * min(width, height), MIN_MARGIN_PX)
    for points in zones:
        x1, y1, x2, y2 = _bounds(points)
        box = Box(float(max(0, math.floor(x1 - m))), float(max(0, math.floor(y1 - m))),
                  float(min(width, math.ceil(x2 + m))), float(min(height, math.ceil(y2 + m))))
        if box.width >= 2 and box.height >= 2:
            areas.append(box)
    joined = True
    while joined:
        joined = False
        for i in range(len(areas)):
            for j in range(i + 1, len(areas)):
                a, b = areas[i], areas[j]
                both = Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
                if both.area <= a.area + b.area:
                    areas[i] = both
                    del areas[j]
                    joined = True
                    break
            if joined:
                break
    return areas


def _cells(start: float, end: float, side: int, overlap: int) -> list[tuple[float, float]]:
    """Spans of at most ``side`` px covering [start, end], evenly spread, neighbours overlapping
    by at least ``overlap`` px."""
    length = end - start
    if length <= side:
        return [(start, end)]
    n = math.ceil((length - overlap) / (side - overlap))
    step = (length - side) / (n - 1)
    return [(float(round(start + k * step)), float(round(start + k * step)) + side) for k in range(n)]


def zone_tiles(zones: Sequence[Sequence[Point]], width: int, height: int, *, side: int = 640,
               overlap: int | None = None) -> list[Box]:
    """The tiles of the zones in a ``width`` x ``height`` frame: each of :func:`zone_areas`, cut
    into tiles of at most ``side`` x ``side`` pixels (the detector's input, so each is seen at the
    camera's resolution) overlapping by ``overlap`` (default: ``OVERLAP`` of ``side``) so that a
    vehicle cut by one tile's edge lies whole in its neighbour."""
    lap = int(round(OVERLAP * side)) if overlap is None else overlap
    return [Box(x1, y1, min(x2, float(width)), min(y2, float(height)))
            for area in zone_areas(zones, width, height)
            for y1, y2 in _cells(area.y1, area.y2, side, lap)
            for x1, x2 in _cells(area.x1, area.x2, side, lap)]


def _scale(width: float, height: float, size: tuple[int, int]) -> float:
    """How much the detector enlarges (> 1) or shrinks (< 1) a ``width`` x ``height`` image: the
    letterbox factor into ``size``, its long side along the image's (a rectangular input such as
    640 x 384 serves landscape frames; :func:`etle.detect.onnx_yolo.rect_size` keeps that side)."""
    long_side, short_side = max(size), min(size)
    if width >= height:
        return min(long_side / width, short_side / height)
    return min(short_side / width, long_side / height)


def gain(tile: Box, width: int, height: int, size: tuple[int, int]) -> float:
    """How many times larger the detector sees what lies in ``tile`` when the tile is detected on
    its own than within the whole frame (enlargement past the camera's pixels counts as none)."""
    frame = _scale(width, height, size)
    own = min(_scale(tile.width, tile.height, size), 1.0)
    return own / frame


def planned_tiles(zones: Sequence[Sequence[Point]], width: int, height: int,
                  input_size: tuple[int, int] = DEFAULT_INPUT) -> list[tuple[Box, float]]:
    """Each tile of :func:`zone_tiles` with its :func:`gain`, for a detector input of
    ``input_size``; those with a gain of at least ``MIN_GAIN`` are the ones detected."""
    return [(t, gain(t, width, height, input_size)) for t in zone_tiles(zones, width, height, side=min(input_size))]


def _shift(d: Detection, tile: Box) -> Detection:
    b = d.box
    return Detection(Box(b.x1 + tile.x1, b.y1 + tile.y1, b.x2 + tile.x1, b.y2 + tile.y1), d.label, d.confidence)


def _cut(box: Box, tile: Box, width: int, height: int) -> bool:
    """Whether ``box`` (frame px) touches an edge of ``tile`` that is not the frame's edge."""
    return ((tile.x1 > 0 and box.x1 <= tile.x1 + EDGE_PX) or (tile.y1 > 0 and box.y1 <= tile.y1 + EDGE_PX)
            or (tile.x2 < width and box.x2 >= tile.x2 - EDGE_PX) or (tile.y2 < height and box.y2 >= tile.y2 - EDGE_PX))


def _same(a: Box, b: Box, iou: float) -> bool:
    """The same object: overlapping by ``iou``, or one box almost inside the other (a tile sees a
    vehicle the full frame boxed a little larger)."""
    if a.iou(b) >= iou:
        return True
    small = min(a.area, b.area)
    return small > 0 and a.intersection(b) / small >= 0.8


def merge(full: Sequence[Detection], per_tile: Sequence[Sequence[Detection]], tiles: Sequence[Box],
          width: int, height: int, *, iou: float = 0.5) -> list[Detection]:
    """The full frame's detections, then each tile's (``per_tile[k]`` in ``tiles[k]``'s own
    pixels) that the frame did not find: shifted into frame pixels, most confident first, without
    those cut by an inner tile edge and without a second box of one object (same label,
    :func:`_same`).  The inputs are not modified."""
    out = list(full)
    extra = sorted(((_shift(d, t), t) for t, found in zip(tiles, per_tile, strict=True) for d in found),
                   key=lambda p: -p[0].confidence)
    for d, tile in extra:
        if _cut(d.box, tile, width, height):
            continue
        if any(o.label == d.label and _same(o.box, d.box, iou) for o in out):
            continue
        out.append(d)
    return out


@dataclass
class TiledDetector:
    """A vehicle detector that also detects the zone tiles of each frame (:mod:`etle.detect.tiles`).

    ``zones`` are the points of the zones to tile; ``input_size`` the detector's input (width,
    height; default: ``detector.input_size``, else 640 x 640).  The tiles are worked out once per
    frame size.  ``detect_many`` runs every frame and tile of a call as one batch where the
    wrapped detector can (``detect_many``)."""

    detector: Any
    zones: tuple[tuple[Point, ...], ...]
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.input_size is None:
            size = getattr(self.detector, "input_size", None)
            self.input_size = (int(size[0]), int(size[1])) if size is not None else DEFAULT_INPUT
        self._tiles: dict[tuple[int, int], list[Box]] = {}
        #: tiles detected so far (for the run's figures and tests)
        self.tiles_run = 0

    def tiles_for(self, width: int, height: int) -> list[Box]:
        """The tiles worth running on a ``width`` x ``height`` frame (those with ``MIN_GAIN``)."""
        key = (width, height)
        if key not in self._tiles:
            assert self.input_size is not None
            self._tiles[key] = [t for t, g in planned_tiles(self.zones, width, height, self.input_size) if g >= MIN_GAIN]
        return self._tiles[key]

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        plans = [self.tiles_for(im.shape[1], im.shape[0]) for im in images]
        batch: list[np.ndarray] = []
        for im, tiles in zip(images, plans, strict=True):
            batch.append(im)
            batch += [np.ascontiguousarray(im[int(t.y1):int(t.y2), int(t.x1):int(t.x2)]) for t in tiles]
        if hasattr(self.detector, "detect_many"):
            found = self.detector.detect_many(batch)
        else:
            found = [self.detector.detect(b) for b in batch]
        out, at = [], 0
        for im, tiles in zip(images, plans, strict=True):
            h, w = im.shape[:2]
            full, per_tile = found[at], found[at + 1 : at + 1 + len(tiles)]
            at += 1 + len(tiles)
            self.tiles_run += len(tiles)
            out.append(merge(full, per_tile, tiles, w, h) if tiles else list(full))
        return out


def untiled(detector: Any) -> Any:
    """The detector a :class:`TiledDetector` wraps (any other detector as it is): what is shared
    between cameras, each of which has its own tiles."""
    return detector.detector if isinstance(detector, TiledDetector) else detector


def tile_zones(camera: Any) -> tuple[tuple[Point, ...], ...]:
    """The points of the zones a camera config names in ``detect_tiles`` (a line's vertices, a
    polygon's corners)."""
    from etle.zones import LineZone

    zones = [camera.zones[name] for name in camera.detect_tiles]
    return tuple(tuple(z.points) if isinstance(z, LineZone) else tuple(z.polygon) for z in zones)
