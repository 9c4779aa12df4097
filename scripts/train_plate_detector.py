#!/usr/bin/env python
"""Fine-tune the YOLOv8n plate detector on rendered TNKB plates composited into real photos.

    .venv/bin/python scripts/train_plate_detector.py \
        --photos ../shared/data/helmet/roboflow_helmet_ccby/train/images --out /tmp/platedet

Data: crops of the rider photos of the Roboflow "Helmet and no helmet rider detection" export
(CC BY 4.0; images from Pexels, Kaggle and Roboflow users), each with 0-2 plates rendered by
``etle.train.synth`` pasted in by ``etle.train.synth_scene.compose``.  Plates already in a photo
are labelled by the original detector (``plate-detector``, confidence >= --pseudo-conf) so that
they are not taught as background.  Start weights: ``plate-detector-pt`` (pyplatex, YOLOv8n).

Writes the dataset under --out, trains with ultralytics on the CPU (keeping every epoch's
weights: ``<out>/run/weights/epochN.pt``), and exports the last weights to ONNX at --imgsz
(``<out>/plate_detector_tnkb.onnx``).  Needs the ``ultralytics`` extra.

Which epoch to ship is decided on real photographs, not on the synthetic validation split: the
synthetic mAP kept rising while the detector got worse on real plates.  The committed weights
(``models/plate_det/``) are the checkpoint after epoch 3 of ``--epochs 8 --seed 0``, stripped of
the optimiser state (``ultralytics.utils.torch_utils.strip_optimizer``); see
``models/plate_det/README.md`` for the figures.  About 4.5 minutes an epoch on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")


def build_dataset(photos: list[Path], out: Path, n_train: int, n_val: int, seed: int, pseudo_conf: float) -> Path:
    from etle.plate.detector import OnnxPlateDetector
    from etle.train.synth import find_fonts
    from etle.train.synth_scene import compose, to_yolo

    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    det = OnnxPlateDetector(conf_threshold=pseudo_conf)
    order = rng.permutation(len(photos))
    # photos split before compositing: no photo feeds both train and val
    cut = max(1, len(order) // 10)
    split = {"val": [photos[i] for i in order[:cut]], "train": [photos[i] for i in order[cut:]]}
    real: dict[Path, tuple[tuple[float, float, float, float], ...]] = {}
    for part, count in (("train", n_train), ("val", n_val)):
        (out / "images" / part).mkdir(parents=True, exist_ok=True)
        (out / "labels" / part).mkdir(parents=True, exist_ok=True)
        pool = split[part]
        t0 = time.time()
        for i in range(count):
            path = pool[int(rng.integers(len(pool)))]
            photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if photo is None:
                continue
            if path not in real:
                real[path] = tuple((d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in det.detect(photo))
            scene = compose(rng, photo, real[path], fonts=fonts)
            name = f"{part}_{i:05d}"
            cv2.imwrite(str(out / "images" / part / f"{name}.jpg"), scene.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            (out / "labels" / part / f"{name}.txt").write_text(to_yolo(scene))
            if (i + 1) % 500 == 0:
                print(f"[data] {part} {i + 1}/{count} ({time.time() - t0:.0f} s)", flush=True)
    yaml = out / "data.yaml"
    yaml.write_text(f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n  0: license_plate\n")
    return yaml


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="folder of background photos (jpg/png)")
    ap.add_argument("--out", type=Path, default=Path("platedet-train"))
    ap.add_argument("--train", type=int, default=2400)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pseudo-conf", type=float, default=0.4)
    ap.add_argument("--skip-data", action="store_true", help="reuse the dataset already under --out")
    args = ap.parse_args()

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        print(f"error: no photos in {args.photos}", file=sys.stderr)
        return 2
    data = args.out / "data" / "data.yaml"
    if not args.skip_data:
        shutil.rmtree(args.out / "data", ignore_errors=True)
        data = build_dataset(photos, args.out / "data", args.train, args.val, args.seed, args.pseudo_conf)

    from etle.detect.ultralytics_adapter import load_yolo
    from etle.models import registry

    model = load_yolo(registry.resolve("plate-detector-pt"))
    model.train(
        data=str(data), imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, workers=2, device="cpu",
        project=str(args.out.resolve()), name="run", exist_ok=True, seed=args.seed, deterministic=True,
        mosaic=0.3, close_mosaic=2, fliplr=0.0, degrees=0.0, scale=0.3, translate=0.1,
        hsv_h=0.02, hsv_s=0.5, hsv_v=0.4, lr0=0.002, lrf=0.2, warmup_epochs=1, optimizer="AdamW",
        patience=100, plots=False, amp=False, verbose=False, save_period=1,
    )
    best = args.out / "run" / "weights" / "best.pt"
    trained = load_yolo(best)
    onnx = Path(trained.export(format="onnx", imgsz=args.imgsz, simplify=False, dynamic=False, device="cpu"))
    dest = args.out / "plate_detector_tnkb.onnx"
    shutil.copyfile(onnx, dest)
    print(f"[done] {dest} ({dest.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
