"""The ``crnn`` plate reader: a small CTC recogniser trained here on synthetic TNKB plates.

The model (``models/plate_ocr/tnkb_crnn.onnx``, manifest entry ``plate-ocr-crnn``, 1.2 MB)
is a fully convolutional CTC recogniser trained by ``scripts/train_plate_ocr.py`` on plates drawn
by :mod:`etle.train.synth` only: it takes a grey ``32 x 128`` crop (:func:`prepare`) and gives,
for each of 32 horizontal steps, probabilities over ``blank + 0-9 + A-Z`` -- the same collapsed
layout the rapidocr reader folds the PP-OCR output onto, so :mod:`etle.plate.ctc` decodes both.

It was trained to read the registration from a whole two-line crop (the validity line under it
is ignored), and to read the validity line alone as its four digits.  The reader:

1. reads the whole crop and the registration band that :func:`etle.plate.lines.find_lines`
   finds (one batch); each view's most probable *valid* registration
   (:func:`etle.plate.ctc.constrained_best_path` under the country's grammar; free greedy
   decoding for ``generic``) is scored on both views and the best sum wins;
2. reads the validity band cut by :func:`etle.plate.lines.validity_crop` with the letters masked
   out, into ``PlateRead.validity`` -- never into the registration.

Its confidence is the product of the per-character probabilities along the chosen alignment of
the best view: the chance that every character is right if the model's probabilities are
calibrated (on synthetic plates, right reads score far higher than wrong ones; a test checks it).

Status: on synthetic plates it reads most crops exactly, but on real Indonesian crops it is still
well behind the rapidocr reader (figures in ``models/plate_ocr/README.md``), so it is not a
default on its own.  It is the second opinion of the ``rapidocr+crnn`` reader, the Indonesian
default (``etle.plate.readers.DEFAULT_READERS``): there it only settles near ties between
PP-OCR's readings, where its knowledge of the plate font helps (it read more ILPR crops exactly
than rapidocr alone when it was chosen; current figures in docs/accuracy.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from etle.errors import MissingDependencyError, ModelError
from etle.models import registry
from etle.plate import ctc
from etle.plate.ctc import forced_align  # re-exported: it began here
from etle.plate.lines import find_lines, validity_crop
from etle.plate.tnkb import ALPHABET, PlateFormat, get_format
from etle.types import PlateRead

log = logging.getLogger(__name__)

MODEL_NAME = "plate-ocr-crnn"
INPUT_H = 32
INPUT_W = 128
_REPO_FILE = Path(__file__).resolve().parents[2] / "models" / "plate_ocr" / "tnkb_crnn.onnx"


def prepare(img: np.ndarray, height: int = INPUT_H, width: int = INPUT_W) -> np.ndarray:
    """A crop (BGR or grey, any size) as the model's ``(1, height, width)`` float32 input.

    Grey, resized to the fixed size whatever its aspect, then standardised per image (zero mean,
    unit spread), which removes exposure and makes the contrast comparable across crops.
    """
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    h, w = g.shape[:2]
    interp = cv2.INTER_AREA if (h > height and w > width) else cv2.INTER_LINEAR
    x = cv2.resize(g, (width, height), interpolation=interp).astype(np.float32)
    x -= x.mean()
    x /= max(float(x.std()), 8.0)
    return x[None]


def locate_model() -> Path:
    """The manifest's ``plate-ocr-crnn`` file (verified), or the repository copy where the
    manifest has no such entry (an older installed manifest)."""
    try:
        return registry.resolve(MODEL_NAME)
    except ModelError:
        if _REPO_FILE.is_file():
            return _REPO_FILE
        raise


class CrnnRecogniser:
    """The ONNX model: crops in, ``(T, 1+36)`` probabilities (blank first) out."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - core dependency
            raise MissingDependencyError("onnxruntime", "core", "the crnn plate reader") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises untyped errors
            raise ModelError(f"cannot load the plate OCR model {path}: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("alphabet") != ALPHABET:
            raise ModelError(f"plate OCR model {path}: alphabet {meta.get('alphabet')!r}, expected {ALPHABET!r}")
        self.height = int(meta.get("height", INPUT_H))
        self.width = int(meta.get("width", INPUT_W))
        self.input_name = self.session.get_inputs()[0].name
        self._lock = threading.Lock()

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not images:
            return []
        batch = np.stack([prepare(i, self.height, self.width) for i in images])
        with self._lock:
            (out,) = self.session.run(None, {self.input_name: batch})[:1]
        return [o.astype(np.float64) for o in out]


_LETTER_COLS = np.array([1 + ALPHABET.index(c) for c in ALPHABET if c.isalpha()])


def digits_only(probs: np.ndarray) -> np.ndarray:
    """Probabilities with the letters' mass moved to blank (for the all-digit validity line)."""
    p = np.array(probs, dtype=np.float64, copy=True)
    p[:, 0] += p[:, _LETTER_COLS].sum(axis=1)
    p[:, _LETTER_COLS] = 0.0
    return p


class CrnnReader:
    """Plate reader on the synthetic-trained CTC model (see the module docstring)."""

    name = "crnn"

    def __init__(
        self,
        country: str | PlateFormat = "id",
        *,
        model_path: str | Path | None = None,
        threads: int = 1,
        views: Sequence[str] = ("full", "line"),
        max_gap: float = 8.0,
        read_validity: bool = True,
    ) -> None:
        self.format = get_format(country)
        self.recogniser = CrnnRecogniser(Path(model_path) if model_path else locate_model(), threads)
        self.views = tuple(views)
        self.max_gap = max_gap
        self.read_validity = read_validity

    def _views(self, img: np.ndarray, lines) -> list[tuple[str, np.ndarray]]:
        h = img.shape[0]
        out: list[tuple[str, np.ndarray]] = []
        for v in self.views:
            if v == "full":
                out.append(("full", img))
            elif v == "line" and h * 0.3 <= lines.main.height < h * 0.9:
                out.append(("line", img[lines.main.top : lines.main.bottom]))
        return out or [("full", img)]

    def decide(self, probs: Sequence[np.ndarray]) -> tuple[str, float, str, bool] | None:
        """(text, confidence, raw greedy text, plausible) from one or more views' probabilities."""
        best = self._decide(probs)
        return None if best is None else best[:4]

    def _decide(self, probs: Sequence[np.ndarray]) -> tuple[str, float, str, bool, tuple[float, ...]] | None:
        """:meth:`decide` with the per-character probabilities of the text (its best alignment)."""
        auto = self.format.automaton(strict=True)
        # near-certain blank runs carry no choice: one step of each is enough (a shorter lattice)
        probs = [ctc.squeeze_blanks(p, 0.98) for p in probs]
        greedies = [ctc.greedy(p) for p in probs]
        texts: set[str] = {g.text for g in greedies if g.text}
        if auto is not None:
            for p, g in zip(probs, greedies):
                if g.text and auto.accepts(g.text):
                    continue
                c = ctc.constrained_best_path(p, auto)
                if c is not None and c.text:
                    texts.add(c.text)
        if not texts:
            return None
        best = None
        for text in texts:
            total, top = 0.0, None
            for p, g in zip(probs, greedies):
                a = forced_align(p, text) if text != g.text else ctc.Decoded(g.text, g.logp, g.char_conf)
                gap = -self.max_gap if a is None else max(a.logp - g.logp, -self.max_gap)
                total += gap
                if a is not None and (top is None or gap > top[0]):
                    top = (gap, a, g.text)
            if top is None:
                continue
            plausible = self.format.is_plausible(text) and top[0] > -self.max_gap
            key = (plausible, total, text)
            if best is None or key[:2] > best[0][:2]:
                best = (key, top)
        if best is None:
            return None
        (plausible, _, text), (_, al, raw) = best
        conf = float(np.prod(al.char_conf)) if al.char_conf else 0.0
        return text, conf, raw, plausible, tuple(float(c) for c in al.char_conf)

    def read(self, crop: np.ndarray) -> PlateRead | None:
        img = crop
        if img is None or img.size == 0 or img.ndim not in (2, 3) or min(img.shape[:2]) < 4:
            return None
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        lines = find_lines(img)
        views = self._views(img, lines)
        band = None
        if self.read_validity and lines.validity is not None and self.format.name == "id":
            band = validity_crop(img, lines.validity)
        batch = [v for _, v in views] + ([band] if band is not None else [])
        probs = self.recogniser(batch)
        best = self._decide(probs[: len(views)])
        if best is None:
            return None
        text, conf, raw, _, char_conf = best
        char_conf = char_conf if len(char_conf) == len(text) else ()
        validity = None
        if band is not None:
            validity = self.format.parse_validity(ctc.greedy(digits_only(probs[-1])).text)
        log.debug("crnn: %s (%.2f, raw %s)", text, conf, raw)
        return PlateRead(text=text, confidence=conf, raw=raw, validity=validity, crop=crop, char_conf=char_conf)
