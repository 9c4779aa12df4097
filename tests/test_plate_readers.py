"""Plate readers: candidate selection on hand-made probabilities, line finding, real models."""

from __future__ import annotations

import builtins
import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import require_model

from etle.errors import MissingDependencyError, ModelError
from etle.plate import readers
from etle.plate.lines import Band, PlateLines, deskew, find_lines, validity_crop
from etle.plate.readers import (
    RapidOcrReader,
    available_readers,
    load_reader,
    plate_views,
)
from etle.plate.tnkb import ALPHABET, get_format

K1 = 1 + len(ALPHABET)


def frames(*steps: dict[str, float] | str, floor: float = 1e-4) -> np.ndarray:
    rows = []
    for s in steps:
        want = {s: 1.0} if isinstance(s, str) else s
        row = np.full(K1, floor)
        for c, p in want.items():
            row[0 if c == "-" else ALPHABET.index(c) + 1] = p
        rows.append(row / row.sum())
    return np.array(rows)


def bare_reader(country: str = "id") -> RapidOcrReader:
    """A RapidOcrReader without a model, for testing its decision logic."""
    r = RapidOcrReader.__new__(RapidOcrReader)
    r.format = get_format(country)
    r.max_gap, r.min_band, r.smooth, r.view_floor = 6.0, 0.3, False, 10.0
    r.views, r.read_validity = ("line", "top"), True
    return r


def two_line_plate(dark: bool = True) -> np.ndarray:
    fg, bg = ((255, 255, 255), (20, 20, 20)) if dark else ((0, 0, 0), (235, 235, 235))
    img = np.full((190, 600, 3), bg, np.uint8)
    cv2.putText(img, "B 1234 AB", (30, 110), cv2.FONT_HERSHEY_SIMPLEX, 3.2, fg, 9)
    cv2.putText(img, "08.27", (240, 165), cv2.FONT_HERSHEY_SIMPLEX, 1.1, fg, 3)
    return img


# -- decision logic -------------------------------------------------------------------------


def test_decide_repairs_confusions_from_the_grammar() -> None:
    r = bare_reader()
    p = frames("B", "-", "1", "7", "3", "0", "-", "J", "L", "0")  # "B1730JL0": 0 in the suffix
    best = r.decide([p])
    assert best is not None and best.text == "B1730JLO" and best.valid


def test_decide_views_vote() -> None:
    r = bare_reader()
    a = frames("B", "1", "2", "3", {"4": 0.55, "9": 0.45}, "A")
    b = frames("B", "1", "2", "3", {"9": 0.9, "4": 0.1}, "A")
    best = r.decide([a, b, b])
    assert best is not None and best.text == "B1239A"


def test_decide_keeps_invalid_text_when_nothing_valid_fits() -> None:
    r = bare_reader()
    p = frames("9", "8", "4", "0", "V", "U")  # region letters cut off
    best = r.decide([p])
    assert best is not None and best.text == "9840VU" and not best.valid


def test_decide_generic_reads_what_it_sees() -> None:
    r = bare_reader("generic")
    best = r.decide([frames("A", "D", "0", "5", "4", "J", "I")])
    assert best is not None and best.text == "AD054JI"
    assert r.decide([frames("-", "-")]) is None
    assert r.decide([]) is None


def test_choose_prefers_valid_then_confident() -> None:
    C = readers.Candidate
    got = readers.choose([C("XX", 0.99, False, "XX"), C("B1AB", 0.6, True, "B1AB"), C("", 1.0, True, "")])
    assert got is not None and got.text == "B1AB"
    assert readers.choose([]) is None


# -- lines and views ------------------------------------------------------------------------


@pytest.mark.parametrize("dark", [True, False])
def test_find_lines_separates_the_validity_line(dark: bool) -> None:
    img = two_line_plate(dark)
    lines = find_lines(img)
    assert lines.main.top <= 45 and 100 <= lines.main.bottom <= 140
    assert lines.validity is not None and lines.validity.top >= 115 and lines.validity.bottom >= 160
    band = validity_crop(img, lines.validity)
    assert band is not None and band.shape[1] < img.shape[1] * 0.7


def test_find_lines_falls_back_to_the_whole_crop() -> None:
    flat = np.full((40, 120, 3), 128, np.uint8)
    assert find_lines(flat) == PlateLines(Band(0, 40))


def test_deskew_levels_a_rotated_plate() -> None:
    img = two_line_plate()
    m = cv2.getRotationMatrix2D((300, 95), 10, 1.0)
    tilted = cv2.warpAffine(img, m, (600, 190), borderMode=cv2.BORDER_REPLICATE)
    _, angle = deskew(tilted)
    assert -12.5 <= angle <= -7.5
    assert deskew(img)[1] == 0.0


def test_plate_views_are_views_not_copies() -> None:
    img = two_line_plate()
    views = plate_views(img, find_lines(img), ("full", "line", "top"))
    assert [n for n, _ in views] == ["full", "line", "top"]
    assert all(np.shares_memory(v, img) for _, v in views)
    with pytest.raises(ValueError):
        plate_views(img, find_lines(img), ("nope",))


# -- factory --------------------------------------------------------------------------------


def test_load_reader_unknown() -> None:
    with pytest.raises(ModelError):
        load_reader("tesseract")


def test_available_readers_lists_both() -> None:
    got = available_readers()
    assert set(got) == {"rapidocr", "easyocr", "crnn"}
    assert all(isinstance(v, str) for v in got.values())


def test_easyocr_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "easyocr":
            raise ImportError("no easyocr")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "easyocr", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError) as exc:
        load_reader("easyocr")
    assert exc.value.extra == "easyocr" and "etle[easyocr]" in str(exc.value)


def test_default_reader_is_rapidocr() -> None:
    assert readers.DEFAULT_READER == "rapidocr"


# -- real models ----------------------------------------------------------------------------


def _ilpr(shared: Path, n: int) -> list[tuple[np.ndarray, str]]:
    root = shared / "plates" / "indonesia_ilpr_test"
    with open(root / "labels.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:n]
    return [(cv2.imread(str(root / "images" / r["filename"])), r["plate_text"]) for r in rows]


@pytest.mark.slow
@pytest.mark.shared_data
def test_rapidocr_reads_indonesian_crops(shared_data: Path) -> None:
    require_model("ocr-rapidocr-rec")
    reader = load_reader()
    assert reader.name == "rapidocr"
    samples = _ilpr(shared_data, 10)
    reads = [reader.read(img) for img, _ in samples]
    exact = sum(r is not None and r.text == label for r, (_, label) in zip(reads, samples))
    assert exact >= 8, [(r.text if r else None, label) for r, (_, label) in zip(reads, samples)]
    assert sum(r is not None and r.validity is not None for r in reads) >= 3
    r0 = reads[0]
    assert r0 is not None and r0.crop is samples[0][0] and 0 < r0.confidence <= 1


@pytest.mark.slow
@pytest.mark.shared_data
def test_rapidocr_preprocessing_matches_rapidocr(shared_data: Path) -> None:
    """Our ONNX Runtime call of the model gives RapidOCR's own greedy text."""
    path = require_model("ocr-rapidocr-rec")
    from rapidocr import RapidOCR

    from etle.plate import ctc
    from etle.plate.tnkb import normalise

    engine = RapidOCR(params={"Global.use_det": False, "Global.use_cls": False, "Global.log_level": "error", "Rec.model_path": str(path)})
    reader = RapidOcrReader()
    same = 0
    samples = _ilpr(shared_data, 8)
    for img, _ in samples:
        theirs = normalise(engine(img).txts[0])
        ours = ctc.greedy(reader.recogniser([img])[0]).text
        same += theirs == ours
    assert same >= len(samples) - 1


@pytest.mark.slow
@pytest.mark.shared_data
def test_rapidocr_reads_a_generic_plate(shared_data: Path) -> None:
    require_model("ocr-rapidocr-rec")
    img = cv2.imread(str(shared_data / "misc" / "fastalpr_test_image.png"))
    crop = img[179:214, 305:398]  # the plate, as the plate detector finds it
    read = load_reader("rapidocr", country="generic").read(crop)
    assert read is not None and read.text == "5AU5341"


@pytest.mark.slow
@pytest.mark.shared_data
def test_easyocr_loads_offline_and_reads(shared_data: Path) -> None:
    pytest.importorskip("easyocr")
    require_model("ocr-easyocr-rec")
    reader = load_reader("easyocr")
    img, label = _ilpr(shared_data, 1)[0]
    read = reader.read(img)
    assert read is not None and len(read.text) >= 4
    # at least most of the plate: easyocr is the weaker reader
    assert sum(a == b for a, b in zip(read.text, label)) >= 4, (read.text, label)
