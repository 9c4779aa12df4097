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
the Cilacap E-TLE camera).

    .venv/bin/python scripts/train_helmet.py --data ../shared/data/helmet --epochs 26
    .venv/bin/python scripts/train_helmet.py --data ../shared/data/helmet --eval-only

Measured: 28 minutes on 2 CPU cores shared with other jobs (torch).  Writes
models/helmet/helmet_cls.onnx and models/helmet/metrics.json (precision / recall per split); update the sha256 and size of the
`helmet-classifier` entry in models/manifest.yaml after retraining.
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

from etle.helmet.crops import CONTEXT, INPUT_SIZE, square_crop, to_input  # noqa: E402
from etle.types import Box  # noqa: E402

CLASSES = ("helmet", "no_helmet", "background")
PATCH = 128  # cached patch side; the head box occupies the middle PATCH / PATCH_SCALE pixels
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


def load_run_heads(root: Path, split: str, cache: Path | None = None):
    """Patches and labels of the heads the *run* finds: the vehicle detector's person boxes ->
    :func:`etle.helmet.crops.head_box`, each matched to the labelled head its centre falls in
    (the class of that label).  At run time the head is estimated from the rider's box, which
    errs more than the jitter of the labelled crops; these teach the classifier those crops.
    Detections are cached in ``cache`` (an .npz) because the detector is the slow part."""
    from etle.helmet.crops import head_box

    det_cache: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        det_cache = dict(np.load(cache, allow_pickle=False))
    detector = None
    patches, labels = [], []
    for stem, image, lab in _labelled_images(root, split):
        h, w = image.shape[:2]
        if stem not in det_cache:
            if detector is None:
                from etle.detect.detector import load_detector

                detector = load_detector()
            det_cache[stem] = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in detector.detect(image) if d.label == "person"],
                                       np.float32).reshape(-1, 4)
        run_heads = [hb for hb in (head_box(Box(*map(float, b)), frame_width=w, frame_height=h, min_px=8.0) for b in det_cache[stem])
                     if hb is not None]
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
def build_model():
    import torch.nn as nn

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
    }
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, str(path))
    tmp.unlink(missing_ok=True)


def onnx_predict(path: Path, crops: np.ndarray) -> np.ndarray:
    from etle.helmet.classifier import HelmetClassifier

    clf = HelmetClassifier(path)
    return clf.predict(list(crops))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "helmet")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "helmet" / "helmet_cls.onnx")
    ap.add_argument("--epochs", type=int, default=26)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-only", action="store_true", help="score the existing --out model")
    ap.add_argument("--run-crops", action="store_true",
                    help="also train (and choose the epoch) on the heads the run finds from the detector's person boxes")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/etle-helmet-detections"),
                    help="folder for the cached person detections of --run-crops")
    args = ap.parse_args()
    rob = args.data / "roboflow_helmet_ccby"
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
            rx, ry = load_run_heads(rob, "train", args.cache / "train.npz")
            vx, vy = load_run_heads(rob, "valid", args.cache / "valid.npz")
            print(f"[data] run-time heads: train {len(ry)}, valid {len(vy)}", flush=True)
            train_x, train_y = np.concatenate([train_x, rx]), np.concatenate([train_y, ry])
            val_x, val_y = np.concatenate([val_x, vx]), np.concatenate([val_y, vy])
        print(f"[data] train {len(train_y)} ({np.bincount(train_y).tolist()}), valid {len(val_y)}, "
              f"test {len(test_y)}, bikeshelmets {len(bikes_y)}  ({time.time() - t_start:.0f} s)", flush=True)
        val_crops = eval_crops(val_x)
        model = build_model()
        n_params = sum(p.numel() for p in model.parameters())
        print(f"[model] {n_params} parameters", flush=True)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        steps = args.epochs * ((len(train_y) + args.batch - 1) // args.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
        counts = np.bincount(train_y, minlength=3).astype(np.float32)
        weight = torch.tensor(counts.sum() / (3 * counts), dtype=torch.float32)
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=0.05)
        best, best_state = -1.0, None
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
                total += float(loss.detach()) * len(idx)
            m = metrics(predict_torch(model, val_crops), val_y)
            score = (m["no_helmet"]["recall"] or 0) + (m["no_helmet"]["precision"] or 0) + (m["head_accuracy"] or 0)
            print(f"[epoch {epoch + 1}/{args.epochs}] loss {total / len(order):.4f} valid no_helmet "
                  f"P {m['no_helmet']['precision']} R {m['no_helmet']['recall']} head acc {m['head_accuracy']} "
                  f"bg R {m.get('background_recall')}  ({time.time() - t0:.0f} s)", flush=True)
            if score > best:
                best = score
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
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
    metrics_path = args.out.parent / "metrics.json"
    if train_s is None and metrics_path.is_file():
        old = json.loads(metrics_path.read_text())
        for k in ("train_seconds", "threads", "epochs", "command"):
            if k in old:
                result[k] = old[k]
    metrics_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("test", "bikeshelmets_subset")}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
