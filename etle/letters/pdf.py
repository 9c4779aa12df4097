"""Confirmation letters as PDF (reportlab) with the evidence photo and a QR code (segno).

A letter goes to the registered owner (E-TLE workflow step 3): it prints the owner's name and
address from the registry lookup, or, where no owner is known, a box saying it cannot be posted;
the notice date and the confirmation deadline in the camera's time zone; and how to confirm
(the link, the reference code and the plate).  The review app and ``etle letters batch``
(:mod:`etle.letters.batch`) both draw through :func:`render_letters`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfgen.canvas import Canvas

from etle.letters.dates import CONFIRM_DAYS, has_postal_owner, notice_dates, ticket_zone

__all__ = ["CONFIRM_DAYS", "has_postal_owner", "notice_dates", "render_letters", "ticket_zone"]

_FOOT_TOP = 70 * mm
"""Where the confirmation instructions begin; the evidence photo is shrunk to stay above them."""


def _rupiah(amount: int | None) -> str:
    return "-" if amount is None else "Rp " + f"{amount:,}".replace(",", ".")


def _wrapped(c: Canvas, x: float, y: float, text: str, *, font: str, size: float, width: float,
             leading: float, max_lines: int = 6) -> float:
    """Draw ``text`` wrapped to ``width`` (newlines kept); return the y below it."""
    c.setFont(font, size)
    lines = [part for para in text.splitlines() or [""] for part in simpleSplit(para, font, size, width) or [""]]
    for line in lines[:max_lines]:
        c.drawString(x, y, line)
        y -= leading
    return y


def _address_block(c: Canvas, t: Any, x0: float, y: float, width: float, tr: Callable[[str], str]) -> float:
    """The addressee (name and address from the registry), or a box saying the letter cannot be
    posted because no owner address is known; return the y below it."""
    if has_postal_owner(t):
        c.setFont("Helvetica", 10)
        c.drawString(x0, y, tr("letter_to"))
        y -= 5 * mm
        c.setFont("Helvetica-Bold", 11)
        c.drawString(x0, y, t.owner_name.strip()[:80])
        y -= 5 * mm
        return _wrapped(c, x0, y, t.owner_address.strip(), font="Helvetica", size=10, width=100 * mm,
                        leading=4.6 * mm, max_lines=4) - 3 * mm
    status = getattr(t, "registry_status", "") or tr("registry_not_looked_up")
    top = y + 4 * mm
    c.setFont("Helvetica-Bold", 11)
    c.setFillColorRGB(0.75, 0, 0)
    c.drawString(x0 + 3 * mm, y - 1 * mm, tr("letter_no_owner"))
    c.setFillColorRGB(0, 0, 0)
    y = _wrapped(c, x0 + 3 * mm, y - 6.5 * mm, tr("letter_no_owner_why").format(status=status),
                 font="Helvetica", size=9, width=width - 6 * mm, leading=4.2 * mm, max_lines=3)
    c.setStrokeColorRGB(0.75, 0, 0)
    c.setLineWidth(1.5)
    c.rect(x0, y + 1 * mm, width, top - y - 1 * mm)
    c.setLineWidth(1)
    c.setStrokeColorRGB(0, 0, 0)
    return y - 5 * mm


def _draw_letter(c: Canvas, t: Any, *, tr: Callable[[str], str], lang: str, rule_title: str,
                 photo: Path | None, confirm_url: str, issued: datetime, reviewer: str,
                 notice_date: date, deadline: date) -> None:
    width, height = A4
    x0, y = 20 * mm, height - 22 * mm
    text_w = width - 40 * mm
    c.setFont("Helvetica-Bold", 14)
    c.drawString(x0, y, tr("letter_title"))
    y -= 7 * mm
    c.setFont("Helvetica", 10)
    c.drawString(x0, y, tr("letter_subtitle"))
    c.drawRightString(width - 20 * mm, y, f"{tr('reference')}: {t.reference}")
    y -= 4 * mm
    c.line(x0, y, width - 20 * mm, y)
    y -= 8 * mm
    if has_postal_owner(t):  # dated beside the address, as a posted letter is
        c.drawRightString(width - 20 * mm, y, f"{tr('letter_notice_date')}: {notice_date.isoformat()}")
    y = _address_block(c, t, x0, y, text_w, tr)
    c.setFont("Helvetica", 10)
    c.drawString(x0, y, tr("letter_intro"))
    y -= 8 * mm
    plate = t.plate_text or "-"
    rows = [
        (tr("plate"), plate),
        (tr("time"), t.local_time or t.occurred_at.isoformat()),
        (tr("location"), t.location or t.camera_name or t.camera_id),
        (tr("camera"), f"{t.camera_name or ''} ({t.camera_id})"),
        (tr("rule"), rule_title),
        (tr("article"), f"UU 22/2009 Pasal {t.article}" if t.article else "-"),
        (tr("fine"), _rupiah(t.fine)),
        (tr("letter_notice_date"), notice_date.isoformat()),
        (tr("letter_deadline"), deadline.isoformat()),
        (tr("reference"), t.reference),
    ]
    for label, value in rows:
        c.setFont("Helvetica-Bold", 10)
        c.drawString(x0, y, label)
        big = label in (tr("plate"), tr("letter_deadline"))
        c.setFont("Helvetica-Bold" if big else "Helvetica", 12 if label == tr("plate") else 10)
        c.drawString(x0 + 45 * mm, y, str(value)[:90])
        y -= 6 * mm
    y -= 2 * mm
    if photo is not None and photo.is_file() and y - _FOOT_TOP > 25 * mm:
        c.setFont("Helvetica-Bold", 10)
        c.drawString(x0, y, tr("letter_evidence"))
        y -= 3 * mm
        img = ImageReader(str(photo))
        iw, ih = img.getSize()
        w = text_w
        h = min(w * ih / iw, 95 * mm, y - _FOOT_TOP - 4 * mm)
        w = h * iw / ih
        c.drawImage(img, x0, y - h, w, h)
    qr = segno.make(confirm_url, error="m")
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=6, border=2)
    buf.seek(0)
    size = 32 * mm
    c.drawImage(ImageReader(buf), width - 20 * mm - size, 18 * mm, size, size)
    foot_w = text_w - size - 5 * mm
    c.setFont("Helvetica-Bold", 10)
    c.drawString(x0, _FOOT_TOP - 4 * mm, tr("letter_howto"))
    y = _FOOT_TOP - 9 * mm
    for key, values in (("letter_step_open", {"url": confirm_url}),
                        ("letter_step_enter", {"reference": t.reference, "plate": plate}),
                        ("letter_step_by", {"deadline": deadline.isoformat()})):
        y = _wrapped(c, x0, y, tr(key).format(**values), font="Helvetica", size=9, width=foot_w,
                     leading=4.2 * mm, max_lines=3) - 0.8 * mm
    y = _wrapped(c, x0, y - 1.5 * mm, tr("letter_note"), font="Helvetica-Oblique", size=8.5, width=foot_w,
                 leading=4 * mm, max_lines=2)
    c.setFont("Helvetica", 9)
    c.drawString(x0, min(y - 1.5 * mm, 16 * mm), f"{tr('letter_reviewed_by')}: {reviewer}   {issued.date().isoformat()}")


def render_letters(items: Sequence[dict[str, Any]], *, tr: Callable[[str], str], lang: str,
                   on_page: Callable[[int], None] | None = None) -> bytes:
    """One page per item: ``{"ticket", "rule_title", "photo", "confirm_url", "issued", "reviewer"}``
    and optionally ``"notice_date"`` and ``"deadline"`` (dates; default: the UTC date of
    ``issued`` and :data:`CONFIRM_DAYS` after it).  ``on_page(n)`` is called after the n-th page."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4)
    c.setTitle(tr("letter_title"))
    c.setAuthor("etle")
    for n, item in enumerate(items, 1):
        notice, deadline = notice_dates(item["issued"], "UTC")
        _draw_letter(c, item["ticket"], tr=tr, lang=lang, rule_title=item["rule_title"], photo=item["photo"],
                     confirm_url=item["confirm_url"], issued=item["issued"], reviewer=item["reviewer"],
                     notice_date=item.get("notice_date") or notice, deadline=item.get("deadline") or deadline)
        c.showPage()
        if on_page is not None:
            on_page(n)
    if not items:
        c.setFont("Helvetica", 11)
        c.drawString(20 * mm, A4[1] - 30 * mm, "-")
        c.showPage()
    c.save()
    return out.getvalue()
