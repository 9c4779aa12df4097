"""What the rules' options models share: the label check, plate lists, file paths, anchors.

Each rule module defines its options model (``RedLightOptions`` in :mod:`etle.rules.red_light`,
...) on :class:`~etle.schema.ConfigModel` with these helpers; :mod:`etle.rules.registry`
collects them into the camera file's ``rules`` section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo

from etle.types import VEHICLE_LABELS

__all__ = ["Anchor", "LabelSet", "Labels", "Plates", "check_labels", "existing_file", "normalise_plates"]

_LABELS_ALLOWED = VEHICLE_LABELS | {"bicycle"}
_PLATE = re.compile(r"^[A-Z0-9]{1,12}$")


def existing_file(value: Path, info: ValidationInfo, what: str) -> Path:
    """A file path relative to the camera file's folder, which must exist."""
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    if not path.is_file():
        raise ValueError(f"{what} file not found: {path}")
    return path


def check_labels(value: tuple[str, ...]) -> tuple[str, ...]:
    bad = sorted(set(value) - _LABELS_ALLOWED)
    if bad:
        raise ValueError(f"unknown label(s) {bad}; allowed: {sorted(_LABELS_ALLOWED)}")
    return value


def normalise_plates(value: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for plate in value:
        norm = "".join(c for c in str(plate).upper() if c.isalnum())
        if not _PLATE.match(norm):
            raise ValueError(f"'{plate}' is not a plate number")
        out.append(norm)
    return tuple(out)


#: vehicle classes a rule applies to (at least one), checked against the detector's labels
Labels = Annotated[tuple[str, ...], Field(min_length=1), AfterValidator(check_labels)]
#: vehicle classes, possibly none (exemptions), checked alike
LabelSet = Annotated[tuple[str, ...], AfterValidator(check_labels)]
#: plate numbers, normalised to upper-case letters and digits
Plates = Annotated[tuple[str, ...], AfterValidator(normalise_plates)]
Anchor = Literal["bottom_center", "center"]
