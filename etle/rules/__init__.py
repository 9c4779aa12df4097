"""etle.rules stage: violation rules over tracked objects, the signal state and the engine."""

from etle.rules.base import Rule
from etle.rules.engine import RuleEngine, build_rules
from etle.rules.more_than_two import MoreThanTwoRule
from etle.rules.red_light import RedLightRule
from etle.rules.riders import assign_riders
from etle.rules.signal import (
    FixedPlanSignal,
    RoiColourSignal,
    SignalSource,
    build_signal,
)

__all__ = [
    "FixedPlanSignal",
    "MoreThanTwoRule",
    "RedLightRule",
    "RoiColourSignal",
    "Rule",
    "RuleEngine",
    "SignalSource",
    "assign_riders",
    "build_rules",
    "build_signal",
]
