"""The one place etle imports Ultralytics (and so torch): ``.pt`` detectors.

Imported lazily; without the ``ultralytics`` extra a clear error names what to install.
``YOLO_OFFLINE=1`` is set so Ultralytics never tries to reach a hub or pip-install at run time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from etle.errors import MissingDependencyError, ModelError
from etle.types import Box, Detection


def import_ultralytics() -> Any:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import ultralytics
    except ImportError as exc:
        raise MissingDependencyError("ultralytics", "ultralytics", "running a .pt model") from exc
    return ultralytics


def alias_legacy_modules() -> None:
    """Let current Ultralytics unpickle checkpoints saved by 8.0.x (old module paths)."""
    import importlib

    aliases = {
        "ultralytics.yolo": "ultralytics",
        "ultralytics.yolo.utils": "ultralytics.utils",
        "ultralytics.yolo.v8": "ultralytics.models.yolo",
        "ultralytics.yolo.data": "ultralytics.data",
    }
    for old, new in aliases.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)


def load_yolo(path: str | Path, task: str = "detect") -> Any:
    ultralytics = import_ultralytics()
    alias_legacy_modules()
    try:
        return ultralytics.YOLO(str(path), task=task)
    except Exception as exc:  # ultralytics raises many untyped errors
        raise ModelError(f"cannot load {path} with ultralytics: {exc}") from exc


class UltralyticsDetector:
    """A ``.pt`` YOLO detector run through Ultralytics."""

    def __init__(
        self,
        path: str | Path,
        *,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        keep: frozenset[str] | None = None,
        imgsz: int = 640,
    ) -> None:
        self.model = load_yolo(path)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.keep = keep
        self.imgsz = imgsz

    def detect(self, image: np.ndarray) -> list[Detection]:
        res = self.model.predict(image, conf=self.conf_threshold, iou=self.iou_threshold, imgsz=self.imgsz, verbose=False)[0]
        names = res.names
        out: list[Detection] = []
        boxes = res.boxes
        for xyxy, conf, cls in zip(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy()):
            label = str(names[int(cls)])
            if self.keep is not None and label not in self.keep:
                continue
            out.append(Detection(Box(*map(float, xyxy)), label, float(conf)))
        return out
