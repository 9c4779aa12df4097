"""``etle eval plates`` and :mod:`etle.evaluate.plates`: the metrics by hand, bad input as one-line
errors, the command end to end with a fake reader and detector on synthetic images, and (with
../shared/data) ``--full-image`` with the real models on a few openalpr_eu photos."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.errors import ConfigError, SourceError
from etle.evaluate import plates as ev
from etle.evaluate.plates import GAP, CropRow, FullRow
from etle.types import Box, Detection, PlateRead

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize(("a", "b", "d"), [
    ("", "", 0), ("", "ABC", 3), ("ABC", "", 3), ("B1234AB", "B1234AB", 0), ("kitten", "sitting", 3),
    ("B1234AB", "81234A", 2), ("BH1234AB", "BH12340AB", 1), ("AB", "BA", 2),
])
def test_edit_distance(a: str, b: str, d: int) -> None:
    assert ev.edit_distance(a, b) == d == ev.edit_distance(b, a)


def test_char_accuracy() -> None:
    assert ev.char_accuracy("AB", "AB") == 1.0
    assert ev.char_accuracy("", "AB") == 0.0
    assert ev.char_accuracy("A", "ABCD") == pytest.approx(0.25)  # 3 edits over 4
    assert ev.char_accuracy("XXXXXXXX", "AB") == 0.0  # floored at 0
    assert ev.char_accuracy("", "") == 1.0 and ev.char_accuracy("A", "") == 0.0


def test_alignment_pairs_label_and_read_characters() -> None:
    assert ev.align("B1234AB", "81234A") == [("B", "8"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("A", "A"), ("B", GAP)]
    assert ev.align("BH1234AB", "BH12340AB") == [("B", "B"), ("H", "H"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"),
                                                 (GAP, "0"), ("A", "A"), ("B", "B")]
    assert ev.align("", "AB") == [(GAP, "A"), (GAP, "B")]
    assert ev.align("AB", "") == [("A", GAP), ("B", GAP)]


def test_confusion_pairs_by_hand() -> None:
    assert ev.confusion_pairs("B1234AB", "81234A") == Counter({("B", "8"): 1, ("B", GAP): 1})
    assert ev.confusion_pairs("B1234AB", "81234A", gaps=False) == Counter({("B", "8"): 1})
    assert ev.confusion_pairs("BH1234AB", "BH12340AB") == Counter({(GAP, "0"): 1})
    assert ev.confusion_pairs("B5S0", "BSSO") == Counter({("5", "S"): 1, ("0", "O"): 1})
    assert ev.confusion_pairs("B8888", "BBBB8") == Counter({("8", "B"): 3})
    assert ev.confusion_pairs("B1234AB", "B1234AB") == Counter()
    assert ev.confusion_pairs("B1234AB", "") == Counter()  # nothing read is no confusion


def test_iou() -> None:
    assert ev.iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert ev.iou(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert ev.iou(Box(0, 0, 10, 10), Box(20, 20, 30, 30)) == 0.0


def test_summarise_by_hand() -> None:
    rows = [CropRow("a", "AB12", "AB12", 10.0, "01.27"), CropRow("b", "B5S", "BSS", 20.0), CropRow("c", "CD", "", 60.0),
            CropRow("d", "B8B", "BBB", 30.0)]
    s = ev.summarise(rows, reader="x", top_k=5)
    assert (s.n, s.exact, s.validity, s.unread) == (4, 1, 1, 1)
    assert s.accuracy == 0.25
    assert s.char_accuracy == pytest.approx((1 + 2 / 3 + 0 + 2 / 3) / 4)
    assert (s.mean_ms, s.median_ms) == (30.0, 25.0)
    assert s.confusions == (("5", "S", 1), ("8", "B", 1))
    assert ev.summarise([]).n == 0


def test_summarise_full_by_hand() -> None:
    rows = [FullRow("a", "AB1", 0.9, 1, "AB1", "AB1", 0.9, 10.0, 5.0), FullRow("b", "CD2", 0.4, 2, "XX", "CD2", 0.1, 20.0, 10.0),
            FullRow("c", "EF3", 0.0, 0, "", "", 0.0, 30.0, 0.0)]
    s = ev.summarise_full(rows, reader="x")
    assert (s.n, s.recall_50, s.recall_30, s.top_hits_50, s.exact, s.exact_matched) == (3, 1, 2, 1, 1, 2)
    assert s.mean_iou == pytest.approx(1.3 / 3)
    assert (s.ms_per_image, s.detect_ms, s.read_ms, s.detections_per_image) == (25.0, 20.0, 5.0, 1.0)


def test_label_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such labels file"):
        ev.read_labels(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,text\na.png,B1AB\n")
    with pytest.raises(ConfigError, match="missing column.*filename.*plate_text"):
        ev.read_labels(bad)
    (tmp_path / "empty.csv").write_text("filename,plate_text\n")
    with pytest.raises(ConfigError, match="no labelled rows"):
        ev.read_labels(tmp_path / "empty.csv")
    (tmp_path / "box.csv").write_text("filename,plate_text,x,y,w,h\na.png,B 1 AB,1,2,3,4\nb.png,X,1,two,3,4\n")
    with pytest.raises(ConfigError, match=r"box.csv:3: x, y, w, h must be numbers"):
        ev.read_box_labels(tmp_path / "box.csv")
    (tmp_path / "box.csv").write_text("filename,plate_text,x,y,w,h\na.png,B 1 ab,1,2,3,4\n")
    assert ev.read_box_labels(tmp_path / "box.csv") == {"a.png": ev.LabelledBox("B1AB", Box(1, 2, 4, 6))}
    assert ev.read_labels(tmp_path / "box.csv") == {"a.png": "B1AB"}
    with pytest.raises(SourceError, match="no such folder"):
        ev.images_folder(tmp_path / "nowhere")


# ---------------------------------------------------------------- the command, with fakes

# a uniform image's grey value -> what the fake reader "reads" from it
READS = {201: "B1234AB", 202: "D55X", 203: "B8BAB", 204: "", 205: "R5154WP"}


class FakeReader:
    """Reads the grey value at the crop's centre and looks it up in READS."""

    name = "fake"

    def __init__(self, country: object = "id", **kwargs: object) -> None:
        pass

    def read(self, crop: np.ndarray) -> PlateRead | None:
        text = READS.get(int(crop[crop.shape[0] // 2, crop.shape[1] // 2, 0]), "")
        return PlateRead(text=text, confidence=0.9, validity="08.27" if text == "R5154WP" else None) if text else None


# full photo name -> detections
DETECTIONS = {
    "p0.png": [Detection(Box(20, 20, 80, 40), "plate", 0.9)],  # exactly the labelled box
    "p1.png": [Detection(Box(125, 50, 185, 70), "plate", 0.8), Detection(Box(0, 80, 10, 90), "plate", 0.3)],  # IoU 700/1700
    "p2.png": [],  # missed
}


class FakeDetector:
    def __init__(self, **kwargs: object) -> None:
        pass

    def detect(self, image: np.ndarray) -> list[Detection]:
        return DETECTIONS[f"p{int(image[0, 0, 1])}.png"]  # the photo's number is in its green channel


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    from etle.plate import detector, readers

    monkeypatch.setitem(readers._READERS, "fake", FakeReader)
    monkeypatch.setitem(detector._DETECTORS, "fake", FakeDetector)


def run_etle(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    from etle.cli import main

    monkeypatch.setattr(sys, "argv", ["etle", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    cap = capsys.readouterr()
    return int(exc.value.code or 0), cap.out, cap.err


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    root = tmp_path / "crops"
    (root / "images").mkdir(parents=True)
    labels = {"a.png": ("B1234AB", 201), "b.png": ("B8888AB", 203), "c.png": ("D5XX", 202), "d.png": ("BH1AB", 204),
              "e.png": ("R5154WP", 205)}
    for name, (_, value) in labels.items():
        img = np.full((30, 90, 3), value, np.uint8)
        cv2.imwrite(str(root / "images" / name), img)
    (root / "labels.csv").write_text("filename,plate_text\n" + "".join(f"{n},{t}\n" for n, (t, _) in labels.items()))
    (root / "crosscheck.csv").write_text("filename,agreement\na.png,all_agree\nb.png,all_agree\nc.png,disagree\nd.png,all_agree\ne.png,all_agree\n")
    return root


def test_eval_plates_on_crops_with_a_fake_reader(fakes, crops: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out_json = tmp_path / "out" / "eval.json"
    code, out, err = run_etle(capsys, monkeypatch, "eval", "plates", str(crops), "--labels", str(crops / "labels.csv"),
                              "--reader", "fake", "--crosscheck", str(crops / "crosscheck.csv"), "--errors", "--json", str(out_json))
    assert code == 0, err
    # a: exact; b: B8888AB read B8BAB (8->B twice and two dropped 8s); c: D5XX read D55X (X->5); d: unread; e: exact
    assert "fake [id] all: exact 2/5 = 40.0%" in out
    assert "fake [id] all_agree: exact 2/4 = 50.0%" in out
    assert "validity parsed 1/5" in out
    assert "8->- 2" in out and "8->B 1" in out and "X->5 1" in out
    assert "d.png: label BH1AB read -" in out
    data = json.loads(out_json.read_text())
    s_all, s_agree = data["readers"][0]["summaries"]
    assert (s_all["n"], s_all["exact"], s_all["unread"], s_agree["n"]) == (5, 2, 1, 4)
    assert s_all["char_accuracy"] == pytest.approx((1 + (1 - 3 / 7) + 0.75 + 0 + 1) / 5, abs=1e-4)
    assert {(c["label"], c["read"]): c["count"] for c in s_all["confusions"]} == {("8", ""): 2, ("8", "B"): 1, ("X", "5"): 1}
    assert data["mode"] == "crops" and data["readers"][0]["status"] == "ok"
    assert sorted(e["filename"] for e in data["readers"][0]["errors"]) == ["b.png", "c.png", "d.png"]


def test_script_is_a_wrapper_of_the_command(fakes, crops: Path, capsys, monkeypatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("eval_plates_script", REPO / "scripts" / "eval_plates.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit) as exc:
        mod.main([str(crops / "images"), "--labels", str(crops / "labels.csv"), "--reader", "fake", "--no-progress"])
        raise SystemExit(0)
    assert (exc.value.code or 0) == 0
    assert "fake [id] all: exact 2/5" in capsys.readouterr().out


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    boxes = {"p0.png": ("B1234AB", (20, 20, 60, 20), 201), "p1.png": ("D55X", (100, 50, 60, 20), 202),
             "p2.png": ("R5154WP", (30, 60, 50, 20), 205)}
    for i, (name, (_, (x, y, w, h), value)) in enumerate(boxes.items()):
        img = np.full((100, 200, 3), 50, np.uint8)
        img[y:y + h, x:x + w] = value
        img[0, 0, 1] = i
        cv2.imwrite(str(root / name), img)
    (root / "labels.csv").write_text("filename,plate_text,x,y,w,h\n" + "".join(
        f"{n},{t},{x},{y},{w},{h}\n" for n, (t, (x, y, w, h), _) in boxes.items()))
    return root


def test_eval_plates_full_image_with_fakes(fakes, photos: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out_json = tmp_path / "full.json"
    code, out, err = run_etle(capsys, monkeypatch, "eval", "plates", str(photos), "--labels", str(photos / "labels.csv"),
                              "--reader", "fake", "--full-image", "--plate-detector", "fake", "--json", str(out_json))
    assert code == 0, err
    assert "recall IoU>=0.5 1/3 = 33.3%, IoU>=0.3 2/3 = 66.7%" in out
    assert "end-to-end (all): exact 2/3 = 66.7%" in out
    s = json.loads(out_json.read_text())["readers"][0]["summaries"][0]
    assert s["mean_iou"] == pytest.approx((1.0 + 700 / 1700 + 0.0) / 3, abs=1e-4)
    assert (s["recall_iou50"], s["recall_iou30"], s["exact_end_to_end"], s["exact_best_match"]) == (1, 2, 2, 2)
    assert s["detections_per_image"] == 1.0 and s["ms_per_image"] >= s["detect_ms"]


BAD_INPUT = [
    (["{tmp}/nowhere", "--labels", "{crops}/labels.csv", "--reader", "fake"], 3, "no such folder"),
    (["{crops}", "--labels", "{tmp}/none.csv", "--reader", "fake"], 2, "no such labels file"),
    (["{crops}", "--labels", "{tmp}/malformed.csv", "--reader", "fake"], 2, "missing column"),
    (["{crops}", "--labels", "{crops}/labels.csv", "--reader", "nosuch"], 4, "unknown plate reader 'nosuch'"),
    (["{crops}", "--labels", "{crops}/labels.csv", "--reader", "fake", "--full-image"], 2, "missing column(s) x, y, w, h"),
    (["{crops}", "--labels", "{crops}/labels.csv", "--reader", "fake", "--country", "mars"], 2, "unknown --country"),
    (["{crops}", "--labels", "{crops}/labels.csv", "--reader", "fake", "--crosscheck", "{tmp}/none.csv"], 2, "no such labels file"),
    (["{tmp}", "--labels", "{crops}/labels.csv", "--reader", "fake"], 3, "none of the 5 labelled images"),
]


@pytest.mark.parametrize(("args", "code", "needle"), BAD_INPUT, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_is_a_one_line_error(fakes, crops: Path, tmp_path: Path, capsys, monkeypatch, args, code, needle) -> None:
    (tmp_path / "malformed.csv").write_text("file;plate\nx;y\n")
    argv = [a.format(tmp=tmp_path, crops=crops) for a in args]
    got, out, err = run_etle(capsys, monkeypatch, "eval", "plates", *argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert got == code, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err + out


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "etle.cli", "eval", "plates", str(tmp_path / "nowhere"), "--labels", "x.csv"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 3 and len(lines) == 1 and "no such folder" in lines[0] and "Traceback" not in res.stderr


def test_eval_has_help() -> None:
    from typer.testing import CliRunner

    from etle.cli import app

    res = CliRunner().invoke(app, ["eval", "plates", "--help"])
    assert res.exit_code == 0 and "--full-image" in res.output and "--crosscheck" in res.output


# ---------------------------------------------------------------- real data and models


def test_full_image_on_openalpr_eu_photos(shared_data: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from conftest import require_model

    require_model("plate-detector")
    require_model("ocr-rapidocr-rec")
    data = shared_data / "plates" / "openalpr_eu"
    out_json = tmp_path / "eu.json"
    code, out, err = run_etle(capsys, monkeypatch, "eval", "plates", str(data), "--labels", str(data / "labels.csv"), "--reader",
                              "rapidocr", "--country", "generic", "--full-image", "--limit", "4", "--no-progress", "--json", str(out_json))
    assert code == 0, err
    assert "recall IoU>=0.5" in out and "end-to-end" in out
    s = json.loads(out_json.read_text())["readers"][0]["summaries"][0]
    assert s["n"] == 4
    assert s["recall_iou30"] >= 3 and s["mean_iou"] > 0.3  # the detector finds these plates
    assert s["exact_best_match"] >= 2 and s["ms_per_image"] > 0
