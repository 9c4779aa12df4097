"""Zone tiles (etle.detect.tiles): a large frame's camera zones are also detected at the camera's
resolution, so a vehicle too small for the shrunk full frame is found there; a frame the detector
does not shrink runs as before."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.detect.tiles import MIN_GAIN, TiledDetector, gain, merge, untiled, zone_areas, zone_tiles
from etle.types import Box, Detection

STOP_LINE = ((600.0, 700.0), (1300.0, 720.0))  # a stop line across a 1920 x 1080 frame
#: the fake detector's input and the smallest object side (in its input pixels) it finds
INPUT, MIN_SIDE = (640, 640), 8


class SmallMiss:
    """A stand-in for a YOLO detector: finds pure red squares, but only those at least
    ``MIN_SIDE`` pixels in the letterboxed input (a 640-pixel input shrinks a 1920-wide frame
    three times).  Records every image it was handed."""

    input_size = INPUT

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.many_calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        self.seen.append((w, h))
        scale = min(INPUT[0] / max(w, h), INPUT[1] / min(w, h))
        red = ((image[:, :, 2] == 255) & (image[:, :, 1] == 0) & (image[:, :, 0] == 0)).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(red)
        out = []
        for x, y, bw, bh, _area in stats[1:n]:
            if min(bw, bh) * scale >= MIN_SIDE:
                out.append(Detection(Box(float(x), float(y), float(x + bw), float(y + bh)), "motorcycle", 0.9))
        return out

    def detect_many(self, images):  # type: ignore[no-untyped-def]
        self.many_calls += 1
        return [self.detect(im) for im in images]


def frame_with(*squares: tuple[int, int, int], size: tuple[int, int] = (1920, 1080)) -> np.ndarray:
    image = np.full((size[1], size[0], 3), 90, np.uint8)
    for x, y, side in squares:
        image[y : y + side, x : x + side] = (0, 0, 255)
    return image


def test_area_is_the_zone_grown_by_a_margin_inside_the_frame():
    (area,) = zone_areas([STOP_LINE], 1920, 1080)
    assert (area.x1, area.y1, area.x2, area.y2) == (492.0, 592.0, 1408.0, 828.0)  # a tenth of 1080 around it
    (edge,) = zone_areas([((10.0, 1000.0), (1900.0, 1070.0))], 1920, 1080)
    assert (edge.x1, edge.y2, edge.x2) == (0.0, 1080.0, 1920.0)  # clipped to the frame
    inner = ((700.0, 705.0), (800.0, 710.0))
    assert zone_areas([STOP_LINE, inner], 1920, 1080) == zone_areas([STOP_LINE], 1920, 1080)  # one inside another
    below = ((600.0, 760.0), (1300.0, 790.0))  # overlapping most of it: one area around both
    (both,) = zone_areas([STOP_LINE, below], 1920, 1080)
    assert both.y1 < 700 and both.y2 > 790
    apart = ((100.0, 100.0), (300.0, 120.0))  # far away: an area of its own
    assert len(zone_areas([STOP_LINE, apart], 1920, 1080)) == 2


def test_an_area_wider_than_the_input_is_cut_into_overlapping_tiles_of_the_input_size():
    across = ((0.0, 700.0), (1920.0, 740.0))  # a stop line across a 1080p picture
    tiles = zone_tiles([across], 1920, 1080, side=640)
    (area,) = zone_areas([across], 1920, 1080)
    assert len(tiles) == 4  # 1920 px in 640-px tiles overlapping by at least 128
    assert all(t.width <= 640 and t.height <= 640 for t in tiles)
    assert tiles[0].x1 == 0 and tiles[-1].x2 == 1920 and {(t.y1, t.y2) for t in tiles} == {(area.y1, area.y2)}
    assert (area.y1, area.y2) == (592.0, 848.0)
    for a, b in zip(tiles, tiles[1:]):
        assert a.x2 - b.x1 >= 128
    assert all(gain(t, 1920, 1080, INPUT) == pytest.approx(3.0) for t in tiles)  # each at 1:1, not 1:3
    assert zone_tiles([STOP_LINE], 1920, 1080, side=2000) == zone_areas([STOP_LINE], 1920, 1080)


def test_gain_counts_only_the_cameras_own_pixels():
    tile = Box(500, 600, 1000, 900)
    assert gain(tile, 1920, 1080, INPUT) == pytest.approx(3.0)  # seen at 1:1 instead of 1:3
    # a 400 x 224 clip is already enlarged 1.6 times in the full frame: a crop adds no detail
    assert gain(Box(100, 60, 400, 224), 400, 224, INPUT) < 1
    assert gain(Box(0, 0, 1920, 1080), 1920, 1080, INPUT) == pytest.approx(1.0)


def test_a_vehicle_too_small_for_the_shrunk_frame_is_found_in_its_zone_tile():
    image = frame_with((900, 690, 14))  # 14 px: under 5 px in the shrunk frame
    base = SmallMiss()
    assert base.detect(image) == []
    tiled = TiledDetector(base, (STOP_LINE,))
    before = image.copy()
    (found,) = tiled.detect(image)
    np.testing.assert_array_equal(image, before)
    assert found.label == "motorcycle"
    assert (found.box.x1, found.box.y1, found.box.x2, found.box.y2) == (900.0, 690.0, 914.0, 704.0)  # frame pixels
    assert len(tiled.tiles_for(1920, 1080)) == 2  # 916 px of stop line and margin: two tiles
    assert tiled.tiles_run == 2 and base.many_calls == 1  # the frame and its tiles in one batch (found in both, kept once)


def test_tiles_cover_only_the_named_zones():
    image = frame_with((100, 100, 14))  # as small, far from the stop line
    assert TiledDetector(SmallMiss(), (STOP_LINE,)).detect(image) == []


def test_an_object_the_frame_finds_is_not_added_twice():
    image = frame_with((900, 650, 60))  # large enough for the shrunk frame
    base = SmallMiss()
    full = base.detect(image)
    assert len(full) == 1
    assert TiledDetector(base, (STOP_LINE,)).detect(image) == full


def test_a_frame_the_detector_does_not_shrink_runs_without_tiles():
    image = frame_with((150, 150, 10), size=(400, 224))
    base = SmallMiss()
    tiled = TiledDetector(base, (((150.0, 143.0), (345.0, 176.0)),))
    assert tiled.tiles_for(400, 224) == []
    assert tiled.detect(image) == base.detect(image)
    assert base.seen == [(400, 224), (400, 224)] and tiled.tiles_run == 0


def test_an_object_cut_by_an_inner_tile_edge_is_left_to_the_full_frame():
    tile = Box(500, 600, 1000, 900)
    cut = Detection(Box(480, 50, 500, 80), "car", 0.8)  # tile pixels: touches the tile's right edge
    inside = Detection(Box(100, 50, 130, 80), "car", 0.7)
    assert merge([], [[cut, inside]], [tile], 1920, 1080) == [Detection(Box(600, 650, 630, 680), "car", 0.7)]
    # an edge that is the frame's own edge cuts nothing
    at_frame_edge = Box(1420, 600, 1920, 900)
    assert len(merge([], [[cut]], [at_frame_edge], 1920, 1080)) == 1


def test_overlapping_tiles_give_one_box_per_object():
    a, b = Box(0, 0, 600, 400), Box(300, 0, 900, 400)
    seen_a = Detection(Box(350, 100, 370, 120), "motorcycle", 0.6)  # at (350, 100) in the frame
    seen_b = Detection(Box(50, 101, 70, 121), "motorcycle", 0.7)  # the same, in b's pixels
    other_label = Detection(Box(50, 101, 70, 121), "person", 0.5)
    got = merge([], [[seen_a], [seen_b, other_label]], [a, b], 1920, 1080)
    assert [(d.label, d.confidence) for d in got] == [("motorcycle", 0.7), ("person", 0.5)]


def test_detect_many_batches_every_frame_and_tile_and_matches_detect():
    frames = [frame_with((900, 690, 14)), frame_with((1000, 700, 16), (100, 100, 60))]
    base = SmallMiss()
    tiled = TiledDetector(base, (STOP_LINE,))
    many = tiled.detect_many(frames)
    assert base.many_calls == 1 and len(base.seen) == 6  # two frames, two tiles each, one call
    assert many == [tiled.detect(f) for f in frames]
    assert [len(d) for d in many] == [1, 2]


def test_input_size_comes_from_the_detector_and_min_gain_decides():
    class Plain:
        def detect(self, image):  # type: ignore[no-untyped-def]
            return []

    assert TiledDetector(Plain(), (STOP_LINE,)).input_size == (640, 640)
    big = TiledDetector(SmallMiss(), (STOP_LINE,), input_size=(1920, 1920))
    assert big.tiles_for(1920, 1080) == []  # a detector that takes the whole frame: no gain
    # a tile of the frame's own size gains nothing either
    assert gain(Box(0, 0, 1920, 1080), 1920, 1080, INPUT) < MIN_GAIN
    assert untiled(big) is big.detector and untiled(big.detector) is big.detector


CAMERA = """\
id: cam-tiles
zones:
  stop_line: {points: [[600, 700], [1300, 720]], approach_side: [900, 600]}
  crossing: {polygon: [[600, 720], [1300, 740], [1300, 800], [600, 780]], direction: [0, 1]}
detect_tiles: [stop_line, crossing]
rules:
  wrong_way: {lanes: [crossing]}
"""


def test_camera_file_names_the_zones_and_the_pipeline_detects_their_tiles(tmp_path: Path):
    from etle.camera.config import CameraConfigError, load_camera
    from etle.runner import RunOptions, build_pipeline

    path = tmp_path / "cam.yaml"
    path.write_text(CAMERA, encoding="utf-8")
    cam = load_camera(path)
    assert cam.detect_tiles == ("stop_line", "crossing")
    base = SmallMiss()
    options = RunOptions(read_plates=False, db_url=f"sqlite:///{tmp_path / 't.db'}", out_dir=tmp_path / "out")
    pipeline, _ = build_pipeline(cam, options, detector=base)
    assert isinstance(pipeline.detector, TiledDetector) and untiled(pipeline.detector) is base
    # the crossing's area overlaps the line's: one area around both, one row of two tiles
    assert [(t.y1, t.y2) for t in pipeline.detector.tiles_for(1920, 1080)] == [(592.0, 908.0)] * 2

    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(CAMERA).replace("[stop_line, crossing]", "[stop_line, zebra]"), encoding="utf-8")
    with pytest.raises(CameraConfigError, match=r"bad.yaml:\d+: detect_tiles.1: .*no zone named 'zebra'"):
        load_camera(bad)


@pytest.mark.slow
def test_real_detector_on_a_large_frame_keeps_the_frames_detections_and_adds_tile_ones_inside_tiles():
    """Integration with the real float vehicle detector (its boxes do not depend on the CPU, the
    int8 one's do: :func:`etle.config.run.fast_detector`): the bundled clip's frame enlarged to
    1920 x 1080 (the detector shrinks it 3 times) with a tile over the lot's aisle.  Whatever
    the tile adds lies inside it; nothing the full frame found is lost or moved."""
    from conftest import REPO, require_model

    from etle.detect.detector import load_detector

    require_model("vehicle-detector")
    cap = cv2.VideoCapture(str(REPO / "sample_videos" / "intel_car_detection_parking.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 200)
    ok, frame = cap.read()
    cap.release()
    assert ok
    big = cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    base = load_detector("vehicle-detector")
    aisle = ((800.0, 300.0), (1200.0, 300.0), (1200.0, 800.0), (800.0, 800.0))
    tiled = TiledDetector(base, (aisle,))
    tiles = tiled.tiles_for(1920, 1080)
    full = base.detect(big)
    got = tiled.detect(big)
    assert tiled.tiles_run == len(tiles) >= 1 and full
    assert got[: len(full)] == full
    for d in got[len(full):]:
        assert any(t.x1 <= d.box.x1 and d.box.x2 <= t.x2 and t.y1 <= d.box.y1 and d.box.y2 <= t.y2 for t in tiles)
        assert not any(f.label == d.label and f.box.iou(d.box) >= 0.5 for f in full)
