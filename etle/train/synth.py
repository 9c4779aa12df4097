"""Synthetic Indonesian (TNKB) plate crops for training the plate recogniser.

:func:`render_sample` draws one plate crop as a street camera would see it, with its label:

* a random valid registration from the TNKB grammar (:mod:`etle.plate.tnkb`): a region prefix
  from the real region table, 1-4 digits (no leading zero), 0-3 suffix letters;
* the small ``MM.YY`` validity line under it (the label never includes it);
* the colour schemes in use: the old black plate with white characters, the new white plate with
  black ones, and now and then yellow, red or green plates;
* condensed bold sans fonts found on the system at run time (:func:`find_fonts`), squeezed by a
  random factor, with the groups spaced or justified like the real plates;
* a raised rim, rivets and dirt dots; then heavy degradations so that a model trained on them
  reads real photos: perspective and rotation, loose and tight crops (sometimes cutting the
  edges), low resolution scaled back up, gaussian or motion blur, noise, JPEG, brightness /
  contrast / gamma, shadows, glare and colour casts.

:func:`render_validity` draws the validity line alone, cut as :func:`etle.plate.lines.validity_crop`
cuts it at run time, labelled with its four digits ``MMYY``.

Everything is drawn with NumPy, OpenCV and PIL from one ``numpy.random.Generator``, so a seed
gives the same samples.  Glyphs are rasterised once per font and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from etle.plate.tnkb import regions

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
FONT_NAMES = (
    "DejaVuSansCondensed-Bold.ttf",
    "LiberationSansNarrow-Bold.ttf",
    "LiberationSans-Bold.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "LiberationSansNarrow-Regular.ttf",
    "FreeSansBold.ttf",
    "Arial_Bold.ttf",
    "arialbd.ttf",
)
"""Sans fonts tried (bold first: the plate font is between regular and bold); any that exist are used."""

GLYPH_PX = 64
"""Height at which glyphs are rasterised before scaling."""

PLATE_H = 96
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"


class FontNotFoundError(RuntimeError):
    """No usable bold sans font on this system."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One rendered crop (BGR uint8) and its label (registration, or ``MMYY`` for a validity crop)."""

    image: np.ndarray
    text: str
    validity: str  # "MM.YY" drawn on the plate


@lru_cache(maxsize=4)
def find_fonts(dirs: tuple[Path, ...] = FONT_DIRS) -> tuple[Path, ...]:
    """The bold sans font files of :data:`FONT_NAMES` found under ``dirs``."""
    found: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for name in FONT_NAMES:
            if name in found:
                continue
            hits = sorted(d.rglob(name))
            if hits:
                found[name] = hits[0]
    out = tuple(found[n] for n in FONT_NAMES if n in found)
    if not out:
        raise FontNotFoundError(
            f"no bold sans font found under {', '.join(str(d) for d in dirs)} (looked for {', '.join(FONT_NAMES)}); "
            "install fonts-dejavu-core or fonts-liberation"
        )
    return out


@lru_cache(maxsize=None)
def _glyphs(font_path: str, stroke: int) -> dict[str, np.ndarray]:
    """Tight alpha masks (float32 0..1, height GLYPH_PX) of 0-9, A-Z and '.' for one font."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, int(GLYPH_PX * 1.3))
    # cap height from 'H' so that every glyph shares one baseline and height
    box_h = font.getbbox("H", stroke_width=stroke)
    top, bottom = box_h[1], box_h[3]
    out: dict[str, np.ndarray] = {}
    for ch in DIGITS + LETTERS + ".":
        l, _, r, _ = font.getbbox(ch, stroke_width=stroke)
        w = max(2, r - l + 2)
        img = Image.new("L", (w, int(GLYPH_PX * 2)), 0)
        ImageDraw.Draw(img).text((-l + 1, 0), ch, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
        a = np.asarray(img, dtype=np.float32)[top:bottom] / 255.0
        a = cv2.resize(a, (max(2, round(w * GLYPH_PX / max(1, bottom - top))), GLYPH_PX), interpolation=cv2.INTER_AREA)
        out[ch] = a
    out["\u00b7"] = np.roll(out["."], -round(GLYPH_PX * 0.4), axis=0)  # the middle dot of "08·27"
    # the plate "1" is a bare stem with a flag: drop the foot serif some fonts draw
    one = out["1"]
    stem = cv2.dilate((one[GLYPH_PX // 2] > 0.5).astype(np.uint8)[None], np.ones((1, 3), np.uint8))[0]
    foot = GLYPH_PX - GLYPH_PX // 5
    one = one.copy()
    one[foot:] *= stem[None, :]
    cols = np.nonzero(one.max(axis=0) > 0.1)[0]
    out["1"] = one[:, cols.min() : cols.max() + 1] if len(cols) else one
    return out


# ----------------------------------------------------------------------------------------------
# labels


@lru_cache(maxsize=1)
def _prefixes() -> tuple[tuple[str, ...], np.ndarray]:
    ps = tuple(sorted(regions()))
    w = np.ones(len(ps))
    for i, p in enumerate(ps):  # the capital and the big Javanese regions are the most common
        if p == "B":
            w[i] = 12.0
        elif p in ("D", "F", "L", "AB", "AD", "H", "N", "W", "E", "T", "Z", "G", "K", "R", "S", "DK"):
            w[i] = 2.5
    return ps, w / w.sum()


def random_registration(rng: np.random.Generator) -> str:
    """A random registration valid under the TNKB grammar with a known region prefix."""
    ps, w = _prefixes()
    prefix = ps[rng.choice(len(ps), p=w)]
    n_digits = int(rng.choice([1, 2, 3, 4], p=[0.07, 0.12, 0.21, 0.60]))
    digits = str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, n_digits - 1))
    n_suffix = int(rng.choice([0, 1, 2, 3], p=[0.08, 0.17, 0.40, 0.35]))
    suffix = "".join(rng.choice(list(LETTERS), n_suffix))
    return prefix + digits + suffix


def random_validity(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(1, 13)):02d}.{int(rng.integers(15, 31)):02d}"


# ----------------------------------------------------------------------------------------------
# drawing


def _text_mask(glyphs: dict[str, np.ndarray], text: str, height: int, squeeze: float, gap: float) -> np.ndarray:
    """Alpha mask of ``text`` at ``height`` pixels, glyphs squeezed horizontally, ``gap`` x height apart."""
    parts = []
    g = max(0, round(gap * height))
    for i, ch in enumerate(text):
        a = glyphs[ch]
        w = max(1, round(a.shape[1] * height / GLYPH_PX * squeeze * (0.7 if ch in ".\u00b7" else 1.0)))
        parts.append(cv2.resize(a, (w, height), interpolation=cv2.INTER_AREA))
        if i < len(text) - 1:
            parts.append(np.zeros((height, g), np.float32))
    return np.hstack(parts) if parts else np.zeros((height, 1), np.float32)


def _paste(canvas: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Max-composite ``mask`` into the alpha ``canvas`` at (x, y), clipped to the canvas."""
    h, w = mask.shape
    H, W = canvas.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    sub = mask[y0 - y : y1 - y, x0 - x : x1 - x]
    np.maximum(canvas[y0:y1, x0:x1], sub, out=canvas[y0:y1, x0:x1])


_SCHEMES = (
    # (probability, plate BGR, text BGR)
    (0.60, (20, 20, 20), (235, 235, 235)),  # old: black plate, white characters
    (0.28, (235, 235, 235), (20, 20, 20)),  # new: white plate, black characters
    (0.05, (30, 200, 230), (20, 20, 20)),  # yellow (public transport)
    (0.04, (40, 40, 190), (235, 235, 235)),  # red (government)
    (0.03, (60, 150, 40), (20, 20, 20)),  # green (free-trade zone)
)


def _scheme(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    p = np.array([s[0] for s in _SCHEMES])
    s = _SCHEMES[rng.choice(len(_SCHEMES), p=p / p.sum())]
    jitter = rng.normal(0, 18, 3)
    bg = np.clip(np.array(s[1], np.float32) + jitter, 0, 255)
    fg = np.clip(np.array(s[2], np.float32) + rng.normal(0, 18, 3), 0, 255)
    if rng.random() < 0.15:  # worn black plates look grey, faded white characters
        bg = np.clip(bg + rng.uniform(20, 80), 0, 255) if bg.mean() < 128 else np.clip(bg - rng.uniform(20, 70), 0, 255)
    return bg, fg


def render_plate(
    rng: np.random.Generator, text: str | None = None, validity: str | None = None, fonts: tuple[Path, ...] | None = None
) -> tuple[np.ndarray, str, str, tuple[int, int, int, int]]:
    """A clean, frontal plate (BGR), its registration, its validity and the validity text box (x0, y0, x1, y1)."""
    fonts = fonts or find_fonts()
    text = text or random_registration(rng)
    validity = validity or random_validity(rng)
    font = str(fonts[rng.integers(len(fonts))])
    glyphs = _glyphs(font, int(rng.choice([0, 0, 0, 1])))
    H = PLATE_H
    W = round(H * rng.uniform(2.85, 3.4))
    m = re_split(text)
    char_h = round(H * rng.uniform(0.48, 0.62))
    squeeze = rng.uniform(0.45, 0.85)  # the plate font is narrow: W, G, D are about half as wide as tall
    gap = rng.uniform(0.02, 0.1)
    margin = round(W * rng.uniform(0.01, 0.06))
    top = round(H * rng.uniform(0.1, 0.2))
    masks = [_text_mask(glyphs, p, char_h, squeeze, gap) for p in m if p]
    alpha = np.zeros((H, W), np.float32)
    total = sum(k.shape[1] for k in masks)
    avail = W - 2 * margin
    if total > avail * 0.97:  # too wide: squeeze the whole line to fit
        f = avail * rng.uniform(0.85, 0.97) / total
        masks = [cv2.resize(k, (max(1, round(k.shape[1] * f)), char_h), interpolation=cv2.INTER_AREA) for k in masks]
        total = sum(k.shape[1] for k in masks)
    space = avail - total
    if rng.random() < 0.8 and len(masks) > 1:  # justified: prefix at the left, suffix at the right
        gaps = [space / (len(masks) - 1)] * (len(masks) - 1)
        x = margin
    else:  # centred, word gaps of 0.3-1.5 character heights
        wg = min(space / max(1, len(masks) - 1), char_h * rng.uniform(0.3, 1.5)) if len(masks) > 1 else 0
        gaps = [wg] * (len(masks) - 1)
        x = margin + (space - wg * (len(masks) - 1)) / 2
    bolt = rng.random() < 0.25  # some plates carry a bolt or a dot in front of a group
    for i, k in enumerate(masks):
        _paste(alpha, k, round(x), top)
        if bolt and 0 < i and gaps[i - 1] > char_h * 0.4 and rng.random() < 0.7:
            r = max(1, round(char_h * rng.uniform(0.05, 0.1)))
            cv2.circle(alpha, (round(x - gaps[i - 1] * rng.uniform(0.15, 0.4)), top + round(char_h * rng.uniform(0.3, 0.7))), r, 1.0, -1, cv2.LINE_AA)
        x += k.shape[1] + (gaps[i] if i < len(gaps) else 0)
    # validity line, centred under the registration
    vh = round(H * rng.uniform(0.12, 0.18))
    drawn = validity.replace(".", "\u00b7") if rng.random() < 0.7 else validity  # mostly a middle dot
    vm = _text_mask(glyphs, drawn, vh, rng.uniform(0.75, 1.05), rng.uniform(0.02, 0.08))
    vx = round((W - vm.shape[1]) / 2 + rng.normal(0, W * 0.02))
    vy = round(top + char_h + (H - top - char_h - vh) * rng.uniform(0.35, 0.75))
    vy = min(vy, H - vh - 2)
    if rng.random() > 0.05:
        _paste(alpha, vm, vx, vy)
        if rng.random() < 0.3:  # a thin line between the two lines
            ly = round((top + char_h + vy) / 2)
            cv2.line(alpha, (margin, ly), (W - margin, ly), 1.0, max(1, H // 80))
    vbox = (vx, vy, vx + vm.shape[1], vy + vh)
    # rim
    if rng.random() < 0.75:
        inset = round(H * rng.uniform(0.02, 0.06))
        cv2.rectangle(alpha, (inset, inset), (W - 1 - inset, H - 1 - inset), float(rng.uniform(0.6, 1.0)), max(1, round(H * rng.uniform(0.01, 0.035))))
    bg, fg = _scheme(rng)
    plate = bg[None, None, :] * (1 - alpha[..., None]) + fg[None, None, :] * alpha[..., None]
    # embossing: a light edge on one side of the strokes
    if rng.random() < 0.5:
        sh = np.roll(alpha, (1, 1), axis=(0, 1)) - alpha
        plate += sh[..., None] * rng.uniform(-60, 60)
    # rivets / bolts and dirt dots
    for _ in range(int(rng.integers(0, 3))):
        cx = round(W * rng.choice([rng.uniform(0.15, 0.35), rng.uniform(0.65, 0.85)]))
        cy = round(H * rng.choice([rng.uniform(0.04, 0.12), rng.uniform(0.85, 0.96)]))
        col = tuple(float(c) for c in rng.uniform(60, 220, 3))
        cv2.circle(plate, (cx, cy), max(2, round(H * rng.uniform(0.03, 0.06))), col, -1, cv2.LINE_AA)
    for _ in range(int(rng.poisson(3))):
        cx, cy = int(rng.integers(0, W)), int(rng.integers(0, H))
        col = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.circle(plate, (cx, cy), int(rng.integers(1, 3)), col, -1, cv2.LINE_AA)
    # a plate is seldom evenly lit
    gy = np.linspace(-1, 1, H, dtype=np.float32)[:, None, None]
    plate *= 1 + gy * rng.uniform(-0.15, 0.15)
    return np.clip(plate, 0, 255).astype(np.uint8), text, validity, vbox


def re_split(text: str) -> list[str]:
    """``"B9140BCD"`` -> ``["B", "9140", "BCD"]`` (the groups drawn apart)."""
    out: list[str] = []
    for ch in text:
        kind = ch.isdigit()
        if out and out[-1][-1].isdigit() == kind:
            out[-1] += ch
        else:
            out.append(ch)
    return out


# ----------------------------------------------------------------------------------------------
# degradations


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A car body / bumper / road behind the plate: a colour, a gradient, some edges and noise."""
    base = rng.uniform(0, 255, 3).astype(np.float32)
    if rng.random() < 0.5:
        base *= rng.uniform(0.1, 0.5)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    g = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img += g * rng.normal(0, 40, 3)
    for _ in range(int(rng.integers(0, 4))):
        y = int(rng.integers(0, h))
        cv2.line(img, (0, y), (w - 1, y + int(rng.integers(-h // 4 - 1, h // 4 + 1))), tuple(float(c) for c in rng.uniform(0, 255, 3)), int(rng.integers(1, max(2, h // 10))))
    img += rng.normal(0, rng.uniform(2, 15), (h, w, 1))
    return img


def _motion_kernel(rng: np.random.Generator, k: int) -> np.ndarray:
    ker = np.zeros((k, k), np.float32)
    ker[k // 2, :] = 1
    m = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(-30, 30)), 1.0)
    ker = cv2.warpAffine(ker, m, (k, k))
    return ker / max(ker.sum(), 1e-6)


def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Lighting and colour on a float BGR image (0..255)."""
    h, w = img.shape[:2]
    if rng.random() < 0.35:  # shadow: one side of a random line darker
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, np.pi)
        d = (xx - w * rng.uniform(0.2, 0.8)) * np.cos(a) + (yy - h * rng.uniform(0.2, 0.8)) * np.sin(a)
        soft = max(1.0, w * rng.uniform(0.01, 0.1))
        m = 1 / (1 + np.exp(-d / soft))
        img = img * (1 - m[..., None] * rng.uniform(0.3, 0.75))
    if rng.random() < 0.25:  # glare: a bright blob
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = w * rng.uniform(0, 1), h * rng.uniform(0, 1)
        r = w * rng.uniform(0.08, 0.4)
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img = img + g[..., None] * rng.uniform(60, 220)
    # colour cast, contrast, brightness, gamma
    img = img * rng.uniform(0.85, 1.15, 3)[None, None, :]
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.35, 1.3) + mean * rng.uniform(0.35, 1.4)
    img = np.clip(img, 0, 255)
    gamma = float(np.exp(rng.normal(0, 0.35)))
    img = 255.0 * (img / 255.0) ** gamma
    if rng.random() < 0.15:
        img = 255.0 - img if rng.random() < 0.1 else img
    return img


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """``img`` through JPEG at ``quality`` (the input when encoding fails)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


def _degrade_small(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Blur, noise and JPEG at the camera's resolution; returns uint8 BGR."""
    r = rng.random()
    if r < 0.35:
        s = rng.uniform(0.3, 1.3)
        img = cv2.GaussianBlur(img, (0, 0), s)
    elif r < 0.5:
        k = int(rng.integers(3, 6))
        img = cv2.filter2D(img, -1, _motion_kernel(rng, k))
    img = img + rng.normal(0, rng.uniform(0, 12), img.shape[:2] + (1,)) + rng.normal(0, rng.uniform(0, 5), img.shape)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        out = jpeg(out, int(rng.integers(15, 90)))
    return out


def _camera(
    rng: np.random.Generator,
    plate: np.ndarray,
    keep: tuple[float, float, float, float] | None = None,
    out_width: tuple[int, int] = (44, 220),
    tilt_sd: float = 3.0,
    tint: float = 0.0,
) -> np.ndarray:
    """Warp the plate into a scene, crop around it as a detector would, degrade, scale back up.

    ``keep`` (x0, y0, x1, y1 in plate pixels) selects the part of the plate the crop frames (the
    whole plate when None).  ``tilt_sd``: the rotation's standard deviation in degrees; ``tint``:
    the largest share of a random colour mixed into the scene (a camera's colour cast and haze).
    """
    H, W = plate.shape[:2]
    kx0, ky0, kx1, ky1 = keep or (0, 0, W, H)
    kw, kh = kx1 - kx0, ky1 - ky0
    # perspective: jitter the plate's corners, then rotate
    src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    j = rng.uniform(0, 0.07) if rng.random() < 0.7 else 0.0
    dst = src + rng.normal(0, j, (4, 2)).astype(np.float32) * np.float32([W, H]) * np.float32([0.3, 1.0])
    ang = np.deg2rad(rng.normal(0, tilt_sd))
    c, s = np.cos(ang), np.sin(ang)
    centre = np.float32([W / 2, H / 2])
    dst = (dst - centre) @ np.float32([[c, s], [-s, c]]) + centre
    hm = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    kept = cv2.perspectiveTransform(np.float32([[[kx0, ky0], [kx1, ky0], [kx1, ky1], [kx0, ky1]]]), hm)[0]
    bx0, by0 = kept.min(axis=0)
    bx1, by1 = kept.max(axis=0)
    # crop margins: mostly tight (as the labelled crops), sometimes loose or cutting into the plate
    if rng.random() < 0.7:
        mx = rng.uniform(-0.015, 0.03, 2) * kw
        my = rng.uniform(-0.06, 0.08, 2) * kh
    else:
        mx = rng.uniform(-0.02, 0.18, 2) * kw
        my = rng.uniform(-0.12, 0.4, 2) * kh
    cx0, cx1 = bx0 - mx[0], bx1 + mx[1]
    cy0, cy1 = by0 - my[0], by1 + my[1]
    cw, ch = max(4.0, cx1 - cx0), max(4.0, cy1 - cy0)
    ow = int(rng.integers(out_width[0], out_width[1] + 1))
    oh = max(8, round(ow * ch / cw * rng.uniform(0.9, 1.1)))
    sx, sy = ow / cw, oh / ch
    to_out = np.float64([[sx, 0, -cx0 * sx], [0, sy, -cy0 * sy], [0, 0, 1]]) @ hm
    # pre-shrink the plate so that the warp does not alias
    f = min(1.0, 1.5 * sx)
    if f < 1.0:
        small = cv2.resize(plate, (max(2, round(W * f)), max(2, round(H * f))), interpolation=cv2.INTER_AREA)
        to_out = to_out @ np.diag([1 / f, 1 / f, 1.0])
    else:
        small = plate
    warped = cv2.warpPerspective(small.astype(np.float32), to_out, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    mask = cv2.warpPerspective(np.ones(small.shape[:2], np.float32), to_out, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    img = _background(rng, oh, ow) * (1 - mask[..., None]) + warped * mask[..., None]
    if tint > 0:
        a = rng.uniform(0, tint)
        img = img * (1 - a) + rng.uniform(0, 255, 3)[None, None, :].astype(np.float32) * a
    img = _photometric(rng, img)
    out = _degrade_small(rng, img)
    # the crops are often scaled up by whoever cut them
    if rng.random() < 0.6:
        up = rng.uniform(1.5, 4.0)
        interp = int(rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST]))
        out = cv2.resize(out, (round(ow * up), round(oh * up)), interpolation=interp)
        if rng.random() < 0.5:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def render_sample(rng: np.random.Generator, fonts: tuple[Path, ...] | None = None) -> Sample:
    """A degraded plate crop labelled with its registration (see the module docstring).

    One crop in five frames only the upper part of the plate (the registration band a reader
    cuts on a two-line plate), with a random amount of the validity line left in.
    """
    plate, text, validity, vbox = render_plate(rng, fonts=fonts)
    H, W = plate.shape[:2]
    keep = None
    if rng.random() < 0.2:
        bottom = vbox[1] + (vbox[3] - vbox[1]) * rng.uniform(-0.6, 0.3)
        keep = (0.0, 0.0, float(W), float(max(H * 0.5, bottom)))
    return Sample(_camera(rng, plate, keep), text, validity)


def render_distant(rng: np.random.Generator, fonts: tuple[Path, ...] | None = None) -> Sample:
    """A plate as a roadside camera sees a vehicle waiting metres away: 30-100 px wide (registration
    characters about 6-15 px tall), tilted (rotation sd 8 degrees, as a motorcycle's plate often
    hangs), under a strong colour cast or haze; labelled with its registration."""
    plate, text, validity, _ = render_plate(rng, fonts=fonts)
    return Sample(_camera(rng, plate, None, out_width=(30, 100), tilt_sd=8.0, tint=0.6), text, validity)


def render_validity(rng: np.random.Generator, fonts: tuple[Path, ...] | None = None) -> Sample:
    """A degraded crop of the validity line alone, labelled ``MMYY`` (four digits)."""
    plate, text, validity, (x0, y0, x1, y1) = render_plate(rng, fonts=fonts)
    vh = y1 - y0
    keep = (x0 - vh * 0.5, y0 - vh * 0.3, x1 + vh * 0.5, y1 + vh * 0.3)
    img = _camera(rng, plate, keep, out_width=(16, 80))
    return Sample(img, validity.replace(".", ""), validity)


def preview(path: str | Path, seed: int = 0, n: int = 24) -> None:
    """Write a contact sheet of ``n`` samples to ``path`` (for looking at the renderer)."""
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(n):
        s = render_validity(rng) if i % 8 == 7 else render_sample(rng)
        im = cv2.resize(s.image, (200, 64))
        cv2.putText(im, s.text, (2, 62), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 255, 0), 1)
        tiles.append(im)
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
    cv2.imwrite(str(path), np.vstack(rows))

