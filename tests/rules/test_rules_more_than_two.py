"""More than two on a motorcycle: riders sustained over frames."""

from __future__ import annotations

import numpy as np
import pytest

from etle.rules.engine import RuleEngine
from etle.rules.more_than_two import MoreThanTwoRule
from etle.rules.riders import assign_riders
from etle.types import Box, Frame, FrameContext, TrackedObject

IMAGE = np.zeros((360, 640, 3), np.uint8)


def moto(tid: int, x: float = 100.0, y: float = 100.0) -> TrackedObject:
    return TrackedObject(tid, Box(x, y, x + 100, y + 100), "motorcycle", 0.9)


def rider(tid: int, x: float, mx: float = 100.0, my: float = 100.0) -> TrackedObject:
    """A person sitting on the motorcycle at (mx, my): head above it, feet in its lower part."""
    return TrackedObject(tid, Box(mx + x, my - 40, mx + x + 35, my + 80), "person", 0.8)


def ctx(i: int, objects, fps: float = 30.0) -> FrameContext:
    return FrameContext(Frame("t", i, i / fps, IMAGE), tuple(objects))


def three_up(n: int = 3):
    return [moto(1)] + [rider(10 + k, 5 + 25 * k) for k in range(n)]


def run(frames, **kw) -> list:
    eng = RuleEngine([MoreThanTwoRule(**kw)])
    out = []
    for i, objs in enumerate(frames):
        out += eng.update(ctx(i, objs))
    return out


def test_three_riders_sustained_fire_once():
    out = run([three_up()] * 30, min_frames=5)
    assert len(out) == 1
    v = out[0]
    assert (v.rule, v.track_id, v.label) == ("more_than_two", 1, "motorcycle")
    assert v.related_track_ids == (10, 11, 12)
    assert v.frame_index == 4
    assert v.details["persons"] == 3


def test_two_riders_do_not_fire():
    assert run([three_up(2)] * 60) == []


def test_single_noisy_frame_does_not_fire():
    frames = [three_up(2)] * 10 + [three_up(3)] + [three_up(2)] * 30
    assert run(frames, min_frames=5) == []


def test_hits_must_fall_within_the_window():
    # one 3-rider frame every second: never 5 within 2 s
    frames = [three_up(3) if i % 30 == 0 else three_up(2) for i in range(300)]
    assert run(frames, min_frames=5, window_s=2.0) == []


def test_intermittent_misses_still_fire():
    # 3 riders seen in 2 of every 3 frames (one occluded now and then)
    frames = [three_up(3) if i % 3 else three_up(2) for i in range(30)]
    assert len(run(frames, min_frames=5)) == 1


def test_pedestrian_beside_is_not_a_rider():
    walker = TrackedObject(20, Box(190, 60, 230, 260), "person", 0.9)  # feet well below the wheels
    assert run([three_up(2) + [walker]] * 30) == []


def test_assign_riders_gives_each_person_one_motorcycle():
    a, b = moto(1, x=100), moto(2, x=180)
    p = rider(10, 60, mx=100)  # overlaps both; more of it is inside motorcycle 1
    riders = assign_riders([a, b, p])
    assert riders == {1: (10,), 2: ()}


def test_assign_riders_ignores_people_above_and_below():
    m = moto(1)
    above = TrackedObject(10, Box(120, 0, 150, 120), "person", 0.9)  # feet near the moto top
    below = TrackedObject(11, Box(120, 150, 150, 260), "person", 0.9)  # feet far below
    assert assign_riders([m, above, below]) == {1: ()}


def test_assign_riders_does_not_mutate_and_is_order_independent():
    objs = three_up(3) + [moto(2, x=400)]
    before = list(objs)
    assert assign_riders(objs) == assign_riders(list(reversed(objs))) == {1: (10, 11, 12), 2: ()}
    assert objs == before


def test_bad_options():
    with pytest.raises(ValueError):
        MoreThanTwoRule(min_persons=1)


def _obj(tid: int, label: str, box: tuple[float, float, float, float]):  # type: ignore[no-untyped-def]
    from etle.types import Box, TrackedObject

    return TrackedObject(tid, Box(*box), label, 0.9)


def test_merged_motorcycle_box_gets_no_riders() -> None:
    """From the Cilacap clip: one YOLO box around two bikes side by side holds 4 persons."""
    from etle.rules.riders import assign_riders

    objs = [
        _obj(8, "motorcycle", (281, 137, 423, 358)),
        _obj(13, "motorcycle", (280, 139, 607, 358)),  # merged: contains bike 8
        _obj(1, "person", (293, 72, 424, 354)),
        _obj(11, "person", (399, 65, 458, 291)),
        _obj(4, "person", (470, 83, 565, 206)),  # duplicate of 10 (upper body)
        _obj(10, "person", (468, 81, 576, 345)),
    ]
    riders = assign_riders(objs)
    assert riders[13] == ()
    assert len(riders[8]) <= 2


def test_duplicate_person_counts_once_but_child_in_front_counts() -> None:
    from etle.rules.riders import assign_riders

    moto = _obj(1, "motorcycle", (100, 150, 200, 300))
    rider = _obj(2, "person", (110, 40, 190, 280))
    upper_body_dupe = _obj(3, "person", (115, 42, 185, 150))
    child_in_front = _obj(4, "person", (125, 120, 175, 270))  # head well below the rider's
    assert assign_riders([moto, rider, upper_body_dupe]) == {1: (2,)}
    assert assign_riders([moto, rider, child_in_front]) == {1: (2, 4)}


def test_merged_box_alone_over_two_bikes_does_not_fire() -> None:
    """From the Cilacap clip at 6.97 s (rectangular 640x384 input): only the merged box around two
    bikes side by side is detected, with the rider and child of one bike and the woman riding
    the other -- two groups of riders, not three persons on one motorcycle."""
    frame_objs = [
        _obj(13, "motorcycle", (282, 139, 588, 358)),
        _obj(1, "person", (293, 72, 424, 354)),
        _obj(12, "person", (399, 65, 458, 291)),
        _obj(11, "person", (468, 81, 576, 345)),
    ]
    assert len(assign_riders(frame_objs)[13]) == 3  # the association alone would count three
    assert run([frame_objs] * 30, min_frames=5) == []


def test_seated_together_groups_riders_by_overlap() -> None:
    from etle.rules.riders import seated_together

    assert seated_together([]) == 0
    one_behind_another = [Box(100, 50, 150, 200), Box(130, 40, 180, 200), Box(160, 60, 200, 200)]
    assert seated_together(one_behind_another) == 3  # a chain: each overlaps the next
    side_by_side = [Box(100, 50, 150, 200), Box(140, 40, 180, 200), Box(300, 60, 350, 200)]
    assert seated_together(side_by_side) == 2
    assert seated_together([Box(0, 0, 10, 10), Box(20, 0, 30, 10)]) == 1


def test_a_passenger_whose_own_bike_is_hidden_is_not_given_to_the_neighbour() -> None:
    """From the Cilacap clip's last framing at 25.5 s: the boy riding behind the man in the grey
    hoodie (their motorcycle hidden, not detected) sticks out over the next motorcycle, whose
    rider is the woman in the hijab; the woman in pink waits on the bike behind hers.  He sits
    with the man (head level, half his width shared), not with her rider: not hers."""
    from etle.rules.riders import assign_riders, association_scores

    neighbour = _obj(21, "motorcycle", (403, 154, 541, 348))
    rider = _obj(1, "person", (416, 99, 523, 340))
    boy = _obj(27, "person", (381, 85, 424, 286))
    man = _obj(17, "person", (306, 90, 402, 321))
    behind = _obj(24, "person", (381, 1, 455, 146))  # further back, higher up: not level with the boy
    objs = [neighbour, rider, boy, man, behind]
    assert (27, 21) not in association_scores(objs)
    assert assign_riders(objs)[21] == (1,)
    # without the man beside him nothing places the boy elsewhere: the neighbour keeps him
    assert (27, 21) in association_scores([neighbour, rider, boy, behind])


def test_a_passenger_sitting_with_the_rider_is_kept_beside_other_riders() -> None:
    """A passenger behind the rider shares most of the rider's width; a rider on the next bike,
    head level, shares less of the passenger's: the passenger stays (three on one bike count)."""
    from etle.rules.riders import assign_riders

    moto = _obj(1, "motorcycle", (100, 150, 200, 300))
    rider = _obj(2, "person", (110, 40, 190, 280))
    passenger = _obj(3, "person", (120, 30, 200, 270))
    child = _obj(4, "person", (125, 120, 175, 270))
    next_moto = _obj(5, "motorcycle", (215, 150, 315, 300))
    next_rider = _obj(6, "person", (190, 35, 290, 280))  # overlaps the passenger by 10 px
    assert assign_riders([moto, rider, passenger, child, next_moto, next_rider]) == {1: (2, 3, 4), 5: (6,)}


def test_a_child_in_front_whose_feet_are_hidden_rides_the_riders_motorcycle() -> None:
    """A child on the tank in front of the rider (photos of families on one motorcycle): its box
    lies inside the rider's, ends at the seat, and no feet show at the motorcycle."""
    from etle.rules.more_than_two import crowded_motorcycles
    from etle.rules.riders import rider_score

    moto = _obj(1, "motorcycle", (100, 150, 200, 300))
    rider = _obj(2, "person", (110, 40, 190, 280))
    passenger = _obj(3, "person", (150, 35, 230, 280))
    child = _obj(4, "person", (125, 60, 165, 170))
    assert rider_score(child.box, moto.box) == 0  # its feet are not at the motorcycle
    assert assign_riders([moto, rider, child]) == {1: (2, 4)}
    assert set(crowded_motorcycles([moto, rider, passenger, child])) == {1}
    assert crowded_motorcycles([moto, rider, passenger]) == {}


def test_a_distant_person_inside_a_near_riders_box_is_not_a_child() -> None:
    """Small and inside the rider's box, but ending high in it: someone further back (a photo's
    background rider), not a child at the seat."""
    moto = _obj(1, "motorcycle", (100, 150, 200, 300))
    rider = _obj(2, "person", (110, 40, 190, 280))
    far = _obj(4, "person", (130, 45, 160, 120))
    above = _obj(5, "person", (130, 20, 160, 160))  # head above the rider's: not in front of them
    assert assign_riders([moto, rider, far]) == {1: (2,)}
    assert assign_riders([moto, rider, above]) == {1: (2,)}


def test_a_second_box_of_the_riders_upper_body_stays_a_duplicate() -> None:
    """As wide as the rider's box with the top level: the rider detected twice, not a child."""
    from etle.rules.riders import duplicate_persons

    rider = _obj(2, "person", (110, 40, 190, 280))
    upper = _obj(3, "person", (112, 42, 186, 170))
    child = _obj(4, "person", (125, 45, 165, 170))  # top level too, but half the width
    assert duplicate_persons([rider, upper]) == {3}
    assert duplicate_persons([rider, child]) == set()
