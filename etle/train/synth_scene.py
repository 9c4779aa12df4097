"""Synthetic plate-detector training images: TNKB plates rendered by :mod:`etle.train.synth`
composited into real photographs.

The offline plate detector (``plate-detector``, pyplatex's YOLOv8n) was trained on car photos and
misses the small, tilted plates of motorcycles seen by a roadside camera (the Cilacap clip: two of
three plates at a stop line never found, whatever the input size).  No openly licensed set of such
plates with boxes exists here, so this module makes one: :func:`compose` pastes 0-2 rendered
plates (old black and new white schemes, motorcycle and car proportions) into a crop of a real
photo, with a tilt, a perspective, the light and colour cast of the photo around it, then shrinks
the whole crop to the size a vehicle box has in a 640x360 frame and degrades it (blur, noise,
JPEG).  The detector is then fine-tuned on these together with the photos' own plates labelled by
the original detector (``scripts/train_plate_detector.py``).

Written by hand: compositing with a label is a few lines of OpenCV; no library does it for this
plate grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from etle.train.synth import find_fonts, jpeg, render_plate


@dataclass(frozen=True)
class Scene:
    """A training image and its plate boxes (x1, y1, x2, y2 in its pixels)."""

    image: np.ndarray
    boxes: tuple[tuple[float, float, float, float], ...]


def _crop(rng: np.random.Generator, photo: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """A random crop of ``photo`` shaped like a vehicle box (aspect 0.55-1.6); returns it and its origin."""
    h, w = photo.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    aspect = rng.uniform(0.55, 1.6)  # width / height
    cw = min(w, max(32, round(np.sqrt(scale * w * h * aspect))))
    ch = min(h, max(32, round(cw / aspect)))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return photo[y0 : y0 + ch, x0 : x0 + cw].copy(), (x0, y0)


def paste_plate(
    rng: np.random.Generator, image: np.ndarray, plate: np.ndarray
) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """Warp ``plate`` into ``image`` (a new array) at a random place, size and tilt; returns the
    image and the plate's box, or None when it does not fit."""
    ih, iw = image.shape[:2]
    ph, pw = plate.shape[:2]
    tw = rng.uniform(0.14, 0.45) * iw
    aspect = pw / ph * (rng.uniform(0.75, 0.95) if rng.random() < 0.5 else 1.0)  # motorcycle plates are squarer
    th = tw / aspect
    if tw < 12 or th < 5 or th > ih * 0.6:
        return None
    cx = rng.uniform(tw / 2, iw - tw / 2)
    cy = rng.uniform(max(th / 2, ih * 0.3), ih - th / 2)
    corners = np.float32([[-tw / 2, -th / 2], [tw / 2, -th / 2], [tw / 2, th / 2], [-tw / 2, th / 2]])
    corners += rng.normal(0, 0.05, (4, 2)).astype(np.float32) * np.float32([tw, th])  # perspective
    ang = np.deg2rad(float(np.clip(rng.normal(0, 9.0), -25, 25)))
    c, s = np.cos(ang), np.sin(ang)
    corners = corners @ np.float32([[c, s], [-s, c]]) + np.float32([cx, cy])
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    hm = cv2.getPerspectiveTransform(src, corners.astype(np.float32))
    f = min(1.0, 2.0 * tw / pw)  # pre-shrink so that the warp does not alias
    small = cv2.resize(plate, (max(2, round(pw * f)), max(2, round(ph * f))), interpolation=cv2.INTER_AREA) if f < 1 else plate
    hm = hm @ np.diag([1 / f, 1 / f, 1.0]) if f < 1 else hm
    warped = cv2.warpPerspective(small.astype(np.float32), hm, (iw, ih), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones(small.shape[:2], np.float32), hm, (iw, ih), flags=cv2.INTER_LINEAR)
    x1, y1 = corners.min(axis=0)
    x2, y2 = corners.max(axis=0)
    x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(iw), x2), min(float(ih), y2)
    if x2 - x1 < 8 or y2 - y1 < 4:
        return None
    # the light of the scene: the plate takes on the photo's colour cast and brightness
    region = image[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1].reshape(-1, 3).astype(np.float32)
    cast = region.mean(axis=0) if len(region) else np.full(3, 128, np.float32)
    a = rng.uniform(0.0, 0.45)
    warped = warped * (1 - a) + cast[None, None, :] * a
    warped *= rng.uniform(0.6, 1.25)
    out = image.astype(np.float32) * (1 - mask[..., None]) + warped * mask[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), (float(x1), float(y1), float(x2), float(y2))


def _degrade(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    if rng.random() < 0.5:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), rng.uniform(0.4, 1.2))
    if rng.random() < 0.4:
        img = np.clip(img.astype(np.float32) + rng.normal(0, rng.uniform(2, 9), img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        img = jpeg(img, int(rng.integers(30, 92)))
    return img


def compose(
    rng: np.random.Generator,
    photo: np.ndarray,
    real_boxes: tuple[tuple[float, float, float, float], ...] = (),
    fonts: tuple[Path, ...] | None = None,
    out_long_side: tuple[int, int] = (90, 320),
) -> Scene:
    """One training image: a crop of ``photo`` with 0-2 rendered plates pasted in, shrunk to a
    vehicle-box size and degraded.  ``real_boxes`` are plates already in ``photo`` (labelled by
    another detector); those fully inside the crop and not covered keep their label."""
    fonts = fonts or find_fonts()
    crop, (ox, oy) = _crop(rng, photo)
    ch, cw = crop.shape[:2]
    boxes: list[tuple[float, float, float, float]] = []
    for bx1, by1, bx2, by2 in real_boxes:
        x1, y1, x2, y2 = bx1 - ox, by1 - oy, bx2 - ox, by2 - oy
        if x1 >= 0 and y1 >= 0 and x2 <= cw and y2 <= ch:
            boxes.append((x1, y1, x2, y2))
    n = int(rng.choice([0, 1, 1, 1, 1, 1, 2, 2]))
    for _ in range(n):
        plate, _, _, _ = render_plate(rng, fonts=fonts)
        placed = paste_plate(rng, crop, plate)
        if placed is None:
            continue
        new, box = placed
        # a pasted plate covering a real one hides it: drop the hidden label
        boxes = [b for b in boxes if _overlap(b, box) < 0.3]
        crop = new
        boxes.append(box)
    long_side = int(rng.integers(out_long_side[0], out_long_side[1] + 1))
    f = long_side / max(ch, cw)
    if f < 1:
        crop = cv2.resize(crop, (max(8, round(cw * f)), max(8, round(ch * f))), interpolation=cv2.INTER_AREA)
        boxes = [(x1 * f, y1 * f, x2 * f, y2 * f) for x1, y1, x2, y2 in boxes]
    h, w = crop.shape[:2]
    boxes = [(max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)) for x1, y1, x2, y2 in boxes]
    return Scene(_degrade(rng, crop), tuple(boxes))


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over the area of ``a``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max(1e-6, (a[2] - a[0]) * (a[3] - a[1]))
    return iw * ih / area


def to_yolo(scene: Scene) -> str:
    """The scene's boxes as YOLO label lines (class 0, normalised centre and size)."""
    h, w = scene.image.shape[:2]
    lines = []
    for x1, y1, x2, y2 in scene.boxes:
        lines.append(f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")
