"""No helmet (UU 22/2009 art. 291): a rider or passenger of a motorcycle without a helmet.

Riders come from :func:`etle.rules.riders.association_scores`, the scores behind the
passenger-count rule's :func:`~etle.rules.riders.assign_riders` (same ``min_overlap``
default), so both rules see the same persons on the same motorcycle.  Every person on or beside
a motorcycle is judged at most every ``every_n_frames`` frames, in one of two ways (``heads``):

* ``detector`` (default): the head detector finds the heads in the upper part of the person box
  (:mod:`etle.helmet.heads`); each head that belongs to this person rather than to a neighbour
  (:func:`~etle.helmet.heads.own_heads` -- a box over two riders owns both) is classified by the
  head classifier on its crop (helmet / no_helmet / background), and the barest is the sample.
  Off-centre heads and boxes covering two riders are found this way.
* ``estimate``: the head is placed at the top centre of the person box
  (:func:`etle.helmet.crops.head_box`) and that crop classified.

A person with no head found (a bad box, an occluded head, a person cut by the top of the frame)
gives no sample.

A person counts as bare-headed once ``min_samples`` classifications are kept and their mean
no-helmet probability reaches ``threshold`` (the last ``max_samples`` are kept, so a person
turns round and is judged on the latest views).  A person with all ``max_samples`` kept and a
mean under half the threshold is judged 4 times less often (riders waiting at a line would
otherwise cost a head detector run every few frames for nothing).

Who rides what is decided over time, not per frame: boxes jitter and a passenger on an angled
motorcycle sticks out of its box.  Every frame adds each person's association score with every
motorcycle near them (at least half of ``min_overlap``) to a running sum, and a person is held
to ride the motorcycle with the largest sum only once it reaches ``min_ride_frames *
min_overlap`` and is at least ``ride_margin`` times the next largest.  An ambiguous person
therefore gets no motorcycle (and no ticket) until the footage settles it.  The motorcycle is
ticketed -- the rider is liable for a passenger's missing helmet, art. 291(2) -- in a frame
where that person is on or beside it.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from etle.geometry import Point, point_in_polygon
from etle.helmet.crops import HEAD_OF_HEIGHT, HEAD_OF_WIDTH, head_box, square_crop
from etle.helmet.heads import HeadFinder, find_own_heads
from etle.rules.base import RuleContext, RuleSpec, ZoneRef, anchor_point, make_violation
from etle.rules.options import existing_file
from etle.rules.riders import assign_riders, association_scores
from etle.schema import ConfigModel, LocatedError
from etle.types import Box, FrameContext, TrackedObject, Violation
from etle.zones import PolygonZone

__all__ = ["RULES", "HeadClassifier", "HeadFinder", "NoHelmetOptions", "NoHelmetRule"]

log = logging.getLogger(__name__)

#: Motorcycles a person is remembered to have been associated with (the most frequent kept).
_MAX_ASSOC = 6
#: A person whose kept samples are all in (``max_samples`` of them) and whose mean is under half
#: the threshold -- clearly wearing a helmet -- is judged this many times less often: riders
#: waiting at a stop line would otherwise be judged again and again (each a head detector run).
_SETTLED_SLOWDOWN = 4


class NoHelmetOptions(ConfigModel):
    """Riders and passengers of a motorcycle without a helmet (the rider is ticketed)."""

    model: Path | None = Field(
        default=None,
        description="Helmet classifier ONNX (classes helmet, no_helmet, background); default: "
        "the manifest's helmet-classifier.",
    )
    heads: Literal["detector", "estimate"] = Field(
        default="detector",
        description="How heads are found: 'detector' looks for them in the upper part of each "
        "rider's box with the head detector (helmet / no_helmet heads); 'estimate' places the "
        "head at the top centre of the box and classifies that crop with the helmet classifier.",
    )
    head_model: Path | None = Field(
        default=None,
        description="Head detector ONNX (classes helmet, no_helmet) for heads: detector; "
        "default: the manifest's head-detector.",
    )
    threshold: float = Field(
        default=0.6, gt=0, lt=1, description="Mean no-helmet probability of a head to count."
    )
    min_samples: int = Field(
        default=4, ge=1, description="Head classifications needed before a head can count."
    )
    max_samples: int = Field(
        default=15, ge=1, description="Classifications kept per person (the latest)."
    )
    every_n_frames: int = Field(
        default=3, ge=1, description="Classify each head at most every this many frames."
    )
    min_head_px: float = Field(
        default=14.0, gt=0, description="Smallest estimated head side (px) worth classifying."
    )
    max_background: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Crops the model calls 'not a head' with this probability are not samples.",
    )
    min_overlap: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Rider association, as in more_than_two (keep them equal).",
    )
    min_ride_frames: int = Field(
        default=10,
        ge=1,
        description="A person rides the motorcycle whose rider score, summed over the frames, is "
        "largest: at least this many frames' worth (times min_overlap) ...",
    )
    ride_margin: float = Field(
        default=1.5,
        ge=1,
        description="... and this many times the next motorcycle's (an ambiguous passenger gets "
        "no motorcycle until the footage settles it).",
    )
    zone: str | None = Field(
        default=None, description="Only motorcycles whose anchor is in this polygon zone."
    )

    @field_validator("model", "head_model", mode="after")
    @classmethod
    def _resolve_model(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else existing_file(value, info, str(info.field_name))

    @model_validator(mode="after")
    def _samples(self) -> "NoHelmetOptions":
        if self.max_samples < self.min_samples:
            raise LocatedError(("max_samples",), "must be at least min_samples")
        return self


class HeadClassifier(Protocol):
    """``N x 3`` probabilities (helmet, no_helmet, background) of BGR head crops."""

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(slots=True)
class _Person:
    scores: deque[float]
    assoc: dict[int, float] = field(default_factory=dict)  # motorcycle id -> summed rider score
    last_try: int = -(10**9)  # frame index of the last classification attempt
    tries: int = 0


class NoHelmetRule:
    """Motorcycles carrying a person whose head is classified as bare."""

    name = "no_helmet"

    def __init__(
        self,
        classifier: HeadClassifier,
        *,
        heads: HeadFinder | None = None,
        threshold: float = 0.6,
        min_samples: int = 4,
        max_samples: int = 15,
        every_n_frames: int = 3,
        min_head_px: float = 14.0,
        max_background: float = 0.5,
        min_overlap: float = 0.3,
        min_ride_frames: int = 10,
        ride_margin: float = 1.5,
        zone: Sequence[Point] | None = None,
    ) -> None:
        if not 0 < threshold < 1 or min_samples < 1 or max_samples < min_samples or every_n_frames < 1:
            raise ValueError("need 0 < threshold < 1, 1 <= min_samples <= max_samples, every_n_frames >= 1")
        if classifier is None:
            raise ValueError("need a head classifier")
        self._clf = classifier
        self._heads = heads
        self._threshold = threshold
        self._min_samples = min_samples
        self._max_samples = max_samples
        self._every = every_n_frames
        self._min_head = min_head_px
        self._max_bg = max_background
        self._min_overlap = min_overlap
        self._min_ride = min_ride_frames * min_overlap
        self._margin = ride_margin
        self._zone = tuple((float(x), float(y)) for x, y in zone) if zone else None
        self._persons: dict[int, _Person] = {}
        self._reported: set[int] = set()  # motorcycles logged as violating (the engine drops repeats)
        self.classified = 0  # crops classified (for tests and cost figures)

    @classmethod
    def from_config(cls, options: NoHelmetOptions, ctx: RuleContext) -> "NoHelmetRule":
        finder = None
        if options.heads == "detector":
            finder = ctx.head_detector
            if finder is None:
                from etle.helmet.heads import load_head_detector

                finder = load_head_detector(options.head_model)
        clf = ctx.helmet_classifier
        if clf is None:
            from etle.helmet.classifier import load_helmet_classifier

            clf = load_helmet_classifier(options.model)
        zone = ctx.polygons[options.zone].polygon if options.zone else None
        return cls(
            clf,
            heads=finder,
            threshold=options.threshold,
            min_samples=options.min_samples,
            max_samples=options.max_samples,
            every_n_frames=options.every_n_frames,
            min_head_px=options.min_head_px,
            max_background=options.max_background,
            min_overlap=options.min_overlap,
            min_ride_frames=options.min_ride_frames,
            ride_margin=options.ride_margin,
            zone=zone,
        )

    def forget(self, track_id: int) -> None:
        self._persons.pop(track_id, None)
        self._reported.discard(track_id)
        for person in self._persons.values():
            person.assoc.pop(track_id, None)

    def reset(self) -> None:
        self._persons.clear()
        self._reported.clear()

    @property
    def tracked(self) -> int:
        return len(self._persons)

    def _person(self, pid: int) -> _Person:
        p = self._persons.get(pid)
        if p is None:
            p = self._persons[pid] = _Person(scores=deque(maxlen=self._max_samples))
        return p

    def bare_score(self, pid: int) -> tuple[float, int] | None:
        """(mean no-helmet probability, samples) of a person, or None before min_samples."""
        p = self._persons.get(pid)
        if p is None or len(p.scores) < self._min_samples:
            return None
        return float(np.mean(p.scores)), len(p.scores)

    def rides(self, pid: int) -> int | None:
        """The motorcycle a person is held to ride (see the module docstring), or None."""
        p = self._persons.get(pid)
        if p is None or not p.assoc:
            return None
        ranked = sorted(p.assoc.items(), key=lambda kv: (-kv[1], kv[0]))
        moto, best = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        if best < self._min_ride or best < self._margin * second:
            return None
        return moto

    def _associate(self, ctx: FrameContext) -> dict[int, list[int]]:
        """Add this frame's association scores to every person's sums; person -> motorcycles near."""
        objects: Sequence[TrackedObject] = ctx.objects
        if self._zone is not None:
            zone = self._zone
            objects = [
                o for o in objects if o.label != "motorcycle" or point_in_polygon(anchor_point(o.box), zone)
            ]
        floor = self._min_overlap / 2.0
        near: dict[int, list[int]] = {}
        for (pid, mid), score in association_scores(objects, min_overlap=self._min_overlap).items():
            if score < floor:
                continue
            st = self._person(pid)
            st.assoc[mid] = st.assoc.get(mid, 0.0) + score
            near.setdefault(pid, []).append(mid)
            if len(st.assoc) > _MAX_ASSOC:
                weakest = min(st.assoc, key=lambda m: st.assoc[m])
                del st.assoc[weakest]
        return near

    def _judge_estimated(self, frame, boxes: Sequence[Box], pids: Sequence[int]) -> list[tuple[int, Sequence[float]]]:
        """(person, (helmet, no_helmet, background)) of the classifier on estimated head crops."""
        crops: list[np.ndarray] = []
        owners: list[int] = []
        for pid, box in zip(pids, boxes, strict=True):
            head = head_box(box, frame_width=frame.width, frame_height=frame.height, min_px=self._min_head)
            if head is None:
                continue
            try:
                crops.append(square_crop(frame.image, head))
            except ValueError:
                continue
            owners.append(pid)
        if not crops:
            return []
        probs = np.asarray(self._clf.predict(crops))
        self.classified += len(crops)
        return list(zip(owners, probs, strict=True))

    def _judge_found(self, frame, boxes: Sequence[Box], pids: Sequence[int], everyone: Sequence[Box]) -> list[tuple[int, Sequence[float]]]:
        """(person, (helmet, no_helmet, background)) with heads found by the head detector: the
        heads in the person's head region that are its own (:func:`etle.helmet.heads.find_own_heads`,
        against ``everyone``'s boxes, which start with ``boxes``), each classified by the helmet
        classifier on its crop; the barest of those the classifier takes for a head.  Background
        (1) when the person has no head there."""
        assert self._heads is not None
        big = [me for me, box in enumerate(boxes)
               if min(HEAD_OF_HEIGHT * box.height, HEAD_OF_WIDTH * box.width) >= self._min_head]
        owned = find_own_heads(self._heads, frame.image, everyone, of=big)
        crops = [square_crop(frame.image, h.box) for _, heads in owned for h in heads]
        probs = np.asarray(self._clf.predict(crops)) if crops else np.zeros((0, 3))
        self.classified += len(crops)
        out: list[tuple[int, Sequence[float]]] = []
        at = 0
        for me, heads in owned:
            pid = pids[me]
            rows = [r for r in probs[at : at + len(heads)] if r[2] < self._max_bg]
            at += len(heads)
            if not rows:
                out.append((pid, (0.0, 0.0, 1.0)))
                continue
            out.append((pid, max(rows, key=lambda r: r[1] / max(r[0] + r[1], 1e-9))))
        return out

    def update(self, ctx: FrameContext) -> list[Violation]:
        frame = ctx.frame
        objects = ctx.by_id()
        near = self._associate(ctx)
        todo: list[int] = []
        for pid in near:
            person = self._person(pid)
            every = self._every
            if len(person.scores) >= self._max_samples and float(np.mean(person.scores)) < self._threshold / 2:
                every *= _SETTLED_SLOWDOWN
            if objects[pid].predicted or frame.index - person.last_try < every:
                continue  # heads are classified on observed boxes only
            person.last_try = frame.index
            todo.append(pid)
        if todo:
            boxes = [objects[pid].box for pid in todo]
            if self._heads is not None:
                due = set(todo)
                everyone = boxes + [o.box for o in ctx.objects if o.label == "person" and o.track_id not in due]
                judged = self._judge_found(frame, boxes, todo, everyone)
            else:
                judged = self._judge_estimated(frame, boxes, todo)
            for pid, row in judged:
                person = self._persons[pid]
                person.tries += 1
                if row[2] >= self._max_bg:
                    continue  # no head there
                # no-helmet probability among the head classes
                person.scores.append(float(row[1] / max(row[0] + row[1], 1e-9)))
        bare_on: dict[int, list[tuple[int, float, int]]] = {}
        for pid, motos in near.items():
            score = self.bare_score(pid)
            if score is None or score[0] < self._threshold:
                continue
            moto = self.rides(pid)
            if moto is not None and moto in motos:
                bare_on.setdefault(moto, []).append((pid, round(score[0], 3), score[1]))
        if not bare_on:
            return []
        riders = assign_riders(ctx.objects, min_overlap=self._min_overlap)
        out: list[Violation] = []
        for moto_id, bare in sorted(bare_on.items()):
            persons = tuple(sorted(set(riders.get(moto_id, ())) | {b[0] for b in bare}))
            heads = {}
            for pid in persons:
                s = self.bare_score(pid)
                heads[str(pid)] = None if s is None else round(s[0], 3)
            if moto_id not in self._reported:
                self._reported.add(moto_id)
                log.info("no_helmet: motorcycle %d carries bare-headed person(s) %s", moto_id, [b[0] for b in bare])
            out.append(
                make_violation(
                    self.name,
                    ctx,
                    objects[moto_id],
                    related=persons,
                    details={
                        "persons_without_helmet": [b[0] for b in bare],
                        "no_helmet_scores": {str(b[0]): b[1] for b in bare},
                        "samples": {str(b[0]): b[2] for b in bare},
                        "riders": list(persons),
                        "rider_no_helmet_scores": heads,
                        "threshold": self._threshold,
                        "liable": "rider (UU 22/2009 art. 291(1) rider, 291(2) passenger)",
                    },
                )
            )
        return out


RULES = (
    RuleSpec(
        "no_helmet",
        NoHelmetOptions,
        NoHelmetRule.from_config,
        zones=(ZoneRef("zone", PolygonZone, required=False),),
        files=("model",),
    ),
)
