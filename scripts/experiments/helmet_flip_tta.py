#!/usr/bin/env python
"""Experiment (not adopted): mirror test-time augmentation for the helmet classifier.

Each head crop the no_helmet rule judges is classified as it is and mirrored left-right; the two
probability rows are combined (``mean``, ``geo``: normalised geometric mean, ``max``: the row with
the higher no-helmet probability) and scored in run mode (person boxes -> head detector ->
classifier, as ``etle eval helmet`` does) at several thresholds.  ``plain`` is the shipped rule.

    .venv/bin/python scripts/experiments/helmet_flip_tta.py ../shared/data/helmet/roboflow_helmet_ccby/valid \
        --modes plain,mean,geo,max --thresholds 0.5,0.55,0.6,0.65,0.7

Measured on 2026-12-07 (valid split, 163 no-helmet heads of 359; 2 cores, about a minute): at the
rule's 0.6, plain P 0.959 R 0.853, mean 0.951 / 0.840, geo 0.951 / 0.840, max 0.946 / 0.865; no
combination beats plain at precision >= 0.95, so the test split was not run and nothing changed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from etle.detect.detector import load_detector  # noqa: E402
from etle.evaluate.helmet import evaluate_set, read_set  # noqa: E402
from etle.helmet.classifier import load_helmet_classifier  # noqa: E402
from etle.helmet.heads import load_head_detector  # noqa: E402


class _Remember:
    """A detector or head detector whose answers are kept per picture (each threshold and mode
    reruns the same images)."""

    def __init__(self, inner: Any) -> None:
        self._inner, self._seen = inner, {}

    def _key(self, image: np.ndarray, *extra: Any) -> tuple[Any, ...]:
        return (hashlib.md5(image.tobytes()).hexdigest(), *extra)

    def detect(self, image: np.ndarray) -> Any:
        key = self._key(image)
        if key not in self._seen:
            self._seen[key] = self._inner.detect(image)
        return self._seen[key]

    def find_many(self, image: np.ndarray, regions: Any) -> Any:
        key = self._key(image, tuple(regions))
        if key not in self._seen:
            self._seen[key] = self._inner.find_many(image, regions)
        return self._seen[key]


class MirrorTTA:
    def __init__(self, classifier: Any, mode: str) -> None:
        self.classifier, self.mode = classifier, mode

    def predict(self, crops: list[np.ndarray]) -> np.ndarray:
        p = np.asarray(self.classifier.predict(crops))
        if self.mode == "plain" or not len(crops):
            return p
        q = np.asarray(self.classifier.predict([np.ascontiguousarray(c[:, ::-1]) for c in crops]))
        if self.mode == "mean":
            return (p + q) / 2
        if self.mode == "geo":
            g = np.sqrt(p * q)
            return g / g.sum(axis=1, keepdims=True)
        if self.mode == "max":
            return np.where((q[:, 1] > p[:, 1])[:, None], q, p)
        raise SystemExit(f"unknown mode {self.mode}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split", type=Path, help="a labelled YOLO folder (images/ + labels/)")
    ap.add_argument("--modes", default="plain,mean,geo,max")
    ap.add_argument("--thresholds", default="0.5,0.55,0.6,0.65,0.7")
    args = ap.parse_args()
    items = read_set(args.split)
    classifier = load_helmet_classifier()
    detector, heads = _Remember(load_detector()), _Remember(load_head_detector())
    for mode in args.modes.split(","):
        for thr in (float(t) for t in args.thresholds.split(",")):
            s = evaluate_set(items, mode="run", classifier=MirrorTTA(classifier, mode), detector=detector,
                             heads_model=heads, threshold=thr)
            print(f"{args.split.name} {mode:5} {thr:.2f}  tp {s.tp} fp {s.fp} fn {s.fn}  "
                  f"P {s.precision:.3f} R {s.recall:.3f}", flush=True)


if __name__ == "__main__":
    main()
