"""Odd-even (ganjil-genap, UU 22/2009 art. 287(1)): the plate's parity against the date's.

On an odd date only plates whose number ends in an odd digit may use the road, on an even
date only even ones -- during the active hours, on active weekdays, not on holidays.  Exempt:
the configured vehicle classes (motorcycles, buses), plate colours (yellow public transport,
red government) and listed plates (emergency, electric and other vehicles the operator
exempts).

Time is the frame's timestamp (``wall_start + pts``) in the camera's timezone.  A track is
judged once it has been seen inside the zone during active time and its plate consensus
(``FrameContext.plates``) is a valid TNKB registration with at least ``min_plate_confidence``
and every character of it -- the parity digit above all -- is read alike by more than
``char_majority`` of the reads that cover it (:func:`etle.plate.consensus.character_agreement`,
the ticket's own gate): a parity decided by a vote between split reads would be a guess.  The
plate may settle after the vehicle left the zone, so the judgement waits for it while the track
lives.  The plate colour comes from the plate crop kept with the consensus; an unknown
colour is not exempt (the reviewing officer sees the plate).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Iterable, Literal, Sequence
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from etle.geometry import Point, point_in_polygon
from etle.plate.consensus import character_agreement
from etle.plate.tnkb import split_tnkb
from etle.rules.base import RuleContext, RuleSpec, ZoneRef, anchor_point, make_violation
from etle.rules.options import LabelSet, Labels, Plates
from etle.rules.plates import plate_colour
from etle.schema import ConfigModel
from etle.types import FrameContext, Violation
from etle.zones import PolygonZone

__all__ = ["RULES", "OddEvenOptions", "OddEvenRule", "Schedule"]

log = logging.getLogger(__name__)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class OddEvenOptions(ConfigModel):
    """Ganjil-genap: the plate's last digit must match the date's parity during active hours."""

    zone: str | None = Field(
        default=None, description="Polygon zone of the restricted road (None: whole picture)."
    )
    hours: tuple[str, ...] = Field(
        default=("06:00-10:00", "16:00-21:00"),
        min_length=1,
        description="Active windows 'HH:MM-HH:MM' in the camera timezone.",
    )
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        default=("mon", "tue", "wed", "thu", "fri"), min_length=1, description="Active weekdays."
    )
    holidays: tuple[date, ...] = Field(
        default=(), description="Dates (YYYY-MM-DD) on which the restriction does not apply."
    )
    labels: Labels = Field(
        default=("car", "truck", "bus", "motorcycle"),
        description="Classes considered (exempt_labels are then left out).",
    )
    exempt_labels: LabelSet = Field(
        default=("motorcycle", "bus"), description="Exempt vehicle classes."
    )
    exempt_colours: tuple[Literal["yellow", "red", "green", "white", "black"], ...] = Field(
        default=("yellow", "red"),
        description="Exempt plate colours (yellow: public transport, red: government).",
    )
    exempt_plates: Plates = Field(
        default=(), description="Listed exempt vehicles (emergency, electric, ...), by plate."
    )
    min_plate_confidence: float = Field(
        default=0.7, ge=0, le=1, description="Plate consensus confidence needed to judge."
    )
    char_majority: float = Field(
        default=0.5, ge=0, lt=1,
        description="Every character of the plate read alike by more than this share of the reads covering it (0: off).",
    )

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for w in value:
            m = _HOURS.match(w)
            if not m:
                raise ValueError(f"'{w}' is not a window 'HH:MM-HH:MM'")
            if (int(m.group(1)), int(m.group(2))) >= (int(m.group(3)), int(m.group(4))):
                raise ValueError(f"'{w}' ends before it starts")
            if m.group(3) == "24" and m.group(4) != "00":
                raise ValueError(f"'{w}': 24 only as 24:00")
        return value


def _parse_window(text: str) -> tuple[time, time | None]:
    a, b = text.split("-")
    h1, m1 = (int(x) for x in a.split(":"))
    h2, m2 = (int(x) for x in b.split(":"))
    return time(h1, m1), (None if (h2, m2) == (24, 0) else time(h2, m2))


@dataclass(frozen=True)
class Schedule:
    """When a restriction is active: windows of the day, weekdays, minus holidays."""

    windows: tuple[tuple[time, time | None], ...]
    weekdays: frozenset[int]
    holidays: frozenset[date]
    tz: ZoneInfo

    @classmethod
    def build(
        cls,
        hours: Iterable[str],
        weekdays: Iterable[str] = ("mon", "tue", "wed", "thu", "fri"),
        holidays: Iterable[date] = (),
        tz: ZoneInfo | str = "Asia/Jakarta",
    ) -> "Schedule":
        return cls(
            tuple(_parse_window(h) for h in hours),
            frozenset(_WEEKDAYS.index(d) for d in weekdays),
            frozenset(holidays),
            tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz),
        )

    def local(self, when: datetime) -> datetime:
        return when.astimezone(self.tz)

    def active(self, when: datetime) -> bool:
        local = self.local(when)
        if local.weekday() not in self.weekdays or local.date() in self.holidays:
            return False
        now = local.time().replace(tzinfo=None)
        return any(start <= now and (end is None or now < end) for start, end in self.windows)


class OddEvenRule:
    """Plates whose last digit has the wrong parity for the date, in active hours."""

    name = "odd_even"

    def __init__(
        self,
        schedule: Schedule,
        *,
        zone: Sequence[Point] | None = None,
        labels: Iterable[str] = ("car", "truck", "bus", "motorcycle"),
        exempt_labels: Iterable[str] = ("motorcycle", "bus"),
        exempt_colours: Iterable[str] = ("yellow", "red"),
        exempt_plates: Iterable[str] = (),
        min_plate_confidence: float = 0.7,
        char_majority: float = 0.5,
    ) -> None:
        self._schedule = schedule
        self._zone = tuple((float(x), float(y)) for x, y in zone) if zone else None
        self._labels = frozenset(labels) - frozenset(exempt_labels)
        self._exempt_colours = frozenset(exempt_colours)
        self._exempt_plates = frozenset("".join(c for c in p.upper() if c.isalnum()) for p in exempt_plates)
        self._min_conf = min_plate_confidence
        self._majority = char_majority
        self._seen: dict[int, tuple[float, datetime]] = {}  # track -> (pts, time) first in zone, active
        self._done: set[int] = set()  # judged (exempt or compliant); violations go via the engine

    @classmethod
    def from_config(cls, options: OddEvenOptions, ctx: RuleContext) -> "OddEvenRule":
        zone = ctx.polygons[options.zone].polygon if options.zone else None
        return cls(
            Schedule.build(options.hours, options.weekdays, options.holidays, ctx.tz),
            zone=zone,
            labels=options.labels,
            exempt_labels=options.exempt_labels,
            exempt_colours=options.exempt_colours,
            exempt_plates=options.exempt_plates,
            min_plate_confidence=options.min_plate_confidence,
            char_majority=options.char_majority,
        )

    def forget(self, track_id: int) -> None:
        self._seen.pop(track_id, None)
        self._done.discard(track_id)

    def reset(self) -> None:
        self._seen.clear()
        self._done.clear()

    @property
    def tracked(self) -> int:
        return len(self._seen) + len(self._done)

    def update(self, ctx: FrameContext) -> list[Violation]:
        if ctx.plates is None:
            return []
        when = ctx.frame.timestamp
        active = self._schedule.active(when)
        out: list[Violation] = []
        for obj in ctx.objects:
            tid = obj.track_id
            if obj.label not in self._labels or tid in self._done:
                continue
            if tid not in self._seen:
                if not active:
                    continue
                if self._zone is not None and not point_in_polygon(anchor_point(obj.box), self._zone):
                    continue
                self._seen[tid] = (ctx.frame.pts, when)
            plate = ctx.plate(tid)
            if plate.empty or plate.confidence < self._min_conf or split_tnkb(plate.text) is None:
                continue  # wait for a settled, valid plate
            if self._majority > 0 and character_agreement(plate.text, plate.candidates) <= self._majority:
                continue  # the reads split on a character: wait for more
            first_pts, first_when = self._seen[tid]
            self._done.add(tid)
            if plate.text in self._exempt_plates:
                continue
            colour = plate_colour(plate.best.crop if plate.best is not None else None)
            if colour in self._exempt_colours:
                continue
            digit = int(split_tnkb(plate.text)[1][-1])  # type: ignore[index]
            local = self._schedule.local(first_when)
            if digit % 2 == local.day % 2:
                continue
            out.append(
                make_violation(
                    self.name,
                    ctx,
                    obj,
                    details={
                        "plate": plate.text,
                        "plate_confidence": round(plate.confidence, 3),
                        "last_digit": digit,
                        "date": local.date().isoformat(),
                        "date_parity": "odd" if local.day % 2 else "even",
                        "plate_parity": "odd" if digit % 2 else "even",
                        "plate_colour": colour,
                        "seen_in_zone_at": local.isoformat(),
                        "seen_in_zone_pts": round(first_pts, 3),
                    },
                )
            )
        return out


RULES = (
    RuleSpec(
        "odd_even",
        OddEvenOptions,
        OddEvenRule.from_config,
        zones=(ZoneRef("zone", PolygonZone, required=False),),
    ),
)
