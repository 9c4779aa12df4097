"""A bounded buffer of the most recent frames and their tracked objects.

The pipeline pushes every processed frame; when a violation fires it takes a snapshot to build
the evidence clip.  The buffer is bounded both by the span of presentation times it holds
(``seconds``) and by a hard maximum count, so memory stays flat for sources of any length and
any frame rate.  Time is the frames' ``pts``, never the wall clock.

To get a clip that covers ``pre`` seconds before and ``post`` seconds after a violation, keep a
ring of ``pre + post`` seconds and, once a frame with ``pts >= violation.pts + post`` has been
pushed, take ``ring.between(violation.pts - pre, violation.pts + post)``.
"""

from __future__ import annotations

import logging
from collections import deque

from etle.types import Frame, TrackedObject

log = logging.getLogger(__name__)

#: One buffered entry: a frame and the tracked objects seen in it.
RingEntry = tuple[Frame, tuple[TrackedObject, ...]]

DEFAULT_MAX_FRAMES = 600
"""Hard cap on buffered frames (e.g. 20 s at 30 fps), whatever the pts span."""


class FrameRing:
    """The recent ``(frame, objects)`` pairs whose pts lie within ``seconds`` of the newest.

    A frame whose pts goes backwards (a restarted or different source) clears the ring first, so
    a snapshot never mixes two timelines.
    """

    def __init__(self, seconds: float, *, max_frames: int = DEFAULT_MAX_FRAMES) -> None:
        if not seconds > 0:
            raise ValueError(f"FrameRing seconds must be > 0, got {seconds!r}")
        if max_frames < 1:
            raise ValueError(f"FrameRing max_frames must be >= 1, got {max_frames!r}")
        self._seconds = float(seconds)
        self._entries: deque[RingEntry] = deque(maxlen=max_frames)

    @property
    def seconds(self) -> float:
        return self._seconds

    @property
    def max_frames(self) -> int:
        maxlen = self._entries.maxlen
        assert maxlen is not None
        return maxlen

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def span(self) -> float:
        """pts of the newest frame minus pts of the oldest (0 when fewer than two frames)."""
        if len(self._entries) < 2:
            return 0.0
        return self._entries[-1][0].pts - self._entries[0][0].pts

    def push(self, frame: Frame, objects: tuple[TrackedObject, ...] | list[TrackedObject] = ()) -> None:
        """Add a frame (newest last) and drop the entries older than ``seconds``."""
        if self._entries:
            last = self._entries[-1][0]
            if frame.pts < last.pts or frame.source != last.source:
                log.debug(
                    "frame ring reset: pts %.3f after %.3f (source %r after %r)",
                    frame.pts, last.pts, frame.source, last.source,
                )
                self._entries.clear()
        self._entries.append((frame, tuple(objects)))
        horizon = frame.pts - self._seconds
        while self._entries and self._entries[0][0].pts < horizon:
            self._entries.popleft()

    def snapshot(self) -> tuple[RingEntry, ...]:
        """All buffered entries, oldest first (an immutable copy)."""
        return tuple(self._entries)

    def between(self, start_pts: float, end_pts: float) -> tuple[RingEntry, ...]:
        """The buffered entries with ``start_pts <= pts <= end_pts``, oldest first."""
        return tuple(e for e in self._entries if start_pts <= e[0].pts <= end_pts)

    def clear(self) -> None:
        self._entries.clear()
