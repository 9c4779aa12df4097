"""Find the text lines of a plate crop by horizontal projection.

Indonesian plates carry two lines: the registration, and under it a much smaller validity line
``MM.YY``.  A line recogniser fed the whole crop may glue both together, so the reader first
splits the crop into horizontal bands.  The method is classical and hand-written (a dozen lines,
no model): binarise with Otsu, count black/white transitions per row -- rows that cross
characters have many, background and the plate frame have few, whatever the plate's polarity --
smooth that profile, and take the runs above a fraction of its peak as bands.  The registration
is the tallest band; the validity line is the next band below it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Band:
    """Rows ``[top, bottom)`` of a crop."""

    top: int
    bottom: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def grow(self, fraction: float, limit: int) -> Band:
        pad = round(self.height * fraction)
        return Band(max(0, self.top - pad), min(limit, self.bottom + pad))


@dataclass(frozen=True, slots=True)
class PlateLines:
    """The bands found in a crop: the registration line and, when seen, the validity line."""

    main: Band
    validity: Band | None = None


def _to_gray(crop: np.ndarray) -> np.ndarray:
    if crop.ndim == 3:
        return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return crop


def transition_profile(crop: np.ndarray) -> np.ndarray:
    """Per-row count of binary transitions, divided by the width (0..1)."""
    gray = _to_gray(crop)
    h, w = gray.shape[:2]
    if h < 2 or w < 2:
        return np.zeros(h, dtype=np.float64)
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    margin = max(1, w // 50)  # ignore the leftmost/rightmost columns (frame edges)
    core = binary[:, margin : w - margin].astype(np.int8)
    trans = np.abs(np.diff(core, axis=1)).sum(axis=1).astype(np.float64)
    return trans / float(w)


def _runs(mask: np.ndarray) -> list[Band]:
    out: list[Band] = []
    start = None
    for i, on in enumerate(mask.tolist()):
        if on and start is None:
            start = i
        elif not on and start is not None:
            out.append(Band(start, i))
            start = None
    if start is not None:
        out.append(Band(start, len(mask)))
    return out


def find_lines(crop: np.ndarray, threshold: float = 0.25, pad: float = 0.12) -> PlateLines:
    """Split a plate crop into its registration band and (optional) validity band.

    Falls back to the whole crop when no band stands out.
    """
    h = int(crop.shape[0])
    whole = PlateLines(Band(0, h))
    prof = transition_profile(crop)
    if h < 8 or prof.max() <= 0:
        return whole
    k = max(1, h // 40) * 2 + 1
    smooth = np.convolve(prof, np.ones(k) / k, mode="same")
    bands = [b for b in _runs(smooth >= threshold * smooth.max()) if b.height >= max(2, h // 20)]
    if not bands:
        return whole
    main = max(bands, key=lambda b: (b.height, -b.top))
    below = [b for b in bands if b.top >= main.bottom and b.height < main.height]
    validity = below[0] if below else None
    main_grown = main.grow(pad, h)
    if validity is not None:
        # do not let the registration band eat into the validity line
        main_grown = Band(main_grown.top, min(main_grown.bottom, validity.top))
        validity = validity.grow(pad * 2, h)
    return PlateLines(main_grown, validity)


def validity_crop(crop: np.ndarray, band: Band, threshold: float = 0.25) -> np.ndarray | None:
    """The validity band cut to the columns that hold its text (it is short and centred).

    Uses the per-column transition count inside the band; falls back to the central half.
    """
    w = crop.shape[1]
    rows = crop[band.top : band.bottom]
    if rows.shape[0] < 3 or w < 8:
        return None
    gray = _to_gray(rows)
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    prof = np.abs(np.diff(binary.astype(np.int8), axis=0)).sum(axis=0).astype(np.float64)
    k = max(1, w // 60) * 2 + 1
    smooth = np.convolve(prof, np.ones(k) / k, mode="same")
    lo, hi = w // 4, w - w // 4
    if smooth.max() > 0:
        on = _runs(smooth >= threshold * smooth.max())
        # the runs that reach into the central half: frame edges and bolts sit at the sides
        central = [r for r in on if r.bottom > w * 0.3 and r.top < w * 0.7]
        if central:
            lo, hi = min(r.top for r in central), max(r.bottom for r in central)
    pad = max(2, band.height // 2)
    lo, hi = max(0, lo - pad), min(w, hi + pad)
    if hi - lo < 4:
        return None
    return rows[:, lo:hi]


def _rotate(img: np.ndarray, angle: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def skew_angle(crop: np.ndarray, max_angle: float = 15.0, step: float = 2.5, work_width: int = 160) -> float:
    """The rotation (degrees, OpenCV sign) that makes the plate's text lines horizontal.

    Tries angles in ``[-max_angle, max_angle]`` on a small grey copy and keeps the one whose
    row-transition profile is the most peaked (sum of squares): text rows line up when level.
    """
    gray = _to_gray(crop)
    h, w = gray.shape[:2]
    if h < 8 or w < 8:
        return 0.0
    scale = work_width / float(w)
    small = cv2.resize(gray, (work_width, max(8, round(h * scale))), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    best, best_score = 0.0, -1.0
    for angle in np.arange(-max_angle, max_angle + 1e-6, step):
        prof = transition_profile(_rotate(small, float(angle)))
        score = float((prof**2).sum())
        # prefer no rotation unless another angle is clearly better
        if angle == 0:
            score *= 1.05
        if score > best_score:
            best, best_score = float(angle), score
    return best


def deskew(crop: np.ndarray, max_angle: float = 15.0, step: float = 2.5) -> tuple[np.ndarray, float]:
    """A levelled copy of the crop and the angle used (the input when no rotation helps)."""
    angle = skew_angle(crop, max_angle, step)
    if angle == 0.0:
        return crop, 0.0
    return _rotate(crop, angle), angle
