"""Head detection in a rider's head region: the region, picking the person's own head, and the
no_helmet rule with a (fake) head finder."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from etle.helmet.heads import (
    REGION_ABOVE,
    REGION_OF_HEIGHT,
    REGION_OF_WIDTH,
    REGION_SIZE,
    FoundHead,
    cut_region,
    dedupe,
    head_region,
    own_heads,
)
from etle.rules.engine import RuleEngine
from etle.rules.no_helmet import NoHelmetRule
from etle.types import Box, Frame, FrameContext, TrackedObject

H, W = 360, 640
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
BARE, HELMET = (0, 0, 255), (0, 255, 0)


# ------------------------------------------------------------------------------ region
def test_head_region_is_a_square_over_the_top_of_the_person():
    person = Box(100, 100, 160, 300)  # narrow, tall: the height sets the side
    r = head_region(person, frame_width=W, frame_height=H)
    assert r is not None
    side = REGION_OF_HEIGHT * 200
    assert r.width == pytest.approx(side) and r.height == pytest.approx(side)
    assert r.center[0] == pytest.approx(130)
    assert r.y1 == pytest.approx(100 - REGION_ABOVE * side)
    wide = head_region(Box(100, 100, 300, 250), frame_width=W, frame_height=H)  # arms to the handlebars
    assert wide is not None and wide.width == pytest.approx(REGION_OF_WIDTH * 200)
    assert wide.x1 < 100 and wide.x2 > 300  # room for a head at either side of the box


def test_head_region_refuses_tiny_and_outside_boxes():
    assert head_region(Box(10, 10, 14, 30), frame_width=W, frame_height=H) is None
    assert head_region(Box(700, 10, 760, 200), frame_width=W, frame_height=H) is None
    assert head_region(Box(0, 0, 0, 10), frame_width=W, frame_height=H) is None


def test_cut_region_is_the_detector_input_and_leaves_the_frame_alone():
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :320] = 200
    img.flags.writeable = False
    crop = cut_region(img, Box(-40, -40, 40, 40))
    assert crop.shape == (REGION_SIZE, REGION_SIZE, 3) and crop.flags.writeable
    assert (crop == 200).all()  # edge-replicated, not black


# ------------------------------------------------------------------------------- picking
def _head(x1, y1, side, helmet=0.1, bare=0.8):
    return FoundHead(Box(x1, y1, x1 + side, y1 + side), helmet, bare)


def test_own_heads_keeps_off_centre_heads_and_leaves_the_neighbours():
    person = Box(100, 100, 200, 300)
    off_centre = _head(160, 100, 30)  # right of the box's centre: still this person's
    below = _head(130, 230, 30)  # a knee, a bag: in the lower half
    beside = _head(205, 100, 30)  # centre outside the box
    assert own_heads(0, [person], [off_centre, below, beside]) == [off_centre]
    # a neighbour whose box top-centre is nearer that head takes it
    neighbour = Box(150, 95, 230, 290)
    assert own_heads(0, [person, neighbour], [off_centre]) == []
    assert own_heads(1, [person, neighbour], [off_centre]) == [off_centre]
    # one box over two riders owns both heads
    two = Box(100, 100, 260, 300)
    front, back = _head(110, 100, 30), _head(215, 95, 30)
    assert own_heads(0, [two], [front, back]) == [front, back]
    assert own_heads(0, [person], []) == []


def test_dedupe_keeps_the_most_confident_of_one_place():
    a, b, c = _head(100, 100, 30, 0.1, 0.9), _head(102, 101, 30, 0.2, 0.5), _head(200, 100, 30, 0.7, 0.1)
    assert dedupe([b, c, a]) == [a, c]


def test_found_head_shares():
    h = _head(0, 0, 10, 0.2, 0.6)
    assert h.confidence == pytest.approx(0.6)
    assert h.no_helmet_share == pytest.approx(0.75)


# -------------------------------------------------------------------- the rule, detector path
class PaintFinder:
    """Finds painted head squares in a region: red -> no helmet, green -> helmet."""

    def __init__(self) -> None:
        self.regions: list[Box] = []

    def find_many(self, image, regions):
        return [self.find(image, r) for r in regions]

    def find(self, image, region):
        self.regions.append(region)
        x1, y1 = max(int(region.x1), 0), max(int(region.y1), 0)
        x2, y2 = min(int(region.x2), image.shape[1]), min(int(region.y2), image.shape[0])
        out = []
        for colour, probs in ((BARE, (0.05, 0.9)), (HELMET, (0.9, 0.05))):
            mask = np.all(image[y1:y2, x1:x2] == colour, axis=2)
            if mask.any():
                ys, xs = np.nonzero(mask)
                out.append(FoundHead(Box(x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1, y1 + ys.max() + 1), *probs))
        return out


class PaintClassifier:
    """Reads the paint at the centre of a head crop: red -> no helmet, green -> helmet, else
    background (the real classifier's three classes)."""

    def __init__(self) -> None:
        self.crops = 0

    def predict(self, crops):
        self.crops += len(crops)
        out = []
        for c in crops:
            b, g, r = c[56:72, 56:72].reshape(-1, 3).mean(axis=0)
            out.append([0.05, 0.9, 0.05] if r > 150 and g < 100 else [0.9, 0.05, 0.05] if g > 150 and r < 100 else [0.05, 0.05, 0.9])
        return np.asarray(out)


def _obj(tid, box, label):
    return TrackedObject(tid, Box(*box), label, 0.8)


def _run(rule, objects, paint, n=60):
    img = np.full((H, W, 3), 90, np.uint8)
    for (x1, y1, x2, y2), colour in paint:
        img[y1:y2, x1:x2] = colour
    eng = RuleEngine([rule])
    out = []
    for i in range(n):
        out += eng.update(FrameContext(Frame("t", i, i / 30.0, img, wall_start=START), tuple(objects)))
    return out


MOTO = _obj(8, (281, 138, 423, 358), "motorcycle")
RIDER = _obj(1, (288, 73, 424, 354), "person")


def test_an_off_centre_bare_head_is_found_and_ticketed():
    # the head sits at the right edge of the rider's wide box, where the fixed estimate
    # (top centre) would look at the shoulder
    finder = PaintFinder()
    out = _run(NoHelmetRule(PaintClassifier(), heads=finder), [MOTO, RIDER], [((385, 75, 420, 110), BARE)])
    assert [v.track_id for v in out][:1] == [8]
    assert out[0].details["persons_without_helmet"] == [1]
    assert finder.regions and all(r.x1 < 288 and r.x2 > 424 for r in finder.regions)


def test_a_helmet_or_no_head_gives_no_ticket():
    assert _run(NoHelmetRule(PaintClassifier(), heads=PaintFinder()), [MOTO, RIDER], [((385, 75, 420, 110), HELMET)]) == []
    rule = NoHelmetRule(PaintClassifier(), heads=PaintFinder())
    assert _run(rule, [MOTO, RIDER], []) == []  # nothing found: background, never a sample
    assert rule.bare_score(1) is None


def test_a_bare_head_low_in_the_box_is_not_the_riders():
    # red paint on the rider's lap (lower half of the box): not a head of this person
    assert _run(NoHelmetRule(PaintClassifier(), heads=PaintFinder()), [MOTO, RIDER], [((330, 260, 365, 295), BARE)]) == []


def test_a_found_head_the_classifier_calls_background_is_no_sample():
    # the finder finds a (blue) blob, the classifier says it is no head
    class BlobFinder(PaintFinder):
        def find(self, image, region):
            return [FoundHead(Box(385, 75, 420, 110), 0.1, 0.9)]

    rule = NoHelmetRule(PaintClassifier(), heads=BlobFinder())
    assert _run(rule, [MOTO, RIDER], [((385, 75, 420, 110), (255, 0, 0))]) == []
    assert rule.bare_score(1) is None and rule.classified > 0


def test_rule_needs_a_classifier():
    with pytest.raises(ValueError):
        NoHelmetRule(None)


# ----------------------------------------------------------------- the committed detector
def test_committed_head_detector_matches_the_manifest_and_finds_a_painted_scene_empty():
    from etle.helmet.heads import HEAD_CLASSES, load_head_detector, locate_head_model

    path = locate_head_model()
    assert path.stat().st_size < 15_000_000
    det = load_head_detector()
    assert det.size == REGION_SIZE and tuple(det._yolo.names) == HEAD_CLASSES
    flat = np.full((H, W, 3), 127, np.uint8)
    assert det.find_many(flat, [Box(10, 10, 170, 170), Box(200, 10, 360, 170)]) == [[], []]


def test_a_model_with_other_classes_is_refused(tmp_path):
    import onnx

    from etle.errors import ModelError
    from etle.helmet.heads import HeadDetector, locate_head_model

    model = onnx.load(str(locate_head_model()))
    for prop in model.metadata_props:
        if prop.key == "names":
            prop.value = "{0: 'with_helmet', 1: 'rider'}"
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(ModelError, match="expected"):
        HeadDetector(tmp_path / "other.onnx")


#: Measured on the test split (eval/results/helmet.json, run mode): P 0.906, R 0.795.
PRECISION_FLOOR, RECALL_FLOOR = 0.88, 0.77


@pytest.mark.slow
def test_run_mode_on_the_held_apart_test_split(shared_data):
    """The no_helmet rule's way of judging heads (person boxes of the vehicle detector -> head
    detector -> helmet classifier on each head), scored on the Roboflow test split, which chose
    nothing; and against the fixed head estimate on the same person boxes."""
    from etle.detect.detector import load_detector
    from etle.evaluate import helmet as hv
    from etle.helmet.classifier import load_helmet_classifier
    from etle.helmet.heads import load_head_detector

    items = hv.read_set(shared_data / "helmet" / "roboflow_helmet_ccby" / "test")
    persons, clf = load_detector(), load_helmet_classifier()  # as etle eval helmet loads them
    with_det = hv.evaluate_set(items, mode="run", classifier=clf, detector=persons, heads_model=load_head_detector())
    estimate = hv.evaluate_set(items, mode="run", classifier=clf, detector=persons)
    assert with_det.precision >= PRECISION_FLOOR and with_det.recall >= RECALL_FLOOR, with_det
    assert with_det.found > estimate.found and with_det.tp > estimate.tp, (with_det, estimate)
