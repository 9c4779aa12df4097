#!/usr/bin/env python
"""Measure plate readers on a folder of labelled plate crops.

    python scripts/eval_plates.py IMAGES_DIR --labels labels.csv [--reader rapidocr|easyocr|all]
                                  [--country id|generic] [--crosscheck crosscheck.csv] [--errors]

``labels.csv`` has columns ``filename, plate_text`` (registration without spaces).  Prints, per
reader: exact-match accuracy, character accuracy (1 - edit distance / label length, floored at
0, averaged), validity lines parsed, and milliseconds per plate (reading only, model loading
excluded).  With ``--crosscheck`` (a CSV with ``filename`` and ``agreement``) it also reports the
rows whose labels every labeller agreed on (``all_agree``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etle.errors import EtleError
from etle.plate.readers import available_readers, load_reader
from etle.plate.tnkb import normalise


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(pred: str, label: str) -> float:
    if not label:
        return float(pred == label)
    return max(0.0, 1.0 - edit_distance(pred, label) / len(label))


@dataclass(frozen=True)
class Row:
    filename: str
    label: str
    pred: str
    ms: float
    validity: str | None


def read_labels(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as f:
        return {r["filename"]: normalise(r["plate_text"]) for r in csv.DictReader(f)}


def read_agreement(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as f:
        return {r["filename"]: r.get("agreement", "") for r in csv.DictReader(f)}


def evaluate(reader_name: str, images: Path, labels: dict[str, str], country: str) -> list[Row]:
    reader = load_reader(reader_name, country=country)
    rows: list[Row] = []
    for name, label in sorted(labels.items()):
        img = cv2.imread(str(images / name))
        if img is None:
            print(f"  cannot read {name}", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        read = reader.read(img)
        ms = (time.perf_counter() - t0) * 1000.0
        rows.append(Row(name, label, read.text if read else "", ms, read.validity if read else None))
    return rows


def summarise(title: str, rows: list[Row]) -> str:
    if not rows:
        return f"{title}: no rows"
    n = len(rows)
    exact = sum(r.pred == r.label for r in rows)
    chars = sum(char_accuracy(r.pred, r.label) for r in rows) / n
    ms = sorted(r.ms for r in rows)
    mean_ms = sum(ms) / n
    validity = sum(r.validity is not None for r in rows)
    return (
        f"{title}: exact {exact}/{n} = {exact / n:.1%}, char accuracy {chars:.1%}, "
        f"{mean_ms:.1f} ms/plate (median {ms[n // 2]:.1f}), validity parsed {validity}/{n}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", type=Path, help="folder of plate crops (or a dataset folder holding images/)")
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--reader", default="all", help="rapidocr, easyocr or all (default)")
    ap.add_argument("--country", default="id", help="plate format: id or generic")
    ap.add_argument("--crosscheck", type=Path, help="CSV with filename, agreement columns")
    ap.add_argument("--errors", action="store_true", help="list the misread plates")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)

    images = args.images / "images" if (args.images / "images").is_dir() else args.images
    labels = read_labels(args.labels)
    agreement = read_agreement(args.crosscheck) if args.crosscheck else {}
    names = list(available_readers()) if args.reader == "all" else [args.reader]
    status = 0
    for name in names:
        try:
            rows = evaluate(name, images, labels, args.country)
        except EtleError as exc:
            print(f"{name}: unavailable: {exc}")
            status = 1
            continue
        print(summarise(f"{name} [{args.country}] all", rows))
        if agreement:
            agreed = [r for r in rows if agreement.get(r.filename) == "all_agree"]
            print(summarise(f"{name} [{args.country}] all_agree", agreed))
        if args.errors:
            for r in rows:
                if r.pred != r.label:
                    print(f"    {r.filename}: label {r.label} read {r.pred or '-'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
