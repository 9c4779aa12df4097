#!/usr/bin/env python
"""Train the head detector of ``etle.helmet.heads`` (helmet / no_helmet heads inside a rider's
head region) and export it to ONNX.

    .venv/bin/python scripts/train_head_detector.py --data ../shared/data/helmet/roboflow_helmet_ccby \\
        --out /tmp/headdet --epochs 12

Data: the Roboflow "Helmet and no helmet rider detection" export (CC BY 4.0), YOLO format with
boxes around riders' heads, classes 0 "With Helmet", 1 "Without Helmet"; train / valid splits as
shipped (the test split is never read here: it is scored by ``etle eval helmet`` at the end).

The training crops are the run-time crops: the vehicle detector's ``person`` boxes on each photo
(cached under ``--cache``, the same cache as ``scripts/train_helmet.py``) ->
:func:`etle.helmet.heads.head_region` -> :func:`etle.helmet.heads.cut_region`, labelled with the
labelled heads whose centre lies in the region.  Regions without a labelled head are left out
(the export labels riders' heads only, so a pedestrian's head there would be taught as
background).  On the train split each labelled head also gets one region from a made-up person
box around it (the geometry of a seated rider, jittered), so heads the detector misses still
teach the model, and a third of the crops are degraded like CCTV footage (down- and up-scaled,
JPEG).

Start weights: the COCO YOLOv8n of the manifest's ``vehicle-detector`` (its ONNX, batch norm
folded; unfolded here into convolutions with identity batch norms, nothing downloaded); the
class convolutions of the head are new (2 classes).  Needs the ``ultralytics`` extra.  Every
epoch's weights are kept (``<out>/run/weights/epochN.pt``); which one ships is decided in run
mode on the valid split, as the no_helmet rule judges heads (found heads classified by the
helmet classifier):

    .venv/bin/python scripts/train_head_detector.py --export /tmp/headdet/run/weights/epoch9.pt  # each
    .venv/bin/python scripts/train_head_detector.py --choose $(ls -v /tmp/headdet/run/weights/epoch*.onnx) \
        --json models/helmet/head_det_choice.json

Measured (2026-12-07, 2 cores, shared with other jobs): person boxes for the train and valid
splits about 4 minutes, 7,043 train and 366 valid crops; 12 epochs of about 4.5 minutes.  The
committed ``models/helmet/head_det.onnx`` is ``epoch9`` of ``--epochs 12 --seed 0`` (the scores
of every epoch: ``models/helmet/head_det_choice.json``; ultralytics writes the last epoch as
``last.pt``, exported there as ``epoch11``).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from etle.helmet.heads import REGION_ABOVE, REGION_SIZE, cut_region, head_region  # noqa: E402
from etle.types import Box  # noqa: E402


def person_boxes(root: Path, split: str, cache: Path) -> dict[str, np.ndarray]:
    """stem -> (N, 4) person boxes of the vehicle detector, cached in ``cache`` (.npz)."""
    det_cache: dict[str, np.ndarray] = dict(np.load(cache, allow_pickle=False)) if cache.is_file() else {}
    detector = None
    files = sorted(glob.glob(str(root / split / "images" / "*")))
    t0 = time.time()
    for i, f in enumerate(files):
        stem = Path(f).stem
        if stem in det_cache:
            continue
        image = cv2.imread(f)
        if image is None:
            continue
        if detector is None:
            from etle.detect.detector import load_detector

            detector = load_detector()
        det_cache[stem] = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in detector.detect(image) if d.label == "person"],
                                   np.float32).reshape(-1, 4)
        if i % 200 == 0:
            print(f"[persons] {split} {i}/{len(files)} {time.time() - t0:.0f}s", flush=True)
    if detector is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **det_cache)
    return det_cache


def _made_up_person(head: Box, rng: np.random.Generator) -> Box:
    """A seated rider's box around a labelled head: head about a quarter of the height, the box
    2-2.6 heads wide, the head off-centre by up to half a head."""
    side = max(head.width, head.height)
    hgt = side / rng.uniform(0.2, 0.32)
    wid = side * rng.uniform(1.6, 2.8)
    cx = (head.x1 + head.x2) / 2 + rng.uniform(-0.5, 0.5) * side
    top = head.y1 - rng.uniform(-0.15, 0.15) * side
    return Box(cx - wid / 2, top, cx + wid / 2, top + hgt)


def _degrade(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = crop.shape[0]
    small = int(s * rng.uniform(0.25, 0.6))
    out = cv2.resize(cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA), (s, s), interpolation=cv2.INTER_LINEAR)
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 80))])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else out


def write_split(root: Path, split: str, persons: dict[str, np.ndarray], out: Path, *, made_up: bool, seed: int) -> int:
    rng = np.random.default_rng(seed)
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    from etle.evaluate.helmet import read_set

    by_image: dict[Path, list[tuple[int, Box]]] = {}
    for item in read_set(root / split):  # the labelled heads, as etle eval helmet reads them
        by_image.setdefault(item.image, []).append((int(item.no_helmet), item.box))
    n = 0
    for path, heads in by_image.items():
        stem = path.stem
        image = cv2.imread(str(path))
        if image is None:
            continue
        h, w = image.shape[:2]
        heads = [(c, hb) for c, hb in heads if hb.width > 1 and hb.height > 1]
        regions = [head_region(Box(*map(float, b)), frame_width=w, frame_height=h) for b in persons.get(stem, np.zeros((0, 4)))]
        if made_up:
            regions += [head_region(_made_up_person(hb, rng), frame_width=w, frame_height=h) for _, hb in heads]
        for k, region in enumerate(r for r in regions if r is not None):
            rows = []
            for c, hb in heads:
                cx, cy = hb.center
                if not (region.x1 <= cx <= region.x2 and region.y1 <= cy <= region.y2):
                    continue
                x1, y1 = max(hb.x1, region.x1), max(hb.y1, region.y1)
                x2, y2 = min(hb.x2, region.x2), min(hb.y2, region.y2)
                s = region.width
                rows.append(f"{c} {((x1 + x2) / 2 - region.x1) / s:.6f} {((y1 + y2) / 2 - region.y1) / s:.6f} {(x2 - x1) / s:.6f} {(y2 - y1) / s:.6f}")
            if not rows:
                continue
            try:
                crop = cut_region(image, region)
            except ValueError:
                continue
            if made_up and rng.random() < 0.33:
                crop = _degrade(crop, rng)
            name = f"{stem}_{k}"
            cv2.imwrite(str(out / "images" / split / f"{name}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
            (out / "labels" / split / f"{name}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
            n += 1
    print(f"[data] {split}: {n} crops", flush=True)
    return n


def coco_checkpoint(path: Path) -> Path:
    """An ultralytics checkpoint of YOLOv8n holding the COCO weights of the manifest's
    ``vehicle-detector`` ONNX: each folded convolution becomes the convolution plus a batch norm
    that passes it through (weight 1, mean 0, variance 1 - eps, bias the folded bias)."""
    import onnx
    import torch
    from onnx import numpy_helper
    from ultralytics.nn.tasks import DetectionModel

    from etle.models import registry

    det = DetectionModel("yolov8n.yaml", nc=80, verbose=False)
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(registry.resolve("vehicle-detector"))).graph.initializer}
    state = det.state_dict()
    loaded = 0
    for k in list(state):
        if k.endswith(".conv.weight") and k in weights and k[: -len(".conv.weight")] + ".bn.weight" in state:
            state[k] = torch.from_numpy(weights[k].copy())
            bn = k[: -len(".conv.weight")] + ".bn"
            state[f"{bn}.weight"] = torch.ones_like(state[f"{bn}.weight"])
            state[f"{bn}.bias"] = torch.from_numpy(weights[k[: -len("weight")] + "bias"].copy())
            state[f"{bn}.running_mean"] = torch.zeros_like(state[f"{bn}.running_mean"])
            eps = dict(det.named_modules())[bn].eps
            state[f"{bn}.running_var"] = torch.full_like(state[f"{bn}.running_var"], 1.0 - eps)
            loaded += 1
        elif k in weights and tuple(weights[k].shape) == tuple(state[k].shape):
            state[k] = torch.from_numpy(weights[k].copy())
            loaded += 1
    det.load_state_dict(state)
    print(f"[model] YOLOv8n: {loaded} COCO tensors / convolutions loaded", flush=True)
    det.args = {}
    torch.save({"model": det, "train_args": {}, "date": time.strftime("%Y-%m-%d"), "version": "coco-from-onnx"}, path)
    return path


def choose(data: Path, candidates: list[Path], json_path: Path | None, conf: float | None = None) -> int:
    """Score each exported checkpoint on the valid split in run mode at the rule's threshold
    (0.6): the pick is the highest no-helmet recall with precision >= 0.95, ties to the later
    file in the order given (train longer)."""
    import json

    from etle.detect.detector import load_detector
    from etle.evaluate.helmet import evaluate_set, read_set
    from etle.helmet.classifier import load_helmet_classifier
    from etle.helmet.heads import HeadDetector

    items = read_set(data / "valid")
    detector, clf = load_detector(), load_helmet_classifier()

    class Once:  # the person boxes do not depend on the candidate: detect each photo once
        def __init__(self) -> None:
            self.seen: dict[int, list] = {}

        def detect(self, image):  # type: ignore[no-untyped-def]
            key = hash(image.tobytes())
            if key not in self.seen:
                self.seen[key] = detector.detect(image)
            return self.seen[key]

    persons = Once()
    rows = []
    for path in candidates:
        sc = evaluate_set(items, mode="run", classifier=clf, detector=persons, heads_model=HeadDetector(path) if conf is None else HeadDetector(path, conf_threshold=conf))
        rows.append({"model": path.name, **sc.as_dict()})
        print(f"[choose] {path}: found {sc.found}/{sc.n_heads}, TP {sc.tp} FP {sc.fp} FN {sc.fn}, "
              f"P {sc.precision:.3f} R {sc.recall:.3f}", flush=True)
    ok = [r for r in rows if (r["precision"] or 0) >= 0.95]
    pick = max(reversed(ok), key=lambda r: r["recall"]) if ok else None
    print(f"[choose] pick: {pick['model'] if pick else 'none reaches precision 0.95'}")
    if json_path is not None:
        json_path.write_text(json.dumps({"split": str(data / "valid"), "threshold": 0.6, "rule": "highest recall with precision >= 0.95; ties to the later candidate",
                                         "candidates": rows, "pick": pick and pick["model"]}, indent=1) + "\n", encoding="utf-8")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "helmet" / "roboflow_helmet_ccby")
    ap.add_argument("--out", type=Path, default=Path("/tmp/headdet"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/etle-helmet-detections"))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-data", action="store_true", help="reuse the crops under --out/data")
    ap.add_argument("--export", type=Path, help="only export this checkpoint to ONNX and stop")
    ap.add_argument("--choose", type=Path, nargs="+", metavar="ONNX",
                    help="only score these exported checkpoints on the valid split in run mode (as etle eval "
                         "helmet --mode run) and print which the rule below picks")
    ap.add_argument("--json", type=Path, help="with --choose: also write the scores here")
    ap.add_argument("--conf", type=float, help="with --choose: the head confidence kept (default: etle.helmet.heads.CONF_THRESHOLD)")
    args = ap.parse_args()

    if args.choose:
        return choose(args.data, args.choose, args.json, args.conf)

    from etle.detect.ultralytics_adapter import load_yolo

    if args.export:
        onnx_path = Path(load_yolo(args.export).export(format="onnx", imgsz=REGION_SIZE, simplify=False, dynamic=False, device="cpu"))
        print(f"[done] {onnx_path} ({onnx_path.stat().st_size} bytes)")
        return 0
    data_dir = args.out / "data"
    if not args.skip_data:
        shutil.rmtree(data_dir, ignore_errors=True)
        for split, made_up in (("train", True), ("valid", False)):
            persons = person_boxes(args.data, split, args.cache / f"{split}.npz")
            write_split(args.data, split, persons, data_dir, made_up=made_up, seed=args.seed)
        (data_dir / "data.yaml").write_text(
            f"path: {data_dir.resolve()}\ntrain: images/train\nval: images/valid\nnames:\n  0: helmet\n  1: no_helmet\n", encoding="utf-8")
    init = coco_checkpoint(args.out / "yolov8n_coco.pt")
    model = load_yolo(init)
    model.train(
        data=str(data_dir / "data.yaml"), imgsz=REGION_SIZE, epochs=args.epochs, batch=args.batch, workers=2, device="cpu",
        project=str(args.out.resolve()), name="run", exist_ok=True, seed=args.seed, deterministic=True,
        mosaic=0.0, fliplr=0.5, degrees=0.0, scale=0.25, translate=0.1, hsv_h=0.02, hsv_s=0.5, hsv_v=0.4,
        lr0=0.002, lrf=0.1, warmup_epochs=1, optimizer="AdamW", patience=100, plots=False, amp=False,
        verbose=False, save_period=1, rect=False,
    )
    best = args.out / "run" / "weights" / "best.pt"
    onnx_path = Path(load_yolo(best).export(format="onnx", imgsz=REGION_SIZE, simplify=False, dynamic=False, device="cpu"))
    print(f"[done] {onnx_path} ({onnx_path.stat().st_size} bytes); REGION_ABOVE={REGION_ABOVE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
