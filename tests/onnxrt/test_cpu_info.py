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
