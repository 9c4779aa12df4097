"""Which persons ride which motorcycle in one frame.

A pure function of one frame's tracked objects, shared by the passenger-count rule and the
helmet rule.  A person rides a motorcycle when enough of the person's box lies inside the
motorcycle's box and the person's feet (bottom centre of the box) are at the motorcycle: not
above its upper quarter (a pedestrian behind it, higher up in the image) and not well below its
wheels (a pedestrian in front).  Each person goes to the one motorcycle they overlap most.

Two detector artefacts are cleaned first, because each inflates a passenger count:

- a *merged* motorcycle box that contains most of another motorcycle's box (YOLO sometimes
  draws one box around two bikes side by side) gets no riders: its persons go to the bikes
  inside it, or to none;
- a *duplicate* person box (the same rider detected twice, e.g. upper body and whole body: one
  box mostly inside the other with the tops level) counts once.
"""

from __future__ import annotations

from typing import Iterable

from etle.types import Box, TrackedObject

__all__ = ["assign_riders", "rider_score", "merged_boxes", "duplicate_persons"]

#: A box holding this fraction of another same-class box is a merged/duplicate detection.
CONTAIN = 0.8
#: Duplicate person boxes have their tops within this fraction of the larger box's height.
TOP_LEVEL = 0.12

#: Feet may be from this fraction of the motorcycle's height below its top ...
FEET_FROM = 0.25
#: ... to this fraction of its height below its bottom edge.
FEET_BELOW = 0.25
#: Feet may be this fraction of the motorcycle's width left or right of it.
FEET_SIDE = 0.1


def rider_score(person: Box, motorcycle: Box) -> float:
    """Fraction of the person's box inside the motorcycle's box, or 0 when the feet are off it."""
    if person.area <= 0 or motorcycle.area <= 0:
        return 0.0
    fx, fy = person.bottom_center
    h, w = motorcycle.height, motorcycle.width
    if not (motorcycle.y1 + FEET_FROM * h <= fy <= motorcycle.y2 + FEET_BELOW * h):
        return 0.0
    if not (motorcycle.x1 - FEET_SIDE * w <= fx <= motorcycle.x2 + FEET_SIDE * w):
        return 0.0
    return person.intersection(motorcycle) / person.area


def _contained(inner: Box, outer: Box) -> float:
    return inner.intersection(outer) / inner.area if inner.area > 0 else 0.0


def merged_boxes(motos: list[TrackedObject]) -> set[int]:
    """Track ids of motorcycle boxes that contain most of another motorcycle's box."""
    out: set[int] = set()
    for a in motos:
        for b in motos:
            if a.track_id != b.track_id and a.box.area > b.box.area and _contained(b.box, a.box) >= CONTAIN:
                out.add(a.track_id)
    return out


def duplicate_persons(persons: list[TrackedObject]) -> set[int]:
    """Track ids of person boxes that repeat a larger person box (same person detected twice)."""
    out: set[int] = set()
    for small in persons:
        for big in persons:
            if small.track_id == big.track_id or small.box.area >= big.box.area or big.track_id in out:
                continue
            if _contained(small.box, big.box) >= CONTAIN and abs(small.box.y1 - big.box.y1) <= TOP_LEVEL * big.box.height:
                out.add(small.track_id)
                break
    return out


def assign_riders(
    objects: Iterable[TrackedObject],
    *,
    min_overlap: float = 0.3,
    person_label: str = "person",
    motorcycle_label: str = "motorcycle",
) -> dict[int, tuple[int, ...]]:
    """Map every motorcycle's track id to the sorted track ids of its riders (maybe none).

    Each person is given to at most one motorcycle: the one with the highest
    :func:`rider_score`, if that reaches ``min_overlap`` (ties go to the lower track id).
    """
    objs = list(objects)
    motos = sorted((o for o in objs if o.label == motorcycle_label), key=lambda o: o.track_id)
    riders: dict[int, list[int]] = {m.track_id: [] for m in motos}
    merged = merged_boxes(motos)
    persons = [o for o in objs if o.label == person_label]
    dupes = duplicate_persons(persons)
    for person in persons:
        if person.track_id in dupes:
            continue
        best, best_score = None, 0.0
        for moto in motos:
            if moto.track_id in merged:
                continue
            score = rider_score(person.box, moto.box)
            if score >= min_overlap and score > best_score:
                best, best_score = moto.track_id, score
        if best is not None:
            riders[best].append(person.track_id)
    return {moto: tuple(sorted(ids)) for moto, ids in riders.items()}
