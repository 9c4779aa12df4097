"""Per-track plate consensus: many noisy reads of one vehicle's plate -> one plate.

A track passes the camera for seconds, so its plate is read several times, from crops of varying
size, blur and angle.  :class:`PlateConsensus` keeps a bounded set of reads per track and votes:

1. every read weighs ``confidence * quality`` (:func:`crop_quality`: size and sharpness);
2. reads that fit the country's grammar (and region table) outvote any that do not;
3. the text with the largest summed weight wins; where reads of the winning length disagree
   position by position, a per-character weighted vote may compose a better text, kept only
   when it is itself plausible and at least as well supported as the plain winner.
4. the plate's background colour is a separate weighted vote over every read that has one
   (:func:`vote_colour`); the Indonesian format maps it to a vehicle category
   (:func:`etle.plate.tnkb.category_of`).

State is bounded: at most ``max_reads`` reads per track (the lightest are dropped) and at most
``max_tracks`` tracks (the least recently updated are dropped); call :meth:`forget` when a track
ends.  The best crop of the winning text is kept in ``PlateResult.best.crop`` for evidence.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace

import cv2
import numpy as np

from etle.plate.tnkb import PlateFormat, category_of, get_format
from etle.types import NO_PLATE, PlateRead, PlateResult

log = logging.getLogger(__name__)


def crop_quality(crop: np.ndarray | None, *, good_height: int = 40, good_sharpness: float = 150.0) -> float:
    """A 0..1 score of how readable a plate crop should be: size times sharpness.

    Size: the crop height relative to ``good_height`` pixels (capped at 1; a plate line under ~20
    px is hard to read).  Sharpness: the variance of the Laplacian, mapped by
    ``v / (v + good_sharpness)`` so that blur (low variance) scores low.
    """
    if crop is None or crop.size == 0 or crop.ndim not in (2, 3) or min(crop.shape[:2]) < 2:
        return 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    size = min(1.0, gray.shape[0] / float(good_height))
    var = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    sharp = var / (var + good_sharpness)
    return float(np.clip(size * (0.25 + 0.75 * sharp), 0.0, 1.0))


def vote_colour(reads: "list[WeightedRead] | tuple[WeightedRead, ...]") -> str | None:
    """The plate colour by weighted vote over the reads that carry one (``None`` when none do).

    Each read's vote weighs what it weighs in the text vote; where every weight is zero the
    reads count one each.  Ties go to the colour seen more often, then to the name.
    """
    votes: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in reads:
        if r.read.colour:
            votes[r.read.colour] += r.weight
            counts[r.read.colour] += 1
    if not votes:
        return None
    if sum(votes.values()) <= 0:
        votes = defaultdict(float, {k: float(v) for k, v in counts.items()})
    return max(votes, key=lambda c: (votes[c], counts[c], c))


@dataclass(frozen=True, slots=True)
class WeightedRead:
    read: PlateRead
    quality: float
    weight: float


class PlateConsensus:
    """Bounded per-track voting over plate reads (see the module docstring)."""

    def __init__(self, country: str | PlateFormat = "id", *, max_reads: int = 16, max_tracks: int = 2048) -> None:
        if max_reads < 1 or max_tracks < 1:
            raise ValueError("max_reads and max_tracks must be >= 1")
        self.format = get_format(country)
        self.max_reads = max_reads
        self.max_tracks = max_tracks
        self._reads: OrderedDict[int, list[WeightedRead]] = OrderedDict()

    # -- state ---------------------------------------------------------------------------------

    def add(self, track_id: int, read: PlateRead, quality: float = 1.0) -> None:
        """Record one read of a track's plate; empty reads are ignored."""
        if not read.text:
            return
        q = float(np.clip(quality, 0.0, 1.0))
        w = max(float(read.confidence), 0.0) * q
        reads = self._reads.pop(track_id, [])
        reads.append(WeightedRead(read, q, w))
        if len(reads) > self.max_reads:
            # drop the lightest read (the oldest among equals)
            drop = min(range(len(reads)), key=lambda i: (reads[i].weight, i))
            reads.pop(drop)
        self._reads[track_id] = reads
        while len(self._reads) > self.max_tracks:
            old, _ = self._reads.popitem(last=False)
            log.debug("plate consensus: dropped the state of track %d (max_tracks)", old)

    def forget(self, track_id: int) -> None:
        self._reads.pop(track_id, None)

    def tracks(self) -> tuple[int, ...]:
        return tuple(self._reads)

    def count(self, track_id: int) -> int:
        return len(self._reads.get(track_id, ()))

    def __len__(self) -> int:
        return len(self._reads)

    # -- voting --------------------------------------------------------------------------------

    def result(self, track_id: int) -> PlateResult:
        """The plate of a track so far (``NO_PLATE`` when it has no read)."""
        reads = self._reads.get(track_id)
        if not reads:
            return NO_PLATE
        plausible = [r for r in reads if self.format.is_plausible(r.read.text)]
        pool = plausible or reads
        votes: dict[str, float] = defaultdict(float)
        for r in pool:
            votes[r.read.text] += r.weight
        total = sum(r.weight for r in reads)
        text = max(votes, key=lambda t: (votes[t], sum(1 for r in pool if r.read.text == t), t))
        support = votes[text]
        composed = self._compose(pool, len(text))
        if composed is not None and composed[0] != text and self.format.is_plausible(composed[0]) and composed[1] >= support:
            text, support = composed
        winners = [r for r in pool if r.read.text == text]
        best = max(winners, key=lambda r: (r.weight, r.quality)).read if winners else max(pool, key=lambda r: r.weight).read
        mean_conf = float(np.mean([r.read.confidence for r in winners])) if winners else float(best.confidence)
        share = support / total if total > 0 else 0.0
        confidence = float(np.clip(share * mean_conf, 0.0, 1.0))
        candidates = tuple(r.read for r in sorted(reads, key=lambda r: r.read.frame_index))
        if best.text != text:
            best = replace(best, text=text)
        colour = vote_colour(reads)
        category = category_of(colour, text) if self.format.name == "id" else None
        return PlateResult(text=text, confidence=confidence, candidates=candidates, best=best, colour=colour, category=category)

    @staticmethod
    def _compose(pool: list[WeightedRead], length: int) -> tuple[str, float] | None:
        """Per-position weighted vote over the reads of one length: (text, its weakest support)."""
        same = [r for r in pool if len(r.read.text) == length]
        if len(same) < 3:
            return None
        chars: list[str] = []
        weakest = float("inf")
        for i in range(length):
            col: dict[str, float] = defaultdict(float)
            for r in same:
                col[r.read.text[i]] += r.weight
            c = max(col, key=lambda k: (col[k], k))
            chars.append(c)
            weakest = min(weakest, col[c])
        return "".join(chars), weakest
