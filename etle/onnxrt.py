"""ONNX Runtime session options shared by every etle model.

One place decides how etle's ONNX sessions use the CPU:

* ``threads`` (or ``ETLE_THREADS``): intra-op threads per session; 0/unset lets ONNX Runtime use
  one per core.
* Spinning off by default: after each ``run`` ONNX Runtime keeps its worker threads busy-waiting
  for the next one.  etle runs several sessions in turn on every frame (vehicle detector, plate
  detector, OCR, helmet classifier) beside a decode thread, so on a 2-4 core edge box those
  spinning pools steal the CPU the next model needs.  Measured with ``etle bench``-style runs on
  the Cilacap clip (int8, 6 detections/s, 2 cores): 84.6 -> 126.6 fps on a quiet machine, 48.9 ->
  88.8 fps while another job loaded it.  ``ETLE_ORT_SPIN=1`` turns spinning back on.

The plate text recognisers (:mod:`etle.plate.readers`, :mod:`etle.plate.crnn`) keep ONNX Runtime's
default (spinning): they run in short bursts of two or three calls per plate, where spinning
measured faster (14.8 vs 19.5 ms per ILPR plate), and they take a small share of a frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from etle.errors import MissingDependencyError, ModelError


def spinning() -> bool:
    """Whether sessions may busy-wait between runs (``ETLE_ORT_SPIN=1``; off by default)."""
    return os.environ.get("ETLE_ORT_SPIN", "0").strip() == "1"


def session_options(threads: int | None = None, *, inter_threads: int | None = None) -> Any:
    """``onnxruntime.SessionOptions`` with etle's thread settings (see the module docstring)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise MissingDependencyError("onnxruntime", "core", "ONNX inference") from exc
    opts = ort.SessionOptions()
    n = threads or int(os.environ.get("ETLE_THREADS", "0") or 0)
    if n > 0:
        opts.intra_op_num_threads = n
    if inter_threads:
        opts.inter_op_num_threads = inter_threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if not spinning():
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def inference_session(model: str | Path | bytes, threads: int | None = None, *, what: str = "ONNX model", inter_threads: int | None = None) -> Any:
    """A CPU ``InferenceSession`` for a file or serialised model; :class:`ModelError` when it cannot load."""
    import onnxruntime as ort

    opts = session_options(threads, inter_threads=inter_threads)
    try:
        src = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        where = "(in memory)" if isinstance(model, bytes) else str(model)
        raise ModelError(f"cannot load {what} {where}: {exc}") from exc
