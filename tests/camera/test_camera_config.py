"""Camera YAML: a good file loads; every kind of mistake is a one-line file:line: field error."""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from etle.camera.config import (
    CameraConfig,
    CameraConfigError,
    LineZone,
    PolygonZone,
    load_camera,
)
from etle.errors import ConfigError
from etle.rules.engine import build_rules

GOOD = """\
id: bjm-stopline
name: Banjarmasin, Jl. A. Yani stop line
location: Jl. Ahmad Yani km 1, Banjarmasin
lat: -3.3194
lon: 114.5908
timezone: Asia/Makassar
start_time: 2024-05-01 07:30:00
view_guard:
  reference: ref.png
  check_every_s: 0.5
  resume_after_s: 1.0
signal:
  type: fixed_plan
  anchor: 17:00:00
  offset_s: 3
  phases:
    - {state: green, duration_s: 30}
    - {state: yellow, duration_s: 3}
    - {state: red, duration_s: 40}
zones:
  stop_line:
    points: [[40, 150], [200, 155], [380, 170]]
    approach_side: [200, 220]
  crossing:
    polygon: [[40, 160], [380, 175], [380, 200], [40, 190]]
rules:
  red_light:
    line: stop_line
    grace_s: 0.5
    min_displacement_px: 6
    labels: [car, motorcycle]
  more_than_two:
"""


@pytest.fixture
def camdir(tmp_path: Path) -> Path:
    img = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "ref.png"), img)
    return tmp_path


def write(camdir: Path, text: str, name: str = "cam.yaml") -> Path:
    path = camdir / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: Path) -> CameraConfigError:
    with pytest.raises(CameraConfigError) as info:
        load_camera(path)
    err = info.value
    assert isinstance(err, ConfigError) and err.exit_code == 2
    assert "\n" not in str(err)
    return err


def test_complete_file_loads(camdir):
    cam = load_camera(write(camdir, GOOD))
    assert cam.id == "bjm-stopline"
    assert cam.view_guard is not None and cam.view_guard.reference == camdir / "ref.png"
    assert cam.signal is not None and cam.signal.type == "fixed_plan"
    assert cam.signal.anchor == "17:00:00"  # not YAML 1.1's base-60 integer 61200
    assert cam.start_time is not None and cam.start_time.utcoffset() == timedelta(hours=8)
    assert isinstance(cam.zones["stop_line"], LineZone)
    assert isinstance(cam.zones["crossing"], PolygonZone)
    assert cam.rules.red_light is not None and cam.rules.red_light.labels == ("car", "motorcycle")
    assert cam.rules.more_than_two is not None and cam.rules.more_than_two.min_persons == 3
    engine = build_rules(cam)
    assert [r.name for r in engine.rules] == ["red_light", "more_than_two"]


def test_minimal_file_takes_defaults(camdir):
    cam = load_camera(write(camdir, "id: cam1\n"))
    assert cam.timezone == "Asia/Jakarta"
    assert cam.view_guard is None and cam.signal is None and cam.zones == {}
    assert build_rules(cam).rules == ()


def test_relative_reference_is_relative_to_the_file_not_the_cwd(camdir, tmp_path, monkeypatch):
    sub = camdir / "cams"
    sub.mkdir()
    shutil.move(camdir / "ref.png", sub / "ref.png")
    monkeypatch.chdir(camdir)
    cam = load_camera(write(sub, GOOD))
    assert cam.view_guard.reference == sub / "ref.png"


def test_config_hash_is_stable_and_tracks_content(camdir, tmp_path):
    a = load_camera(write(camdir, GOOD))
    other = camdir / "elsewhere"
    other.mkdir()
    shutil.copy(camdir / "ref.png", other / "ref.png")
    b = load_camera(write(other, GOOD))
    assert a.config_hash() == b.config_hash()  # same content, other directory
    assert len(a.config_hash()) == 64
    c = load_camera(write(camdir, GOOD.replace("grace_s: 0.5", "grace_s: 0.7"), "c.yaml"))
    assert c.config_hash() != a.config_hash()
    cv2.imwrite(str(other / "ref.png"), np.zeros((90, 160, 3), np.uint8))
    assert load_camera(other / "cam.yaml").config_hash() != a.config_hash()


def test_the_brief_example_message(camdir, monkeypatch):
    monkeypatch.chdir(camdir)
    write(camdir, GOOD.replace("grace_s: 0.5", "grace_s: -1"))
    err = error_of(Path("cam.yaml"))
    line = GOOD.splitlines().index("    grace_s: 0.5") + 1
    assert (
        str(err)
        == f"cam.yaml:{line}: rules.red_light.grace_s: Input should be greater than or equal to 0"
    )


def line_of(text: str, needle: str) -> int:
    return next(i for i, row in enumerate(text.splitlines(), 1) if needle in row)


@pytest.mark.parametrize(
    "old,new,needle,field,words",
    [
        ("lat: -3.3194", "lat: -93", "lat:", "lat", "greater than or equal to -90"),
        ("lat: -3.3194", "lat: south", "lat:", "lat", "valid number"),
        ("id: bjm-stopline", "id: Bjm Stopline", "id:", "id", "should match pattern"),
        (
            "timezone: Asia/Makassar",
            "timezone: Asia/Banjar",
            "timezone:",
            "timezone",
            "unknown IANA",
        ),
        (
            "name: Banjarmasin",
            "colour: red\nname: Banjarmasin",
            "colour:",
            "colour",
            "unknown field",
        ),
        (
            "  check_every_s: 0.5",
            "  check_every: 0.5",
            "check_every:",
            "view_guard.check_every",
            "unknown field",
        ),
        (
            "  reference: ref.png",
            "  reference: nope.png",
            "nope.png",
            "view_guard.reference",
            "not found",
        ),
        (
            "  check_every_s: 0.5",
            "  reference_at_s: 2.0",
            "reference_at_s",
            "view_guard.reference_at_s",
            "video",
        ),
        ("  anchor: 17:00:00", "  anchor: noon", "anchor:", "signal.anchor", "HH:MM:SS"),
        ("  anchor: 17:00:00", "  anchor: 25:00:00", "anchor:", "signal.anchor", "HH:MM:SS"),
        (
            "{state: yellow, duration_s: 3}",
            "{state: amber, duration_s: 3}",
            "amber",
            "signal.phases.1.state",
            "'red'",
        ),
        (
            "{state: red, duration_s: 40}",
            "{state: red, duration_s: 0}",
            "duration_s: 0",
            "signal.phases.2.duration_s",
            "greater than 0",
        ),
        (
            "  type: fixed_plan",
            "  type: adaptive",
            "type: adaptive",
            "signal.type",
            "'fixed_plan', 'roi'",
        ),
        ("  type: fixed_plan", "  kind: fixed_plan", "signal:", "signal.type", "Field required"),
        ("  crossing:\n", "  bad: 5\n  crossing:\n", "bad: 5", "zones.bad", "`points`"),
        (
            "    approach_side: [200, 220]",
            "    approach_side: [200, 155]",
            "approach_side",
            "zones.stop_line.approach_side",
            "on the line",
        ),
        (
            "    approach_side: [200, 220]",
            "    direction: [0, -1]\n    approach_side: [200, 220]",
            "approach_side",
            "zones.stop_line.approach_side",
            "exactly one",
        ),
        (
            "    points: [[40, 150], [200, 155], [380, 170]]",
            "    points: [[40, 150]]",
            "points:",
            "zones.stop_line.points",
            "at least 2",
        ),
        (
            "    line: stop_line",
            "    line: stopline",
            "line: stopline",
            "rules.red_light.line",
            "no zone named 'stopline'",
        ),
        (
            "    line: stop_line",
            "    line: crossing",
            "line: crossing",
            "rules.red_light.line",
            "not a line",
        ),
        (
            "    labels: [car, motorcycle]",
            "    labels: [car, becak]",
            "labels:",
            "rules.red_light.labels",
            "becak",
        ),
        (
            "  more_than_two:",
            "  more_than_two:\n    min_persons: 1",
            "min_persons",
            "rules.more_than_two.min_persons",
            "greater than or equal to 2",
        ),
        (
            "  more_than_two:",
            "  jaywalking: {limit: 60}",
            "jaywalking",
            "rules.jaywalking",
            "unknown rule 'jaywalking'",
        ),
        (
            "    grace_s: 0.5",
            "    grace_s: soon",
            "grace_s",
            "rules.red_light.grace_s",
            "valid number",
        ),
    ],
)
def test_errors_name_file_line_and_field(camdir, old, new, needle, field, words):
    assert old in GOOD
    text = GOOD.replace(old, new)
    path = write(camdir, text)
    err = error_of(path)
    expected_prefix = f"{path}:{line_of(text, needle)}: {field}: "
    assert any(p.startswith(expected_prefix) and words in p for p in err.problems), err.problems
    assert str(err).startswith(err.problems[0])


def test_missing_required_field_points_at_its_parent(camdir):
    text = GOOD.replace(
        "  phases:\n    - {state: green, duration_s: 30}\n    - {state: yellow, duration_s: 3}\n"
        "    - {state: red, duration_s: 40}\n",
        "",
    )
    path = write(camdir, text)
    err = error_of(path)
    assert err.problems == (f"{path}:{line_of(text, 'signal:')}: signal.phases: Field required",)


def test_all_errors_are_reported(camdir):
    text = GOOD.replace("lat: -3.3194", "lat: 100").replace("grace_s: 0.5", "grace_s: -1")
    err = error_of(write(camdir, text))
    assert len(err.problems) == 2
    assert str(err).endswith("(and 1 more)")


def test_missing_file(tmp_path):
    err = error_of(tmp_path / "nope.yaml")
    assert str(err) == f"{tmp_path / 'nope.yaml'}: camera file not found"


def test_directory(tmp_path):
    assert "is a directory" in str(error_of(tmp_path))


def test_yaml_syntax_error_names_the_line(camdir):
    path = write(camdir, "id: cam1\nzones:\n  a: [1, 2\nrules: {}\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:4: invalid YAML:")


def test_tab_indentation_is_a_syntax_error(camdir):
    path = write(camdir, "id: cam1\nview_guard:\n\treference: ref.png\n")
    assert str(error_of(path)).startswith(f"{path}:3: invalid YAML")


def test_duplicate_keys_are_refused(camdir):
    path = write(camdir, "id: cam1\nlat: 1\nlat: 2\n")
    assert str(error_of(path)) == f"{path}:3: duplicate key 'lat'"


@pytest.mark.parametrize(
    "text,words", [("", "empty"), ("- a\n- b\n", "mapping"), ("just text\n", "mapping")]
)
def test_empty_or_not_a_mapping(camdir, text, words):
    assert words in str(error_of(write(camdir, text)))


def test_binary_file(camdir):
    path = camdir / "cam.yaml"
    path.write_bytes(b"\xff\xfe\x00id")
    assert "not UTF-8" in str(error_of(path))


def test_red_light_needs_a_signal(camdir):
    text = GOOD[: GOOD.index("signal:")] + GOOD[GOOD.index("zones:") :]
    path = write(camdir, text)
    err = error_of(path)
    assert (
        err.problems[0]
        == f"{path}:{line_of(text, 'red_light:')}: rules.red_light: needs a `signal` section"
    )


def test_roi_signal_and_direction_zone(camdir):
    text = """\
    id: cam2
    signal:
      type: roi
      polygon: [[300, 10], [320, 10], [320, 60], [300, 60]]
      debounce_s: 0.5
    zones:
      stop_line:
        points: [[0, 100], [400, 100]]
        direction: [0, -1]
    rules:
      red_light: {}
    """
    cam = load_camera(write(camdir, text))
    assert cam.signal.type == "roi" and cam.signal.debounce_s == 0.5
    assert cam.zones["stop_line"].direction == (0.0, -1.0)


def test_models_are_frozen_and_forbid_extras():
    cam = CameraConfig.model_validate({"id": "cam1"})
    with pytest.raises(ValidationError):
        cam.id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        CameraConfig.model_validate({"id": "cam1", "extra": 1})


def test_start_time_with_offset_is_kept(camdir):
    cam = load_camera(write(camdir, "id: cam1\nstart_time: 2024-05-01T07:30:00+07:00\n"))
    assert cam.start_time == datetime.fromisoformat("2024-05-01T07:30:00+07:00")


def test_overlays_are_polygons_of_three_points_or_more(camdir):
    cam = load_camera(write(camdir, GOOD + "overlays:\n  - [[0, 0], [100, 0], [100, 20], [0, 20]]\n"))
    assert cam.overlays == (((0.0, 0.0), (100.0, 0.0), (100.0, 20.0), (0.0, 20.0)),)
    assert load_camera(write(camdir, GOOD)).overlays == ()
    err = error_of(write(camdir, GOOD + "overlays:\n  - [[0, 0], [100, 0]]\n"))
    assert any("overlays" in p and "3 points" in p for p in err.problems), err.problems
