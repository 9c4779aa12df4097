"""What the plate rules need to know about a plate: its colour, its number's parity, its record.

* :func:`plate_colour` -- the background colour of a plate crop (TNKB colour categories:
  white or black for private vehicles, yellow for public transport, red for government, green
  for free-trade zones) by counting HSV pixel classes; the text is the minority, the background
  the majority.  ``None`` when no class dominates (glare, night, a bad crop): a rule then
  treats the colour as unknown, never as exempt or non-exempt by guess.
* :class:`PlateRegistry` -- a pluggable registration lookup (the national ERI database in
  production); :class:`CsvPlateRegistry` reads a CSV export.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, runtime_checkable

import cv2
import numpy as np

from etle.errors import ConfigError

__all__ = [
    "CsvPlateRegistry",
    "PlateRecord",
    "PlateRegistry",
    "last_digit",
    "normalise_vehicle_type",
    "plate_colour",
]

log = logging.getLogger(__name__)

COLOURS = ("white", "black", "yellow", "red", "green")


def plate_colour(crop: np.ndarray | None, *, min_share: float = 0.35) -> str | None:
    """Background colour of a BGR plate crop, or None when unsure (see the module docstring)."""
    if crop is None or crop.ndim != 3 or crop.shape[2] != 3 or min(crop.shape[:2]) < 4:
        return None
    h, w = crop.shape[:2]
    inner = crop[int(h * 0.12) : max(int(h * 0.88), int(h * 0.12) + 1), int(w * 0.06) : max(int(w * 0.94), int(w * 0.06) + 1)]
    hsv = cv2.cvtColor(np.ascontiguousarray(inner), cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    chroma = (sat >= 80) & (val >= 70)
    shares = {
        "yellow": chroma & (hue >= 15) & (hue <= 35),
        "red": chroma & ((hue <= 8) | (hue >= 165)),
        "green": chroma & (hue >= 40) & (hue <= 85),
        "white": (sat < 60) & (val >= 150),
        "black": val < 70,
    }
    n = float(len(hue))
    colour, share = max(((c, float(m.sum()) / n) for c, m in shares.items()), key=lambda kv: kv[1])
    return colour if share >= min_share else None


def last_digit(plate: str) -> int | None:
    """The last digit of the number group of a TNKB registration (``B1234XY`` -> 4)."""
    from etle.plate.tnkb import split_tnkb

    parts = split_tnkb(plate)
    if parts is None:
        return None
    return int(parts[1][-1])


_VEHICLE_TYPES: Mapping[str, str] = {
    "car": "car",
    "mobil": "car",
    "mobil penumpang": "car",
    "sedan": "car",
    "jeep": "car",
    "minibus": "car",
    "motorcycle": "motorcycle",
    "motor": "motorcycle",
    "sepeda motor": "motorcycle",
    "bus": "bus",
    "truck": "truck",
    "truk": "truck",
    "mobil barang": "truck",
    "pick up": "truck",
    "pickup": "truck",
}


def normalise_vehicle_type(value: str | None) -> str | None:
    """A registry's vehicle type as a detector label (car, motorcycle, bus, truck), or None."""
    if not value:
        return None
    return _VEHICLE_TYPES.get(" ".join(value.lower().replace("_", " ").split()))


@dataclass(frozen=True, slots=True)
class PlateRecord:
    """What the registration database says about a plate."""

    plate: str
    vehicle_type: str | None = None  # a detector label: car, motorcycle, bus, truck
    colour: str | None = None  # plate colour category
    status: str | None = None  # e.g. 'active', 'stolen', 'blocked', 'expired'


@runtime_checkable
class PlateRegistry(Protocol):
    """A registration lookup by normalised plate text."""

    def lookup(self, plate: str) -> PlateRecord | None: ...


class CsvPlateRegistry:
    """A registry read once from a CSV file: ``plate`` plus optional ``vehicle_type``,
    ``colour`` and ``status`` columns (plate spacing and case do not matter)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows: dict[str, PlateRecord] = {}
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as f:
                reader = csv.DictReader(f)
                fields = {(c or "").strip().lower() for c in (reader.fieldnames or [])}
                if "plate" not in fields:
                    raise ConfigError(f"plate registry {self.path}: needs a 'plate' column (has {sorted(fields)})")
                for line, row in enumerate(reader, start=2):
                    row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                    plate = "".join(c for c in row["plate"].upper() if c.isalnum())
                    if not plate:
                        raise ConfigError(f"{self.path}:{line}: empty plate")
                    colour = row.get("colour") or row.get("color") or None
                    if colour is not None:
                        colour = colour.lower()
                        if colour not in COLOURS:
                            raise ConfigError(f"{self.path}:{line}: colour '{colour}' is not one of {COLOURS}")
                    vtype = row.get("vehicle_type") or None
                    norm = normalise_vehicle_type(vtype)
                    if vtype and norm is None:
                        raise ConfigError(f"{self.path}:{line}: unknown vehicle_type '{vtype}'")
                    self._rows[plate] = PlateRecord(plate, norm, colour, (row.get("status") or None))
        except OSError as exc:
            raise ConfigError(f"plate registry {self.path}: {exc.strerror}") from None

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, plate: str) -> PlateRecord | None:
        return self._rows.get("".join(c for c in plate.upper() if c.isalnum()))
