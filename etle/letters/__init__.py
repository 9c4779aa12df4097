"""Letters for the post: when a letter is dated and due (:mod:`.dates`), one day's letters as one
PDF with the notice register (:mod:`.batch`), and the PDF itself (:mod:`.pdf`, needs the ``web``
extra: reportlab, segno).

Below the review app (:mod:`etle.web`) and settlement, which both use it; it imports neither.
"""

from etle.letters.batch import (
    DEFAULT_ACTOR,
    PHOTO,
    BatchResult,
    Skipped,
    day_approvals,
    make_batch,
    parse_day,
    register_rows,
    skip_reason,
    zone_of,
)
from etle.letters.dates import CONFIRM_DAYS, has_postal_owner, notice_dates, ticket_zone

__all__ = [
    "CONFIRM_DAYS", "DEFAULT_ACTOR", "PHOTO", "BatchResult", "Skipped", "day_approvals", "has_postal_owner",
    "make_batch", "notice_dates", "parse_day", "register_rows", "skip_reason", "ticket_zone", "zone_of",
]
