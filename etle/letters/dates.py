"""When a confirmation letter is dated and due: the time zone of a ticket, the notice date and
the deadline, and whether the registry gave an address to post to.

Pure functions over a ticket's fields, used by the letters batch (:mod:`etle.letters.batch`),
the PDF renderer (:mod:`etle.letters.pdf`), settlement and the review app.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CONFIRM_DAYS = 8
"""Default days from the notice date to the confirmation deadline (DOMAIN: the registration is
blocked when not confirmed by day 8).  ``etle serve --confirm-days`` and ``etle letters batch
--confirm-days`` change it."""


def ticket_zone(camera_tz: str, local_time: str = "") -> tzinfo:
    """The time zone a ticket's letter is dated in: the camera's IANA zone; where the camera row
    says only ``UTC`` (a ticket added without its camera file), the offset of the ticket's own
    camera-local time; else UTC."""
    if camera_tz and camera_tz != "UTC":
        try:
            return ZoneInfo(camera_tz)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        local = datetime.fromisoformat(local_time)
    except ValueError:
        local = None
    return local.tzinfo if local is not None and local.tzinfo is not None else timezone.utc


def notice_dates(at: datetime, zone: str | tzinfo, days: int = CONFIRM_DAYS) -> tuple[date, date]:
    """(notice date, confirmation deadline) of a letter made at ``at``, in the camera's time zone.

    The owner counts days on the calendar of the place the letter comes from: a letter made at
    20:00 UTC is already dated the next day in Jakarta, and its deadline with it.
    """
    if days < 1:
        raise ValueError(f"the confirmation period must be at least one day, not {days}")
    tz = ticket_zone(zone) if isinstance(zone, str) else zone
    local = (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(tz).date()
    return local, local + timedelta(days=days)


def has_postal_owner(t: Any) -> bool:
    """Whether the registry gave this ticket an owner with an address a letter can be posted to."""
    return (getattr(t, "registry_status", "") == "found" and bool(getattr(t, "owner_name", "").strip())
            and bool(getattr(t, "owner_address", "").strip()))
