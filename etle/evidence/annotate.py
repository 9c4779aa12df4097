"""Evidence pictures: pure functions that return new images.

Nothing here draws on ``frame.image`` (it is read-only); every function copies first and
returns the copy.  Colours are BGR.  Text is drawn with OpenCV's Hershey font, which only has
ASCII glyphs, so other characters are transliterated (``é`` -> ``e``) or replaced by ``?``.

The overview keeps the scene unobstructed: captions go on a black panel appended below the
picture, and only the box labels are drawn inside it.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from etle.types import Box, Frame, TrackedObject, Violation

log = logging.getLogger(__name__)

Color = tuple[int, int, int]
Polyline = Sequence[tuple[float, float]]
#: A zone/line overlay: a callable ``draw_zones(image) -> image`` or a list of polylines.
ZoneOverlay = Callable[[np.ndarray], np.ndarray] | Sequence[Polyline]

VIOLATOR_COLOR: Color = (0, 0, 255)
RELATED_COLOR: Color = (0, 165, 255)
OTHER_COLOR: Color = (200, 200, 200)
ZONE_COLOR: Color = (255, 255, 0)
TEXT_COLOR: Color = (255, 255, 255)
PANEL_COLOR: Color = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def ascii_text(text: str) -> str:
    """``text`` with non-ASCII characters transliterated or replaced by ``?`` (Hershey fonts)."""
    folded = unicodedata.normalize("NFKD", text)
    out = []
    for ch in folded:
        if unicodedata.combining(ch):
            continue
        out.append(ch if 32 <= ord(ch) < 127 else "?")
    return "".join(out)


def _scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and line thickness for an image of this size."""
    short = min(image.shape[0], image.shape[1])
    scale = max(0.35, short / 720.0 * 0.7)
    return scale, max(1, round(scale * 2))


def _copy(image: np.ndarray) -> np.ndarray:
    return np.array(image, dtype=np.uint8, copy=True, order="C")


def _draw_box(image: np.ndarray, box: Box, color: Color, thickness: int) -> None:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box.clip(w - 1, h - 1).as_int()
    cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)


def _draw_tag(image: np.ndarray, box: Box, text: str, color: Color, scale: float, thickness: int) -> None:
    """A filled label above the box (or inside its top when there is no room above)."""
    text = ascii_text(text)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    h, w = image.shape[:2]
    x1, y1, _, _ = box.clip(w - 1, h - 1).as_int()
    x1 = min(max(x1, 0), max(w - tw - 4, 0))
    top = y1 - th - base - 4 if y1 - th - base - 4 >= 0 else y1
    cv2.rectangle(image, (x1, top), (x1 + tw + 4, top + th + base + 4), color, cv2.FILLED)
    cv2.putText(image, text, (x1 + 2, top + th + 2), _FONT, scale, TEXT_COLOR, thickness, cv2.LINE_AA)


def _caption_panel(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``image`` with a black panel holding ``lines`` appended below it."""
    lines = [ascii_text(line) for line in lines if line]
    if not lines:
        return image
    scale, thickness = _scale(image)
    (_, th), base = cv2.getTextSize("Ag", _FONT, scale, thickness)
    step = th + base + 6
    panel = np.full((step * len(lines) + 8, image.shape[1], 3), PANEL_COLOR, dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(panel, line, (6, 4 + th + i * step + 2), _FONT, scale, TEXT_COLOR, thickness, cv2.LINE_AA)
    return np.vstack([image, panel])


def draw_polylines(
    image: np.ndarray, polylines: Iterable[Polyline], *, color: Color = ZONE_COLOR, closed: bool = False
) -> np.ndarray:
    """A copy of ``image`` with each polyline drawn (a zone or a stop line)."""
    out = _copy(image)
    _, thickness = _scale(out)
    for line in polylines:
        pts = np.asarray(line, dtype=np.float64).reshape(-1, 2)
        if len(pts) < 2:
            continue
        cv2.polylines(out, [np.round(pts).astype(np.int32)], closed, color, thickness, cv2.LINE_AA)
    return out


def apply_zones(image: np.ndarray, zones: ZoneOverlay | None) -> np.ndarray:
    """Apply a zone overlay (callable or polylines) to a copy of ``image``."""
    if zones is None:
        return _copy(image)
    if callable(zones):
        out = zones(_copy(image))
        if not isinstance(out, np.ndarray) or out.shape != image.shape:
            raise ValueError(
                f"draw_zones must return an image of shape {image.shape}, "
                f"got {getattr(out, 'shape', type(out).__name__)}"
            )
        return _copy(out)
    return draw_polylines(image, zones)


def draw_tracks(
    image: np.ndarray,
    objects: Sequence[TrackedObject],
    track_id: int,
    *,
    label: str = "",
    fallback_box: Box | None = None,
    related_ids: Sequence[int] = (),
    draw_others: bool = True,
) -> np.ndarray:
    """A copy of ``image`` with the other boxes light, related boxes medium, the violator strong.

    ``fallback_box`` is drawn as the violator when ``track_id`` is not among ``objects``.
    """
    out = _copy(image)
    scale, thickness = _scale(out)
    violator: TrackedObject | None = None
    related = set(related_ids)
    for obj in objects:
        if obj.track_id == track_id:
            violator = obj
        elif obj.track_id in related:
            _draw_box(out, obj.box, RELATED_COLOR, thickness)
            _draw_tag(out, obj.box, f"#{obj.track_id} {obj.label}", RELATED_COLOR, scale * 0.8, thickness)
        elif draw_others:
            _draw_box(out, obj.box, OTHER_COLOR, max(1, thickness // 2))
    box = violator.box if violator is not None else fallback_box
    if box is not None:
        obj_label = violator.label if violator is not None else ""
        tag = " ".join(p for p in (f"#{track_id}", obj_label, label) if p)
        _draw_box(out, box, VIOLATOR_COLOR, thickness * 2)
        _draw_tag(out, box, tag, VIOLATOR_COLOR, scale, thickness)
    return out


#: lamp colours of the signal strip (BGR); anything else (unknown) is grey
SIGNAL_COLORS: dict[str, Color] = {"red": (0, 0, 230), "yellow": (0, 200, 255), "green": (0, 180, 0)}


def signal_strip(width: int, timeline: Mapping[str, Any], at_pts: float, *, height: int = 14) -> np.ndarray | None:
    """A ``height`` x ``width`` band of the signal's state over the clip, with a white mark at
    ``at_pts`` (the violation); None when the timeline has no segment.

    ``timeline`` is ``{"source": ..., "segments": [[start, end, state], ...]}``
    (:func:`etle.pipeline.signal_timeline`); time runs left to right over the segments' span.
    """
    segments = [(float(a), float(b), str(st)) for a, b, st in timeline.get("segments", ())]
    if not segments or width < 4:
        return None
    t0, t1 = segments[0][0], max(segments[-1][1], segments[0][0] + 1e-3)
    band = np.full((height, width, 3), (128, 128, 128), np.uint8)

    def x(t: float) -> int:
        return int(round((t - t0) / (t1 - t0) * (width - 1)))

    for i, (a, b, st) in enumerate(segments):
        end = segments[i + 1][0] if i + 1 < len(segments) else b
        band[:, x(a): max(x(end), x(a) + 1) + 1] = SIGNAL_COLORS.get(st, (128, 128, 128))
    m = min(max(x(at_pts), 0), width - 1)
    band[:, max(m - 1, 0): m + 2] = (255, 255, 255)
    return band


def signal_head(image: np.ndarray, region: Sequence[float], width: int, *, max_height: int = 0) -> np.ndarray | None:
    """A band ``width`` wide holding the signal head's ``region`` (x1, y1, x2, y2) of ``image``
    enlarged (up to 8x, at most ``max_height`` tall: default a quarter of the image) beside a
    label; None when the region lies outside the image.  The officer sees the lamp itself at
    the violation's frame, not only the state the reader made of it."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in region)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    crop = image[y1:y2, x1:x2]
    limit = max_height or max(48, h // 4)
    k = max(1.0, min(8.0, limit / crop.shape[0], (width * 0.5) / crop.shape[1]))
    big = cv2.resize(crop, (max(1, int(crop.shape[1] * k)), max(1, int(crop.shape[0] * k))), interpolation=cv2.INTER_NEAREST)
    pad = 4
    band = np.full((big.shape[0] + 2 * pad, width, 3), 32, np.uint8)
    bw = min(big.shape[1], width - 2 * pad)
    band[pad : pad + big.shape[0], pad : pad + bw] = big[:, :bw]
    scale, thickness = _scale(image)
    cv2.putText(band, f"signal head at this frame (x{k:.1f})", (bw + 3 * pad, pad + int(18 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, thickness // 2), cv2.LINE_AA)
    return band


def overview(
    frame: Frame,
    objects: Sequence[TrackedObject],
    violation: Violation,
    camera_label: str,
    local_time: str = "",
    *,
    extra_lines: Sequence[str] = (),
    zones: ZoneOverlay | None = None,
) -> np.ndarray:
    """The annotated key picture of a violation (a new image, taller than the frame).

    All boxes light, related tracks medium, the violating track strong with its id and the
    rule; a caption panel below the scene gives rule, track, time, camera and ``extra_lines``.
    ``zones`` (a callable ``draw_zones(image) -> image`` or polylines) is drawn first.
    """
    scene = apply_zones(frame.image, zones)
    scene = draw_tracks(
        scene,
        objects,
        violation.track_id,
        label=violation.rule,
        fallback_box=violation.box,
        related_ids=violation.related_track_ids,
    )
    lines = [
        f"{violation.rule} | track #{violation.track_id} {violation.label}",
        f"{local_time or violation.timestamp.isoformat()} | {camera_label}",
        f"frame {violation.frame_index} | pts {violation.pts:.3f} s",
        *extra_lines,
    ]
    timeline = violation.details.get("signal_timeline") if violation.details else None
    if isinstance(timeline, Mapping):
        strip = signal_strip(scene.shape[1], timeline, violation.pts)
        if strip is not None:
            segs = timeline.get("segments", ())
            lines.append(f"signal ({timeline.get('source') or 'signal'}) {float(segs[0][0]):.1f}-{float(segs[-1][1]):.1f} s: "
                         + " > ".join(str(st) for _, _, st in segs) + " | white mark = violation")
            scene = np.vstack([scene, strip])
    region = violation.details.get("signal_region") if violation.details else None
    if isinstance(region, Sequence) and len(region) == 4:
        head = signal_head(frame.image, region, scene.shape[1])
        if head is not None:
            scene = np.vstack([scene, head])
    return _caption_panel(scene, lines)


def closeup(frame: Frame, box: Box, margin: float = 0.3) -> np.ndarray:
    """A copy of the frame region around ``box``, grown by ``margin`` of its size on each side.

    The region is clipped to the frame and is at least 2x2 pixels.
    """
    if margin < 0:
        raise ValueError(f"closeup margin must be >= 0, got {margin!r}")
    x1, y1, x2, y2 = box.expand(margin).clip(frame.width, frame.height).as_int()
    x1, y1 = min(x1, frame.width - 2), min(y1, frame.height - 2)
    x2, y2 = max(x2, x1 + 2), max(y2, y1 + 2)
    return _copy(frame.image[y1:y2, x1:x2])
