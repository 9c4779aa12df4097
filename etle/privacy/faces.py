"""Face detection for the privacy blur: MTCNN run with ONNX Runtime, plus heads from person boxes.

The detector is facenet-pytorch's MTCNN (P-, R- and O-net, weights from its wheel), exported to
ONNX by ``etle models prepare`` (:func:`etle.train.export.export_face_detector`); this module runs
the three-stage cascade with ONNX Runtime, NumPy and OpenCV, so the run path never imports torch.
The cascade follows ``facenet_pytorch.models.utils.detect_face``: an image pyramid through the
P-net, non-maximum suppression, then 24x24 crops through the R-net and 48x48 crops through the
O-net, each refining the boxes.

MTCNN misses the small, tilted, helmeted or turned-away faces of traffic footage (13 of 31
labelled faces on the shared clips), so :func:`person_heads` adds a second source: the upper
part of every person box of the vehicle detector, where a head is whether or not its face shows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from etle.errors import ModelError
from etle.types import Box, Detection

log = logging.getLogger(__name__)

FACE_LABEL = "face"
HEAD_LABEL = "head"
NETS: tuple[str, str, str] = ("face-mtcnn-pnet", "face-mtcnn-rnet", "face-mtcnn-onet")


@dataclass(frozen=True, slots=True)
class MtcnnConfig:
    """The cascade's knobs: the smallest face searched for (pixels), the pyramid's step, the score
    thresholds of the three stages, and an upscale of the image first (small faces: 2.0 finds
    faces down to ``min_face / 2`` pixels at four times the work)."""

    min_face: int = 12
    factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    upscale: float = 1.0

    def __post_init__(self) -> None:
        if self.min_face < 6:
            raise ValueError(f"min_face must be >= 6 pixels, got {self.min_face}")
        if not 0.1 <= self.factor < 1.0:
            raise ValueError(f"factor must be in [0.1, 1), got {self.factor}")
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be three numbers in [0, 1], got {self.thresholds}")
        if not 0.25 <= self.upscale <= 4.0:
            raise ValueError(f"upscale must be in [0.25, 4], got {self.upscale}")


# --------------------------------------------------------------------------------------------
# the cascade's box arithmetic (pure NumPy; boxes are rows x1, y1, x2, y2, score, ...)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (highest score first); ``method`` ``union``
    (IoU) or ``min`` (intersection over the smaller box), with MTCNN's +1 pixel areas."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[-1])
        keep.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares around their centres (a new array)."""
    out = boxes.copy()
    w = out[:, 2] - out[:, 0]
    h = out[:, 3] - out[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = out[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = out[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: np.ndarray, reg: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Boxes moved by the nets' offsets (fractions of the width/height; a new array)."""
    out = boxes.copy()
    w = out[:, 2] - out[:, 0] + (1 if plus_one else 0)
    h = out[:, 3] - out[:, 1] + (1 if plus_one else 0)
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def proposals(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-net output (``reg`` 4xHxW, ``prob`` HxW face probability) -> rows x1, y1, x2, y2, score,
    4 offsets, in the input image's pixels (12x12 cells at stride 2)."""
    ys, xs = np.nonzero(prob >= threshold)
    if ys.size == 0:
        return np.zeros((0, 9), dtype=np.float32)
    x1 = np.floor((2 * xs + 1) / scale)
    y1 = np.floor((2 * ys + 1) / scale)
    x2 = np.floor((2 * xs + 12) / scale)
    y2 = np.floor((2 * ys + 12) / scale)
    return np.column_stack([x1, y1, x2, y2, prob[ys, xs], reg[:, ys, xs].T]).astype(np.float32)


def crops(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The normalised ``size``x``size`` crops (Nx3xSxS float32) of the boxes inside ``image``
    (RGB), and the indices of the boxes that had any pixels."""
    h, w = image.shape[:2]
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x = np.maximum(b[:, 0], 1)
    y = np.maximum(b[:, 1], 1)
    ex = np.minimum(b[:, 2], w)
    ey = np.minimum(b[:, 3], h)
    out: list[np.ndarray] = []
    kept: list[int] = []
    for k in range(len(b)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            patch = image[y[k] - 1:ey[k], x[k] - 1:ex[k]]
            if patch.size == 0:
                continue
            out.append(cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA))
            kept.append(k)
    if not out:
        return np.zeros((0, 3, size, size), dtype=np.float32), np.zeros(0, dtype=np.int64)
    batch = (np.stack(out).astype(np.float32) - 127.5) * 0.0078125
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), np.asarray(kept, dtype=np.int64)


def pyramid(height: int, width: int, min_face: int, factor: float) -> list[float]:
    """The P-net's scales: from 12/min_face down while the short side stays >= 12 pixels."""
    m = 12.0 / min_face
    short = min(height, width) * m
    scales: list[float] = []
    scale = m
    while short >= 12:
        scales.append(scale)
        scale *= factor
        short *= factor
    return scales


# --------------------------------------------------------------------------------------------
# the detector


class MtcnnFaceDetector:
    """MTCNN on ONNX Runtime: ``detect(bgr_image) -> [Detection(box, "face", score)]``."""

    name = "mtcnn"

    def __init__(self, config: MtcnnConfig | None = None, *, paths: Sequence[str | Path] | None = None,
                 threads: int | None = None) -> None:
        from etle.models import registry
        from etle.onnxrt import inference_session

        self.config = config or MtcnnConfig()
        if paths is None:
            try:
                paths = [registry.resolve(n) for n in NETS]
            except ModelError as exc:
                raise ModelError(f"the face detector is not ready: {exc}") from exc
        if len(paths) != 3:
            raise ModelError(f"MTCNN needs three ONNX files (P-, R-, O-net), got {len(paths)}")
        self._sessions: list[Any] = [inference_session(p, threads, what=f"MTCNN {n}") for p, n in zip(paths, NETS)]

    def _run(self, stage: int, batch: np.ndarray) -> list[np.ndarray]:
        sess = self._sessions[stage]
        return [np.asarray(o) for o in sess.run(None, {sess.get_inputs()[0].name: batch})]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR image (frame pixels), best first."""
        if image is None or image.ndim != 3 or min(image.shape[:2]) < 12:
            return []
        cfg = self.config
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        up = cfg.upscale
        if up != 1.0:
            rgb = cv2.resize(rgb, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR if up > 1 else cv2.INTER_AREA)
        boxes = self._cascade(rgb.astype(np.float32))
        out = []
        for x1, y1, x2, y2, score in boxes[:, :5]:
            box = Box(float(min(x1, x2)) / up, float(min(y1, y2)) / up, float(max(x1, x2)) / up, float(max(y1, y2)) / up)
            out.append(Detection(box, FACE_LABEL, float(score)))
        return sorted(out, key=lambda d: -d.confidence)

    def _cascade(self, img: np.ndarray) -> np.ndarray:
        cfg = self.config
        h, w = img.shape[:2]
        found: list[np.ndarray] = []
        for scale in pyramid(h, w, cfg.min_face, cfg.factor):
            sh, sw = int(h * scale + 1), int(w * scale + 1)
            resized = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
            data = ((resized - 127.5) * 0.0078125).transpose(2, 0, 1)[None].astype(np.float32)
            reg, prob = self._run(0, np.ascontiguousarray(data))
            cand = proposals(reg[0], prob[0, 1], scale, cfg.thresholds[0])
            if len(cand):
                found.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5), dtype=np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        boxes = square(np.column_stack([regress(boxes[:, :4], boxes[:, 5:9], plus_one=False), boxes[:, 4]]))
        # stage 2: refine
        batch, kept = crops(img, boxes, 24)
        if not len(kept):
            return np.zeros((0, 5), dtype=np.float32)
        reg, prob = self._run(1, batch)
        boxes, score = boxes[kept], prob[:, 1]
        ok = score > cfg.thresholds[1]
        boxes = np.column_stack([boxes[ok, :4], score[ok]])
        reg = reg[ok]
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes, reg = boxes[keep], reg[keep]
        if not len(boxes):
            return np.zeros((0, 5), dtype=np.float32)
        boxes = square(np.column_stack([regress(boxes[:, :4], reg), boxes[:, 4]]))
        # stage 3: output
        batch, kept = crops(img, boxes, 48)
        if not len(kept):
            return np.zeros((0, 5), dtype=np.float32)
        reg, _points, prob = self._run(2, batch)
        boxes, score = boxes[kept], prob[:, 1]
        ok = score > cfg.thresholds[2]
        boxes = np.column_stack([boxes[ok, :4], score[ok]])
        reg = reg[ok]
        if not len(boxes):
            return np.zeros((0, 5), dtype=np.float32)
        boxes = np.column_stack([regress(boxes[:, :4], reg), boxes[:, 4]])
        return boxes[nms(boxes[:, :4], boxes[:, 4], 0.7, "min")]


# --------------------------------------------------------------------------------------------
# heads from person boxes


HEAD_SHARE = 0.3
"""The upper share of a person box taken as the head region (a standing pedestrian's head is
about the top seventh; a seated rider's, folded, about the top quarter; the margin is for
privacy's sake)."""


def person_heads(persons: Sequence[Detection], width: int, height: int, share: float = HEAD_SHARE) -> list[Detection]:
    """The head region of every person box: the top ``share`` of its height (at least as tall as
    half its width, for riders cut off by the frame), across its width, clipped to the image."""
    out: list[Detection] = []
    for p in persons:
        b = p.box
        bh = b.y2 - b.y1
        bw = b.x2 - b.x1
        if bh <= 1 or bw <= 1:
            continue
        top = max(0.0, b.y1 - 0.05 * bh)
        bottom = min(float(height), b.y1 + max(share * bh, 0.5 * bw))
        head = Box(max(0.0, b.x1), top, min(float(width), b.x2), max(bottom, top + 1.0))
        out.append(Detection(head, HEAD_LABEL, p.confidence))
    return out
