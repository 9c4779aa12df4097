"""The composition root with fake detector/plates and the real rules, evidence and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etle.evidence.builder import verify_bundle
from etle.types import Frame, PlateRead, PlateResult

from fixtures.scenes import CAMERA, FPS, H, START, W, CarDownTheRoad, FakePlates, FakeSource, build, make_source  # noqa: F401


def test_red_crossing_gives_one_ticket_with_verified_evidence(tmp_path: Path) -> None:
    pipe, store = build(tmp_path, "red", CarDownTheRoad())
    summary = pipe.run_source(make_source())
    assert summary.violations == 1 and summary.tickets == 1
    tickets = store.list()
    assert len(tickets) == 1
    t = tickets[0]
    assert t.rule == "red_light" and t.status == "pending_review"
    assert t.plate_text == "BH1234AB" and t.plate_confidence == pytest.approx(0.93)
    assert t.camera_id == "test-cam" and t.article == "287(2)" and t.fine == 500000
    assert t.occurred_at.tzinfo is not None and START < t.occurred_at < START.replace(minute=31)
    folder = Path(t.evidence_path)
    names = {p.name for p in folder.iterdir()}
    assert {"overview.jpg", "closeup.jpg", "plate.jpg", "clip.mp4", "manifest.json"} <= names
    assert verify_bundle(folder) == []
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["violation"]["rule"] == "red_light" and manifest["violation"]["track_id"] == t.track_id
    assert manifest["plate"]["text"] == "BH1234AB"
    assert manifest["models"] == {"vehicle-detector": "abc"}


def test_green_crossing_gives_no_ticket(tmp_path: Path) -> None:
    pipe, store = build(tmp_path, "green", CarDownTheRoad())
    summary = pipe.run_source(make_source())
    assert summary.violations == 0 and store.list() == []


def test_stopping_before_the_line_gives_no_ticket(tmp_path: Path) -> None:
    pipe, store = build(tmp_path, "red", CarDownTheRoad(stop_at=110))
    summary = pipe.run_source(make_source())
    assert summary.violations == 0 and store.list() == []


def test_rerun_of_the_same_footage_does_not_duplicate(tmp_path: Path) -> None:
    pipe, store = build(tmp_path, "red", CarDownTheRoad())
    pipe.run_source(make_source())
    pipe.detector = CarDownTheRoad()
    second = pipe.run_source(make_source())
    assert second.violations == 1 and second.tickets == 0
    assert len(store.list()) == 1


class PausedGuard:
    """A view guard that reports a foreign view for the whole run."""

    def update(self, frame: Frame):  # type: ignore[no-untyped-def]
        from etle.viewguard.guard import ViewStatus

        return ViewStatus(ok=False, score=0.0, changed=frame.index == 0)


def test_rules_paused_off_the_reference_view(tmp_path: Path) -> None:
    pipe, store = build(tmp_path, "red", CarDownTheRoad())
    pipe.guard_factory = PausedGuard
    summary = pipe.run_source(make_source())
    assert summary.violations == 0 and summary.view_pauses == 1 and store.list() == []


def test_stage_timings_and_tracks_reported(tmp_path: Path) -> None:
    pipe, _ = build(tmp_path, "green", CarDownTheRoad())
    summary = pipe.run_source(make_source(30))
    assert summary.frames == 30 and summary.tracks == 1
    assert {"detect", "track", "rules", "plate"} <= set(summary.stage_ms)
    assert summary.plates == {1: "BH1234AB"} and summary.unconfirmed_plates == {}


class SplitPlates(FakePlates):
    """Reads that split at the last letter: the consensus holds no majority there."""

    def result(self, track_id: int) -> PlateResult:
        reads = tuple(PlateRead(t, 0.9, frame_index=i) for i, t in enumerate(["BH1234AB", "BH1234AB", "BH1234AR", "BH1234AP"]))
        return PlateResult("BH1234AB", 0.8, candidates=reads, best=reads[0])


def test_a_plate_whose_reads_split_is_listed_as_unconfirmed_and_the_ticket_shows_unread(tmp_path: Path) -> None:
    pipe, store = build(tmp_path, "red", CarDownTheRoad())
    pipe.plate_stage_factory = SplitPlates
    summary = pipe.run_source(make_source())
    assert summary.plates == {} and summary.unconfirmed_plates == {1: "BH1234AB"}
    (t,) = store.list()
    assert t.plate_text == "" and [c.text for c in t.plate_candidates] == ["BH1234AB", "BH1234AB", "BH1234AR", "BH1234AP"]


def test_low_confidence_plate_is_stored_unread_with_candidates() -> None:
    from etle.pipeline import accept_plate

    read = PlateRead("B1", 0.02, raw="B1", frame_index=3)
    weak = PlateResult("B1", 0.02, candidates=(read,), best=read)
    got = accept_plate(weak, 0.3)
    assert got.text == "" and got.candidates == (read,) and got.best is read
    strong = PlateResult("R5154WP", 0.8, candidates=(read,), best=read)
    assert accept_plate(strong, 0.3) is strong


def test_a_ticket_plate_needs_reads_from_two_frames_that_agree() -> None:
    from etle.pipeline import accept_plate, agreeing_frames

    a = PlateRead("R5154WP", 0.9, frame_index=3)
    same_frame = PlateRead("R5154WP", 0.9, frame_index=3)
    other = PlateRead("R5154VP", 0.8, frame_index=6)
    later = PlateRead("R5154WP", 0.7, frame_index=9)
    once = PlateResult("R5154WP", 0.9, candidates=(a, same_frame, other), best=a)
    assert agreeing_frames(once) == 1
    shown = accept_plate(once, 0.3, 2)
    assert shown.text == "" and shown.candidates == once.candidates  # '?' with the candidates
    twice = PlateResult("R5154WP", 0.8, candidates=(a, other, later), best=a)
    assert agreeing_frames(twice) == 2 and accept_plate(twice, 0.3, 2) is twice
    assert accept_plate(twice, 0.9, 2).text == ""  # the consensus confidence still counts


def test_a_ticket_plate_needs_a_majority_at_every_character() -> None:
    from etle.pipeline import accept_plate

    reads = tuple(PlateRead(t, 0.8, frame_index=i) for i, t in enumerate(["R5154VP", "R5154VP", "R5154WP", "R5154MP", "R5154UP"]))
    split = PlateResult("R5154VP", 0.6, candidates=reads, best=reads[0])
    # read whole from two frames and confident enough, but the reads split on the V: '?'
    assert accept_plate(split, 0.3, 2).text == "R5154VP"
    shown = accept_plate(split, 0.3, 2, 0.5)
    assert shown.text == "" and shown.candidates == reads
    held = tuple(PlateRead(t, 0.8, frame_index=i) for i, t in enumerate(["R2333RK", "R2333RK", "R2333RK", "R2333XK"]))
    firm = PlateResult("R2333RK", 0.7, candidates=held, best=held[0])
    assert accept_plate(firm, 0.3, 2, 0.5) is firm
    # a tie is no majority
    tie = PlateResult("R2333RK", 0.7, candidates=held[:2] + (PlateRead("R2333XK", 0.8, frame_index=5),) * 2, best=held[0])
    assert accept_plate(tie, 0.3, 2, 0.5).text == ""


def test_signal_timeline_runs_of_states() -> None:
    from etle.pipeline import signal_timeline

    assert signal_timeline([]) is None
    t = signal_timeline([(0.0, "green"), (0.1, "green"), (0.2, "yellow"), (0.3, "red"), (0.4, "red")], "plan")
    assert t == {"source": "plan", "segments": [[0.0, 0.2, "green"], [0.2, 0.3, "yellow"], [0.3, 0.4, "red"]]}


def test_a_ticket_carries_the_signal_timeline_of_its_clip(tmp_path: Path) -> None:
    pipe, store = build(tmp_path, "red", CarDownTheRoad())
    pipe.run_source(make_source())
    (t,) = store.list()
    manifest = json.loads((Path(t.evidence_path) / "manifest.json").read_text())
    timeline = manifest["violation"]["details"]["signal_timeline"]
    segments = timeline["segments"]
    assert timeline["source"] == "plan" and [s[2] for s in segments] == ["red"]
    # the timeline spans the clip: pre_s before the crossing to post_s after it (1 s each here)
    (start, end, _), pts = segments[0], manifest["time"]["pts"]
    assert start < pts < end and end - start > 1.0
