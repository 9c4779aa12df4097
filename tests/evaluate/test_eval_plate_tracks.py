"""``etle eval plate-tracks``: simulated tracks of real plate crops, the consensus and the ticket's gates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.plate.consensus import REVIEW_CHAR_CONFIDENCE
from etle.evaluate.plate_tracks import GATES, TrackRow, ViewSpec, degrade, evaluate_tracks, gate, summarise_tracks
from etle.types import PlateRead, PlateResult

# Floors on the Indonesian crops (92), 8 views a plate, with every gate of the ticket: measured 68
# exact, 12 unread, 12 wrong (scripts/accuracy.sh -> eval/results/plate-tracks-ilpr.json).  The
# character-majority gate, and its length share, were adopted on the Argentine crops
# (plate-tracks-ar.json: the length share changed none of their 147 plates), not these.
MIN_EXACT_ILPR = 66
MAX_WRONG_ILPR = 13
# The review mark (REVIEW_CHAR_CONFIDENCE, chosen on the Argentine crops) on the same run: measured
# 8 of the 12 wrong plates printed marked, 12 of the 68 exact ones.
MIN_MARKED_WRONG_ILPR = 6
MAX_MARKED_EXACT_SHARE = 0.2


def _plate(seed: int = 0) -> np.ndarray:
    img = np.full((60, 190, 3), 235, np.uint8)
    cv2.putText(img, "B 1234 AB", (6, 42), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 3)
    return img


def test_a_view_is_smaller_degraded_and_repeatable() -> None:
    crop = _plate()
    before = crop.copy()
    spec = ViewSpec(min_height=20, max_height=30)
    a = [degrade(crop, np.random.default_rng(5), spec) for _ in range(2)]
    assert np.array_equal(a[0], a[1])  # the same seed gives the same view
    assert np.array_equal(crop, before)  # the crop is not modified
    views = [degrade(crop, np.random.default_rng(s), spec) for s in range(12)]
    assert all(20 <= v.shape[0] <= 30 and v.dtype == np.uint8 and v.ndim == 3 for v in views)
    assert len({v.shape[0] for v in views}) > 1 and not all(np.array_equal(views[0], v) for v in views[1:])
    # the text stays in the view: dark pixels at the plate's middle rows
    assert all(v[v.shape[0] // 4 : 3 * v.shape[0] // 4].min() < 120 for v in views)


class ScriptedReader:
    """Reads, in call order, the scripted texts: the plates are read by file name, each view in turn.
    A text may come with its per-character probabilities: ``(text, (p1, p2, ...))``."""

    def __init__(self, scripts: dict[str, list]) -> None:
        self.texts = [t for name in sorted(scripts) for t in scripts[name]]

    def read(self, crop: np.ndarray) -> PlateRead | None:
        item = self.texts.pop(0)
        text, conf = item if isinstance(item, tuple) else (item, ())
        return PlateRead(text, 0.8, raw=text, char_conf=conf) if text else None


def _crops(root: Path, values: dict[str, int]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, v in values.items():
        cv2.imwrite(str(root / name), np.full((60, 190, 3), v, np.uint8))


def test_each_gate_prints_exact_unread_or_wrong(tmp_path: Path) -> None:
    _crops(tmp_path, {"a.png": 40, "b.png": 130, "c.png": 220})
    labels = {"a.png": "B1234AB", "b.png": "R5154WP", "c.png": "D55AB"}
    reader = ScriptedReader({
        "a.png": ["B1234AB"] * 4,  # read alike every time: printed by every gate
        # read whole twice as VP, but the reads split at that letter: the majority gate holds it back
        "b.png": ["R5154VP", "R5154VP", "R5154WP", "R5154MP"],
        "c.png": ["D55AB", "", "", ""],  # one read: no agreement from two frames
    })
    rows = evaluate_tracks(reader, tmp_path, labels, spec=ViewSpec(views=4), min_confidence=0.1, min_agreement=2, char_majority=0.5)
    assert not reader.texts  # every view of every plate was read
    by = {r.filename: r for r in rows}
    assert by["a.png"].printed == {"confidence": "B1234AB", "agreement": "B1234AB", "majority": "B1234AB"}
    assert by["b.png"].consensus == "R5154VP"
    assert by["b.png"].printed == {"confidence": "R5154VP", "agreement": "R5154VP", "majority": ""}
    assert by["c.png"].printed == {"confidence": "D55AB", "agreement": "", "majority": ""}
    assert by["c.png"].reads == ("D55AB", "", "", "")
    s = summarise_tracks(rows)
    got = {g["gate"]: (g["exact"], g["unread"], g["wrong"]) for g in s["gates"]}
    assert got == {"confidence": (2, 0, 1), "agreement": (1, 1, 1), "majority": (1, 2, 0)}
    assert [g["gate"] for g in s["gates"]] == list(GATES)
    assert s["gates"][0]["printed_precision"] == pytest.approx(2 / 3) and s["consensus_exact"] == 2


def test_printed_plates_with_an_unsure_character_are_counted_as_marked(tmp_path: Path) -> None:
    _crops(tmp_path, {"a.png": 40, "b.png": 130, "c.png": 220})
    labels = {"a.png": "B1234AB", "b.png": "L1438EO", "c.png": "D55AB"}
    sure, unsure_last = (0.99,) * 7, (0.99,) * 6 + (0.05,)
    reader = ScriptedReader({
        "a.png": [("B1234AB", sure)] * 3,  # right and sure: printed, not marked
        "b.png": [("L1438EB", unsure_last)] * 3,  # every read agrees on B, each at 5 %: printed wrong, marked
        "c.png": ["D55AB"] * 3,  # a reader without per-character probabilities: nothing to mark by
    })
    rows = evaluate_tracks(reader, tmp_path, labels, spec=ViewSpec(views=3), min_confidence=0.1, min_agreement=2, char_majority=0.5)
    by = {r.filename: r for r in rows}
    assert by["b.png"].printed["majority"] == "L1438EB" and by["b.png"].marked["majority"]
    assert not by["a.png"].marked["majority"] and not by["c.png"].marked["majority"]
    last = summarise_tracks(rows)["gates"][-1]
    assert (last["exact"], last["wrong"], last["marked_exact"], last["marked_wrong"]) == (2, 1, 0, 1)


def test_gate_names_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown gate"):
        gate(PlateResult("B1AB", 0.9), "strict", min_confidence=0.3, min_agreement=2, char_majority=0.5)


def test_summary_of_no_rows() -> None:
    s = summarise_tracks([])
    assert s["n"] == 0 and all(g["exact_rate"] is None and g["printed_precision"] is None for g in s["gates"])
    row = TrackRow("x.png", "B1AB", "B1AB", 0.9, ("B1AB",), {g: "" for g in GATES})
    assert summarise_tracks([row])["gates"][0]["unread"] == 1


def test_the_command_with_a_scripted_reader(tmp_path: Path, capsys, monkeypatch) -> None:
    from etle.cli import main
    from etle.plate import readers

    data = tmp_path / "crops"
    _crops(data / "images", {"a.png": 40, "b.png": 220})
    (data / "labels.csv").write_text("filename,plate_text\na.png,B1234AB\nb.png,D55AB\n")
    (data / "crosscheck.csv").write_text("filename,agreement\na.png,all_agree\nb.png,DISPUTED\n")
    script = {"a.png": ["B1234AB"] * 3, "b.png": ["D56AB"] * 3}
    monkeypatch.setitem(readers._READERS, "scripted", lambda country="id", **kw: ScriptedReader(script))
    out_json = tmp_path / "pt.json"
    monkeypatch.setattr(sys, "argv", ["etle", "eval", "plate-tracks", str(data), "--labels", str(data / "labels.csv"),
                                      "--reader", "scripted", "--views", "3", "--crosscheck", str(data / "crosscheck.csv"),
                                      "--errors", "--no-progress", "--json", str(out_json)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert int(exc.value.code or 0) == 0
    assert "all: with every gate (the ticket's), 1/2 exact, 0 unread, 1 wrong" in out
    assert "all_agree: with every gate (the ticket's), 1/1 exact" in out
    assert "b.png: label D55AB, majority printed D56AB" in out
    data_out = json.loads(out_json.read_text())
    assert data_out["kind"] == "plate_tracks" and data_out["views"]["views"] == 3
    assert data_out["gates"] == {"min_plate_confidence": 0.3, "min_plate_agreement": 2, "plate_char_majority": 0.5,
                                 "review_char_confidence": REVIEW_CHAR_CONFIDENCE}
    assert [s["subset"] for s in data_out["summaries"]] == ["all", "all_agree"]
    assert data_out["wrong"] == [{"filename": "b.png", "label": "D55AB", "printed": "D56AB", "reads": ["D56AB"] * 3}]


def test_bad_input_is_a_one_line_error(tmp_path: Path, capsys, monkeypatch) -> None:
    from etle.cli import main

    (tmp_path / "labels.csv").write_text("filename,plate_text\nnone.png,B1AB\n")
    monkeypatch.setattr(sys, "argv", ["etle", "eval", "plate-tracks", str(tmp_path), "--labels", str(tmp_path / "labels.csv")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code != 0 and "none of the 1 labelled crops" in err and "Traceback" not in err


@pytest.mark.slow
def test_plates_a_ticket_prints_on_indonesian_crops(shared_data: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from conftest import require_model

    from etle.cli import main

    require_model("ocr-rapidocr-rec")
    data = shared_data / "plates" / "indonesia_ilpr_test"
    out_json = tmp_path / "pt.json"
    monkeypatch.setattr(sys, "argv", ["etle", "eval", "plate-tracks", str(data / "images"), "--labels", str(data / "labels.csv"),
                                      "--reader", "rapidocr+crnn", "--no-progress", "--json", str(out_json)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    assert int(exc.value.code or 0) == 0, capsys.readouterr().err
    s = json.loads(out_json.read_text())["summaries"][0]
    ticket = s["gates"][-1]
    assert s["n"] == 92
    assert ticket["exact"] >= MIN_EXACT_ILPR and ticket["wrong"] <= MAX_WRONG_ILPR
    # every gate holds back some wrong plates the one before it printed, on these real crops
    wrong = [g["wrong"] for g in s["gates"]]
    assert wrong[0] > wrong[1] > wrong[2]
    # the review page's mark (a character the recogniser was unsure of) falls on the wrong plates
    # printed far more often than on the exact ones: measured 8 of 12 wrong, 12 of 68 exact
    assert ticket["marked_wrong"] >= MIN_MARKED_WRONG_ILPR
    assert ticket["marked_exact"] <= MAX_MARKED_EXACT_SHARE * ticket["exact"]
