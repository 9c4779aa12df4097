"""Which persons ride which motorcycle in one frame.

A pure function of one frame's tracked objects, shared by the passenger-count rule and the
helmet rule.  A person rides a motorcycle when enough of the person's box lies inside the
motorcycle's box and the person's feet (bottom centre of the box) are at the motorcycle: not
above its upper quarter (a pedestrian behind it, higher up in the image) and not well below its
wheels (a pedestrian in front).  Each person goes to the one motorcycle they overlap most.
"""

from __future__ import annotations

from typing import Iterable

from etle.types import Box, TrackedObject

__all__ = ["assign_riders", "rider_score"]

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
    for person in (o for o in objs if o.label == person_label):
        best, best_score = None, 0.0
        for moto in motos:
            score = rider_score(person.box, moto.box)
            if score >= min_overlap and score > best_score:
                best, best_score = moto.track_id, score
        if best is not None:
            riders[best].append(person.track_id)
    return {moto: tuple(sorted(ids)) for moto, ids in riders.items()}
