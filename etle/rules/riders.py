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
  box mostly inside the other with the tops level, about as wide) counts once.  A box inside a
  rider's that is much narrower and shorter is a child in front of the rider (or on their lap),
  not a duplicate: its feet are hidden, so it rides the motorcycle its rider rides
  (:func:`_child_of`).

A passenger on the rear seat of a motorcycle seen at an angle often sticks out of the
motorcycle's box (the next motorcycle hides its rear) and overlaps the neighbouring motorcycle
about as much.  What places them is the rider in front: a passenger sits right behind the
rider, so their boxes overlap and their heads are about level.  :func:`association_scores`
therefore adds, for every person but a motorcycle's *rider* (its best-scoring person), the
fraction of the person's box inside that rider's box, when the person's feet are at the
motorcycle (its height band, and within half its width left or right) and the person's head is
level with the rider's (at most 15 % of the rider's height higher, 35 % lower: a child).  Both
rules that need riders (the passenger count and the helmet rule) use these scores.

The same seating geometry also takes a person *away* from a motorcycle.  When a passenger's own
motorcycle is not detected (hidden behind its rider), their box still overlaps the neighbouring
motorcycle, and the neighbour's rider is the only one the scores above can place them with.  A
person who is not a motorcycle's rider is therefore not given to it when they sit with someone
else more than with its rider: another person, not riding that motorcycle, whose head is level
with theirs and whose box shares a larger part of their width (:func:`_sits_elsewhere`).  This
only ever removes a person from a motorcycle, never adds one: a wrong vehicle on a ticket costs
a citizen, a missed one costs a ticket.
"""

from __future__ import annotations

from typing import Iterable

from etle.types import Box, TrackedObject

__all__ = [
    "assign_riders", "association_scores", "duplicate_persons", "merged_boxes", "rider_score", "seated_together",
]

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
#: A passenger's feet may be this fraction of the motorcycle's width left or right of it.
PASSENGER_SIDE = 0.5
#: A passenger's head (box top) is at most this fraction of the rider's height above the rider's
#: (someone higher up in the picture is further back: on another motorcycle) ...
PASSENGER_ABOVE = 0.15
#: ... and at most this fraction below it (a child sits lower).
PASSENGER_BELOW = 0.35
#: A child in front of (or on the lap of) a rider: a person box at least this share inside the
#: rider's box, ...
CHILD_INSIDE = 0.8
#: ... at most this share of the rider's height tall and of the rider's width wide (a second
#: box of the rider's own upper body is about as wide as the rider's box: a duplicate), ...
CHILD_SIZE = 0.75
#: ... its top not above the rider's, and below it by at most this share of the rider's height,
CHILD_BELOW = 0.5
#: ... and its bottom (where it sits) at least this share of the rider's height below the
#: rider's top: a child sits at the rider's seat, while a distant rider behind, small enough to
#: fall inside a near rider's box, ends high in it.
CHILD_SEAT = 0.45


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
            if (_contained(small.box, big.box) >= CONTAIN and abs(small.box.y1 - big.box.y1) <= TOP_LEVEL * big.box.height
                    and not _child_sized(small.box, big.box)):
                out.add(small.track_id)
                break
    return out


def _feet_at(person: Box, motorcycle: Box, side: float) -> bool:
    fx, fy = person.bottom_center
    h, w = motorcycle.height, motorcycle.width
    return (
        motorcycle.y1 + FEET_FROM * h <= fy <= motorcycle.y2 + FEET_BELOW * h
        and motorcycle.x1 - side * w <= fx <= motorcycle.x2 + side * w
    )


def _behind(person: Box, rider: Box, motorcycle: Box) -> bool:
    """Whether ``person`` can sit behind ``rider`` on ``motorcycle`` (feet there, head level)."""
    if person.area <= 0 or rider.height <= 0:
        return False
    dy = person.y1 - rider.y1
    return -PASSENGER_ABOVE * rider.height <= dy <= PASSENGER_BELOW * rider.height and _feet_at(
        person, motorcycle, PASSENGER_SIDE
    )


def _child_of(person: Box, rider: Box) -> float:
    """The share of ``person``'s box inside ``rider``'s when ``person`` is a child sitting in front
    of the rider (or on their lap): small, inside the rider's box, head lower; else 0.  Such a
    child's feet are hidden by the rider's legs and the motorcycle, so :func:`rider_score` (which
    looks for feet at the motorcycle) does not find them."""
    if person.area <= 0 or rider.height <= 0 or not _child_sized(person, rider):
        return 0.0
    inside = _contained(person, rider)
    dy = person.y1 - rider.y1
    if inside < CHILD_INSIDE or not 0 <= dy <= CHILD_BELOW * rider.height:
        return 0.0
    if person.y2 < rider.y1 + CHILD_SEAT * rider.height:
        return 0.0
    return inside


def _child_sized(small: Box, big: Box) -> bool:
    return small.height <= CHILD_SIZE * big.height and small.width <= CHILD_SIZE * big.width


def _shared_width(a: Box, b: Box) -> float:
    """The fraction of the narrower box's width that the two boxes share."""
    narrower = min(a.width, b.width)
    return max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1)) / narrower if narrower > 0 else 0.0


def _level(a: Box, b: Box) -> bool:
    """Whether ``a``'s head (box top) is level with ``b``'s, as a passenger's is with a rider's."""
    return b.height > 0 and -PASSENGER_ABOVE * b.height <= a.y1 - b.y1 <= PASSENGER_BELOW * b.height


def _sits_elsewhere(person: TrackedObject, rider: TrackedObject, others: Iterable[TrackedObject]) -> bool:
    """Whether ``person`` sits with one of ``others`` (persons whose scores do not put them on this
    motorcycle) more than with its ``rider``: head level with theirs and a larger share of their
    width."""
    with_rider = _shared_width(person.box, rider.box)
    return any(
        _shared_width(person.box, q.box) > with_rider and (_level(person.box, q.box) or _level(q.box, person.box))
        for q in others
    )


def association_scores(
    objects: Iterable[TrackedObject],
    *,
    min_overlap: float = 0.3,
    person_label: str = "person",
    motorcycle_label: str = "motorcycle",
) -> dict[tuple[int, int], float]:
    """(person id, motorcycle id) -> how strongly the person rides it, for every pair above 0.

    The score is :func:`rider_score` plus, for a person who is not the motorcycle's rider, the
    fraction of their box inside the rider's box (see the module docstring).  A motorcycle's
    rider is its best-scoring person with a rider score of at least ``min_overlap``.  Merged
    motorcycle boxes and duplicate person boxes take no part.
    """
    objs = list(objects)
    motos = sorted((o for o in objs if o.label == motorcycle_label), key=lambda o: o.track_id)
    merged = merged_boxes(motos)
    persons = [o for o in objs if o.label == person_label]
    dupes = duplicate_persons(persons)
    persons = sorted((p for p in persons if p.track_id not in dupes), key=lambda o: o.track_id)
    out: dict[tuple[int, int], float] = {}
    for moto in motos:
        if moto.track_id in merged:
            continue
        base = {p.track_id: rider_score(p.box, moto.box) for p in persons}
        rider = max(persons, key=lambda p: (base[p.track_id], -p.track_id), default=None)
        if rider is not None and base[rider.track_id] < min_overlap:
            rider = None
        scores = {}
        for person in persons:
            score = base[person.track_id]
            if rider is not None and person.track_id != rider.track_id and _behind(person.box, rider.box, moto.box):
                score += person.box.intersection(rider.box) / person.box.area
            scores[person.track_id] = score
        on_it = [q for q in persons if base[q.track_id] >= min_overlap]
        for person in persons:
            if scores[person.track_id] < min_overlap:
                child = max((_child_of(person.box, q.box) for q in on_it if q.track_id != person.track_id), default=0.0)
                scores[person.track_id] += child
        elsewhere = [q for q in persons if scores[q.track_id] < min_overlap]  # not on this motorcycle
        for person in persons:
            score = scores[person.track_id]
            if score <= 0:
                continue
            if rider is not None and person.track_id != rider.track_id and _sits_elsewhere(
                person, rider, (q for q in elsewhere if q.track_id != person.track_id)
            ):
                continue
            out[(person.track_id, moto.track_id)] = score
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
    :func:`association_scores` score, if that reaches ``min_overlap`` (ties go to the lower
    track id).
    """
    objs = list(objects)
    riders: dict[int, list[int]] = {o.track_id: [] for o in objs if o.label == motorcycle_label}
    scores = association_scores(objs, min_overlap=min_overlap, person_label=person_label, motorcycle_label=motorcycle_label)
    best: dict[int, tuple[float, int]] = {}
    for (pid, mid), score in sorted(scores.items()):
        if score >= min_overlap and (pid not in best or score > best[pid][0]):
            best[pid] = (score, mid)
    for pid, (_, mid) in best.items():
        riders[mid].append(pid)
    return {moto: tuple(sorted(ids)) for moto, ids in sorted(riders.items())}


#: two persons sit on one seat when their boxes share this fraction of the narrower one's width
SEAT_OVERLAP = 0.15
def seated_together(persons: Iterable[Box], min_overlap: float = SEAT_OVERLAP) -> int:
    """The size of the largest group of persons chained by overlapping widths.

    People riding one motorcycle sit one behind the other, so from any camera angle their boxes
    overlap horizontally (a child in front of a rider, a passenger behind).  Two groups side by
    side with no overlap are riders of two motorcycles -- what a merged motorcycle box, drawn
    around two bikes with no separate box for either, would otherwise count as one crowded bike.
    """
    boxes = list(persons)
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            shared = min(a.x2, b.x2) - max(a.x1, b.x1)
            narrower = min(a.width, b.width)
            if narrower > 0 and shared >= min_overlap * narrower:
                parent[root(i)] = root(j)
    sizes: dict[int, int] = {}
    for i in range(len(boxes)):
        r = root(i)
        sizes[r] = sizes.get(r, 0) + 1
    return max(sizes.values(), default=0)
