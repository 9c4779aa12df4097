"""Letters for the post: one day's confirmation letters in one PDF, and the notice register.

E-TLE posts a confirmation letter to the registered owner's address after an officer approves
a capture (see ``docs/review-app.md`` and the workflow in DOMAIN.md).  :func:`make_batch` takes
the tickets approved on one day and makes one PDF of letters for those that can be posted: the
registry found the owner with an address and the registered vehicle agrees with the camera's
(no ``registry_mismatch``).  Every other ticket is listed as skipped with the reason, so a clerk
knows what still needs a lookup or an officer's look.

Each letter in the batch is recorded in the notice register (``notices``) and its ticket moves
approved -> notice_sent through the lifecycle (audited, by ``system:letters`` unless told
otherwise), all in one transaction, after the PDF is written to a temporary file and before
it is renamed into place: a batch is either wholly registered or not made.  Running the same
day again makes letters only for tickets not sent yet; the others are listed as already sent.

"The day" is the date of the ticket's latest approval in its camera's time zone (the officer's
working day where the camera stands), not the UTC date.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etle.errors import ConfigError, MissingDependencyError
from etle.letters.dates import CONFIRM_DAYS, has_postal_owner, notice_dates, ticket_zone
from etle.privacy import PrivacyError, public_image
from etle.store import lifecycle
from etle.store.repository import Approval, NoticeIn, NoticeView, TicketStore, TicketView

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_ACTOR = "system:letters"
PHOTO = "overview.jpg"
"""The evidence picture a letter shows (the annotated overview, as in the review app), as its
public copy: bystanders' faces and other vehicles' plates blurred (:mod:`etle.privacy`)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A ticket of the day that got no letter in this batch, and why (one line for the clerk)."""

    reference: str
    plate: str
    reason: str


@dataclass(slots=True)
class BatchResult:
    """What :func:`make_batch` did: the file (``None`` when no letter was due), its SHA-256, the
    register rows of the letters in it, the tickets skipped and those sent before."""

    day: date
    path: Path | None = None
    sha256: str = ""
    notices: list[NoticeView] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    already_sent: list[Skipped] = field(default_factory=list)


def parse_day(text: str, option: str = "--date") -> date:
    """``YYYY-MM-DD`` as a date; :class:`ConfigError` (exit 2, one line) otherwise."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def day_approvals(store: TicketStore, day: date) -> list[Approval]:
    """Tickets whose latest approval falls on ``day`` in their camera's time zone, oldest first."""
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    # every time zone's ``day`` lies within UTC day-1 10:00 .. day+1 12:00: ask wide, filter exactly
    candidates = store.approvals_between(start - timedelta(hours=14), start + timedelta(days=1, hours=12))
    return [a for a in candidates if a.approved_at.astimezone(zone_of(store, a.ticket)).date() == day]


def zone_of(store: TicketStore, t: TicketView) -> tzinfo:
    """The time zone ``t``'s letter is dated in (see :func:`ticket_zone`)."""
    return ticket_zone(store.camera_timezone(t.camera_id), t.local_time)


def skip_reason(t: TicketView) -> str:
    """Why ``t`` cannot get a letter for the post now; empty when it can."""
    if t.status != lifecycle.APPROVED:
        return f"status {t.status}"
    if t.registry_status != "found":
        return {"": "no owner: not looked up yet (etle tickets lookup-owners)",
                "not_found": "no owner: plate not in the vehicle registry (to review)",
                "unavailable": "no owner: the registry did not answer (look up again)"}.get(
                    t.registry_status, f"no owner: registry {t.registry_status}")
    if t.registry_mismatch:
        return f"registry mismatch, to review: {t.registry_mismatch}"
    if not has_postal_owner(t):
        return "no owner address in the registry"
    return ""


def _photo(t: TicketView, evidence_root: Path | None) -> Path | None:
    """The public (blurred) copy of the ticket's overview picture (:func:`etle.privacy.public_image`),
    only from its own bundle and never outside ``evidence_root``; None when the bundle has no
    picture.  Raises :class:`~etle.privacy.PrivacyError` when the blurred copy cannot be made: a
    letter never carries the unblurred picture."""
    if not t.evidence_path:
        return None
    listed = {f.name for f in t.evidence_files if f.pruned_at is None}
    if listed and PHOTO not in listed:
        return None
    folder = Path(t.evidence_path)
    root = evidence_root.resolve() if evidence_root is not None else None
    if root is not None and not folder.is_absolute():
        folder = root / folder
    path = (folder / PHOTO).resolve()
    if root is not None and not path.is_relative_to(root):
        return None
    if not path.is_file():
        return None
    return public_image(path.parent, PHOTO)


def _free_path(path: Path, explicit: bool) -> Path:
    """``path`` if no file is there; a batch file is never overwritten (the register holds its
    SHA-256).  The default name gets ``-2``, ``-3``...; an explicit ``-o`` that exists is an error."""
    if not path.exists():
        return path
    if explicit:
        raise ConfigError(f"{path} exists: a batch file is never overwritten (choose another -o)")
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def _write_temp(folder: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(prefix=".letters-", suffix=".pdf.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def make_batch(
    store: TicketStore,
    day: date,
    output: Path | None = None,
    *,
    public_url: str,
    evidence_root: Path | None = None,
    confirm_days: int | None = None,
    actor: str = DEFAULT_ACTOR,
    lang: str = "id",
    now: datetime | None = None,
    on_ticket: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Make the letters of the tickets approved on ``day`` that can be posted, in one PDF at
    ``output`` (default ``letters-<day>.pdf``), register them and mark them notice_sent.

    ``public_url`` is the address printed on letters (``<public_url>/konfirmasi/<reference>``);
    ``now`` dates the letters (its date in the camera's time zone is the notice date,
    ``confirm_days`` later the deadline; default: the present).  ``on_ticket(done, total)``
    reports progress.  A flagged ticket is never included (and the store would refuse a
    ``system:`` actor's ``send_notice`` for it anyway).
    """
    try:
        from etle.i18n import translator
        from etle.letters.pdf import render_letters
    except ImportError as exc:  # reportlab, segno, fastapi come with the web extra
        raise MissingDependencyError(exc.name or "reportlab", "web", "etle letters") from exc
    from etle import articles

    if not public_url.strip():
        raise ConfigError("letters need the public address printed on them: --public-url or $ETLE_WEB_PUBLIC_URL")
    days = CONFIRM_DAYS if confirm_days is None else confirm_days
    if days < 1:
        raise ConfigError(f"--confirm-days must be at least 1, not {days}")
    base = public_url.strip().rstrip("/")
    moment = now or datetime.now(timezone.utc)
    explicit = output is not None
    target = Path(output) if output is not None else Path(f"letters-{day.isoformat()}.pdf")
    if not target.parent.is_dir():
        raise ConfigError(f"no folder {target.parent} for the letters")
    if explicit:
        _free_path(target, explicit)  # fail before any work, not after rendering
    result = BatchResult(day=day)
    due: list[tuple[Approval, date, date]] = []
    for a in day_approvals(store, day):
        t = a.ticket
        reason = skip_reason(t)
        sent = store.notices(ticket=t.id) if reason and t.status != lifecycle.APPROVED else []
        if sent:
            result.already_sent.append(Skipped(t.reference, t.plate_text, f"already sent: {sent[-1].batch_file} "
                                                                        f"({sent[-1].notice_date.isoformat()})"))
        elif reason:
            result.skipped.append(Skipped(t.reference, t.plate_text, reason))
        else:
            notice, deadline = notice_dates(moment, zone_of(store, t), days)
            due.append((a, notice, deadline))
    if not due:
        return result
    tr = translator(lang)
    items: list[dict[str, Any]] = []
    photos: dict[int, Path | None] = {}
    for a, _, _ in due:  # a letter whose photo cannot be blurred is refused, not sent unblurred
        try:
            photos[a.ticket.id] = _photo(a.ticket, evidence_root)
        except PrivacyError as exc:
            result.skipped.append(Skipped(a.ticket.reference, a.ticket.plate_text, f"letter refused: {exc}"))
    due = [d for d in due if d[0].ticket.id in photos]
    if not due:
        return result
    for a, notice, deadline in due:
        t = a.ticket
        art = articles.article_for(t.rule)
        title = ((art.title_en if lang == "en" else art.title_id) or t.rule) if art is not None else t.rule
        items.append({"ticket": t, "rule_title": title, "photo": photos[t.id],
                      "confirm_url": f"{base}/konfirmasi/{t.reference}", "issued": a.approved_at,
                      "reviewer": a.approver, "notice_date": notice, "deadline": deadline})
    data = render_letters(items, tr=tr, lang=lang,
                          on_page=(lambda i: on_ticket(i, len(items))) if on_ticket else None)
    digest = hashlib.sha256(data).hexdigest()
    target = _free_path(target, explicit)
    temp = _write_temp(target.parent, data)
    try:
        result.notices = store.send_notices([
            NoticeIn(ticket_id=a.ticket.id, notice_date=notice, deadline=deadline, batch_file=target.name,
                     batch_sha256=digest, addressee_name=a.ticket.owner_name.strip(),
                     addressee_address=a.ticket.owner_address.strip())
            for a, notice, deadline in due
        ], actor=actor)  # the audit log keeps the real time, whatever ``now`` dates the letters
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    result.path, result.sha256 = target, digest
    return result


def register_rows(notices: Sequence[NoticeView]) -> list[dict[str, Any]]:
    """The register as plain dicts (``--json``)."""
    return [{"id": n.id, "ticket_id": n.ticket_id, "reference": n.reference, "notice_date": n.notice_date.isoformat(),
             "deadline": n.deadline.isoformat(), "batch_file": n.batch_file, "batch_sha256": n.batch_sha256,
             "addressee_name": n.addressee_name, "addressee_address": n.addressee_address,
             "created_at": n.created_at.isoformat(), "actor": n.actor} for n in notices]
