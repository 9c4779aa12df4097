from __future__ import annotations


import numpy as np
import pytest

from etle.detect.onnx_yolo import Letterbox, decode_yolov8, letterbox, parse_names
from etle.track.bytetrack import ByteTrackTracker
from etle.types import Box, Detection, Frame

NAMES = ["person", "bicycle", "car", "motorcycle"]


def _raw(boxes: list[tuple[float, float, float, float, int, float]], n_classes: int = 4) -> np.ndarray:
    """A hand-made YOLOv8 output (1, 4+C, N) from (cx, cy, w, h, class, score) rows."""
    out = np.zeros((1, 4 + n_classes, len(boxes)), np.float32)
    for i, (cx, cy, w, h, c, s) in enumerate(boxes):
        out[0, :4, i] = (cx, cy, w, h)
        out[0, 4 + c, i] = s
    return out


def test_decode_maps_back_through_letterbox() -> None:
    lb = Letterbox(scale=0.5, pad_x=0.0, pad_y=80.0)
    dets = decode_yolov8(_raw([(100, 180, 40, 20, 2, 0.9)]), lb, (1280, 960), NAMES, 0.25, 0.45)
    assert len(dets) == 1
    d = dets[0]
    assert d.label == "car" and d.confidence == pytest.approx(0.9)
    assert d.box.as_tuple() == pytest.approx((160.0, 180.0, 240.0, 220.0))


def test_decode_threshold_nms_and_keep() -> None:
    lb = Letterbox(1.0, 0.0, 0.0)
    raw = _raw([
        (100, 100, 50, 50, 2, 0.9),
        (102, 101, 50, 50, 2, 0.8),  # duplicate of the first: suppressed
        (102, 101, 50, 50, 0, 0.7),  # same place, other class: kept (class-aware NMS)
        (300, 300, 20, 20, 3, 0.1),  # below threshold
        (400, 400, 20, 20, 1, 0.9),  # bicycle: filtered by keep
    ])
    dets = decode_yolov8(raw, lb, (640, 640), NAMES, 0.25, 0.45, keep=frozenset({"car", "person", "motorcycle"}))
    assert sorted(d.label for d in dets) == ["car", "person"]
    assert max(d.confidence for d in dets if d.label == "car") == pytest.approx(0.9)


def test_decode_empty() -> None:
    assert decode_yolov8(_raw([(1, 1, 1, 1, 0, 0.01)]), Letterbox(1, 0, 0), (64, 64), NAMES, 0.25, 0.45) == []


def test_letterbox_keeps_aspect() -> None:
    img = np.zeros((360, 640, 3), np.uint8)
    out, lb = letterbox(img, (640, 640))
    assert out.shape == (640, 640, 3)
    assert lb.scale == pytest.approx(1.0) and lb.pad_y == 140


def test_parse_names() -> None:
    assert parse_names({"names": "{0: 'person', 1: 'car'}"}) == ["person", "car"]
    assert parse_names({}) == []


def _frame(i: int, fps: float = 10.0) -> Frame:
    return Frame("t", i, i / fps, np.zeros((480, 640, 3), np.uint8))


def test_tracker_keeps_ids_and_separates_riders_from_bikes() -> None:
    trk = ByteTrackTracker(frame_rate=10.0)
    seen: dict[str, set[int]] = {"motorcycle": set(), "person": set()}
    for i in range(15):
        x = 100 + 5 * i
        dets = [
            Detection(Box(x, 200, x + 60, 300), "motorcycle", 0.9),
            Detection(Box(x + 5, 150, x + 55, 280), "person", 0.9),  # the rider overlaps the bike
        ]
        objs = trk.update(dets, _frame(i))
        for o in objs:
            seen[o.label].add(o.track_id)
    assert len(seen["motorcycle"]) == 1 and len(seen["person"]) == 1
    assert seen["motorcycle"] != seen["person"]


def test_tracker_label_vote_and_input_untouched() -> None:
    trk = ByteTrackTracker(frame_rate=10.0)
    labels = ["car", "car", "truck", "car", "car", "car"]
    dets_all = [[Detection(Box(10 + i, 10, 110 + i, 80), lab, 0.9)] for i, lab in enumerate(labels)]
    last = ()
    for i, dets in enumerate(dets_all):
        before = list(dets)
        last = trk.update(dets, _frame(i))
        assert dets == before
    assert [o.label for o in last] == ["car"]


def test_tracker_forgets_stale_tracks() -> None:
    trk = ByteTrackTracker(frame_rate=10.0)
    for i in range(5):
        trk.update([Detection(Box(10, 10, 60, 60), "car", 0.9)], _frame(i))
    assert trk.live_track_count == 1
    for i in range(5, 5 + 120):
        trk.update([], _frame(i))
    assert trk.live_track_count == 0


@pytest.mark.parametrize(("rate", "want"), [(30.0, 2), (12.5, 2), (8.0, 2), (6.25, 1), (6.0, 1), (2.0, 1)])
def test_confirmation_needs_fewer_hits_when_updates_are_sparse(rate: float, want: int) -> None:
    assert ByteTrackTracker(frame_rate=rate).consecutive_frames == want


def test_a_weak_vehicle_seen_once_on_a_stride_is_tracked() -> None:
    """On a detection stride (6 updates/s) a vehicle detected in one update, then missed, then
    seen again is one confirmed track (at every frame two hits in a row would be needed)."""
    sparse, dense = ByteTrackTracker(frame_rate=6.0), ByteTrackTracker(frame_rate=30.0)
    box = lambda i: Box(100, 10 + 8 * i, 200, 110 + 8 * i)  # noqa: E731
    hits = {0: 0.6, 2: 0.55}
    ids_sparse, ids_dense = set(), set()
    for i in range(4):
        dets = [Detection(box(i), "car", hits[i])] if i in hits else []
        ids_sparse |= {o.track_id for o in sparse.update(dets, _frame(i, 6.0))}
        ids_dense |= {o.track_id for o in dense.update(dets, _frame(i, 30.0))}
    assert len(ids_sparse) == 1
    assert ids_dense == set()
