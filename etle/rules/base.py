"""The rule seam: one verb per frame, plus two ways to drop state.

A rule sees one :class:`~etle.types.FrameContext` at a time, in pts order, and returns the
violations it found in that frame.  It keeps per-track state only as long as the engine lets it:
``forget(track_id)`` drops one track (it ended), ``reset()`` drops every track's motion state
(the view changed, so positions before and after cannot be compared).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from etle.types import FrameContext, TrackedObject, Violation

__all__ = ["Rule", "make_violation"]


@runtime_checkable
class Rule(Protocol):
    """A violation rule driven frame by frame."""

    name: str

    def update(self, ctx: FrameContext) -> list[Violation]:
        """Violations seen in this frame (the engine drops repeats per track)."""
        ...

    def forget(self, track_id: int) -> None:
        """Drop everything kept about one track."""
        ...

    def reset(self) -> None:
        """Drop all per-track motion state (after a view change or a source restart)."""
        ...


def make_violation(
    rule: str,
    ctx: FrameContext,
    obj: TrackedObject,
    *,
    related: tuple[int, ...] = (),
    details: dict[str, object] | None = None,
) -> Violation:
    """A :class:`Violation` of ``obj`` in the frame of ``ctx``."""
    return Violation(
        rule=rule,
        track_id=obj.track_id,
        label=obj.label,
        frame_index=ctx.frame.index,
        pts=ctx.frame.pts,
        timestamp=ctx.frame.timestamp,
        box=obj.box,
        related_track_ids=related,
        details=details or {},
    )
