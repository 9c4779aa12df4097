"""The plate of a ticket character by character, for the officer's page and the API: how the
reads a ticket keeps (``plate_candidates``) spell each character of its plate
(:func:`etle.plate.consensus.character_votes`, the same votes the pipeline's majority gate uses),
and how sure the recogniser itself was of each (:func:`etle.plate.consensus.character_confidences`:
reads that all agree can still all be unsure of a letter the plate grammar forced)."""

from __future__ import annotations

from typing import Any

__all__ = ["plate_needs_a_look", "plate_reading"]


def plate_reading(tk: Any, majority: float = 0.5, doubt_below: float | None = None) -> list[dict[str, Any]] | None:
    """How the ticket's plate reads spell each character, for the officer: per character of the
    plate (or, where the ticket shows ``?``, of the reads' consensus) the character, how many of
    the reads covering it say so, the other characters read there, and whether it falls short of
    ``majority`` (the pipeline's ``plate_char_majority``: where a ``?`` came from); with the
    recogniser's mean probability of it (``certainty``, None where the reads carry none) and
    whether that is under ``doubt_below`` (default
    :data:`etle.plate.consensus.REVIEW_CHAR_CONFIDENCE`: ``doubt``, a look at the crop is due
    even though the reads agree).  None without reads."""
    from etle.plate.consensus import REVIEW_CHAR_CONFIDENCE, PlateConsensus, character_confidences, character_votes

    below = REVIEW_CHAR_CONFIDENCE if doubt_below is None else doubt_below
    reads = _reads(tk)
    if not reads:
        return None
    anchor = tk.plate_text
    if not anchor:
        vote = PlateConsensus("generic")
        for r in reads:
            vote.add(0, r)
        anchor = vote.result(0).text
    if not anchor:
        return None
    certainty = character_confidences(anchor, reads)
    out = []
    for k, (ch, votes) in enumerate(zip(anchor, character_votes(anchor, reads), strict=True)):
        total = sum(n for _, n in votes)
        same = dict(votes).get(ch, 0)
        sure = None if certainty is None else certainty[k]
        out.append({"char": ch, "reads": same, "of": total, "others": [(c, n) for c, n in votes if c != ch],
                    "unsure": total == 0 or same / total <= majority,
                    "certainty": None if sure is None else round(float(sure), 3),
                    # the same test as needs_a_look (the queue's sign), on the unrounded value
                    "doubt": certainty is not None and (sure is None or sure < below)})
    return out


def plate_needs_a_look(tk: Any) -> bool:
    """Whether the ticket prints a plate with a character the recogniser was unsure of (the amber
    mark of :func:`plate_reading`), for the queue: False for a ticket showing ``?`` (it needs the
    officer's reading anyway) or one whose reads carry no probabilities."""
    from etle.plate.consensus import needs_a_look

    return bool(tk.plate_text) and needs_a_look(tk.plate_text, _reads(tk))


def _reads(tk: Any) -> list[Any]:
    """The ticket's kept plate candidates as plate reads (with their per-character probabilities)."""
    from etle.types import PlateRead

    return [PlateRead(c.text, c.confidence, frame_index=c.frame_index, char_conf=tuple(getattr(c, "char_conf", ())))
            for c in tk.plate_candidates if c.text]
