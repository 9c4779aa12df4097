"""What a vehicle registry answers, and the one verb every registry has.

An approved capture goes to the vehicle's registered owner, so the plate is looked up in the
registry (the national ERI database in production, a CSV/SQLite file in trials).  Every
registry answers :class:`LookupResult`: ``found`` with an :class:`OwnerRecord`, ``not_found``,
or ``unavailable`` with the reason (a timeout, an HTTP 503, an unreadable answer).  A registry
that cannot be reached is a *state*, never an exception: the caller records it and tries
again later, and a ticket is never issued on a guess.

The record format is the one of the ``invalid_plate`` rule's CSV registry
(:class:`etle.rules.plates.CsvPlateRegistry`: ``plate``, ``vehicle_type``, ``colour`` for the
plate colour, ``status``), extended with the owner's ``owner_name`` and ``owner_address``, the
vehicle's ``make`` and ``vehicle_colour`` and ``valid_until``; one file serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Final, Literal, Protocol, runtime_checkable

from etle.errors import ConfigError

__all__ = [
    "FOUND",
    "NOT_FOUND",
    "UNAVAILABLE",
    "LookupResult",
    "OwnerRecord",
    "Registry",
    "normalise_plate",
    "record_from_mapping",
]

FOUND: Final = "found"
NOT_FOUND: Final = "not_found"
UNAVAILABLE: Final = "unavailable"
Status = Literal["found", "not_found", "unavailable"]


def normalise_plate(plate: str) -> str:
    """A plate as registries key it: capitals and digits only (``"bh 1234-ab"`` -> ``"BH1234AB"``).

    The same normalisation as the ``invalid_plate`` rule's registry and the ticket store, so
    a plate read by the camera, typed by an officer or exported by the registry all match.
    """
    return "".join(c for c in plate.upper() if c.isalnum())


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    """What the registry says about a plate: its owner and the vehicle it belongs to.

    ``vehicle_type`` is a detector label (car, motorcycle, bus, truck) so it can be compared
    with what the camera saw; ``plate_colour`` is the TNKB colour the plate should have (white,
    black, yellow, red, green); ``vehicle_colour`` the body colour as the registry writes it.
    """

    plate: str
    owner_name: str = ""
    owner_address: str = ""
    vehicle_type: str | None = None
    make: str = ""
    vehicle_colour: str = ""
    plate_colour: str | None = None
    valid_until: date | None = None
    status: str | None = None  # e.g. active, stolen, blocked (as the invalid_plate registry)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plate": self.plate, "owner_name": self.owner_name, "owner_address": self.owner_address,
            "vehicle_type": self.vehicle_type, "make": self.make, "vehicle_colour": self.vehicle_colour,
            "plate_colour": self.plate_colour,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None, "status": self.status,
        }


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The answer to one lookup.  ``record`` is set exactly when ``status`` is ``found``;
    ``reason`` says why a lookup is ``unavailable``; ``source`` names the registry (never with
    credentials) so the ticket's audit log says who answered."""

    plate: str
    status: Status
    record: OwnerRecord | None = None
    reason: str = ""
    source: str = ""
    checked_at: datetime = field(default_factory=_now)
    cached: bool = False

    def __post_init__(self) -> None:
        if self.status not in (FOUND, NOT_FOUND, UNAVAILABLE):
            raise ValueError(f"unknown lookup status {self.status!r}")
        if (self.status == FOUND) != (self.record is not None):
            raise ValueError("a lookup result has a record exactly when its status is 'found'")

    @property
    def found(self) -> bool:
        return self.status == FOUND

    @property
    def unavailable(self) -> bool:
        return self.status == UNAVAILABLE


@runtime_checkable
class Registry(Protocol):
    """A vehicle registry: one verb, and it never raises for an unreachable service."""

    source: str

    def lookup(self, plate: str) -> LookupResult: ...


def _vehicle_type(value: str | None) -> str | None:
    # The vocabulary lives with the invalid_plate rule's registry (lazy: etle.rules is heavy).
    from etle.rules.plates import normalise_vehicle_type

    return normalise_vehicle_type(value)


def _plate_colours() -> tuple[str, ...]:
    from etle.rules.plates import COLOURS

    return COLOURS


def record_from_mapping(row: Mapping[str, Any], where: str, *, strict: bool = True) -> OwnerRecord:
    """An :class:`OwnerRecord` from a CSV row, a database row or a JSON answer.

    Keys are matched case-insensitively; ``color``/``vehicle_color`` are accepted for
    ``colour``/``vehicle_colour`` and ``name``/``address`` for the owner's.  ``strict`` (files)
    raises :class:`ConfigError` naming ``where`` for an unknown vehicle type, plate colour or
    date; a live service's odd value is dropped instead (the lookup itself still counts).
    """
    r = {str(k or "").strip().lower(): ("" if v is None else str(v).strip()) for k, v in row.items()}
    plate = normalise_plate(r.get("plate", ""))
    if not plate:
        raise ConfigError(f"{where}: empty plate")

    def bad(message: str) -> None:
        if strict:
            raise ConfigError(f"{where}: {message}")

    raw_type = r.get("vehicle_type") or ""
    vtype = _vehicle_type(raw_type)
    if raw_type and vtype is None:
        bad(f"unknown vehicle_type '{raw_type}'")
    colour = (r.get("colour") or r.get("color") or r.get("plate_colour") or "").lower() or None
    if colour is not None and colour not in _plate_colours():
        bad(f"plate colour '{colour}' is not one of {_plate_colours()}")
        colour = None
    valid: date | None = None
    if r.get("valid_until"):
        try:
            valid = date.fromisoformat(r["valid_until"][:10])
        except ValueError:
            bad(f"valid_until '{r['valid_until']}' is not a date (YYYY-MM-DD)")
    return OwnerRecord(
        plate=plate,
        owner_name=r.get("owner_name") or r.get("name") or "",
        owner_address=r.get("owner_address") or r.get("address") or "",
        vehicle_type=vtype,
        make=r.get("make") or "",
        vehicle_colour=r.get("vehicle_colour") or r.get("vehicle_color") or "",
        plate_colour=colour,
        valid_until=valid,
        status=r.get("status") or None,
    )
