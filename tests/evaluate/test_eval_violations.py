"""``etle eval violations``: the truth file format and the matching rules (pure, no models)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etle.errors import ConfigError
from etle.evaluate.violations import (
    ClipResult,
    TicketObs,
    TruthFile,
    load_truth,
    match_clip,
    score,
)
from etle.types import Box


def _truth(events: list[dict], **clip: object) -> TruthFile:
    data = {"version": 1, "tolerance_s": 1.0, "clips": [{"name": "c", "video": "v.mp4", "camera": "cam.yaml", "events": events, **clip}]}
    return TruthFile.model_validate(data)


def _ticket(rule: str = "red_light", pts: float = 2.0, box: Box = Box(100, 100, 200, 200), plate: str = "",
            track: tuple[tuple[float, Box], ...] = ()) -> TicketObs:
    return TicketObs(rule=rule, track_id=1, pts=pts, label="car", box=box, plate=plate, track=track)


EVENT = {"rule": "red_light", "t": [1.5, 2.5], "at": 2.0, "point": [150, 150], "plate": "DA 1234 AB"}


def _kinds(truth: TruthFile, tickets: list[TicketObs], rules: tuple[str, ...] = ("red_light",)) -> list[str]:
    return [o.kind for o in match_clip(truth.clips[0], tickets, truth, rules)]


def test_a_ticket_on_the_labelled_vehicle_in_time_is_a_true_positive() -> None:
    truth = _truth([EVENT])
    assert _kinds(truth, [_ticket()]) == ["tp"]


def test_ticket_time_outside_the_window_plus_tolerance_is_a_false_positive_and_a_miss() -> None:
    truth = _truth([EVENT])
    seen = ((2.0, Box(100, 100, 200, 200)),)  # the car was at the point at the event's moment
    assert sorted(_kinds(truth, [_ticket(pts=3.4, track=seen)])) == ["tp"]  # inside 2.5 + 1.0
    assert sorted(_kinds(truth, [_ticket(pts=3.6, track=seen)])) == ["fn", "fp"]


def test_a_ticket_on_another_vehicle_does_not_match() -> None:
    truth = _truth([EVENT])
    other = _ticket(box=Box(300, 100, 400, 200))
    assert sorted(_kinds(truth, [other])) == ["fn", "fp"]


def test_the_vehicle_is_placed_by_the_track_box_nearest_to_the_event_moment() -> None:
    truth = _truth([{**EVENT, "at": 1.0, "t": [1.0, 2.5]}])
    # at the ticket time the car is elsewhere; at 1.0 s its box holds the point
    moving = _ticket(box=Box(300, 300, 400, 400), track=((1.0, Box(120, 120, 180, 180)), (2.0, Box(300, 300, 400, 400))))
    assert _kinds(truth, [moving]) == ["tp"]
    # no box of the track within max_gap_s (0.5 s) of the moment: the vehicle cannot be placed
    late = _ticket(track=((2.0, Box(120, 120, 180, 180)),))
    assert sorted(_kinds(truth, [late])) == ["fn", "fp"]


def test_a_stationary_vehicle_is_placed_at_the_ticket_time() -> None:
    # a vehicle waiting at the line all through 0-10 s; the tracker lost it and its second track,
    # which carries the ticket, begins at 6 s: nothing of that track is near the labelled moment
    waiting = {**EVENT, "rule": "no_helmet", "t": [0.0, 10.0], "at": 2.0}
    second_track = _ticket(rule="no_helmet", pts=8.0, track=((6.0, Box(100, 100, 200, 200)), (8.0, Box(102, 100, 202, 200))))
    assert sorted(_kinds(_truth([waiting]), [second_track], ("no_helmet",))) == ["fn", "fp"]
    assert _kinds(_truth([{**waiting, "stationary": True}]), [second_track], ("no_helmet",)) == ["tp"]
    # still the same vehicle only: a stationary event does not match a ticket on another one
    other = _ticket(rule="no_helmet", pts=8.0, track=((8.0, Box(300, 100, 400, 200)),))
    assert sorted(_kinds(_truth([{**waiting, "stationary": True}]), [other], ("no_helmet",))) == ["fn", "fp"]


def test_box_margin_grows_the_box() -> None:
    truth = _truth([{**EVENT, "point": [205, 150]}])  # 5 px right of the box, margin 10 px
    assert _kinds(truth, [_ticket()]) == ["tp"]
    strict = truth.model_copy(update={"box_margin": 0.0})
    assert sorted(_kinds(strict, [_ticket()])) == ["fn", "fp"]


def test_other_rule_does_not_match() -> None:
    truth = _truth([EVENT])
    assert sorted(_kinds(truth, [_ticket(rule="stop_line")], ("red_light", "stop_line"))) == ["fn", "fp"]


def test_one_to_one_two_tickets_one_event() -> None:
    truth = _truth([EVENT])
    kinds = _kinds(truth, [_ticket(pts=2.0), _ticket(pts=2.9)])
    assert sorted(kinds) == ["fp", "tp"]
    outcomes = match_clip(truth.clips[0], [_ticket(pts=2.9), _ticket(pts=2.0)], truth, ("red_light",))
    tp = [o for o in outcomes if o.kind == "tp"][0]
    assert tp.ticket is not None and tp.ticket.pts == 2.0  # the one inside the window wins


def test_uncertain_events_are_neither_hits_nor_misses() -> None:
    truth = _truth([{**EVENT, "uncertain": True}])
    assert _kinds(truth, [_ticket()]) == ["ignored"]
    assert _kinds(truth, []) == []


def test_windows_and_scored_rules_limit_what_counts() -> None:
    truth = _truth([{**EVENT, "t": [20.0, 21.0], "at": 20.5}], windows=[[0.0, 10.0]])
    # an event outside every counted window is not a miss; a ticket there is not scored
    assert _kinds(truth, [_ticket(pts=20.5, box=Box(0, 0, 10, 10))]) == ["outside"]
    # a rule the clip does not score: its tickets are listed, not counted
    assert _kinds(_truth([]), [_ticket(rule="speeding")]) == ["outside"]


def test_plate_status_exact_unread_wrong_and_scores() -> None:
    truth = _truth([EVENT])
    results = []
    for plate in ("DA1234AB", "", "DA1284AB"):
        outcomes = match_clip(truth.clips[0], [_ticket(plate=plate)], truth, ("red_light",))
        results.append(ClipResult("c", ("red_light", "stop_line"), outcomes))
    assert [r.outcomes[0].plate_status for r in results] == ["exact", "unread", "wrong"]
    s = score(results)
    assert s["red_light"].tp == 3 and s["red_light"].plates_exact == 1
    assert s["red_light"].plates_unread == 1 and s["red_light"].plates_wrong == 1
    assert s["stop_line"].tp == 0 and s["stop_line"].precision is None  # scored, nothing happened


def test_precision_and_recall() -> None:
    truth = _truth([EVENT, {**EVENT, "t": [5.0, 6.0], "at": 5.5}])
    outcomes = match_clip(truth.clips[0], [_ticket(), _ticket(pts=8.0, box=Box(0, 0, 5, 5))], truth, ("red_light",))
    s = score([ClipResult("c", ("red_light",), outcomes)])["red_light"]
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\nclips:\n  - {name: a, video: v.mp4, camera: c.yaml, events: [{rule: red_lite, t: [0, 1], point: [1, 1]}]}\n", "unknown rule 'red_lite'"),
        ("version: 1\nclips:\n  - {name: a, video: v.mp4, camera: c.yaml, events: [{rule: red_light, t: [2, 1], point: [1, 1]}]}\n", "start <= end"),
        ("version: 1\nclips:\n  - {name: a, video: v.mp4, camera: c.yaml}\n  - {name: a, video: v.mp4, camera: c.yaml}\n", "unique"),
        ("version: 1\nclips:\n  - {name: a, video: v.mp4, camera: c.yaml, colour: red}\n", "colour"),
        ("version: 2\nclips: []\n", "version"),
    ],
)
def test_bad_truth_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "truth.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_truth(f)
    assert str(err.value).startswith(f"{f}:")


def test_paths_are_relative_to_the_truth_file_and_plates_normalised(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "truth.yaml"
    f.write_text("version: 1\nclips:\n  - name: a\n    video: ../v.mp4\n    camera: cam.yaml\n"
                 "    events: [{rule: no_helmet, t: [0, 1], point: [1, 1], plate: 'r 2333 rk'}]\n")
    t = load_truth(f)
    assert t.clips[0].video == tmp_path / "sub" / ".." / "v.mp4"
    assert t.clips[0].camera == tmp_path / "sub" / "cam.yaml"
    assert t.clips[0].events[0].plate == "R2333RK"
    assert t.clips[0].events[0].moment == 0.5


def _etle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etle.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_fails_in_one_line_on_a_missing_video(tmp_path: Path) -> None:
    f = tmp_path / "truth.yaml"
    f.write_text("version: 1\nclips:\n  - {name: a, video: nowhere.mp4, camera: cam.yaml}\n")
    res = _etle("eval", "violations", str(f), "--no-progress")
    assert res.returncode == 3, res.stderr
    assert "video not found" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_unknown_clip_and_bad_truth_are_config_errors(tmp_path: Path) -> None:
    f = tmp_path / "truth.yaml"
    f.write_text("version: 1\nclips:\n  - {name: a, video: nowhere.mp4, camera: cam.yaml}\n")
    res = _etle("eval", "violations", str(f), "--clip", "b")
    assert res.returncode == 2 and "no clip named b" in res.stderr
    f.write_text("version: 1\nclips: [{name: a}]\n")
    res = _etle("eval", "violations", str(f))
    assert res.returncode == 2 and f"{f}:2:" in res.stderr


def test_cli_help_documents_the_command() -> None:
    res = CliRunner().invoke(__import__("etle.cli", fromlist=["app"]).app, ["eval", "violations", "--help"])
    assert res.exit_code == 0 and "truth_file" in res.output.lower() and "--fast" in res.output
