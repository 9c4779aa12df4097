"""Measure plate readers (and the plate detector) on labelled images: the library behind
``etle eval plates``.

Two kinds of data set:

* **plate crops** -- ``labels.csv`` with ``filename, plate_text``: each image is one plate; the
  reader reads it whole (:func:`evaluate_crops`).
* **full photos** -- ``labels.csv`` with ``filename, plate_text, x, y, w, h`` (the plate's box in
  pixels): the plate detector runs on the whole photo, its detections are matched to the
  labelled box by IoU, and the reader reads a detection (:func:`evaluate_full_images`).

The metrics are pure functions: :func:`edit_distance`, :func:`char_accuracy`, :func:`align`
(a Levenshtein alignment of label and read), :func:`confusion_pairs` (label character -> read
character counted from that alignment), :func:`iou`; :func:`summarise` and
:func:`summarise_full` turn per-image rows into the figures the command prints.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from etle.errors import ConfigError, SourceError
from etle.plate.tnkb import normalise
from etle.types import Box, Detection

__all__ = [
    "GAP",
    "CropRow",
    "DetectorSummary",
    "FullRow",
    "LabelledBox",
    "ReaderSummary",
    "align",
    "char_accuracy",
    "confusion_pairs",
    "edit_distance",
    "evaluate_crops",
    "evaluate_full_images",
    "images_folder",
    "iou",
    "read_agreement",
    "read_box_labels",
    "read_labels",
    "summarise",
    "summarise_full",
]

GAP = ""
"""The 'character' of an alignment gap: a label character the reader dropped, or one it added."""


# ----------------------------------------------------------------------------------------------
# text metrics


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(pred: str, label: str) -> float:
    """``1 - edit_distance / len(label)``, floored at 0 (1.0 for an empty label read as empty)."""
    if not label:
        return float(pred == label)
    return max(0.0, 1.0 - edit_distance(pred, label) / len(label))


def align(label: str, pred: str) -> list[tuple[str, str]]:
    """A minimum-edit alignment of ``label`` and ``pred`` as ``(label char, read char)`` pairs.

    A dropped label character pairs with :data:`GAP` on the read side, an extra read character
    with :data:`GAP` on the label side.  Among equally short alignments, the backtrace prefers a
    match/substitution, then a dropped character, then an extra one (deterministic).
    """
    n, m = len(label), len(pred)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (label[i - 1] != pred[j - 1]))
    out: list[tuple[str, str]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (label[i - 1] != pred[j - 1]):
            out.append((label[i - 1], pred[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            out.append((label[i - 1], GAP))
            i -= 1
        else:
            out.append((GAP, pred[j - 1]))
            j -= 1
    out.reverse()
    return out


def confusion_pairs(label: str, pred: str, *, gaps: bool = True) -> Counter[tuple[str, str]]:
    """``(label char, read char)`` -> count over the aligned characters that differ.

    With ``gaps`` (default), dropped and extra characters count too (paired with :data:`GAP`);
    without, only substitutions.  An empty read counts nothing (the plate was not read at all,
    which is not a character confusion).
    """
    if not pred:
        return Counter()
    out: Counter[tuple[str, str]] = Counter()
    for a, b in align(label, pred):
        if a != b and (gaps or (a != GAP and b != GAP)):
            out[(a, b)] += 1
    return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return float(inter / union) if union > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True, slots=True)
class LabelledBox:
    """A labelled plate of a full photo: its text and box (pixels)."""

    text: str
    box: Box


def images_folder(path: Path) -> Path:
    """The folder holding the images: ``path`` itself or its ``images/`` sub-folder."""
    if not path.is_dir():
        raise SourceError(f"{path}: no such folder of images")
    sub = path / "images"
    return sub if sub.is_dir() else path


def _rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such labels file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise ConfigError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)} (found: {', '.join(header) or 'nothing'})"
                )
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 CSV file ({exc.reason})") from exc
    except csv.Error as exc:
        raise ConfigError(f"{path}: malformed CSV: {exc}") from exc
    if not rows:
        raise ConfigError(f"{path}: no labelled rows")
    for n, r in enumerate(rows, 2):
        if not r.get("filename"):
            raise ConfigError(f"{path}:{n}: empty filename")
    return rows


def read_labels(path: Path) -> dict[str, str]:
    """``filename -> normalised plate text`` from a CSV with ``filename, plate_text`` columns."""
    return {r["filename"]: normalise(r["plate_text"]) for r in _rows(path, ("filename", "plate_text"))}


def read_box_labels(path: Path) -> dict[str, LabelledBox]:
    """``filename -> LabelledBox`` from a CSV with ``filename, plate_text, x, y, w, h`` columns."""
    out: dict[str, LabelledBox] = {}
    for n, r in enumerate(_rows(path, ("filename", "plate_text", "x", "y", "w", "h")), 2):
        try:
            x, y, w, h = (float(r[k]) for k in ("x", "y", "w", "h"))
        except ValueError:
            raise ConfigError(f"{path}:{n}: x, y, w, h must be numbers (got {r['x']!r}, {r['y']!r}, {r['w']!r}, {r['h']!r})") from None
        if w <= 0 or h <= 0:
            raise ConfigError(f"{path}:{n}: w and h must be positive")
        out[r["filename"]] = LabelledBox(normalise(r["plate_text"]), Box(x, y, x + w, y + h))
    return out


def read_agreement(path: Path) -> dict[str, str]:
    """``filename -> agreement`` (e.g. ``all_agree``) from a cross-check CSV."""
    return {r["filename"]: r["agreement"] for r in _rows(path, ("filename", "agreement"))}


# ----------------------------------------------------------------------------------------------
# running


@dataclass(frozen=True, slots=True)
class CropRow:
    """One plate crop read: label, read, milliseconds of reading, validity line, colour."""

    filename: str
    label: str
    pred: str
    ms: float
    validity: str | None = None
    confidence: float = 0.0
    colour: str | None = None


@dataclass(frozen=True, slots=True)
class FullRow:
    """One full photo: the labelled box, how well the detector found it, and the reads."""

    filename: str
    label: str
    best_iou: float  # IoU of the best-matching detection with the labelled box (0: none)
    detections: int
    pred: str  # read of the top (highest-confidence) detection: the end-to-end result
    pred_matched: str  # read of the best-matching detection ('' when nothing overlaps)
    top_iou: float  # IoU of the top detection with the labelled box
    detect_ms: float
    read_ms: float

    @property
    def ms(self) -> float:
        return self.detect_ms + self.read_ms


def _imread(path: Path) -> np.ndarray | None:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None


def evaluate_crops(
    reader: Any,
    images: Path,
    labels: Mapping[str, str],
    *,
    on_row: Callable[[], None] | None = None,
    on_unreadable: Callable[[str], None] | None = None,
) -> list[CropRow]:
    """Read every labelled crop with ``reader`` (a loaded :class:`~etle.plate.readers.PlateReader`)."""
    from etle.plate.colour import classify_colour

    rows: list[CropRow] = []
    for name, label in sorted(labels.items()):
        img = _imread(images / name)
        if img is None:
            if on_unreadable:
                on_unreadable(name)
        else:
            t0 = time.perf_counter()
            read = reader.read(img)
            ms = (time.perf_counter() - t0) * 1000.0
            colour = (read.colour if read is not None and read.colour else None) or classify_colour(img).colour
            rows.append(CropRow(
                name, label, read.text if read else "", ms, read.validity if read else None,
                float(read.confidence) if read else 0.0, colour,
            ))
        if on_row:
            on_row()
    return rows


def pad_box(box: Box, pad: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``pad`` of its size on each side, clipped, as integer pixels."""
    return box.expand(pad).clip(width, height).as_int()


def evaluate_full_images(
    detector: Any,
    reader: Any,
    images: Path,
    labels: Mapping[str, LabelledBox],
    *,
    pad: float = 0.06,
    on_row: Callable[[], None] | None = None,
    on_unreadable: Callable[[str], None] | None = None,
) -> list[FullRow]:
    """Detect plates on each whole photo, match them to the labelled box and read them.

    The *top* detection (highest confidence) is what a pipeline without labels would read: its
    read is the end-to-end result.  The *best-matching* detection (highest IoU) is read as well
    when it differs, to separate detector misses from reader misses.  Crops are padded by ``pad``
    like the plate stage does.
    """
    rows: list[FullRow] = []
    for name, lab in sorted(labels.items()):
        img = _imread(images / name)
        if img is None:
            if on_unreadable:
                on_unreadable(name)
            if on_row:
                on_row()
            continue
        h, w = img.shape[:2]
        t0 = time.perf_counter()
        dets: list[Detection] = list(detector.detect(img))
        detect_ms = (time.perf_counter() - t0) * 1000.0
        ious = [iou(d.box, lab.box) for d in dets]
        read_ms = 0.0
        pred = pred_matched = ""
        top_iou = best_iou = 0.0
        cache: dict[int, str] = {}

        def read_at(k: int) -> str:
            nonlocal read_ms
            if k not in cache:
                x1, y1, x2, y2 = pad_box(dets[k].box, pad, w, h)
                text = ""
                if x2 - x1 >= 4 and y2 - y1 >= 4:
                    t1 = time.perf_counter()
                    r = reader.read(np.ascontiguousarray(img[y1:y2, x1:x2]))
                    read_ms += (time.perf_counter() - t1) * 1000.0
                    text = r.text if r is not None else ""
                cache[k] = text
            return cache[k]

        if dets:
            top = max(range(len(dets)), key=lambda k: dets[k].confidence)
            top_iou = ious[top]
            pred = read_at(top)
            best = max(range(len(dets)), key=lambda k: ious[k])
            best_iou = ious[best]
            if best_iou > 0:
                pred_matched = read_at(best)
        rows.append(FullRow(name, lab.text, best_iou, len(dets), pred, pred_matched, top_iou, detect_ms, read_ms))
        if on_row:
            on_row()
    return rows


# ----------------------------------------------------------------------------------------------
# summaries


@dataclass(frozen=True, slots=True)
class ReaderSummary:
    """The figures of one reader on one subset of rows."""

    reader: str
    subset: str
    n: int
    exact: int
    char_accuracy: float
    mean_ms: float
    median_ms: float
    validity: int
    confusions: tuple[tuple[str, str, int], ...] = ()
    unread: int = 0
    colours: Mapping[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.exact / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "reader": self.reader, "subset": self.subset, "n": self.n, "exact": self.exact,
            "accuracy": round(self.accuracy, 4), "char_accuracy": round(self.char_accuracy, 4),
            "mean_ms": round(self.mean_ms, 2), "median_ms": round(self.median_ms, 2), "validity_parsed": self.validity,
            "unread": self.unread,
            "confusions": [{"label": a, "read": b, "count": c} for a, b, c in self.confusions],
            "colours": dict(self.colours),
        }


def top_confusions(pairs: Iterable[tuple[str, str]] | Counter[tuple[str, str]], k: int = 10) -> tuple[tuple[str, str, int], ...]:
    """The ``k`` most frequent pairs, most frequent first (ties: label char, then read char)."""
    counts = pairs if isinstance(pairs, Counter) else Counter(pairs)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    return tuple((a, b, c) for (a, b), c in ordered[:k])


def summarise(rows: Sequence[CropRow], *, reader: str = "", subset: str = "all", top_k: int = 10) -> ReaderSummary:
    """Exact-match count, mean character accuracy, ms per plate, validity lines parsed and the
    ``top_k`` confusion pairs of ``rows``."""
    n = len(rows)
    if n == 0:
        return ReaderSummary(reader, subset, 0, 0, 0.0, 0.0, 0.0, 0)
    conf: Counter[tuple[str, str]] = Counter()
    for r in rows:
        conf.update(confusion_pairs(r.label, r.pred))
    ms = [r.ms for r in rows]
    return ReaderSummary(
        reader=reader, subset=subset, n=n, exact=sum(r.pred == r.label for r in rows),
        char_accuracy=sum(char_accuracy(r.pred, r.label) for r in rows) / n,
        mean_ms=sum(ms) / n, median_ms=float(statistics.median(ms)),
        validity=sum(r.validity is not None for r in rows), confusions=top_confusions(conf, top_k),
        unread=sum(not r.pred for r in rows), colours=dict(Counter(r.colour or "?" for r in rows)),
    )


@dataclass(frozen=True, slots=True)
class DetectorSummary:
    """Detector recall and end-to-end reads over full photos."""

    reader: str
    n: int
    recall_50: int  # labelled boxes matched by a detection at IoU >= 0.5
    recall_30: int  # ... at IoU >= 0.3
    mean_iou: float  # mean over labelled boxes of the best detection IoU (0 when missed)
    top_hits_50: int  # images whose top detection has IoU >= 0.5 with the labelled box
    exact: int  # end-to-end: read of the top detection == label
    exact_matched: int  # read of the best-matching detection == label
    char_accuracy: float  # end-to-end
    ms_per_image: float  # detect + read
    detect_ms: float
    read_ms: float
    detections_per_image: float
    confusions: tuple[tuple[str, str, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        n = self.n or 1
        return {
            "reader": self.reader, "n": self.n,
            "recall_iou50": self.recall_50, "recall_iou50_rate": round(self.recall_50 / n, 4),
            "recall_iou30": self.recall_30, "recall_iou30_rate": round(self.recall_30 / n, 4),
            "mean_iou": round(self.mean_iou, 4), "top_detection_iou50": self.top_hits_50,
            "exact_end_to_end": self.exact, "exact_end_to_end_rate": round(self.exact / n, 4),
            "exact_best_match": self.exact_matched, "char_accuracy": round(self.char_accuracy, 4),
            "ms_per_image": round(self.ms_per_image, 2), "detect_ms": round(self.detect_ms, 2), "read_ms": round(self.read_ms, 2),
            "detections_per_image": round(self.detections_per_image, 3),
            "confusions": [{"label": a, "read": b, "count": c} for a, b, c in self.confusions],
        }


def summarise_full(rows: Sequence[FullRow], *, reader: str = "", top_k: int = 10) -> DetectorSummary:
    n = len(rows)
    if n == 0:
        return DetectorSummary(reader, 0, 0, 0, 0.0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    conf: Counter[tuple[str, str]] = Counter()
    for r in rows:
        conf.update(confusion_pairs(r.label, r.pred))
    return DetectorSummary(
        reader=reader, n=n,
        recall_50=sum(r.best_iou >= 0.5 for r in rows), recall_30=sum(r.best_iou >= 0.3 for r in rows),
        mean_iou=sum(r.best_iou for r in rows) / n, top_hits_50=sum(r.top_iou >= 0.5 for r in rows),
        exact=sum(r.pred == r.label for r in rows), exact_matched=sum(r.pred_matched == r.label for r in rows),
        char_accuracy=sum(char_accuracy(r.pred, r.label) for r in rows) / n,
        ms_per_image=sum(r.ms for r in rows) / n, detect_ms=sum(r.detect_ms for r in rows) / n,
        read_ms=sum(r.read_ms for r in rows) / n, detections_per_image=sum(r.detections for r in rows) / n,
        confusions=top_confusions(conf, top_k),
    )
