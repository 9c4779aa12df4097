"""``etle bench``: bad input fails cleanly; a real run prints both sides and their ratio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import require_model
from etle.bench import BenchResult, Comparison, camera_for, clips_in
from fixtures.cli import REPO, SAMPLE, assert_clean_failure, etle


def _result(mode: str, frames: int, elapsed: float, video_s: float = 10.0) -> BenchResult:
    return BenchResult("c.mp4", mode, frames, video_s, elapsed, 100.0, 3, 1, 1, 0 if mode == "etle" else None)


def test_result_rates_and_speedup() -> None:
    fast, slow = _result("etle", 300, 5.0), _result("baseline", 300, 100.0)
    assert fast.fps == pytest.approx(60.0)
    assert fast.realtime == pytest.approx(2.0)  # 30 fps clip processed at 60 fps
    assert Comparison(fast, slow).speedup == pytest.approx(20.0)
    assert Comparison(fast, None).speedup is None
    assert _result("etle", 0, 0.0).fps == 0.0


def test_clips_and_camera_files(tmp_path: Path) -> None:
    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "a.MKV").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in clips_in(tmp_path, (".mp4", ".mkv"))] == ["a.MKV", "b.mp4"]
    assert clips_in(tmp_path / "b.mp4", (".mp4",)) == [tmp_path / "b.mp4"]
    cams = tmp_path / "cams"
    cams.mkdir()
    (cams / "b.yaml").write_text("id: x\n")
    assert camera_for(tmp_path / "b.mp4", cams) == cams / "b.yaml"
    assert camera_for(tmp_path / "a.MKV", cams) is None
    assert camera_for(tmp_path / "b.mp4", None) is None


def test_bench_missing_folder(tmp_path: Path) -> None:
    assert_clean_failure(etle("bench", str(tmp_path / "nope")), "no such file or folder")


def test_bench_folder_without_clips(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no videos here")
    assert_clean_failure(etle("bench", str(tmp_path)), "no video clips")


def test_bench_bad_clip_fails_before_work(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    assert_clean_failure(etle("bench", str(tmp_path)))


@pytest.mark.slow
def test_bench_runs_both_sides_on_the_sample(tmp_path: Path) -> None:
    require_model("vehicle-detector-int8")
    require_model("plate-detector")
    out = tmp_path / "bench.json"
    res = etle("bench", str(SAMPLE), "--max-seconds", "3", "--json", str(out), cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "etle / baseline" in res.stdout
    (row,) = json.loads(out.read_text())
    e, b = row["etle"], row["baseline"]
    assert e["mode"] == "etle" and b["mode"] == "baseline"
    assert e["frames"] == b["frames"] > 30  # both sides saw the same 3 s of footage
    assert e["detect_every"] >= 1 and b["detect_every"] == 1
    assert e["peak_rss_mb"] > 50 and b["peak_rss_mb"] > 50
    assert "detect" in e["stage_ms"] and "detect+track" in b["stage_ms"]
    assert row["speedup"] == pytest.approx((e["frames"] / e["elapsed_s"]) / (b["frames"] / b["elapsed_s"]))


def test_bench_unknown_country_fails_before_work() -> None:
    assert_clean_failure(etle("bench", str(SAMPLE), "--country", "xx"), "unknown plate format 'xx'")


def test_run_unknown_country_fails_before_work(tmp_path: Path) -> None:
    res = etle("run", str(SAMPLE), "--country", "xx", "--out", str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path}/t.db")
    assert_clean_failure(res, "unknown plate format 'xx'")
    assert not (tmp_path / "out").exists()


def test_run_country_reaches_the_plate_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import etle.plate.stage as stage_mod
    from etle.config.run import RunOptions
    from etle.runner import build_pipeline

    seen: dict[str, object] = {}

    def fake_build(**kwargs: object):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return lambda: None

    monkeypatch.setattr(stage_mod, "build_plate_stage", fake_build)
    pipe, _ = build_pipeline(None, RunOptions(out_dir=tmp_path, db_url=f"sqlite:///{tmp_path}/t.db", country="generic"), detector=object())
    assert seen["country"] == "generic" and pipe.config.country == "generic"
