"""``etle eval report``: docs/accuracy.md from eval JSON files (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etle.errors import ConfigError
from etle.evaluate.report import render, write_report

VIOLATIONS = {
    "kind": "violations", "truth": "eval/truth/x.yaml", "profile": "fast",
    "options": {"detector": "vehicle-detector-int8", "detect_fps": 6.0},
    "rules": {"red_light": {"tp": 3, "fp": 1, "fn": 2, "ignored": 0, "precision": 0.75, "recall": 0.6,
                            "plates_labelled": 2, "plates_exact": 1, "plates_unread": 1, "plates_wrong": 0}},
    "total": {"tp": 3, "fp": 1, "fn": 2, "plates_labelled": 2, "plates_exact": 1, "plates_unread": 1, "plates_wrong": 0},
    "clips": [{"clip": "a", "frames": 300, "fps": 41.5, "outcomes": [
        {"kind": "tp", "rule": "red_light", "plate_status": "exact",
         "ticket": {"track_id": 4, "pts": 2.5, "plate": "B1234CD"},
         "event": {"t": [2.0, 3.0], "plate": "B1234CD", "uncertain": False, "note": "white car"}}]}],
}
HELMET = {"kind": "helmet", "threshold": 0.6, "sets": [
    {"set": "r/test", "mode": "run", "n_heads": 152, "n_no_helmet": 73, "found": 127, "tp": 60, "fp": 2, "fn": 13,
     "precision": 0.9677, "recall": 0.8219}]}
PLATES = {"images": "/d/plates/ilpr/images", "mode": "crops", "country": "id", "readers": [
    {"reader": "rapidocr+crnn", "status": "ok", "summaries": [
        {"subset": "all", "n": 92, "exact": 84, "accuracy": 0.913, "char_accuracy": 0.97, "median_ms": 14.1, "unread": 0}]}]}

LAMPS = {"kind": "lamps", "data": "lamp crops", "crops": 10, "right": 7, "wrong": 1, "unknown": 2, "accuracy": 0.7,
         "red_precision": 1.0, "red_recall": 0.8,
         "options": {"min_fraction": 0.002, "min_margin": 2.0, "min_saturation": 25, "min_value": 160},
         "states": [{"state": "red", "crops": 5, "right": 4, "wrong": 0, "unknown": 1, "accuracy": 0.8}]}


def test_the_page_holds_the_figures_of_the_files() -> None:
    page = render({"v.json": VIOLATIONS, "h.json": HELMET, "p.json": PLATES, "l.json": LAMPS, "other.json": {"x": 1}})
    assert "**7 of 10 right, 1 wrong colour, 2 unknown**; red read with precision 1.000 and recall 0.800" in page
    assert "### Tickets, fast profile (`vehicle-detector-int8`, 6 detections/s)\n" in page
    novnni = render({"v.json": {**VIOLATIONS, "machine": {"model": "AMD EPYC", "cores": 2, "vnni": False}}})
    assert "### Tickets, fast profile (`vehicle-detector-int8`, 6 detections/s) on a CPU without VNNI" in novnni
    resized = render({"v.json": {**VIOLATIONS, "scale": 2.0}})
    assert "### Tickets, fast profile (`vehicle-detector-int8`, 6 detections/s), clips resized x2\n" in resized
    assert "`--scale 2`" in resized and "`--scale" not in page
    assert "| red | 5 | 4 | 0 | 1 | 0.800 |" in page and "min_fraction 0.002" in page
    assert "| red_light | 3 | 1 | 2 | 0 | 0.75 | 0.60 | 1/2 exact, 1 ?, 0 wrong |" in page
    assert "| a | red_light | tp | track 4 at 2.50 s | 2-3 s | B1234CD (truth B1234CD: exact) | white car |" in page
    assert "| r/test | run | 152 | 73 | 127 | 60 | 2 | 13 | 0.968 | 0.822 |" in page
    assert "84 (91.3 %)" in page and "ilpr" in page
    assert "`other.json`" in page  # not understood: listed, not dropped silently
    assert "do not edit by hand" in page


def test_write_report_reads_a_folder(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "v.json").write_text(json.dumps(VIOLATIONS))
    out = tmp_path / "docs" / "accuracy.md"
    assert write_report(tmp_path / "r", out) == 1
    assert out.read_text().startswith("# Accuracy")
    (tmp_path / "r" / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="bad.json"):
        write_report(tmp_path / "r", out)
    with pytest.raises(ConfigError, match="not a folder"):
        write_report(tmp_path / "nowhere", out)


def test_the_committed_accuracy_page_is_the_report_of_the_committed_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/accuracy.md is generated: regenerating it from eval/results gives the same page."""
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)  # the reports name their truth files relative to the repository
    results = {f.name: json.loads(f.read_text(encoding="utf-8")) for f in sorted((repo / "eval" / "results").glob("*.json"))}
    assert {"violations-fast.json", "violations-default.json", "helmet.json", "plates-ilpr.json"} <= set(results)
    assert render(results) == (repo / "docs" / "accuracy.md").read_text(encoding="utf-8"), \
        "docs/accuracy.md is stale: run scripts/accuracy.sh (or etle eval report eval/results)"


def test_privacy_figures_are_rendered_and_the_scale_file_is_left_to_its_page() -> None:
    privacy = {"kind": "privacy", "truth": "eval/truth/faces.yaml", "faces": 5, "recall_detector": 0.4,
               "recall_with_heads": 0.8, "found_by_detector": 2, "found_with_heads": 4, "found_after_blur": 1,
               "frames": [{"clip": "c", "at": 2.0, "faces": 5, "by_detector": 2, "with_heads": 4, "after_blur": 1}],
               "heads_set": {"folder": "heads/test", "label": "Without Helmet", "heads": 10, "found": 7,
                             "recall": 0.7, "images": 9}}
    page = render({"privacy.json": privacy, "scale.json": {"kind": "scale", "results": []}})
    assert "## Faces hidden by the privacy blur" in page
    assert "| c | 2.0 | 5 | 2 | 4 | 1 |" in page
    assert "| **all** |  | 5 | 2 (40.0 %) | 4 (80.0 %) | 1 |" in page
    assert "finds 7 of 10 (70.0 %)" in page
    assert "not understood" not in page


def test_the_page_names_the_cpu_of_each_file_and_the_int8_check() -> None:
    vnni = {"model": "Xeon Test", "cores": 2, "vnni": True}
    older = {"model": "EPYC Test", "cores": 2, "vnni": False}
    check = {"kind": "int8_cpu_check", "native": "Xeon Test", "emulated": "Haswell", "models": {
        "vehicle-detector-int8": {"weights": "8-bit", "score_max_diff": 0.21, "boxes_over_0.25": [6, 5],
                                  "box_max_diff_px_where_scored": 1.65},
        "ocr-rapidocr-rec-int8": {"weights": "7-bit", "prob_max_diff": 0.0, "steps_with_another_character": 0.0}}}
    page = render({"v.json": {**VIOLATIONS, "machine": vnni}, "p.json": {**PLATES, "machine": older},
                   "h.json": HELMET, "int8_cpu.json": check})
    assert "Xeon Test, 2 core(s), VNNI (`v.json`)" in page and "EPYC Test, 2 core(s), no VNNI (`p.json`)" in page
    assert "a machine the file does not name (`h.json`)" in page
    assert "| vehicle-detector-int8 | 8-bit | 0.210 | boxes over 0.25: 6 native, 5 emulated; box corners up to 1.6 px |" in page
    assert "| ocr-rapidocr-rec-int8 | 7-bit | 0.000 | 0.0 % of the characters per step |" in page
    assert "Files not understood" not in page


def test_eval_json_records_the_machine(tmp_path: Path) -> None:
    from etle.commands.eval_cmds import _write_json
    from etle.onnxrt import cpu

    _write_json(tmp_path / "r.json", {"kind": "helmet", "sets": []})
    assert json.loads((tmp_path / "r.json").read_text())["machine"] == cpu()


def test_plate_track_figures_are_rendered() -> None:
    from etle.evaluate.plate_tracks import GATES, TrackRow, summarise_tracks

    rows = [TrackRow("a.png", "B1AB", "B1AB", 0.9, (), {g: "B1AB" for g in GATES}),
            TrackRow("b.png", "B2AB", "B3AB", 0.5, (), {"confidence": "B3AB", "agreement": "B3AB", "majority": ""})]
    tracks = {"kind": "plate_tracks", "images": "/d/plates/ilpr/images", "reader": "rapidocr+crnn", "country": "id", "seed": 0,
              "views": {"views": 8, "min_height": 20, "max_height": 56, "max_tilt_deg": 6.0},
              "gates": {"min_plate_confidence": 0.3, "min_plate_agreement": 2, "plate_char_majority": 0.5},
              "summaries": [summarise_tracks(rows)]}
    page = render({"plate-tracks.json": tracks})
    assert "## The plate a ticket prints (`etle eval plate-tracks`)" in page
    assert "### Tickets' plates: ilpr (`rapidocr+crnn`, `--country id`)" in page
    assert "8 views a plate, 20-56 px high" in page and "more than 0.5 of the reads" in page
    assert "| all | agreement | 2 | 1 (50.0 %) | 0 | 1 (50.0 %) | 50.0 % |" in page
    assert "| all | majority | 2 | 1 (50.0 %) | 1 | 0 (0.0 %) | 100.0 % |" in page
    assert "not understood" not in page
