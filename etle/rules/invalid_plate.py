"""Invalid plate (UU 22/2009 art. 280 / 288): flagged for an officer's review, never a ticket.

A track's plate consensus (``FrameContext.plates``) is judged once it rests on ``min_reads``
reads with at least ``min_plate_confidence`` and every character of it is read alike by more
than ``char_majority`` of the reads covering it (the ticket's own gate: a plate the reads split
on is a misread to review on the ticket, not a registry mismatch to flag):

* ``grammar`` -- the text is not a TNKB registration (``^[A-Z]{1,2}[0-9]{1,4}[A-Z]{0,3}$``):
  confidently read characters that no valid plate has (a fake or a foreign plate);
* ``unknown_region`` -- valid grammar, but a region prefix missing from the region table;
* ``registry`` -- the registry (pluggable; a CSV one ships) says the plate belongs to another
  kind of vehicle (a motorcycle's plate on a car), has another colour, or has a status
  such as stolen or blocked; with ``flag_unregistered`` a plate it does not know at all.

Every violation carries ``review_only: True`` and its reasons: the evidence is for a reviewer
who compares plate and vehicle, and no fine follows from it automatically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from pydantic import Field, ValidationInfo, field_validator

from etle.plate.consensus import character_agreement
from etle.plate.tnkb import regions, split_tnkb
from etle.rules.base import PerTrackState, RuleContext, RuleSpec, make_violation
from etle.rules.options import Labels, existing_file
from etle.rules.plates import CsvPlateRegistry, PlateRegistry, plate_colour
from etle.schema import ConfigModel
from etle.types import FrameContext, PlateResult, Violation

__all__ = ["RULES", "InvalidPlateOptions", "InvalidPlateRule"]

log = logging.getLogger(__name__)

#: Registry statuses that flag a plate.
FLAG_STATUSES = frozenset({"stolen", "blocked", "invalid", "revoked", "hilang", "blokir"})


class InvalidPlateOptions(ConfigModel):
    """Plates that fail the TNKB grammar or mismatch the registry: flagged for review only."""

    min_plate_confidence: float = Field(
        default=0.8, ge=0, le=1, description="Plate consensus confidence needed to flag."
    )
    min_reads: int = Field(default=3, ge=1, description="Plate reads behind the consensus.")
    char_majority: float = Field(
        default=0.5, ge=0, lt=1,
        description="Every character of the plate read alike by more than this share of the reads covering it (0: off).",
    )
    check_grammar: bool = Field(default=True, description="Flag plates failing the grammar.")
    check_region: bool = Field(
        default=True, description="Flag plates whose region prefix is not in the table."
    )
    registry: Path | None = Field(
        default=None,
        description="CSV registry (columns plate, vehicle_type[, colour, status]); relative "
        "paths are relative to the camera file.",
    )
    flag_unregistered: bool = Field(
        default=False, description="Flag valid plates that are not in the registry."
    )
    labels: Labels = Field(default=("car", "motorcycle", "bus", "truck"), description="Classes.")

    @field_validator("registry", mode="after")
    @classmethod
    def _resolve_registry(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else existing_file(value, info, "registry")


class InvalidPlateRule(PerTrackState):
    """Plates that fail the grammar or mismatch the registry: review-only violations."""

    name = "invalid_plate"

    def __init__(
        self,
        *,
        registry: PlateRegistry | None = None,
        min_plate_confidence: float = 0.8,
        min_reads: int = 3,
        char_majority: float = 0.5,
        check_grammar: bool = True,
        check_region: bool = True,
        flag_unregistered: bool = False,
        labels: Iterable[str] = ("car", "motorcycle", "bus", "truck"),
    ) -> None:
        self._registry = registry
        self._min_conf = min_plate_confidence
        self._min_reads = min_reads
        self._majority = char_majority
        self._grammar = check_grammar
        self._region = check_region
        self._unregistered = flag_unregistered
        self._labels = frozenset(labels)
        self._tracks: dict[int, str] = {}  # track -> the plate text judged

    @classmethod
    def from_config(cls, options: InvalidPlateOptions, ctx: RuleContext) -> "InvalidPlateRule":
        registry = ctx.plate_registry
        if registry is None and options.registry is not None:
            registry = CsvPlateRegistry(options.registry)
        return cls(
            registry=registry,
            min_plate_confidence=options.min_plate_confidence,
            min_reads=options.min_reads,
            char_majority=options.char_majority,
            check_grammar=options.check_grammar,
            check_region=options.check_region,
            flag_unregistered=options.flag_unregistered,
            labels=options.labels,
        )

    def reasons(self, plate: PlateResult, label: str) -> list[str]:
        """Why a plate (read from a vehicle of class ``label``) needs review; empty if fine."""
        out: list[str] = []
        parts = split_tnkb(plate.text)
        if parts is None:
            if self._grammar:
                out.append("grammar")
            return out
        if self._region and parts[0] not in regions():
            out.append("unknown_region")
        if self._registry is not None:
            rec = self._registry.lookup(plate.text)
            if rec is None:
                if self._unregistered:
                    out.append("unregistered")
            else:
                if rec.vehicle_type is not None and rec.vehicle_type != label:
                    out.append(f"registry_vehicle_type:{rec.vehicle_type}")
                colour = plate_colour(plate.best.crop if plate.best is not None else None)
                if rec.colour is not None and colour is not None and rec.colour != colour:
                    if {rec.colour, colour} != {"white", "black"}:  # both are private plates
                        out.append(f"registry_colour:{rec.colour}")
                if rec.status is not None and rec.status.lower() in FLAG_STATUSES:
                    out.append(f"registry_status:{rec.status.lower()}")
        return out

    def update(self, ctx: FrameContext) -> list[Violation]:
        if ctx.plates is None:
            return []
        out: list[Violation] = []
        for obj in ctx.objects:
            if obj.label not in self._labels:
                continue
            plate = ctx.plate(obj.track_id)
            if plate.empty or plate.confidence < self._min_conf or len(plate.candidates) < self._min_reads:
                continue
            if self._tracks.get(obj.track_id) == plate.text:
                continue
            if self._majority > 0 and character_agreement(plate.text, plate.candidates) <= self._majority:
                continue  # the reads split on a character: not settled enough to judge
            self._tracks[obj.track_id] = plate.text
            reasons = self.reasons(plate, obj.label)
            if not reasons:
                continue
            log.info("invalid_plate: track %d plate %s: %s (review only)", obj.track_id, plate.text, reasons)
            out.append(
                make_violation(
                    self.name,
                    ctx,
                    obj,
                    details={
                        "review_only": True,
                        "plate": plate.text,
                        "plate_confidence": round(plate.confidence, 3),
                        "reads": len(plate.candidates),
                        "reasons": reasons,
                    },
                )
            )
        return out


RULES = (RuleSpec("invalid_plate", InvalidPlateOptions, InvalidPlateRule.from_config, files=("registry",)),)
