"""A recording the recorder wrote in several files, run as one source (etle.ingest.joined)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from etle.clock.names import NAME_ORIGIN
from etle.clock.osd import OSD_ORIGIN
from etle.ingest.joined import JoinedSource, join_recordings, part_of
from etle.ingest.sources import VideoFileSource

from fixtures.raw_video import counted_clip, frame_numbers

WIB = ZoneInfo("Asia/Jakarta")
T0 = datetime(2024, 1, 15, 7, 30, tzinfo=WIB)
BY_RECORDER = {OSD_ORIGIN, NAME_ORIGIN}


def _src(path: Path, start: datetime, origin: str = NAME_ORIGIN) -> VideoFileSource:
    return VideoFileSource(path, wall_start=start, start_origin=origin)


def test_files_back_to_back_run_as_one_recording(tmp_path: Path) -> None:
    files = [counted_clip(tmp_path / f"{k}.mp4", first=10 * k) for k in range(3)]
    # given out of order: joined in the order of their starts
    sources = [_src(files[2], T0 + timedelta(seconds=2)), _src(files[0], T0), _src(files[1], T0 + timedelta(seconds=1))]
    (joined,) = join_recordings(sources, BY_RECORDER)
    assert isinstance(joined, JoinedSource)
    info = joined.info
    assert info.name == str(files[0]) and info.wall_start == T0 and info.wall_start_origin == NAME_ORIGIN
    assert info.parts == ((str(files[0]), 0.0), (str(files[1]), 1.0), (str(files[2]), 2.0))
    assert info.duration_s == pytest.approx(3.0) and info.frame_count == 30
    frames = list(joined.frames())
    assert [f.index for f in frames] == list(range(30))
    assert np.allclose([f.pts for f in frames], np.arange(30) / 10)
    assert frame_numbers(frames) == list(range(30))  # every frame once, in the recording's order
    assert all(f.wall_start == T0 and f.source == str(files[0]) for f in frames)
    assert part_of(info, 1.5) == (str(files[1]), pytest.approx(0.5))
    assert part_of(info, 0.0) == (str(files[0]), 0.0)
    assert part_of(info, 2.9) == (str(files[2]), pytest.approx(0.9))


def test_a_file_repeating_the_end_of_the_one_before(tmp_path: Path) -> None:
    """The next file begins 0.3 s before the first ends (its first three frames are the first
    file's last three): each frame once, times only forward."""
    a = counted_clip(tmp_path / "a.mp4", first=0)
    b = counted_clip(tmp_path / "b.mp4", first=7)
    (joined,) = join_recordings([_src(a, T0), _src(b, T0 + timedelta(seconds=0.7))], BY_RECORDER)
    frames = list(joined.frames())
    assert frame_numbers(frames) == list(range(17))
    assert np.all(np.diff([f.pts for f in frames]) > 0)


def test_max_seconds_counts_from_the_first_file(tmp_path: Path) -> None:
    files = [counted_clip(tmp_path / f"{k}.mp4", first=10 * k) for k in range(3)]
    (joined,) = join_recordings([_src(f, T0 + timedelta(seconds=k)) for k, f in enumerate(files)], BY_RECORDER,
                                max_seconds=1.45)
    assert frame_numbers(joined.frames()) == list(range(15))


@pytest.mark.parametrize("case", ["gap", "size", "origin"])
def test_files_that_do_not_continue_each_other_stay_apart(tmp_path: Path, case: str) -> None:
    a = counted_clip(tmp_path / "a.mp4")
    b = counted_clip(tmp_path / "b.mp4", size=(80, 48) if case == "size" else (64, 48))
    second = T0 + timedelta(seconds=6 if case == "gap" else 1)
    origin = "container creation_time" if case == "origin" else NAME_ORIGIN  # an export's or re-encode's time
    out = join_recordings([_src(a, T0, origin), _src(b, second, origin)], BY_RECORDER)
    assert len(out) == 2 and not any(isinstance(s, JoinedSource) for s in out)
    assert [s.info.name for s in out] == [str(a), str(b)]


def test_a_run_of_files_then_a_later_one(tmp_path: Path) -> None:
    files = [counted_clip(tmp_path / f"{k}.mp4", first=10 * k) for k in range(3)]
    starts = [T0, T0 + timedelta(seconds=1), T0 + timedelta(minutes=10)]
    out = join_recordings([_src(f, t) for f, t in zip(files, starts)], BY_RECORDER)
    assert len(out) == 2 and isinstance(out[0], JoinedSource) and out[1].info.name == str(files[2])
    assert [n for n, _ in out[0].info.parts] == [str(files[0]), str(files[1])]


def test_two_cameras_files_in_one_folder_are_not_mixed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """ch01 and ch02 of a recorder, each in two files with the same times: which second file
    continues which first one cannot be told from the times, so none is joined."""
    import logging

    files = {n: counted_clip(tmp_path / f"{n}.mp4", rate=2) for n in ("ch01_a", "ch02_a", "ch01_b", "ch02_b")}  # 5 s each
    later = T0 + timedelta(seconds=5)
    starts = {"ch01_a": T0, "ch02_a": T0, "ch01_b": later, "ch02_b": later}
    with caplog.at_level(logging.WARNING):
        out = join_recordings([_src(files[n], starts[n]) for n in files], BY_RECORDER)
    assert len(out) == 4 and not any(isinstance(s, JoinedSource) for s in out)
    assert "not joined" in caplog.text


def test_dry_run_shows_the_recordings_as_a_run_reads_them(tmp_path: Path) -> None:
    """`etle run FOLDER --dry-run`: which files make one recording, the start each is dated from
    and by what; no model loaded, nothing written."""
    import json

    from conftest import REPO, require_model
    from fixtures.cli import etle

    require_model("ocr-rapidocr-det")
    folder = tmp_path / "export"
    folder.mkdir()
    counted_clip(folder / "ch01_20240115073000.mp4", n=20, rate=2)  # 10 s
    counted_clip(folder / "ch01_20240115073010.mp4", n=20, rate=2)
    counted_clip(folder / "ch01_20240115080000.mp4", n=20, rate=2)  # half an hour later: on its own
    cam = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"
    res = etle("run", str(folder), "-c", str(cam), "--dry-run", "--json", cwd=tmp_path, timeout=180)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [[Path(f).name for f in r["files"]] for r in rows] == [
        ["ch01_20240115073000.mp4", "ch01_20240115073010.mp4"], ["ch01_20240115080000.mp4"]]
    assert [r["start"] for r in rows] == ["2024-01-15T07:30:00+07:00", "2024-01-15T08:00:00+07:00"]
    assert {r["dated_by"] for r in rows} == {NAME_ORIGIN} and rows[0]["seconds"] == pytest.approx(20.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no etle-out, no etle.db
    res = etle("run", str(folder), "-c", str(cam), "--dry-run", "--no-join", "--json", cwd=tmp_path, timeout=180)
    assert [len(r["files"]) for r in json.loads(res.stdout)] == [1, 1, 1]
    res = etle("run", str(folder), "-c", str(cam), "--dry-run", cwd=tmp_path, timeout=180)  # the table
    assert res.returncode == 0, res.stderr
    assert "ch01_20240115073000.mp4 (+1 file)" in res.stdout and "2024-01-15 07:30:00+07:00" in res.stdout
    assert "2 recording(s) in 3 source(s)" in res.stdout


def test_a_recording_is_labelled_by_its_first_file_and_the_number_after_it() -> None:
    from etle.ingest.joined import recording_label

    assert recording_label("/rec/ch01_a.mp4", ()) == "ch01_a.mp4"
    assert recording_label("/rec/ch01_a.mp4", ["/rec/ch01_a.mp4"]) == "ch01_a.mp4"
    assert recording_label("/rec/ch01_a.mp4", ["/rec/ch01_a.mp4", "/rec/ch01_b.mp4"]) == "ch01_a.mp4 (+1 file)"
    assert recording_label("/rec/ch01_a.mp4", ["a", "b", "c"]) == "ch01_a.mp4 (+2 files)"
