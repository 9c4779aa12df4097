"""Head detection inside a rider's box: where the heads are.

The person box of a rider says little about where the head is: arms stretched to the handlebars
widen it, a passenger's box may cover two riders, a box that starts at the frame top has lost
the top of the head.  A fixed head estimate (:func:`etle.helmet.crops.head_box`) misses such
heads, so the head is *found* instead: the upper part of the person box (:func:`head_region`,
a square with margin on both sides) is cut out, resized to ``REGION_SIZE`` and given to a small
YOLO detector of ``helmet`` and ``no_helmet`` heads (``models/helmet/head_det.onnx``, trained by
``scripts/train_head_detector.py`` on the same crops of the Roboflow CC BY 4.0 rider photos).
A head belongs to the person whose box it fits best (:func:`own_heads`): centred in the box's
width and upper half, nearest the box's top centre.

Whether a found head wears a helmet is then judged by the helmet classifier on the head's crop
(:mod:`etle.helmet.classifier`), not by the detector's own class: on the valid split the
classifier was the more precise of the two (the classifier is trained with CCTV colour casts
and blur; the detector's class scores serve only as its confidence that a head is there).

The same :func:`head_region` cuts the training crops and the run-time crops, so the detector
sees at run time what it was trained on.  The box decoding is a few lines of NumPy on the
export's output (as in :mod:`etle.detect.onnx_yolo`), with OpenCV's NMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from etle.errors import ModelError
from etle.helmet.crops import square_crop
from etle.types import Box

__all__ = [
    "HEAD_CLASSES",
    "REGION_SIZE",
    "FoundHead",
    "HeadDetector",
    "cut_region",
    "dedupe",
    "find_own_heads",
    "own_heads",
    "load_head_detector",
    "head_region",
    "HeadFinder",
]

#: Detector input side in pixels (the region is resized to it).
REGION_SIZE = 160
#: The region's side: the larger of these fractions of the person box's width and height ...
REGION_OF_WIDTH = 1.2
REGION_OF_HEIGHT = 0.55
#: ... starting this fraction of the side above the person box's top (a head cut by the box).
REGION_ABOVE = 0.1
HEAD_CLASSES = ("helmet", "no_helmet")
#: Lowest head confidence kept.  Low, because the helmet classifier judges every head found and
#: calls a crop that shows no head background: on the valid split 0.1 found more bare heads than
#: 0.25 at the same precision.
CONF_THRESHOLD = 0.1


def head_region(person: Box, *, frame_width: int, frame_height: int, min_px: float = 24.0) -> Box | None:
    """The square around the upper part of a person box in which the head is looked for.

    None when the square is smaller than ``min_px`` or lies outside the frame.  Parts outside the
    frame are filled by edge replication when cut (:func:`etle.helmet.crops.square_crop`).
    """
    if person.width <= 0 or person.height <= 0:
        return None
    side = max(REGION_OF_WIDTH * person.width, REGION_OF_HEIGHT * person.height)
    if side < min_px:
        return None
    cx = (person.x1 + person.x2) / 2.0
    y0 = person.y1 - REGION_ABOVE * side
    region = Box(cx - side / 2.0, y0, cx + side / 2.0, y0 + side)
    if region.x2 <= 0 or region.x1 >= frame_width or region.y2 <= 0 or region.y1 >= frame_height:
        return None
    return region


def cut_region(image: np.ndarray, region: Box, size: int = REGION_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` BGR crop of a (square) region; a new array."""
    return square_crop(image, region, context=1.0, size=size)


@dataclass(frozen=True, slots=True)
class FoundHead:
    """A head found in a region, in frame pixels, with its class probabilities."""

    box: Box
    helmet: float
    no_helmet: float

    @property
    def confidence(self) -> float:
        return max(self.helmet, self.no_helmet)

    @property
    def no_helmet_share(self) -> float:
        """The no-helmet probability among the two head classes."""
        return self.no_helmet / max(self.helmet + self.no_helmet, 1e-9)


def _fits(person: Box, head: FoundHead, upper: float) -> float | None:
    """How far a head is from where a person's head would be (box widths / heights), or None
    when its centre is outside the person box's width or below its upper ``upper``."""
    cx, cy = head.box.center
    if not person.x1 <= cx <= person.x2:
        return None
    if not person.y1 - head.box.height / 2.0 <= cy <= person.y1 + upper * person.height:
        return None
    return abs(cx - (person.x1 + person.x2) / 2.0) / person.width + abs(cy - person.y1) / person.height


def own_heads(person: int, persons: Sequence[Box], heads: Sequence[FoundHead], *, upper: float = 0.5) -> list[FoundHead]:
    """The heads that belong to ``persons[person]``: centred inside its width and in its upper
    ``upper`` (or above its top by at most half a head), and closer to its head position (top
    centre, relative to the box) than to that of any other person box they also fit.

    A box that covers two riders owns both heads; a neighbour's head that reaches into a wide box
    stays the neighbour's."""
    own = persons[person]
    out = []
    for h in heads:
        mine = _fits(own, h, upper)
        if mine is None:
            continue
        if all((d := _fits(p, h, upper)) is None or d >= mine for k, p in enumerate(persons) if k != person):
            out.append(h)
    return out


def dedupe(heads: Sequence[FoundHead], iou: float = 0.5) -> list[FoundHead]:
    """One head per place: of heads overlapping by ``iou`` or more (found in the regions of
    several persons), the most confident."""
    out: list[FoundHead] = []
    for h in sorted(heads, key=lambda f: -f.confidence):
        if all(h.box.iou(o.box) < iou for o in out):
            out.append(h)
    return out


class HeadFinder(Protocol):
    """What :func:`find_own_heads` needs of a head detector (:class:`HeadDetector`, or a fake in tests)."""

    def find_many(self, image: np.ndarray, regions: Sequence[Box]) -> list[list[FoundHead]]: ...


def find_own_heads(detector: HeadFinder, image: np.ndarray, persons: Sequence[Box], *,
                   of: Sequence[int] | None = None) -> list[tuple[int, list[FoundHead]]]:
    """The heads of each person: for every index in ``of`` (default: every person) whose
    :func:`head_region` lies in the frame, ``(index, heads)`` with the heads found in that region
    that are the person's own against all of ``persons`` (:func:`own_heads`), the regions run as
    one batch.  The one chain the no_helmet rule, ``etle eval helmet`` and the training scripts
    use, so they judge the same heads."""
    h, w = image.shape[:2]
    todo: list[tuple[int, Box]] = []
    for k in range(len(persons)) if of is None else of:
        region = head_region(persons[k], frame_width=w, frame_height=h)
        if region is not None:
            todo.append((k, region))
    if not todo:
        return []
    found = detector.find_many(image, [r for _, r in todo])
    return [(k, own_heads(k, persons, heads)) for (k, _), heads in zip(todo, found, strict=True)]


class HeadDetector:
    """The head detector (ONNX Runtime) on the head regions of person boxes.

    Decoded here rather than by :func:`etle.detect.onnx_yolo.decode_yolov8` because both class
    probabilities of a head are kept (the rule averages the no-helmet share over frames) and the
    NMS is class-agnostic (one head is one box, whatever its class)."""

    def __init__(self, path: str | Path, *, conf_threshold: float = CONF_THRESHOLD, iou_threshold: float = 0.5, threads: int = 1) -> None:
        from etle.detect.onnx_yolo import OnnxYolo

        self.path = Path(path)
        self._yolo = OnnxYolo(self.path, conf_threshold=conf_threshold, iou_threshold=iou_threshold, threads=threads, rect=False)
        if tuple(self._yolo.names) != HEAD_CLASSES:
            raise ModelError(f"head detector {self.path}: classes {self._yolo.names}, expected {list(HEAD_CLASSES)}")
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.size = self._yolo.input_size[0]

    def find(self, image: np.ndarray, region: Box) -> list[FoundHead]:
        """Heads in ``region`` of ``image``, in frame pixels, most confident first (the image is
        not modified)."""
        return self.find_many(image, [region])[0]

    def find_many(self, image: np.ndarray, regions: Sequence[Box]) -> list[list[FoundHead]]:
        """:meth:`find` for each region, the regions run as one batch where the graph allows."""
        if not regions:
            return []
        crops = [cut_region(image, r, self.size) for r in regions]
        raw = self._yolo.raw_many(crops)
        return [self._decode(rows.T, r) for rows, r in zip(raw, regions, strict=True)]

    def _decode(self, pred: np.ndarray, region: Box) -> list[FoundHead]:
        """(N, 4 + 2) rows of one region -> heads in frame pixels after class-agnostic NMS."""
        probs = pred[:, 4:6]
        conf = probs.max(axis=1)
        keep = conf >= self.conf_threshold
        if not keep.any():
            return []
        pred, probs, conf = pred[keep], probs[keep], conf[keep]
        rects = np.stack([pred[:, 0] - pred[:, 2] / 2, pred[:, 1] - pred[:, 3] / 2, pred[:, 2], pred[:, 3]], 1)
        idx = np.array(cv2.dnn.NMSBoxes(rects.tolist(), conf.astype(float).tolist(), self.conf_threshold, self.iou_threshold)).reshape(-1)
        scale = region.width / self.size
        out = []
        for i in idx:
            x, y, w, h = (float(v) * scale for v in rects[i])
            box = Box(region.x1 + x, region.y1 + y, region.x1 + x + w, region.y1 + y + h)
            out.append(FoundHead(box, float(probs[i, 0]), float(probs[i, 1])))
        return sorted(out, key=lambda f: -f.confidence)


MODEL_NAME = "head-detector"
_REPO_FILE = Path(__file__).resolve().parents[2] / "models" / "helmet" / "head_det.onnx"


def locate_head_model() -> Path:
    """The verified head detector file: the model cache (``ETLE_MODEL_DIR``/helmet/head_det.onnx)
    first, then the repository's ``models/helmet/``, checked against the manifest's sha256."""
    from etle.helmet.classifier import verified_repo_file

    return verified_repo_file(MODEL_NAME, _REPO_FILE)


def load_head_detector(path: str | Path | None = None, *, threads: int = 1) -> HeadDetector:
    """The head detector from ``path``, or the manifest's ``head-detector``."""
    return HeadDetector(Path(path) if path is not None else locate_head_model(), threads=threads)
