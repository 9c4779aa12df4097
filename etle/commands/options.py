"""Option parsers shared by the CLI's commands (etle.cli and the command groups here)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

__all__ = ["parse_start"]


def parse_start(value: Optional[str]) -> Optional[datetime]:
    """An ISO date-time option (a time without a zone is UTC); a bad one is a usage error."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"'{value}' is not an ISO date-time such as 2026-11-28T07:30:00+07:00") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
