"""More than two on a motorcycle (UU 22/2009 art. 292): three or more persons riding one.

Per frame, riders come from :func:`etle.rules.riders.assign_riders` (a child sitting in front of
its rider counts, though its feet are hidden); :func:`crowded_motorcycles` is that one-frame
judgement, which ``etle eval riders`` measures on labelled photos.  One frame is not
evidence (a pedestrian passing behind a motorcycle is briefly "on" it), so the rule fires only
when the motorcycle carried at least ``min_persons`` in ``min_frames`` frames within the last
``window_s`` seconds of pts, and only on a frame that itself shows them (good evidence).  The
persons must sit together (:func:`etle.rules.riders.seated_together`): riders of two bikes side
by side under one merged motorcycle box are not one crowded motorcycle.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Mapping

from pydantic import Field

from etle.rules.base import PerTrackState, RuleContext, RuleSpec, make_violation
from etle.rules.riders import assign_riders, seated_together
from etle.schema import ConfigModel
from etle.types import Box, FrameContext, TrackedObject, Violation

__all__ = ["RULES", "MoreThanTwoOptions", "MoreThanTwoRule", "crowded_motorcycles"]


class MoreThanTwoOptions(ConfigModel):
    min_persons: int = Field(default=3, ge=2, description="Persons on one motorcycle that violate.")
    min_frames: int = Field(
        default=5, ge=1, description="Frames with that many riders needed within window_s."
    )
    window_s: float = Field(default=2.0, gt=0, description="Sliding window for min_frames.")
    min_overlap: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Fraction of a person's box inside the motorcycle box to count as a rider.",
    )


def crowded_motorcycles(objects: Iterable[TrackedObject], *, min_persons: int = 3,
                        min_overlap: float = 0.3) -> dict[int, tuple[int, ...]]:
    """One frame's judgement: motorcycle track id -> its riders (:func:`assign_riders`), for the
    motorcycles with ``min_persons`` or more riders seated together (:func:`seated_together`).
    The rule asks this of every frame; ``etle eval riders`` asks it of still photos."""
    objs = list(objects)
    return _crowded(assign_riders(objs, min_overlap=min_overlap), {o.track_id: o.box for o in objs}, min_persons)


def _crowded(riders: Mapping[int, tuple[int, ...]], boxes: Mapping[int, Box], min_persons: int) -> dict[int, tuple[int, ...]]:
    return {moto: persons for moto, persons in riders.items()
            if len(persons) >= min_persons
            and seated_together(boxes[p] for p in persons) >= min_persons}


class MoreThanTwoRule(PerTrackState):
    """Three (``min_persons``) or more persons on one motorcycle, sustained."""

    name = "more_than_two"

    def __init__(
        self,
        *,
        min_persons: int = 3,
        min_frames: int = 5,
        window_s: float = 2.0,
        min_overlap: float = 0.3,
    ) -> None:
        if min_persons < 2 or min_frames < 1 or window_s <= 0:
            raise ValueError("need min_persons >= 2, min_frames >= 1, window_s > 0")
        self._min_persons = min_persons
        self._min_frames = min_frames
        self._window = window_s
        self._min_overlap = min_overlap
        self._tracks: dict[int, deque[float]] = {}  # moto id -> pts of frames with enough riders

    @classmethod
    def from_config(cls, options: MoreThanTwoOptions, ctx: RuleContext) -> "MoreThanTwoRule":
        return cls(
            min_persons=options.min_persons,
            min_frames=options.min_frames,
            window_s=options.window_s,
            min_overlap=options.min_overlap,
        )

    def update(self, ctx: FrameContext) -> list[Violation]:
        pts = ctx.frame.pts
        objects = ctx.by_id()
        out: list[Violation] = []
        riders = assign_riders(ctx.objects, min_overlap=self._min_overlap)
        crowded = _crowded(riders, {k: o.box for k, o in objects.items()}, self._min_persons)
        for moto_id, persons in riders.items():
            hits = self._tracks.get(moto_id)
            if hits is not None:
                while hits and hits[0] < pts - self._window:
                    hits.popleft()
            if moto_id not in crowded:
                if hits is not None and not hits:
                    del self._tracks[moto_id]
                continue
            if hits is None:
                hits = self._tracks[moto_id] = deque()
            hits.append(pts)
            if len(hits) >= self._min_frames:
                out.append(
                    make_violation(
                        self.name,
                        ctx,
                        objects[moto_id],
                        related=persons,
                        details={
                            "persons": len(persons),
                            "frames": len(hits),
                            "window_s": self._window,
                        },
                    )
                )
        return out


RULES = (RuleSpec("more_than_two", MoreThanTwoOptions, MoreThanTwoRule.from_config),)
