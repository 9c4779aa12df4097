"""The contract between a crop rule and its image model, and an ONNX Runtime implementation.

A *crop model* scores small image crops.  Rules that look at a part of a vehicle (a rider's
head for helmets, the driver's side of the windscreen for seatbelts and phones) cut the crops
and hand them over in one batch per frame.

The contract (what a user who brings an ONNX model must match):

* **input** -- one tensor ``N x 3 x S x S`` float32: the crops resized to ``S x S`` (``S`` is
  read from the model's input shape; give ``input_size`` when it is dynamic), RGB channel
  order, values ``(pixel / 255 - mean) / std`` with ``mean`` / ``std`` from the config (default
  ``0`` / ``1``, i.e. plain ``[0, 1]``).  Set ``channel_order: bgr`` for a model trained on BGR.
* **output** -- the first output, either ``N x C`` (class scores; softmax is applied unless
  the rows already are probabilities) or ``N`` / ``N x 1`` (the probability -- or a logit,
  which is squashed by a sigmoid -- of the violation class).  ``positive_class`` names the
  column of the violation (default ``1``; ignored for a single output).

:meth:`OnnxCropModel.violation_scores` returns one probability in ``[0, 1]`` per crop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from etle.errors import ModelError

__all__ = ["CropModel", "OnnxCropModel", "probabilities"]

log = logging.getLogger(__name__)


@runtime_checkable
class CropModel(Protocol):
    """Scores BGR uint8 crops of any size: the probability of the violation, one per crop."""

    def violation_scores(self, crops: Sequence[np.ndarray]) -> np.ndarray: ...


def probabilities(raw: np.ndarray) -> np.ndarray:
    """Turn a model's raw ``N x C`` output into probabilities (softmax unless already ones)."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[:, None]
    if raw.shape[1] == 1:
        col = raw[:, 0]
        if np.all((col >= 0) & (col <= 1)):
            return col[:, None]
        return (1.0 / (1.0 + np.exp(-col)))[:, None]
    rows = raw.sum(axis=1)
    if np.all(raw >= 0) and np.allclose(rows, 1.0, atol=1e-3):
        return raw
    z = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxCropModel:
    """An ONNX crop classifier run on the CPU with ONNX Runtime (see the module contract)."""

    def __init__(
        self,
        path: str | Path,
        *,
        input_size: int | None = None,
        positive_class: int = 1,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        channel_order: str = "rgb",
        threads: int = 1,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"crop model {self.path} not found")
        if channel_order not in ("rgb", "bgr"):
            raise ValueError("channel_order must be 'rgb' or 'bgr'")
        from etle.onnxrt import inference_session

        try:
            self._session = inference_session(self.path, threads, what="crop model", inter_threads=1)
        except ModelError as exc:
            raise ModelError(f"crop model {self.path} cannot be loaded: {exc}") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"crop model {self.path}: expected one N x 3 x S x S input, got {[i.shape for i in inputs]}")
        shape = inputs[0].shape
        if shape[1] not in (3, "3") and not isinstance(shape[1], str):
            raise ModelError(f"crop model {self.path}: input must have 3 channels, got shape {shape}")
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if fixed:
            if len(set(fixed)) != 1 or len(fixed) != 2:
                raise ModelError(f"crop model {self.path}: input must be square, got shape {shape}")
            if input_size is not None and input_size != fixed[0]:
                raise ModelError(f"crop model {self.path}: input_size {input_size} but the model takes {fixed[0]}")
            input_size = fixed[0]
        if input_size is None:
            raise ModelError(f"crop model {self.path}: the input size is dynamic; give input_size")
        self._batch_fixed = shape[0] if isinstance(shape[0], int) else None
        self.input_size = int(input_size)
        self.positive_class = positive_class
        self._input_name = inputs[0].name
        self._mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self._bgr = channel_order == "bgr"
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        s = self.input_size
        out = np.empty((len(crops), 3, s, s), np.float32)
        for i, crop in enumerate(crops):
            if crop.ndim != 3 or crop.shape[2] != 3 or crop.size == 0:
                raise ValueError(f"crop {i}: need an HxWx3 BGR image, got shape {crop.shape}")
            if crop.shape[:2] != (s, s):
                interp = cv2.INTER_AREA if max(crop.shape[:2]) > s else cv2.INTER_LINEAR
                crop = cv2.resize(crop, (s, s), interpolation=interp)
            img = crop if self._bgr else crop[..., ::-1]
            out[i] = img.transpose(2, 0, 1)
        out /= 255.0
        return (out - self._mean) / self._std

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities ``N x C`` (``N x 1`` for a single-output model)."""
        if not crops:
            return np.zeros((0, 1))
        x = self.prepare(crops)
        if self._batch_fixed is not None and self._batch_fixed != len(crops):
            rows = [self._session.run(None, {self._input_name: x[i : i + 1]})[0] for i in range(len(crops))]
            raw = np.concatenate([np.asarray(r).reshape(1, -1) for r in rows])
        else:
            raw = np.asarray(self._session.run(None, {self._input_name: x})[0]).reshape(len(crops), -1)
        return probabilities(raw)

    def violation_scores(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        probs = self.predict(crops)
        if probs.shape[0] == 0:
            return np.zeros(0)
        if probs.shape[1] == 1:
            return probs[:, 0]
        if not 0 <= self.positive_class < probs.shape[1]:
            raise ModelError(f"crop model {self.path}: positive_class {self.positive_class} but {probs.shape[1]} outputs")
        return probs[:, self.positive_class]
