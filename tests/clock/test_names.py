"""Recordings dated by the names recorders give their exports, and one start given for several
recordings refused (each would be dated from it)."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from etle.clock.names import NAME_ORIGIN, name_time
from etle.errors import ConfigError

from conftest import REPO, require_model
from fixtures.cli import assert_clean_failure, assert_nothing_written, etle
from fixtures.raw_video import with_clock

WIB = ZoneInfo("Asia/Jakarta")
WITA = ZoneInfo("Asia/Makassar")
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
CAM = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"
NOW = datetime(2026, 12, 7, 12, 0, 0)


@pytest.mark.parametrize("path, start, end", [
    ("ch01_20240115073000.mp4", datetime(2024, 1, 15, 7, 30), None),  # Hikvision
    ("192.168.1.64_01_20240115073000123.mp4", datetime(2024, 1, 15, 7, 30, 0, 123000), None),  # with ms
    ("ch1_main_20240115073000_20240115080000.mp4", datetime(2024, 1, 15, 7, 30), datetime(2024, 1, 15, 8, 0)),
    ("NVR_ch2_main_20231231235500_20240101000500.dav", datetime(2023, 12, 31, 23, 55), datetime(2024, 1, 1, 0, 5)),
    ("export/2024-01-15/001/dav/07/07.30.00-07.35.00[M][0@0][0].dav",  # Dahua: the day is a folder
     datetime(2024, 1, 15, 7, 30), datetime(2024, 1, 15, 7, 35)),
    ("20240115/23.58.00-00.03.00[R][0@0][0].dav", datetime(2024, 1, 15, 23, 58), datetime(2024, 1, 16, 0, 3)),
    ("VID_20240115_073000.mp4", datetime(2024, 1, 15, 7, 30), None),  # phones
    ("2024-01-15_07-30-00.mkv", datetime(2024, 1, 15, 7, 30), None),
    ("Simpang Lima 2024-01-15 07.30.00.mp4", datetime(2024, 1, 15, 7, 30), None),
    ("2024.01.15-07.30.05.avi", datetime(2024, 1, 15, 7, 30, 5), None),
    ("2024-01-15T07:30:00.ts", datetime(2024, 1, 15, 7, 30), None),
    ("2024_01_15_07_30_00.mp4", datetime(2024, 1, 15, 7, 30), None),
])
def test_recorder_names_give_the_start(path: str, start: datetime, end: datetime | None) -> None:
    got = name_time(path, WITA, now=NOW)
    assert got is not None
    assert got.start == start.replace(tzinfo=WITA)
    assert got.end == (end.replace(tzinfo=WITA) if end is not None else None)


@pytest.mark.parametrize("path", [
    "cctv.mp4", "cam_2_clip_0001.mp4", "2024-01-15.mp4",  # a date without a time
    "15-01-2024_07-30-00.mp4",  # day first: 05-01 could be either way round, so none is read
    "20241315073000.mp4", "20240115256000.mp4",  # month 13, hour 25
    "id_99920240115073000.mp4",  # digits of a longer number
    "07.30.00-07.35.00[M][0@0][0].dav",  # Dahua's times without a day folder
    "19991231235959.mp4",  # before 2000
])
def test_names_without_a_recording_time(path: str) -> None:
    assert name_time(path, WIB, now=NOW) is None


def test_a_date_after_tomorrow_is_not_taken(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert name_time("ch01_20261209073000.mp4", WIB, now=NOW) is None
    assert "not a plausible recording time" in caplog.text
    assert name_time("ch01_20261208073000.mp4", WIB, now=NOW) is not None


def test_a_name_spanning_another_length_is_told() -> None:
    named = name_time("ch1_main_20240115073000_20240115080000.mp4", WIB, now=NOW)
    assert named is not None
    assert named.length_note("x.mp4", 1800.0) is None and named.length_note("x.mp4", 1790.0) is None
    note = named.length_note("x.mp4", 300.0)
    assert note is not None and "1800 s" in note and "300 s" in note
    assert name_time("ch01_20240115073000.mp4", WIB, now=NOW).length_note("x.mp4", 300.0) is None  # type: ignore[union-attr]


def test_a_batch_clip_is_dated_by_its_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from etle.batch.jobs import plan_batch

    clip = tmp_path / "ch01_20240115073000.mp4"
    shutil.copy(SAMPLE, clip)
    with caplog.at_level(logging.WARNING):
        jobs, failures = plan_batch([str(clip)], camera=CAM)
    assert failures == []
    (job,) = jobs
    assert job.wall_start == datetime(2024, 1, 15, 7, 30, tzinfo=WIB) and job.wall_start_origin == NAME_ORIGIN
    assert "by its file name" in caplog.text and "creation_time" in caplog.text  # the sample's 2018 one is not used


def test_the_picture_clock_goes_before_the_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A renamed file: the clock in the picture says 2025-03-04 07:12:33, the name a day later."""
    require_model("ocr-rapidocr-det")
    from etle.camera.config import load_camera
    from etle.clock.osd import OSD_ORIGIN
    from etle.clock.start import recording_start

    clip = with_clock(SAMPLE, tmp_path / "ch01_20250305071233.mp4", datetime(2025, 3, 4, 7, 12, 33, 400000),
                      fmt="%Y-%m-%d %H:%M:%S", seconds=12.0)
    cam = tmp_path / "cam.yaml"
    cam.write_text("id: c\ntimezone: Asia/Jakarta\n")
    with caplog.at_level(logging.WARNING):
        fix = recording_start(str(clip), load_camera(cam))
    assert fix is not None and fix.origin == OSD_ORIGIN
    assert abs((fix.start.replace(tzinfo=None) - datetime(2025, 3, 4, 7, 12, 33, 400000)).total_seconds()) < 0.5
    assert "its name says the recording began 2025-03-05 07:12:33" in caplog.text
    # the camera file turns the picture's clock off: the name dates it
    cam.write_text("id: c\ntimezone: Asia/Jakarta\nclock: {read: false}\n")
    fix = recording_start(str(clip), load_camera(cam))
    assert fix is not None and fix.origin == NAME_ORIGIN and fix.start == datetime(2025, 3, 5, 7, 12, 33, tzinfo=WIB)


def test_one_start_for_several_recordings_is_refused(tmp_path: Path) -> None:
    """Each recording of a folder was dated from the one --start (or the camera file's
    start_time): every ticket but the first recording's at a wrong time."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(SAMPLE, folder / name)
    res = etle("run", str(folder), "-c", str(CAM), "--start", "2024-01-15T07:00:00", "--out", str(tmp_path / "out"),
               "--db", f"sqlite:///{tmp_path}/t.db", "--no-progress")
    assert_clean_failure(res, "--start dates one recording", "a.mp4, b.mp4")
    assert_nothing_written(tmp_path)
    dated = tmp_path / "dated.yaml"
    dated.write_text(CAM.read_text() + "\nstart_time: 2024-01-15T07:00:00\n")
    res = etle("run", str(folder), "-c", str(dated), "--out", str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path}/t.db",
               "--no-progress")
    assert_clean_failure(res, "start_time dates one recording")
    assert_nothing_written(tmp_path)
    from etle.batch.jobs import plan_batch

    with pytest.raises(ConfigError, match="--start dates one recording"):
        plan_batch([str(folder)], camera=CAM, start=datetime(2024, 1, 15, 7, tzinfo=WIB))
    with pytest.raises(ConfigError, match="start_time of dated.yaml dates one recording"):
        plan_batch([str(folder)], camera=dated)
    jobs, failures = plan_batch([str(folder / "a.mp4")], camera=dated)  # one recording: its start_time dates it
    assert failures == [] and jobs[0].wall_start == datetime(2024, 1, 15, 7, tzinfo=WIB)


def test_pictures_without_a_clock_are_not_searched_file_after_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A day of five-minute files from a camera without an OSD: after two files whose pictures
    show no clock, the others are dated by their names without the whole-frame text search."""
    require_model("ocr-rapidocr-det")
    import etle.clock.osd as osd
    from etle.camera.config import load_camera
    from etle.clock.start import RecordingDater

    searched: list[str] = []
    real = osd.clock_of_file

    def counting(path, *a, **kw):  # type: ignore[no-untyped-def]
        searched.append(Path(path).name)
        return real(path, *a, **kw)

    monkeypatch.setattr(osd, "clock_of_file", counting)
    clips = []
    for k in range(4):
        clips.append(tmp_path / f"ch01_2024011507{30 + k:02d}00.mp4")
        shutil.copy(SAMPLE, clips[-1])
    dater = RecordingDater(load_camera(CAM))
    with caplog.at_level(logging.WARNING):
        starts = [dater.date(str(c)) for c in clips]
    assert searched == [clips[0].name, clips[1].name]
    assert [s.start.minute for s in starts if s is not None] == [30, 31, 32, 33]
    assert all(s is not None and s.origin == NAME_ORIGIN for s in starts)
    assert "showed no clock" in caplog.text


def test_camera_clock_command_shows_the_names_time(tmp_path: Path) -> None:
    require_model("ocr-rapidocr-det")
    clip = tmp_path / "ch01_20240115073000.mp4"
    shutil.copy(SAMPLE, clip)
    res = etle("camera", "clock", str(clip), "-c", str(CAM), "--samples", "3", timeout=180)
    assert res.returncode == 0, res.stderr
    assert "its file name says the recording began 2024-01-15 07:30:00.000 WIB" in res.stdout
    assert "dates it by its file name" in res.stdout
    res = etle("camera", "clock", str(SAMPLE), "-c", str(CAM), "--samples", "3", timeout=180)
    assert_clean_failure(res, "no date and time found in the picture")
