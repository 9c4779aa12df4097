"""The base of etle's YAML configuration models: strict pydantic models and located errors.

Every model of the camera file (its zones, the rules' options, the signal, the view guard)
derives from :class:`ConfigModel` (pydantic v2, ``extra="forbid"``: a misspelt key is an
error; frozen).  A cross-field check raises :class:`LocatedError` naming the field it belongs
to, which :func:`etle.camera.config.load_located` turns into ``file:line: field: message``.

It sits below :mod:`etle.camera` and :mod:`etle.rules` and imports neither.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigModel", "LocatedError"]


class LocatedError(ValueError):
    """A cross-field error raised from a model validator, with the ``loc`` it belongs to."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
