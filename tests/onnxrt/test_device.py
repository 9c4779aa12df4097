"""--device cpu|cuda|auto: ONNX Runtime's GPU providers where present, else the CPU (auto, with a
warning) or a clear error (cuda).  Runs on a CPU-only machine: the fallback and the error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etle import onnxrt
from etle.errors import ConfigError, ModelError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(autouse=True)
def _clean_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(onnxrt.DEVICE_ENV, raising=False)
    monkeypatch.setattr(onnxrt, "_warned", set())


def _tiny_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def test_cpu_is_the_default() -> None:
    assert onnxrt.device() == "cpu"
    assert onnxrt.providers() == ["CPUExecutionProvider"]


def test_gpu_providers_come_first_where_present() -> None:
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnxrt.providers("cuda", avail) == avail
    assert onnxrt.providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_without_a_gpu_warns_once_and_stays_on_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="etle.onnxrt"):
        assert onnxrt.providers("auto", CPU_ONLY) == ["CPUExecutionProvider"]
        assert onnxrt.providers("auto", CPU_ONLY) == ["CPUExecutionProvider"]
    warnings = [r for r in caplog.records if "--device auto" in r.getMessage()]
    assert len(warnings) == 1 and "onnxruntime-gpu" in warnings[0].getMessage()


def test_cuda_without_a_gpu_is_a_clear_model_error() -> None:
    with pytest.raises(ModelError, match="--device cuda: no GPU execution provider"):
        onnxrt.providers("cuda", CPU_ONLY)


def test_an_unknown_device_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(onnxrt.DEVICE_ENV, "tpu")
    with pytest.raises(ConfigError, match="tpu"):
        onnxrt.device()


def test_sessions_follow_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    if any(p in ort.get_available_providers() for p in onnxrt.GPU_PROVIDERS):
        pytest.skip("this machine has a GPU provider: the CPU fallback is not what runs here")
    monkeypatch.setenv(onnxrt.DEVICE_ENV, "auto")
    session = onnxrt.inference_session(_tiny_model())
    assert session.get_providers() == ["CPUExecutionProvider"]
    monkeypatch.setenv(onnxrt.DEVICE_ENV, "cuda")
    with pytest.raises(ModelError, match="--device cuda"):
        onnxrt.inference_session(_tiny_model())


def test_site_file_device_is_validated() -> None:
    from pydantic import ValidationError

    from etle.edge.site import PipelineOptions

    assert PipelineOptions().device == "cpu"
    assert PipelineOptions(device="auto").device == "auto"
    with pytest.raises(ValidationError):
        PipelineOptions(device="gpu")


def _etle(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != onnxrt.DEVICE_ENV}
    return subprocess.run([sys.executable, "-m", "etle.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def test_run_with_device_cuda_on_a_cpu_machine_fails_in_one_line(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    res = _etle("run", str(SAMPLE), "--device", "cuda", "--no-plates", "--max-seconds", "1", "--db",
                f"sqlite:///{tmp_path / 't.db'}", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 4, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--device cuda" in lines[0] and "Traceback" not in res.stderr


def test_run_with_device_auto_on_a_cpu_machine_falls_back(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    res = _etle("run", str(SAMPLE), "--device", "auto", "--no-plates", "--max-seconds", "1", "--no-progress", "--json",
                "--db", f"sqlite:///{tmp_path / 't.db'}", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "running on the CPU" in res.stderr
    assert '"frames"' in res.stdout
