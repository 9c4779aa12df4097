"""The rule engine: runs the rules on frames whose view is valid, one violation per track and rule.

* Rules see a frame only when ``ctx.view_ok``.  When the view goes bad, every rule is
  ``reset()``: positions before and after a camera move or a cut are not comparable, so no track
  can "cross" a line through it.
* A (rule, track id) pair fires at most once.  The fired pairs are kept in insertion order up to
  ``max_fired`` (default 100 000, a few MB), far beyond the lifetime of any track id.
* Tracks unseen for ``forget_after_s`` of pts are forgotten by every rule, so memory stays flat
  on a stream that runs for days.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Sequence

from etle.camera.config import CameraConfig, LineZone
from etle.rules.base import Rule
from etle.rules.more_than_two import MoreThanTwoRule
from etle.rules.red_light import RedLightRule
from etle.types import FrameContext, Violation

__all__ = ["RuleEngine", "build_rules"]

log = logging.getLogger(__name__)


class RuleEngine:
    """Drives a set of rules frame by frame."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        forget_after_s: float = 10.0,
        max_fired: int = 100_000,
    ) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique, got {names}")
        self._rules = tuple(rules)
        self._forget_after = forget_after_s
        self._max_fired = max_fired
        self._fired: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._last_seen: dict[int, float] = {}
        self._view_ok: bool | None = None
        self._last_pts: float | None = None

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def tracked(self) -> int:
        """Number of tracks the engine remembers (bounded by forget_after_s)."""
        return len(self._last_seen)

    def _reset(self, why: str, pts: float) -> None:
        log.info("rules reset at pts %.3f: %s", pts, why)
        for rule in self._rules:
            rule.reset()
        self._last_seen.clear()

    def update(self, ctx: FrameContext) -> list[Violation]:
        pts = ctx.frame.pts
        if self._last_pts is not None and pts < self._last_pts:
            self._reset("pts went backwards (source restarted)", pts)
        self._last_pts = pts
        if not ctx.view_ok:
            if self._view_ok is not False:
                self._reset("view not ok", pts)
            self._view_ok = False
            return []
        self._view_ok = True

        for obj in ctx.objects:
            self._last_seen[obj.track_id] = pts
        out: list[Violation] = []
        for rule in self._rules:
            for violation in rule.update(ctx):
                key = (violation.rule, violation.track_id)
                if key in self._fired:
                    continue
                self._fired[key] = None
                if len(self._fired) > self._max_fired:
                    self._fired.popitem(last=False)
                out.append(violation)
        self._forget_stale(pts)
        return out

    def _forget_stale(self, pts: float) -> None:
        stale = [tid for tid, seen in self._last_seen.items() if pts - seen > self._forget_after]
        for tid in stale:
            del self._last_seen[tid]
            for rule in self._rules:
                rule.forget(tid)


def build_rules(camera: CameraConfig, *, forget_after_s: float = 10.0) -> RuleEngine:
    """The rule engine for the rules a camera file enables."""
    rules: list[Rule] = []
    opts = camera.rules
    if opts.red_light is not None:
        zone = camera.zones[opts.red_light.line]
        assert isinstance(zone, LineZone)  # checked when the file was loaded
        rules.append(RedLightRule.from_config(opts.red_light, zone))
    if opts.more_than_two is not None:
        rules.append(MoreThanTwoRule.from_config(opts.more_than_two))
    log.info("camera %s: rules %s", camera.id, [r.name for r in rules] or "none")
    return RuleEngine(rules, forget_after_s=forget_after_s)
