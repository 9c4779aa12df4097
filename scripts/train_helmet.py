#!/usr/bin/env python
"""Train the head-crop helmet classifier and export it to ONNX (models/helmet/).

Data: the Roboflow "Helmet and no helmet rider detection" export (CC BY 4.0), YOLO format with
boxes around riders' heads, classes 0 "With Helmet", 1 "Without Helmet"; train / valid / test
splits as shipped (no source image is in two splits).  The held-apart test split and the
independent bikeshelmets_subset are scored only at the end, never used to choose anything.

Classes of the model: 0 helmet, 1 no_helmet, 2 background (not a head: torsos, bikes, road;
cut at random from the same photos away from every labelled head), so that a badly placed
run-time crop reads as "not a head" rather than as a guess.

The crops are the run-time crops (:func:`etle.helmet.crops.square_crop`, ``CONTEXT`` times the
head box), jittered in position and scale as much as the run-time head estimate errs, and
degraded like CCTV footage (low resolution, blur, JPEG, colour casts such as the blue tint of
the Cilacap E-TLE camera).  Besides the labelled head boxes, the heads *the run finds* are
trained on (``--run-crops``, default): the vehicle detector's person boxes on each train image ->
the fixed head estimate :func:`etle.helmet.crops.head_box` (``--run-heads estimate``, what the
shipped model was trained with) or the heads the head detector finds in them (``--run-heads
detector``, as the rule's default ``heads: detector`` places them), matched to the labelled head
their centre falls in, so the classifier learns the crops it gets at run time (person detections
cached under ``--cache``).

Model (``--arch yolo``, default): layers 0-6 of the COCO YOLOv8n of the manifest's
``vehicle-detector`` (its ONNX weights, nothing downloaded; needs the ``ultralytics`` extra for
the layer definitions), fine-tuned, plus a 1x1 conv / pool / linear head; ``INPUT_SIZE`` crops.
The epoch is chosen on the valid split (no-helmet recall at precision >= 0.95 on the valid heads
the run finds), on an exponential moving average of the weights.

    .venv/bin/python scripts/train_helmet.py --data ../shared/data/helmet --epochs 12
    .venv/bin/python scripts/train_helmet.py --data ../shared/data/helmet --eval-only
    .venv/bin/python scripts/train_helmet.py --compare models/helmet/helmet_cls.onnx OTHER.onnx --run-heads detector

Tried on 2026-12-07 and not adopted (``--compare`` on the valid split, heads placed by the head
detector: 151 no-helmet heads of 338): the shipped model 0.927 no-helmet recall at precision
>= 0.95; retrained on the head detector's crops (``--run-heads detector``, 12 epochs) 0.921;
with two more YOLOv8n stages (``--yolo-layers 9``, stride 32, 1.17 M parameters, 4.7 MB) 0.907.
On the labelled heads all three lie within 0.012 (0.895 / 0.907 / 0.901).  The classifier, not
the head placement, is what limits run mode now.  Looked at by eye, its errors on valid (threshold
0.6) are mostly scarves, a bandana, a hat and a turban read as helmets or background, blurred
heads read as bare, and a few heads whose label looks wrong (helmets labelled bare).

Measured: 518 s (12 epochs, 128 x 128) on 2 CPU cores shared with other jobs (torch), with the
person detections already cached; caching them for the train split takes about 4 minutes more.
Writes models/helmet/helmet_cls.onnx and models/helmet/metrics.json (precision / recall per
split); update the sha256 and size of the `helmet-classifier` entry in models/manifest.yaml after
retraining, and check the threshold in run mode on the valid split (``etle eval helmet
.../valid``); ``--operating-threshold`` moves a threshold chosen there onto the rule's default 0.6.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from etle.helmet.crops import CONTEXT, HEAD_OF_HEIGHT, INPUT_SIZE, square_crop, to_input  # noqa: E402
from etle.types import Box  # noqa: E402

CLASSES = ("helmet", "no_helmet", "background")
PATCH = 2 * INPUT_SIZE  # cached patch side; the head box occupies the middle PATCH / PATCH_SCALE pixels
PATCH_SCALE = 3.0


# ------------------------------------------------------------------------------------ data
def _patch(image: np.ndarray, box: Box) -> np.ndarray:
    return square_crop(image, box, context=PATCH_SCALE, size=PATCH)


def _yolo_boxes(label_file: str, w: int, h: int) -> list[tuple[int, Box]]:
    out = []
    with open(label_file, encoding="utf-8") as f:
        for line in f:
            p = line.split()
            if len(p) != 5:
                continue
            c, cx, cy, bw, bh = int(p[0]), *(float(v) for v in p[1:])
            x1, y1 = (cx - bw / 2) * w, (cy - bh / 2) * h
            x2, y2 = (cx + bw / 2) * w, (cy + bh / 2) * h
            box = Box(max(x1, 0), max(y1, 0), min(x2, w), min(y2, h))
            if box.width >= 4 and box.height >= 4 and c in (0, 1):
                out.append((c, box))
    return out


def _background_boxes(rng: random.Random, heads: list[Box], w: int, h: int, n: int) -> list[Box]:
    out: list[Box] = []
    sides = [max(b.width, b.height) for b in heads] or [min(w, h) / 6]
    for _ in range(n * 20):
        if len(out) >= n:
            break
        s = rng.choice(sides) * rng.uniform(0.6, 1.6)
        if s >= min(w, h) * 0.9:
            continue
        x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
        cand = Box(x, y, x + s, y + s)
        grown = cand.expand(0.25)
        if all(grown.intersection(hb) < 0.15 * hb.area for hb in heads):
            out.append(cand)
    return out


def _labelled_images(root: Path, split: str):
    """(stem, BGR image, label file) of every readable image of a split that has labels."""
    for img_file in sorted(glob.glob(str(root / split / "images" / "*"))):
        stem = Path(img_file).stem
        lab = root / split / "labels" / f"{stem}.txt"
        if not lab.is_file():
            continue
        image = cv2.imread(img_file)
        if image is None:
            continue
        yield stem, image, lab


def load_split(root: Path, split: str, *, background_per_image: int = 1, seed: int = 0):
    """Patches (N, PATCH, PATCH, 3) uint8 and labels (N,) of one Roboflow split."""
    rng = random.Random(seed)
    patches, labels = [], []
    for stem, image, lab in _labelled_images(root, split):
        h, w = image.shape[:2]
        heads = _yolo_boxes(str(lab), w, h)
        for c, box in heads:
            patches.append(_patch(image, box))
            labels.append(c)
        for box in _background_boxes(rng, [b for _, b in heads], w, h, background_per_image):
            patches.append(_patch(image, box))
            labels.append(2)
    return np.stack(patches), np.asarray(labels, np.int64)


def load_run_heads(root: Path, split: str, cache: Path | None = None, *, heads: str = "detector"):
    """Patches and labels of the heads the *run* finds in the vehicle detector's person boxes,
    each matched to the labelled head its centre falls in (the class of that label):

    - ``heads="detector"`` (the no_helmet rule's default): the heads the head detector finds in
      each person's head region that are the person's own
      (:func:`etle.helmet.heads.find_own_heads`, one per place), as ``etle eval helmet --heads
      detector`` finds them;
    - ``heads="estimate"``: :func:`etle.helmet.crops.head_box`, the fixed estimate from the box.

    At run time the classifier sees these crops, placed as the run places them, which differ
    from the labelled boxes; they teach it those crops.  Person detections are cached in
    ``cache`` (an .npz) because the vehicle detector is the slow part."""
    from etle.helmet.crops import head_box

    det_cache: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        det_cache = dict(np.load(cache, allow_pickle=False))
    detector = None
    head_detector = None
    if heads == "detector":
        from etle.helmet.heads import load_head_detector

        head_detector = load_head_detector()
    patches, labels = [], []
    for stem, image, lab in _labelled_images(root, split):
        h, w = image.shape[:2]
        if stem not in det_cache:
            if detector is None:
                from etle.detect.detector import load_detector

                detector = load_detector()
            det_cache[stem] = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in detector.detect(image) if d.label == "person"],
                                       np.float32).reshape(-1, 4)
        persons = [Box(*map(float, b)) for b in det_cache[stem]]
        if head_detector is not None:
            from etle.helmet.heads import dedupe, find_own_heads

            run_heads = [f.box for f in dedupe([f for _, own in find_own_heads(head_detector, image, persons) for f in own])]
        else:
            run_heads = [hb for hb in (head_box(p, frame_width=w, frame_height=h, min_px=8.0) for p in persons) if hb is not None]
        used: set[int] = set()
        for c, box in _yolo_boxes(str(lab), w, h):
            best = None
            for k, hb in enumerate(run_heads):
                cx, cy = (hb.x1 + hb.x2) / 2, (hb.y1 + hb.y2) / 2
                if k in used or not (box.x1 <= cx <= box.x2 and box.y1 <= cy <= box.y2):
                    continue
                d = abs(cx - (box.x1 + box.x2) / 2) + abs(cy - (box.y1 + box.y2) / 2)
                if best is None or d < best[0]:
                    best = (d, k)
            if best is None:
                continue
            used.add(best[1])
            patches.append(_patch(image, run_heads[best[1]]))
            labels.append(c)
    if cache is not None and detector is not None:
        np.savez(cache, **det_cache)
    if not patches:
        return np.zeros((0, PATCH, PATCH, 3), np.uint8), np.zeros(0, np.int64)
    return np.stack(patches), np.asarray(labels, np.int64)


def load_bikeshelmets(root: Path):
    """Patches and labels of the labelled heads of bikeshelmets_subset (no background)."""
    patches, labels = [], []
    cls = {"With Helmet": 0, "Without Helmet": 1}
    with open(root / "labels.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    cache: dict[str, np.ndarray | None] = {}
    for r in rows:
        if r["class"] not in cls:
            continue
        name = r["filename"]
        if name not in cache:
            cache[name] = cv2.imread(str(root / "images" / name))
        image = cache[name]
        if image is None:
            continue
        box = Box(float(r["xmin"]), float(r["ymin"]), float(r["xmax"]), float(r["ymax"]))
        h, w = image.shape[:2]
        if box.width < 4 or box.height < 4 or box.x2 > w + 2 or box.y2 > h + 2:
            print(f"[data] bikeshelmets: skipping label outside its image: {dict(r)} ({w}x{h})", flush=True)
            continue
        patches.append(_patch(image, box))
        labels.append(cls[r["class"]])
    return np.stack(patches), np.asarray(labels, np.int64)


# ----------------------------------------------------------------------------- augmentation
def _centre_crop(patch: np.ndarray, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    head = PATCH / PATCH_SCALE
    side = head * CONTEXT * scale
    cx, cy = PATCH / 2 + dx * side, PATCH / 2 + dy * side
    box = Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return square_crop(patch, box, context=1.0, size=INPUT_SIZE)


def augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = _centre_crop(
        patch,
        scale=rng.uniform(0.8, 1.4),
        dx=rng.uniform(-0.18, 0.18),
        dy=rng.uniform(-0.18, 0.12),
    )
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = img.astype(np.float32)
    # colour: channel gains, brightness/contrast, casts, greyscale
    img *= rng.uniform(0.75, 1.25, size=3)[None, None, :]
    if rng.random() < 0.3:  # blue/cyan cast of a mis-white-balanced CCTV camera
        img = img * np.array([1.0, 0.9, 0.7])[None, None, :] + np.array([60.0, 30.0, 0.0])[None, None, :]
    if rng.random() < 0.15:
        img[:] = img.mean(axis=2, keepdims=True)
    c = rng.uniform(0.7, 1.3)
    img = (img - img.mean()) * c + img.mean() + rng.uniform(-30, 30)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # resolution: CCTV heads are 15-40 px
    if rng.random() < 0.6:
        s = int(rng.integers(12, 40))
        img = cv2.resize(cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA), (INPUT_SIZE, INPUT_SIZE))
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 1.2))
    if rng.random() < 0.3:
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 80))])
        if ok:
            img = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img)


# ------------------------------------------------------------------------------------ model
def build_model(arch: str = "yolo", layers: int = 7):
    """``yolo``: the first stages (layers 0-6, stride 16) of the COCO YOLOv8n of the manifest's
    ``vehicle-detector`` (weights read from its ONNX file: pretrained, nothing downloaded) and a
    small new head; ``cnn``: the small CNN from scratch of the first releases."""
    import torch.nn as nn

    if arch == "yolo":
        return _yolo_model(layers)

    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 16), nn.MaxPool2d(2),  # 32
        *block(16, 32), nn.MaxPool2d(2),  # 16
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),  # 8
        *block(64, 96), *block(96, 96), nn.MaxPool2d(2),  # 4
        *block(96, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, len(CLASSES)),
    )


YOLO_LAYERS = 7  # layers 0-6 of YOLOv8n: 128 channels at stride 16
#: output channels of YOLOv8n's backbone after its first N layers
YOLO_CHANNELS = {5: 64, 7: 128, 9: 256, 10: 256}


def _yolo_model(layers: int = YOLO_LAYERS):
    """YOLOv8n layers 0..layers-1 with the COCO weights of the vehicle detector's ONNX
    (batch norm folded into the convolutions, as exported), then conv 1x1 -> pool -> linear."""
    import onnx
    import torch
    import torch.nn as nn
    from onnx import numpy_helper
    from ultralytics.nn.tasks import DetectionModel

    from etle.models import registry

    det = DetectionModel("yolov8n.yaml", nc=80, verbose=False)
    det.fuse(verbose=False)  # the ONNX export carries fused conv weights + biases
    onnx_model = onnx.load(str(registry.resolve("vehicle-detector")))
    weights = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    state = det.state_dict()
    loaded = 0
    for k in state:
        if k in weights:
            w = torch.from_numpy(weights[k].copy())
            if w.shape != state[k].shape:
                raise SystemExit(f"YOLOv8n weight {k}: {tuple(w.shape)} in the ONNX, {tuple(state[k].shape)} in the model")
            state[k] = w
            loaded += 1
    det.load_state_dict(state)
    backbone = det.model[:layers]
    n_bb = sum(1 for k in state if k.split(".")[1].isdigit() and int(k.split(".")[1]) < layers)
    print(f"[model] YOLOv8n layers 0-{layers - 1}: {loaded} COCO tensors loaded ({n_bb} backbone tensors)", flush=True)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(*backbone)
            self.head = nn.Sequential(
                nn.Conv2d(YOLO_CHANNELS[layers], 256, 1, bias=False), nn.BatchNorm2d(256), nn.SiLU(inplace=True),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(256, len(CLASSES)),
            )

        def forward(self, x):
            return self.head(self.backbone(x))

    net = Net()
    for prm in net.parameters():  # ultralytics' fuse() freezes the fused convolutions
        prm.requires_grad_(True)
    return net


def predict_torch(model, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            x = torch.from_numpy(to_input(crops[i : i + batch]))
            out.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(out)


def metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Precision/recall of 'no_helmet' and of 'helmet' on labelled heads (argmax over 3 classes).

    A head classified as background counts as a miss for its class and as a positive for none.
    """
    pred = probs.argmax(axis=1)
    out: dict = {"n": int(len(labels)), "n_no_helmet": int((labels == 1).sum()), "n_helmet": int((labels == 0).sum())}
    for name, c in (("no_helmet", 1), ("helmet", 0)):
        tp = int(((pred == c) & (labels == c)).sum())
        fp = int(((pred == c) & (labels != c) & (labels != 2)).sum())  # heads of the other class
        fn = int(((pred != c) & (labels == c)).sum())
        out[name] = {
            "tp": tp, "fp": fp, "fn": fn,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        }
    heads = labels != 2
    out["head_accuracy"] = round(float((pred[heads] == labels[heads]).mean()), 4) if heads.any() else None
    out["heads_called_background"] = int((pred[heads] == 2).sum())
    if (labels == 2).any():
        out["background_recall"] = round(float((pred[labels == 2] == 2).mean()), 4)
    return out


def recall_at_precision(probs: np.ndarray, labels: np.ndarray, min_precision: float = 0.95,
                        max_background: float = 0.5) -> tuple[float, float]:
    """The best no-helmet recall over thresholds on p(no_helmet) (crops called background never
    count) whose precision among heads reaches ``min_precision``; (recall, threshold)."""
    heads = labels != 2
    p, y = probs[heads], labels[heads] == 1
    n_pos = int(y.sum())
    best = (0.0, 1.0)
    for t in np.arange(0.30, 0.96, 0.02):
        called = (p[:, 1] >= t) & (p[:, 2] < max_background)
        tp, fp = int((called & y).sum()), int((called & ~y).sum())
        if tp and tp / (tp + fp) >= min_precision and n_pos and tp / n_pos > best[0]:
            best = (tp / n_pos, float(t))
    return best


def eval_crops(patches: np.ndarray) -> np.ndarray:
    """The run-time crop of each patch: the head box centred, CONTEXT around it, no jitter."""
    return np.stack([_centre_crop(p) for p in patches])


def export_onnx(model, path: Path) -> None:
    import onnx
    import torch

    model.eval()
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        model, dummy, str(tmp), input_names=["crops"], output_names=["logits"],
        dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False,
    )
    m = onnx.load(str(tmp))
    meta = {
        "classes": ",".join(CLASSES),
        "input": f"N x 3 x {INPUT_SIZE} x {INPUT_SIZE} float32 RGB in [0,1]",
        "context": str(CONTEXT),
        "dataset": "Roboflow 'Helmet and no helmet rider detection' (CC BY 4.0)",
        "head_of_height": str(HEAD_OF_HEIGHT),
    }
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, str(path))
    tmp.unlink(missing_ok=True)


#: the no_helmet rule's (and ``etle eval helmet``'s) default threshold on p(no_helmet)
RULE_THRESHOLD = 0.6


def set_operating_threshold(path: Path, threshold: float) -> float:
    """Shift the no_helmet logit of the exported model so that p(no_helmet) >= RULE_THRESHOLD
    exactly where the uncalibrated model gave p(no_helmet) >= ``threshold`` (softmax: a logit
    offset b maps p to p e^b / (p e^b + 1 - p), monotonic).  The threshold is chosen on the
    valid split in run mode; the offset is recorded in the metadata.  Returns the offset."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    if any(p.key == "no_helmet_logit_offset" for p in m.metadata_props):
        raise SystemExit(f"{path} is calibrated already (metadata no_helmet_logit_offset)")
    gemm = [n for n in m.graph.node if n.op_type == "Gemm"][-1]
    init = {i.name: i for i in m.graph.initializer}
    bias = init[gemm.input[2]]
    b = numpy_helper.to_array(bias).copy()
    offset = float(np.log((1 - threshold) / threshold * RULE_THRESHOLD / (1 - RULE_THRESHOLD)))
    b[1] += offset
    bias.CopyFrom(numpy_helper.from_array(b.astype(np.float32), bias.name))
    props = {p.key: p for p in m.metadata_props}
    for k, v in (("no_helmet_logit_offset", f"{offset:.6f}"), ("operating_threshold", f"{threshold:g}")):
        if k in props:
            props[k].value = v
        else:
            q = m.metadata_props.add()
            q.key, q.value = k, v
    onnx.save(m, str(path))
    return offset


def onnx_predict(path: Path, crops: np.ndarray) -> np.ndarray:
    from etle.helmet.classifier import HelmetClassifier

    clf = HelmetClassifier(path)
    return clf.predict(list(crops))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "helmet")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "helmet" / "helmet_cls.onnx")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-only", action="store_true", help="score the existing --out model")
    ap.add_argument("--operating-threshold", type=float, default=None,
                    help="calibrate the --out model (once, after training): the p(no_helmet) threshold of the "
                         "uncalibrated model chosen on valid in run mode becomes the rule's default 0.6")
    ap.add_argument("--run-crops", action=argparse.BooleanOptionalAction, default=True,
                    help="also train (and choose the epoch) on the heads the run finds from the detector's person boxes")
    ap.add_argument("--run-heads", choices=("detector", "estimate"), default="estimate",
                    help="how --run-crops places the heads: found by the head detector in each person's box (the "
                         "rule's default, heads: detector) or the fixed estimate from the box (heads: estimate)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/etle-helmet-detections"),
                    help="folder for the cached person detections of --run-crops")
    ap.add_argument("--ema", type=float, default=0.995, help="decay of the weight average, per step")
    ap.add_argument("--run-repeat", type=int, default=2, help="times each run-time head of train is drawn per epoch")
    ap.add_argument("--arch", choices=("yolo", "cnn"), default="yolo",
                    help="yolo: pretrained YOLOv8n stages + new head (default); cnn: the small CNN from scratch")
    ap.add_argument("--yolo-layers", type=int, choices=sorted(YOLO_CHANNELS), default=YOLO_LAYERS,
                    help="--arch yolo: how many of YOLOv8n's backbone layers the classifier keeps (7: stride 16, 9: stride 32)")
    ap.add_argument("--compare", type=Path, nargs="+", default=None, metavar="ONNX",
                    help="only print the epoch-choice figures of these models on the valid split (no-helmet recall "
                         "at precision >= 0.95 on the heads --run-heads places, and on the labelled heads), then exit")
    args = ap.parse_args()
    rob = args.data / "roboflow_helmet_ccby"
    if args.compare:
        args.cache.mkdir(parents=True, exist_ok=True)
        vx, vy = load_run_heads(rob, "valid", args.cache / "valid.npz", heads=args.run_heads)
        lx, ly = load_split(rob, "valid", seed=args.seed + 1)
        run_crops, lab_crops = eval_crops(vx), eval_crops(lx)
        print(f"valid: {int((vy == 1).sum())} no-helmet heads of {len(vy)} placed by --run-heads {args.run_heads}; "
              f"{int((ly == 1).sum())} of {int((ly != 2).sum())} labelled", flush=True)
        for path in args.compare:
            r_run, t_run = recall_at_precision(onnx_predict(path, run_crops), vy)
            r_lab, t_lab = recall_at_precision(onnx_predict(path, lab_crops), ly)
            print(f"{path}: R@P0.95 run {r_run:.3f} (thr {t_run:.2f}), labelled {r_lab:.3f} (thr {t_lab:.2f})", flush=True)
        return 0
    if args.operating_threshold is not None:
        if not args.eval_only:
            raise SystemExit("--operating-threshold calibrates a trained model: use it with --eval-only")
        offset = set_operating_threshold(args.out, args.operating_threshold)
        print(f"[calibrate] {args.out}: no_helmet logit {offset:+.4f} (threshold {args.operating_threshold:g} -> {RULE_THRESHOLD:g})")
    t_start = time.time()
    print("[data] loading", rob, flush=True)
    test_x, test_y = load_split(rob, "test", seed=args.seed + 2)
    bikes_x, bikes_y = load_bikeshelmets(args.data / "bikeshelmets_subset")
    if not args.eval_only:
        import torch
        import torch.nn as nn

        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        rng = np.random.default_rng(args.seed)
        train_x, train_y = load_split(rob, "train", seed=args.seed)
        val_x, val_y = load_split(rob, "valid", seed=args.seed + 1)
        if args.run_crops:
            args.cache.mkdir(parents=True, exist_ok=True)
            rx, ry = load_run_heads(rob, "train", args.cache / "train.npz", heads=args.run_heads)
            vx, vy = load_run_heads(rob, "valid", args.cache / "valid.npz", heads=args.run_heads)
            print(f"[data] run-time heads: train {len(ry)} ({np.bincount(ry, minlength=3).tolist()}), "
                  f"valid {len(vy)} ({np.bincount(vy, minlength=3).tolist()})", flush=True)
            train_x = np.concatenate([train_x, *([rx] * args.run_repeat)])
            train_y = np.concatenate([train_y, *([ry] * args.run_repeat)])
            val_run_crops, val_run_y = eval_crops(vx), vy
        print(f"[data] train {len(train_y)} ({np.bincount(train_y).tolist()}), valid {len(val_y)}, "
              f"test {len(test_y)}, bikeshelmets {len(bikes_y)}  ({time.time() - t_start:.0f} s)", flush=True)
        val_crops = eval_crops(val_x)
        model = build_model(args.arch, args.yolo_layers)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"[model] {args.arch}: {n_params} parameters", flush=True)
        if args.arch == "yolo":  # pretrained stages learn slower than the new head
            groups = [{"params": model.backbone.parameters(), "lr": args.lr * 0.3},
                      {"params": model.head.parameters(), "lr": args.lr}]
            max_lr = [args.lr * 0.3, args.lr]
        else:
            groups, max_lr = [{"params": model.parameters(), "lr": args.lr}], args.lr
        opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=1e-4)
        steps = args.epochs * ((len(train_y) + args.batch - 1) // args.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=0.15)
        counts = np.bincount(train_y, minlength=3).astype(np.float32)
        weight = torch.tensor(counts.sum() / (3 * counts), dtype=torch.float32)
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=0.05)
        best, best_state = -1.0, None
        # the exponential moving average of the weights is what is scored and exported: steadier
        # from epoch to epoch than the raw weights on a valid split of a few hundred heads
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema), use_buffers=True)
        for epoch in range(args.epochs):
            model.train()
            order = rng.permutation(len(train_y))
            t0, total = time.time(), 0.0
            for i in range(0, len(order), args.batch):
                idx = order[i : i + args.batch]
                x = torch.from_numpy(to_input(np.stack([augment(train_x[j], rng) for j in idx])))
                y = torch.from_numpy(train_y[idx])
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                sched.step()
                ema.update_parameters(model)
                total += float(loss.detach()) * len(idx)
            scored = ema.module
            m = metrics(predict_torch(scored, val_crops), val_y)
            score = (m["no_helmet"]["recall"] or 0) + (m["no_helmet"]["precision"] or 0) + (m["head_accuracy"] or 0)
            run_note = ""
            if args.run_crops:
                # what matters on the road: no-helmet recall at precision >= 0.95 on the valid heads the run finds
                r_run, t_run = recall_at_precision(predict_torch(scored, val_run_crops), val_run_y)
                r_lab, _ = recall_at_precision(predict_torch(scored, val_crops), val_y)
                score = r_run + 0.5 * r_lab + 0.01 * (m["head_accuracy"] or 0)
                run_note = f" | R@P0.95 run {r_run:.3f} (thr {t_run:.2f}) labelled {r_lab:.3f}"
            print(f"[epoch {epoch + 1}/{args.epochs}] loss {total / len(order):.4f} valid no_helmet "
                  f"P {m['no_helmet']['precision']} R {m['no_helmet']['recall']} head acc {m['head_accuracy']} "
                  f"bg R {m.get('background_recall')}{run_note}  ({time.time() - t0:.0f} s)", flush=True)
            if score > best:
                best = score
                best_state = {k: v.clone() for k, v in scored.state_dict().items()}
        assert best_state is not None
        model.load_state_dict(best_state)
        export_onnx(model, args.out)
        train_s = time.time() - t_start
        print(f"[export] {args.out} ({args.out.stat().st_size} B), training {train_s:.0f} s", flush=True)
    else:
        train_s = None
        val_x, val_y = load_split(rob, "valid", seed=args.seed + 1)
    result = {
        "model": str(args.out.relative_to(REPO)) if args.out.is_relative_to(REPO) else str(args.out),
        "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        "size": args.out.stat().st_size,
        "classes": list(CLASSES),
        "decision": "argmax over helmet / no_helmet / background on the run-time crop of each labelled head",
        "valid": metrics(onnx_predict(args.out, eval_crops(val_x)), val_y),
        "test": metrics(onnx_predict(args.out, eval_crops(test_x)), test_y),
        "bikeshelmets_subset": metrics(onnx_predict(args.out, eval_crops(bikes_x)), bikes_y),
        "command": " ".join(["scripts/train_helmet.py", *sys.argv[1:]]),
    }
    if train_s is not None:
        result["train_seconds"] = round(train_s)
        result["threads"] = args.threads
        result["epochs"] = args.epochs
        result["arch"] = args.arch
        result["yolo_layers"] = args.yolo_layers
        result["run_heads"] = args.run_heads if args.run_crops else None
        result["input_size"] = INPUT_SIZE
    metrics_path = args.out.parent / "metrics.json"
    if train_s is None and metrics_path.is_file():
        old = json.loads(metrics_path.read_text())
        for k in ("train_seconds", "threads", "epochs", "command", "input_size", "arch", "yolo_layers", "run_heads", "chosen_on_valid", "note"):
            if k in old:
                result[k] = old[k]
        if args.operating_threshold is not None:
            result["calibration"] = {"operating_threshold": args.operating_threshold,
                                     "command": " ".join(["scripts/train_helmet.py", *sys.argv[1:]])}
    metrics_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("test", "bikeshelmets_subset")}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
