"""``etle eval riders``: the more_than_two rule's judgement on real still photos.

None of the shared clips shows a motorcycle carrying three, so the rule's one-frame judgement
(:func:`etle.rules.more_than_two.crowded_motorcycles`: the vehicle detector's persons and
motorcycles, each person given to a motorcycle, three or more seated together) is measured on
labelled photos instead.  A *truth file* lists photos, each with a point on every motorcycle a
person sees carrying three or more (a child counts) and nothing else::

    version: 1
    data: ../../../shared/data/helmet/roboflow_helmet_ccby   # photos are relative to this
    photos:
      - file: valid/images/one.jpg
        crowded: [[225, 250]]        # a pixel on the motorcycle (photo coordinates)
        note: a man, a woman and four children on one motorcycle
      - file: valid/images/two.jpg
        crowded: []                  # every motorcycle here carries one or two
        note: two riders on a cruiser

Matching: a motorcycle the judgement calls crowded is a true positive when its box (grown by
``box_margin`` of its size) contains a labelled point not matched yet, else a false positive; a
labelled point no crowded motorcycle contains is a miss.  This measures the detector and the
rider association on one picture; the rule also asks for ``min_frames`` such frames within
``window_s`` of video, which a still photo cannot show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from etle.errors import ConfigError
from etle.types import Box, TrackedObject

__all__ = ["PhotoResult", "RidersTruth", "TruthPhoto", "evaluate_photos", "load_riders_truth", "match_photo", "report_dict"]

Point = tuple[float, float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TruthPhoto(_Model):
    file: str = Field(description="Photo path, relative to the truth file's `data` folder.")
    crowded: tuple[Point, ...] = Field(default=(), description="A point on each motorcycle carrying three or more.")
    note: str = ""


class RidersTruth(_Model):
    version: int = Field(default=1, ge=1, le=1)
    data: str = Field(description="Folder of the photos, relative to the truth file.")
    box_margin: float = Field(default=0.1, ge=0, le=1, description="Boxes grown by this share of their size.")
    note: str = Field(default="", description="How the photos were chosen and used (shown in the report).")
    photos: tuple[TruthPhoto, ...] = Field(min_length=1)

    @field_validator("photos")
    @classmethod
    def _unique(cls, v: tuple[TruthPhoto, ...]) -> tuple[TruthPhoto, ...]:
        seen = [p.file for p in v]
        dup = sorted({f for f in seen if seen.count(f) > 1})
        if dup:
            raise ValueError(f"photos listed twice: {', '.join(dup)}")
        return v


def load_riders_truth(path: str | Path) -> tuple[RidersTruth, Path]:
    """The truth file and the folder its photos are in (file:line errors, as camera files)."""
    from etle.camera.config import load_located

    path = Path(path)
    truth = load_located(path, RidersTruth, what="truth file")
    return truth, (path.resolve().parent / truth.data).resolve()


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """One photo: the crowded motorcycles' boxes, which were right, and the labelled misses."""

    file: str
    crowded: tuple[Point, ...]
    called: tuple[Box, ...]
    tp: int
    fp: int
    fn: int
    persons: int
    motorcycles: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "labelled": len(self.crowded), "called": [b.as_tuple() for b in self.called],
                "tp": self.tp, "fp": self.fp, "fn": self.fn, "persons": self.persons,
                "motorcycles": self.motorcycles, "note": self.note}


def _grown(box: Box, margin: float) -> Box:
    dx, dy = margin * box.width, margin * box.height
    return Box(box.x1 - dx, box.y1 - dy, box.x2 + dx, box.y2 + dy)


def match_photo(called: Sequence[Box], crowded: Sequence[Point], margin: float) -> tuple[int, int, int]:
    """(true positives, false positives, misses): each called box takes the first unmatched
    labelled point inside it (boxes grown by ``margin``); boxes in order, largest first."""
    left = list(crowded)
    tp = fp = 0
    for box in sorted(called, key=lambda b: -b.area):
        g = _grown(box, margin)
        hit = next((p for p in left if g.x1 <= p[0] <= g.x2 and g.y1 <= p[1] <= g.y2), None)
        if hit is None:
            fp += 1
        else:
            left.remove(hit)
            tp += 1
    return tp, fp, len(left)


def evaluate_photos(truth: RidersTruth, root: Path, detector: Any, *, min_persons: int = 3, min_overlap: float = 0.3,
                    tick: Callable[[], None] | None = None) -> list[PhotoResult]:
    """The one-frame judgement of the more_than_two rule on every photo of ``truth``."""
    from etle.rules.more_than_two import crowded_motorcycles

    out = []
    for photo in truth.photos:
        image = cv2.imread(str(root / photo.file), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"{root / photo.file}: cannot read the photo")
        objects = [TrackedObject(k, d.box, d.label, d.confidence) for k, d in enumerate(detector.detect(image))]
        crowded = crowded_motorcycles(objects, min_persons=min_persons, min_overlap=min_overlap)
        called = tuple(objects[m].box for m in crowded)
        tp, fp, fn = match_photo(called, photo.crowded, truth.box_margin)
        out.append(PhotoResult(photo.file, photo.crowded, called, tp, fp, fn,
                               sum(o.label == "person" for o in objects), sum(o.label == "motorcycle" for o in objects),
                               photo.note))
        if tick is not None:
            tick()
    return out


def report_dict(results: Sequence[PhotoResult], *, truth_file: str, detector: str, note: str = "") -> dict[str, Any]:
    """Totals and every photo, for ``--json`` and ``etle eval report``."""
    tp, fp, fn = (sum(getattr(r, k) for r in results) for k in ("tp", "fp", "fn"))
    return {
        "truth": truth_file,
        "detector": detector,
        "note": " ".join(note.split()),
        "photos": len(results),
        "labelled": tp + fn,
        "photos_without": sum(1 for r in results if not r.crowded),
        "tp": tp, "fp": fp, "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "items": [r.as_dict() for r in results],
    }
