"""``etle eval violations`` on the shipped truth file of the four shared clips (slow; CI).

The sample clip is labelled twice: with its camera file (red light against a declared plan) and
with the aisle declared one-way (``eval/cameras/intel_parking_one_way.yaml``, wrong way); the
Banjarmasin clip's close framing of the stop line has its own camera file (stop line).

The fast profile (the edge box's default: int8 detector, 6 detections/s, motion gate) runs on
every clip as ``etle eval violations eval/truth/shared_clips.yaml --fast`` does.  The floors are
the figures measured when the truth was labelled (docs/accuracy.md); a change that loses a right
ticket or adds a false one fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etle.evaluate.report import render
from etle.evaluate.violations import EvalOptions, evaluate_truth, load_truth, report_dict, score

REPO = Path(__file__).resolve().parents[2]
TRUTH = REPO / "eval" / "truth" / "shared_clips.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def fast_results(shared_data: Path, remembering_detector):  # type: ignore[no-untyped-def]
    truth = load_truth(TRUTH)
    if not all(c.video.is_file() for c in truth.clips):  # shared/ elsewhere (ETLE_SHARED_DIR)
        truth = truth.model_copy(update={"clips": tuple(
            c.model_copy(update={"video": shared_data / "videos" / c.video.name}) for c in truth.clips)})
    options = EvalOptions.fast()
    # the profile's detector, loaded once and run once per distinct picture: each clip runs
    # under two camera files, whose strides detect on the same frames
    detector = remembering_detector(options.detector, options.conf_threshold)
    return truth, options, evaluate_truth(truth, options, detector=detector)


def test_no_false_ticket_on_the_shared_clips(fast_results) -> None:  # type: ignore[no-untyped-def]
    _, _, results = fast_results
    scores = score(results)
    false = {rule: s.fp for rule, s in scores.items() if s.fp}
    assert not false, f"false tickets: {false}"


def test_right_tickets_floors(fast_results) -> None:  # type: ignore[no-untyped-def]
    _, _, results = fast_results
    s = score(results)
    # red_light: the int8 detector sees the top-down red-light cars weakly and not alike on
    # every CPU (docs/accuracy.md); the red-light floor is on the default profile below.
    # measured (fast profile): no_helmet 2 of 2 (Cilacap, both framings: the child behind the
    # rider of R 2333 RK), no false ticket
    assert s["no_helmet"].tp >= 2 and s["no_helmet"].recall == 1.0, s["no_helmet"]
    # the one readable plate on a ticket is exact, never a confident wrong one
    assert s["no_helmet"].plates_exact >= 1 and s["no_helmet"].plates_wrong == 0, s["no_helmet"]
    assert sum(x.plates_wrong for x in s.values()) == 0
    # measured (fast profile): wrong_way 1 of 2 on the sample clip with its aisle declared one-way
    # (the red car driving up; the white car at 4.5-8.5 s is not seen from above by the COCO model)
    assert s["wrong_way"].tp >= 1, s["wrong_way"]
    # measured (fast profile): stop_line 1 of 1 in Banjarmasin's close framing (the white scooter
    # waiting past the line); the same scooter in the wide view is too small for the COCO model
    assert s["stop_line"].tp >= 1, s["stop_line"]


def test_every_clip_ran_and_the_report_renders(fast_results) -> None:  # type: ignore[no-untyped-def]
    truth, options, results = fast_results
    assert [r.clip for r in results] == [c.name for c in truth.clips]
    assert all(r.frames > 200 for r in results)
    report = report_dict(TRUTH, truth, options, results)
    page = render({"violations-fast.json": report})
    assert "| no_helmet | " in page and "fast profile" in page
    # scored rules of a clip default to its camera file's rules; the highway clip scores wrong_way only
    assert {r.clip: r.rules for r in results}["highway"] == ("wrong_way",)


def test_red_light_floor_in_the_default_profile(shared_data: Path, remembering_detector) -> None:  # type: ignore[no-untyped-def]
    """The float detector on every frame, on the two clips with red-light crossings: measured 2 of
    the 4 certain crossings (Banjarmasin's car at 3.9 s, the sample's grey car at 16 s), no false
    ticket.  The other Banjarmasin cars are seen too weakly from above by the COCO model."""
    truth = load_truth(TRUTH)
    clips = tuple(c for c in truth.clips if c.name in ("banjarmasin", "parking"))
    if not all(c.video.is_file() for c in clips):  # shared/ elsewhere (ETLE_SHARED_DIR)
        clips = tuple(c.model_copy(update={"video": shared_data / "videos" / c.video.name}) for c in clips)
    options = EvalOptions(read_plates=False)
    # the float detector the e2e tests ran on these clips' frames (once per distinct picture)
    detector = remembering_detector(options.detector, options.conf_threshold)
    results = evaluate_truth(truth.model_copy(update={"clips": clips}), options, detector=detector)
    s = score(results)
    assert s["red_light"].tp >= 2 and s["red_light"].fp == 0, s["red_light"]
