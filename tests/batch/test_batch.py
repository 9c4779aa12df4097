"""etle batch: segment planning and event ownership (pure), cameras by content, segment sources,
done-markers, the command's failures; and a real two-node Ray cluster on the shared clips
(slow, the four shared clips) with a killed worker and a restarted driver, against a sequential ``etle run``."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from etle.batch.plan import (
    Event,
    Kept,
    SeenEvent,
    Segment,
    dedupe,
    event_of,
    plan_segments,
    repeats,
    run_id,
    ticket_uid,
)
from etle.config.run import fast_detector
from etle.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"


# ---------------------------------------------------------------- planning


def test_a_short_clip_is_one_segment() -> None:
    plan = plan_segments(30.0, segment_s=300, overlap_s=30, tail_s=2)
    assert len(plan.segments) == 1
    seg = plan.segments[0]
    assert (seg.start_s, seg.end_s, seg.read_start_s, seg.read_end_s, seg.last) == (0.0, 30.0, 0.0, 30.0, True)
    # a few seconds over the segment length are not cut off into a tiny segment
    assert len(plan_segments(320.0, segment_s=300, overlap_s=30).segments) == 1


def test_segments_tile_the_clip_and_overlap() -> None:
    plan = plan_segments(1000.0, segment_s=300, overlap_s=30, tail_s=2)
    segs = plan.segments
    assert [s.index for s in segs] == [0, 1, 2, 3]
    assert segs[0].start_s == 0 and segs[-1].end_s == 1000 and segs[-1].last
    for a, b in zip(segs, segs[1:]):
        assert a.end_s == b.start_s  # owned parts tile the clip
        assert b.read_start_s == b.start_s - 30 and a.read_end_s == a.end_s + 30
    assert segs[0].read_start_s == 0 and segs[-1].read_end_s == 1000
    assert len({s.key for s in segs}) == 4


@pytest.mark.parametrize("args", [(0, 300, 30), (100, 0, 30), (1000, 300, 1.0), (1000, 300, 0), (1000, 300, -1)])
def test_bad_plans_are_config_errors(args: tuple[float, float, float]) -> None:
    with pytest.raises(ConfigError):
        plan_segments(args[0], segment_s=args[1], overlap_s=args[2], tail_s=2.0)


def _seen_by(plan, start: float, pts: float, jitter: float = 0.0) -> list[SeenEvent]:  # type: ignore[no-untyped-def]
    """What every segment whose window holds the violation reports: the track from its true start
    or from the window's opening, whichever is later (plus a little tracker jitter)."""
    out = []
    for seg in plan.segments:
        if not seg.read_start_s <= pts <= seg.read_end_s:
            continue
        first = max(start, seg.read_start_s) + jitter
        out.append(SeenEvent(seg.index, event_of(seg, "red_light", min(first, pts), pts), track_id=seg.index * 100 + 1))
    return out


def test_a_track_crossing_a_cut_is_kept_once_by_the_segment_owning_its_start() -> None:
    plan = plan_segments(900.0, segment_s=300, overlap_s=30, tail_s=2)
    # starts at 290 s (segment 0 owns it), violates at 305 s (inside segment 1's owned part)
    kept = dedupe(plan, _seen_by(plan, 290.0, 305.0))
    assert [k.segment for k in kept] == [0]
    # starts in segment 1's own part, violates there too
    kept = dedupe(plan, _seen_by(plan, 400.0, 420.0))
    assert [k.segment for k in kept] == [1]


def test_a_long_track_whose_start_no_window_sees_with_its_violation_is_kept_once() -> None:
    plan = plan_segments(900.0, segment_s=300, overlap_s=30, tail_s=2)
    # parked from 100 s, violates at 500 s: segment 0 never sees the violation; segment 1 sees
    # the track from its window's opening (truncated) and keeps it
    kept = dedupe(plan, _seen_by(plan, 100.0, 500.0))
    assert [k.segment for k in kept] == [1]


def test_a_violation_at_the_end_of_a_window_goes_to_the_segment_holding_its_clip() -> None:
    plan = plan_segments(900.0, segment_s=300, overlap_s=30, tail_s=2)
    # 329 s: segment 0's window ends at 330 s, too early for the 2 s clip after it
    kept = dedupe(plan, _seen_by(plan, 320.0, 329.0))
    assert [k.segment for k in kept] == [1]


def test_every_event_is_kept_exactly_once() -> None:
    rng = random.Random(16)
    for _ in range(300):
        duration = rng.uniform(50, 2000)
        seg_s = rng.uniform(20, 400)
        overlap = rng.uniform(3, 40)
        plan = plan_segments(duration, segment_s=seg_s, overlap_s=overlap, tail_s=2.0)
        for _ in range(20):
            start = rng.uniform(0, plan.duration_s)
            pts = min(plan.duration_s, start + rng.expovariate(1 / 15))
            jitter = rng.uniform(0, 0.3)
            seen = _seen_by(plan, start, pts, jitter)
            kept = dedupe(plan, seen)
            assert len(kept) == 1, (plan, start, pts, seen, kept)
            # the keeper held the violation and the clip after it, unless the clip ends first
            seg = plan.segments[kept[0].segment]
            assert seg.read_start_s <= pts and (seg.last or pts + 2.0 < seg.read_end_s)


def test_the_first_segment_never_sees_a_truncated_start() -> None:
    seg = Segment(0, 0.0, 300.0, 0.0, 330.0, False)
    assert not event_of(seg, "r", 0.0, 5.0).truncated
    later = Segment(1, 300.0, 600.0, 270.0, 630.0, False)
    assert event_of(later, "r", 270.4, 280.0).truncated
    assert not event_of(later, "r", 275.0, 280.0).truncated
    assert Event("r", 1.0, 2.0, False).start_s == 1.0


def test_a_vehicle_ticketed_again_by_a_later_segment_is_a_repeat_of_the_earliest() -> None:
    plan = plan_segments(14.0, segment_s=6.0, overlap_s=3.0)  # windows 0-9, 3-14, 9-14: one window 12 s
    first = Kept(1, segment=0, rule="no_helmet", plate="R2333RK", seconds=3.1)
    again = Kept(2, segment=2, rule="no_helmet", plate="R2333RK", seconds=12.6)  # the window opened on it
    other_rule = Kept(3, segment=2, rule="more_than_two", plate="R2333RK", seconds=12.6)
    other_plate = Kept(4, segment=1, rule="no_helmet", plate="R5154WP", seconds=7.0)
    unread = [Kept(5, segment=0, rule="no_helmet", plate="", seconds=4.0), Kept(6, segment=1, rule="no_helmet", plate="", seconds=8.0)]
    same_segment = [Kept(7, segment=1, rule="red_light", plate="BH1234AB", seconds=6.5),
                    Kept(8, segment=1, rule="red_light", plate="BH1234AB", seconds=9.0)]  # two tracks of one window
    tickets = [again, other_rule, first, other_plate, *unread, *same_segment]
    assert repeats(plan, tickets) == [(again, first)]
    assert repeats(plan, list(reversed(tickets))) == [(again, first)]  # whatever order the segments finished in
    # a second passage of the same plate more than one window later is a ticket of its own
    much_later = plan_segments(900.0, segment_s=300.0, overlap_s=30.0)
    passes = [Kept(1, 0, "red_light", "BH1234AB", 10.0), Kept(2, 1, "red_light", "BH1234AB", 300.0),
              Kept(3, 2, "red_light", "BH1234AB", 700.0)]
    assert repeats(much_later, passes) == [(passes[1], passes[0])]
    # plates read differently (or not at all): the vehicle, from the tracks' places, decides
    a = Kept(1, 0, "no_helmet", "R2333RK", 3.1, vehicle=0)
    b = Kept(2, 2, "no_helmet", "P2333XX", 12.6, vehicle=0)
    c = Kept(3, 2, "no_helmet", "", 12.9, vehicle=3)  # another rider
    assert repeats(plan, [a, b, c]) == [(b, a)]


def test_tracks_in_the_same_place_at_the_same_time_are_one_vehicle_even_through_a_third_segment() -> None:
    from etle.batch.plan import vehicles

    rider = (281.0, 138.0, 423.0, 358.0)
    moved = (283.0, 140.0, 425.0, 356.0)
    tracks = {
        (0, 8): {3000: rider, 8500: rider},            # segment 0 sees the rider to 9 s
        (1, 6): {3000: rider, 8500: moved, 13000: moved},  # segment 1 from 3 s to 14 s
        (2, 10): {13000: moved},                        # segment 2 only after 9 s: no time shared with segment 0
        (2, 11): {13000: (10.0, 140.0, 120.0, 356.0)},  # another rider, elsewhere
        (1, 7): {3000: (281.0, 138.0, 423.0, 358.0)},   # a second track of segment 1 in the same place
    }
    g = vehicles(tracks)
    assert g[(0, 8)] == g[(1, 6)] == g[(2, 10)]
    assert g[(2, 11)] != g[(0, 8)]
    assert g[(1, 7)] == g[(0, 8)]  # linked through segment 0's track, never directly to its own segment's
    assert vehicles({(0, 1): {1000: rider}, (0, 2): {1000: rider}}) == {(0, 1): 0, (0, 2): 1}


def test_repeats_are_rejected_once_and_only_while_pending(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from etle.batch import BATCH_ACTOR, settle_repeats
    from etle.batch.jobs import ClipJob
    from etle.store import TicketIn, open_store

    plan = plan_segments(14.0, segment_s=6.0, overlap_s=3.0)
    sha = "ab" * 32
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    job = ClipJob(clip="c.mp4", sha256=sha, duration_s=14.0, fps=25.0, wall_start=t0, camera=None, plan=plan)
    from etle.batch import ledger

    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    ledger.ensure_table(store.engine)

    def add(seg: int, track: int, s: float, plate: str) -> int:
        return store.add(TicketIn(camera_id="clp-alun-01", rule="no_helmet", track_id=track, occurred_at=t0 + timedelta(seconds=s),
                                  run_id=run_id(sha, plan.segments[seg]), source="c.mp4", plate_text=plate))

    kept, repeat = add(0, 4, 3.1, "R2333RK"), add(2, 1, 12.6, "R2333RK")
    elsewhere = store.add(TicketIn(camera_id="clp-alun-01", rule="no_helmet", track_id=1, occurred_at=t0 + timedelta(seconds=12.6),
                                   run_id="another-run", source="c.mp4", plate_text="R2333RK"))  # another clip's run
    assert settle_repeats(store, job) == [(repeat, kept)]
    t = store.get(repeat)
    assert t.status == "rejected" and store.get(kept).status == "pending_review" and store.get(elsewhere).status == "pending_review"
    last = store.actions(repeat)[-1]
    assert last.actor == BATCH_ACTOR and last.reason.startswith("duplicate:") and store.get(kept).reference in last.reason
    assert settle_repeats(store, job) == []  # a rerun finds nothing new
    # a repeat an officer already decided on is left alone
    approved = add(1, 9, 9.5, "R5154WP")
    add(0, 5, 2.0, "R5154WP")
    store.add_user("sari", display_name="Sari", role="supervisor")
    store.transition(approved, "approve", actor="sari")
    assert settle_repeats(store, job) == [] and store.get(approved).status == "approved"
    # plates read differently: segment 1 (not keeping it) saw the vehicle in the same place as
    # segment 0's ticket early and as segment 2's ticket late; another rider stood elsewhere
    early, late = add(0, 6, 4.0, "B1234CD"), add(2, 3, 13.0, "P1Z34C")
    far = add(2, 4, 13.5, "")
    keys = {s.index: s.key for s in plan.segments}
    ledger.write_marks(store.engine, sha, keys[0], {6: (early, {5000: (100, 50, 160, 250), 8500: (101, 50, 161, 250)})})
    ledger.write_marks(store.engine, sha, keys[1], {2: (None, {5000: (102, 51, 161, 251), 11000: (110, 50, 170, 250)})})
    ledger.write_marks(store.engine, sha, keys[2], {3: (late, {11000: (112, 52, 171, 249)}),
                                                    4: (far, {11000: (400, 50, 460, 250)})})
    assert settle_repeats(store, job) == [(late, early)]
    assert store.get(far).status == "pending_review"
    # a killed attempt's marks are replaced by the segment's next run, not added to
    ledger.write_marks(store.engine, sha, keys[2], {3: (late, {11000: (112, 52, 171, 249)})})
    assert [(m.segment, m.track_id) for m in ledger.read_marks(store.engine, sha)] == [(keys[0], 6), (keys[1], 2), (keys[2], 3)]
    store.close()


def test_track_marks_keep_each_tracks_box_nearest_each_half_second() -> None:
    from etle.batch.worker import TrackMarks
    from etle.types import Box, TrackedObject

    marks = TrackMarks(step_s=0.5)
    car = lambda x: (TrackedObject(1, Box(x, 0, x + 10, 10), "car", 0.9),)  # noqa: E731
    for pts, x in ((2.96, 4), (3.0, 5), (3.04, 6), (3.2, 7), (3.3, 8)):
        marks.note(car(x), pts)
    marks.note((TrackedObject(2, Box(50, 0, 60, 10), "car", 0.9),), 3.45)
    assert marks.of(1) == {3000: (5, 0, 15, 10), 3500: (8, 0, 18, 10)}  # 3.0 nearest 3 s, 3.3 nearest 3.5 s
    assert marks.of(2) == {3500: (50, 0, 60, 10)} and marks.of(3) == {}


def test_ticket_identity_is_deterministic_per_clip_segment_rule_and_track() -> None:
    plan = plan_segments(900.0, segment_s=300, overlap_s=30)
    a, b = plan.segments[0], plan.segments[1]
    uid = ticket_uid("ab" * 32, a, "red_light", 7)
    assert uid == ticket_uid("ab" * 32, a, "red_light", 7) and len(uid) == 32
    others = {ticket_uid("cd" * 32, a, "red_light", 7), ticket_uid("ab" * 32, b, "red_light", 7),
              ticket_uid("ab" * 32, a, "stop_line", 7), ticket_uid("ab" * 32, a, "red_light", 8)}
    assert uid not in others and len(others) == 4
    assert run_id("ab" * 32, a) != run_id("ab" * 32, b)


# ---------------------------------------------------------------- cameras by content


def test_a_camera_travels_by_content_and_hashes_the_same(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from etle.batch.camera import pack_camera, unpack_camera
    from etle.camera.config import load_camera

    site = tmp_path / "site" / "cams"
    site.mkdir(parents=True)
    refs = tmp_path / "site" / "refs"
    refs.mkdir()
    img = np.zeros((120, 160, 3), np.uint8)
    cv2.rectangle(img, (10, 10), (80, 60), (255, 255, 255), -1)
    cv2.imwrite(str(refs / "ref.png"), img)
    absolute = tmp_path / "abs-ref.png"
    cv2.imwrite(str(absolute), img)
    text = (
        "id: cam-1\nname: Test\ntimezone: Asia/Jakarta\n"
        "view_guard:\n  reference: ../refs/ref.png\n"
        "zones:\n  stop_line:\n    points: [[10, 100], [150, 100]]\n    approach_side: [80, 110]\n"
        "rules:\n  red_light: {line: stop_line}\n"
        "signal: {type: fixed_plan, anchor: source_start, phases: [{state: red, duration_s: 10}]}\n"
    )
    cam = site / "cam.yaml"
    cam.write_text(text, encoding="utf-8")
    bundle = pack_camera(cam)
    assert bundle.camera_id == "cam-1" and len(bundle.files) == 1 and bundle.files[0].data == (refs / "ref.png").read_bytes()
    unpacked = unpack_camera(bundle, tmp_path / "worker")
    assert unpacked.read_text(encoding="utf-8") == text  # the file itself travels unchanged
    assert load_camera(unpacked).config_hash() == load_camera(cam).config_hash()
    # an absolute path is rewritten to the copy
    cam2 = site / "cam2.yaml"
    cam2.write_text(text.replace("../refs/ref.png", str(absolute)), encoding="utf-8")
    unpacked2 = unpack_camera(pack_camera(cam2), tmp_path / "worker2")
    assert str(absolute) not in unpacked2.read_text(encoding="utf-8")
    assert load_camera(unpacked2).config_hash() == load_camera(cam2).config_hash()
    assert pack_camera(cam).sha256 != pack_camera(cam2).sha256


# ---------------------------------------------------------------- segment source


def test_a_segment_reads_its_window_with_the_whole_clip_times_and_indices() -> None:
    from etle.batch.source import SegmentSource
    from etle.ingest.sources import VideoFileSource

    base = VideoFileSource(SAMPLE, max_seconds=6.0)
    whole = [(f.index, round(f.pts, 3)) for f in base.frames()]
    fps = base.info.fps
    part = [(f.index, round(f.pts, 3)) for f in SegmentSource(VideoFileSource(SAMPLE), 2.0, 4.0, inclusive_end=False).frames()]
    expected = [(i, p) for i, p in whole if 2.0 - 0.5 / fps <= p < 4.0]
    assert part == expected and part
    first = [(f.index, round(f.pts, 3)) for f in SegmentSource(VideoFileSource(SAMPLE), 0.0, 1.0).frames()]
    assert first == [(i, p) for i, p in whole if p <= 1.0]


# ---------------------------------------------------------------- done-markers


def test_done_markers_are_idempotent(tmp_path: Path) -> None:
    from etle.batch import ledger, tasks_to_run
    from etle.batch.jobs import ClipJob
    from etle.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    ledger.ensure_table(store.engine)
    ledger.ensure_table(store.engine)
    plan = plan_segments(900.0, segment_s=300, overlap_s=30)
    job = ClipJob(clip="x.mp4", sha256="ab" * 32, duration_s=900.0, fps=25.0, wall_start=None, camera=None, plan=plan)
    assert len(tasks_to_run([job], ledger.done_segments(store.engine, [job.sha256]))) == 3
    done = ledger.SegmentDone(clip_sha256=job.sha256, segment=plan.segments[1].key, frames=10)
    assert ledger.mark_done(store.engine, done) is True
    assert ledger.mark_done(store.engine, done) is False
    left = tasks_to_run([job], ledger.done_segments(store.engine, [job.sha256]))
    assert [t.segment.index for t in left] == [0, 2]
    store.close()


# ---------------------------------------------------------------- the worker's sink


def test_the_sink_keeps_what_its_segment_owns_once_and_uploads_before_the_ticket(tmp_path: Path, make_evidence_request) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace
    from types import SimpleNamespace

    from etle.batch.worker import BatchSink, SegmentTask
    from etle.evidence.builder import EvidenceWriter
    from etle.evidence.storage import LocalEvidenceStorage
    from etle.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'central.db'}")
    central = LocalEvidenceStorage(tmp_path / "central")
    plan = plan_segments(900.0, segment_s=300, overlap_s=30, tail_s=2)
    seg1 = plan.segments[1]  # reads 270-630 s
    task = SegmentTask(clip="/videos/x.mp4", clip_sha256="ab" * 32, wall_start=None, plan=plan, segment=seg1, camera=None)
    req = make_evidence_request(track=5)
    base = SimpleNamespace(camera=req.camera, models={}, camera_cfg=None, zones=[], store=store,
                           with_picture_clock=lambda violation, frame: violation)
    info = SimpleNamespace(name="/videos/x.mp4", wall_start_origin="given")

    def record(first_seen: float, pts: float, track: int = 5):  # type: ignore[no-untyped-def]
        sink = BatchSink(base=base, writer=EvidenceWriter(tmp_path / "scratch", chained=False), storage=central,
                         task=task, first_seen={track: first_seen})
        v = replace(req.violation, pts=pts, track_id=track)
        return sink, sink.record(v, req.key_frame, req.key_objects, req.clip, req.plate, info)

    sink, res = record(first_seen=290.0, pts=305.0)  # the track started in segment 0's window: not ours
    assert res is None and sink.not_owned == 1 and store.count() == 0
    sink, res = record(first_seen=400.0, pts=420.0)  # ours
    assert res is not None and store.count() == 1
    (ticket,) = store.list()
    assert ticket.uid == ticket_uid(task.clip_sha256, seg1, "no_helmet", 5) and ticket.run_id == run_id(task.clip_sha256, seg1)
    assert ticket.evidence_path == central.uri(ticket.evidence_key)
    for f in ticket.evidence_files:  # every file is in the central store with its recorded digest
        assert central.sha256(f"{ticket.evidence_key}/{f.name}") == f.sha256
    assert not any((tmp_path / "scratch").rglob("*.png"))  # the scratch copy is gone
    sink, res = record(first_seen=400.0, pts=420.0)  # the segment again (a retry): found, nothing written
    assert res is None and sink.present == 1 and store.count() == 1
    assert len({o.key.rsplit("/", 1)[0] for o in central.list()}) == 1
    store.close()


# ---------------------------------------------------------------- the command


def _etle(*args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etle.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_a_clip_that_cannot_be_read_is_reported_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    res = _etle("batch", str(bad), str(tmp_path / "missing.mp4"), "--db", f"sqlite:///{tmp_path / 't.db'}",
                "-o", str(tmp_path / "ev"), "--no-progress", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("error: 2 of 2 clip(s) failed: bad.mp4"), lines[0]
    assert "bad.mp4" in res.stdout and "failed" in res.stdout


def test_a_bad_overlap_is_a_config_error(tmp_path: Path) -> None:
    res = _etle("batch", str(SAMPLE), "--segment-seconds", "5", "--overlap-seconds", "1", "--clip-after", "2",
                "--db", f"sqlite:///{tmp_path / 't.db'}", "-o", str(tmp_path / "ev"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "--overlap-seconds" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_an_unreachable_cluster_is_one_line_at_once(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    for cluster, needle in ((f"127.0.0.1:{_free_port()}", "cannot reach the Ray cluster"), ("bogus", "expected auto")):
        t0 = time.monotonic()
        res = _etle("batch", str(SAMPLE), "--cluster", cluster, "--max-seconds", "2", "--db", f"sqlite:///{tmp_path / 't.db'}",
                    "-o", str(tmp_path / "ev"), "--no-progress", cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], res.stderr
        assert time.monotonic() - t0 < 60


class _RefusingRay:
    """Stands in for the ``ray`` module: ``init`` refuses ``refusals`` times the way Ray Client
    does when the head's proxy cannot start the driver's server, then connects."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.inits, self.shutdowns = refusals, [], 0

    def init(self, **kwargs: object) -> None:
        self.inits.append(kwargs)
        if len(self.inits) <= self.refusals:
            raise ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call last):\n"
                                         "  File \"proxier.py\", line 780, in Datapath\n"
                                         "RuntimeError: Proxy failed to Connect to backend!")

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_refused_ray_client_session_is_tried_again_then_reported_with_the_servers_reason() -> None:
    from etle.batch import ray_backend

    waits: list[float] = []
    flaky = _RefusingRay(refusals=2)
    ray_backend._join(flaky, "ray://head:10001", {"log_to_driver": False}, attempts=3, wait_s=5, sleep=waits.append)
    assert len(flaky.inits) == 3 and flaky.shutdowns == 2 and waits == [5, 10]
    assert all(k == {"address": "ray://head:10001", "log_to_driver": False} for k in flaky.inits)

    down = _RefusingRay(refusals=99)
    with pytest.raises(ConnectionAbortedError) as err:
        ray_backend._join(down, "ray://head:10001", {}, attempts=3, wait_s=1, sleep=waits.append)
    assert len(down.inits) == 3
    assert ray_backend._reason(err.value) == ("Initialization failure from server: "
                                              "RuntimeError: Proxy failed to Connect to backend!")

    # a cluster joined from inside (host:port) is one try: there is no client proxy to retry
    local = _RefusingRay(refusals=1)
    with pytest.raises(ConnectionAbortedError):
        ray_backend._join(local, "10.0.0.5:6379", {}, sleep=waits.append)
    assert len(local.inits) == 1
    assert ray_backend._reason(ConnectionError("")) == "ConnectionError"
    assert ray_backend._reason(ConnectionError("refused\nmore")) == "refused"


# ---------------------------------------------------------------- a worker without Ray (slow)


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_segment_run_twice_adds_its_tickets_once(shared_data: Path, tmp_path: Path) -> None:
    from conftest import require_model

    from etle.batch import ledger
    from etle.batch.jobs import plan_batch
    from etle.batch.worker import BatchOptions, SegmentProcessor
    from etle.batch import tasks_to_run
    from etle.store import open_store

    require_model("vehicle-detector-int8")
    clip = shared_data / "videos" / "id_etle_cilacap_alun_motorcycles.mp4"
    jobs, failures = plan_batch([str(clip)], camera_dir=REPO / "examples" / "cameras", max_seconds=9.0,
                                segment_s=300, overlap_s=30)
    assert not failures and len(jobs) == 1 and jobs[0].camera is not None
    db = f"sqlite:///{tmp_path / 'central.db'}"
    ledger.ensure_table(open_store(db).engine)
    proc = SegmentProcessor(db, str(tmp_path / "central-ev"), BatchOptions(detector="vehicle-detector-int8", detect_fps=6.0))
    try:
        (task,) = tasks_to_run(jobs, set())
        ticks: list[int] = []
        first = proc.process(task, ticks.append)
        assert first.tickets_new == 1 and first.tickets_present == 0 and sum(ticks) == first.frames
        again = proc.process(task)  # the same segment once more (a retry after a crash)
        assert again.tickets_new == 0 and again.tickets_present == 1
        assert proc.loads == 1  # the models were loaded once
    finally:
        proc.close()
    store = open_store(db)
    (ticket,) = store.list()
    assert ticket.rule == "no_helmet" and ticket.evidence_path.startswith(str(tmp_path / "central-ev"))
    assert ledger.done_segments(store.engine, [jobs[0].sha256]) == {(jobs[0].sha256, task.segment.key)}


@pytest.mark.slow
def test_batch_on_a_local_ray_instance_prints_a_json_report(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    res = _etle("batch", str(SAMPLE), "--max-seconds", "3", "--no-plates", "--json", "--db", f"sqlite:///{tmp_path / 't.db'}",
                "-o", str(tmp_path / "ev"), cwd=tmp_path, timeout=300,
                env={"RAY_AUTH_MODE": "disabled", "RAY_DISABLE_DOCKER_CPU_WARNING": "1", "RAY_USAGE_STATS_ENABLED": "0"})
    assert res.returncode == 0, res.stderr
    import json

    report = json.loads(res.stdout)
    assert report["workers"] >= 1 and report["nodes"] == 1 and report["failed"] == []
    (clip,) = report["clips"]
    assert clip["segments"] == 1 and clip["segments_run"] == 1 and clip["frames"] > 20 and clip["error"] is None
    # a worker's failure fails its clip, reported in one line (here: a GPU asked for on a CPU-only box)
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        res = _etle("batch", str(SAMPLE), "--device", "cuda", "--max-seconds", "2", "--no-plates", "--no-progress",
                    "--db", f"sqlite:///{tmp_path / 't2.db'}", "-o", str(tmp_path / "ev2"), cwd=tmp_path, timeout=300,
                    env={"RAY_AUTH_MODE": "disabled", "RAY_DISABLE_DOCKER_CPU_WARNING": "1", "RAY_USAGE_STATS_ENABLED": "0"})
        assert res.returncode == 1, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "1 of 1 clip(s) failed" in lines[0] and "--device cuda" in lines[0], res.stderr


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_violation_seen_by_two_segments_is_ticketed_once_as_in_a_sequential_run(shared_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import json

    from conftest import require_model

    require_model(fast_detector())
    clip = shared_data / "videos" / "id_etle_cilacap_alun_motorcycles.mp4"
    cameras = REPO / "examples" / "cameras"
    seq_db = f"sqlite:///{tmp_path / 'seq.db'}"
    res = _etle("run", str(clip), "-c", str(cameras / f"{clip.stem}.yaml"), "--detector", fast_detector(),
                "--detect-fps", "6", "--max-seconds", "9", "--db", seq_db, "-o", str(tmp_path / "seq-ev"), "--no-progress",
                cwd=tmp_path, timeout=180)
    assert res.returncode == 0, res.stderr
    # two segments, 0-5 s and 5-9 s, each reading 3 s of the other: the helmetless passenger near the
    # cut is seen by both and kept by the first
    db = f"sqlite:///{tmp_path / 'batch.db'}"
    res = _etle("batch", str(clip), "--camera-dir", str(cameras), "--fast", "--max-seconds", "9", "--segment-seconds", "5",
                "--overlap-seconds", "3", "--db", db, "-o", str(tmp_path / "ev"), "--json", cwd=tmp_path, timeout=300,
                env={"RAY_AUTH_MODE": "disabled", "RAY_DISABLE_DOCKER_CPU_WARNING": "1", "RAY_USAGE_STATS_ENABLED": "0"})
    assert res.returncode == 0, res.stderr
    (report,) = json.loads(res.stdout)["clips"]
    assert report["segments"] == 2 and report["tickets_new"] == 1 and report["not_owned"] >= 1
    assert _tickets(db) == _tickets(seq_db) and len(_tickets(db)) == 1


# ---------------------------------------------------------------- a real Ray cluster (slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _tickets(url: str) -> list[tuple[str, str, str, str]]:
    """(camera, rule, plate, SHA-256 of the key frame's original picture) of every ticket an
    officer is to review: not those the batch rejected as repeats (each names a kept ticket)."""
    from etle.store import open_store

    store = open_store(url)
    try:
        out = []
        kept = {t.reference for t in store.list(limit=10000) if t.status != "rejected"}
        for t in store.list(limit=10000):
            if t.status == "rejected":
                last = store.actions(t.id)[-1]
                assert last.actor == "system:batch" and last.reason.startswith("duplicate:"), last
                assert any(ref in last.reason for ref in kept), last.reason
                continue
            original = [f.sha256 for f in t.evidence_files if f.role == "original"]
            out.append((t.camera_id, t.rule, t.plate_text, original[0] if original else ""))
        return sorted(out)
    finally:
        store.close()


def _segment_worker_pids() -> list[int]:
    res = subprocess.run(["pgrep", "-f", "ray::SegmentWorker"], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split()]


def _done_markers(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("select count(*) from batch_segments")).scalar() or 0)
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.timeout(420)
def test_batch_on_a_two_node_ray_cluster_survives_a_killed_worker_and_driver(
    shared_data: Path, fresh_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    from conftest import require_model

    require_model(fast_detector())
    videos = shared_data / "videos"
    # two clips keep the test short: the E-TLE clip (a no-helmet ticket with its plate) and the
    # highway (speeding tickets in all three segments); the bundled parking sample runs in the tests above
    clips = [videos / "id_etle_cilacap_alun_motorcycles.mp4", videos / "highway_roadside_traffic1.mp4"]
    cameras = REPO / "examples" / "cameras"
    fast = ["--detector", fast_detector(), "--detect-fps", "6", "--max-seconds", "18"]  # what --fast runs on this CPU
    env = {"RAY_AUTH_MODE": "disabled", "RAY_DISABLE_DOCKER_CPU_WARNING": "1", "RAY_USAGE_STATS_ENABLED": "0",
           # the head's client proxy waits this long for a driver's server to start (Ray's default
           # 30 s is too short on a 2-core machine running a two-node cluster and the test suite)
           "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    # the reference: a sequential etle run of each clip
    seq_db = f"sqlite:///{tmp_path / 'seq.db'}"
    for clip in clips:
        res = _etle("run", str(clip), "-c", str(cameras / f"{clip.stem}.yaml"), *fast, "--db", seq_db,
                    "-o", str(tmp_path / "seq-ev"), "--no-progress", cwd=tmp_path, timeout=180)
        assert res.returncode == 0, res.stderr
    expected = _tickets(seq_db)
    assert expected, "the reference run wrote no ticket: nothing to compare"

    port, client_port = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray = _ray_bin()
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    batch = ["batch", *map(str, clips), "--cluster", f"127.0.0.1:{port}", "--camera-dir", str(cameras), "--fast",
             "--max-seconds", "18", "--segment-seconds", "6", "--overlap-seconds", "3", "--db", fresh_postgres_url,
             "-o", str(tmp_path / "central-ev"), "--no-progress"]
    try:
        for args in (["start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}",
                      "--include-dashboard=false", f"--temp-dir={temp}", *common],
                     ["start", f"--address=127.0.0.1:{port}", *common]):
            res = subprocess.run([ray, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
            assert res.returncode == 0, res.stdout + res.stderr

        # first driver: kill one worker process mid-job, then the driver itself
        driver = subprocess.Popen([sys.executable, "-m", "etle.cli", *batch], cwd=tmp_path, env={**os.environ, **env},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed_worker = False
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and driver.poll() is None:
            pids = _segment_worker_pids()
            if not killed_worker and pids and _done_markers(fresh_postgres_url) >= 1:
                os.kill(pids[0], signal.SIGKILL)
                killed_worker = True
                kill_at = time.monotonic()
            if killed_worker and time.monotonic() - kill_at > 4:
                break
            time.sleep(0.5)
        assert killed_worker, "no segment finished while the first driver ran"
        if driver.poll() is None:
            driver.kill()  # the driver dies with work left: its actors go with it
        driver.communicate(timeout=60)
        partial = _done_markers(fresh_postgres_url)

        # a new driver finishes the job, from outside the cluster this time (Ray Client)
        via_client = [a if a != f"127.0.0.1:{port}" else f"ray://127.0.0.1:{client_port}" for a in batch]
        res = _etle(*via_client, cwd=tmp_path, timeout=240, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert _done_markers(fresh_postgres_url) == 6  # 2 clips x 3 segments of their first 18 s, once each
        assert partial < 6, "the first driver finished everything: nothing was resumed"
        got = _tickets(fresh_postgres_url)
        assert got == expected  # nothing lost, nothing doubled, the same key frames and plates

        # and once more: everything is done, nothing runs, nothing is added
        again = _etle(*batch, cwd=tmp_path, timeout=120, env=env)
        assert again.returncode == 0, again.stderr
        assert _tickets(fresh_postgres_url) == expected
        # the central evidence holds every file of every ticket, as recorded
        from etle.evidence.storage import open_evidence_storage
        from etle.store import open_store

        storage = open_evidence_storage(tmp_path / "central-ev")
        store = open_store(fresh_postgres_url)
        try:
            for t in store.list(limit=1000):
                assert t.evidence_key and t.uid
                for f in t.evidence_files:
                    assert storage.sha256(f"{t.evidence_key}/{f.name}") == f.sha256
        finally:
            store.close()
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120, env={**os.environ, **env})
