"""Does the registered vehicle look like the vehicle the camera saw?

A plate on the wrong vehicle (a motorcycle's plate on a car, a private plate on a taxi, a
plate reported stolen) means the registered owner is probably not the offender: sending them
the notice would fine an innocent person.  :func:`vehicle_mismatch` is the pure comparison;
the ticket store records its reason as a review flag and never issues such a ticket
automatically (an officer decides).

It flags only what the camera can actually tell, and only disagreements a detector does not
routinely make: car vs truck and bus vs truck are confused by the vehicle detector (pick-ups,
minibuses), so they are not flagged; a body colour is not compared because the camera does not
measure it.  The plate colour is compared where the ticket has one (white and black are both
private plates, the old and the new style, as in the ``invalid_plate`` rule).
"""

from __future__ import annotations

from typing import Final

from etle.registry.base import OwnerRecord

__all__ = ["FLAG_STATUSES", "vehicle_mismatch"]

#: Vehicle-type pairs the detector confuses; a registry/camera disagreement within one is not a flag.
CONFUSABLE: Final = frozenset({frozenset({"car", "truck"}), frozenset({"bus", "truck"})})

#: Registry statuses that make the registered owner the wrong addressee (as the invalid_plate rule).
FLAG_STATUSES: Final = frozenset({"stolen", "blocked", "invalid", "revoked", "hilang", "blokir"})

_PRIVATE: Final = frozenset({"white", "black"})


def vehicle_mismatch(
    record: OwnerRecord,
    camera_label: str | None,
    plate_colour: str | None = None,
) -> str | None:
    """Why the registry's vehicle disagrees with the camera's, or None when it does not.

    ``camera_label`` is the detector's class of the vehicle (``car``, ``motorcycle``, ``bus``,
    ``truck``; a ticket's ``vehicle_label``), ``plate_colour`` the plate colour measured on the
    capture (a ticket's ``plate_colour``); empty or None means unknown and is never a mismatch.
    Reasons are joined with ``"; "``, e.g. ``vehicle_type: registry motorcycle, camera car``.
    """
    reasons: list[str] = []
    seen = (camera_label or "").strip().lower()
    reg = record.vehicle_type
    if reg and seen and reg != seen and frozenset({reg, seen}) not in CONFUSABLE:
        reasons.append(f"vehicle_type: registry {reg}, camera {seen}")
    colour = (plate_colour or "").strip().lower()
    if colour == "white_blue":  # the electric-vehicle plate: white with a blue band
        colour = "white"
    reg_colour = record.plate_colour
    if reg_colour and colour and reg_colour != colour and not {reg_colour, colour} <= _PRIVATE:
        reasons.append(f"plate_colour: registry {reg_colour}, camera {colour}")
    if record.status and record.status.strip().lower() in FLAG_STATUSES:
        reasons.append(f"registry_status: {record.status.strip().lower()}")
    return "; ".join(reasons) or None
