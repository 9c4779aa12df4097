"""FrameRing: bounded by pts span and count, resets on a new timeline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etle.evidence.ring import FrameRing
from etle.types import Box, Frame, TrackedObject

IMAGE = np.zeros((8, 8, 3), dtype=np.uint8)


def frame(i: int, pts: float, source: str = "cam.mp4") -> Frame:
    return Frame(source=source, index=i, pts=pts, image=IMAGE)


def test_bounded_by_seconds() -> None:
    ring = FrameRing(2.0)
    for i in range(100):
        ring.push(frame(i, i * 0.1), ())
    snap = ring.snapshot()
    assert snap[-1][0].index == 99
    assert snap[0][0].pts == pytest.approx(9.9 - 2.0)
    assert ring.span <= 2.0 + 1e-9
    assert len(ring) == 21


def test_bounded_by_max_frames() -> None:
    ring = FrameRing(1000.0, max_frames=5)
    for i in range(50):
        ring.push(frame(i, float(i)), ())
    assert [f.index for f, _ in ring.snapshot()] == [45, 46, 47, 48, 49]


def test_objects_kept_and_snapshot_immutable() -> None:
    ring = FrameRing(5.0)
    obj = TrackedObject(track_id=3, box=Box(1, 1, 4, 4), label="car", confidence=0.9)
    objs = [obj]
    ring.push(frame(0, 0.0), objs)
    objs.append(obj)  # the caller's list changing does not reach the ring
    snap = ring.snapshot()
    assert isinstance(snap, tuple) and snap[0][1] == (obj,)
    ring.push(frame(1, 0.1), ())
    assert len(snap) == 1 and len(ring) == 2


def test_resets_when_pts_goes_back_or_source_changes() -> None:
    ring = FrameRing(10.0)
    for i in range(5):
        ring.push(frame(i, float(i)), ())
    ring.push(frame(0, 0.0), ())
    assert len(ring) == 1
    ring.push(frame(1, 1.0, source="other.mp4"), ())
    assert [f.source for f, _ in ring.snapshot()] == ["other.mp4"]


def test_between() -> None:
    ring = FrameRing(10.0)
    for i in range(10):
        ring.push(frame(i, float(i)), ())
    assert [f.index for f, _ in ring.between(2.0, 4.0)] == [2, 3, 4]


@pytest.mark.parametrize("seconds, max_frames", [(0.0, 10), (-1.0, 10), (1.0, 0)])
def test_rejects_bad_bounds(seconds: float, max_frames: int) -> None:
    with pytest.raises(ValueError):
        FrameRing(seconds, max_frames=max_frames)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0.001, max_value=1.0), min_size=1, max_size=200), st.floats(0.1, 5.0))
def test_invariants(steps: list[float], seconds: float) -> None:
    ring = FrameRing(seconds, max_frames=64)
    pts = 0.0
    for i, step in enumerate(steps):
        pts += step
        ring.push(frame(i, pts), ())
        snap = ring.snapshot()
        assert 1 <= len(snap) <= 64
        assert snap[-1][0].index == i
        assert snap[-1][0].pts - snap[0][0].pts <= seconds + 1e-9
