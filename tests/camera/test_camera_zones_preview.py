"""``etle zones preview``: zones drawn over a frame (the command, registered on a Typer app)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from etle.camera.config import load_camera
from etle.commands.zones_cmds import draw_zones, register, rule_zones

REPO = Path(__file__).resolve().parents[2]

CAM = """\
id: preview-test
signal:
  type: roi
  polygon: [[300, 10], [320, 10], [320, 60], [300, 60]]
calibration:
  image_points: [[40, 200], [280, 200], [220, 80], [100, 80]]
  world_points: [[0, 0], [7, 0], [7, 30], [0, 30]]
zones:
  stop_line: {points: [[20, 150], [300, 160]], approach_side: [150, 100]}
  zebra: {polygon: [[20, 165], [300, 170], [300, 200], [20, 195]]}
  lane: {polygon: [[100, 0], [220, 0], [300, 150], [20, 150]], direction: [0, 1]}
rules:
  red_light: {}
  stop_line: {zones: [zebra]}
  wrong_way: {lanes: [lane]}
  speeding: {limits_kmh: {lane: 40}}
"""


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, as in etle.cli
        pass

    return app


@pytest.fixture
def cam(tmp_path: Path) -> Path:
    p = tmp_path / "cam.yaml"
    p.write_text(CAM, encoding="utf-8")
    return p


def frame() -> np.ndarray:
    img = np.zeros((240, 400, 3), np.uint8)
    img[:] = (70, 80, 90)
    return img


def test_draw_zones_draws_everything_and_leaves_the_input_alone(cam):
    img = frame()
    img.flags.writeable = False
    out = draw_zones(img, load_camera(cam))
    assert out.shape == img.shape and (img == (70, 80, 90)).all()
    changed = (out != img).any(axis=2)
    for x, y in [(160, 155), (160, 185), (160, 60), (300, 35), (40, 200)]:  # line, polygons, signal, calibration
        assert changed[y - 3 : y + 4, x - 3 : x + 4].any(), (x, y)


def test_rule_zones_lists_what_each_rule_uses(cam):
    assert rule_zones(load_camera(cam)) == {
        "red_light": ["stop_line"],
        "stop_line": ["zebra"],
        "wrong_way": ["lane"],
        "speeding": ["lane"],
    }


def test_preview_command_on_an_image(app, cam, tmp_path):
    src = tmp_path / "view.png"
    cv2.imwrite(str(src), frame())
    out = tmp_path / "out" / "zones.png"
    r = CliRunner().invoke(app, ["zones", "preview", str(src), "--camera", str(cam), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "preview-test" in r.output and out.is_file()
    drawn = cv2.imread(str(out))
    assert drawn.shape == (240, 400, 3) and (drawn != frame()).any()


def test_preview_warns_about_zones_outside_the_frame(app, cam, tmp_path):
    src = tmp_path / "small.png"
    cv2.imwrite(str(src), np.zeros((120, 200, 3), np.uint8))
    r = CliRunner().invoke(app, ["zones", "preview", str(src), "--camera", str(cam), "-o", str(tmp_path / "z.png")])
    assert r.exit_code == 0
    assert "outside the 200x120 frame" in r.output


def test_preview_command_on_the_sample_video(app, tmp_path):
    video = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
    out = tmp_path / "zones.png"
    r = CliRunner().invoke(
        app, ["zones", "preview", str(video), "--camera", str(REPO / "examples/cameras/intel_car_detection_parking.yaml"), "--at", "1.5", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "1.5" in r.output and cv2.imread(str(out)).shape == (432, 768, 3)


def test_preview_bad_camera_file_is_an_error(app, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: Bad Id\n")
    r = CliRunner().invoke(app, ["zones", "preview", "x.png", "--camera", str(bad)])
    assert r.exit_code != 0


def test_preview_draws_the_detect_tiles_and_says_whether_they_run(app, tmp_path):
    cam = tmp_path / "tiles.yaml"
    cam.write_text(CAM + "detect_tiles: [stop_line]\n", encoding="utf-8")
    config = load_camera(cam)
    small = frame()  # 400 x 240: the detector enlarges it, a tile gains nothing
    big = cv2.resize(small, (1920, 1152))
    # the camera's zones are drawn for 400 x 240; scaled to the big frame for its tile
    big_cam = tmp_path / "big.yaml"
    big_cam.write_text(CAM.replace("[[20, 150], [300, 160]]", "[[96, 720], [1440, 768]]") + "detect_tiles: [stop_line]\n",
                       encoding="utf-8")
    drawn = draw_zones(big, load_camera(big_cam), legend=False)
    plain = draw_zones(big, load_camera(big_cam).model_copy(update={"detect_tiles": ()}), legend=False)
    diff = (drawn != plain).any(axis=2)
    ys, xs = np.nonzero(diff)
    assert xs.min() < 96 and xs.max() > 1440 and ys.min() < 720 and ys.max() > 768  # a rectangle around the line
    src = tmp_path / "big.png"
    cv2.imwrite(str(src), big)
    r = CliRunner().invoke(app, ["zones", "preview", str(src), "--camera", str(big_cam), "-o", str(tmp_path / "z.png")])
    assert r.exit_code == 0, r.output
    assert re.search(r"detect_tiles: \d+ tile\(s\) run, 3.0-3.0x the frame's pixels", r.output), r.output
    src_small = tmp_path / "small.png"
    cv2.imwrite(str(src_small), small)
    r = CliRunner().invoke(app, ["zones", "preview", str(src_small), "--camera", str(cam), "-o", str(tmp_path / "s.png")])
    assert r.exit_code == 0, r.output
    assert "no tile runs: the detector does not shrink this frame" in r.output
    assert config.detect_tiles == ("stop_line",)


def test_preview_says_what_the_lamp_reads(app, cam, tmp_path):
    lit = frame()
    cv2.circle(lit, (310, 20), 7, (40, 40, 245), -1)  # the red lamp inside the signal polygon
    for name, img, expected in (("lit.png", lit, "red"), ("dark.png", frame(), "unknown")):
        src = tmp_path / name
        cv2.imwrite(str(src), img)
        r = CliRunner().invoke(app, ["zones", "preview", str(src), "--camera", str(cam), "-o", str(tmp_path / "z.png")])
        assert r.exit_code == 0, r.output
        assert f"signal roi reads {expected} at 0.00 s" in r.output, r.output
        if expected == "red":
            assert re.search(r"red 0\.[1-9]\d{3}, yellow 0\.0000, green 0\.0000", r.output), r.output
    assert "red 0.0000, yellow 0.0000, green 0.0000" in r.output


def test_zones_signal_prints_the_debounced_timeline_of_a_clip(app, cam, tmp_path):
    video = tmp_path / "lamp.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (400, 240))
    for i in range(40):  # red for 2 s, then green for 2 s
        img = frame()
        cv2.circle(img, (310, 20 if i < 20 else 50), 7, (40, 40, 245) if i < 20 else (190, 230, 60), -1)
        writer.write(img)
    writer.release()
    out = tmp_path / "timeline.json"
    r = CliRunner().invoke(app, ["zones", "signal", str(video), "--camera", str(cam), "--json", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    timeline = json.loads(out.read_text())
    assert [s[2] for s in timeline["segments"]] == ["unknown", "red", "green"]
    (red_from, _, _), (green_from, _, _) = timeline["segments"][1], timeline["segments"][2]
    assert red_from == pytest.approx(0.3, abs=0.11) and green_from == pytest.approx(2.3, abs=0.11)  # debounce_s 0.3
    assert timeline["frames"] == 40 and timeline["source"] == "roi"
    assert "40 frames, signal 'roi' of 'preview-test'" in r.output


def test_zones_signal_needs_a_signal_section(app, tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("id: bare\n")
    r = CliRunner().invoke(app, ["zones", "signal", "x.mp4", "--camera", str(bare)])
    assert r.exit_code != 0 and "no `signal` section" in str(r.exception)
