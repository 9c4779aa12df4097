"""Camera YAML for the whole rule suite: every rule's options load, every mistake names file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from etle.camera.config import CameraConfigError, PolygonZone, load_camera
from etle.rules.engine import build_rules

REPO = Path(__file__).resolve().parents[2]

ALL_RULES = """\
id: jambi-tugu-juang-n
timezone: Asia/Jakarta
signal:
  type: mqtt
  topic: atcs/jambi/tugu-juang/north
  head: north
  stale_after_s: 60
calibration:
  image_points: [[100, 400], [540, 400], [420, 200], [220, 200]]
  world_points: [[0, 0], [7, 0], [7, 30], [0, 30]]
zones:
  stop_line:
    points: [[80, 380], [560, 380]]
    approach_side: [320, 300]
  zebra:
    polygon: [[80, 385], [560, 385], [560, 430], [80, 430]]
  lane_in:
    polygon: [[220, 200], [420, 200], [540, 380], [100, 380]]
    direction: [0, 1]
  busway:
    polygon: [[420, 200], [470, 200], [600, 380], [540, 380]]
  no_stop:
    polygon: [[0, 200], [100, 200], [100, 380], [0, 380]]
rules:
  red_light: {line: stop_line, grace_s: 0.3}
  stop_line: {zones: [zebra], grace_s: 2}
  wrong_way: {lanes: [lane_in], min_distance_px: 50}
  speeding: {limits_kmh: {lane_in: 50}, tolerance_kmh: 5}
  no_helmet: {threshold: 0.65}
  more_than_two: {}
  odd_even:
    zone: lane_in
    hours: ["06:00-10:00", "16:00-21:00"]
    weekdays: [mon, tue, wed, thu, fri]
    holidays: [2025-03-31, 2025-04-01]
    exempt_plates: ["B 1 RI"]
  busway: {zones: [busway], min_dwell_s: 3}
  no_stopping: {zones: [no_stop], min_dwell_s: 60}
  invalid_plate: {registry: registry.csv, flag_unregistered: false}
"""


def write(tmp: Path, text: str) -> Path:
    (tmp / "registry.csv").write_text("plate,vehicle_type\nB1234XY,car\n", encoding="utf-8")
    p = tmp / "cam.yaml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def problems(tmp: Path, text: str) -> tuple[str, ...]:
    with pytest.raises(CameraConfigError) as info:
        load_camera(write(tmp, text))
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    return next(i for i, row in enumerate(text.splitlines(), 1) if needle in row)


def test_every_rule_loads_and_builds(tmp_path):
    cam = load_camera(write(tmp_path, ALL_RULES))
    assert cam.signal is not None and cam.signal.type == "mqtt"
    assert isinstance(cam.zones["lane_in"], PolygonZone) and cam.zones["lane_in"].direction == (0.0, 1.0)
    assert cam.rules.odd_even is not None and cam.rules.odd_even.exempt_plates == ("B1RI",)
    assert str(cam.rules.odd_even.holidays[0]) == "2025-03-31"
    assert cam.rules.invalid_plate is not None and cam.rules.invalid_plate.registry == tmp_path / "registry.csv"

    class NoHeads:
        def predict(self, crops):  # pragma: no cover - not called here
            raise AssertionError

    class NoFinder:
        def find_many(self, image, regions):  # pragma: no cover - not called here
            raise AssertionError

    eng = build_rules(cam, helmet_classifier=NoHeads(), head_detector=NoFinder())
    assert [r.name for r in eng.rules] == [
        "red_light", "stop_line", "wrong_way", "speeding", "no_helmet", "more_than_two",
        "odd_even", "busway", "no_stopping", "invalid_plate",
    ]


def test_no_helmet_loads_the_committed_models(tmp_path):
    from etle.helmet.classifier import HelmetClassifier
    from etle.helmet.heads import HeadDetector

    cam = load_camera(write(tmp_path, "id: c1\nrules:\n  no_helmet:\n"))
    (rule,) = build_rules(cam).rules
    assert rule.name == "no_helmet" and isinstance(rule._heads, HeadDetector) and isinstance(rule._clf, HelmetClassifier)
    cam = load_camera(write(tmp_path, "id: c1\nrules:\n  no_helmet: {heads: estimate}\n"))
    (rule,) = build_rules(cam).rules
    assert isinstance(rule._clf, HelmetClassifier) and rule._heads is None


@pytest.mark.parametrize(
    "old, new, needle, field, words",
    [
        ("    direction: [0, 1]\n", "", "  wrong_way:", "rules.wrong_way.lanes.0", "has no `direction`"),
        ("lanes: [lane_in]", "lanes: [stop_line]", "  wrong_way:", "rules.wrong_way.lanes.0", "is not a polygon"),
        ("zones: [zebra]", "zones: [zebre]", "  stop_line: {zones", "rules.stop_line.zones.0", "no zone named 'zebre'"),
        ("limits_kmh: {lane_in: 50}", "limits_kmh: {lane_in: 500}", "  speeding:", "rules.speeding.limits_kmh", "between 0 and 300"),
        ('"16:00-21:00"', '"21:00-16:00"', "    hours:", "rules.odd_even.hours", "ends before it starts"),
        ('"06:00-10:00"', '"6-10"', "    hours:", "rules.odd_even.hours", "not a window"),
        ("weekdays: [mon,", "weekdays: [monday,", "    weekdays:", "rules.odd_even.weekdays.0", "Input should be"),
        ('exempt_plates: ["B 1 RI"]', 'exempt_plates: ["--"]', "    exempt_plates", "rules.odd_even.exempt_plates", None),
        ("registry: registry.csv", "registry: nope.csv", "  invalid_plate:", "rules.invalid_plate.registry", "registry file not found"),
        ("threshold: 0.65", "threshold: 1.5", "  no_helmet:", "rules.no_helmet.threshold", "less than 1"),
        ("  topic: atcs/jambi/tugu-juang/north\n", "", "signal:", "signal.topic", "Field required"),
        ("  type: mqtt", "  type: carrier-pigeon", "  type:", "signal.type", "unknown type"),
        ("busway: {zones: [busway]", "busway: {zones: [busway], allowed_labels: [tram]", "  busway: {", "rules.busway.allowed_labels", "unknown label"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, old, new, needle, field, words):
    assert old in ALL_RULES, old
    text = ALL_RULES.replace(old, new)
    found = problems(tmp_path, text)
    path = tmp_path / "cam.yaml"
    prefix = f"{path}:{line_of(text, needle)}: {field}"
    assert any(p.startswith(prefix) and (words is None or words in p) for p in found), found


def test_speeding_needs_a_calibration(tmp_path):
    text = ALL_RULES.replace("calibration:\n", "calibration_off:\n")
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("calibration_off", "  image_points", "  world_points")))
    found = problems(tmp_path, text + "\n")
    assert any("rules.speeding: needs a `calibration` section" in p for p in found), found


def test_stop_line_needs_a_signal(tmp_path):
    text = "id: c1\nzones:\n  z: {polygon: [[0, 0], [10, 0], [10, 10]]}\nrules:\n  stop_line: {zones: [z]}\n"
    found = problems(tmp_path, text)
    assert found == (f"{tmp_path / 'cam.yaml'}:5: rules.stop_line: needs a `signal` section",)


def test_mistyped_calibration_point_is_caught(tmp_path):
    text = ALL_RULES.replace(
        "  world_points: [[0, 0], [7, 0], [7, 30], [0, 30]]",
        "  image_points_x: 0\n",
    ).replace("  image_points_x: 0\n", "  world_points: [[0, 0], [7, 0], [7, 30], [0, 30], [3.5, 29]]")
    text = text.replace("  image_points: [[100, 400], [540, 400], [420, 200], [220, 200]]",
                        "  image_points: [[100, 400], [540, 400], [420, 200], [220, 200], [320, 300]]")
    found = problems(tmp_path, text)
    assert any("calibration.image_points" in p and "check the points" in p for p in found), found


def test_zero_area_polygon_and_zero_direction(tmp_path):
    found = problems(tmp_path, "id: c1\nzones:\n  z: {polygon: [[0, 0], [10, 10], [20, 20]]}\n")
    assert any("zones.z.polygon" in p and "zero area" in p for p in found), found
    found = problems(tmp_path, "id: c1\nzones:\n  z: {polygon: [[0, 0], [10, 0], [0, 10]], direction: [0, 0]}\n")
    assert any("zones.z.direction" in p for p in found), found


def test_driver_models_need_their_file(tmp_path):
    found = problems(tmp_path, "id: c1\nrules:\n  seatbelt: {model: missing.onnx}\n")
    assert any("rules.seatbelt.model" in p and "model file not found" in p for p in found), found
    found = problems(tmp_path, "id: c1\nrules:\n  phone_use: {}\n")
    assert any("rules.phone_use.model" in p and "Field required" in p for p in found), found


def test_config_hash_does_not_depend_on_where_model_files_lie(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        write(d, ALL_RULES)
    assert load_camera(a / "cam.yaml").config_hash() == load_camera(b / "cam.yaml").config_hash()
    (b / "registry.csv").write_text("plate\nB1AB\n", encoding="utf-8")
    assert load_camera(a / "cam.yaml").config_hash() != load_camera(b / "cam.yaml").config_hash()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples" / "cameras").glob("*.yaml")))
def test_example_camera_files_load_and_build(name, shared_data):
    cam = load_camera(REPO / "examples" / "cameras" / name)
    assert build_rules(cam).rules
