"""``etle eval privacy``: how many real faces the privacy blur finds and hides.

A truth file (``eval/truth/faces.yaml``) lists frames of real clips (a time) and the faces a
person sees on them (boxes).  For each frame the face detector (MTCNN) and the vehicle detector's
person boxes (their head regions, :func:`etle.privacy.faces.person_heads`) run; a face counts as
found when one region covers at least ``min_cover`` of it.  Reported: recall of the face detector
alone and with the heads, and how many labelled faces the face detector still finds on the frame
after every found region is blurred (the blur's purpose: none).

A second, optional set: YOLO-format head boxes of photos (the Roboflow helmet set's ``test``
split), where the face detector's recall on heads without a helmet (faces in full view) is
measured the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from etle.errors import ConfigError, SourceError
from etle.privacy.blur import FACE, HEAD, Region, blur_regions
from etle.privacy.faces import person_heads
from etle.types import Box


@dataclass(frozen=True, slots=True)
class TruthFrame:
    clip: str
    video: Path
    at: float
    faces: tuple[Box, ...]


@dataclass(frozen=True, slots=True)
class FaceTruth:
    min_cover: float
    frames: tuple[TruthFrame, ...]


def load_truth(path: Path) -> FaceTruth:
    """Read a faces truth file; :class:`ConfigError` naming the file and the entry when wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the faces truth file: {exc}") from exc
    frames: list[TruthFrame] = []
    try:
        cover = float(data.get("min_cover", 0.5))
        for c in data["clips"]:
            video = Path(str(c["video"]))
            video = video if video.is_absolute() else (path.parent / video).resolve()
            for f in c["frames"]:
                boxes = tuple(Box(*(float(v) for v in b)) for b in f.get("faces") or ())
                frames.append(TruthFrame(str(c["name"]), video, float(f["at"]), boxes))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: malformed faces truth ({type(exc).__name__}: {exc}); "
                          "expected clips: [{name, video, frames: [{at, faces: [[x1, y1, x2, y2]]}]}]") from exc
    if not 0 < cover <= 1:
        raise ConfigError(f"{path}: min_cover must be in (0, 1], got {cover}")
    return FaceTruth(cover, tuple(frames))


def coverage(truth: Box, found: Box) -> float:
    """The share of ``truth`` that ``found`` covers."""
    return truth.intersection(found) / truth.area if truth.area > 0 else 0.0


def covered(truth: Sequence[Box], regions: Sequence[Box], min_cover: float) -> list[bool]:
    """For each labelled face, whether one region covers at least ``min_cover`` of it."""
    return [any(coverage(t, r) >= min_cover for r in regions) for t in truth]


@dataclass(slots=True)
class FrameResult:
    clip: str
    at: float
    faces: int
    by_detector: int
    with_heads: int
    after_blur: int
    detections: int
    ms: float


@dataclass(slots=True)
class PrivacyReport:
    frames: list[FrameResult] = field(default_factory=list)
    heads_set: dict[str, Any] | None = None

    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(f, k) for f in self.frames) for k in ("faces", "by_detector", "with_heads", "after_blur", "detections")}

    def as_dict(self) -> dict[str, Any]:
        t = self.totals()
        n = t["faces"] or 1
        return {
            "faces": t["faces"],
            "recall_detector": round(t["by_detector"] / n, 4),
            "recall_with_heads": round(t["with_heads"] / n, 4),
            "found_by_detector": t["by_detector"],
            "found_with_heads": t["with_heads"],
            "found_after_blur": t["after_blur"],
            "ms_per_frame": round(sum(f.ms for f in self.frames) / max(len(self.frames), 1), 1),
            "frames": [{"clip": f.clip, "at": f.at, "faces": f.faces, "by_detector": f.by_detector,
                        "with_heads": f.with_heads, "after_blur": f.after_blur, "ms": round(f.ms, 1)} for f in self.frames],
            "heads_set": self.heads_set,
        }


def frame_at(video: Path, at: float) -> np.ndarray:
    """The first frame of ``video`` at or after ``at`` seconds (BGR)."""
    from etle.ingest.sources import open_source

    if not video.is_file():
        raise SourceError(f"{video}: no such video (the truth's clips are in ../shared/data/videos)")
    for frame in open_source(str(video), max_seconds=at + 2.0).frames():
        if frame.pts >= at - 1e-6:
            return np.array(frame.image)
    raise SourceError(f"{video}: no frame at {at} s")


def evaluate_frames(truth: FaceTruth, faces: Any, objects: Any,
                    progress: Callable[[], None] | None = None) -> PrivacyReport:
    """Run the face detector (``faces.detect``) and the person heads (``objects.detect``, person
    boxes) on every truth frame; see the module docstring."""
    report = PrivacyReport()
    for tf in truth.frames:
        image = frame_at(tf.video, tf.at)
        t0 = time.perf_counter()
        found = faces.detect(image)
        persons = [d for d in objects.detect(image) if d.label == "person"]
        heads = person_heads(persons, image.shape[1], image.shape[0])
        ms = (time.perf_counter() - t0) * 1000
        by_det = covered(tf.faces, [d.box for d in found], truth.min_cover)
        regions = [d.box for d in found] + [h.box for h in heads]
        with_heads = covered(tf.faces, regions, truth.min_cover)
        hidden = [Region(d.box, FACE, "mtcnn", d.confidence) for d in found] + \
                 [Region(h.box, HEAD, "person", h.confidence) for h in heads]
        blurred = blur_regions(image, hidden)
        again = faces.detect(blurred)
        after = [any(coverage(t, d.box) >= truth.min_cover or t.iou(d.box) >= 0.3 for d in again) for t in tf.faces]
        report.frames.append(FrameResult(tf.clip, tf.at, len(tf.faces), sum(by_det), sum(with_heads), sum(after), len(found), ms))
        if progress is not None:
            progress()
    return report


def load_yolo_heads(folder: Path, classes: Mapping[int, str]) -> list[tuple[Path, list[tuple[str, Box]]]]:
    """(image, [(class name, box in pixels)]) of a YOLO folder (``images/`` + ``labels/``)."""
    import cv2

    images = folder / "images"
    labels = folder / "labels"
    if not images.is_dir() or not labels.is_dir():
        raise ConfigError(f"{folder}: not a YOLO folder (images/ and labels/)")
    out = []
    for img in sorted(images.iterdir()):
        lab = labels / (img.stem + ".txt")
        if not lab.is_file():
            continue
        shape = cv2.imread(str(img), cv2.IMREAD_REDUCED_COLOR_2)
        if shape is None:
            continue
        h, w = shape.shape[0] * 2, shape.shape[1] * 2
        boxes = []
        for line in lab.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            c, cx, cy, bw, bh = int(parts[0]), *(float(v) for v in parts[1:])
            boxes.append((classes.get(c, str(c)), Box((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)))
        out.append((img, boxes))
    return out


def evaluate_heads(folder: Path, faces: Any, *, min_cover: float = 0.5, label: str = "Without Helmet",
                   classes: Mapping[int, str] | None = None, limit: int | None = None,
                   progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """The face detector's recall on labelled heads of ``label`` (faces in view) in a YOLO folder:
    a head counts as found when one face box covers ``min_cover`` of the face inside it (the head
    box's lower two thirds, where the face is)."""
    import cv2

    names = dict(classes or {0: "With Helmet", 1: "Without Helmet"})
    items = load_yolo_heads(folder, names)[: limit or None]
    total = found = 0
    for img_path, boxes in items:
        wanted = [b for n, b in boxes if n == label]
        if wanted:
            image = cv2.imread(str(img_path))
            dets = [d.box for d in faces.detect(image)] if image is not None else []
            for b in wanted:
                face = Box(b.x1, b.y1 + b.height / 3, b.x2, b.y2)
                total += 1
                found += int(any(coverage(face, d) >= min_cover or coverage(d, face) >= min_cover for d in dets))
        if progress is not None:
            progress()
    return {"folder": str(folder), "label": label, "heads": total, "found": found,
            "recall": round(found / total, 4) if total else None, "images": len(items)}
