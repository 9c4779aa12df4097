"""Plate detectors and the ONNX export of the .pt plate detector."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.cilacap import CILACAP_BIKES, cilacap_frames
from conftest import onnx_plate_detector as _onnx_ready, require_model

from etle.errors import MissingDependencyError, ModelError
from etle.models import registry
from etle.train import export
from etle.plate.detector import PlateDetector, load_plate_detector
from etle.types import Box

PLATE = Box(305, 179, 398, 214)  # the plate of misc/fastalpr_test_image.png, measured once


def test_unknown_kind() -> None:
    with pytest.raises(ModelError):
        load_plate_detector("yolo-nas")


def test_onnx_without_export_says_to_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETLE_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="etle models prepare"):
        load_plate_detector("onnx")


def test_export_without_ultralytics_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_model("plate-detector-pt")
    monkeypatch.setenv("ETLE_MODEL_DIR", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("ultralytics", "onnx") else real(name, *a))
    with pytest.raises(MissingDependencyError) as exc:
        export.export_plate_detector()
    assert exc.value.extra == "ultralytics"


def test_cascade_finds_nothing_on_a_blank_image() -> None:
    try:
        det = load_plate_detector("cascade")
    except ModelError as exc:
        pytest.skip(str(exc))
    assert isinstance(det, PlateDetector)
    assert det.detect(np.zeros((120, 200, 3), np.uint8)) == []
    assert det.detect(np.zeros((4, 4, 3), np.uint8)) == []


def _image(shared: Path) -> np.ndarray:
    img = cv2.imread(str(shared / "misc" / "fastalpr_test_image.png"))
    assert img is not None
    img.flags.writeable = False  # detectors must not draw on frames
    return img


@pytest.mark.slow
@pytest.mark.shared_data
def test_onnx_detector_finds_the_plate(shared_data: Path) -> None:
    _onnx_ready()
    det = load_plate_detector("onnx")
    found = det.detect(_image(shared_data))
    assert found and all(d.label == "plate" for d in found)
    best = max(found, key=lambda d: d.confidence)
    assert best.box.iou(PLATE) > 0.6 and best.confidence > 0.4


@pytest.mark.slow
@pytest.mark.shared_data
def test_onnx_detector_on_a_vehicle_crop_gives_crop_coordinates(shared_data: Path) -> None:
    _onnx_ready()
    img = _image(shared_data)
    crop = img[100:300, 200:500]
    found = load_plate_detector().detect(crop)
    assert found
    assert max(d.box.offset(200, 100).iou(PLATE) for d in found) > 0.6


@pytest.mark.slow
@pytest.mark.shared_data
def test_ultralytics_and_onnx_agree(shared_data: Path) -> None:
    pytest.importorskip("ultralytics")
    require_model("plate-detector-pt")
    img = _image(shared_data)
    pt = load_plate_detector("ultralytics").detect(img)
    assert pt and max(d.box.iou(PLATE) for d in pt) > 0.6
    try:
        onnx = load_plate_detector("onnx").detect(img)
    except ModelError:
        return
    assert max(a.box.iou(b.box) for a in pt for b in onnx) > 0.9


@pytest.mark.slow
@pytest.mark.shared_data
def test_cascade_on_a_real_car(shared_data: Path) -> None:
    try:
        det = load_plate_detector("cascade")
    except ModelError as exc:
        pytest.skip(str(exc))
    found = det.detect(_image(shared_data))
    assert found and max(d.box.iou(PLATE) for d in found) > 0.5


@pytest.mark.slow
def test_export_plate_detector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ultralytics")
    pytest.importorskip("onnx")
    require_model("plate-detector-pt")
    monkeypatch.setenv("ETLE_MODEL_DIR", str(tmp_path))
    path = export.export_plate_detector()
    assert path == registry.locate("plate-detector") and path.is_file()
    assert registry.resolve("plate-detector") == path
    meta = json.loads(registry.export_sidecar(path).read_text())
    assert meta["source"] == "plate-detector-pt" and meta["imgsz"] == export.plate_detector_imgsz() == 320
    mtime = path.stat().st_mtime_ns
    assert export.export_plate_detector() == path and path.stat().st_mtime_ns == mtime  # no redo
    import onnxruntime as ort

    shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    assert shape == [1, 3, 320, 320]
    site = registry.resolve("plate-detector-pt").parent
    assert not list(site.glob("*.onnx"))  # nothing written beside the source weights


def test_tnkb_without_export_says_to_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETLE_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="plate-detector-tnkb.*etle models prepare"):
        load_plate_detector("tnkb")


def _tnkb_ready() -> Path:
    try:
        return registry.resolve("plate-detector-tnkb")
    except ModelError:
        pass
    if registry.status("plate-detector-tnkb-pt").ok and all(importlib.util.find_spec(m) for m in ("ultralytics", "onnx")):
        return export.export_plate_detector(name="plate-detector-tnkb")
    return require_model("plate-detector-tnkb")


def _found(det: PlateDetector, frames: list[np.ndarray]) -> int:
    hits = 0
    for frame in frames:
        for bike, plate, _ in CILACAP_BIKES:
            x1, y1, x2, y2 = bike.as_int()
            dets = [d for d in det.detect(frame[y1:y2, x1:x2]) if d.confidence >= 0.25]
            hits += any(d.box.offset(x1, y1).iou(plate) >= 0.5 for d in dets)
    return hits


@pytest.mark.slow
@pytest.mark.shared_data
def test_tnkb_detector_finds_the_motorcycle_plates_the_original_misses(shared_data: Path) -> None:
    _tnkb_ready()
    _onnx_ready()
    frames = cilacap_frames(shared_data, range(120, 240, 10))
    tnkb, onnx = _found(load_plate_detector("tnkb"), frames), _found(load_plate_detector("onnx"), frames)
    print(f"Cilacap stop line, 3 plates x {len(frames)} frames: tnkb {tnkb}, onnx {onnx}")
    assert tnkb >= 0.9 * 3 * len(frames)  # measured 35 of 36
    assert onnx <= 0.5 * 3 * len(frames)  # measured 11 of 36: what the fine-tuning was for


@pytest.mark.slow
@pytest.mark.shared_data
def test_tnkb_detector_still_finds_a_car_plate(shared_data: Path) -> None:
    _tnkb_ready()
    found = load_plate_detector("tnkb").detect(_image(shared_data))
    assert found and max(d.box.iou(PLATE) for d in found) > 0.6
