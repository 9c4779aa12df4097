"""The rule engine: view gating, one violation per (track, rule), bounded memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from etle.rules.engine import RuleEngine
from etle.rules.more_than_two import MoreThanTwoRule
from etle.rules.red_light import RedLightRule
from etle.types import Box, Frame, FrameContext, SignalState, TrackedObject, Violation

IMAGE = np.zeros((120, 160, 3), np.uint8)


def ctx(i: int, objects=(), view_ok: bool = True, pts: float | None = None) -> FrameContext:
    frame = Frame("t", i, i / 10.0 if pts is None else pts, IMAGE)
    return FrameContext(frame, tuple(objects), SignalState("red"), view_ok)


def obj(tid: int) -> TrackedObject:
    return TrackedObject(tid, Box(0, 0, 10, 10), "car", 0.9)


@dataclass
class SpyRule:
    """Fires for every object on every frame; records what it was asked."""

    name: str = "spy"
    seen: list[int] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)
    resets: int = 0

    def update(self, ctx: FrameContext) -> list[Violation]:
        self.seen.append(ctx.frame.index)
        return [
            Violation(
                self.name,
                o.track_id,
                o.label,
                ctx.frame.index,
                ctx.frame.pts,
                ctx.frame.timestamp,
                o.box,
            )
            for o in ctx.objects
        ]

    def forget(self, track_id: int) -> None:
        self.forgotten.append(track_id)

    def reset(self) -> None:
        self.resets += 1


def test_one_violation_per_track_and_rule():
    spy, other = SpyRule(), SpyRule(name="other")
    eng = RuleEngine([spy, other])
    out = []
    for i in range(20):
        out += eng.update(ctx(i, [obj(1), obj(2)]))
    assert sorted((v.rule, v.track_id) for v in out) == [
        ("other", 1),
        ("other", 2),
        ("spy", 1),
        ("spy", 2),
    ]


def test_rules_see_nothing_while_the_view_is_not_ok_and_are_reset_once():
    spy = SpyRule()
    eng = RuleEngine([spy])
    for i in range(10):
        eng.update(ctx(i, [], view_ok=not (3 <= i <= 6)))
    assert spy.seen == [0, 1, 2, 7, 8, 9]
    assert spy.resets == 1


def test_no_second_violation_after_a_pause():
    spy = SpyRule()
    eng = RuleEngine([spy])
    n = len(eng.update(ctx(0, [obj(1)])))
    eng.update(ctx(1, [obj(1)], view_ok=False))
    n += len(eng.update(ctx(2, [obj(1)])))
    assert n == 1


def test_stale_tracks_are_forgotten_and_memory_stays_bounded():
    red = RedLightRule(((0.0, 50.0), (160.0, 50.0)), approach_side=(80.0, 100.0))
    m3 = MoreThanTwoRule()
    spy = SpyRule()
    eng = RuleEngine([red, m3, spy], forget_after_s=2.0)
    # a new car every frame for 10 minutes at 10 fps, each seen once on the approach side
    for i in range(6000):
        o = TrackedObject(i, Box(70, 60, 90, 80), "car", 0.9)
        eng.update(ctx(i, [o]))
    assert eng.tracked <= 21
    assert red.tracked <= 21
    assert len(spy.forgotten) >= 5970
    assert spy.forgotten[:3] == [0, 1, 2]


def test_fired_keys_are_bounded():
    spy = SpyRule()
    eng = RuleEngine([spy], max_fired=100)
    for i in range(1000):
        eng.update(ctx(i, [obj(i)]))
    assert len(eng._fired) == 100


def test_pts_going_backwards_resets_rules():
    spy = SpyRule()
    eng = RuleEngine([spy])
    eng.update(ctx(0, pts=5.0))
    eng.update(ctx(1, pts=1.0))
    assert spy.resets == 1


def test_slightly_out_of_order_frames_are_skipped_not_a_restart():
    """Containers with jittery timestamps (highway_roadside_traffic1.mp4 steps back 0.1-0.2 s
    a dozen times): the frame is skipped, the rules keep their state and never see time run back."""
    spy = SpyRule()
    eng = RuleEngine([spy], max_disorder_s=0.5)
    eng.update(ctx(0, pts=2.0))
    eng.update(ctx(1, pts=1.85))
    assert spy.resets == 0 and eng.out_of_order == 1
    eng.update(ctx(2, pts=2.1))
    eng.update(ctx(3, pts=0.5))  # a real restart
    assert spy.resets == 1


def test_duplicate_rule_names_are_refused():
    import pytest

    with pytest.raises(ValueError):
        RuleEngine([SpyRule(), SpyRule()])
