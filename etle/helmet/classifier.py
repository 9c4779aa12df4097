"""The helmet classifier: a small CNN on head crops, run with ONNX Runtime.

The weights (``models/helmet/helmet_cls.onnx``, about 1.6 MB: the first stages of the COCO
YOLOv8n fine-tuned, and a new head) were trained here by ``scripts/train_helmet.py`` on the
Roboflow "Helmet and no helmet rider detection" export (CC BY 4.0; licence and attribution in
``models/helmet/ATTRIBUTION.md``).  Classes: ``helmet``, ``no_helmet``, ``background`` (the crop
shows no head).  Input: the crop of :func:`etle.helmet.crops.square_crop`,
``INPUT_SIZE`` x ``INPUT_SIZE`` (128), RGB in [0, 1]; the model's input shape carries the size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from etle.errors import ModelError
from etle.models.crop import OnnxCropModel

__all__ = ["CLASSES", "HelmetClassifier", "MODEL_NAME", "load_helmet_classifier", "locate_helmet_model", "verified_repo_file"]

log = logging.getLogger(__name__)

CLASSES = ("helmet", "no_helmet", "background")
MODEL_NAME = "helmet-classifier"
_REPO_FILE = Path(__file__).resolve().parents[2] / "models" / "helmet" / "helmet_cls.onnx"


class HelmetClassifier:
    """Probabilities of helmet / no_helmet / background per head crop."""

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        self._model = OnnxCropModel(path, positive_class=1, threads=threads)
        self.path = Path(path)
        classes = self._model.metadata.get("classes")
        if classes is not None and tuple(classes.split(",")) != CLASSES:
            raise ModelError(f"helmet model {path}: classes {classes}, expected {','.join(CLASSES)}")
        self.input_size = self._model.input_size

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """``N x 3`` probabilities (helmet, no_helmet, background)."""
        probs = self._model.predict(crops)
        if len(crops) and probs.shape[1] != len(CLASSES):
            raise ModelError(f"helmet model {self.path}: {probs.shape[1]} outputs, expected {len(CLASSES)}")
        return probs

    def violation_scores(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self._model.violation_scores(crops)


def locate_helmet_model() -> Path:
    """The verified helmet model file.

    Looks in the model cache first (``ETLE_MODEL_DIR``/helmet/helmet_cls.onnx, the manifest's
    ``local`` entry, for installs without the repository), then in the repository's
    ``models/helmet/``; the file's sha256 must match the manifest entry.
    """
    return verified_repo_file(MODEL_NAME, _REPO_FILE)


def verified_repo_file(name: str, repo_file: Path) -> Path:
    """A model trained here: the manifest entry ``name`` from the model cache, else the
    repository's copy ``repo_file``, whose sha256 must match the manifest."""
    from etle.models import registry

    try:
        return registry.resolve(name)
    except ModelError as exc:
        cached_error = exc
    spec = registry.spec(name)
    if repo_file.is_file():
        got = registry._hash_cached(repo_file)
        if spec.sha256 and got != spec.sha256:
            raise ModelError(
                f"{name} model {repo_file} has sha256 {got[:12]}..., the manifest expects "
                f"{spec.sha256[:12]}...: retrained without updating models/manifest.yaml?"
            )
        return repo_file
    raise cached_error


def load_helmet_classifier(path: str | Path | None = None, *, threads: int = 1) -> HelmetClassifier:
    """The helmet classifier from ``path``, or the manifest's ``helmet-classifier``."""
    return HelmetClassifier(Path(path) if path is not None else locate_helmet_model(), threads=threads)
