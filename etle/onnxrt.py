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

Device (``--device`` of ``etle run`` / ``etle batch``, ``device:`` of a site file, or
``ETLE_DEVICE``): ``cpu`` (default), ``cuda`` or ``auto``.  ``cuda`` and ``auto`` put the
sessions made here (the vehicle and plate detectors, crop classifiers) on ONNX Runtime's
TensorRT and CUDA execution providers when this ONNX Runtime has them (the ``onnxruntime-gpu``
wheel and a GPU); ``cuda`` fails with :class:`ModelError` where they are missing, ``auto`` warns
once and stays on the CPU.

The plate text recognisers (:mod:`etle.plate.readers`, :mod:`etle.plate.crnn`) keep ONNX Runtime's
default (spinning): they run in short bursts of two or three calls per plate, where spinning
measured faster (14.8 vs 19.5 ms per ILPR plate), and they take a small share of a frame.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from etle.config.hardware import cpu  # noqa: F401 - re-exported (etle models check, the evals' JSON)
from etle.config.run import DEVICES  # noqa: F401 - the device names, re-exported
from etle.config.settings import settings
from etle.errors import MissingDependencyError, ModelError

log = logging.getLogger(__name__)

DEVICE_ENV = "ETLE_DEVICE"
#: GPU execution providers in ONNX Runtime's order of preference
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_warned: set[str] = set()


def device() -> str:
    """The device asked for (``ETLE_DEVICE``; default ``cpu``); :class:`ConfigError` for another value."""
    return settings().device


def set_device(value: str) -> str:
    """Ask for ``value`` (cpu, cuda, auto) for every session made from now on in this process
    and its children; checked at once, so ``cuda`` without a GPU provider fails before any work."""
    os.environ[DEVICE_ENV] = value.strip().lower()
    providers(device())
    return device()


def providers(wanted: str | None = None, available: list[str] | None = None) -> list[str]:
    """The execution providers for ``wanted`` (default :func:`device`), best first, CPU last."""
    wanted = wanted or device()
    if wanted == "cpu":
        return ["CPUExecutionProvider"]
    if available is None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            raise MissingDependencyError("onnxruntime", "core", "ONNX inference") from exc
        available = list(ort.get_available_providers())
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if gpu:
        return [*gpu, "CPUExecutionProvider"]
    message = (f"no GPU execution provider in this ONNX Runtime (it has {', '.join(available) or 'none'}): "
               "install onnxruntime-gpu (and CUDA/TensorRT) on a machine with an NVIDIA GPU")
    if wanted == "cuda":
        raise ModelError(f"--device cuda: {message}")
    if "auto" not in _warned:
        _warned.add("auto")
        log.warning("--device auto: %s; running on the CPU", message)
    return ["CPUExecutionProvider"]


def spinning() -> bool:
    """Whether sessions may busy-wait between runs (``ETLE_ORT_SPIN=1``; off by default)."""
    return settings().ort_spin


def session_options(threads: int | None = None, *, inter_threads: int | None = None) -> Any:
    """``onnxruntime.SessionOptions`` with etle's thread settings (see the module docstring)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise MissingDependencyError("onnxruntime", "core", "ONNX inference") from exc
    opts = ort.SessionOptions()
    n = threads or settings().threads
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
    """An ``InferenceSession`` for a file or serialised model on the device asked for (see the
    module docstring; the CPU by default); :class:`ModelError` when it cannot load."""
    import onnxruntime as ort

    opts = session_options(threads, inter_threads=inter_threads)
    wanted = device()
    chosen = providers(wanted)
    where = "(in memory)" if isinstance(model, bytes) else str(model)
    try:
        src = model if isinstance(model, bytes) else str(model)
        session = ort.InferenceSession(src, sess_options=opts, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load {what} {where}: {exc}") from exc
    if wanted != "cpu" and chosen[0] != "CPUExecutionProvider":
        used = list(session.get_providers())
        if not any(p in used for p in GPU_PROVIDERS):  # the GPU provider failed to initialise
            if wanted == "cuda":
                raise ModelError(f"--device cuda: {what} {where} could not run on the GPU (providers: {', '.join(used)})")
            if "auto-fallback" not in _warned:
                _warned.add("auto-fallback")
                log.warning("--device auto: the GPU provider did not initialise for %s; running on the CPU", what)
    return session


