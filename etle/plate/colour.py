"""Plate background colour from a plate crop: white, black, yellow, red, green (and, tentatively,
white with a blue strip).

Indonesian plates tell the vehicle's category by colour (see ``data/categories_id.yaml``, loaded
by :func:`etle.plate.tnkb.category_of`): white (black text) or the older black (white text) for
private vehicles, yellow for public transport, red for government, green for free-trade zones,
a blue strip on white for electric vehicles.

:func:`classify_colour` works on robust statistics of the *background* pixels, never the
characters:

1. the crop's outer ``margin`` is dropped (the plate stage pads the detector's box, so the rim
   may show the vehicle body);
2. Otsu's threshold on the grey image splits the rest into a bright and a dark class; the larger
   class is the background (characters cover well under half of a plate), the other the text;
3. over the background pixels: the share that is chromatic (saturation and value high enough),
   the median saturation and value, and the mode of a smoothed circular hue histogram of the
   chromatic pixels;
4. a chromatic background is named by its hue (red / yellow / green; orange counts as yellow,
   which sodium lamps and dusk turn yellow plates into); an achromatic one by the polarity of
   text and background -- dark text on a lighter background is a white plate, light text on a
   darker background a black plate (absolute brightness only decides when there is no contrast);
   a blue, cyan or magenta background is no plate colour but a colour cast (white balance, night
   lighting) and is decided by polarity as well;
5. a white plate whose top or bottom holds a band of strongly blue rows (10-40 % of the height,
   spanning most of the width, with no blue at the sides around it, so a blue car body behind a
   loosely cropped plate does not count) is ``white_blue``.  This step has been checked on
   synthetic crops only; no labelled EV plate photo was available.

A grey image (monochrome or infrared camera: every pixel has B = G = R) gives ``None``: there a
yellow plate looks white.  All thresholds are OpenCV HSV units (H 0-179, S and V 0-255).  Pure and cheap (one HSV
conversion of a plate-sized crop).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["COLOURS", "ColourResult", "classify_colour"]

COLOURS = ("white", "black", "yellow", "red", "green", "white_blue")
"""What :func:`classify_colour` may return (besides ``None``)."""

_CHROMA_S = 70  # a background pixel with saturation >= this (and value >= _CHROMA_V) is chromatic
_CHROMA_V = 50
_CHROMATIC_SHARE = 0.5  # share of chromatic background pixels that makes a coloured plate
_MIN_CONTRAST = 25.0  # grey levels between text and background below which polarity is unknown
# hue ranges (inclusive, OpenCV H 0-179) of the plate colours; red wraps around 0
_HUES = (("red", 0, 9), ("yellow", 10, 37), ("green", 38, 88), ("blue", 89, 132), ("red", 165, 179))
_BLUE = (95, 130)  # hue of the EV strip
_BLUE_S = 90


@dataclass(frozen=True, slots=True)
class ColourResult:
    """The background colour of a plate crop (``None`` when undecided) and its evidence."""

    colour: str | None
    confidence: float = 0.0
    hue: float | None = None  # mode hue of the chromatic background pixels
    saturation: float = 0.0  # median over the background
    value: float = 0.0  # median over the background
    chromatic_share: float = 0.0
    contrast: float = 0.0  # mean grey of background minus mean grey of text (>0: dark text)


def _hue_name(h: float) -> str | None:
    for name, lo, hi in _HUES:
        if lo <= h <= hi:
            return name
    return None


def _hue_mode(hues: np.ndarray) -> float:
    hist = np.bincount(hues.astype(np.int64).clip(0, 179), minlength=180).astype(np.float64)
    # circular smoothing over +-4 bins
    k = np.ones(9)
    smooth = np.convolve(np.concatenate([hist[-4:], hist, hist[:4]]), k, mode="valid")
    return float(np.argmax(smooth))


def _blue_strip(hsv: np.ndarray) -> bool:
    """A band of strongly blue rows at the top or bottom of a (whole, untrimmed) crop."""
    h, w = hsv.shape[:2]
    if h < 10 or w < 10:
        return False
    blue = (hsv[..., 0] >= _BLUE[0]) & (hsv[..., 0] <= _BLUE[1]) & (hsv[..., 1] >= _BLUE_S) & (hsv[..., 2] >= _CHROMA_V)
    side = max(1, int(round(w * 0.08)))
    inner = blue[:, side : w - side]
    rows = inner.mean(axis=1) >= 0.6
    if not rows.any():
        return False
    idx = np.flatnonzero(rows)
    # the longest run of blue rows
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    k = int(np.argmax(ends - starts))
    top, bottom = int(starts[k]), int(ends[k]) + 1
    band = bottom - top
    if not (0.10 * h <= band <= 0.40 * h):
        return False
    if top > 0.45 * h and bottom < 0.55 * h:  # a band in the middle crosses the characters
        return False
    if top > 0.25 * h and bottom < 0.75 * h:
        return False
    # the rest of the plate is not blue (else it is a blue cast over the whole crop) ...
    outside = np.ones(h, dtype=bool)
    outside[top:bottom] = False
    if inner[outside].size and inner[outside].mean() > 0.15:
        return False
    # ... and a car body would be blue around the plate too: the side columns outside the band are not
    sides = np.concatenate([blue[outside, :side], blue[outside, w - side :]], axis=1)
    return not (sides.size and sides.mean() > 0.3)


def classify_colour(crop: np.ndarray | None, *, margin: float = 0.08, ev_strip: bool = True) -> ColourResult:
    """The background colour of a plate crop (BGR; see the module docstring)."""
    if crop is None or crop.ndim != 3 or crop.shape[2] != 3 or min(crop.shape[:2]) < 6:
        return ColourResult(None)
    img = crop if crop.dtype == np.uint8 else np.clip(crop, 0, 255).astype(np.uint8)
    if not (img.max(axis=2) != img.min(axis=2)).any():
        # a grey (infrared / monochrome) image: a yellow plate looks white there, so no colour
        return ColourResult(None)
    h, w = img.shape[:2]
    my, mx = int(round(h * margin)), int(round(w * margin))
    inner = img[my : h - my, mx : w - mx] if h - 2 * my >= 4 and w - 2 * mx >= 4 else img
    hsv_full = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hsv = hsv_full[my : h - my, mx : w - mx] if inner is not img else hsv_full
    grey = cv2.GaussianBlur(cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY), (3, 3), 0)
    t, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = grey > t
    n_bright = int(bright.sum())
    n = grey.size
    bg = bright if n_bright >= n - n_bright else ~bright
    if int(bg.sum()) == 0 or int(bg.sum()) == n:
        bg = np.ones_like(bright)
        contrast = 0.0
    else:
        contrast = float(grey[bg].mean() - grey[~bg].mean())
    px = hsv[bg]
    s_med = float(np.median(px[:, 1]))
    v_med = float(np.median(px[:, 2]))
    chroma = (px[:, 1] >= _CHROMA_S) & (px[:, 2] >= _CHROMA_V)
    share = float(chroma.mean())
    hue = _hue_mode(px[chroma, 0]) if chroma.any() else None
    cast = 0.0
    if share >= _CHROMATIC_SHARE and hue is not None:
        name = _hue_name(hue)
        if name in ("red", "yellow", "green"):
            conf = float(np.clip((share - _CHROMATIC_SHARE) / (1 - _CHROMATIC_SHARE) * 0.5 + 0.5, 0.0, 1.0))
            return ColourResult(name, round(conf, 3), hue, s_med, v_med, share, contrast)
        if name == "blue" and ev_strip and _blue_strip(hsv_full):
            # a white plate whose blue strip and text together outweigh its white
            return ColourResult("white_blue", 0.5, hue, s_med, v_med, share, contrast)
        # no plate has a blue, cyan or magenta background: a colour cast (night lighting, white
        # balance) over a white or black plate, told apart by the polarity below
        cast = share
    if abs(contrast) >= _MIN_CONTRAST:
        name = "white" if contrast > 0 else "black"
        conf = float(np.clip(abs(contrast) / 100.0, 0.3, 1.0)) * (1.0 - 0.5 * max(share, cast))
    else:
        name = "white" if v_med >= 128 else "black"
        conf = 0.2
    if name == "white" and ev_strip and _blue_strip(hsv_full):
        name = "white_blue"
    return ColourResult(name, round(conf, 3), hue, s_med, v_med, share, contrast)
