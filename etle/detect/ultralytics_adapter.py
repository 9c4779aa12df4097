"""Load Ultralytics ``.pt`` detectors offline (the only module that imports ultralytics/torch).

Used for any ``.pt`` vehicle detector (``etle run`` with a ``.pt`` model), the ``.pt`` plate
detector and the ONNX export (:mod:`etle.train.export`).  The plate detector's weights (``plate-detector-pt``, from the ``pyplatex`` wheel) were pickled by
ultralytics 8.0.112, whose classes lived under ``ultralytics.yolo.*``.  Current ultralytics moved
them, so unpickling needs the old module paths aliased in ``sys.modules`` first.  Ultralytics also
tries to download fonts/assets and to pip-install missing packages at run time; ``YOLO_OFFLINE=1``
and ``YOLO_AUTOINSTALL=False`` keep it from reaching the network (a missing package then fails
with an error instead of an install).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from etle.errors import MissingDependencyError, ModelError
from etle.types import Box, Detection

log = logging.getLogger(__name__)

#: old module path -> current one, for checkpoints pickled by ultralytics 8.0.x
LEGACY_MODULES: dict[str, str] = {
    "ultralytics.yolo": "ultralytics",
    "ultralytics.yolo.utils": "ultralytics.utils",
    "ultralytics.yolo.v8": "ultralytics.models.yolo",
    "ultralytics.yolo.data": "ultralytics.data",
}


def offline_env() -> None:
    """Tell ultralytics not to touch the network (idempotent; respects values already set)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")


def _pillow_open() -> Any:
    """Pillow's ``Image.open`` as it is now (None without Pillow)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with ultralytics
        return None
    return Image.open


def _restore_pillow_open(original: Any) -> None:
    """Undo ultralytics' monkey-patch of ``PIL.Image.open`` (``ultralytics.utils.patches``, for
    HEIC files): its replacement names its first parameter ``filename``, so every later
    ``Image.open(fp=...)`` in the process (pypdf, reportlab) failed with a TypeError."""
    if original is None:
        return
    from PIL import Image

    if Image.open is not original:
        log.debug("restoring PIL.Image.open after ultralytics replaced it")
        Image.open = original


def import_ultralytics(purpose: str = "a .pt model") -> Any:
    """Import ultralytics offline with the legacy aliases in place; returns the module."""
    offline_env()
    pil_open = _pillow_open()
    try:
        ultralytics = importlib.import_module("ultralytics")
        importlib.import_module("ultralytics.utils")  # where the patches are applied
    except ImportError as exc:
        raise MissingDependencyError("ultralytics", "ultralytics", purpose) from exc
    finally:
        _restore_pillow_open(pil_open)
    for old, new in LEGACY_MODULES.items():
        if old not in sys.modules:
            try:
                sys.modules[old] = importlib.import_module(new)
            except ImportError as exc:  # pragma: no cover - depends on the ultralytics version
                log.debug("cannot alias %s -> %s: %s", old, new, exc)
    return ultralytics


def load_yolo(path: str | Path, task: str = "detect", purpose: str = "a .pt model") -> Any:
    """An ``ultralytics.YOLO`` model from a local file, never from a hub."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    ultralytics = import_ultralytics(purpose)
    try:
        return ultralytics.YOLO(str(p), task=task)
    except Exception as exc:  # ultralytics/torch raise many untyped errors on bad checkpoints
        raise ModelError(f"ultralytics cannot load {p}: {exc}") from exc


class UltralyticsDetector:
    """Any ultralytics detection model behind ``detect(image) -> list[Detection]``."""

    def __init__(
        self,
        path: str | Path,
        *,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        imgsz: int = 320,
        label: str | None = None,
        keep: frozenset[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.model = load_yolo(path)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.imgsz = imgsz
        self.label = label
        self.keep = keep
        self.device = device
        names = getattr(self.model, "names", {}) or {}
        self.names = [str(names[k]) for k in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]

    def detect(self, image: np.ndarray) -> list[Detection]:
        res = self.model.predict(
            image,
            conf=self.conf_threshold,
            iou=self.iou_threshold,
            imgsz=self.imgsz,
            device=self.device,
            verbose=False,
        )
        out: list[Detection] = []
        if not res:
            return out
        boxes = res[0].boxes
        if boxes is None or len(boxes) == 0:
            return out
        xyxy = boxes.xyxy.cpu().numpy()
        conf = boxes.conf.cpu().numpy()
        cls = boxes.cls.cpu().numpy().astype(int)
        for (x1, y1, x2, y2), c, k in zip(xyxy.tolist(), conf.tolist(), cls.tolist()):
            name = self.label or (self.names[k] if k < len(self.names) else str(k))
            if self.keep is not None and name not in self.keep:
                continue
            out.append(Detection(Box(x1, y1, x2, y2), name, float(c)))
        return out


class UltralyticsTracker:
    """``YOLO.track(persist=True)`` frame by frame: the usual public-project loop (detection
    and ultralytics' own ByteTrack on every frame).  ``etle bench`` runs it as the naive
    baseline; etle's own pipeline tracks with :mod:`etle.track.bytetrack`."""

    def __init__(
        self,
        path: str | Path,
        *,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        keep: frozenset[str] | None = None,
        tracker: str = "bytetrack.yaml",
    ) -> None:
        self.model = load_yolo(path, purpose="ultralytics tracking")
        names = getattr(self.model, "names", {}) or {}
        self.names = [str(names[k]) for k in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
        self.classes = [i for i, n in enumerate(self.names) if keep is None or n in keep] or None
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.tracker = tracker

    def track(self, image: np.ndarray) -> list[tuple[int, Detection]]:
        """(track id, detection) of the confirmed tracks in this frame."""
        try:
            res = self.model.track(
                image, persist=True, conf=self.conf_threshold, iou=self.iou_threshold, classes=self.classes,
                tracker=self.tracker, device="cpu", verbose=False,
            )
        except Exception as exc:  # ultralytics raises untyped errors (e.g. a missing 'lap')
            raise ModelError(f"ultralytics tracking failed: {exc}") from exc
        boxes = res[0].boxes if res else None
        if boxes is None or boxes.id is None or len(boxes) == 0:
            return []
        out: list[tuple[int, Detection]] = []
        for (x1, y1, x2, y2), c, k, tid in zip(
            boxes.xyxy.cpu().numpy().tolist(), boxes.conf.cpu().numpy().tolist(),
            boxes.cls.cpu().numpy().astype(int).tolist(), boxes.id.cpu().numpy().astype(int).tolist(),
        ):
            name = self.names[k] if k < len(self.names) else str(k)
            out.append((int(tid), Detection(Box(x1, y1, x2, y2), name, float(c))))
        return out
