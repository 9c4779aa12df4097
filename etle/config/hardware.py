"""What the machine is, as far as the choice of model cares: the CPU's int8 arithmetic.

In the configuration layer so that the options (:func:`etle.config.run.fast_detector`) can
depend on it; :mod:`etle.onnxrt` re-exports :func:`cpu`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

__all__ = ["cpu"]


def cpu() -> dict[str, Any]:
    """This machine's CPU as far as int8 inference cares: its model name, cores and whether it
    has VNNI (``vnni``: True / False, None where unknown).

    Without VNNI, ONNX Runtime's uint8 x int8 convolutions can saturate on 8-bit weights, so the
    int8 vehicle detector's results there can differ from the figures measured on a VNNI CPU
    (:data:`etle.train.export.VEHICLE_REDUCE_RANGE`).  The features come from NumPy's own CPU
    detection (``AVX512VNNI``) and, on Linux, the kernel's flags (``avx_vnni``, the 256-bit form).
    """
    return dict(_read_cpu())


@functools.lru_cache(maxsize=1)
def _read_cpu() -> dict[str, Any]:
    import platform

    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    vnni: bool | None = None
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            features = {}
    if features or flags:
        vnni = bool(features.get("AVX512VNNI")) or bool(flags & {"avx512_vnni", "avx_vnni"})
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        vnni = None  # the saturation concerns x86's vpmaddubsw only
    return {"model": model, "cores": os.cpu_count() or 0, "vnni": vnni}
