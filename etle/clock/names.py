"""When a recording began, by its file name: what recorders write into the names of their exports.

Recorders name the files they export after the recording's start, in the recorder's local time,
and often its end too:

* Hikvision NVRs and cameras: ``ch01_20240115073000.mp4``, ``192.168.1.64_01_20240115073000123.mp4``
  (with milliseconds), ``ch1_main_20240115073000_20240115080000.mp4`` (start and end);
* Dahua: ``07.30.00-07.35.00[M][0@0][0].dav`` in a folder named after the day
  (``2024-01-15/001/dav/07/``), or ``NVR_ch1_main_20240115073000_20240115073500.dav``;
* phones, dashcams and most other software: ``VID_20240115_073000.mp4``,
  ``2024-01-15_07-30-00.mp4``, ``2024-01-15 07.30.00.mp4``, ``2024-01-15T07:30:00.mkv``.

:func:`name_time` finds such a date and time, year first (the order every one of these writes;
a name such as ``15-01-2024`` is not read: day and month could be either way round), checks it is
a real date between the year 2000 and tomorrow, and gives it in the camera's time zone.  A name
holding two times gives the recording's end as well, which is checked against the file's length.

Written here, not with a date parser: ``dateutil``'s fuzzy parsing takes any run of digits in a
name for a date (a camera id, a counter), and a wrong date on a ticket costs a citizen; these few
patterns are the names recorders are known to write, and nothing else is taken.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import PurePath

__all__ = ["NAME_ORIGIN", "NameTime", "name_time"]

log = logging.getLogger(__name__)

#: ``wall_start_origin`` of a recording dated by its file name
NAME_ORIGIN = "the file name"

# 20240115073000, 20240115_073000, 20240115-073000, 20240115T073000, + up to 3 digits of ms
_COMPACT = re.compile(r"(?<![0-9])(?P<Y>20\d\d)(?P<m>\d\d)(?P<d>\d\d)[_\-T ]?(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)(?P<f>\d{0,3})(?![0-9])")
# 2024-01-15_07-30-00, 2024-01-15 07.30.00, 2024.01.15-07.30.00, 2024-01-15T07:30:00, 2024_01_15_07_30_00
_SEPARATED = re.compile(
    r"(?<![0-9])(?P<Y>20\d\d)(?P<s1>[-_.])(?P<m>\d\d)(?P=s1)(?P<d>\d\d)[ _T\-]+"
    r"(?P<H>\d\d)(?P<s2>[-_.:hH])(?P<M>\d\d)(?P=s2)(?P<S>\d\d)(?![0-9])"
)
# Dahua: the times of day in the name (07.30.00-07.35.00), the day in a folder above
_TIMES_OF_DAY = re.compile(r"^(?P<H>\d\d)\.(?P<M>\d\d)\.(?P<S>\d\d)-(?P<H2>\d\d)\.(?P<M2>\d\d)\.(?P<S2>\d\d)(?![0-9])")
_DAY_FOLDER = re.compile(r"^(?P<Y>20\d\d)-?(?P<m>\d\d)-?(?P<d>\d\d)$")


@dataclass(frozen=True)
class NameTime:
    """A recording's start (and end, where the name gives it) read from its file name."""

    start: datetime  # aware, the camera's time zone
    end: datetime | None
    text: str  # the part of the name it was read from

    def length_note(self, name: str, duration_s: float | None) -> str | None:
        """A warning where the name's start and end do not span the file's length (a name that
        was not the recorder's, or a file cut after export); None when they do or cannot say."""
        if self.end is None or not duration_s:
            return None
        span = (self.end - self.start).total_seconds()
        if abs(span - duration_s) <= max(2.0, 0.05 * duration_s):
            return None
        return (f"{name}: its name spans {span:.0f} s ({self.text}) but the file holds {duration_s:.0f} s; "
                "the start from the name may not be the recording's")


def _valid(y: str, mo: str, d: str, h: str, mi: str, s: str, frac: str = "") -> datetime | None:
    try:
        t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    except ValueError:
        return None
    if frac:
        t += timedelta(milliseconds=int(frac.ljust(3, "0")))
    return t


def _plausible(t: datetime, now: datetime) -> bool:
    return datetime(2000, 1, 1) <= t <= now + timedelta(days=1)


def _times_in(stem: str) -> list[tuple[datetime, str]]:
    found: list[tuple[int, datetime, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern in (_SEPARATED, _COMPACT):
        for m in pattern.finditer(stem):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            g = m.groupdict()
            t = _valid(g["Y"], g["m"], g["d"], g["H"], g["M"], g["S"], g.get("f") or "")
            if t is not None:
                found.append((m.start(), t, m.group(0)))
                taken.append((m.start(), m.end()))
    return [(t, text) for _, t, text in sorted(found, key=lambda x: x[0])]


def _dahua(path: PurePath) -> tuple[datetime, datetime, str] | None:
    m = _TIMES_OF_DAY.match(path.name)
    if m is None:
        return None
    for folder in list(path.parents)[:5]:
        day = _DAY_FOLDER.match(folder.name)
        if day is None:
            continue
        start = _valid(day["Y"], day["m"], day["d"], m["H"], m["M"], m["S"])
        end = _valid(day["Y"], day["m"], day["d"], m["H2"], m["M2"], m["S2"])
        if start is None or end is None:
            return None
        if end < start:  # past midnight
            end += timedelta(days=1)
        return start, end, f"{folder.name}/{m.group(0)}"
    return None


def name_time(path: str | PurePath, tz: tzinfo, *, now: datetime | None = None) -> NameTime | None:
    """The start (and end) of the recording ``path`` by its file name, in ``tz`` (the recorder's,
    i.e. the camera's, local time); None where the name holds no date and time of a known form.
    ``now`` (naive, in ``tz``; default the present) bounds a plausible date."""
    p = PurePath(path)
    now = now if now is not None else datetime.now(tz).replace(tzinfo=None)
    times = _times_in(p.stem)
    if times:
        start, text = times[0]
        end = times[1][0] if len(times) > 1 and times[1][0] >= start else None
        if end is not None:
            text = f"{text} ... {times[1][1]}"
    else:
        dahua = _dahua(p)
        if dahua is None:
            return None
        start, end, text = dahua
    if not _plausible(start, now):
        log.warning("%s: the name holds %s, not a plausible recording time; not used", p.name, start.isoformat(sep=" "))
        return None
    return NameTime(start.replace(tzinfo=tz), end.replace(tzinfo=tz) if end is not None else None, text)
