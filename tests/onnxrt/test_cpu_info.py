"""The CPU report of ``etle models check``: VNNI decides whether 8-bit int8 weights can saturate."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etle import onnxrt


def test_cpu_reports_model_cores_and_vnni() -> None:
    info = onnxrt.cpu()
    assert info["model"] and info["cores"] >= 1
    if platform.machine().lower() in ("x86_64", "amd64") and Path("/proc/cpuinfo").is_file():
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
        assert isinstance(info["vnni"], bool)
        if "avx512_vnni" in flags or "avx_vnni" in flags:
            assert info["vnni"] is True


@pytest.mark.parametrize("vnni, needle", [(False, "has no VNNI"), (True, "VNNI yes")])
def test_models_check_says_when_int8_weights_can_saturate(monkeypatch: pytest.MonkeyPatch, vnni: bool, needle: str) -> None:
    from etle.cli import app

    monkeypatch.setattr(onnxrt, "cpu", lambda: {"model": "Test CPU", "cores": 4, "vnni": vnni})
    res = CliRunner().invoke(app, ["models", "check", "vehicle-detector-int8"])
    assert needle in res.output, res.output
    assert ("--detector vehicle-detector" in res.output) is (not vnni)


@pytest.mark.parametrize("vnni, detector, profile", [
    (True, "vehicle-detector-int8", "fast"),
    (None, "vehicle-detector-int8", "fast"),  # features unknown (not x86): the int8 model as measured
    (False, "vehicle-detector", "fast"),  # 8-bit sums saturate here: the float model, same results everywhere
])
def test_the_fast_profile_takes_the_int8_detector_only_where_it_computes_as_measured(
        monkeypatch: pytest.MonkeyPatch, vnni: bool | None, detector: str, profile: str) -> None:
    from etle.bench import BenchOptions
    from etle.config import hardware
    from etle.config.run import StageOptions, fast_detector
    from etle.edge.site import PipelineOptions

    monkeypatch.setattr(hardware, "cpu", lambda: {"model": "Test CPU", "cores": 2, "vnni": vnni})
    assert fast_detector() == detector
    fast = StageOptions.fast()
    assert fast.detector == detector and fast.profile == profile
    assert PipelineOptions().detector == detector and BenchOptions().detector == detector
    # asked for by name, the int8 model runs whatever the CPU
    assert StageOptions.fast(detector="vehicle-detector-int8").detector == "vehicle-detector-int8"
    assert StageOptions().profile == "default"


def test_cpu_is_read_once_and_handed_out_as_a_copy() -> None:
    from etle.config.hardware import cpu

    first = cpu()
    first["vnni"] = "changed"
    assert cpu()["vnni"] != "changed"
