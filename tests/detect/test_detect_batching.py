"""Detection batched across streams (etle.detect.batching): frames of several threads run as one
batch and each stream gets its own detections back; a batch-1 YOLOv8 export made to take any
batch gives what single frames give; ``etle run --streams 2`` gives the tickets of a run one
source at a time."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.detect.batching import BatchingDetector, dynamic_batch
from etle.errors import ModelError
from etle.types import Box, Detection

from conftest import REPO, require_model

SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
CAM = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"


def _image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, dtype=np.uint8)


def _answer(image: np.ndarray) -> list[Detection]:
    v = float(image[0, 0, 0])
    return [Detection(Box(v, v, v + 1, v + 1), "car", 0.5)]


class FakeBatch:
    """Answers each image by its pixel value and records the batch sizes it was given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def detect_many(self, images):  # type: ignore[no-untyped-def]
        self.sizes.append(len(images))
        return [_answer(im) for im in images]


def _streams(shared: BatchingDetector, n: int, frames: int) -> dict[int, list[list[Detection]]]:
    got: dict[int, list[list[Detection]]] = {}
    errors: list[BaseException] = []
    dets = [shared.stream() for _ in range(n)]  # all open before any frame, as run_streams does

    def work(k: int) -> None:
        try:
            with dets[k] as det:
                got[k] = [det.detect(_image(10 * k + i)) for i in range(frames)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a stream never got its detections"
    if errors:
        raise errors[0]
    return got


def test_each_stream_gets_its_own_detections_and_frames_run_in_batches() -> None:
    inner = FakeBatch()
    with BatchingDetector(inner, max_batch=8, max_wait_s=1.0) as shared:
        got = _streams(shared, 3, 6)
    for k in range(3):
        assert [d[0].box.x1 for d in got[k]] == [10 * k + i for i in range(6)]
    assert sum(inner.sizes) == 18 == shared.stats.frames
    # every stream waits for its answer before its next frame: batches hold at most one frame each
    assert max(inner.sizes) == 3 and shared.stats.mean_batch > 1.5


def test_max_batch_caps_a_batch() -> None:
    inner = FakeBatch()
    with BatchingDetector(inner, max_batch=2, max_wait_s=1.0) as shared:
        _streams(shared, 4, 3)
    assert max(inner.sizes) == 2 and sum(inner.sizes) == 12


def test_a_closed_stream_is_not_waited_for() -> None:
    inner = FakeBatch()
    with BatchingDetector(inner, max_batch=8, max_wait_s=30.0) as shared:
        idle = shared.stream()
        idle.close()
        # one open stream: its frame runs at once instead of waiting 30 s for the closed one
        got = _streams(shared, 1, 2)
    assert [d[0].box.x1 for d in got[0]] == [0, 1] and inner.sizes == [1, 1]


def test_a_plain_detector_runs_frame_by_frame() -> None:
    class Plain:
        def detect(self, image):  # type: ignore[no-untyped-def]
            return _answer(image)

    with BatchingDetector(Plain(), max_batch=4, max_wait_s=0.05) as shared:
        got = _streams(shared, 2, 3)
    assert [d[0].box.x1 for d in got[1]] == [10, 11, 12]


def test_an_error_of_the_detector_reaches_every_stream_of_the_batch() -> None:
    class Broken:
        def detect_many(self, images):  # type: ignore[no-untyped-def]
            raise ModelError("session failed")

    with BatchingDetector(Broken(), max_batch=4, max_wait_s=0.05) as shared:
        with pytest.raises(ModelError, match="session failed"):
            _streams(shared, 2, 1)


def test_a_wrong_number_of_results_is_an_error() -> None:
    class Short:
        def detect_many(self, images):  # type: ignore[no-untyped-def]
            return []

    with BatchingDetector(Short(), max_wait_s=0.01) as shared:
        with shared.stream() as det, pytest.raises(ModelError, match="0 results for 1"):
            det.detect(_image(1))


def test_a_closed_detector_refuses_new_streams_and_frames() -> None:
    shared = BatchingDetector(FakeBatch())
    det = shared.stream()
    shared.close()
    with pytest.raises(ModelError, match="closed"):
        shared.stream()
    with pytest.raises(ModelError, match="closed"):
        det.detect(_image(1))
    det.close()
    with pytest.raises(ModelError, match="closed"):
        det.detect(_image(1))


# ---------------------------------------------------------------- the graph made batch-dynamic


def _reshape_model(shape_from_graph: bool = False) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16])
    nodes = [helper.make_node("Relu", ["x"], ["r"])]
    inits = []
    if shape_from_graph:
        nodes.append(helper.make_node("Shape", ["x"], ["s4"]))
        nodes.append(helper.make_node("Slice", ["s4", "starts", "ends"], ["s2"]))
        nodes.append(helper.make_node("Concat", ["s2", "minus1"], ["shape"], axis=0))
        inits += [numpy_helper.from_array(np.array([0], np.int64), "starts"),
                  numpy_helper.from_array(np.array([2], np.int64), "ends"),
                  numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    else:
        inits.append(numpy_helper.from_array(np.array([1, 3, 16], np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["r", "shape"], ["y"]))
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def test_dynamic_batch_rewrites_the_batch_of_the_input_and_of_the_reshapes() -> None:
    import onnx
    import onnxruntime as ort

    model = onnx.load_from_string(_reshape_model())
    batched = dynamic_batch(model)
    assert batched is not None
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # the input is not changed
    x = np.random.default_rng(0).normal(size=(3, 3, 4, 4)).astype(np.float32)
    sess = ort.InferenceSession(batched.SerializeToString(), providers=["CPUExecutionProvider"])
    single = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (many,) = sess.run(None, {"x": x})
    assert many.shape == (3, 3, 16)
    for k in range(3):
        np.testing.assert_array_equal(many[k], single.run(None, {"x": x[k : k + 1]})[0][0])


def test_dynamic_batch_leaves_a_reshape_computed_by_the_graph_alone() -> None:
    import onnx

    assert dynamic_batch(onnx.load_from_string(_reshape_model(shape_from_graph=True))) is None


# ---------------------------------------------------------------- the real detector


def _frames(indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE))
    frames = []
    for i in range(max(indices) + 1):
        ok, frame = cap.read()
        assert ok, "the sample clip ended early"
        if i in indices:
            frames.append(frame)
    cap.release()
    return frames


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vehicle-detector", "vehicle-detector-int8"])
def test_a_batch_gives_the_detections_of_single_frames(name: str) -> None:
    from etle.detect.detector import load_detector

    require_model(name)
    det = load_detector(name, conf_threshold=0.05)  # low: many boxes to compare, weak ones too
    frames = _frames([0, 100, 200, 225])  # cars pass the lot at frames 100 and 200-225
    frames.append(cv2.resize(frames[0], (640, 640)))  # another input size: its own group
    many = det.detect_many(frames)  # type: ignore[attr-defined]
    assert any(s is not None for s in det._batch_sessions.values()), "no batch ran"  # type: ignore[attr-defined]
    assert sum(len(d) for d in many) >= 4
    for image, got in zip(frames, many):
        want = det.detect(image)
        assert [d.label for d in got] == [d.label for d in want]
        for a, b in zip(got, want):
            assert abs(a.confidence - b.confidence) < 2e-3
            assert max(abs(a.box.x1 - b.box.x1), abs(a.box.y1 - b.box.y1), abs(a.box.x2 - b.box.x2), abs(a.box.y2 - b.box.y2)) < 0.5


@pytest.mark.slow
def test_raw_rows_of_a_batch_are_those_of_single_frames() -> None:
    """OnnxYolo.raw_many (undecoded rows, for callers that decode themselves): one batch per
    input size, each image's rows those of a call with that image alone, in the input order."""
    from etle.detect.onnx_yolo import OnnxYolo

    path = require_model("vehicle-detector")
    det = OnnxYolo(path)
    frames = _frames([0, 200])
    frames.insert(1, cv2.resize(frames[0], (640, 640)))  # another input size between them
    many = det.raw_many(frames)
    assert len(many) == 3 and any(s is not None for s in det._batch_sessions.values())
    assert many[0].shape != many[1].shape  # the 16:9 frames ran a rectangular input
    for image, rows in zip(frames, many):
        (one,) = det.raw_many([image])
        assert rows.dtype == np.float32 and rows.shape == one.shape
        np.testing.assert_allclose(rows, one, rtol=1e-3, atol=1e-2)
    assert not np.allclose(many[0], many[2])  # different frames, different rows
    assert det.raw_many([]) == []


@pytest.mark.slow
def test_streams_give_the_tickets_of_one_source_at_a_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two recordings (copies of the sample clip) run side by side through one batching
    detector: each gets the tickets and key frames it gets when they run one by one.  The
    detector runs 4 times a second plus while the car crosses the line (what keeps the sample's
    red-light ticket on a stride, tests/detect/test_motion_gate.py); plates are not read (they
    do not go through the shared detector), which keeps the test short."""
    from etle.config.run import RunOptions
    from etle.runner import run_sources
    from etle.store import open_store

    require_model("vehicle-detector")
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(SAMPLE, clips / name)

    def tickets(streams: int) -> list[tuple[str, str, str, str]]:
        db = f"sqlite:///{tmp_path}/s{streams}.db"
        options = RunOptions(out_dir=tmp_path / f"out{streams}", db_url=db, detect_fps=4.0, read_plates=False)
        summaries = run_sources(str(clips), CAM, options, progress=False, streams=streams)
        assert [Path(s.source).name for s in summaries] == ["a.mp4", "b.mp4"]
        store = open_store(db)
        try:
            out = []
            for t in store.list(limit=100):
                original = [f.sha256 for f in t.evidence_files if f.role == "original"]
                out.append((Path(t.source).name, t.occurred_at.isoformat(), t.rule, original[0] if original else ""))
            return sorted(out)
        finally:
            store.close()

    alone = tickets(1)
    assert {t[0] for t in alone} == {"a.mp4", "b.mp4"}  # tickets of both recordings
    with caplog.at_level(logging.INFO, logger="etle.runner"):
        assert tickets(2) == alone
    batched = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batched detection:")]
    assert len(batched) == 1
    mean = float(re.search(r"mean ([0-9.]+)", batched[0]).group(1))  # type: ignore[union-attr]
    assert mean > 1.0, batched[0]  # frames of the two streams did run together
