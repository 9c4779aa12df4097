"""The plate stage with fake detectors and readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.plate.consensus import PlateConsensus
from etle.plate.stage import (
    PlateStage,
    SelectionPolicy,
    TrackReadState,
    best_plate,
    select_tracks,
)
from etle.types import Box, Detection, Frame, PlateRead, TrackedObject


@dataclass
class FakeDetector:
    """Finds one plate at a fixed place in any vehicle crop; records the crops it saw."""

    box: Box = field(default_factory=lambda: Box(10, 40, 50, 55))
    seen: list[tuple[int, int]] = field(default_factory=list)

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.seen.append(image.shape[:2])
        return [Detection(self.box, "plate", 0.9), Detection(Box(0, 0, 5, 5), "plate", 0.3)]


@dataclass
class FakeReader:
    texts: list[str]
    name: str = "fake"
    crops: list[np.ndarray] = field(default_factory=list)

    def read(self, crop: np.ndarray) -> PlateRead | None:
        self.crops.append(crop)
        text = self.texts[(len(self.crops) - 1) % len(self.texts)]
        return PlateRead(text=text, confidence=0.9, raw=text) if text else None


def frame(index: int, h: int = 240, w: int = 320) -> Frame:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 1] = np.arange(w, dtype=np.uint8)[None, :]  # a pattern to check crops against
    return Frame("test", index, index / 10.0, img)


CAR_BOX = Box(100, 50, 200, 150)


def car(tid: int, box: Box = CAR_BOX, label: str = "car") -> TrackedObject:
    return TrackedObject(tid, box, label, 0.9)


# -- selection (pure) -------------------------------------------------------------------------


def test_select_filters_labels_size_and_duplicates() -> None:
    vs = [car(1), car(2, label="person"), car(3, Box(0, 0, 20, 20)), car(1), car(4, label="motorcycle")]
    got = select_tracks(vs, 0, {}, SelectionPolicy(min_vehicle_px=48))
    assert [v.track_id for v in got] == [1, 4]


def test_select_respects_every_n_budget_and_settled() -> None:
    pol = SelectionPolicy(every_n=3, max_reads_per_track=2, max_per_frame=10)
    state = {
        1: TrackReadState(attempts=1, reads=1, last_frame=9),  # read 1 frame ago
        2: TrackReadState(attempts=1, reads=1, last_frame=7),  # read 3 frames ago: due
        3: TrackReadState(attempts=2, reads=1, last_frame=0),  # budget spent
        4: TrackReadState(attempts=1, reads=1, last_frame=0, settled=True),
    }
    got = select_tracks([car(i) for i in (1, 2, 3, 4, 5)], 10, state, pol)
    assert [v.track_id for v in got] == [5, 2]  # never-read first


def test_select_rereads_early_only_when_the_vehicle_came_closer() -> None:
    pol = SelectionPolicy(every_n=3, max_per_frame=10, regrow=1.2, refresh_n=15)
    state = {i: TrackReadState(attempts=1, reads=1, last_frame=10, last_area=100.0 * 100.0) for i in (1, 2, 3)}
    vs = [
        car(1, Box(0, 0, 100, 100)),  # same view as at its last read, 5 frames ago: skip
        car(2, Box(0, 0, 120, 120)),  # 44 % larger: a closer view, read now
        car(3, Box(0, 0, 105, 105)),  # barely larger: wait
    ]
    assert [v.track_id for v in select_tracks(vs, 15, state, pol)] == [2]
    # after refresh_n frames any track is due again, grown or not
    assert [v.track_id for v in select_tracks(vs, 25, state, pol)] == [2, 3, 1]


def test_select_puts_tracks_with_a_violation_first_with_more_budget() -> None:
    pol = SelectionPolicy(every_n=1, max_reads_per_track=2, max_per_frame=1, regrow=1.2, refresh_n=15)
    state = {
        1: TrackReadState(attempts=2, reads=0, last_frame=8, last_area=1e4),  # budget spent, same view
        2: TrackReadState(),
    }
    vs = [car(1, Box(0, 0, 100, 100)), car(2, Box(0, 0, 200, 200))]
    assert [v.track_id for v in select_tracks(vs, 10, state, pol)] == [2]
    assert [v.track_id for v in select_tracks(vs, 10, state, pol, priority={1})] == [1]
    spent = {1: TrackReadState(attempts=4, reads=0, last_frame=8)}
    assert [v.track_id for v in select_tracks(vs[:1], 10, spent, pol, priority={1})] == []  # 2x budget, no more
    settled = {1: TrackReadState(attempts=1, reads=1, last_frame=8, settled=True)}
    assert select_tracks(vs[:1], 10, settled, pol, priority={1}) == []


def test_select_caps_per_frame_and_prefers_large() -> None:
    vs = [car(1, Box(0, 0, 60, 60)), car(2, Box(0, 0, 200, 200)), car(3, Box(0, 0, 100, 100))]
    got = select_tracks(vs, 0, {}, SelectionPolicy(max_per_frame=2))
    assert [v.track_id for v in got] == [2, 3]
    assert select_tracks(vs, 0, {}, SelectionPolicy(max_per_frame=0)) == []


def test_best_plate() -> None:
    lo = Detection(Box(0, 80, 10, 90), "plate", 0.8)
    hi = Detection(Box(0, 10, 10, 20), "plate", 0.8)
    assert best_plate([hi, lo], (100, 100)) is lo
    assert best_plate([], (100, 100)) is None


# -- the stage ------------------------------------------------------------------------------


def test_stage_maps_plate_boxes_to_frame_and_leaves_the_frame_alone() -> None:
    det, reader = FakeDetector(), FakeReader(["R5154WP"])
    stage = PlateStage(det, reader, plate_pad=0.0, every_n=1)
    f = frame(0)
    before = f.image.copy()
    reads = stage.process(f, [car(1)])
    assert len(reads) == 1
    r = reads[0]
    assert r.frame_index == 0 and r.text == "R5154WP"
    assert r.box == Box(110, 90, 150, 105)  # (10, 40, 50, 55) offset by the vehicle's (100, 50)
    assert det.seen == [(100, 100)]
    assert r.crop is not None and r.crop.shape == (15, 40, 3)
    assert np.array_equal(r.crop, f.image[90:105, 110:150])
    assert r.crop.flags.writeable and not np.shares_memory(r.crop, f.image)  # owns its pixels
    assert np.array_equal(f.image, before)
    assert stage.result(1).text == "R5154WP"


def test_stage_settles_tracks_and_stops_reading_them() -> None:
    reader = FakeReader(["B1234AB"])
    stage = PlateStage(FakeDetector(), reader, every_n=1, every_s=0, settle_reads=3, settle_confidence=0.5)
    for i in range(10):
        stage.process(frame(i), [car(1)])
    assert len(reader.crops) == 3
    assert stage.state(1).settled


def test_a_track_whose_reads_split_on_a_letter_is_read_until_a_majority_holds() -> None:
    # the seventh read is the third to spell B1234AB, but at the sixth character only 3 of the 7
    # reads say A (X twice, Y, Z): a ticket would show '?', so the stage keeps reading
    split = ["B1234AB", "B1234XB", "B1234YB", "B1234AB", "B1234ZB", "B1234XB", "B1234AB"]
    reader = FakeReader(split + ["B1234AB"] * 5)
    stage = PlateStage(FakeDetector(), reader, every_n=1, every_s=0, settle_reads=3, settle_confidence=0.3)
    for i in range(8):  # 8 reads: A in 4 of 8, still no majority
        stage.process(frame(i), [car(1)])
    assert stage.result(1).text == "B1234AB" and not stage.state(1).settled
    stage.process(frame(8), [car(1)])  # the ninth: 5 of 9
    assert stage.state(1).settled
    for i in range(9, 14):
        stage.process(frame(i), [car(1)])
    assert len(reader.crops) == 9  # settled: read no more
    # without the majority condition it settles on the third agreeing read
    reader = FakeReader(split)
    stage = PlateStage(FakeDetector(), reader, every_n=1, every_s=0, settle_reads=3, settle_confidence=0.3, settle_majority=0)
    for i in range(12):
        stage.process(frame(i), [car(1)])
    assert len(reader.crops) == 7


def test_stage_caps_reads_per_track_and_counts_failures() -> None:
    reader = FakeReader(["", "B1AB", ""])  # mostly unreadable
    stage = PlateStage(FakeDetector(), reader, every_n=1, every_s=0, max_reads_per_track=4, settle_reads=99)
    for i in range(20):
        stage.process(frame(i), [car(1)])
    st = stage.state(1)
    assert st.attempts == 4 and len(reader.crops) == 4 and st.reads == 1


def test_stage_every_n_and_forget() -> None:
    reader = FakeReader(["B1AB", "B2AB"])
    stage = PlateStage(FakeDetector(), reader, every_n=5, settle_reads=99)
    for i in range(10):
        stage.process(frame(i), [car(1)])
    assert len(reader.crops) == 2
    stage.forget(1)
    assert stage.result(1).empty and 1 not in stage.tracks()


def test_stage_skips_when_no_plate_or_too_small() -> None:
    class NoPlate:
        def detect(self, image: np.ndarray) -> list[Detection]:
            return []

    reader = FakeReader(["B1AB"])
    stage = PlateStage(NoPlate(), reader, every_n=1)
    assert stage.process(frame(0), [car(1)]) == ()
    assert reader.crops == [] and stage.state(1).attempts == 1
    tiny = PlateStage(FakeDetector(box=Box(0, 0, 4, 4)), reader, every_n=1, min_plate_px=10, plate_pad=0.0)
    assert tiny.process(frame(0), [car(1)]) == ()


def test_stage_clips_vehicles_at_the_frame_edge() -> None:
    reader = FakeReader(["B1AB"])
    stage = PlateStage(FakeDetector(), reader, every_n=1)
    reads = stage.process(frame(0), [car(1, Box(250, 150, 400, 300))])
    assert len(reads) == 1
    b = reads[0].box
    assert b is not None and 0 <= b.x1 <= b.x2 <= 320 and 0 <= b.y1 <= b.y2 <= 240


def test_stage_state_is_bounded() -> None:
    stage = PlateStage(FakeDetector(), FakeReader(["B1AB"]), every_n=1, max_per_frame=50, max_tracks=5)
    stage.process(frame(0), [car(i) for i in range(20)])
    assert len(stage.tracks()) == 5
    assert len(stage.consensus) <= 5


def test_stage_uses_a_given_consensus() -> None:
    cons = PlateConsensus("generic")
    stage = PlateStage(FakeDetector(), FakeReader(["AB054JI"]), cons, every_n=1)
    stage.process(frame(0), [car(3)])
    assert cons.result(3).text == "AB054JI"


@pytest.mark.slow
@pytest.mark.shared_data
def test_stage_with_real_models(shared_data: Path) -> None:
    from conftest import onnx_plate_detector as _onnx_ready

    from etle.plate.detector import load_plate_detector
    from etle.plate.readers import load_reader

    _onnx_ready()
    img = cv2.imread(str(shared_data / "misc" / "fastalpr_test_image.png"))
    stage = PlateStage(load_plate_detector(), load_reader(country="generic"), PlateConsensus("generic"), every_n=1, every_s=0)
    vehicle = car(5, Box(100, 60, img.shape[1], img.shape[0]))
    for i in range(3):
        stage.process(Frame("photo", i, i / 10.0, img.copy()), [vehicle])
    res = stage.result(5)
    assert res.text == "5AU5341"
    assert res.best is not None and res.best.box is not None and res.best.crop is not None
    assert res.best.box.iou(Box(305, 179, 398, 214)) > 0.5
    assert stage.state(5).settled


def test_select_spreads_reads_over_video_time() -> None:
    pol = SelectionPolicy(every_n=1, every_s=0.5, max_per_frame=10)
    state = {
        1: TrackReadState(attempts=1, reads=1, last_frame=9, last_pts=9.7),  # 0.3 s ago
        2: TrackReadState(attempts=1, reads=1, last_frame=9, last_pts=9.4),  # 0.6 s ago: due
    }
    vs = [car(i) for i in (1, 2)]
    assert [v.track_id for v in select_tracks(vs, 10, state, pol, now=10.0)] == [2]
    # a vehicle with a ticket waiting for its plate is read twice as often
    assert [v.track_id for v in select_tracks(vs, 10, state, pol, priority={1}, now=10.0)] == [1, 2]
    # without timestamps only the frame spacing applies
    assert {v.track_id for v in select_tracks(vs, 10, state, pol)} == {1, 2}


def test_stage_uses_frame_timestamps_not_frame_counts() -> None:
    stage = PlateStage(FakeDetector(), FakeReader(["B1234AB"]), every_n=1, every_s=1.0, settle_reads=99)
    for i in range(20):  # 10 fps for two seconds: a read at 0.0 s and one at 1.0 s
        stage.process(frame(i), [car(1)])
    assert stage.state(1).attempts == 2


def test_plates_inside_a_burned_in_overlay_are_not_read() -> None:
    # the detector's plate, mapped into the frame: (110, 90)-(150, 105), centre (130, 97.5)
    over_plate = ((120.0, 85.0), (160.0, 85.0), (160.0, 110.0), (120.0, 110.0))
    elsewhere = ((0.0, 200.0), (320.0, 200.0), (320.0, 240.0), (0.0, 240.0))
    reader = FakeReader(["B1234CD"])
    st = PlateStage(FakeDetector(), reader, every_n=1, every_s=0, overlays=[over_plate])
    st.process(frame(0), [car(1)])
    # the 0.9 plate lies in the overlay: only the other (0, 0)-(5, 5) box was left, too small to read
    assert reader.crops == [] and st.result(1).text == ""
    reader2 = FakeReader(["B1234CD"])
    st2 = PlateStage(FakeDetector(), reader2, every_n=1, every_s=0, overlays=[elsewhere])
    st2.process(frame(0), [car(1)])
    assert len(reader2.crops) == 1 and st2.result(1).text == "B1234CD"
