"""``etle eval plate-tracks``: how often the plate a ticket prints is wrong, on tracks of real plates.

A ticket's plate is not one read.  The plate stage reads a track's plate on several frames, from
crops of different size, blur and angle; :class:`etle.plate.consensus.PlateConsensus` votes over
those reads, and :func:`etle.pipeline.accept_plate` decides whether the ticket prints the winner or
``?`` (the officer then sees the candidates).  ``etle eval plates`` scores single reads; this
scores that last decision, which is what a citizen receives.

No labelled set of real tracks with readable plates exists here (the shared clips hold two
readable plates), so each track is *simulated* from one real labelled crop: ``views`` copies of it,
each degraded as a roadside camera sees a plate on successive frames of a pass (seeded from the
file name, so a run is repeatable): shrunk to a plate height between ``min_height`` and
``max_height`` pixels, tilted a few degrees, blurred (defocus or horizontal motion), darkened or
brightened and JPEG-compressed.  Every view is read by the reader and weighed by
:func:`~etle.plate.consensus.crop_quality` as the plate stage weighs it.  The views share their
source crop, so what is wrong with the crop itself (a cut-off letter, a dirty plate) repeats in
every read, as it does on a real track.

Each track's consensus then goes through the acceptance *gates* in turn -- the consensus
confidence alone, then also the exact agreement of reads from distinct frames, then also the
majority at every character (the defaults of :class:`etle.config.run.StageOptions`) -- and per
gate every plate is *exact* (printed, right), *unread* (``?``) or *wrong* (printed, a different
plate: the costly case).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from etle.types import PlateRead, PlateResult

__all__ = ["GATES", "TrackRow", "ViewSpec", "degrade", "evaluate_tracks", "gate", "summarise_tracks"]

#: The acceptance gates, each adding one check to the one before (names used in reports).
GATES = ("confidence", "agreement", "majority")


@dataclass(frozen=True)
class ViewSpec:
    """How far the simulated views of a plate range."""

    views: int = 8
    min_height: int = 20  # about half the Cilacap E-TLE camera's motorcycle plates (43-58 px high) ...
    max_height: int = 56  # ... up to their size
    max_tilt_deg: float = 6.0
    max_blur: float = 1.2  # Gaussian sigma, or a motion streak of up to 4x this many pixels
    min_jpeg: int = 35
    max_jpeg: int = 90


def degrade(crop: np.ndarray, rng: np.random.Generator, spec: ViewSpec) -> np.ndarray:
    """One simulated camera view of a plate crop (a new array; ``crop`` is not modified)."""
    import cv2

    h, w = crop.shape[:2]
    height = int(rng.integers(spec.min_height, spec.max_height + 1))
    scale = min(1.0, height / float(h))
    view = cv2.resize(crop, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    vh, vw = view.shape[:2]
    angle = float(rng.uniform(-spec.max_tilt_deg, spec.max_tilt_deg))
    m = cv2.getRotationMatrix2D((vw / 2.0, vh / 2.0), angle, 1.0)
    view = cv2.warpAffine(view, m, (vw, vh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    blur = float(rng.uniform(0.0, spec.max_blur))
    if rng.random() < 0.5:
        if blur > 0.2:
            view = cv2.GaussianBlur(view, (0, 0), blur)
    else:
        length = max(1, round(4 * blur))
        if length > 1:
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1.0 / length
            view = cv2.filter2D(view, -1, kernel)
    gain = float(rng.uniform(0.6, 1.3))
    offset = float(rng.uniform(-20.0, 20.0))
    view = cv2.convertScaleAbs(view, alpha=gain, beta=offset)
    quality = int(rng.integers(spec.min_jpeg, spec.max_jpeg + 1))
    ok, buf = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else view


@dataclass(frozen=True)
class TrackRow:
    """One simulated track: its label, the consensus and what each gate prints ('' = ``?``)."""

    filename: str
    label: str
    consensus: str
    confidence: float
    reads: tuple[str, ...]
    printed: Mapping[str, str]
    #: per gate, whether the printed plate has a character the recogniser was unsure of (the review
    #: page's amber mark, :func:`etle.plate.consensus.needs_a_look`); False where nothing is printed
    marked: Mapping[str, bool] = field(default_factory=dict)


def gate(plate: PlateResult, name: str, *, min_confidence: float, min_agreement: int, char_majority: float) -> PlateResult:
    """``plate`` through the gate ``name`` of :data:`GATES` (the checks up to and including it)."""
    from etle.pipeline import accept_plate

    if name == "confidence":
        return accept_plate(plate, min_confidence)
    if name == "agreement":
        return accept_plate(plate, min_confidence, min_agreement)
    if name == "majority":
        return accept_plate(plate, min_confidence, min_agreement, char_majority)
    raise ValueError(f"unknown gate {name!r}; known: {', '.join(GATES)}")


def evaluate_tracks(
    reader: Any,
    images: Path,
    labels: Mapping[str, str],
    *,
    country: str = "id",
    spec: ViewSpec = ViewSpec(),
    seed: int = 0,
    min_confidence: float | None = None,
    min_agreement: int | None = None,
    char_majority: float | None = None,
    on_row: Callable[[], None] | None = None,
    on_unreadable: Callable[[str], None] | None = None,
) -> list[TrackRow]:
    """Simulate, read, vote and gate one track per labelled crop (see the module docstring).
    The gates' thresholds default to :class:`~etle.config.run.StageOptions`'s."""
    import cv2

    from etle.config.run import StageOptions
    from etle.plate.consensus import PlateConsensus, crop_quality, needs_a_look

    defaults = StageOptions()
    min_confidence = defaults.min_plate_confidence if min_confidence is None else min_confidence
    min_agreement = defaults.min_plate_agreement if min_agreement is None else min_agreement
    char_majority = defaults.plate_char_majority if char_majority is None else char_majority
    rows: list[TrackRow] = []
    for name, label in sorted(labels.items()):
        crop = cv2.imread(str(images / name), cv2.IMREAD_COLOR)
        if crop is None:
            if on_unreadable:
                on_unreadable(name)
            if on_row:
                on_row()
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        consensus = PlateConsensus(country)
        reads: list[str] = []
        for k in range(spec.views):
            view = degrade(crop, rng, spec)
            read = reader.read(view)
            reads.append(read.text if read is not None else "")
            if read is not None and read.text:
                consensus.add(0, PlateRead(read.text, float(read.confidence), raw=read.raw, frame_index=k,
                                           char_conf=read.char_conf), crop_quality(view))
        plate = consensus.result(0)
        printed = {g: gate(plate, g, min_confidence=min_confidence, min_agreement=min_agreement,
                           char_majority=char_majority).text for g in GATES}
        marked = {g: bool(t) and needs_a_look(t, plate.candidates) for g, t in printed.items()}
        rows.append(TrackRow(name, label, plate.text, float(plate.confidence), tuple(reads), printed, marked))
        if on_row:
            on_row()
    return rows


def summarise_tracks(rows: Sequence[TrackRow], *, subset: str = "all") -> dict[str, Any]:
    """Per gate: exact / unread / wrong counts and shares over ``rows``."""
    n = len(rows)
    out: dict[str, Any] = {"subset": subset, "n": n, "gates": []}
    for g in GATES:
        exact = sum(1 for r in rows if r.printed[g] and r.printed[g] == r.label)
        wrong = sum(1 for r in rows if r.printed[g] and r.printed[g] != r.label)
        unread = n - exact - wrong
        marked_exact = sum(1 for r in rows if r.marked.get(g) and r.printed[g] == r.label)
        marked_wrong = sum(1 for r in rows if r.marked.get(g) and r.printed[g] != r.label)
        out["gates"].append({
            "gate": g, "exact": exact, "unread": unread, "wrong": wrong,
            # printed plates the review page marks for a look (a character the recogniser was unsure of)
            "marked_exact": marked_exact, "marked_wrong": marked_wrong,
            "exact_rate": exact / n if n else None, "wrong_rate": wrong / n if n else None,
            # of the plates printed, the share that is right: what a citizen's ticket can trust
            "printed_precision": exact / (exact + wrong) if exact + wrong else None,
        })
    out["consensus_exact"] = sum(1 for r in rows if r.consensus == r.label)
    return out
