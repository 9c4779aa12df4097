"""Seatbelt (UU 22/2009 art. 289) and phone use (art. 283): a crop model on the driver.

No offline weights exist for either (checked: see ``OFFLINE_WEIGHTS.md``), so these rules
run only when the user brings an ONNX model that follows :mod:`etle.models.crop`'s
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
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from etle.models.crop import CropModel, OnnxCropModel
from etle.rules.base import RuleContext, RuleSpec, make_violation
from etle.rules.options import Labels, existing_file
from etle.schema import ConfigModel, LocatedError
from etle.types import Box, FrameContext, Violation

__all__ = ["RULES", "DriverCropRule", "DriverModelOptions", "driver_crop"]


class DriverModelOptions(ConfigModel):
    """Seatbelt / phone use: a user-supplied ONNX crop model on the driver's part of a vehicle.

    No offline weights exist for these; the model contract is in ``etle.models.crop``.
    """

    model: Path = Field(description="ONNX crop model (relative paths: to the camera file).")
    input_size: int | None = Field(
        default=None, ge=8, le=1024, description="Crop side when the model's input is dynamic."
    )
    positive_class: int = Field(default=1, ge=0, description="Output column of the violation.")
    mean: tuple[float, float, float] = Field(default=(0.0, 0.0, 0.0), description="RGB mean.")
    std: tuple[float, float, float] = Field(default=(1.0, 1.0, 1.0), description="RGB std.")
    channel_order: Literal["rgb", "bgr"] = Field(default="rgb", description="Channel order.")
    crop: tuple[float, float, float, float] = Field(
        default=(0.45, 0.1, 1.0, 0.6),
        description="Driver region as fractions (x1, y1, x2, y2) of the vehicle box (default: "
        "right-hand drive, upper right of a vehicle seen from the front).",
    )
    threshold: float = Field(default=0.7, gt=0, lt=1, description="Mean score to violate.")
    min_samples: int = Field(default=3, ge=1, description="Crops scored before deciding.")
    max_samples: int = Field(default=10, ge=1, description="Scores kept per vehicle.")
    every_n_frames: int = Field(default=3, ge=1, description="Score a vehicle every n frames.")
    min_crop_px: int = Field(default=24, ge=4, description="Smallest crop side to score.")
    labels: Labels = Field(default=("car", "truck", "bus"), description="Classes.")

    @field_validator("model", mode="after")
    @classmethod
    def _resolve_model(cls, value: Path, info: ValidationInfo) -> Path:
        return existing_file(value, info, "model")

    @field_validator("crop")
    @classmethod
    def _crop(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = value
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError("need 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
        return value

    @model_validator(mode="after")
    def _samples(self) -> "DriverModelOptions":
        if self.max_samples < self.min_samples:
            raise LocatedError(("max_samples",), "must be at least min_samples")
        return self


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
    def from_config(cls, options: DriverModelOptions, ctx: RuleContext) -> "DriverCropRule":
        model = ctx.crop_models.get(ctx.name)
        if model is None:
            model = OnnxCropModel(
                options.model,
                input_size=options.input_size,
                positive_class=options.positive_class,
                mean=options.mean,
                std=options.std,
                channel_order=options.channel_order,
            )
        return cls(
            ctx.name,
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


RULES = tuple(
    RuleSpec(name, DriverModelOptions, DriverCropRule.from_config, files=("model",))
    for name in ("seatbelt", "phone_use")
)
