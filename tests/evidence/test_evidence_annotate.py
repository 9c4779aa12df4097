"""Annotation functions return new images and never touch the frame."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from etle.evidence import annotate
from etle.types import Box, Frame, TrackedObject, Violation

H, W = 240, 320


def make_frame() -> Frame:
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[100:150, 100:180] = 90
    return Frame(source="s.mp4", index=7, pts=0.7, image=image)


OBJECTS = (
    TrackedObject(track_id=1, box=Box(100, 100, 180, 150), label="car", confidence=0.9),
    TrackedObject(track_id=2, box=Box(10, 10, 40, 60), label="motorcycle", confidence=0.8),
    TrackedObject(track_id=3, box=Box(200, 150, 260, 230), label="person", confidence=0.7),
)
VIOLATION = Violation(
    rule="red_light",
    track_id=1,
    label="car",
    frame_index=7,
    pts=0.7,
    timestamp=datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc),
    box=Box(100, 100, 180, 150),
    related_track_ids=(3,),
)


def test_overview_is_new_and_leaves_frame_untouched() -> None:
    frame = make_frame()
    before = frame.image.copy()
    out = annotate.overview(frame, OBJECTS, VIOLATION, "Simpang Pulai (cam1)", "2026-11-28 10:00:00 WIB",
                            extra_lines=["plate BH1234AB"])
    assert out is not frame.image and out.flags.writeable
    assert not np.shares_memory(out, frame.image)
    np.testing.assert_array_equal(frame.image, before)
    assert out.shape[1] == W and out.shape[0] > H  # caption panel below the scene
    # the violator's box edge is drawn in the strong colour
    assert tuple(out[100, 140]) == annotate.VIOLATOR_COLOR
    assert out[H:].any()  # caption text drawn


def test_overview_falls_back_to_violation_box_and_handles_unicode() -> None:
    frame = make_frame()
    out = annotate.overview(frame, (), VIOLATION, "Jalan Sultan Thaha — é", "")
    assert tuple(out[100, 140]) == annotate.VIOLATOR_COLOR


def test_zones_polylines_and_callable() -> None:
    frame = make_frame()
    out = annotate.overview(frame, OBJECTS, VIOLATION, "cam", "t", zones=[[(0, 200), (319, 200)]])
    column = out[195:206, 50].astype(int)
    assert ((column[:, 0] > 200) & (column[:, 1] > 200) & (column[:, 2] < 50)).any()

    def draw(image: np.ndarray) -> np.ndarray:
        image[:5, :5] = (1, 2, 3)
        return image

    out = annotate.overview(frame, OBJECTS, VIOLATION, "cam", "t", zones=draw)
    assert tuple(out[0, 0]) == (1, 2, 3)
    assert not frame.image[:5, :5].any()

    with pytest.raises(ValueError, match="draw_zones"):
        annotate.overview(frame, OBJECTS, VIOLATION, "cam", "t", zones=lambda im: im[:10])


def test_closeup_crops_with_margin_and_clips() -> None:
    frame = make_frame()
    crop = annotate.closeup(frame, Box(100, 100, 180, 150), margin=0.2)
    assert crop.shape == (70, 112, 3)
    np.testing.assert_array_equal(crop, frame.image[90:160, 84:196])
    assert crop.flags.writeable and not np.shares_memory(crop, frame.image)
    edge = annotate.closeup(frame, Box(300, 220, 330, 250), margin=0.5)
    assert edge.shape[0] >= 2 and edge.shape[1] >= 2
    outside = annotate.closeup(frame, Box(400, 400, 410, 410), margin=0.0)
    assert outside.shape[:2] == (2, 2)
    with pytest.raises(ValueError):
        annotate.closeup(frame, Box(0, 0, 1, 1), margin=-1)


def test_draw_tracks_copy() -> None:
    frame = make_frame()
    out = annotate.draw_tracks(frame.image, OBJECTS, 2, label="no_helmet")
    assert not np.shares_memory(out, frame.image)
    assert tuple(out[35, 10]) == annotate.VIOLATOR_COLOR
    assert not frame.image[35, 10].any()


def test_ascii_text() -> None:
    assert annotate.ascii_text("Jalan Gatot Subroto — café") == "Jalan Gatot Subroto ? cafe"


def test_signal_strip_shows_each_state_where_it_was_and_marks_the_violation() -> None:
    timeline = {"source": "roi", "segments": [[0.0, 1.0, "green"], [1.0, 2.0, "yellow"], [2.0, 4.0, "red"]]}
    strip = annotate.signal_strip(400, timeline, at_pts=3.0)
    assert strip is not None and strip.shape == (14, 400, 3)
    assert tuple(strip[5, 50]) == annotate.SIGNAL_COLORS["green"]  # 0.5 s of 0..4 s
    assert tuple(strip[5, 150]) == annotate.SIGNAL_COLORS["yellow"]  # 1.5 s
    assert tuple(strip[5, 250]) == annotate.SIGNAL_COLORS["red"]  # 2.5 s
    assert tuple(strip[5, 299]) == (255, 255, 255)  # the violation at 3.0 s
    assert annotate.signal_strip(400, {"segments": []}, 1.0) is None


def test_overview_draws_the_signal_timeline_of_the_violation() -> None:
    from dataclasses import replace

    timeline = {"source": "roi", "segments": [[0.0, 0.5, "yellow"], [0.5, 1.2, "red"]]}
    v = replace(VIOLATION, details={"signal_timeline": timeline})
    plain = annotate.overview(make_frame(), OBJECTS, VIOLATION, "cam")
    with_strip = annotate.overview(make_frame(), OBJECTS, v, "cam")
    assert with_strip.shape[0] > plain.shape[0]  # the strip (and its caption line) added
    row = with_strip[H + 7]  # inside the strip right under the scene
    assert tuple(row[10]) == annotate.SIGNAL_COLORS["yellow"] and tuple(row[300]) == annotate.SIGNAL_COLORS["red"]


def test_signal_head_band_shows_the_lamp_enlarged() -> None:
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[10:40, 300:312] = (40, 40, 40)  # a 12 x 30 head...
    image[12:20, 302:310] = (0, 0, 250)  # ...with its red lamp lit at the top
    band = annotate.signal_head(image, (300, 10, 312, 40), W)
    assert band is not None and band.shape[1] == W
    k = (band.shape[0] - 8) / 30  # enlarged to a quarter of the frame's height (60 px): 2x
    assert k == pytest.approx(2.0)
    assert tuple(band[4 + 6, 4 + 12]) == (0, 0, 250)  # the lamp, at 2x (row 3, col 6 of the head)
    assert tuple(band[4 + 40, 4 + 12]) == (40, 40, 40)  # the dark housing under it
    assert annotate.signal_head(image, (400, 10, 420, 40), W) is None  # outside the frame
    assert (image[12:20, 302:310] == (0, 0, 250)).all()  # the frame is left alone


def test_overview_shows_the_signal_head_of_a_signal_judged_violation() -> None:
    from dataclasses import replace

    image = np.array(make_frame().image)
    image[10:40, 300:312] = (0, 0, 250)
    frame = Frame(source="s.mp4", index=7, pts=0.7, image=image)
    timeline = {"source": "roi", "segments": [[0.0, 1.2, "red"]]}
    with_timeline = annotate.overview(frame, OBJECTS, replace(VIOLATION, details={"signal_timeline": timeline}), "cam")
    v = replace(VIOLATION, details={"signal_timeline": timeline, "signal_region": [300, 10, 312, 40]})
    with_head = annotate.overview(frame, OBJECTS, v, "cam")
    assert with_head.shape[0] == with_timeline.shape[0] + 60 + 8  # the band: the head 2x, 4 px above and below
    band = with_head[H + 14 : H + 14 + 68]  # under the scene and its 14-px signal strip
    assert tuple(band[30, 10]) == (0, 0, 250)
