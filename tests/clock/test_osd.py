"""The clock a camera burns into its picture (OSD): parsing its text, turning readings into a
recording's start, and reading it off real frames with the PP-OCR models of the rapidocr wheel."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from etle.clock.osd import OsdRead, clock_of_file, clock_start, parse_osd

from conftest import REPO, require_model
from fixtures.cli import assert_clean_failure, etle
from fixtures.raw_video import with_clock

WIB = ZoneInfo("Asia/Jakarta")
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
TRUE_START = datetime(2025, 3, 4, 7, 12, 33, 400000)  # what the synthetic clip's clock began at


@pytest.mark.parametrize("text, want", [
    ("2019-02-13 11:59:54 Wed", datetime(2019, 2, 13, 11, 59, 54)),
    ("2019-02-1311:59:54Wed", datetime(2019, 2, 13, 11, 59, 54)),  # OCR ran date and time together
    ("2019/02/13 11:59:54", datetime(2019, 2, 13, 11, 59, 54)),
    ("2019.02.13 11.59.54", datetime(2019, 2, 13, 11, 59, 54)),
    ("13-02-2019 11:59:54", datetime(2019, 2, 13, 11, 59, 54)),  # the day > 12: no doubt
    ("Rabu, 13-02-2019 23:59:59", datetime(2019, 2, 13, 23, 59, 59)),
    ("13 Feb 2019 11:59:54", datetime(2019, 2, 13, 11, 59, 54)),
    ("13 Agu 2019 11:59:54", datetime(2019, 8, 13, 11, 59, 54)),
    ("Feb 13, 2019 01:59:54 PM", datetime(2019, 2, 13, 13, 59, 54)),
    ("2O19-O2-13 1l:59:S4", datetime(2019, 2, 13, 11, 59, 54)),  # letters read for digits
    ("2019-02-13 11:59 59 Wed", datetime(2019, 2, 13, 11, 59, 59)),  # a colon read as a space
    ("03-04-2025 07:01:02 Kamis", datetime(2025, 4, 3, 7, 1, 2)),  # Thursday settles day-month
    ("03-04-2025 07:01:02 Tue", datetime(2025, 3, 4, 7, 1, 2)),  # Tuesday settles month-day
])
def test_osd_texts_parse(text: str, want: datetime) -> None:
    assert parse_osd(text) == [want]


@pytest.mark.parametrize("text", [
    "CAM 01 SIMPANG", "2019-02-13", "11:59:54", "2019-02-30 10:00:00", "2019-02-13 25:00:00",
    "2019-02-13 11 59 59",  # numbers apart by spaces alone: not a time
    "2019-02-13 11:59:54 Mon",  # the weekday contradicts the date: a misread somewhere
    "13-02-19 11:59:54",  # a two-digit year: 2019-02-13 or 2013-02-19? only with a declared order
])
def test_texts_without_a_whole_certain_date_time(text: str) -> None:
    assert parse_osd(text) == []


def test_an_ambiguous_date_needs_its_order() -> None:
    assert parse_osd("03-04-2025 07:01:02") == [datetime(2025, 4, 3, 7, 1, 2), datetime(2025, 3, 4, 7, 1, 2)]
    assert parse_osd("03-04-2025 07:01:02", "dmy") == [datetime(2025, 4, 3, 7, 1, 2)]
    assert parse_osd("03-04-2025 07:01:02", "mdy") == [datetime(2025, 3, 4, 7, 1, 2)]
    assert parse_osd("13-02-19 11:59:54", "dmy") == [datetime(2019, 2, 13, 11, 59, 54)]


def _reads(start: datetime, times: list[float], fps: float = 25.0) -> list[OsdRead]:
    """What a clock started at ``start`` shows at each of ``times`` (whole seconds)."""
    out = []
    for t in times:
        shown = start + timedelta(seconds=t)
        out.append(OsdRead(t, "", shown - timedelta(microseconds=shown.microsecond), 0.99, (0, 0, 1, 1)))
    return out


def test_readings_at_different_phases_narrow_the_start() -> None:
    start = datetime(2025, 3, 4, 7, 12, 33, 400000)
    fix = clock_start(_reads(start, [0.0, 1.37, 2.74, 4.11, 5.48, 6.85, 8.22]), WIB)
    assert fix is not None
    assert abs((fix.start.replace(tzinfo=None) - start).total_seconds()) <= fix.uncertainty_s + 1e-6
    assert fix.uncertainty_s < 0.2 and fix.start.tzinfo == WIB and not fix.others  # one reading alone: 0.5


def test_a_misread_is_outvoted_and_a_jump_is_told() -> None:
    start = datetime(2025, 3, 4, 7, 12, 33, 400000)
    reads = _reads(start, [0.0, 1.37, 2.74, 4.11, 5.48])
    misread = OsdRead(6.85, "", datetime(2025, 3, 4, 7, 12, 48), 0.9, (0, 0, 1, 1))  # 40 read for 40's neighbour
    fix = clock_start(reads + [misread], WIB)
    assert fix is not None and fix.others == (misread,) and not fix.jumps
    later = _reads(start + timedelta(seconds=17), [8.22, 9.59, 10.96])  # a cut in edited footage
    fix = clock_start(reads + later, WIB)
    assert fix is not None and len(fix.readings) == 5 and fix.jumps
    assert abs((fix.start.replace(tzinfo=None) - start).total_seconds()) < 0.5


def test_too_few_or_split_readings_date_nothing() -> None:
    start = datetime(2025, 3, 4, 7, 12, 33)
    assert clock_start(_reads(start, [0.0, 1.37]), WIB) is None
    split = _reads(start, [0.0, 1.37, 2.74]) + _reads(start + timedelta(hours=1), [4.11, 5.48, 6.85])
    assert clock_start(split, WIB) is None


@pytest.fixture(scope="module")
def clock_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample clip with a day-month-year clock burned in, top right, 20 s of it."""
    path = tmp_path_factory.mktemp("clock") / "clock.mp4"
    return with_clock(SAMPLE, path, TRUE_START, fmt="%d-%m-%Y %H:%M:%S", seconds=20.0)


def test_the_clock_is_read_off_the_picture(clock_clip: Path) -> None:
    require_model("ocr-rapidocr-det")
    result = clock_of_file(str(clock_clip), WIB, date_order="dmy")
    assert result.fix is not None and len(result.fix.readings) >= 10
    error = abs((result.fix.start.replace(tzinfo=None) - TRUE_START).total_seconds())
    assert error <= max(result.fix.uncertainty_s, 0.1) + 0.05


def test_an_ambiguous_picture_date_is_not_guessed(clock_clip: Path) -> None:
    require_model("ocr-rapidocr-det")
    result = clock_of_file(str(clock_clip), WIB, count=4)
    assert result.fix is None and result.reads == ()
    note = result.note("clock.mp4")
    assert note is not None and "clock.date_order" in note and "04-03-2025" in note


def test_footage_without_a_clock_dates_nothing() -> None:
    require_model("ocr-rapidocr-det")
    result = clock_of_file(str(SAMPLE), WIB)
    assert result.fix is None and result.reads == () and result.note("x") is None


def test_camera_clock_command(clock_clip: Path) -> None:
    require_model("ocr-rapidocr-det")
    res = etle("camera", "clock", str(clock_clip), "--date-order", "dmy", "--samples", "6", timeout=180)
    assert res.returncode == 0, res.stderr
    assert "recorded from 2025-03-04 07:12:33" in res.stdout and "WIB" in res.stdout
    res = etle("camera", "clock", str(clock_clip), "--samples", "3", timeout=180)
    assert_clean_failure(res, "clock.date_order")


def test_a_batch_clip_is_dated_by_its_clock(clock_clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_model("ocr-rapidocr-det")
    from etle.batch.jobs import plan_batch

    cam = tmp_path / "cam.yaml"
    cam.write_text("id: clock-cam\ntimezone: Asia/Jakarta\nclock: {date_order: dmy}\n")
    with caplog.at_level(logging.WARNING):
        jobs, failures = plan_batch([str(clock_clip)], camera=cam)
    assert failures == []
    (job,) = jobs
    assert job.wall_start is not None and job.wall_start_origin == "the clock in the picture (OSD)"
    assert abs((job.wall_start.astimezone(WIB).replace(tzinfo=None) - TRUE_START).total_seconds()) < 0.3
    assert "by the clock in the picture" in caplog.text


def test_the_camera_file_declares_the_date_order(tmp_path: Path) -> None:
    from etle.camera.config import load_camera
    from etle.errors import ConfigError

    cam = tmp_path / "cam.yaml"
    cam.write_text("id: c\nclock: {date_order: dmy}\n")
    assert load_camera(cam).clock.date_order == "dmy" and load_camera(cam).clock.read
    cam.write_text("id: c\nclock: {date_order: ddmmyy}\n")
    with pytest.raises(ConfigError, match="clock.date_order"):
        load_camera(cam)


class _Shows:
    """A reader whose picture shows ``time`` (no OCR)."""

    def __init__(self, time: datetime | None) -> None:
        self.time = time

    def read(self, frame):  # type: ignore[no-untyped-def]
        return None if self.time is None else OsdRead(frame.pts, "", self.time, 0.99, (0, 0, 1, 1))


@pytest.mark.parametrize("shown, differs", [
    (datetime(2025, 3, 4, 7, 12, 38), None),  # the whole second of 07:12:38.9
    (datetime(2025, 3, 4, 7, 12, 37), None),  # a frame late
    (datetime(2025, 3, 4, 7, 12, 50), 11),
    (datetime(2025, 3, 4, 8, 12, 38), 3599),  # an hour out: the box or the camera clock is wrong
])
def test_the_clock_at_a_tickets_frame(shown: datetime, differs: int | None) -> None:
    import numpy as np

    from etle.clock.osd import clock_at_frame
    from etle.types import Frame

    start = datetime(2025, 3, 4, 7, 12, 33, 400000, tzinfo=WIB)
    frame = Frame("x.mp4", 138, 5.5, np.zeros((8, 8, 3), np.uint8), start)
    seen = clock_at_frame(_Shows(shown), frame, WIB)  # type: ignore[arg-type]
    assert seen["picture_clock"] == shown.isoformat(sep=" ")
    assert seen.get("picture_clock_differs_s") == differs
    assert clock_at_frame(_Shows(None), frame, WIB) == {}  # type: ignore[arg-type]
