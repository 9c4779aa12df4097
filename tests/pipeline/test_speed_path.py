"""The edge speed path: decode prefetch, detection stride with predicted tracks, int8 detector."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require_model
from etle.config.run import RunOptions
from etle.pipeline import detect_stride
from etle.track.bytetrack import ByteTrackTracker, TrackerSettings
from etle.types import Box, Detection, Frame

# ---------------------------------------------------------------- prefetch


def test_prefetch_keeps_order_and_ends() -> None:
    from etle.ingest.prefetch import prefetch

    assert list(prefetch(iter(range(100)), depth=4)) == list(range(100))
    assert list(prefetch(iter(range(5)), depth=0)) == list(range(5))  # no thread


def test_prefetch_reraises_the_producers_error_after_its_items() -> None:
    from etle.ingest.prefetch import prefetch

    def gen():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise ValueError("decoder broke")

    got = []
    with pytest.raises(ValueError, match="decoder broke"):
        for x in prefetch(gen(), depth=2):
            got.append(x)
    assert got == [1, 2]


def test_prefetch_stops_and_closes_the_producer_when_the_consumer_stops() -> None:
    from etle.ingest.prefetch import prefetch

    produced: list[int] = []
    closed = threading.Event()

    def gen():  # type: ignore[no-untyped-def]
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = prefetch(gen(), depth=3)
    for x in it:
        if x == 5:
            break
    it.close()  # type: ignore[attr-defined]
    assert closed.wait(5.0), "the producer's generator was not closed"
    time.sleep(0.05)
    assert len(produced) <= 5 + 1 + 3 + 2  # bounded read-ahead: never ran through the source
    assert not any(t.name == "etle-decode" and t.is_alive() for t in threading.enumerate())


def test_prefetch_bounds_read_ahead() -> None:
    from etle.ingest.prefetch import prefetch

    produced: list[int] = []

    def gen():  # type: ignore[no-untyped-def]
        for i in range(100):
            produced.append(i)
            yield i

    it = prefetch(gen(), depth=4)
    assert next(it) == 0
    time.sleep(0.2)  # give the producer time to run ahead as far as it may
    assert len(produced) <= 1 + 4 + 1
    assert list(it) == list(range(1, 100))


# ---------------------------------------------------------------- stride


@pytest.mark.parametrize(
    ("every", "dfps", "fps", "want"),
    [(0, 10.0, 30.0, 3), (0, 10.0, 8.0, 1), (0, 0.0, 25.0, 1), (0, 6.0, 25.0, 4), (2, 10.0, 30.0, 2), (0, 0.0, 30.0, 1), (0, 10.0, 0.0, 1)],
)
def test_detect_stride(every: int, dfps: float, fps: float, want: int) -> None:
    assert detect_stride(RunOptions(detect_every=every, detect_fps=dfps), fps) == want


def _frame(i: int, fps: float = 30.0) -> Frame:
    return Frame("t", i, i / fps, np.zeros((480, 640, 3), np.uint8))


def test_tracker_predicts_motion_between_detections() -> None:
    trk = ByteTrackTracker(frame_rate=10.0)  # detections every 3rd frame of a 30 fps source
    speed = 3.0  # pixels per frame to the right = 90 px/s
    for i in range(0, 30, 3):
        x = 100 + speed * i
        objs = trk.update([Detection(Box(x, 200, x + 60, 260), "car", 0.9)], _frame(i))
    assert len(objs) == 1 and not objs[0].predicted
    last = objs[0]
    for k in (1, 2):
        (pred,) = trk.predict(_frame(27 + k))
        assert pred.predicted and pred.track_id == last.track_id and pred.label == "car"
        assert pred.box.x1 == pytest.approx(last.box.x1 + speed * k, abs=1.5)
        assert pred.box.y1 == pytest.approx(last.box.y1, abs=1.0)


def test_tracker_prediction_horizon_is_capped() -> None:
    trk = ByteTrackTracker(frame_rate=10.0, settings=TrackerSettings(max_predict_s=0.2))
    for i in range(0, 30, 3):
        x = 100 + 3.0 * i
        objs = trk.update([Detection(Box(x, 200, x + 60, 260), "car", 0.9)], _frame(i))
    (far,) = trk.predict(_frame(27 + 60))  # 2 s later: moved at most 0.2 s worth (18 px)
    assert far.box.x1 == pytest.approx(objs[0].box.x1 + 90 * 0.2, abs=2.0)


def test_tracker_predict_before_any_update_is_empty() -> None:
    assert ByteTrackTracker(frame_rate=10.0).predict(_frame(0)) == ()


# ---------------------------------------------------------------- int8 detector


@pytest.mark.slow
def test_int8_detector_keeps_the_float_models_boxes(shared_data: Path) -> None:
    """The quantised detector (calibrated on the bundled parking-lot clip) finds what the float
    one finds on another camera: the Cilacap motorcycles and riders."""
    require_model("vehicle-detector-int8")
    from etle.detect.detector import load_detector
    from etle.ingest.sources import open_source

    clip = shared_data / "videos" / "id_etle_cilacap_alun_motorcycles.mp4"
    fp32 = load_detector("vehicle-detector")
    int8 = load_detector("vehicle-detector-int8")
    total = kept = 0
    for frame in open_source(str(clip)).frames():
        if frame.index % 45:
            continue
        ref = [d for d in fp32.detect(frame.image) if d.confidence >= 0.4]
        got = int8.detect(frame.image)
        total += len(ref)
        kept += sum(1 for r in ref if any(g.label == r.label and g.box.iou(r.box) >= 0.5 for g in got))
    assert total >= 50
    assert kept / total >= 0.9, f"int8 kept {kept}/{total} boxes"


# ---------------------------------------------------------------- the pipeline on a stride


def test_pipeline_on_a_stride_detects_every_nth_frame_and_still_tickets(tmp_path: Path) -> None:

    from fixtures.scenes import CarDownTheRoad, build, make_source

    class Counting(CarDownTheRoad):
        calls = 0

        def detect(self, image):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().detect(image)

    pipe, store = build(tmp_path, "red", Counting(speed=12.0))  # 12 px per detector call = 4 px/frame
    pipe.config = pipe.config.model_copy(update={"detect_every": 3})
    seen: list[tuple[int, bool]] = []
    inner_factory = pipe.plate_stage_factory

    class Watch:
        def __init__(self) -> None:
            self.inner = inner_factory()  # type: ignore[misc]

        def process(self, frame, vehicles, priority=()):  # type: ignore[no-untyped-def]
            seen.extend((frame.index, v.predicted) for v in vehicles)
            return self.inner.process(frame, vehicles)

        def result(self, tid):  # type: ignore[no-untyped-def]
            return self.inner.result(tid)

    pipe.plate_stage_factory = Watch
    summary = pipe.run_source(make_source(60))
    assert summary.detect_every == 3
    assert Counting.calls == 20
    assert summary.tickets == 1 and summary.violations_by_rule == {"red_light": 1}
    assert seen and all(i % 3 == 0 and not predicted for i, predicted in seen)  # plates: observed boxes only


# ---------------------------------------------------------------- rectangular inputs


@pytest.mark.parametrize(
    ("w", "h", "want"),
    [(640, 360, (640, 384)), (1920, 1080, (640, 384)), (400, 224, (640, 384)), (640, 480, (640, 480)),
     (768, 432, (640, 384)), (360, 640, (384, 640)), (640, 640, (640, 640)), (100, 10, (640, 64))],
)
def test_rect_size(w: int, h: int, want: tuple[int, int]) -> None:
    from etle.detect.onnx_yolo import rect_size

    assert rect_size(w, h, (640, 640)) == want


def test_yolov8_anchor_layout() -> None:
    from etle.detect.onnx_yolo import yolov8_anchors

    pts, strides = yolov8_anchors(64, 32)
    # levels 8, 16, 32 on 64x32: 8x4 + 4x2 + 2x1 cells
    assert pts.shape == (1, 2, 32 + 8 + 2) and strides.shape == (1, 42)
    assert pts[0, :, 0].tolist() == [0.5, 0.5] and pts[0, :, 1].tolist() == [1.5, 0.5]  # x runs first
    assert pts[0, :, 8].tolist() == [0.5, 1.5]  # second row of the stride-8 grid
    assert strides[0, :32].tolist() == [8.0] * 32 and strides[0, 40:].tolist() == [32.0, 32.0]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vehicle-detector", "vehicle-detector-int8"])
def test_rectangular_input_finds_the_same_objects(shared_data: Path, model: str) -> None:
    """640x384 instead of 640x640 for 16:9 video: same boxes (the anchors we compute for 640x640
    are the export's own, and the reshaped graph agrees with the square one)."""
    import onnx
    from onnx import numpy_helper

    from etle.detect.detector import load_detector
    from etle.detect.onnx_yolo import yolov8_anchors
    from etle.ingest.sources import open_source

    path = require_model(model)
    consts = [numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer]
    pts, strides = yolov8_anchors(640, 640)
    assert any(c.shape == pts.shape and np.allclose(c, pts) for c in consts)
    assert any(c.shape == strides.shape and np.allclose(c, strides) for c in consts)

    det = load_detector(model)
    clip = shared_data / "videos" / "id_etle_cilacap_alun_motorcycles.mp4"
    total = kept = 0
    for frame in open_source(str(clip)).frames():
        if frame.index % 60:
            continue
        det.rect = False
        square = [d for d in det.detect(frame.image) if d.confidence >= 0.35]
        det.rect = True
        rect = det.detect(frame.image)
        total += len(square)
        kept += sum(1 for s in square if any(r.label == s.label and r.box.iou(s.box) >= 0.5 for r in rect))
    assert (640, 384) in det._sessions and det._sessions[(640, 384)] is not None
    assert total >= 50 and kept / total >= 0.95, f"{kept}/{total}"


@pytest.mark.slow
def test_plate_detector_runs_rectangular_vehicle_crops(shared_data: Path) -> None:
    """The plate detector's export keeps its head constants in Constant nodes (not initialisers):
    it is reshaped too, and finds the same plates in vehicle crops as the square 320x320 input."""
    from etle.detect.detector import load_detector
    from etle.ingest.sources import open_source
    from etle.plate.detector import load_plate_detector
    from etle.types import VEHICLE_LABELS

    require_model("plate-detector")
    vehicles = load_detector("vehicle-detector")
    plates = load_plate_detector("onnx")
    model = plates.model  # type: ignore[attr-defined]
    assert model.rect is False  # the default: crops of every shape run the square input
    model.max_sessions = 64  # here: every shape its own session
    total = kept = 0
    for name in ("id_etle_cilacap_alun_motorcycles.mp4", "highway_roadside_traffic1.mp4", "id_dishub_banjarmasin_stopline.mp4"):
        for frame in open_source(str(shared_data / "videos" / name), max_seconds=20).frames():
            if frame.index % 15:
                continue
            for v in vehicles.detect(frame.image):
                if v.label not in VEHICLE_LABELS or min(v.box.width, v.box.height) < 48:
                    continue
                x1, y1, x2, y2 = v.box.clip(frame.width, frame.height).as_int()
                crop = frame.image[y1:y2, x1:x2]
                model.rect = False
                square = [p for p in plates.detect(crop) if p.confidence >= 0.4]
                model.rect = True
                rect = plates.detect(crop)
                total += len(square)
                kept += sum(1 for s in square if any(r.box.iou(s.box) >= 0.5 for r in rect))
    assert any(s is not None for s in model._sessions.values()), "no rectangular session was built"
    assert total >= 15 and kept / total >= 0.85, f"{kept}/{total}"


def test_fast_profile_falls_back_to_the_float_detector_when_int8_was_not_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import etle.detect.detector as detector_mod
    from etle.errors import ModelError
    from etle.runner import build_pipeline

    asked: list[str] = []

    def fake_load(name: str, **kwargs: object) -> object:
        asked.append(name)
        if name == "vehicle-detector-int8":
            raise ModelError("model vehicle-detector-int8 is not prepared")
        return object()

    monkeypatch.setattr(detector_mod, "load_detector", fake_load)
    pipe, _ = build_pipeline(None, RunOptions(out_dir=tmp_path, db_url=f"sqlite:///{tmp_path}/t.db", read_plates=False,
                                              detector="vehicle-detector-int8"))
    assert asked == ["vehicle-detector-int8", "vehicle-detector"]
    assert pipe.config.detector == "vehicle-detector"
    assert "float vehicle-detector" in caplog.text
    asked.clear()
    with pytest.raises(ModelError):  # any other model that is missing is an error
        monkeypatch.setattr(detector_mod, "load_detector", lambda name, **k: (_ for _ in ()).throw(ModelError("gone")))
        build_pipeline(None, RunOptions(out_dir=tmp_path, db_url=f"sqlite:///{tmp_path}/t.db", read_plates=False, detector="mine.onnx"))


def test_reshaped_sessions_are_capped() -> None:
    """Inputs of many shapes never build more than ``max_sessions`` reshaped sessions (each one
    holds its own weights); the others run the square input and give the same kind of result."""
    from etle.plate.detector import load_plate_detector

    require_model("plate-detector")
    model = load_plate_detector("onnx").model  # type: ignore[attr-defined]
    model.rect, model.max_sessions = True, 1
    rng = np.random.default_rng(0)
    for w, h in ((100, 200), (200, 100), (150, 150), (90, 300)):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        assert isinstance(model.detect(img), list)
    assert len(model._sessions) == 1


def test_plates_fall_back_to_the_original_detector_when_the_tnkb_one_was_not_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import etle.detect.detector as detector_mod
    import etle.plate.detector as plate_mod
    import etle.plate.readers as readers_mod
    from etle.errors import ModelError
    from etle.runner import build_pipeline

    asked: list[str] = []

    def fake_plate(kind: str = "onnx", **kwargs: object) -> object:
        asked.append(kind)
        if kind == "tnkb":
            raise ModelError("model plate-detector-tnkb is missing (run: etle models prepare)")
        return object()

    monkeypatch.setattr(detector_mod, "load_detector", lambda name, **k: object())
    monkeypatch.setattr(plate_mod, "load_plate_detector", fake_plate)
    monkeypatch.setattr(readers_mod, "load_reader", lambda *a, **k: object())
    db = f"sqlite:///{tmp_path}/t.db"
    pipe, _ = build_pipeline(None, RunOptions(out_dir=tmp_path, db_url=db))  # Indonesian plates: tnkb by default
    assert asked == ["tnkb", "onnx"] and pipe.config.plate_detector == "onnx"
    assert "original plate detector" in caplog.text
    asked.clear()
    pipe, _ = build_pipeline(None, RunOptions(out_dir=tmp_path, db_url=db, country="generic"))
    assert asked == ["onnx"] and pipe.config.plate_detector == "onnx"
    asked.clear()
    with pytest.raises(ModelError):  # asked for by name: missing is an error
        build_pipeline(None, RunOptions(out_dir=tmp_path, db_url=db, plate_detector="tnkb"))
