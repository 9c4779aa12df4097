"""Seatbelt (UU 22/2009 art. 289) and phone use (art. 283): a crop model on the driver.

No offline weights exist for either (checked: see ``OFFLINE_WEIGHTS.md``), so these rules
run only when the user brings an ONNX model that follows :mod:`etle.rules.crop_model`'s
contract and names it in the camera file::

    rules:
      seatbelt:
        model: models/seatbelt.onnx     # N x 3 x S x S RGB [0,1] -> N x 2 (1 = no seatbelt)
        crop: [0.45, 0.1, 1.0, 0.6]     # the driver's side of the windscreen, as fractions
        threshold: 0.7

The crop is a fixed fraction of the vehicle box (``crop``: x1, y1, x2, y2), set per camera
for where the driver sits in its view.  Each vehicle is scored at most every
``every_n_frames``; it violates once ``min_samples`` scores are kept and their mean reaches
``threshold`` (the last ``max_samples`` are kept).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Sequence

import numpy as np

from etle.rules.base import make_violation
from etle.rules.crop_model import CropModel
from etle.types import Box, FrameContext, Violation

__all__ = ["DriverCropRule", "driver_crop"]


def driver_crop(image: np.ndarray, box: Box, fractions: Sequence[float]) -> np.ndarray | None:
    """A copy of the ``fractions`` part of ``box`` in ``image`` (None when empty)."""
    x1, y1, x2, y2 = fractions
    h, w = image.shape[:2]
    ax1 = int(round(max(box.x1 + x1 * box.width, 0)))
    ay1 = int(round(max(box.y1 + y1 * box.height, 0)))
    ax2 = int(round(min(box.x1 + x2 * box.width, w)))
    ay2 = int(round(min(box.y1 + y2 * box.height, h)))
    if ax2 <= ax1 or ay2 <= ay1:
        return None
    return image[ay1:ay2, ax1:ax2].copy()


class DriverCropRule:
    """One crop model judging the driver's region of vehicles (``seatbelt`` or ``phone_use``)."""

    def __init__(
        self,
        name: str,
        model: CropModel,
        *,
        crop: Sequence[float] = (0.45, 0.1, 1.0, 0.6),
        threshold: float = 0.7,
        min_samples: int = 3,
        max_samples: int = 10,
        every_n_frames: int = 3,
        min_crop_px: int = 24,
        labels: Iterable[str] = ("car", "truck", "bus"),
    ) -> None:
        if not 0 < threshold < 1 or min_samples < 1 or max_samples < min_samples:
            raise ValueError("need 0 < threshold < 1 and 1 <= min_samples <= max_samples")
        self.name = name
        self._model = model
        self._crop = tuple(float(c) for c in crop)
        self._threshold = threshold
        self._min_samples = min_samples
        self._max_samples = max_samples
        self._every = every_n_frames
        self._min_px = min_crop_px
        self._labels = frozenset(labels)
        self._scores: dict[int, deque[float]] = {}
        self._last: dict[int, int] = {}
        self.scored = 0

    @classmethod
    def from_config(cls, name: str, options, model: CropModel) -> "DriverCropRule":  # type: ignore[no-untyped-def]
        return cls(
            name,
            model,
            crop=options.crop,
            threshold=options.threshold,
            min_samples=options.min_samples,
            max_samples=options.max_samples,
            every_n_frames=options.every_n_frames,
            min_crop_px=options.min_crop_px,
            labels=options.labels,
        )

    def forget(self, track_id: int) -> None:
        self._scores.pop(track_id, None)
        self._last.pop(track_id, None)

    def reset(self) -> None:
        self._scores.clear()
        self._last.clear()

    @property
    def tracked(self) -> int:
        return len(self._scores)

    def update(self, ctx: FrameContext) -> list[Violation]:
        frame = ctx.frame
        crops: list[np.ndarray] = []
        owners: list[int] = []
        for obj in ctx.objects:
            if obj.label not in self._labels:
                continue
            if frame.index - self._last.get(obj.track_id, -(10**9)) < self._every:
                continue
            crop = driver_crop(frame.image, obj.box, self._crop)
            if crop is None or min(crop.shape[:2]) < self._min_px:
                continue
            self._last[obj.track_id] = frame.index
            crops.append(crop)
            owners.append(obj.track_id)
        if crops:
            scores = np.asarray(self._model.violation_scores(crops), np.float64).reshape(-1)
            if scores.shape[0] != len(crops):
                raise ValueError(f"{self.name}: model returned {scores.shape[0]} scores for {len(crops)} crops")
            self.scored += len(crops)
            for tid, s in zip(owners, scores, strict=True):
                self._scores.setdefault(tid, deque(maxlen=self._max_samples)).append(float(s))
        out: list[Violation] = []
        for obj in ctx.objects:
            kept = self._scores.get(obj.track_id)
            if kept is None or len(kept) < self._min_samples:
                continue
            mean = float(np.mean(kept))
            if mean >= self._threshold:
                out.append(
                    make_violation(
                        self.name,
                        ctx,
                        obj,
                        details={"score": round(mean, 3), "samples": len(kept), "threshold": self._threshold},
                    )
                )
        return out
