"""No helmet: synthetic riders with painted heads and a fake head classifier, frame by frame."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from etle.helmet.crops import head_box
from etle.rules.engine import RuleEngine
from etle.rules.more_than_two import MoreThanTwoRule
from etle.rules.no_helmet import NoHelmetRule
from etle.rules.riders import assign_riders, association_scores
from etle.types import Box, Frame, FrameContext, TrackedObject

H, W = 360, 640
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
BARE, HELMET = (0, 0, 255), (0, 255, 0)  # BGR paint of the head square


class FakeHeads:
    """Reads the paint: red head -> no helmet, green -> helmet, anything else -> background."""

    def __init__(self) -> None:
        self.calls = 0
        self.crops = 0

    def predict(self, crops):
        self.calls += 1
        self.crops += len(crops)
        out = []
        for c in crops:
            b, g, r = c[24:40, 24:40].reshape(-1, 3).mean(axis=0)
            if r > 150 and g < 100:
                out.append([0.05, 0.9, 0.05])
            elif g > 150 and r < 100:
                out.append([0.9, 0.05, 0.05])
            else:
                out.append([0.05, 0.05, 0.9])
        return np.asarray(out)


def person(tid: int, box: tuple[float, float, float, float]) -> TrackedObject:
    return TrackedObject(tid, Box(*box), "person", 0.8)


def moto(tid: int, box: tuple[float, float, float, float]) -> TrackedObject:
    return TrackedObject(tid, Box(*box), "motorcycle", 0.7)


def paint(image: np.ndarray, p: TrackedObject, colour) -> None:
    hb = head_box(p.box, frame_width=W, frame_height=H)
    assert hb is not None
    x1, y1, x2, y2 = hb.as_int()
    image[y1:y2, x1:x2] = colour


def scene(objects, heads: dict[int, tuple[int, int, int]]) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    by = {o.track_id: o for o in objects}
    for tid, colour in heads.items():
        paint(img, by[tid], colour)
    return img


# one motorcycle with rider 1 and passenger 2 (behind, head level), the Cilacap geometry
M8 = moto(8, (281, 138, 423, 358))
RIDER = person(1, (288, 73, 424, 354))
CHILD = person(2, (399, 65, 456, 302))
# a neighbouring motorcycle with its own rider
M13 = moto(13, (426, 168, 590, 355))
WOMAN = person(10, (469, 83, 573, 345))


def run(rule, objects, heads, n=60, start=0):
    eng = RuleEngine([rule])
    img = scene(objects, heads)
    out = []
    for i in range(start, start + n):
        out += eng.update(FrameContext(Frame("t", i, i / 30.0, img, wall_start=START), tuple(objects)))
    return out


def test_bare_headed_passenger_tickets_the_motorcycle():
    clf = FakeHeads()
    out = run(NoHelmetRule(clf), [M8, RIDER, CHILD, M13, WOMAN], {1: HELMET, 2: BARE, 10: HELMET})
    assert len(out) == 1
    v = out[0]
    assert v.rule == "no_helmet" and v.track_id == 8 and v.label == "motorcycle"
    assert v.details["persons_without_helmet"] == [2]
    assert set(v.related_track_ids) == {1, 2}
    assert v.details["rider_no_helmet_scores"]["1"] < 0.2


def test_fully_helmeted_riders_do_not_fire():
    out = run(NoHelmetRule(FakeHeads()), [M8, RIDER, CHILD, M13, WOMAN], {1: HELMET, 2: HELMET, 10: HELMET})
    assert out == []


def test_bare_headed_rider_fires():
    out = run(NoHelmetRule(FakeHeads()), [M13, WOMAN], {10: BARE})
    assert [v.track_id for v in out] == [13]


def test_pedestrian_without_helmet_does_not_fire():
    walker = person(5, (40, 60, 100, 300))  # no motorcycle near
    assert run(NoHelmetRule(FakeHeads()), [M13, WOMAN, walker], {10: HELMET, 5: BARE}) == []


def test_pedestrian_standing_behind_a_motorcycle_is_not_its_rider():
    # feet well above the motorcycle (further back in the picture): not on it
    behind = person(6, (480, 10, 540, 160))
    assert run(NoHelmetRule(FakeHeads()), [M13, WOMAN, behind], {10: HELMET, 6: BARE}) == []


def test_crops_that_show_no_head_are_not_samples():
    # nothing painted: the classifier says background, no sample is kept, nothing fires
    rule = NoHelmetRule(FakeHeads())
    assert run(rule, [M13, WOMAN], {}) == []
    assert rule.bare_score(10) is None


def test_head_cut_by_the_top_of_the_frame_is_not_classified():
    clf = FakeHeads()
    top = person(10, (469, 0, 573, 345))
    rule = NoHelmetRule(clf)
    img = np.full((H, W, 3), 90, np.uint8)
    img[0:20, 500:540] = BARE
    eng = RuleEngine([rule])
    for i in range(30):
        eng.update(FrameContext(Frame("t", i, i / 30, img, wall_start=START), (M13, top)))
    assert clf.crops == 0


def test_classification_is_throttled():
    clf = FakeHeads()
    run(NoHelmetRule(clf, every_n_frames=5, threshold=0.99), [M13, WOMAN], {10: HELMET}, n=50)
    assert clf.crops == 10


def test_a_settled_helmeted_person_is_judged_less_often_and_a_bare_one_is_not():
    # every 3 frames until 15 samples are kept (frames 0..42), then every 12
    clf = FakeHeads()
    run(NoHelmetRule(clf, every_n_frames=3, max_samples=15), [M13, WOMAN], {10: HELMET}, n=45 + 120)
    assert clf.crops == 15 + 10
    bare = FakeHeads()
    run(NoHelmetRule(bare, every_n_frames=3, max_samples=15), [M13, WOMAN], {10: BARE}, n=45 + 120)
    assert bare.crops == 55  # never settles: judged every 3 frames throughout


def test_needs_min_samples_before_judging():
    rule = NoHelmetRule(FakeHeads(), min_samples=6, every_n_frames=3)
    out = run(rule, [M13, WOMAN], {10: BARE}, n=15)  # 5 samples only
    assert out == []
    out = run(rule, [M13, WOMAN], {10: BARE}, n=3, start=15)
    assert len(out) == 1


def test_ambiguous_passenger_gets_no_motorcycle():
    # a bare-headed person exactly between two motorcycles, overlapping both equally, and level
    # with neither rider: no motorcycle can be held responsible
    left, right = moto(20, (100, 150, 240, 350)), moto(21, (260, 150, 400, 350))
    between = person(3, (200, 120, 300, 330))
    rule = NoHelmetRule(FakeHeads())
    assert run(rule, [left, right, between], {3: BARE}) == []
    assert rule.rides(3) is None


def test_rides_the_motorcycle_most_associated_over_time():
    rule = NoHelmetRule(FakeHeads(), min_ride_frames=10, ride_margin=1.5)
    eng = RuleEngine([rule])
    img = scene([M8, RIDER, CHILD, M13, WOMAN], {1: HELMET, 2: BARE, 10: HELMET})
    # M8's box is cut short for the first frames (its rear hidden): the child overlaps M13 then
    m8_short = moto(8, (276, 136, 394, 357))
    out = []
    for i in range(90):
        objs = (m8_short if i < 30 else M8, RIDER, CHILD, M13, WOMAN)
        out += eng.update(FrameContext(Frame("t", i, i / 30, img, wall_start=START), objs))
    assert [v.track_id for v in out] == [8]


def test_helmet_and_passenger_rules_share_the_rider_association():
    objs = [M8, RIDER, CHILD, M13, WOMAN]
    riders = assign_riders(objs)
    assert riders == {8: (1, 2), 13: (10,)}
    scores = association_scores(objs)
    assert scores[(2, 8)] > scores.get((2, 13), 0.0)
    # more_than_two counts the same two persons on motorcycle 8: not a violation
    eng = RuleEngine([MoreThanTwoRule(min_frames=3)])
    img = scene(objs, {})
    out = []
    for i in range(30):
        out += eng.update(FrameContext(Frame("t", i, i / 30, img, wall_start=START), tuple(objs)))
    assert out == []


def test_zone_limits_the_motorcycles_judged():
    zone = ((0, 0), (300, 0), (300, 360), (0, 360))  # M13's anchor (508, 355) is outside
    assert run(NoHelmetRule(FakeHeads(), zone=zone), [M13, WOMAN], {10: BARE}) == []


def test_state_is_forgotten():
    rule = NoHelmetRule(FakeHeads())
    eng = RuleEngine([rule], forget_after_s=0.5)
    img = scene([M13, WOMAN], {10: BARE})
    for i in range(10):
        eng.update(FrameContext(Frame("t", i, i / 30, img, wall_start=START), (M13, WOMAN)))
    assert rule.tracked == 1
    for i in range(10, 40):
        eng.update(FrameContext(Frame("t", i, i / 30, img, wall_start=START), ()))
    assert rule.tracked == 0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        NoHelmetRule(FakeHeads(), threshold=1.5)
    with pytest.raises(ValueError):
        NoHelmetRule(FakeHeads(), min_samples=5, max_samples=2)


def test_heads_are_classified_on_observed_boxes_only():
    """On a detection stride the persons' predicted boxes are not cropped and classified."""
    from dataclasses import replace

    clf = FakeHeads()
    predicted = [replace(o, predicted=True) for o in (M13, WOMAN)]
    assert run(NoHelmetRule(clf), predicted, {10: BARE}) == []
    assert clf.crops == 0
    clf2 = FakeHeads()
    assert [v.track_id for v in run(NoHelmetRule(clf2), [M13, WOMAN], {10: BARE})] == [13]
    assert clf2.crops > 0
