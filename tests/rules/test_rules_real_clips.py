"""The rule suite on real footage with the real detector (slow; needs ../shared/data).

* Cilacap (E-TLE camera, motorcycles at a stop line): exactly one no-helmet violation, for the
  motorcycle "R 2333 RK" whose child passenger wears no helmet; none for the fully helmeted
  riders around it; nobody carries three.
* Banjarmasin (Dishub camera over a stop line and zebra crossing): red-light, stop-line and
  wrong-way logic run with the fitted example file over the wide view (0-9.6 s).

The rules run on the detector's tracks exactly as in ``etle run`` (pipeline, view guard, rule
engine), without plate reading and without writing evidence, to keep each test under a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etle.camera.config import load_camera
from etle.config.run import RunOptions
from etle.pipeline import Pipeline
from etle.rules.engine import build_rules
from etle.signal.source import build_signal
from etle.types import Violation

REPO = Path(__file__).resolve().parents[2]
CAMS = REPO / "examples" / "cameras"

pytestmark = pytest.mark.slow


class Collect:
    """A sink that keeps the violations (no evidence, no database)."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def record(self, violation, key_frame, key_objects, clip, plate, source_info):  # type: ignore[no-untyped-def]
        self.violations.append(violation)
        return None


@pytest.fixture(scope="module")
def detector(remembering_detector):  # type: ignore[no-untyped-def]
    """The float detector, run once per distinct picture in the session (the e2e tests ran it on
    these clips' first seconds already)."""
    return remembering_detector("vehicle-detector")


def run(shared: Path, name: str, seconds: float, detector) -> list[Violation]:  # type: ignore[no-untyped-def]
    from etle.viewguard.guard import ViewGuard
    from etle.ingest.sources import open_source
    from etle.track.bytetrack import ByteTrackTracker

    camera = load_camera(CAMS / f"{name}.yaml")
    if camera.view_guard is not None:  # the reference is the shared clip itself
        guard = camera.view_guard.model_copy(update={"reference": shared / "videos" / f"{name}.mp4"})
        camera = camera.model_copy(update={"view_guard": guard})
    sink = Collect()
    pipe = Pipeline(
        detector=detector,
        tracker_factory=lambda fps: ByteTrackTracker(frame_rate=fps),
        rules_factory=lambda: build_rules(camera),
        guard_factory=(lambda: ViewGuard.from_config(camera)) if camera.view_guard is not None else None,
        signal_factory=(lambda: build_signal(camera)) if camera.signal is not None else None,
        sink=sink,
        config=RunOptions(read_plates=False, max_seconds=seconds, post_s=0.5),
    )
    src = open_source(str(shared / "videos" / f"{name}.mp4"), wall_start=camera.start_time, max_seconds=seconds)
    pipe.run_source(src)
    return sink.violations


def test_cilacap_child_without_helmet_behind_r2333rk(shared_data: Path, detector) -> None:  # type: ignore[no-untyped-def]
    found = run(shared_data, "id_etle_cilacap_alun_motorcycles", 13.7, detector)
    helmet = [v for v in found if v.rule == "no_helmet"]
    assert [v.rule for v in found if v.rule != "no_helmet"] == []  # nobody carries three
    assert len(helmet) == 1, helmet
    v = helmet[0]
    # R 2333 RK is the middle motorcycle of the front row (box about x 280-425, y 135-358)
    x1, y1, x2, y2 = v.box.as_tuple()
    assert 250 < x1 < 310 and 380 < x2 < 440 and y2 > 330, v.box
    assert len(v.details["persons_without_helmet"]) == 1
    assert len(v.related_track_ids) == 2  # the helmeted rider and the bare-headed child


def test_banjarmasin_stop_line_and_red_light(shared_data: Path, detector) -> None:  # type: ignore[no-untyped-def]
    found = run(shared_data, "id_dishub_banjarmasin_stopline", 9.6, detector)
    by_rule: dict[str, int] = {}
    for v in found:
        by_rule[v.rule] = by_rule.get(v.rule, 0) + 1
    # the car crossing at ~3.5 s in the red phase; nobody stopped on the crossing (the
    # motorcycles waiting at the line are too small for the detector), nobody drove the wrong way
    assert by_rule == {"red_light": 1}, by_rule


def test_highway_speeds_from_the_lane_marking_calibration(shared_data: Path, detector) -> None:  # type: ignore[no-untyped-def]
    """Speeds on the calibrated carriageway are plausible for the road (the demo limit is 50 km/h);
    nobody is going the wrong way on either carriageway."""
    found = run(shared_data, "highway_roadside_traffic1", 31.0, detector)
    assert {v.rule for v in found} <= {"speeding"}
    speeds = [v.details["speed_kmh"] for v in found]
    assert 1 <= len(speeds) <= 4, speeds
    assert all(55.0 < s < 90.0 for s in speeds), speeds
    assert all(v.details["residual_m"] <= 1.5 for v in found)
