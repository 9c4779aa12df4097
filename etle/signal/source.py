"""Traffic-signal state per frame: a fixed-time plan, the colour of the lit lamp, or a feed.

The controller feeds (HTTP, MQTT) live in :mod:`etle.signal.feed`.

Both sources take their time from the frame (``pts``, or ``timestamp`` for a plan anchored at
a time of day), never from the wall clock, so a replayed file gives the same states as live.

:class:`RoiColourSignal` is hand-written on OpenCV's HSV conversion: a signal head is a few
dozen pixels, and "which hue is lit and bright in this polygon" is a threshold count, not a
model.  Its debouncing is on frame pts, so the same footage always debounces the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from etle.signal.config import FixedPlanConfig, Phase, RoiSignalConfig
from etle.types import Frame, SignalState

__all__ = ["FixedPlanSignal", "RoiColourSignal", "SignalSource", "build_signal", "UNKNOWN"]

log = logging.getLogger(__name__)

UNKNOWN = "unknown"


@runtime_checkable
class SignalSource(Protocol):
    """Anything that tells the signal state at a frame."""

    def state_at(self, frame: Frame) -> SignalState: ...


class FixedPlanSignal:
    """A repeating fixed-time plan.

    With ``anchor=None`` the plan starts (phase 0, plus ``offset_s`` into the cycle) at pts 0.
    With an anchor time of day it starts at that local time in ``tz`` every day, read from
    ``frame.timestamp``; a frame without ``wall_start`` then has no meaningful time of day and
    the state is 'unknown' (never a guessed red).
    """

    def __init__(
        self,
        phases: tuple[Phase, ...] | list[Phase],
        *,
        anchor: str = "source_start",
        offset_s: float = 0.0,
        tz: ZoneInfo | None = None,
    ) -> None:
        if not phases:
            raise ValueError("a fixed plan needs at least one phase")
        self._phases = tuple(phases)
        self._cycle = sum(p.duration_s for p in self._phases)
        self._anchor = anchor
        self._offset = offset_s
        self._tz = tz or ZoneInfo("UTC")
        self._warned = False

    @classmethod
    def from_config(cls, cfg: FixedPlanConfig, tz: ZoneInfo) -> "FixedPlanSignal":
        return cls(cfg.phases, anchor=cfg.anchor, offset_s=cfg.offset_s, tz=tz)

    def _elapsed(self, frame: Frame) -> float | None:
        if self._anchor == "source_start":
            return frame.pts
        if frame.wall_start is None:
            if not self._warned:
                log.warning(
                    "signal plan anchored at %s needs the wall-clock start of %s; state is unknown",
                    self._anchor,
                    frame.source,
                )
                self._warned = True
            return None
        h, m, s = (int(x) for x in self._anchor.split(":"))
        local = frame.timestamp.astimezone(self._tz)
        day = local.date()
        for _ in range(2):
            start = datetime(day.year, day.month, day.day, h, m, s, tzinfo=self._tz)
            if start <= local:
                break
            day = day - timedelta(days=1)
        # Subtract in UTC: aware datetimes sharing a tzinfo subtract as wall times (DST).
        return (local.astimezone(timezone.utc) - start.astimezone(timezone.utc)).total_seconds()

    def state_at(self, frame: Frame) -> SignalState:
        elapsed = self._elapsed(frame)
        if elapsed is None:
            return SignalState(UNKNOWN, source="plan", confidence=0.0)
        pos = (elapsed + self._offset) % self._cycle
        for phase in self._phases:
            if pos < phase.duration_s:
                return SignalState(phase.state, source="plan")
            pos -= phase.duration_s
        return SignalState(self._phases[-1].state, source="plan")  # float round-off at the end


# Hue ranges (OpenCV H is 0..179) of lit lamps, chosen on the training split of real lamp crops
# (`etle eval lamps`).  Real red LEDs look pink-red (H 160-179, 0-6); yellow ones orange (H 10-35)
# and their overexposed halo can look red, hence the gap 7-9 that counts for neither; green ones
# cyan (H 80-100).  Green starts at 60, above sunlit foliage and yellow-green (H 35-60), and stops
# short of the sky (H 100-120).
_HUES: dict[str, tuple[tuple[int, int], ...]] = {
    "red": ((0, 6), (160, 179)),
    "yellow": ((10, 35),),
    "green": ((60, 100),),
}


@dataclass(slots=True)
class _Debounce:
    stable: str = UNKNOWN
    confidence: float = 0.0
    candidate: str | None = None
    since: float = 0.0
    dark_since: float | None = None
    last_pts: float | None = field(default=None)


class RoiColourSignal:
    """Classify the lit lamp inside a polygon by HSV colour, debounced on pts.

    A pixel is lit when its saturation and value reach ``min_saturation`` / ``min_value``; each
    lit pixel adds its saturation x value (0..1) to the mass of the colour its hue falls in.  The
    colour with the most mass wins when that mass is at least ``min_fraction`` of the polygon's
    pixels and ``min_margin`` times the next colour's; else the raw reading is 'unknown'.
    Weighting by saturation x value lets the coloured, bright halo of an overexposed lamp decide
    rather than its white core or a dull coloured background.

    The reported state changes only after a new colour has held for ``debounce_s`` of pts; it
    starts as 'unknown'.  A dark reading ('unknown') is no news for up to ``hold_dark_s`` (LED
    flicker against the shutter, a vehicle passing in front of the head): the stable colour
    stays, and a new colour's debounce goes on through it.  Longer, the state is 'unknown'.
    """

    def __init__(
        self,
        polygon: tuple[tuple[float, float], ...] | list[tuple[float, float]],
        *,
        debounce_s: float = 0.3,
        hold_dark_s: float = 1.0,
        min_fraction: float = 0.002,
        min_margin: float = 2.0,
        min_saturation: int = 25,
        min_value: int = 160,
    ) -> None:
        if len(polygon) < 3:
            raise ValueError("the signal polygon needs at least 3 points")
        self._polygon = np.round(np.asarray(polygon, dtype=np.float64)).astype(np.int32)
        self._debounce = debounce_s
        self._hold_dark = max(hold_dark_s, debounce_s)
        self._min_fraction = min_fraction
        self._min_margin = min_margin
        self._min_s = min_saturation
        self._min_v = min_value
        self._mask_cache: dict[tuple[int, int], tuple[tuple[int, int, int, int], np.ndarray]] = {}
        self._state = _Debounce()

    @property
    def region(self) -> tuple[int, int, int, int]:
        """The polygon's bounding box (x1, y1, x2, y2; the ends exclusive, as a slice) in image px:
        the evidence shows it enlarged."""
        x, y, w, h = cv2.boundingRect(self._polygon)
        return (int(x), int(y), int(x + w), int(y + h))

    @classmethod
    def from_config(cls, cfg: RoiSignalConfig) -> "RoiColourSignal":
        return cls(
            cfg.polygon,
            debounce_s=cfg.debounce_s,
            hold_dark_s=cfg.hold_dark_s,
            min_fraction=cfg.min_fraction,
            min_margin=cfg.min_margin,
            min_saturation=cfg.min_saturation,
            min_value=cfg.min_value,
        )

    def _mask(self, height: int, width: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        key = (height, width)
        if key not in self._mask_cache:
            x, y, w, h = cv2.boundingRect(self._polygon)
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
            if x1 <= x0 or y1 <= y0:
                return None
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [self._polygon - np.array([x0, y0], np.int32)], 255)
            self._mask_cache[key] = ((x0, y0, x1, y1), mask)
        return self._mask_cache[key]

    def colour_mass(self, image: np.ndarray) -> tuple[dict[str, float], int]:
        """Each colour's lit mass in the polygon of one BGR image, and the polygon's pixel count."""
        found = self._mask(image.shape[0], image.shape[1])
        if found is None:
            return {c: 0.0 for c in _HUES}, 0
        (x0, y0, x1, y1), mask = found
        hsv = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_BGR2HSV)
        inside = mask > 0
        area = int(inside.sum())
        hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        lit = inside & (sat >= self._min_s) & (val >= self._min_v)
        weight = sat[lit].astype(np.float32) * val[lit].astype(np.float32) / (255.0 * 255.0)
        hist = np.bincount(hue[lit], weights=weight, minlength=180)
        mass = {c: float(sum(hist[lo : hi + 1].sum() for lo, hi in r)) for c, r in _HUES.items()}
        return mass, area

    def classify(self, image: np.ndarray) -> tuple[str, float]:
        """Raw (undebounced) colour of one BGR image and its share of the lit colour mass."""
        mass, area = self.colour_mass(image)
        if area == 0:
            return UNKNOWN, 0.0
        ranked = sorted(mass.items(), key=lambda kv: kv[1], reverse=True)
        (colour, best), (_, second) = ranked[0], ranked[1]
        if best < self._min_fraction * area or best < self._min_margin * second:
            return UNKNOWN, 0.0
        return colour, best / sum(mass.values())

    def state_at(self, frame: Frame) -> SignalState:
        raw, confidence = self.classify(frame.image)
        st = self._state
        if st.last_pts is not None and frame.pts < st.last_pts:
            self._state = st = _Debounce()  # the source restarted
        st.last_pts = frame.pts
        if raw == UNKNOWN:  # dark: no news, until it lasts hold_dark_s
            if st.dark_since is None:
                st.dark_since = frame.pts
            if frame.pts - st.dark_since < self._hold_dark:
                return SignalState(st.stable, source="roi", confidence=st.confidence)
            if st.stable != UNKNOWN:
                log.debug("signal %s -> dark at pts %.3f", st.stable, frame.pts)
            st.stable, st.candidate, st.confidence = UNKNOWN, None, 0.0
            return SignalState(UNKNOWN, source="roi", confidence=0.0)
        st.dark_since = None
        if raw == st.stable:
            st.candidate = None
            st.confidence = confidence if raw != UNKNOWN else 0.0
        elif raw != st.candidate:
            st.candidate, st.since = raw, frame.pts
        if st.candidate is not None and frame.pts - st.since >= self._debounce:
            log.debug("signal %s -> %s at pts %.3f", st.stable, st.candidate, frame.pts)
            st.stable, st.candidate = st.candidate, None
            st.confidence = confidence if st.stable != UNKNOWN else 0.0
        return SignalState(st.stable, source="roi", confidence=st.confidence)


def build_signal(camera: Any) -> SignalSource | None:
    """The signal source a camera file (a :class:`~etle.camera.config.CameraConfig`)
    configures, or None when it has no `signal` section."""
    cfg = camera.signal
    if cfg is None:
        return None
    if isinstance(cfg, FixedPlanConfig):
        return FixedPlanSignal.from_config(cfg, camera.tz)
    if isinstance(cfg, RoiSignalConfig):
        return RoiColourSignal.from_config(cfg)
    from etle.signal.feed import ExternalSignal

    return ExternalSignal.from_config(cfg)
