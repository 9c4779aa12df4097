#!/usr/bin/env python
"""Quantise the shipped distant-plate recogniser again, with 7-bit weights, without retraining.

``models/plate_ocr/pp_ocrv6_rec_distant_int8.onnx`` was first quantised with 8-bit weights,
whose uint8 x int8 sums saturate on CPUs without VNNI (see ``PLATE_REDUCE_RANGE`` in
:mod:`etle.train.export`; ``scripts/int8_cpu_check.py`` measures it).  Its float weights are
recovered exactly from the QDQ graph (``(w - zero_point) * scale`` per output channel, the
activations' quantise/dequantise pairs dropped), then quantised as the training script now does
(:func:`etle.train.export._quantize_qdq`, convolutions, 7-bit weights), calibrated on the same
kind of input: 200 rendered plates, three quarters of them distant
(``scripts/train_plate_ocr_distant.py``'s ``make_batch``, seed 7 as its ``--seed 0`` run).

    .venv/bin/python scripts/requantize_plate_ocr_distant.py [--out PATH]

Prints the new file's size and sha256 for the ``ocr-rapidocr-rec-distant`` manifest entry.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

MODEL = REPO / "models" / "plate_ocr" / "pp_ocrv6_rec_distant_int8.onnx"


def dequantized(model):  # noqa: ANN001, ANN201 - onnx ModelProto in and out
    """The float graph a QDQ model was made from: weight DequantizeLinear nodes folded into float
    initializers, activation QuantizeLinear -> DequantizeLinear pairs removed."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    rename: dict[str, str] = {}
    drop: list = []
    new_inits = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        src = node.input[0]
        if src in inits:  # a weight: fold it
            q = numpy_helper.to_array(inits[src]).astype(np.float32)
            scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = np.reshape(zero, shape) if np.ndim(zero) == 1 else zero
            new_inits.append(numpy_helper.from_array(((q - zero) * scale).astype(np.float32), node.output[0]))
            drop.append(node)
        elif src in producers and producers[src].op_type == "QuantizeLinear":  # an activation pair
            rename[node.output[0]] = producers[src].input[0]
            drop.extend([node, producers[src]])
    for node in drop:
        if node in graph.node:
            graph.node.remove(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for out in graph.output:
        if out.name in rename:
            raise SystemExit(f"a graph output ({out.name}) is quantised: not a model this script knows")
    graph.initializer.extend(new_inits)
    used = {i for n in graph.node for i in n.input}
    for init in list(graph.initializer):
        if init.name not in used:
            graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=MODEL)
    ap.add_argument("--calibration", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="the training run's --seed (calibration uses seed + 7)")
    args = ap.parse_args()

    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from train_plate_ocr_distant import DISTANT_SHARE, make_batch

    from etle.train.export import PLATE_REDUCE_RANGE, _quantize_qdq
    from etle.train.synth import find_fonts

    base = onnx.load(str(MODEL))
    meta = {p.key: p.value for p in base.metadata_props}
    flt = dequantized(base)
    with tempfile.TemporaryDirectory(prefix="etle-requant-") as tmp:
        raw, pre, q7 = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        onnx.save(flt, str(raw))
        quant_pre_process(str(raw), str(pre), skip_symbolic_shape=True)
        rng = np.random.default_rng(args.seed + 7)
        batch = [x[None] for x in make_batch(rng, find_fonts(), args.calibration, DISTANT_SHARE)[0]]
        _quantize_qdq(pre, q7, "x", batch, "ocr-rapidocr-rec-distant", reduce_range=PLATE_REDUCE_RANGE,
                      op_types_to_quantize=["Conv"])
        m = onnx.load(str(q7))
        del m.metadata_props[:]
        for k, v in meta.items():
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, str(q7))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(q7, args.out)
    data = args.out.read_bytes()
    print(f"wrote {args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
