"""``etle eval helmet``: the helmet classifier on labelled real heads, two ways.

* ``labelled`` -- the classifier on the crop of each *labelled* head box (as the training
  script scores it): the classifier's own precision / recall.
* ``run`` -- heads found as the pipeline finds them: the vehicle detector's ``person`` boxes on
  the whole photo, :func:`etle.helmet.crops.head_box` of each, then the classifier.  A labelled
  head is *found* when the centre of a run-time head box lies inside it (the nearest one when
  several do); a labelled head with no run-time head is a miss for its class.  This is the
  figure that matters on the road: a head the run never looks at is never ticketed.

A head counts as ``no_helmet`` when its no-helmet probability reaches ``threshold`` (the
``no_helmet`` rule's default 0.6) and the crop is not called background (``max_background``).

Data: YOLO folders (``images/`` + ``labels/``, class 0 with helmet, 1 without, boxes around
heads) such as the Roboflow CC BY 4.0 export's ``valid`` and ``test`` splits, or a
``labels.csv`` (``filename, class, xmin, ymin, xmax, ymax``) like ``bikeshelmets_subset``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from etle.evaluate.violations import share
from etle.types import Box

__all__ = ["HeadItem", "HelmetScore", "evaluate_set", "read_set"]


@dataclass(frozen=True)
class HeadItem:
    image: Path
    box: Box
    no_helmet: bool


def _yolo_items(root: Path) -> Iterator[HeadItem]:
    import cv2

    for img_file in sorted((root / "images").iterdir()):
        label_file = root / "labels" / f"{img_file.stem}.txt"
        if not label_file.is_file():
            continue
        shape = cv2.imread(str(img_file), cv2.IMREAD_UNCHANGED)
        if shape is None:
            continue
        h, w = shape.shape[:2]
        for line in label_file.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            c, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:])
            box = Box(max((cx - bw / 2) * w, 0), max((cy - bh / 2) * h, 0), min((cx + bw / 2) * w, w), min((cy + bh / 2) * h, h))
            yield HeadItem(img_file, box, c == 1)


def _csv_items(root: Path) -> Iterator[HeadItem]:
    for row in csv.DictReader((root / "labels.csv").open(encoding="utf-8")):
        box = Box(float(row["xmin"]), float(row["ymin"]), float(row["xmax"]), float(row["ymax"]))
        yield HeadItem(root / "images" / row["filename"], box, row["class"].strip().lower() in ("without helmet", "no_helmet", "1"))


def read_set(root: Path) -> list[HeadItem]:
    """The labelled heads of a YOLO folder or a labels.csv folder."""
    from etle.errors import SourceError

    if (root / "labels.csv").is_file():
        return list(_csv_items(root))
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return list(_yolo_items(root))
    raise SourceError(f"{root}: neither images/ + labels/ (YOLO) nor labels.csv")


@dataclass(frozen=True)
class HelmetScore:
    n_heads: int
    n_no_helmet: int
    tp: int
    fp: int
    fn: int
    found: int  # labelled heads the run looked at (mode run); n_heads in mode labelled
    skipped: int = 0  # labels outside their image

    @property
    def precision(self) -> float | None:
        return share(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return share(self.tp, self.tp + self.fn)

    def as_dict(self) -> dict[str, Any]:
        return {"n_heads": self.n_heads, "n_no_helmet": self.n_no_helmet, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "found": self.found, "skipped": self.skipped, "precision": self.precision, "recall": self.recall}


def _is_no_helmet(probs: np.ndarray, threshold: float, max_background: float) -> np.ndarray:
    return (probs[:, 1] >= threshold) & (probs[:, 2] < max_background)


def _found_heads(heads_model: Any, classifier: Any, image: np.ndarray, persons: Sequence[Box]) -> tuple[list[Box], np.ndarray]:
    """Run mode with the head detector, as the no_helmet rule judges heads: the heads found in
    every person's :func:`~etle.helmet.heads.head_region` that belong to that person
    (:func:`~etle.helmet.heads.own_heads`), each once, classified on their crops; rows (helmet,
    no_helmet, background) hold the no-helmet share among the head classes, as the rule scores."""
    from etle.helmet.crops import square_crop
    from etle.helmet.heads import dedupe, find_own_heads

    heads = dedupe([f for _, own in find_own_heads(heads_model, image, persons) for f in own])
    if not heads:
        return [], np.zeros((0, 3))
    probs = np.asarray(classifier.predict([square_crop(image, f.box) for f in heads]), np.float64)
    share = probs[:, 1] / np.maximum(probs[:, 0] + probs[:, 1], 1e-9)
    return [f.box for f in heads], np.stack([1.0 - share, share, probs[:, 2]], axis=1)


def _inside(box: Box, x: float, y: float) -> bool:
    return box.x1 <= x <= box.x2 and box.y1 <= y <= box.y2


def evaluate_set(
    items: Sequence[HeadItem],
    *,
    mode: str = "labelled",
    classifier: Any = None,
    detector: Any = None,
    heads_model: Any = None,
    threshold: float = 0.6,
    max_background: float = 0.5,
    on_image: Callable[[], None] | None = None,
) -> HelmetScore:
    """No-helmet precision / recall over ``items`` (see the module docstring for the modes)."""
    import cv2

    from etle.helmet.crops import head_box, square_crop

    if classifier is None:
        from etle.helmet.classifier import load_helmet_classifier

        classifier = load_helmet_classifier()
    by_image: dict[Path, list[HeadItem]] = {}
    for it in items:
        by_image.setdefault(it.image, []).append(it)
    tp = fp = fn = found = skipped = 0
    for path, heads in by_image.items():
        image = cv2.imread(str(path))
        if image is None:
            continue
        h, w = image.shape[:2]
        inside = [it for it in heads if it.box.x2 <= w + 2 and it.box.y2 <= h + 2 and it.box.x2 > it.box.x1 and it.box.y2 > it.box.y1]
        skipped += len(heads) - len(inside)  # a label lying outside its image is left alone, not scored
        heads = inside
        if not heads:
            continue
        if mode == "labelled":
            probs = classifier.predict([square_crop(image, it.box) for it in heads])
            called = _is_no_helmet(probs, threshold, max_background)
            for it, c in zip(heads, called):
                found += 1
                tp += int(c and it.no_helmet)
                fp += int(c and not it.no_helmet)
                fn += int(not c and it.no_helmet)
        else:
            if detector is None:
                from etle.detect.detector import load_detector

                detector = load_detector()
            persons = [d.box for d in detector.detect(image) if d.label == "person"]
            if heads_model is not None:
                run_heads, probs = _found_heads(heads_model, classifier, image, persons)
            else:
                run_heads = [hb for hb in (head_box(p, frame_width=w, frame_height=h, min_px=8.0) for p in persons) if hb is not None]
                probs = classifier.predict([square_crop(image, hb) for hb in run_heads]) if run_heads else np.zeros((0, 3))
            called = _is_no_helmet(np.asarray(probs).reshape(-1, 3), threshold, max_background)
            used: set[int] = set()
            for it in heads:
                cands = [(abs((hb.x1 + hb.x2) / 2 - (it.box.x1 + it.box.x2) / 2) + abs((hb.y1 + hb.y2) / 2 - (it.box.y1 + it.box.y2) / 2), k)
                         for k, hb in enumerate(run_heads) if k not in used and _inside(it.box, (hb.x1 + hb.x2) / 2, (hb.y1 + hb.y2) / 2)]
                if not cands:
                    fn += int(it.no_helmet)
                    continue
                k = min(cands)[1]
                used.add(k)
                found += 1
                c = bool(called[k])
                tp += int(c and it.no_helmet)
                fp += int(c and not it.no_helmet)
                fn += int(not c and it.no_helmet)
        if on_image is not None:
            on_image()
    return HelmetScore(len(items) - skipped, tp + fn, tp, fp, fn, found, skipped)
