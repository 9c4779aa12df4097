"""Odd-even (ganjil-genap): schedule, parity, exemptions, plates through FrameContext.plates."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etle.rules.engine import RuleEngine
from etle.rules.odd_even import OddEvenRule, Schedule
from etle.rules.plates import plate_colour
from etle.types import NO_PLATE, Box, Frame, FrameContext, PlateRead, PlateResult, TrackedObject

JKT = ZoneInfo("Asia/Jakarta")
IMAGE = np.zeros((240, 400, 3), np.uint8)
# Tuesday 2025-03-04 (even date), 07:30 Jakarta time
TUE_EVEN = datetime(2025, 3, 4, 7, 30, tzinfo=JKT)


def plate_crop(bg, fg=(0, 0, 0)) -> np.ndarray:
    crop = np.zeros((40, 120, 3), np.uint8)
    crop[:] = bg
    crop[14:26, 15:105:10] = fg  # strokes of text
    return crop


WHITE, BLACK, YELLOW, RED = (235, 235, 235), (20, 20, 20), (0, 210, 240), (30, 30, 220)


def result(text: str, conf: float = 0.9, crop=None) -> PlateResult:
    crop = plate_crop(WHITE) if crop is None else crop
    best = PlateRead(text, conf, crop=crop)
    return PlateResult(text, conf, candidates=(best,) * 3, best=best)


def schedule(**kw) -> Schedule:
    kw.setdefault("hours", ("06:00-10:00", "16:00-21:00"))
    return Schedule.build(tz=JKT, **kw)


def run(rule, plates: dict[int, PlateResult] | None, *, when=TUE_EVEN, label="car", n=5, box=None):
    eng = RuleEngine([rule])
    obj = TrackedObject(1, box or Box(100, 100, 200, 180), label, 0.9)
    lookup = None if plates is None else (lambda tid: plates.get(tid, NO_PLATE))
    out = []
    for i in range(n):
        frame = Frame("t", i, i / 10, IMAGE, wall_start=when.astimezone(timezone.utc))
        out += eng.update(FrameContext(frame, (obj,), plates=lookup))
    return out


def test_schedule_windows_weekdays_holidays():
    s = schedule(holidays=(date(2025, 3, 31),))
    assert s.active(TUE_EVEN)
    assert not s.active(TUE_EVEN.replace(hour=10, minute=0))  # the window ends at 10:00
    assert s.active(TUE_EVEN.replace(hour=9, minute=59))
    assert not s.active(TUE_EVEN.replace(hour=12))
    assert s.active(TUE_EVEN.replace(hour=20))
    assert not s.active(datetime(2025, 3, 8, 7, 30, tzinfo=JKT))  # Saturday
    assert not s.active(datetime(2025, 3, 31, 7, 30, tzinfo=JKT))  # holiday (Monday)
    # timezone: 00:30 UTC is 07:30 in Jakarta
    assert s.active(datetime(2025, 3, 4, 0, 30, tzinfo=timezone.utc))
    assert Schedule.build(("22:00-24:00",), tz=JKT).active(TUE_EVEN.replace(hour=23, minute=59))


def test_odd_plate_on_an_even_date_fires():
    out = run(OddEvenRule(schedule()), {1: result("B1237XY")})
    assert len(out) == 1
    v = out[0]
    assert v.rule == "odd_even" and v.details["plate"] == "B1237XY"
    assert v.details["date_parity"] == "even" and v.details["plate_parity"] == "odd"
    assert v.details["plate_colour"] == "white"


def test_the_parity_waits_for_reads_that_agree_on_every_character():
    reads = tuple(PlateRead(t, 0.9, frame_index=i, crop=plate_crop(WHITE)) for i, t in enumerate(["B1237XY", "B1237XY", "B1234XY", "B1238XY"]))
    split = PlateResult("B1237XY", 0.9, candidates=reads, best=reads[0])
    # confident, valid, but the last digit is 7 in only 2 of 4 reads: no judgement (an even plate
    # read odd would be a wrong ticket) ...
    assert run(OddEvenRule(schedule()), {1: split}) == []
    # ... until the reads agree there; or with the check switched off
    agreed = PlateResult("B1237XY", 0.9, candidates=reads + (reads[0],), best=reads[0])
    assert len(run(OddEvenRule(schedule()), {1: agreed})) == 1
    assert len(run(OddEvenRule(schedule(), char_majority=0.0), {1: split})) == 1


def test_even_plate_on_an_even_date_passes():
    assert run(OddEvenRule(schedule()), {1: result("B1234XY")}) == []


def test_parity_follows_the_date():
    wed_odd = TUE_EVEN + timedelta(days=1)
    assert run(OddEvenRule(schedule()), {1: result("B1234XY")}, when=wed_odd) != []
    assert run(OddEvenRule(schedule()), {1: result("B1237XY")}, when=wed_odd) == []


def test_outside_hours_weekends_and_holidays_pass():
    assert run(OddEvenRule(schedule()), {1: result("B1237XY")}, when=TUE_EVEN.replace(hour=12)) == []
    sat = datetime(2025, 3, 8, 7, 30, tzinfo=JKT)
    assert run(OddEvenRule(schedule()), {1: result("B1237XY")}, when=sat) == []
    hol = OddEvenRule(schedule(holidays=(date(2025, 3, 4),)))
    assert run(hol, {1: result("B1237XY")}) == []


@pytest.mark.parametrize("label", ["motorcycle", "bus"])
def test_exempt_classes_pass(label):
    assert run(OddEvenRule(schedule()), {1: result("B1237XY")}, label=label) == []


@pytest.mark.parametrize("bg", [YELLOW, RED])
def test_yellow_and_red_plates_are_exempt(bg):
    fg = (255, 255, 255) if bg == RED else (0, 0, 0)
    assert run(OddEvenRule(schedule()), {1: result("B1237XY", crop=plate_crop(bg, fg))}) == []


def test_black_plates_are_private_and_judged():
    out = run(OddEvenRule(schedule()), {1: result("B1237XY", crop=plate_crop(BLACK, (255, 255, 255)))})
    assert len(out) == 1 and out[0].details["plate_colour"] == "black"


def test_listed_plates_are_exempt():
    assert run(OddEvenRule(schedule(), exempt_plates=("b 1237 xy",)), {1: result("B1237XY")}) == []


def test_waits_for_a_confident_valid_plate():
    plates = {1: result("B1237XY", conf=0.3)}
    rule = OddEvenRule(schedule(), min_plate_confidence=0.7)
    assert run(rule, plates) == []
    plates[1] = result("B1237XY", conf=0.9)  # the consensus settles later
    assert len(run(rule, plates)) == 1


def test_invalid_plate_text_is_not_judged():
    assert run(OddEvenRule(schedule()), {1: result("XXXX")}) == []


def test_no_plate_reader_means_no_judgement():
    assert run(OddEvenRule(schedule()), None) == []
    assert run(OddEvenRule(schedule()), {}) == []


def test_zone_limits_where_vehicles_are_judged():
    zone = ((0, 0), (50, 0), (50, 50), (0, 50))
    assert run(OddEvenRule(schedule(), zone=zone), {1: result("B1237XY")}) == []
    assert len(run(OddEvenRule(schedule(), zone=zone), {1: result("B1237XY")}, box=Box(10, 10, 30, 40))) == 1


def test_plate_colour_categories():
    assert plate_colour(plate_crop(WHITE)) == "white"
    assert plate_colour(plate_crop(BLACK, (255, 255, 255))) == "black"
    assert plate_colour(plate_crop(YELLOW)) == "yellow"
    assert plate_colour(plate_crop(RED, (255, 255, 255))) == "red"
    assert plate_colour(plate_crop((40, 160, 40), (255, 255, 255))) == "green"
    assert plate_colour(plate_crop((128, 128, 128))) is None  # mid grey: no category
    assert plate_colour(None) is None


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 28), st.integers(0, 9999), st.sampled_from(["B", "BH", "D"]))
def test_property_fires_exactly_on_parity_mismatch(day, number, prefix):
    when = datetime(2025, 2, day, 8, 0, tzinfo=JKT)
    plate = f"{prefix}{number}AB"
    fired = run(OddEvenRule(schedule(weekdays=("mon", "tue", "wed", "thu", "fri", "sat", "sun"))), {1: result(plate)}, when=when)
    assert bool(fired) == ((number % 10) % 2 != day % 2)
