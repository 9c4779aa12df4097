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

from etle.camera.config import CameraConfig, LineZone, PolygonZone
from etle.rules.base import Rule
from etle.rules.crop_model import OnnxCropModel
from etle.rules.driver import DriverCropRule
from etle.rules.dwell import NoStoppingRule, RestrictedLaneRule
from etle.rules.invalid_plate import InvalidPlateRule
from etle.rules.more_than_two import MoreThanTwoRule
from etle.rules.no_helmet import NoHelmetRule
from etle.rules.odd_even import OddEvenRule
from etle.rules.plates import CsvPlateRegistry
from etle.rules.red_light import RedLightRule
from etle.rules.speed import SpeedingRule
from etle.rules.stop_line import StopLineRule
from etle.rules.wrong_way import WrongWayRule
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
    camera: CameraConfig,
    *,
    forget_after_s: float = 10.0,
    helmet_classifier: Any = None,
    crop_models: Mapping[str, Any] | None = None,
    plate_registry: Any = None,
) -> RuleEngine:
    """The rule engine for the rules a camera file enables.

    Models are loaded here (once per call): the helmet classifier from the rule's ``model`` or
    the manifest, the seatbelt / phone models from their ``model`` files, the plate registry
    from ``invalid_plate.registry``.  Tests inject fakes through ``helmet_classifier``,
    ``crop_models`` (rule name -> model) and ``plate_registry``.
    """
    rules: list[Rule] = []
    opts = camera.rules
    zones = camera.zones
    polygons = {n: z for n, z in zones.items() if isinstance(z, PolygonZone)}
    if opts.red_light is not None:
        zone = zones[opts.red_light.line]
        assert isinstance(zone, LineZone)  # checked when the file was loaded
        rules.append(RedLightRule.from_config(opts.red_light, zone))
    if opts.stop_line is not None:
        rules.append(StopLineRule.from_config(opts.stop_line, polygons))
    if opts.wrong_way is not None:
        rules.append(WrongWayRule.from_config(opts.wrong_way, polygons))
    if opts.speeding is not None:
        assert camera.calibration is not None  # checked when the file was loaded
        rules.append(SpeedingRule.from_config(opts.speeding, polygons, camera.calibration))
    if opts.no_helmet is not None:
        clf = helmet_classifier
        if clf is None:
            from etle.helmet.classifier import load_helmet_classifier

            clf = load_helmet_classifier(opts.no_helmet.model)
        zone_poly = polygons[opts.no_helmet.zone].polygon if opts.no_helmet.zone else None
        rules.append(NoHelmetRule.from_config(opts.no_helmet, clf, zone_poly))
    if opts.more_than_two is not None:
        rules.append(MoreThanTwoRule.from_config(opts.more_than_two))
    if opts.odd_even is not None:
        zone_poly = polygons[opts.odd_even.zone].polygon if opts.odd_even.zone else None
        rules.append(OddEvenRule.from_config(opts.odd_even, camera.tz, zone_poly))
    if opts.busway is not None:
        rules.append(RestrictedLaneRule.from_config(opts.busway, polygons))
    if opts.no_stopping is not None:
        rules.append(NoStoppingRule.from_config(opts.no_stopping, polygons))
    if opts.invalid_plate is not None:
        registry = plate_registry
        if registry is None and opts.invalid_plate.registry is not None:
            registry = CsvPlateRegistry(opts.invalid_plate.registry)
        rules.append(InvalidPlateRule.from_config(opts.invalid_plate, registry))
    for name in ("seatbelt", "phone_use"):
        o = getattr(opts, name)
        if o is None:
            continue
        model = (crop_models or {}).get(name)
        if model is None:
            model = OnnxCropModel(
                o.model,
                input_size=o.input_size,
                positive_class=o.positive_class,
                mean=o.mean,
                std=o.std,
                channel_order=o.channel_order,
            )
        rules.append(DriverCropRule.from_config(name, o, model))
    log.info("camera %s: rules %s", camera.id, [r.name for r in rules] or "none")
    return RuleEngine(rules, forget_after_s=forget_after_s)
