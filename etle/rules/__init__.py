"""etle.rules stage: violation rules over tracked objects, their registry and the engine."""

from etle.rules.base import Rule
from etle.rules.driver import DriverCropRule
from etle.rules.dwell import NoStoppingRule, RestrictedLaneRule
from etle.rules.engine import RuleEngine, build_rules
from etle.rules.invalid_plate import InvalidPlateRule
from etle.rules.more_than_two import MoreThanTwoRule
from etle.rules.no_helmet import NoHelmetRule
from etle.rules.odd_even import OddEvenRule
from etle.rules.red_light import RedLightRule
from etle.rules.riders import assign_riders
from etle.rules.speed import GroundPlane, SpeedingRule
from etle.rules.stop_line import StopLineRule
from etle.rules.wrong_way import WrongWayRule

__all__ = [
    "DriverCropRule",
    "GroundPlane",
    "InvalidPlateRule",
    "MoreThanTwoRule",
    "NoHelmetRule",
    "NoStoppingRule",
    "OddEvenRule",
    "RedLightRule",
    "RestrictedLaneRule",
    "Rule",
    "RuleEngine",
    "SpeedingRule",
    "StopLineRule",
    "WrongWayRule",
    "assign_riders",
    "build_rules",
]
