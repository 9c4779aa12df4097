"""The rule engine: runs the rules on frames whose view is valid, one violation per track and rule.

* Rules see a frame only when ``ctx.view_ok``.  When the view goes bad, every rule is
  ``reset()``: positions before and after a camera move or a cut are not comparable, so no track
  can "cross" a line through it.
* A (rule, track id) pair fires at most once.  The fired pairs are kept in insertion order up to
  ``max_fired`` (default 100 000, a few MB), far beyond the lifetime of any track id.
* Tracks unseen for ``forget_after_s`` of pts are forgotten by every rule, so memory stays flat
  on a stream that runs for days.
* Rules see pts that never decrease.  A frame up to ``max_disorder_s`` behind the last one (some
  containers carry jittery timestamps) is skipped; a larger step back is a source restart and
  resets every rule.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Mapping, Sequence

from etle.rules.base import Rule, RuleContext
from etle.rules.registry import RULES
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
        max_disorder_s: float = 0.5,
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
        self._max_disorder = max_disorder_s
        self.out_of_order = 0  # frames skipped because their pts was slightly behind

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
            if self._last_pts - pts <= self._max_disorder:
                # a frame whose timestamp is a little behind the last one (containers with
                # jittery timestamps): the rules never see time run backwards, so skip it
                self.out_of_order += 1
                log.debug("rules skip frame %d: pts %.3f after %.3f", ctx.frame.index, pts, self._last_pts)
                return []
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


def build_rules(
    camera: Any,
    *,
    forget_after_s: float = 10.0,
    helmet_classifier: Any = None,
    head_detector: Any = None,
    crop_models: Mapping[str, Any] | None = None,
    plate_registry: Any = None,
) -> RuleEngine:
    """The rule engine for the rules a camera file (a :class:`~etle.camera.config.CameraConfig`)
    enables, built as each rule's registration says (:mod:`etle.rules.registry`).

    Models are loaded here (once per call): the helmet classifier from the rule's ``model`` or
    the manifest, the seatbelt / phone models from their ``model`` files, the plate registry
    from ``invalid_plate.registry``.  Tests inject fakes through ``helmet_classifier``, ``head_detector``,
    ``crop_models`` (rule name -> model) and ``plate_registry``.
    """
    rules: list[Rule] = []
    for name, spec in RULES.items():
        options = getattr(camera.rules, name)
        if options is None:
            continue
        ctx = RuleContext(
            name,
            camera.zones,
            camera.tz,
            calibration=camera.calibration,
            helmet_classifier=helmet_classifier,
            head_detector=head_detector,
            crop_models=crop_models or {},
            plate_registry=plate_registry,
        )
        rules.append(spec.build(options, ctx))
    log.info("camera %s: rules %s", camera.id, [r.name for r in rules] or "none")
    return RuleEngine(rules, forget_after_s=forget_after_s)
