"""Tooling that makes models, apart from the run path: ONNX export and int8 quantisation
(``etle models prepare``, :mod:`.export`) and synthetic TNKB plates and scenes to train and
calibrate on (:mod:`.synth`, :mod:`.synth_scene`).

Nothing that processes footage imports this package (an import-linter contract in
``pyproject.toml`` checks it); it may import every stage.
"""
