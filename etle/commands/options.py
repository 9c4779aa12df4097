"""Option parsers shared by the CLI's commands (etle.cli and the command groups here)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional, TypeVar

import typer
from pydantic import BaseModel, ValidationError

__all__ = ["options_of", "parse_start"]

_M = TypeVar("_M", bound=BaseModel)

#: the flag of each option field where its name differs
FLAGS = {"detector": "--detector", "db_url": "--db", "out_dir": "--out", "pre_s": "--clip-before", "post_s": "--clip-after",
         "read_plates": "--no-plates", "detect_on_motion": "--no-motion", "wall_start": "--start"}


def options_of(model: type[_M], **fields: Any) -> _M:
    """``model`` (e.g. :class:`etle.config.run.RunOptions`) from flag values; a value it refuses
    is a usage error naming the flag."""
    try:
        return model(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err.get("loc") else ""
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        raise typer.BadParameter(f"{flag} {err.get('input')!r}: {err['msg']}") from None


def parse_start(value: Optional[str]) -> Optional[datetime]:
    """An ISO date-time option (a time without a zone is UTC); a bad one is a usage error."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"'{value}' is not an ISO date-time such as 2026-11-28T07:30:00+07:00") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
