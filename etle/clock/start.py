"""When a recording began, where neither the clerk (``--start``) nor the camera file says: the one
place ``etle run`` and ``etle batch`` ask.

First the clock the camera burns into its picture (:mod:`etle.clock.osd`; unless the camera file
says ``clock: {read: false}``), then the date and time a recorder writes into the file's name
(:mod:`etle.clock.names`).  Where both are there and differ, the picture's clock is taken and the
run says so (a renamed file, or a recorder whose export names follow another clock).  Neither:
None, and the caller falls back to the container's ``creation_time``, then the file's time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from etle.clock.names import NAME_ORIGIN, name_time
from etle.clock.osd import OSD_ORIGIN

__all__ = ["RecordingDater", "RecordingStart", "one_recording", "recording_start"]

log = logging.getLogger(__name__)

#: a file name gives whole seconds (sometimes with milliseconds) of the recorder's clock; the
#: picture's clock is read to a fraction of a second: further apart than this, they disagree
AGREE_S = 2.0


@dataclass(frozen=True)
class RecordingStart:
    start: datetime  # aware
    origin: str  # wall_start_origin: OSD_ORIGIN or NAME_ORIGIN


def _local(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") + (f" {t.tzname()}" if t.tzname() else "")


class RecordingDater:
    """Dates the recordings of one camera in a run (``etle run``'s files, ``etle batch``'s clips):
    by the clock in each picture, else by each file name (see the module docstring).

    A camera without a clock in its picture costs six whole-frame text-detector runs a file
    before the search gives up: over a day of five-minute files, minutes of nothing found.  So
    once ``BARE_FILES`` files of the run showed no text that looks like a date and time at all,
    the pictures of the others are not searched (their names still date them)."""

    #: files without any clock reading after which the others' pictures are not searched
    BARE_FILES = 2

    def __init__(self, camera: Any) -> None:
        self.camera = camera
        self._bare = 0

    @property
    def reads_pictures(self) -> bool:
        return bool(self.camera.clock.read) and self._bare < self.BARE_FILES

    def _picture(self, path: str, name: str, creation_time: datetime | None, frame_rate: float | None) -> Any:
        from etle.clock.osd import clock_of_file

        cam = self.camera
        result = clock_of_file(path, cam.tz, date_order=cam.clock.date_order, frame_rate=frame_rate)
        note = result.note(name, creation_time)
        if note is not None:
            log.warning("%s", note)
        if not result.reads and result.ambiguous is None:
            self._bare += 1
            if self._bare == self.BARE_FILES:
                log.warning("the pictures of %d files showed no clock: the other files of this run are not searched "
                            "for one", self._bare)
        return result.fix

    def date(self, path: str, *, creation_time: datetime | None = None, frame_rate: float | None = None,
             duration_s: float | None = None) -> RecordingStart | None:
        """The start of the recording ``path`` by its picture's clock, else its file name; each
        choice (and a disagreement between the two) is logged as a warning for the clerk."""
        name = Path(path).name
        fix = self._picture(path, name, creation_time, frame_rate) if self.reads_pictures else None
        named = name_time(path, self.camera.tz)
        if fix is not None:
            if named is not None and abs((named.start - fix.start).total_seconds()) > AGREE_S:
                log.warning("%s: its name says the recording began %s, the clock in its picture %s; the picture's "
                            "clock is used (pass --start to choose)", name, _local(named.start), _local(fix.start))
            return RecordingStart(fix.start, OSD_ORIGIN)
        if named is None:
            return None
        text = f"{name}: recorded from {_local(named.start)}, by its file name ('{named.text}')"
        if creation_time is not None and abs((creation_time - named.start).total_seconds()) > 60:
            text += f"; the file's creation_time ({creation_time.isoformat()}) is not used"
        log.warning("%s", text)
        note = named.length_note(name, duration_s)
        if note is not None:
            log.warning("%s", note)
        return RecordingStart(named.start, NAME_ORIGIN)


def recording_start(path: str, camera: Any, *, creation_time: datetime | None = None,
                    frame_rate: float | None = None, duration_s: float | None = None) -> RecordingStart | None:
    """One recording's start (:meth:`RecordingDater.date`)."""
    return RecordingDater(camera).date(path, creation_time=creation_time, frame_rate=frame_rate, duration_s=duration_s)


def one_recording(what: str, files: list[str]) -> None:
    """Refuse a single given start (``what``: ``--start``, a camera file's ``start_time``) for
    several recordings: each would be dated from it, every ticket but the first recording's at a
    wrong time.  Raises :class:`ConfigError`."""
    from etle.errors import ConfigError

    if len(files) <= 1:
        return
    names = ", ".join(Path(f).name for f in files[:3]) + (", ..." if len(files) > 3 else "")
    raise ConfigError(f"{what} dates one recording, and {len(files)} were given ({names}): run them one at a time, "
                      "or leave it out to date each by the clock in its picture, its file name or its metadata")
