"""What to blur in a key frame, and the blur itself (pure functions on frozen values).

:func:`plan_blur` decides, from the evidence's scene (the ticketed vehicle, its plate, its riders,
every person and vehicle box) and what the detectors found (faces, plates), which regions a
public picture hides: every face and head of a person who is not a rider of the ticketed
vehicle, and every plate but the ticketed vehicle's.  :func:`blur_regions` pixelates and blurs
them in a copy of an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from etle.privacy.faces import person_heads
from etle.types import Box, Detection

FACE = "face"
HEAD = "head"
PLATE = "plate"
OCCUPIED_LABELS = frozenset({"car", "bus", "truck"})
"""Vehicles whose occupants sit inside the box (a face there with no person box is theirs)."""
RIDER_OVERLAP = 0.35
"""A person is a rider of a vehicle when this share of the person box lies on the vehicle's box
and the person's centre is above the vehicle's width (the manifest's ``riders`` win when given)."""


@dataclass(frozen=True, slots=True)
class Scene:
    """What the evidence says about the key frame: its size, the ticketed vehicle (box, label),
    its plate box (None when no plate was read), the riders' boxes (the people of the ticketed
    vehicle), and every other person's and vehicle's box."""

    width: int
    height: int
    vehicle: Box | None
    vehicle_label: str = ""
    plate: Box | None = None
    riders: tuple[Box, ...] = ()
    persons: tuple[Box, ...] = ()
    vehicles: tuple[Box, ...] = ()

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"scene size must be positive, got {self.width}x{self.height}")


@dataclass(frozen=True, slots=True)
class Region:
    """One region of a picture: ``kind`` face, head or plate; ``source`` the detector (mtcnn,
    person, plate-detector) and its score."""

    box: Box
    kind: str
    source: str
    score: float


@dataclass(frozen=True, slots=True)
class BlurPlan:
    """The regions to hide, and the ones left sharp on purpose (riders' faces, the ticketed plate)."""

    hide: tuple[Region, ...]
    keep: tuple[Region, ...]

    def count(self, kind: str) -> int:
        return sum(1 for r in self.hide if r.kind == kind)


def is_rider(person: Box, vehicle: Box) -> bool:
    """Whether ``person`` rides (or sits in) ``vehicle``: see :data:`RIDER_OVERLAP`."""
    if person.area <= 0:
        return False
    cx = (person.x1 + person.x2) / 2
    return person.intersection(vehicle) / person.area >= RIDER_OVERLAP and vehicle.x1 <= cx <= vehicle.x2


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box.x1 <= point[0] <= box.x2 and box.y1 <= point[1] <= box.y2


def owner_of(face: Box, persons: Sequence[Box]) -> int | None:
    """The index of the person a face belongs to: of the person boxes holding the face's centre,
    the one whose top it is nearest (relative to the box's height: a head is at the top of its
    person, while the face of someone behind falls lower in a nearer person's box)."""
    centre = face.center
    best: tuple[float, int] | None = None
    for i, p in enumerate(persons):
        if not _inside(centre, p) or p.height <= 0:
            continue
        depth = (centre[1] - p.y1) / p.height
        if best is None or depth < best[0]:
            best = (depth, i)
    return None if best is None else best[1]


def _same(a: Box, b: Box, iou: float = 0.5) -> bool:
    return a.iou(b) >= iou


def plan_blur(scene: Scene, faces: Sequence[Detection], plates: Sequence[Detection]) -> BlurPlan:
    """The regions a public copy of the key frame hides (see the module docstring).

    Faces: a face whose owner (:func:`owner_of`, among riders and other persons) is a rider stays
    sharp; one with no person box stays sharp only inside a car, bus or truck that is the ticketed
    vehicle (its occupants); every other face is hidden, and so is the head region of every
    person who is not a rider (faces the detector misses).  Plates: the one matching the ticketed
    plate (IoU >= 0.3) stays; without a read plate, the most confident one whose centre lies on
    the ticketed vehicle and on no other vehicle stays; every other plate is hidden.
    """
    riders = list(scene.riders)
    others = [p for p in scene.persons if not any(_same(p, r) for r in riders)]
    people = riders + others
    hide: list[Region] = []
    keep: list[Region] = []
    for f in faces:
        region = Region(f.box, FACE, "mtcnn", f.confidence)
        who = owner_of(f.box, people)
        if who is not None:
            (keep if who < len(riders) else hide).append(region)
        elif (scene.vehicle is not None and scene.vehicle_label in OCCUPIED_LABELS
              and _inside(f.box.center, scene.vehicle)):
            keep.append(region)
        else:
            hide.append(region)
    for h in person_heads([Detection(p, "person", 1.0) for p in others], scene.width, scene.height):
        hide.append(Region(h.box, HEAD, "person", h.confidence))
    own: Detection | None = None
    if scene.plate is not None:
        matches = [p for p in plates if p.box.iou(scene.plate) >= 0.3]
        own = max(matches, key=lambda p: p.box.iou(scene.plate)) if matches else None  # type: ignore[arg-type]
    elif scene.vehicle is not None:
        vehicle = scene.vehicle
        others_v = [v for v in scene.vehicles if not _same(v, vehicle)]
        candidates = [p for p in plates if _inside(p.box.center, vehicle)
                      and not any(_inside(p.box.center, v) for v in others_v)]
        own = max(candidates, key=lambda p: p.confidence) if candidates else None
    for p in plates:
        region = Region(p.box, PLATE, "plate-detector", p.confidence)
        if own is not None and (p is own or (scene.plate is not None and p.box.iou(scene.plate) >= 0.3)):
            keep.append(region)
        else:
            hide.append(region)
    return BlurPlan(tuple(hide), tuple(keep))


def blur_box(image: np.ndarray, box: Box, *, grow: float = 0.2) -> None:
    """Pixelate and blur ``box`` (grown by ``grow`` of its size) of ``image`` in place: blocks of
    about a sixth of the region's short side, then a Gaussian as wide as a block or more."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box.expand(grow).clip(w, h).as_int()
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    patch = image[y1:y2, x1:x2]
    ph, pw = patch.shape[:2]
    block = max(2, min(ph, pw) // 6)
    small = cv2.resize(patch, (max(1, pw // block), max(1, ph // block)), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (pw, ph), interpolation=cv2.INTER_NEAREST)
    k = 2 * block + 1
    image[y1:y2, x1:x2] = cv2.GaussianBlur(coarse, (k, k), 0)


def blur_regions(image: np.ndarray, regions: Sequence[Region], *, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A copy of ``image`` with every region hidden; ``offset`` is where the image's top-left
    corner lies in frame pixels (a close-up cut from the frame)."""
    out = np.array(image, copy=True)
    dx, dy = offset
    for r in regions:
        grow = 0.15 if r.kind == PLATE else 0.2
        blur_box(out, r.box.offset(-dx, -dy), grow=grow)
    return out
