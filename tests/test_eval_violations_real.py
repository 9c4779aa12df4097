"""``etle eval violations`` on the shipped truth file of the four shared clips (slow; CI).

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

REPO = Path(__file__).resolve().parents[1]
TRUTH = REPO / "eval" / "truth" / "shared_clips.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def fast_results(shared_data: Path):  # type: ignore[no-untyped-def]
    from conftest import require_model

    require_model("vehicle-detector-int8")
    truth = load_truth(TRUTH)
    if not all(c.video.is_file() for c in truth.clips):  # shared/ elsewhere (ETLE_SHARED_DIR)
        truth = truth.model_copy(update={"clips": tuple(
            c.model_copy(update={"video": shared_data / "videos" / c.video.name}) for c in truth.clips)})
    options = EvalOptions(detector_model="vehicle-detector-int8", detect_fps=6.0)
    return truth, options, evaluate_truth(truth, options)


def test_no_false_ticket_on_the_shared_clips(fast_results) -> None:  # type: ignore[no-untyped-def]
    _, _, results = fast_results
    scores = score(results)
    false = {rule: s.fp for rule, s in scores.items() if s.fp}
    assert not false, f"false tickets: {false}"


def test_right_tickets_floors(fast_results) -> None:  # type: ignore[no-untyped-def]
    _, _, results = fast_results
    s = score(results)
    # measured: red_light 2 of 4 certain crossings (Banjarmasin's top-down cars are missed by
    # the COCO detector; the parking clip's grey car is caught), no_helmet 1 of 1 (Cilacap)
    assert s["red_light"].tp >= 2, s["red_light"]
    assert s["no_helmet"].tp >= 1 and s["no_helmet"].recall == 1.0, s["no_helmet"]
    # the one readable plate on a ticket is exact, never a confident wrong one
    assert s["no_helmet"].plates_exact >= 1 and s["no_helmet"].plates_wrong == 0, s["no_helmet"]
    assert sum(x.plates_wrong for x in s.values()) == 0


def test_every_clip_ran_and_the_report_renders(fast_results) -> None:  # type: ignore[no-untyped-def]
    truth, options, results = fast_results
    assert [r.clip for r in results] == [c.name for c in truth.clips]
    assert all(r.frames > 200 for r in results)
    report = report_dict(TRUTH, truth, options, results)
    page = render({"violations-fast.json": report})
    assert "| no_helmet | " in page and "fast profile" in page
    # scored rules of a clip default to its camera file's rules; the highway clip scores wrong_way only
    assert {r.clip: r.rules for r in results}["highway"] == ("wrong_way",)
