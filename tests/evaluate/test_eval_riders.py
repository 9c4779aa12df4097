"""``etle eval riders``: the more_than_two rule's one-frame judgement on labelled photos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.errors import ConfigError
from etle.evaluate.riders import evaluate_photos, load_riders_truth, match_photo, report_dict
from etle.types import Box, Detection

REPO = Path(__file__).resolve().parents[2]
TRUTH = REPO / "eval" / "truth" / "riders_photos.yaml"


def test_match_photo_counts_each_labelled_motorcycle_once():
    big, small = Box(100, 100, 300, 250), Box(400, 100, 450, 150)
    assert match_photo([big], [(200, 200)], 0.1) == (1, 0, 0)
    assert match_photo([big, small], [(200, 200)], 0.1) == (1, 1, 0)  # the other call is false
    assert match_photo([], [(200, 200), (420, 120)], 0.1) == (0, 0, 2)
    assert match_photo([big], [(305, 200)], 0.1) == (1, 0, 0)  # within the grown box
    assert match_photo([big], [(330, 200)], 0.1) == (0, 1, 1)
    assert match_photo([small, big], [(200, 200), (210, 210)], 0.0) == (1, 1, 1)  # one point per call


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "truth.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_truth_file_errors_name_the_line(tmp_path: Path):
    dup = _write(tmp_path, "version: 1\ndata: photos\nphotos:\n  - {file: a.jpg}\n  - {file: a.jpg}\n")
    with pytest.raises(ConfigError, match=r"truth.yaml:\d+: photos: .*listed twice: a.jpg"):
        load_riders_truth(dup)
    typo = _write(tmp_path, "version: 1\ndata: photos\nphotos:\n  - {file: a.jpg, crowdd: []}\n")
    with pytest.raises(ConfigError, match=r"truth.yaml:4: photos.0.crowdd"):
        load_riders_truth(typo)
    truth, root = load_riders_truth(_write(tmp_path, "data: photos\nphotos:\n  - {file: a.jpg, crowded: [[1, 2]]}\n"))
    assert root == (tmp_path / "photos").resolve() and truth.photos[0].crowded == ((1.0, 2.0),)


class ThreeOnTheLeft:
    """A stand-in detector: a motorcycle and three riders seated one behind another on the left
    photo, one rider on the right one."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        moto = Detection(Box(100, 150, 200, 300), "motorcycle", 0.9)
        if image[0, 0, 0] == 0:
            return [moto] + [Detection(Box(105 + 20 * k, 40, 175 + 20 * k, 280), "person", 0.8) for k in range(3)]
        return [moto, Detection(Box(110, 40, 190, 280), "person", 0.8)]


def test_evaluate_photos_scores_each_photo(tmp_path: Path):
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "three.png"), np.zeros((320, 320, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "photos" / "one.png"), np.full((320, 320, 3), 9, np.uint8))
    text = ("data: photos\nphotos:\n  - {file: three.png, crowded: [[150, 250]]}\n"
            "  - {file: one.png, crowded: []}\n  - {file: one.png.bak, crowded: []}\n")
    truth, root = load_riders_truth(_write(tmp_path, text.replace("  - {file: one.png.bak, crowded: []}\n", "")))
    results = evaluate_photos(truth, root, ThreeOnTheLeft())
    assert [(r.tp, r.fp, r.fn) for r in results] == [(1, 0, 0), (0, 0, 0)]
    rep = report_dict(results, truth_file="t.yaml", detector="fake")
    assert (rep["tp"], rep["fp"], rep["fn"], rep["precision"], rep["recall"]) == (1, 0, 0, 1.0, 1.0)
    json.dumps(rep)
    missing, root = load_riders_truth(_write(tmp_path, text))
    with pytest.raises(ConfigError, match="cannot read the photo"):
        evaluate_photos(missing, root, ThreeOnTheLeft())


#: Measured on the shipped truth (eval/results/riders.json): 3 of 8 found, 0 false.
MIN_FOUND, MAX_FALSE = 3, 0


@pytest.mark.slow
@pytest.mark.shared_data
def test_shipped_photos_with_the_real_detector(shared_data: Path):
    from etle.config.run import RunOptions
    from etle.detect.detector import load_detector

    truth, _ = load_riders_truth(TRUTH)
    root = shared_data / "helmet" / "roboflow_helmet_ccby"
    results = evaluate_photos(truth, root, load_detector("vehicle-detector", conf_threshold=RunOptions().conf_threshold))
    rep = report_dict(results, truth_file=str(TRUTH), detector="vehicle-detector")
    assert rep["labelled"] == 8 and rep["photos"] == 34
    assert rep["tp"] >= MIN_FOUND, rep
    assert rep["fp"] <= MAX_FALSE, [r.file for r in results if r.fp]


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch):
    import sys

    from etle.cli import main

    truth = _write(tmp_path, "data: photos\nphotos:\n  - {file: a.jpg}\n")
    for args, message in ((["eval", "riders", str(tmp_path / "none.yaml")], "truth file not found"),
                          (["eval", "riders", str(truth)], "the photo folder")):
        monkeypatch.setattr(sys, "argv", ["etle", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
