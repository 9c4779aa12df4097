"""Shared ONNX Runtime session options."""

from __future__ import annotations

from pathlib import Path

import pytest

from etle.errors import ModelError
from etle.onnxrt import inference_session, session_options


def test_spinning_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETLE_ORT_SPIN", raising=False)
    opts = session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("ETLE_ORT_SPIN", "1")
    opts = session_options()
    with pytest.raises(Exception):  # no entry: onnxruntime's default (spinning) applies
        opts.get_session_config_entry("session.intra_op.allow_spinning")


def test_threads_from_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETLE_THREADS", "3")
    assert session_options().intra_op_num_threads == 3
    assert session_options(1).intra_op_num_threads == 1
    monkeypatch.delenv("ETLE_THREADS")
    assert session_options().intra_op_num_threads == 0  # onnxruntime picks one per core


def test_unloadable_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="helmet model"):
        inference_session(bad, what="helmet model")
