"""Per-track plate consensus: many noisy reads of one vehicle's plate -> one plate.

A track passes the camera for seconds, so its plate is read several times, from crops of varying
size, blur and angle.  :class:`PlateConsensus` keeps a bounded set of reads per track and votes:

1. every read weighs ``confidence * quality`` (:func:`crop_quality`: size and sharpness);
2. reads that fit the country's grammar (and region table) outvote any that do not;
3. reads of a small, distant plate rarely agree exactly ("R4752PE", "R752PN", "R4762PM"), so the
   vote is over *aligned* texts: a candidate's support is the weighted sum of its similarity to
   every read (1 - normalised Levenshtein distance, :func:`support`), so near-misses count for
   the text they nearly spell; the candidates are the texts read and a character-by-character
   composition (:func:`compose`: every read aligned to the best-supported text, then a weighted
   vote per position, including dropped and extra characters), kept only when plausible;
4. the plate's background colour is a separate weighted vote over every read that has one
   (:func:`vote_colour`); the Indonesian format maps it to a vehicle category
   (:func:`etle.plate.tnkb.category_of`).

The confidence is the winner's share of all the weight (its support over the summed weight of
every read, plausible or not) times the reads' mean confidence weighted by how well each one
matches it: one consistent plate read many times scores high; scattered reads score low.
The alignment is rapidfuzz's (a maintained C++ Levenshtein), not hand-written.

State is bounded: at most ``max_reads`` reads per track (the lightest are dropped) and at most
``max_tracks`` tracks (the least recently updated are dropped); call :meth:`forget` when a track
ends.  The best crop of the winning text is kept in ``PlateResult.best.crop`` for evidence.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np

from rapidfuzz.distance import Levenshtein

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
        texts = list(dict.fromkeys(r.read.text for r in pool))
        scores = {t: support(t, pool) for t in texts}
        for anchor in texts:  # a handful of texts: compose on each, keep the plausible ones
            composed = compose(pool, anchor)
            if composed and composed not in scores and (self.format.is_plausible(composed) or not plausible):
                scores[composed] = support(composed, pool)
        exact = {t: sum(1 for r in pool if r.read.text == t) for t in scores}
        text = max(scores, key=lambda t: (scores[t], exact[t], t))
        total = sum(r.weight for r in reads)
        share = scores[text] / total if total > 0 else 0.0
        sims = [Levenshtein.normalized_similarity(text, r.read.text) for r in pool]
        mass = sum(s * r.quality for s, r in zip(sims, pool))
        mean_conf = (
            sum(s * r.quality * r.read.confidence for s, r in zip(sims, pool)) / mass
            if mass > 0
            else float(np.mean([r.read.confidence for r in pool]))
        )
        confidence = float(np.clip(share * mean_conf, 0.0, 1.0))
        winners = [r for r in pool if r.read.text == text]
        if winners:
            best = max(winners, key=lambda r: (r.weight, r.quality)).read
        else:  # a composed text: the crop of the read closest to it, heaviest first
            best = max(zip(sims, pool), key=lambda sr: (sr[0], sr[1].weight))[1].read
        candidates = tuple(r.read for r in sorted(reads, key=lambda r: r.read.frame_index))
        if best.text != text:
            best = replace(best, text=text)
        colour = vote_colour(reads)
        category = category_of(colour, text) if self.format.name == "id" else None
        return PlateResult(text=text, confidence=confidence, candidates=candidates, best=best, colour=colour, category=category)


def character_votes(text: str, reads: "Sequence[PlateRead]", *, max_shorter: int = 1) -> tuple[tuple[tuple[str, int], ...], ...]:
    """How the reads spell each character of ``text``: per position, ``(character, reads)``
    pairs of the reads that cover it, most read first (``text``'s own character first on a tie).

    Each read is aligned to ``text`` (Levenshtein opcodes); a read covers the positions where it
    has a character aligned (kept or replaced), not those it dropped.  Reads more than
    ``max_shorter`` characters shorter than ``text`` are partial reads of a small crop and are
    left out.  The officer's page shows these votes; :func:`character_agreement` gates on them.
    """
    n = len(text)
    counts: list[dict[str, int]] = [defaultdict(int) for _ in range(n)]
    for r in reads:
        if not r.text or len(r.text) < n - max_shorter:
            continue
        for op in Levenshtein.opcodes(text, r.text):
            if op.tag not in ("equal", "replace"):
                continue
            for i in range(min(op.src_end - op.src_start, op.dest_end - op.dest_start)):
                counts[op.src_start + i][r.text[op.dest_start + i]] += 1
    return tuple(
        tuple(sorted(c.items(), key=lambda kv: (-kv[1], kv[0] != text[k], kv[0])))
        for k, c in enumerate(counts)
    )


def character_agreement(text: str, reads: "Sequence[PlateRead]", *, max_shorter: int = 1) -> float:
    """The weakest character of ``text``: over its positions, the lowest share of the reads that
    cover a position (:func:`character_votes`) and read ``text``'s character there (0 for an
    empty text or a position no read covers).  A consensus whose reads split on one character
    (``R5154WP`` read as ``...VP``, ``...MP``, ``...UP``) scores low there, however often the
    whole text was read: the vote made that character, the picture did not settle it.

    The length counts as one more such character: of the reads at least as long as ``text``,
    the share that is exactly as long.  A shorter read is a partial view (a dropped character is
    not held against the plate); a longer one says the plate has a character the consensus lacks.
    Reads that split on it (``Z333`` against ``Z2333``, ``Z333X``, ``E3328``: a blurred plate read
    in pieces) agree on no plate, however well their characters line up.
    """
    if not text:
        return 0.0
    shares = []
    for ch, votes in zip(text, character_votes(text, reads, max_shorter=max_shorter), strict=True):
        total = sum(n for _, n in votes)
        shares.append(dict(votes).get(ch, 0) / total if total else 0.0)
    longer = [len(r.text) for r in reads if len(r.text) >= len(text)]
    if longer:
        shares.append(sum(n == len(text) for n in longer) / len(longer))
    return min(shares)


#: A character of a ticket's plate whose recogniser probability, averaged over the reads that read
#: it so, is under this is marked for the officer (:func:`character_confidences`; the review page
#: and ``etle eval plate-tracks``).  Only a mark: the ticket's plate is not changed.  Chosen on the
#: Argentine crops' simulated tracks as the highest value that marks at most one in ten exactly
#: printed plates; the Indonesian crops report it (docs/accuracy.md).
REVIEW_CHAR_CONFIDENCE = 0.7


def character_confidences(text: str, reads: "Sequence[PlateRead]", *, max_shorter: int = 1) -> tuple[float | None, ...] | None:
    """The recogniser's own certainty of each character of ``text``: per position, the mean
    probability the reads that read ``text``'s character there gave it (their ``char_conf``, each
    read aligned as in :func:`character_votes`); None at a position no such read covers.  None
    when no read carries per-character probabilities (a reader that gives none, such as EasyOCR).

    Reads that agree can still all be unsure: a letter the plate grammar forced where the
    recogniser saw little (an ``O`` read as ``B`` at a low probability) is repeated by every view
    of the same plate, so the vote (:func:`character_agreement`) does not catch it; this does.
    """
    n = len(text)
    sums = [0.0] * n
    counts = [0] * n
    rated = False
    for r in reads:
        conf = getattr(r, "char_conf", ())
        if not r.text or len(conf) != len(r.text) or len(r.text) < n - max_shorter:
            continue
        rated = True
        for op in Levenshtein.opcodes(text, r.text):
            if op.tag != "equal":
                continue
            for i in range(op.src_end - op.src_start):
                sums[op.src_start + i] += float(conf[op.dest_start + i])
                counts[op.src_start + i] += 1
    if not rated:
        return None
    return tuple(s / c if c else None for s, c in zip(sums, counts, strict=True))


def needs_a_look(text: str, reads: "Sequence[PlateRead]", threshold: float = REVIEW_CHAR_CONFIDENCE) -> bool:
    """Whether some character of ``text`` is one the recogniser was unsure of (mean probability
    under ``threshold``, or read by no read that gives probabilities); False when no read gives
    probabilities (nothing to judge by)."""
    confs = character_confidences(text, reads)
    return confs is not None and any(c is None or c < threshold for c in confs)


def support(text: str, reads: "list[WeightedRead] | tuple[WeightedRead, ...]") -> float:
    """How well ``reads`` support ``text``: the sum of each read's weight times its similarity to
    it (``1 - Levenshtein distance / the longer length``; 1 for the same text)."""
    return float(sum(r.weight * Levenshtein.normalized_similarity(text, r.read.text) for r in reads))


def compose(reads: "list[WeightedRead] | tuple[WeightedRead, ...]", anchor: str) -> str:
    """A character-by-character weighted vote over ``reads`` aligned to ``anchor``.

    Each read is aligned to the anchor (Levenshtein opcodes); at every anchor position the read
    votes, with its weight, for its own character there or for dropping the position, and in
    every gap between positions for the characters it has in excess (or for nothing).  The
    composed text takes the heaviest choice everywhere.  Reads of other lengths therefore count
    too (unlike a plain per-position vote over reads of one length).
    """
    n = len(anchor)
    votes: list[dict[str, float]] = [defaultdict(float) for _ in range(n)]
    extra: list[dict[str, float]] = [defaultdict(float) for _ in range(n + 1)]
    for r in reads:
        w, text = r.weight, r.read.text
        inserted = [False] * (n + 1)
        for op in Levenshtein.opcodes(anchor, text):
            a0, a1, b0, b1 = op.src_start, op.src_end, op.dest_start, op.dest_end
            if op.tag in ("equal", "replace"):
                k = min(a1 - a0, b1 - b0)
                for i in range(k):
                    votes[a0 + i][text[b0 + i]] += w
                for i in range(a0 + k, a1):  # a replace of unequal spans: the rest is dropped
                    votes[i][""] += w
                if b1 - b0 > k:
                    extra[a1][text[b0 + k : b1]] += w
                    inserted[a1] = True
            elif op.tag == "delete":
                for i in range(a0, a1):
                    votes[i][""] += w
            elif op.tag == "insert":
                extra[a0][text[b0:b1]] += w
                inserted[a0] = True
        for k in range(n + 1):
            if not inserted[k]:
                extra[k][""] += w
    out: list[str] = []
    for k in range(n + 1):
        if extra[k]:
            out.append(max(extra[k], key=lambda s: (extra[k][s], s == "", s)))
        if k < n and votes[k]:
            out.append(max(votes[k], key=lambda s: (votes[k][s], s)))
    return "".join(out)
