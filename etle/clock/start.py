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
from etle.clock.osd import OSD_ORIGIN, start_from_picture

__all__ = ["RecordingStart", "recording_start"]

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


def recording_start(path: str, camera: Any, *, creation_time: datetime | None = None,
                    frame_rate: float | None = None, duration_s: float | None = None) -> RecordingStart | None:
    """The start of the recording ``path`` of ``camera`` by its picture's clock, else its file
    name; each choice (and a disagreement between the two) is logged as a warning for the clerk."""
    name = Path(path).name
    fix = start_from_picture(path, camera, creation_time=creation_time, frame_rate=frame_rate, name=name) \
        if camera.clock.read else None
    named = name_time(path, camera.tz)
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
