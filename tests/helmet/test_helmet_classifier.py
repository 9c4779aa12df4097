"""The helmet classifier: crops, the committed ONNX weights, the crop-model contract."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.onnx_models import tiny_crop_model

from etle.errors import ModelError
from etle.helmet.classifier import CLASSES, HelmetClassifier, load_helmet_classifier, locate_helmet_model
from etle.helmet.crops import HEAD_OF_HEIGHT, HEAD_OF_WIDTH, INPUT_SIZE, head_box, square_crop, to_input
from etle.models.crop import OnnxCropModel, probabilities
from etle.types import Box

REPO = Path(__file__).resolve().parents[2]


# -------------------------------------------------------------------------------- crops
def test_head_box_is_the_top_of_a_person():
    hb = head_box(Box(100, 50, 220, 250), frame_width=640, frame_height=360)
    assert hb is not None
    side = HEAD_OF_HEIGHT * 200  # a seated rider: the height sets the head size
    assert hb.y1 == 50 and hb.height == pytest.approx(side) and hb.width == pytest.approx(side)
    assert hb.center[0] == pytest.approx(160)
    narrow = head_box(Box(100, 50, 140, 250), frame_width=640, frame_height=360)
    assert narrow is not None and narrow.width == pytest.approx(HEAD_OF_WIDTH * 40)  # never wider than the box allows


def test_head_box_refuses_cut_and_tiny_persons():
    assert head_box(Box(100, 0, 160, 250), frame_width=640, frame_height=360) is None  # cut at the top
    assert head_box(Box(100, 50, 110, 90), frame_width=640, frame_height=360, min_px=12) is None


def test_square_crop_replicates_the_border_and_copies():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :50] = 200
    img.flags.writeable = False
    crop = square_crop(img, Box(-10, -10, 10, 10), context=1.0, size=32)
    assert crop.shape == (32, 32, 3) and crop.flags.writeable
    assert (crop == 200).all()  # the replicated edge, not black padding


def test_to_input_is_nchw_rgb_unit_range():
    crop = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    crop[..., 2] = 255  # red in BGR
    x = to_input([crop])
    assert x.shape == (1, 3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    assert x[0, 0].max() == 1.0 and x[0, 2].max() == 0.0


# ---------------------------------------------------------------------- committed model
def test_committed_model_matches_the_manifest_and_runs():
    path = locate_helmet_model()
    assert path.stat().st_size < 3_000_000
    clf = load_helmet_classifier()
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for s in (20, 64, 97)]
    probs = clf.predict(crops)
    assert probs.shape == (3, len(CLASSES))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert clf.violation_scores(crops).shape == (3,)
    assert clf.predict([]).shape[0] == 0
    assert clf.input_size == INPUT_SIZE  # square_crop cuts what the model takes, no second resize


def test_model_metrics_are_recorded_with_the_weights():
    metrics = json.loads((REPO / "models" / "helmet" / "metrics.json").read_text())
    assert metrics["sha256"] == __import__("hashlib").sha256(locate_helmet_model().read_bytes()).hexdigest()
    for split in ("test", "bikeshelmets_subset"):
        assert metrics[split]["no_helmet"]["precision"] is not None
    assert (REPO / "models" / "helmet" / "ATTRIBUTION.md").read_text().count("CC BY 4.0") >= 1


def test_a_model_with_other_classes_is_refused(tmp_path):
    path = tiny_crop_model(tmp_path / "m.onnx", outputs=3, meta={"classes": "a,b,c"})
    with pytest.raises(ModelError, match="classes"):
        HelmetClassifier(path)


# ------------------------------------------------------------------- crop-model contract
def _solid(bgr, size=30):
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = bgr
    return img


def test_onnx_crop_model_softmax_scores(tmp_path):
    m = OnnxCropModel(tiny_crop_model(tmp_path / "m.onnx"))
    assert m.input_size == 16
    s = m.violation_scores([_solid((0, 0, 255)), _solid((255, 0, 0))])  # red, blue
    assert s[0] > 0.99 and s[1] < 0.01


def test_onnx_crop_model_single_logit_and_bgr(tmp_path):
    m = OnnxCropModel(tiny_crop_model(tmp_path / "m.onnx", outputs=1), channel_order="bgr")
    # channel 0 is now blue: a blue crop raises the logit -> sigmoid
    s = m.violation_scores([_solid((255, 0, 0)), _solid((0, 0, 0))])
    assert s[0] > 0.99 and s[1] == pytest.approx(0.5)


def test_onnx_crop_model_sigmoid_output_taken_as_is(tmp_path):
    m = OnnxCropModel(tiny_crop_model(tmp_path / "m.onnx", outputs=1, sigmoid=True))
    assert m.violation_scores([_solid((0, 0, 255))])[0] > 0.99


def test_onnx_crop_model_fixed_batch_and_dynamic_size(tmp_path):
    m = OnnxCropModel(tiny_crop_model(tmp_path / "a.onnx", batch=1))
    assert m.violation_scores([_solid((0, 0, 255))] * 3).shape == (3,)
    with pytest.raises(ModelError, match="input_size"):
        OnnxCropModel(tiny_crop_model(tmp_path / "b.onnx", size=None))
    assert OnnxCropModel(tmp_path / "b.onnx", input_size=24).input_size == 24


def test_onnx_crop_model_refuses_bad_models(tmp_path):
    with pytest.raises(ModelError, match="3 channels"):
        OnnxCropModel(tiny_crop_model(tmp_path / "c.onnx", channels=1))
    with pytest.raises(ModelError, match="not found"):
        OnnxCropModel(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot be loaded"):
        OnnxCropModel(tmp_path / "junk.onnx")
    m = OnnxCropModel(tiny_crop_model(tmp_path / "d.onnx"), positive_class=5)
    with pytest.raises(ModelError, match="positive_class"):
        m.violation_scores([_solid((0, 0, 0))])


def test_probabilities_normalises_logits():
    p = probabilities(np.array([[2.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p.sum(axis=1), 1) and p[0, 0] > p[0, 1]
    assert np.allclose(probabilities(np.array([[0.2, 0.8]])), [[0.2, 0.8]])
    assert probabilities(np.array([0.0]))[0, 0] == pytest.approx(0.0)  # already a probability
    assert probabilities(np.array([-3.0]))[0, 0] == pytest.approx(1 / (1 + np.exp(3)))


# ----------------------------------------------------------------- real labelled heads
@pytest.mark.slow
def test_precision_recall_on_the_held_apart_splits(shared_data: Path):
    """No-helmet precision/recall of the committed model on the Roboflow test split and on
    bikeshelmets_subset (heads cut from their labels, as scripts/train_helmet.py scores them)."""
    import cv2

    clf = load_helmet_classifier()

    def score(items):
        crops, labels = [], []
        for image, box, label in items:
            crops.append(square_crop(image, box))
            labels.append(label)
        pred = clf.predict(crops).argmax(axis=1)
        labels = np.asarray(labels)
        tp = int(((pred == 1) & (labels == 1)).sum())
        fp = int(((pred == 1) & (labels == 0)).sum())
        fn = int(((pred != 1) & (labels == 1)).sum())
        return tp / max(tp + fp, 1), tp / max(tp + fn, 1)

    root = shared_data / "helmet" / "roboflow_helmet_ccby" / "test"
    items = []
    for img_file in sorted((root / "images").iterdir()):
        image = cv2.imread(str(img_file))
        h, w = image.shape[:2]
        for line in (root / "labels" / f"{img_file.stem}.txt").read_text().splitlines():
            c, cx, cy, bw, bh = line.split()
            box = Box(max((float(cx) - float(bw) / 2) * w, 0), max((float(cy) - float(bh) / 2) * h, 0),
                      min((float(cx) + float(bw) / 2) * w, w), min((float(cy) + float(bh) / 2) * h, h))
            items.append((image, box, int(c)))
    precision, recall = score(items)
    assert precision >= 0.8 and recall >= 0.7, (precision, recall)

    bikes = shared_data / "helmet" / "bikeshelmets_subset"
    items = []
    for row in csv.DictReader((bikes / "labels.csv").open()):
        image = cv2.imread(str(bikes / "images" / row["filename"]))
        box = Box(float(row["xmin"]), float(row["ymin"]), float(row["xmax"]), float(row["ymax"]))
        if box.x2 > image.shape[1] + 2 or box.y2 > image.shape[0] + 2:
            continue  # one label lies outside its image (left alone, see MANIFEST.md)
        items.append((image, box, 1 if row["class"] == "Without Helmet" else 0))
    precision, recall = score(items)
    assert precision >= 0.7 and recall >= 0.4, (precision, recall)
