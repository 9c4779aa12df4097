"""Invalid plate: grammar, region, CSV registry mismatches; review-only violations."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from etle.errors import ConfigError
from etle.rules.engine import RuleEngine
from etle.rules.invalid_plate import InvalidPlateRule
from etle.rules.plates import CsvPlateRegistry, PlateRecord, normalise_vehicle_type
from etle.types import NO_PLATE, Box, Frame, FrameContext, PlateRead, PlateResult, TrackedObject

IMAGE = np.zeros((240, 400, 3), np.uint8)
START = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)


def white_crop():
    crop = np.full((40, 120, 3), 235, np.uint8)
    crop[14:26, 15:105:10] = 0
    return crop


def result(text: str, conf: float = 0.9, reads: int = 4, crop=None) -> PlateResult:
    best = PlateRead(text, conf, crop=white_crop() if crop is None else crop)
    return PlateResult(text, conf, candidates=(best,) * reads, best=best)


def run(rule, plates, label="car", n=3):
    eng = RuleEngine([rule])
    obj = TrackedObject(1, Box(100, 100, 200, 180), label, 0.9)
    out = []
    for i in range(n):
        out += eng.update(
            FrameContext(Frame("t", i, i / 10, IMAGE, wall_start=START), (obj,), plates=lambda t: plates.get(t, NO_PLATE))
        )
    return out


@pytest.fixture
def registry(tmp_path):
    p = tmp_path / "registry.csv"
    p.write_text(
        "plate,vehicle_type,colour,status\n"
        "B 1234 XY,mobil penumpang,white,active\n"
        "R 5154 WP,sepeda motor,white,active\n"
        "BH 77 AA,car,yellow,\n"
        "D 9 ZZ,car,white,stolen\n",
        encoding="utf-8",
    )
    return CsvPlateRegistry(p)


def test_a_confident_read_failing_the_grammar_is_flagged_for_review():
    out = run(InvalidPlateRule(), {1: result("B12345XY")})
    assert len(out) == 1
    v = out[0]
    assert v.rule == "invalid_plate" and v.details["review_only"] is True
    assert v.details["reasons"] == ["grammar"]


def test_valid_plates_pass():
    assert run(InvalidPlateRule(), {1: result("B1234XY")}) == []


def test_unknown_region_prefix_is_flagged():
    out = run(InvalidPlateRule(), {1: result("QQ1234XY")})
    assert out and out[0].details["reasons"] == ["unknown_region"]
    assert run(InvalidPlateRule(check_region=False), {1: result("QQ1234XY")}) == []


def test_a_plate_the_reads_split_on_is_not_judged_against_the_registry(registry):
    # "R5154VP": confident and read whole, but the V is read so by 2 of 5 reads (W, M, U): a
    # misread for the ticket's reviewer, not an unregistered plate to flag
    texts = ["R5154VP", "R5154VP", "R5154WP", "R5154MP", "R5154UP"]
    reads = tuple(PlateRead(t, 0.9, frame_index=i, crop=white_crop()) for i, t in enumerate(texts))
    split = PlateResult("R5154VP", 0.9, candidates=reads, best=reads[0])
    assert run(InvalidPlateRule(registry=registry, flag_unregistered=True), {1: split}, label="motorcycle") == []
    out = run(InvalidPlateRule(registry=registry, flag_unregistered=True, char_majority=0.0), {1: split}, label="motorcycle")
    assert out and out[0].details["reasons"] == ["unregistered"]


def test_low_confidence_or_few_reads_are_not_judged():
    assert run(InvalidPlateRule(), {1: result("B12345XY", conf=0.5)}) == []
    assert run(InvalidPlateRule(min_reads=3), {1: result("B12345XY", reads=2)}) == []
    assert run(InvalidPlateRule(), {}) == []


def test_registry_vehicle_type_mismatch(registry):
    # a motorcycle's plate on a car
    out = run(InvalidPlateRule(registry=registry), {1: result("R5154WP")}, label="car")
    assert out and out[0].details["reasons"] == ["registry_vehicle_type:motorcycle"]
    assert run(InvalidPlateRule(registry=registry), {1: result("R5154WP")}, label="motorcycle") == []


def test_registry_colour_and_status(registry):
    out = run(InvalidPlateRule(registry=registry), {1: result("BH77AA")})
    assert out and out[0].details["reasons"] == ["registry_colour:yellow"]
    out = run(InvalidPlateRule(registry=registry), {1: result("D9ZZ")})
    assert out and out[0].details["reasons"] == ["registry_status:stolen"]


def test_registered_plate_passes_and_unregistered_only_when_asked(registry):
    assert run(InvalidPlateRule(registry=registry), {1: result("B1234XY")}) == []
    assert run(InvalidPlateRule(registry=registry), {1: result("B4321XY")}) == []
    out = run(InvalidPlateRule(registry=registry, flag_unregistered=True), {1: result("B4321XY")})
    assert out and out[0].details["reasons"] == ["unregistered"]


def test_a_changed_consensus_is_judged_again():
    plates = {1: result("B1234XY")}
    rule = InvalidPlateRule()
    eng = RuleEngine([rule])
    obj = TrackedObject(1, Box(100, 100, 200, 180), "car", 0.9)
    out = []
    for i in range(6):
        if i == 3:
            plates[1] = result("B12345XY")
        out += eng.update(FrameContext(Frame("t", i, i / 10, IMAGE, wall_start=START), (obj,), plates=lambda t: plates.get(t, NO_PLATE)))
    assert len(out) == 1 and out[0].frame_index == 3


def test_registry_csv_parsing(tmp_path, registry):
    assert len(registry) == 4
    assert registry.lookup("b 1234 xy") == PlateRecord("B1234XY", "car", "white", "active")
    assert registry.lookup("BH77AA").status is None
    assert normalise_vehicle_type("Sepeda_Motor") == "motorcycle"
    bad = tmp_path / "bad.csv"
    bad.write_text("number\nB1\n")
    with pytest.raises(ConfigError, match="'plate' column"):
        CsvPlateRegistry(bad)
    bad.write_text("plate,vehicle_type\nB1AB,spaceship\n")
    with pytest.raises(ConfigError, match="bad.csv:2: unknown vehicle_type"):
        CsvPlateRegistry(bad)
    with pytest.raises(ConfigError):
        CsvPlateRegistry(tmp_path / "missing.csv")
