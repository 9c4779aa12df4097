"""The plate stage: read the plates of tracked vehicles, cheaply, and vote per track.

For each frame, :func:`select_tracks` (a pure function) picks the few vehicle tracks worth a
read now: vehicles only, large enough to hold a legible plate, not read in the last ``every_n``
frames nor the last ``every_s`` seconds of video (so a track's budget of reads is spread over its
life instead of spent in its first second: on the Cilacap clip, 0.5 s and 16 reads gave 3 plates
where every 3rd frame and 8 reads gave 2) (optionally, with ``refresh_n``, read again sooner only when the vehicle came closer; off
by default: it read fewer plates on the Cilacap clip), not yet settled, not over their read budget, fewest reads and largest first, at most
``max_per_frame``.  For each, :class:`PlateStage` crops the vehicle from the frame (a view: the
frame is read-only and never modified), runs the plate detector on the crop, maps the best plate
box back to frame coordinates, reads that plate (a copy of its pixels, so that a read never pins a
whole frame in memory), classifies the plate's background colour
(:func:`etle.plate.colour.classify_colour`, for every reader alike) and feeds :class:`~etle.plate.consensus.PlateConsensus`.  A track counts
as settled (and is read no more) once ``settle_reads`` reads agree with its consensus at
``settle_confidence`` and every character of it is read alike by more than ``settle_majority``
of the reads covering it (the ticket's gate, :func:`etle.plate.consensus.character_agreement`):
reads split 3:3 on a letter keep the track being read, while its budget lasts, rather than
leaving its ticket a ``?``.

Per-track state is bounded (LRU of ``max_tracks``); call :meth:`PlateStage.forget` when a track
ends and its result has been taken.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from etle.plate.colour import classify_colour
from etle.plate.consensus import PlateConsensus, character_agreement, crop_quality
from etle.plate.detector import PlateDetector
from etle.plate.readers import PlateReader
from etle.plate.tnkb import category_of
from etle.types import (
    VEHICLE_LABELS,
    Box,
    Detection,
    Frame,
    PlateRead,
    PlateResult,
    TrackedObject,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackReadState:
    """What the stage remembers about one track (never the pixels)."""

    attempts: int = 0  # plate reads tried (detector run), successful or not
    reads: int = 0  # reads that produced text
    last_frame: int = -(10**9)
    settled: bool = False
    last_area: float = 0.0  # the vehicle box's area at the last attempt
    last_pts: float = float("-inf")  # the frame timestamp of the last attempt (seconds)


@dataclass(frozen=True, slots=True)
class SelectionPolicy:
    """The knobs of :func:`select_tracks`."""

    min_vehicle_px: int = 48  # the vehicle box's shorter side, in frame pixels
    every_n: int = 3  # frames between two reads of the same track
    max_reads_per_track: int = 16  # attempts per track, successful or not
    max_per_frame: int = 4  # reads per frame, all tracks together
    labels: frozenset[str] = VEHICLE_LABELS
    #: a track is read again sooner than ``refresh_n`` frames only when its box grew by this factor
    #: (it came closer: a better view of the plate); a vehicle waiting at the line is not re-read
    #: on every detection with the same view
    regrow: float = 1.15
    refresh_n: int = 0  # 0: off -- measured on Cilacap (14 s): with 15, one plate read instead of two
    #: seconds (frame timestamps) between two reads of the same track, whatever the frame rate and
    #: detection stride: spreads a track's read budget over its life, so that the frames where the
    #: vehicle comes close get reads too (0: only ``every_n`` applies)
    every_s: float = 0.5


def select_tracks(
    vehicles: Sequence[TrackedObject],
    frame_index: int,
    state: Mapping[int, TrackReadState],
    policy: SelectionPolicy = SelectionPolicy(),
    priority: Collection[int] = (),
    now: float | None = None,
) -> list[TrackedObject]:
    """The tracks to read in this frame, best first (see the module docstring). Pure.

    Tracks in ``priority`` (vehicles with a violation waiting for its ticket: their plate is the
    one that matters) come first, get twice the read budget and skip the came-closer condition
    (a settled track is not read again: its plate is already agreed).
    """
    eligible: list[tuple[int, int, float, int, TrackedObject]] = []
    seen: set[int] = set()
    for v in vehicles:
        if v.label not in policy.labels or v.track_id in seen:
            continue
        seen.add(v.track_id)
        if min(v.box.width, v.box.height) < policy.min_vehicle_px:
            continue
        st = state.get(v.track_id, TrackReadState())
        urgent = v.track_id in priority
        budget = policy.max_reads_per_track * (2 if urgent else 1)
        if st.settled or st.attempts >= budget:
            continue
        since = frame_index - st.last_frame
        if since < policy.every_n:
            continue
        if policy.every_s > 0 and now is not None and now - st.last_pts < policy.every_s * (0.5 if urgent else 1.0):
            continue
        if not urgent and since < policy.refresh_n and v.box.area < st.last_area * policy.regrow:
            continue
        eligible.append((0 if urgent else 1, st.reads, -v.box.area, v.track_id, v))
    eligible.sort(key=lambda e: e[:4])
    return [e[4] for e in eligible[: max(policy.max_per_frame, 0)]]


def best_plate(plates: Collection[Detection], crop_shape: tuple[int, ...]) -> Detection | None:
    """The plate to read in a vehicle crop: highest confidence, lower half preferred on ties."""
    if not plates:
        return None
    h = float(crop_shape[0]) or 1.0
    return max(plates, key=lambda d: (round(d.confidence, 2), d.box.center[1] / h))


class PlateStage:
    """Reads vehicle plates into a per-track consensus (see the module docstring)."""

    def __init__(
        self,
        detector: PlateDetector,
        reader: PlateReader,
        consensus: PlateConsensus | None = None,
        *,
        min_vehicle_px: int = 48,
        every_n: int = 3,
        max_reads_per_track: int = 16,
        max_per_frame: int = 4,
        min_plate_px: int = 10,
        plate_pad: float = 0.06,
        settle_reads: int = 3,
        settle_confidence: float = 0.6,
        settle_majority: float = 0.5,
        max_tracks: int = 2048,
        labels: frozenset[str] = VEHICLE_LABELS,
        regrow: float = 1.15,
        refresh_n: int = 0,
        every_s: float = 0.5,
        overlays: Sequence[Sequence[tuple[float, float]]] = (),
    ) -> None:
        self.detector = detector
        self.reader = reader
        self.consensus = consensus if consensus is not None else PlateConsensus(max_tracks=max_tracks)
        self.policy = SelectionPolicy(
            min_vehicle_px, every_n, max_reads_per_track, max_per_frame, frozenset(labels), regrow, refresh_n, every_s
        )
        self.min_plate_px = min_plate_px
        self.plate_pad = plate_pad
        self.settle_reads = settle_reads
        self.settle_confidence = settle_confidence
        self.settle_majority = settle_majority
        self.max_tracks = max_tracks
        self._state: OrderedDict[int, TrackReadState] = OrderedDict()
        #: burned-in text (camera files' ``overlays``): a "plate" found there is the clock or the
        #: camera name (on the Cilacap clip they were read as "L2001" and "ALUNALUN")
        self.overlays = tuple(np.asarray(p, np.float32).reshape(-1, 1, 2) for p in overlays if len(p) >= 3)

    # -- per frame -----------------------------------------------------------------------------

    def process(
        self, frame: Frame, vehicles: Sequence[TrackedObject], priority: Collection[int] = ()
    ) -> tuple[PlateRead, ...]:
        """Read the plates of the selected tracks of this frame (``priority``: see
        :func:`select_tracks`); returns the reads made."""
        chosen = select_tracks(vehicles, frame.index, self._state, self.policy, priority, now=frame.pts)
        out: list[PlateRead] = []
        for v in chosen:
            read = self._read_track(frame, v)
            st = self._state.get(v.track_id, TrackReadState())
            st = replace(
                st, attempts=st.attempts + 1, last_frame=frame.index, reads=st.reads + (read is not None),
                last_area=v.box.area, last_pts=frame.pts,
            )
            if read is not None:
                out.append(read)
                st = replace(st, settled=self._settled(v.track_id))
            self._remember(v.track_id, st)
        return tuple(out)

    def _read_track(self, frame: Frame, v: TrackedObject) -> PlateRead | None:
        vbox = v.box.clip(frame.width, frame.height)
        x1, y1, x2, y2 = vbox.as_int()
        if x2 - x1 < 8 or y2 - y1 < 8:
            return None
        vehicle = frame.image[y1:y2, x1:x2]  # a read-only view; the detector copies what it needs
        found = self.detector.detect(vehicle)
        if self.overlays:
            found = [d for d in found if not self._in_overlay(d.box.offset(x1, y1).center)]
        plate = best_plate(found, vehicle.shape)
        if plate is None:
            return None
        pbox = plate.box.offset(x1, y1).expand(self.plate_pad).clip(frame.width, frame.height)
        px1, py1, px2, py2 = pbox.as_int()
        if py2 - py1 < self.min_plate_px or px2 - px1 < self.min_plate_px:
            return None
        pixels = np.ascontiguousarray(frame.image[py1:py2, px1:px2]).copy()
        read = self.reader.read(pixels)
        if read is None or not read.text:
            return None
        colour = read.colour or classify_colour(pixels).colour
        read = replace(
            read, frame_index=frame.index, box=Box(float(px1), float(py1), float(px2), float(py2)), crop=pixels,
            colour=colour, category=read.category or (category_of(colour, read.text) if self.consensus.format.name == "id" else None),
        )
        quality = crop_quality(pixels) * float(plate.confidence)
        self.consensus.add(v.track_id, read, quality)
        log.debug("track %d frame %d: plate %s (%.2f, q %.2f)", v.track_id, frame.index, read.text, read.confidence, quality)
        return read

    def _in_overlay(self, point: tuple[float, float]) -> bool:
        pt = (float(point[0]), float(point[1]))
        return any(cv2.pointPolygonTest(poly, pt, False) >= 0 for poly in self.overlays)

    def _settled(self, track_id: int) -> bool:
        res = self.consensus.result(track_id)
        if res.empty or res.confidence < self.settle_confidence:
            return False
        agree = sum(1 for c in res.candidates if c.text == res.text)
        if agree < self.settle_reads:
            return False
        return self.settle_majority <= 0 or character_agreement(res.text, res.candidates) > self.settle_majority

    def _remember(self, track_id: int, st: TrackReadState) -> None:
        self._state.pop(track_id, None)
        self._state[track_id] = st
        while len(self._state) > self.max_tracks:
            self._state.popitem(last=False)

    # -- results -------------------------------------------------------------------------------

    def result(self, track_id: int) -> PlateResult:
        return self.consensus.result(track_id)

    def state(self, track_id: int) -> TrackReadState:
        return self._state.get(track_id, TrackReadState())

    def forget(self, track_id: int) -> None:
        """Drop everything about a track (call when it ended and its result was taken)."""
        self._state.pop(track_id, None)
        self.consensus.forget(track_id)

    def tracks(self) -> tuple[int, ...]:
        return tuple(self._state)


def build_plate_stage(
    *, detector: str = "onnx", reader: str | None = None, country: str = "id", **stage_kwargs: object
) -> Callable[[], PlateStage]:  # stage_kwargs: PlateStage's knobs, e.g. ``overlays``
    """Load the plate detector and reader once (failing now, with an install hint, if one is
    missing) and return a factory of fresh per-source :class:`PlateStage` objects."""
    from etle.plate.detector import load_plate_detector
    from etle.plate.readers import load_reader

    det = load_plate_detector(detector)
    rdr = load_reader(reader, country=country)

    def factory() -> PlateStage:
        return PlateStage(det, rdr, PlateConsensus(country=country), **stage_kwargs)  # type: ignore[arg-type]

    return factory
