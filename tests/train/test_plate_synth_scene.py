"""Plate-detector training scenes (etle.train.synth_scene): labels match what was pasted."""

from __future__ import annotations

import numpy as np
import pytest

from etle.train import synth
from etle.train.synth_scene import Scene, compose, paste_plate, to_yolo

try:
    FONTS = synth.find_fonts()
except synth.FontNotFoundError:  # pragma: no cover - Debian images carry DejaVu
    FONTS = ()

pytestmark = pytest.mark.skipif(not FONTS, reason="no bold sans font on this system")


def _photo(seed: int, h: int = 300, w: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 20 + 1, w // 20 + 1, 3), dtype=np.uint8)
    return np.kron(base, np.ones((20, 20, 1), np.uint8))[:h, :w].copy()


def test_paste_changes_pixels_only_inside_the_box() -> None:
    rng = np.random.default_rng(0)
    photo = np.full((200, 300, 3), 90, np.uint8)
    plate, _, _, _ = synth.render_plate(rng, fonts=FONTS)
    for _ in range(20):
        placed = paste_plate(rng, photo, plate)
        if placed is None:
            continue
        out, (x1, y1, x2, y2) = placed
        assert out.shape == photo.shape and out is not photo
        changed = np.argwhere(np.any(out != photo, axis=2))
        assert len(changed) > 0.3 * (x2 - x1) * (y2 - y1)  # the plate is there
        ys, xs = changed[:, 0], changed[:, 1]
        assert xs.min() >= int(x1) - 1 and xs.max() <= x2 + 1
        assert ys.min() >= int(y1) - 1 and ys.max() <= y2 + 1
    assert np.all(photo == 90)  # the input is not touched


def test_scenes_are_deterministic_and_boxes_lie_inside() -> None:
    photo = _photo(1)
    a = compose(np.random.default_rng(5), photo, fonts=FONTS)
    b = compose(np.random.default_rng(5), photo, fonts=FONTS)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes
    rng = np.random.default_rng(9)
    counts = []
    for _ in range(40):
        s = compose(rng, photo, fonts=FONTS)
        h, w = s.image.shape[:2]
        assert max(h, w) <= 320
        for x1, y1, x2, y2 in s.boxes:
            assert 0 <= x1 < x2 <= w + 1e-6 and 0 <= y1 < y2 <= h + 1e-6
        counts.append(len(s.boxes))
    assert 0 in counts and max(counts) >= 1  # negatives and positives both occur


def test_real_plates_inside_the_crop_keep_their_label() -> None:
    photo = _photo(2, 200, 200)
    real = ((95.0, 95.0, 105.0, 105.0),)  # a square "plate" in the middle; pasted plates are wide
    rng = np.random.default_rng(3)
    kept = 0
    for _ in range(60):
        s = compose(rng, photo, real, fonts=FONTS)
        kept += any(0.8 < (b[2] - b[0]) / (b[3] - b[1]) < 1.25 for b in s.boxes)
    assert kept > 0
    # and without the real plate no square box appears
    rng = np.random.default_rng(3)
    for _ in range(60):
        s = compose(rng, photo, (), fonts=FONTS)
        assert not any(0.8 < (b[2] - b[0]) / (b[3] - b[1]) < 1.25 for b in s.boxes)


def test_yolo_lines_are_normalised() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    text = to_yolo(Scene(img, ((20.0, 10.0, 60.0, 30.0),)))
    cls, cx, cy, bw, bh = text.split()
    assert cls == "0"
    assert (float(cx), float(cy), float(bw), float(bh)) == pytest.approx((0.2, 0.2, 0.2, 0.2))
    assert to_yolo(Scene(img, ())) == ""
