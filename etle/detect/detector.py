"""Vehicle/person detection: a one-verb protocol and the default models behind it.

The default is the COCO YOLOv8n ONNX export from the model manifest, run with ONNX Runtime
(no torch on the run path).  A ``.pt`` file runs through Ultralytics when the ``ultralytics``
extra is installed (see :mod:`etle.detect.ultralytics_adapter`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from etle.errors import ModelError
from etle.types import TRACKED_LABELS, Detection

#: what the vehicle detector keeps: the tracked classes plus traffic lights (signal ROI hints)
DETECT_LABELS: frozenset[str] = TRACKED_LABELS | {"traffic light"}


class Detector(Protocol):
    """Anything that turns a BGR image into detections in that image's pixels."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def load_detector(
    model: str = "vehicle-detector",
    *,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    keep: frozenset[str] | None = DETECT_LABELS,
    threads: int | None = None,
) -> Detector:
    """A detector from a manifest name (default) or a path to an ``.onnx`` / ``.pt`` file."""
    from etle.models import registry

    path: Path
    if model in registry.manifest():
        path = registry.resolve(model)
    else:
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"detector model '{model}' is neither a manifest name nor an existing file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from etle.detect.onnx_yolo import OnnxYolo

        return OnnxYolo(path, conf_threshold=conf_threshold, iou_threshold=iou_threshold, keep=keep, threads=threads)
    if suffix == ".pt":
        from etle.detect.ultralytics_adapter import UltralyticsDetector

        return UltralyticsDetector(path, conf_threshold=conf_threshold, iou_threshold=iou_threshold, keep=keep, imgsz=640)
    raise ModelError(f"detector model {path}: unsupported format '{suffix}' (use .onnx or .pt)")
