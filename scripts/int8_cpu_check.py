#!/usr/bin/env python3
"""Do etle's int8 models give the same outputs on a CPU without VNNI as on this one?

ONNX Runtime runs a uint8 x int8 convolution on CPUs without VNNI (AVX2, AVX-512 before
Cascade Lake, AMD Zen 2/3) with ``vpmaddubsw``, which adds pairs of products in 16 bits and can
saturate with 8-bit weights; 7-bit weights (``reduce_range``) cannot.  This script feeds the
same inputs to each int8 model natively and under ``qemu-x86_64 -cpu Haswell`` (an AVX2 CPU
without VNNI, emulated: slow, a few minutes) and prints how far the outputs differ.  It needs
``qemu-user`` (``apt-get install qemu-user``) and the prepared models (``etle models prepare``).

Inputs: two frames of the bundled sample clip for the vehicle detector, registration views of
eight plates rendered by :mod:`etle.train.synth` for the recognisers (no shared data needed).

    .venv/bin/python scripts/int8_cpu_check.py [--cpu Haswell] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = ("vehicle-detector-int8", "ocr-rapidocr-rec-int8", "ocr-rapidocr-rec-distant")


def _inputs(name: str) -> np.ndarray:
    if name == "vehicle-detector-int8":
        from etle.train.export import calibration_frames

        frames = calibration_frames(REPO / "sample_videos" / "intel_car_detection_parking.mp4", 8, (640, 640))
        return np.concatenate(frames[2:4])
    from etle.train.export import plate_calibration_inputs

    return np.concatenate(plate_calibration_inputs(8, seed=1))


def _run(paths: dict[str, str], inputs: Path, out: Path) -> None:
    """Run each model on its inputs, one at a time, one thread (the worker side)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    data = np.load(inputs)
    results = {}
    for name, path in paths.items():
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        x = data[name]
        results[name] = np.concatenate([s.run(None, {s.get_inputs()[0].name: x[i : i + 1]})[0] for i in range(len(x))])
    np.savez(out, **results)


def _weight_bits(path: Path) -> str:
    """``7-bit`` when every int8 weight of the QDQ graph lies in [-64, 64] (``reduce_range``), else ``8-bit``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    deq = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.name in deq and i.data_type == onnx.TensorProto.INT8]
    if not weights:
        return "no int8 weights"
    return "7-bit" if all(w.min() >= -64 and w.max() <= 64 for w in weights) else "8-bit"


def _compare(name: str, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    if name == "vehicle-detector-int8":  # (n, 4 + classes, anchors): boxes, then class scores
        sa, sb = a[:, 4:].max(1), b[:, 4:].max(1)
        keep = (sa > 0.1) | (sb > 0.1)
        return {"score_max_diff": float(np.abs(sa - sb).max()),
                "boxes_over_0.25": [int((sa > 0.25).sum()), int((sb > 0.25).sum())],
                "box_max_diff_px_where_scored": float(np.abs(a[:, :4] - b[:, :4]).max(1)[keep].max()) if keep.any() else 0.0}
    return {"prob_max_diff": float(np.abs(a - b).max()),
            "steps_with_another_character": float((a.argmax(-1) != b.argmax(-1)).mean())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", default="Haswell", help="qemu CPU model without VNNI (default Haswell)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--worker", nargs=3, metavar=("PATHS_JSON", "INPUTS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _run(json.loads(args.worker[0]), Path(args.worker[1]), Path(args.worker[2]))
        return 0
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print("qemu-x86_64 not found: apt-get install qemu-user", file=sys.stderr)
        return 2
    from etle.models import registry

    paths = {n: str(registry.resolve(n)) for n in MODELS}
    with tempfile.TemporaryDirectory(prefix="etle-int8-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **{n: _inputs(n) for n in MODELS})
        worker = [sys.executable, __file__, "--worker", json.dumps(paths), str(inputs)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([*worker, str(Path(tmp) / "native.npz")], check=True, env=env)
        subprocess.run([qemu, "-cpu", args.cpu, *worker, str(Path(tmp) / "emulated.npz")], check=True, env=env,
                       stderr=subprocess.DEVNULL)
        native, emulated = np.load(Path(tmp) / "native.npz"), np.load(Path(tmp) / "emulated.npz")
        report = {}
        for name in MODELS:
            report[name] = {"weights": _weight_bits(Path(paths[name])), **_compare(name, native[name], emulated[name])}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").is_file() else "unknown"
    print(f"native: {cpu}; emulated: qemu -cpu {args.cpu} (no VNNI)")
    for name, r in report.items():
        print(f"  {name} ({r['weights']}): " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "weights"))
    if args.json:
        args.json.write_text(json.dumps({"kind": "int8_cpu_check", "native": cpu, "emulated": args.cpu, "models": report},
                                        indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
