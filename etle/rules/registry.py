"""Every rule the camera file can enable, collected from the rule modules' ``RULES``.

Each rule module declares its rules once (:class:`~etle.rules.base.RuleSpec`: name, options
model, the option fields naming zones, the camera sections it needs, the files it names, and
how to build it).  From that list come the camera file's ``rules`` section
(:data:`RulesConfig`), the checks that a rule's zones exist and are of the right kind
(:func:`verify_rules`), the files hashed by content (:func:`file_fields`) and the engine's
rules (:func:`etle.rules.engine.build_rules`).

A new rule is one new module with its options model, rule class and ``RULES``, and one entry
in ``_MODULES`` below (the order is the order rules run in).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import create_model, model_validator

from etle.rules import driver, dwell, invalid_plate, more_than_two, no_helmet, odd_even, red_light, speed, stop_line, wrong_way
from etle.rules.base import RuleSpec
from etle.schema import ConfigModel, LocatedError
from etle.zones import zone_ref

__all__ = ["RULES", "RulesConfig", "file_fields", "rule_names", "verify_rules"]

_MODULES = (red_light, stop_line, wrong_way, speed, no_helmet, more_than_two, odd_even, dwell, invalid_plate, driver)

#: rule name (its key under ``rules:``) -> its declaration, in the order the rules run
RULES: Mapping[str, RuleSpec] = {spec.name: spec for module in _MODULES for spec in module.RULES}


def rule_names() -> tuple[str, ...]:
    """The names of every rule, in the order they run."""
    return tuple(RULES)


class _RulesBase(ConfigModel):
    @model_validator(mode="before")
    @classmethod
    def _enable_empty(cls, data: Any) -> Any:
        # `red_light:` with nothing after it enables the rule with its defaults.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in cls.model_fields else v) for k, v in data.items()}
        return data


RulesConfig = create_model(  # one optional field per rule: None = not enabled
    "RulesConfig",
    __base__=_RulesBase,
    __module__=__name__,
    __doc__="Enabled rules: a key present enables the rule (``red_light: {}`` takes the defaults).",
    **{name: (Optional[spec.options], None) for name, spec in RULES.items()},  # type: ignore[call-overload]
)


def file_fields() -> tuple[tuple[str, str], ...]:
    """(rule, option field) of every option that names a file."""
    return tuple((spec.name, f) for spec in RULES.values() for f in spec.files)


def verify_rules(camera: Any) -> None:
    """Check the enabled rules of ``camera`` against its zones and sections.

    Every zone a rule names must exist and be of the declared kind (and have a direction
    where declared); every camera section a rule needs must be present.  Raises
    :class:`~etle.schema.LocatedError` at the first problem, located under ``rules``.
    """
    for spec in RULES.values():
        options = getattr(camera.rules, spec.name)
        if options is None:
            continue
        for ref in spec.zones:
            value = getattr(options, ref.field)
            if value is None and not ref.required:
                continue
            if isinstance(value, str):
                named: list[tuple[tuple[str | int, ...], str]] = [((), value)]
            elif isinstance(value, Mapping):
                named = [((name,), name) for name in value]
            else:
                named = [((i,), name) for i, name in enumerate(value)]
            for sub, name in named:
                loc = ("rules", spec.name, ref.field, *sub)
                zone = zone_ref(camera.zones, loc, name, ref.kind)
                if ref.directed and zone.direction is None:
                    raise LocatedError(loc, f"zone '{name}' has no `direction` (the permitted direction of travel)")
        for section in spec.needs:
            if getattr(camera, section) is None:
                raise LocatedError(("rules", spec.name), f"needs a `{section}` section")
