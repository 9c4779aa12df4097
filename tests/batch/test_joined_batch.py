"""etle batch on a recording the recorder wrote in several files: planned as one recording, its
segments read across the cuts between files (etle.batch.source.JoinedSegmentSource)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from etle.batch.jobs import plan_batch
from etle.batch.source import JoinedSegmentSource
from etle.clock.names import NAME_ORIGIN

from conftest import REPO, require_model
from fixtures.raw_video import counted_clip, frame_numbers, split_at

WIB = ZoneInfo("Asia/Jakarta")
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
CAM = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"


def test_a_window_across_the_cut_reads_both_files(tmp_path: Path) -> None:
    a = counted_clip(tmp_path / "ch01_20240115073000.mp4", 10, 5, 0, gop=4)  # 2 s
    b = counted_clip(tmp_path / "ch01_20240115073002.mp4", 10, 5, 10, gop=4)
    c = counted_clip(tmp_path / "ch01_20240115073004.mp4", 10, 5, 20, gop=4)
    parts = ((str(a), 0.0), (str(b), 2.0), (str(c), 4.0))
    start = datetime(2024, 1, 15, 7, 30, tzinfo=WIB)
    src = JoinedSegmentSource(parts, 1.2, 2.8, wall_start=start, start_origin=NAME_ORIGIN, inclusive_end=False)
    assert [Path(s.info.name).name for s, _ in src._open] == [a.name, b.name]  # the third file is not opened
    frames = list(src.frames())
    assert np.allclose([f.pts for f in frames], [1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6])
    assert frame_numbers(frames) == list(range(6, 14))
    assert [f.index for f in frames] == list(range(6, 14)) and all(f.wall_start == start for f in frames)
    assert src.info.parts == parts and src.info.name == str(a)


def test_the_files_of_one_recording_are_one_job(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    split_at(SAMPLE, [folder / "ch01_20240115073000.mp4", folder / "ch01_20240115073016.mp4"], [16.0])
    shutil.copy(SAMPLE, folder / "other.mp4")  # dated by its creation_time: on its own
    jobs, failures = plan_batch([str(folder)], camera=CAM, segment_s=10, overlap_s=3)
    assert failures == []
    joined = [j for j in jobs if j.parts]
    assert len(jobs) == 2 and len(joined) == 1
    job = joined[0]
    assert [Path(n).name for n, _ in job.parts] == ["ch01_20240115073000.mp4", "ch01_20240115073016.mp4"]
    assert job.wall_start == datetime(2024, 1, 15, 7, 30, tzinfo=WIB) and job.wall_start_origin == NAME_ORIGIN
    assert job.duration_s == pytest.approx(30.1, abs=0.2) and job.plan.duration_s == job.duration_s
    assert any(seg.read_start_s < 16.0 < seg.read_end_s for seg in job.plan.segments)  # a window holds the cut
    again, _ = plan_batch([str(folder)], camera=CAM, segment_s=10, overlap_s=3)
    assert {j.sha256 for j in again} == {j.sha256 for j in jobs}  # a rerun finds its done segments
    apart, _ = plan_batch([str(folder)], camera=CAM, segment_s=10, overlap_s=3, join=False)
    assert len(apart) == 3 and not any(j.parts for j in apart)


@pytest.mark.slow
def test_a_crossing_at_the_cut_between_files_is_ticketed_once(tmp_path: Path) -> None:
    """The sample in two files cut at 16 s, as the grey car crosses on red, its first 20 s run in
    10 s segments (3 s overlap): one red-light ticket, at the whole file's time, its evidence naming the file."""
    from etle.batch import ledger, tasks_to_run
    from etle.batch.worker import BatchOptions, SegmentProcessor
    from etle.store import open_store

    require_model("vehicle-detector")
    folder = tmp_path / "export"
    folder.mkdir()
    split_at(SAMPLE, [folder / "ch01_20240115073000.mp4", folder / "ch01_20240115073016.mp4"], [16.0])
    jobs, failures = plan_batch([str(folder)], camera=CAM, segment_s=10, overlap_s=3, tail_s=2.0, max_seconds=20.0)
    assert failures == [] and len(jobs) == 1 and len(jobs[0].plan.segments) == 2
    db = f"sqlite:///{tmp_path / 'central.db'}"
    ledger.ensure_table(open_store(db).engine)
    proc = SegmentProcessor(db, str(tmp_path / "central-ev"), BatchOptions(read_plates=False))
    try:
        for task in tasks_to_run(jobs, set()):
            proc.process(task)
    finally:
        proc.close()
    tickets = [t for t in open_store(db).list() if t.rule == "red_light"]
    assert len(tickets) == 1
    (t,) = tickets
    start = datetime(2024, 1, 15, 7, 30, tzinfo=WIB)
    assert abs(t.occurred_at - (start + timedelta(seconds=16.0))) <= timedelta(seconds=0.3)
    manifest = json.loads((Path(t.evidence_path) / "manifest.json").read_text())
    assert Path(manifest["extra"]["part"]).name == "ch01_20240115073016.mp4"
