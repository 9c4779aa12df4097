"""Plate detectors: find licence plates in an image (usually a vehicle crop).

Every detector returns :class:`~etle.types.Detection` objects labelled ``"plate"`` with boxes in
the pixels of the image it was given.  Three implementations:

* :class:`OnnxPlateDetector` (default) -- the YOLOv8n plate detector exported to ONNX
  (``plate-detector``, made by ``etle models prepare``), run with ONNX Runtime through
  :class:`etle.detect.onnx_yolo.OnnxYolo`; no torch needed.
* :class:`UltralyticsPlateDetector` -- the same weights as the original ``.pt``
  (``plate-detector-pt``) through ultralytics + torch (the ``ultralytics`` extra).
* :class:`CascadePlateDetector` -- OpenCV's Haar cascade for plates (``plate-cascade``); a weak,
  model-free fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from etle.errors import MissingDependencyError, ModelError
from etle.models import registry
from etle.types import Box, Detection

log = logging.getLogger(__name__)

PLATE_LABEL = "plate"


@runtime_checkable
class PlateDetector(Protocol):
    """``detect(image)`` -> plates (label ``"plate"``) in ``image``'s pixel coordinates."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def _relabel(dets: list[Detection]) -> list[Detection]:
    return [Detection(d.box, PLATE_LABEL, d.confidence) for d in dets]


def _usable(image: np.ndarray) -> bool:
    return image is not None and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 8


class OnnxPlateDetector:
    """The ONNX export of the YOLOv8n plate detector (see the module docstring)."""

    name = "onnx"

    model = "plate-detector"

    def __init__(
        self, path: str | Path | None = None, *, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
        threads: int | None = None, rect: bool = False,
    ) -> None:
        from etle.detect.onnx_yolo import OnnxYolo

        if path is None:
            try:
                path = registry.resolve(self.model)
            except ModelError as exc:
                raise ModelError(f"the ONNX plate detector '{self.model}' is not ready: {exc} (run: etle models prepare)") from exc
        # square 320x320 inputs: vehicle crops come in every shape, and a reshaped session per
        # shape cost ~37 MB each (12 shapes on the shared clips: +450 MB) for 10.3 vs 12.5 ms
        self.model = OnnxYolo(
            path, names=[PLATE_LABEL], conf_threshold=conf_threshold, iou_threshold=iou_threshold, threads=threads, rect=rect
        )

    def detect(self, image: np.ndarray) -> list[Detection]:
        if not _usable(image):
            return []
        return _relabel(self.model.detect(image))


class TnkbPlateDetector(OnnxPlateDetector):
    """The plate detector fine-tuned here on Indonesian plates (``plate-detector-tnkb``, see
    ``scripts/train_plate_detector.py``): finds the small, tilted, dark plates of motorcycles
    that the original misses."""

    name = "tnkb"
    model = "plate-detector-tnkb"


class UltralyticsPlateDetector:
    """The original ``.pt`` plate detector through ultralytics (``ultralytics`` extra)."""

    name = "ultralytics"

    def __init__(self, path: str | Path | None = None, *, conf_threshold: float = 0.25, iou_threshold: float = 0.45, imgsz: int | None = None) -> None:
        from etle.detect.ultralytics_adapter import UltralyticsDetector

        if path is None:
            path = registry.resolve("plate-detector-pt")
        if imgsz is None:
            from etle.models.registry import plate_detector_imgsz

            imgsz = plate_detector_imgsz()
        self.model = UltralyticsDetector(path, conf_threshold=conf_threshold, iou_threshold=iou_threshold, imgsz=imgsz, label=PLATE_LABEL)

    def detect(self, image: np.ndarray) -> list[Detection]:
        if not _usable(image):
            return []
        return self.model.detect(image)


class CascadePlateDetector:
    """OpenCV's Haar plate cascade: no deep model, low recall; a fallback only.

    The cascade was trained on Russian plates (one line, wide); it gives no score, so every hit
    gets ``confidence``.  Small images are upscaled so that a plate spans at least ``min_size``.
    """

    name = "cascade"

    def __init__(self, path: str | Path | None = None, *, scale_factor: float = 1.1, min_neighbors: int = 3, min_size: tuple[int, int] = (40, 12), confidence: float = 0.5) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise ModelError("this OpenCV has no CascadeClassifier; " + registry.spec("plate-cascade").install_hint())
        p = Path(path) if path is not None else registry.resolve("plate-cascade")
        self.cascade = cv2.CascadeClassifier(str(p))
        if self.cascade.empty():
            raise ModelError(f"cannot load the plate cascade {p}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.confidence = confidence

    def detect(self, image: np.ndarray) -> list[Detection]:
        if not _usable(image):
            return []
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        scale = 1.0
        if gray.shape[1] < 320:
            scale = 320.0 / gray.shape[1]
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        hits = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=self.min_size)
        h, w = image.shape[:2]
        out = []
        for x, y, bw, bh in np.asarray(hits).reshape(-1, 4).tolist():
            box = Box(x / scale, y / scale, (x + bw) / scale, (y + bh) / scale).clip(w, h)
            out.append(Detection(box, PLATE_LABEL, self.confidence))
        return out


_DETECTORS: dict[str, Callable[..., PlateDetector]] = {
    "onnx": OnnxPlateDetector,
    "ultralytics": UltralyticsPlateDetector,
    "pt": UltralyticsPlateDetector,
    "tnkb": TnkbPlateDetector,
    "cascade": CascadePlateDetector,
}


def default_plate_detector(country: str = "id") -> str:
    """The plate detector measured best for a plate format: ``tnkb`` (fine-tuned on Indonesian
    plates; it finds the small, tilted motorcycle plates the original misses: 35 vs 11 of 36 on
    the Cilacap stop line, and 47 vs 35 of 50 EU plates at IoU >= 0.5) for ``id``; ``onnx`` for
    other countries (one more exact read end to end on the EU set: 42 vs 41 of 50)."""
    return "tnkb" if country == "id" else "onnx"


def load_plate_detector(kind: str = "onnx", **kwargs: object) -> PlateDetector:
    """Build a plate detector: ``onnx`` (default), ``tnkb``, ``ultralytics`` (alias ``pt``) or ``cascade``.

    Raises :class:`~etle.errors.ModelError` (or its subclass
    :class:`~etle.errors.MissingDependencyError`) with what to install or run when unavailable.
    """
    key = kind.lower()
    if key not in _DETECTORS:
        raise ModelError(f"unknown plate detector '{kind}'; known: onnx, tnkb, ultralytics, cascade")
    try:
        return _DETECTORS[key](**kwargs)
    except MissingDependencyError:
        raise
    except ModelError:
        raise
    except (OSError, cv2.error) as exc:
        raise ModelError(f"cannot load the {key} plate detector: {exc}") from exc
